/* cluster_state: the topology state file (cluster_state.h). */
#include "cluster_state.h"

#include "json_whole.h"
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

/* A list of shard ids into out (at most CLUSTER_MAX_SHARDS). */
static int cluster_state_ids(const cJSON *arr, uint32_t *out, size_t *n)
{
    const cJSON *v;

    *n = 0;
    if (!cJSON_IsArray(arr))
        return -1;
    cJSON_ArrayForEach(v, arr) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
            v->valuedouble >= CLUSTER_MAX_SHARDS || *n >= CLUSTER_MAX_SHARDS)
            return -1;
        out[(*n)++] = (uint32_t)v->valuedouble;
    }
    return 0;
}

/* The "migration" object into m. 0 or -1. */
static int cluster_state_mig(const cJSON *o, cluster_migration *m)
{
    uint64_t id, shard, v;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const cJSON *phase = cJSON_GetObjectItemCaseSensitive(o, "phase");
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(o, "error");

    memset(m, 0, sizeof *m);
    if (cluster_state_json_u64(o, "id", &id) < 0 ||
        cluster_state_json_u64(o, "shard", &shard) < 0 ||
        shard >= CLUSTER_MAX_SHARDS || !cJSON_IsString(kind) ||
        !cJSON_IsString(phase) ||
        cluster_state_ids(cJSON_GetObjectItemCaseSensitive(o, "from"),
                          m->from, &m->nfrom) < 0 ||
        cluster_state_ids(cJSON_GetObjectItemCaseSensitive(o, "to"), m->to,
                          &m->nto) < 0)
        return -1;
    m->id = id;
    m->shard = (uint32_t)shard;
    m->kind = strcmp(kind->valuestring, "remove") == 0 ? CLUSTER_MIG_REMOVE
                                                       : CLUSTER_MIG_ADD;
    m->phase = cluster_mig_phase_parse(phase->valuestring);
    if (m->phase == CLUSTER_MIG_NONE)
        return -1;
    if (cluster_state_json_u64(o, "started_unix_ms", &v) == 0)
        m->started_unix_ms = (int64_t)v;
    if (cluster_state_json_u64(o, "phase_unix_ms", &v) == 0)
        m->phase_unix_ms = (int64_t)v;
    if (cluster_state_json_u64(o, "ended_unix_ms", &v) == 0)
        m->ended_unix_ms = (int64_t)v;
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "share")))
        m->share = cJSON_GetObjectItemCaseSensitive(o, "share")->valuedouble;
    if (cJSON_IsString(error))
        snprintf(m->error, sizeof m->error, "%s", error->valuestring);
    return 0;
}

/* One entry of "shards" into next[id]. 0 or -1 + err. */
static int cluster_state_shard(cluster_t *cl, const cJSON *sj, size_t i,
                               cluster_shard *next, char *err, size_t errlen)
{
    uint64_t id = i, e, primary, hs = 0, fo = 0;
    const cJSON *urls = cJSON_GetObjectItemCaseSensitive(sj, "urls");
    cluster_shard *sh;

    /* Files written before shard ids have none: the index is the id. */
    if (cJSON_GetObjectItemCaseSensitive(sj, "id") &&
        cluster_state_json_u64(sj, "id", &id) < 0)
        id = CLUSTER_MAX_SHARDS;
    if (id >= CLUSTER_MAX_SHARDS || next[id].present)
        return cluster_errf(err, errlen, "%s: shards[%zu] has no id, a "
                            "repeated one or one above %d", cl->state_path,
                            i, CLUSTER_MAX_SHARDS - 1);
    if (cluster_state_json_u64(sj, "epoch", &e) < 0 ||
        cluster_state_json_u64(sj, "primary", &primary) < 0 ||
        primary >= (uint64_t)cl->cfg.replicas)
        return cluster_errf(err, errlen, "%s: shards[%zu] needs an epoch and "
                            "a primary below cluster.replicas (%lld)",
                            cl->state_path, i, (long long)cl->cfg.replicas);
    cluster_state_json_u64(sj, "handoff_seq", &hs);
    cluster_state_json_u64(sj, "failovers", &fo);
    sh = &next[id];
    sh->present = 1;
    sh->epoch = e;
    sh->primary = (int)primary;
    sh->handoff_seq = hs;
    sh->failovers = fo;
    if (cJSON_IsArray(urls)) {
        const cJSON *u;
        cJSON_ArrayForEach(u, urls) {
            if (!cJSON_IsString(u) || sh->nurls >= CLUSTER_MAX_REPLICAS ||
                sh->nurls >= (size_t)cl->cfg.replicas)
                return cluster_errf(err, errlen, "%s: shards[%zu].urls: at "
                                    "most cluster.replicas URLs",
                                    cl->state_path, i);
            snprintf(sh->urls[sh->nurls++], SUP_URL_MAX, "%s", u->valuestring);
        }
        if (sh->nurls == 0 || primary >= sh->nurls)
            return cluster_errf(err, errlen, "%s: shards[%zu]: primary %llu "
                                "has no URL", cl->state_path, i,
                                (unsigned long long)primary);
    }
    return 0;
}

