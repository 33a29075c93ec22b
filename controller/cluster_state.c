/* cluster_state: the topology state file (cluster_state.h). */
#include "cluster_state.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cluster_state_json_u64(const cJSON *o, const char *name, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
        v->valuedouble > 9007199254740992.0)
        return -1;
    *out = (uint64_t)v->valuedouble;
    return 0;
}

int cluster_state_load(cluster_t *cl, char *err, size_t errlen)
{
    FILE *f = fopen(cl->state_path, "r");
    char *text = NULL;
    size_t len = 0, cap = 0;
    cJSON *root = NULL;
    const cJSON *shards, *sj;
    uint64_t epoch;
    cluster_shard *next = NULL;
    size_t i = 0;
    int rc = -1;

    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        return cluster_errf(err, errlen, "%s: %s", cl->state_path,
                            strerror(errno));
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *t = realloc(text, cap = cap ? cap * 2 : 8192);
            if (t == NULL)
                break;
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    if (text == NULL)
        return cluster_errf(err, errlen, "%s: out of memory", cl->state_path);
    text[len] = '\0';
    root = cJSON_ParseWithLength(text, len);
    shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    if (root == NULL || cluster_state_json_u64(root, "epoch", &epoch) < 0 ||
        !cJSON_IsArray(shards)) {
        cluster_errf(err, errlen, "%s: not a controller state file (delete "
                     "it to start over at epoch 1)", cl->state_path);
        goto out;
    }
    if ((size_t)cJSON_GetArraySize(shards) != cl->nshards) {
        cluster_errf(err, errlen, "cluster.shards is %zu, but the cluster "
                     "in %s has %d shards: starting it with another count "
                     "would leave keys on shards the ring no longer sends "
                     "their reads to; set cluster.shards (KV_SHARDS) back to "
                     "%d", cl->nshards, cl->data_dir,
                     cJSON_GetArraySize(shards), cJSON_GetArraySize(shards));
        goto out;
    }
    next = calloc(cl->nshards, sizeof *next);
    if (next == NULL) {
        cluster_errf(err, errlen, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(sj, shards) {
        uint64_t e, primary, hs = 0, fo = 0;
        if (cluster_state_json_u64(sj, "epoch", &e) < 0 ||
            cluster_state_json_u64(sj, "primary", &primary) < 0 ||
            primary >= (uint64_t)cl->cfg.replicas) {
            cluster_errf(err, errlen, "%s: shards[%zu] needs an epoch and a "
                         "primary below cluster.replicas (%lld)",
                         cl->state_path, i, (long long)cl->cfg.replicas);
            goto out;
        }
        cluster_state_json_u64(sj, "handoff_seq", &hs);
        cluster_state_json_u64(sj, "failovers", &fo);
        next[i].epoch = e;
        next[i].primary = (int)primary;
        next[i].handoff_seq = hs;
        next[i].failovers = fo;
        i++;
    }
    pthread_mutex_lock(&cl->mu);
    cl->epoch = epoch;
    memcpy(cl->shards, next, cl->nshards * sizeof *next);
    pthread_mutex_unlock(&cl->mu);
    log_info("topology state from %s: epoch %llu", cl->state_path,
             (unsigned long long)epoch);
    rc = 0;
out:
    free(next);
    cJSON_Delete(root);
    free(text);
    return rc;
}

int cluster_state_save(cluster_t *cl)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "shards");
    char tmp[PATH_MAX + 8];
    char *text;
    FILE *f;
    int rc = 0;

    pthread_mutex_lock(&cl->mu);
    cJSON_AddNumberToObject(root, "epoch", (double)cl->epoch);
    for (size_t s = 0; s < cl->nshards; s++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)s);
        cJSON_AddNumberToObject(o, "epoch", (double)cl->shards[s].epoch);
        cJSON_AddNumberToObject(o, "primary", cl->shards[s].primary);
        cJSON_AddNumberToObject(o, "handoff_seq",
                                (double)cl->shards[s].handoff_seq);
        cJSON_AddNumberToObject(o, "failovers",
                                (double)cl->shards[s].failovers);
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&cl->mu);
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text == NULL)
        return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp", cl->state_path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        log_warn("cannot write %s: %s", tmp, strerror(errno));
        free(text);
        return -1;
    }
    if (fputs(text, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0 ||
        fsync(fileno(f)) != 0)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, cl->state_path) != 0)
        rc = -1;
    if (rc < 0)
        log_warn("cannot write %s: %s", cl->state_path, strerror(errno));
    free(text);
    return rc;
}