/* The shard count check: the configured count may be the stored one or
 * the one the cluster was created with (a config file that still says 2
 * after `kvctl shard add`); anything else is refused. */
static int cluster_state_check_count(cluster_t *cl, size_t stored,
                                     size_t created, char *err, size_t errlen)
{
    size_t want = (size_t)cl->cfg.shards;

    if (want == stored)
        return 0;
    if (want == created) {
        log_info("cluster.shards is %zu, the count %s was created with; it "
                 "has %zu shards now (kvctl shard add/remove): starting "
                 "those", want, cl->data_dir, stored);
        return 0;
    }
    return cluster_errf(err, errlen, "cluster.shards is %zu, but the cluster "
                        "in %s has %zu shards (created with %zu): a shard "
                        "count changes only with `kvctl shard add` and "
                        "`kvctl shard remove`, which move the keys; set "
                        "cluster.shards (KV_SHARDS) back to %zu", want,
                        cl->data_dir, stored, created, stored);
}

int cluster_state_load(cluster_t *cl, char *err, size_t errlen)
{
    FILE *f = fopen(cl->state_path, "r");
    char *text = NULL;
    size_t len = 0, cap = 0;
    cJSON *root = NULL;
    const cJSON *shards, *sj, *mj;
    uint64_t epoch, v;
    cluster_shard *next = NULL;
    cluster_migration mig;
    size_t i = 0, stored, created;
    uint32_t next_id = 0;
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
    root = json_whole_parse(text, len, NULL);
    shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    if (root == NULL || cluster_state_json_u64(root, "epoch", &epoch) < 0 ||
        !cJSON_IsArray(shards) || cJSON_GetArraySize(shards) < 1) {
        cluster_errf(err, errlen, "%s: not a controller state file (delete "
                     "it to start over at epoch 1)", cl->state_path);
        goto out;
    }
    next = calloc(CLUSTER_MAX_SHARDS, sizeof *next);
    if (next == NULL) {
        cluster_errf(err, errlen, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(sj, shards) {
        if (cluster_state_shard(cl, sj, i, next, err, errlen) < 0)
            goto out;
        i++;
    }
    stored = i;
    for (size_t s = 0; s < CLUSTER_MAX_SHARDS; s++)
        if (next[s].present)
            next_id = (uint32_t)s + 1;
    created = cluster_state_json_u64(root, "created_shards", &v) == 0
                  ? (size_t)v : stored;
    if (cluster_state_json_u64(root, "next_id", &v) == 0 && v > next_id &&
        v <= CLUSTER_MAX_SHARDS)
        next_id = (uint32_t)v;
    memset(&mig, 0, sizeof mig);
    mj = cJSON_GetObjectItemCaseSensitive(root, "migration");
    if (mj && cluster_state_mig(mj, &mig) < 0) {
        cluster_errf(err, errlen, "%s: the migration object is not readable "
                     "(id, kind, shard, phase, from, to)", cl->state_path);
        goto out;
    }
    if (cluster_state_check_count(cl, stored, created, err, errlen) < 0)
        goto out;
    /* No thread runs yet: the stored list replaces the configured one. */
    pthread_mutex_lock(&cl->mu);
    cl->epoch = epoch;
    memcpy(cl->shards, next, CLUSTER_MAX_SHARDS * sizeof *next);
    cl->nshards = next_id;
    cl->next_shard_id = next_id;
    for (size_t s = 0; s < CLUSTER_MAX_SHARDS; s++)
        if (next[s].present && s + 1 > cl->nshards)
            cl->nshards = s + 1;
    cl->created_shards = created;
    cl->mig = mig;
    pthread_mutex_unlock(&cl->mu);
    if (cluster_init_renodes(cl, err, errlen) < 0)
        goto out;
    log_info("topology state from %s: epoch %llu, %zu shard%s, next id %u%s%s",
             cl->state_path, (unsigned long long)epoch, stored,
             stored == 1 ? "" : "s", next_id,
             cluster_mig_active(&mig) ? ", migration in phase " : "",
             cluster_mig_active(&mig) ? cluster_mig_phase_name(mig.phase)
                                      : "");
    rc = 0;
out:
    free(next);
    cJSON_Delete(root);
    free(text);
    return rc;
}

static cJSON *cluster_state_ids_json(const uint32_t *ids, size_t n)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

cJSON *cluster_state_mig_json(const cluster_migration *m)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddNumberToObject(o, "id", (double)m->id);
    cJSON_AddStringToObject(o, "kind", m->kind == CLUSTER_MIG_REMOVE
                                           ? "remove" : "add");
    cJSON_AddNumberToObject(o, "shard", m->shard);
    cJSON_AddStringToObject(o, "phase", cluster_mig_phase_name(m->phase));
    cJSON_AddItemToObject(o, "from", cluster_state_ids_json(m->from, m->nfrom));
    cJSON_AddItemToObject(o, "to", cluster_state_ids_json(m->to, m->nto));
    cJSON_AddNumberToObject(o, "share", m->share);
    cJSON_AddNumberToObject(o, "started_unix_ms", (double)m->started_unix_ms);
    cJSON_AddNumberToObject(o, "phase_unix_ms", (double)m->phase_unix_ms);
    if (m->ended_unix_ms)
        cJSON_AddNumberToObject(o, "ended_unix_ms", (double)m->ended_unix_ms);
    if (m->error[0])
        cJSON_AddStringToObject(o, "error", m->error);
    return o;
}

/* The file's text (lock held; the caller frees). */
static char *cluster_state_text(cluster_t *cl)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "shards");
    char *text;

    cJSON_AddNumberToObject(root, "epoch", (double)cl->epoch);
    cJSON_AddNumberToObject(root, "next_id", cl->next_shard_id);
    cJSON_AddNumberToObject(root, "created_shards", (double)cl->created_shards);
    if (cl->mig.id)
        cJSON_AddItemToObject(root, "migration", cluster_state_mig_json(&cl->mig));
    for (size_t s = 0; s < cl->nshards; s++) {
        cJSON *o;
        if (!cl->shards[s].present)
            continue;
        o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)s);
        cJSON_AddNumberToObject(o, "epoch", (double)cl->shards[s].epoch);
        cJSON_AddNumberToObject(o, "primary", cl->shards[s].primary);
        cJSON_AddNumberToObject(o, "handoff_seq",
                                (double)cl->shards[s].handoff_seq);
        cJSON_AddNumberToObject(o, "failovers",
                                (double)cl->shards[s].failovers);
        if (cl->shards[s].nurls) {
            cJSON *u = cJSON_AddArrayToObject(o, "urls");
            for (size_t r = 0; r < cl->shards[s].nurls; r++)
                cJSON_AddItemToArray(u,
                                     cJSON_CreateString(cl->shards[s].urls[r]));
        }
        cJSON_AddItemToArray(arr, o);
    }
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* Write text (freed here) to the state file through a .tmp and rename. */
static int cluster_state_write(cluster_t *cl, char *text)
{
    char tmp[PATH_MAX + 8];
    FILE *f;
    int rc = 0;

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

int cluster_state_save(cluster_t *cl)
{
    int rc;

    /* Written under the lock: two writers (failover on the health thread,
     * a POST /shards on an HTTP thread) never share the .tmp file, and a
     * later state never lands before an earlier one. */
    pthread_mutex_lock(&cl->mu);
    rc = cluster_state_save_locked(cl);
    pthread_mutex_unlock(&cl->mu);
    return rc;
}

int cluster_state_save_locked(cluster_t *cl)
{
    return cluster_state_write(cl, cluster_state_text(cl));
}
