#include "topo.h"

#include "clock.h"
#include "httpc.h"
#include "json_whole.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void topo_free(topo_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; t->shards && i < t->nshards; i++) {
        free(t->shards[i].primary);
        for (size_t k = 0; k < t->shards[i].nsecondaries; k++)
            free(t->shards[i].secondaries[k]);
    }
    free(t->shards);
    free(t->queue);
    ring_free(t->ring);
    ring_free(t->ring_from);
    ring_free(t->ring_to);
    free(t);
}

/* A count or sequence number: an integer 0..max (max <= 2^53, where a
 * double still holds every integer); absent (or null) is dflt. NaN, inf, a
 * fraction, a negative or a string is refused rather than cast. 0 or -1. */
static int topo_uint(const cJSON *parent, const char *name, uint64_t dflt,
                     uint64_t max, uint64_t *out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(parent, name);
    double d;

    if (j == NULL || cJSON_IsNull(j)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return -1;
    d = j->valuedouble;
    if (!(d >= 0 && d <= (double)max) || d != (double)(uint64_t)d)
        return -1;
    *out = (uint64_t)d;
    return 0;
}

/* A URL field: absent or null is NULL (*out), else a non-empty string of at
 * most TOPO_MAX_URL bytes, copied. 0, or -1 (bad, or out of memory). */
static int topo_url(const cJSON *j, int nullable, char **out)
{
    *out = NULL;
    if (nullable && (j == NULL || cJSON_IsNull(j)))
        return 0;
    if (!cJSON_IsString(j) || j->valuestring[0] == '\0' ||
        strlen(j->valuestring) > TOPO_MAX_URL)
        return -1;
    *out = strdup(j->valuestring);
    return *out ? 0 : -1;
}

/* One entry of "shards" into sh; 0 or -1 + err. */
static int topo_parse_shard(const cJSON *s, size_t i, topo_shard *sh,
                            char *err, size_t errlen)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "id");
    const cJSON *u, *sec;

    if (!cJSON_IsNumber(id) || id->valuedouble < 0 ||
        id->valuedouble >= TOPO_MAX_SHARD_IDS ||
        id->valuedouble != (double)(uint32_t)id->valuedouble) {
        snprintf(err, errlen, "topology: shards[%zu].id must be an integer "
                 "0..%d", i, TOPO_MAX_SHARD_IDS - 1);
        return -1;
    }
    sh->id = (uint32_t)id->valuedouble;
    if (topo_uint(s, "epoch", 0, TOPO_MAX_INT, &sh->epoch) != 0 ||
        topo_uint(s, "handoff_seq", 0, TOPO_MAX_INT, &sh->handoff_seq) != 0) {
        snprintf(err, errlen, "topology: shards[%zu].epoch and handoff_seq "
                 "must be integers 0..2^53", i);
        return -1;
    }
    if (topo_url(cJSON_GetObjectItemCaseSensitive(s, "primary"), 1,
                 &sh->primary) != 0) {
        snprintf(err, errlen, "topology: shards[%zu].primary must be null or "
                 "a URL of 1 to %d bytes", i, TOPO_MAX_URL);
        return -1;
    }
    sec = cJSON_GetObjectItemCaseSensitive(s, "secondaries");
    if (sec != NULL && !cJSON_IsNull(sec) &&
        (!cJSON_IsArray(sec) || cJSON_GetArraySize(sec) > TOPO_MAX_SECONDARIES)) {
        snprintf(err, errlen, "topology: shards[%zu].secondaries must be an "
                 "array of at most %d URLs", i, TOPO_MAX_SECONDARIES);
        return -1;
    }
    cJSON_ArrayForEach(u, sec) {
        if (topo_url(u, 0, &sh->secondaries[sh->nsecondaries]) != 0) {
            snprintf(err, errlen, "topology: shards[%zu].secondaries must be "
                     "URLs of 1 to %d bytes", i, TOPO_MAX_URL);
            return -1;
        }
        sh->nsecondaries++;
    }
    return 0;
}

static const char *const topo_phase_names[] = {"none", "copy", "freeze",
                                               "switch"};

const char *topo_phase_name(enum topo_phase p)
{
    return (unsigned)p < sizeof topo_phase_names / sizeof topo_phase_names[0]
               ? topo_phase_names[p]
               : "?";
}

/* A list of shard ids (the "ring" or migration "to" field) into ids[],
 * every one of them a shard of t. The count, or -1 + err. */
static long topo_parse_ids(const cJSON *arr, const char *what, const topo_t *t,
                           uint32_t *ids, char *err, size_t errlen)
{
    const cJSON *v;
    long n = 0;

    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0 ||
        (size_t)cJSON_GetArraySize(arr) > t->nshards) {
        snprintf(err, errlen, "topology: \"%s\" must list 1 to %zu shard ids",
                 what, t->nshards);
        return -1;
    }
    cJSON_ArrayForEach(v, arr) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) ||
            v->valuedouble >= TOPO_MAX_SHARD_IDS ||
            v->valuedouble != (double)(uint32_t)v->valuedouble ||
            t->index[(uint32_t)v->valuedouble] < 0) {
            snprintf(err, errlen, "topology: \"%s\" names a shard that is "
                     "not in \"shards\"", what);
            return -1;
        }
        ids[n++] = (uint32_t)v->valuedouble;
    }
    return n;
}

/* The ring of a list of ids, or NULL + err. */
static ring_t *topo_parse_ring(const cJSON *arr, const char *what,
                               const topo_t *t, uint32_t *ids, char *err,
                               size_t errlen)
{
    long n = topo_parse_ids(arr, what, t, ids, err, errlen);
    ring_t *r = n > 0 ? ring_new_ids(ids, (size_t)n, t->vnodes) : NULL;

    if (n > 0 && r == NULL)
        snprintf(err, errlen, "topology: \"%s\" repeats a shard id (or out "
                 "of memory)", what);
    return r;
}

/* The ring of the "ring" field (every shard when absent) and, during a
 * migration, those of its "from" and "to". 0 or -1 + err. */
static int topo_parse_rings(const cJSON *root, topo_t *t, uint32_t *ids,
                            char *err, size_t errlen)
{
    const cJSON *ring = cJSON_GetObjectItemCaseSensitive(root, "ring");
    const cJSON *mig = cJSON_GetObjectItemCaseSensitive(root, "migration");
    const cJSON *phase, *id;

    if (ring)
        t->ring = topo_parse_ring(ring, "ring", t, ids, err, errlen);
    else if ((t->ring = ring_new_ids(ids, t->nshards, t->vnodes)) == NULL)
        snprintf(err, errlen, "topology: out of memory for the ring");
    if (t->ring == NULL)
        return -1;
    if (mig == NULL || cJSON_IsNull(mig))
        return 0;
    phase = cJSON_GetObjectItemCaseSensitive(mig, "phase");
    id = cJSON_GetObjectItemCaseSensitive(mig, "id");
    for (size_t p = TOPO_PHASE_COPY; p <= TOPO_PHASE_SWITCH; p++)
        if (cJSON_IsString(phase) && strcmp(phase->valuestring, topo_phase_names[p]) == 0)
            t->phase = (enum topo_phase)p;
    if (t->phase == TOPO_PHASE_NONE || !cJSON_IsNumber(id) ||
        topo_uint(mig, "id", 0, TOPO_MAX_INT, &t->migration_id) != 0 ||
        t->migration_id < 1) {
        snprintf(err, errlen, "topology: \"migration\" needs an id and a "
                 "phase (copy, freeze or switch)");
        return -1;
    }
    if ((t->ring_from = topo_parse_ring(cJSON_GetObjectItemCaseSensitive(mig, "from"),
                                        "migration.from", t, ids, err, errlen)) == NULL ||
        (t->ring_to = topo_parse_ring(cJSON_GetObjectItemCaseSensitive(mig, "to"),
                                      "migration.to", t, ids, err, errlen)) == NULL)
        return -1;
    return 0;
}

topo_t *topo_parse(const char *json, size_t len, char *err, size_t errlen)
{
    cJSON *root = json_whole_parse(json, len, NULL);
    const cJSON *shards, *s;
    topo_t *t = NULL;
    uint32_t *ids = NULL;
    uint64_t v;
    size_t i = 0;

    if (root == NULL) {
        snprintf(err, errlen, "topology: not valid JSON");
        return NULL;
    }
    shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    if (!cJSON_IsArray(shards) || cJSON_GetArraySize(shards) == 0 ||
        cJSON_GetArraySize(shards) > TOPO_MAX_SHARD_IDS) {
        snprintf(err, errlen, "topology: \"shards\" must be an array of 1 "
                 "to %d shards", TOPO_MAX_SHARD_IDS);
        goto out;
    }
    t = calloc(1, sizeof *t);
    if (t == NULL)
        goto nomem;
    t->nshards = (size_t)cJSON_GetArraySize(shards);
    t->shards = calloc(t->nshards, sizeof *t->shards);
    ids = calloc(t->nshards, sizeof *ids);
    if (t->shards == NULL || ids == NULL)
        goto nomem;
    memset(t->index, 0xff, sizeof t->index);
    atomic_init(&t->refs, 1);
    if (topo_uint(root, "epoch", 0, TOPO_MAX_INT, &t->epoch) != 0) {
        snprintf(err, errlen, "topology: \"epoch\" must be an integer 0..2^53");
        goto bad;
    }
    if (topo_uint(root, "vnodes", RING_DEFAULT_VNODES, TOPO_MAX_VNODES, &v) != 0 ||
        v < 1) {
        snprintf(err, errlen, "topology: \"vnodes\" must be an integer 1..%d",
                 TOPO_MAX_VNODES);
        goto bad;
    }
    t->vnodes = (uint32_t)v;
    if (topo_url(cJSON_GetObjectItemCaseSensitive(root, "queue"), 1,
                 &t->queue) != 0) {
        snprintf(err, errlen, "topology: \"queue\" must be null or a URL of "
                 "1 to %d bytes", TOPO_MAX_URL);
        goto bad;
    }
    cJSON_ArrayForEach(s, shards) {
        if (topo_parse_shard(s, i, &t->shards[i], err, errlen) != 0)
            goto bad;
        if (t->index[t->shards[i].id] >= 0) {
            snprintf(err, errlen, "topology: shard id %u appears twice",
                     t->shards[i].id);
            goto bad;
        }
        t->index[t->shards[i].id] = (int16_t)i;
        ids[i] = t->shards[i].id;
        i++;
    }
    if (topo_parse_rings(root, t, ids, err, errlen) != 0)
        goto bad;
    goto out;
nomem:
    snprintf(err, errlen, "topology: out of memory");
bad:
    topo_free(t); /* shards[] is zeroed: unfilled entries free nothing */
    t = NULL;
out:
    free(ids);
    cJSON_Delete(root);
    return t;
}

void topo_get(topo_t *t)
{
    atomic_fetch_add(&t->refs, 1);
}

void topo_put(topo_t *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1)
        topo_free(t);
}

const topo_shard *topo_shard_for(const topo_t *t, const char *key, size_t len)
{
    return topo_shard_by_id(t, ring_lookup(t->ring, key, len));
}

uint32_t topo_owner_from(const topo_t *t, const char *key, size_t len)
{
    return ring_lookup(t->ring_from ? t->ring_from : t->ring, key, len);
}

uint32_t topo_owner_to(const topo_t *t, const char *key, size_t len)
{
    return ring_lookup(t->ring_to ? t->ring_to : t->ring, key, len);
}

const topo_shard *topo_shard_by_id(const topo_t *t, uint32_t id)
{
    return id < TOPO_MAX_SHARD_IDS && t->index[id] >= 0 ? &t->shards[t->index[id]]
                                                        : NULL;
}

/* ---- the watcher -------------------------------------------------------- */

struct topo_watch {
    char *url;
    long poll_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    topo_t *cur;
    char *cur_text;
    int stopping;
    int poked;                     /* poll again without waiting */
    char refused[160];             /* the last refusal logged ("" none):
                                      the same bad topology logs once */
};

static void topo_watch_poll(topo_watch *w)
{
    httpc_req req = {.url = w->url, .timeout_ms = 1000};
    httpc_resp resp;
    char err[160];
    topo_t *t, *old = NULL;

    if (httpc_do(&req, &resp) != 0 || resp.status != 200) {
        log_debug("topology: %s unreachable, keeping the last one", w->url);
        httpc_resp_free(&resp);
        return;
    }
    pthread_mutex_lock(&w->mu);
    if (w->cur_text && strcmp(w->cur_text, resp.body) == 0) {
        pthread_mutex_unlock(&w->mu);
        httpc_resp_free(&resp);
        return;
    }
    pthread_mutex_unlock(&w->mu);
    t = topo_parse(resp.body, resp.len, err, sizeof err);
    if (t == NULL) {
        /* Only the watcher thread touches refused. */
        if (strcmp(err, w->refused) != 0) {
            log_warn("%s; keeping the last good topology", err);
            snprintf(w->refused, sizeof w->refused, "%s", err);
        }
        httpc_resp_free(&resp);
        return;
    }
    w->refused[0] = '\0';
    pthread_mutex_lock(&w->mu);
    if (w->cur == NULL || w->cur->epoch != t->epoch)
        log_info("topology epoch %llu: %zu shards, queue %s%s%s",
                 (unsigned long long)t->epoch, t->nshards,
                 t->queue ? t->queue : "none",
                 t->phase ? ", migration phase " : "",
                 t->phase ? topo_phase_name(t->phase) : "");
    old = w->cur;
    w->cur = t;
    free(w->cur_text);
    w->cur_text = resp.body;
    resp.body = NULL;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    topo_put(old);
    httpc_resp_free(&resp);
}

static void *topo_watch_main(void *arg)
{
    topo_watch *w = arg;

    pthread_setname_np(pthread_self(), "topo-watch"); /* top -H, perf */
    pthread_mutex_lock(&w->mu);
    while (!w->stopping) {
        pthread_mutex_unlock(&w->mu);
        topo_watch_poll(w);
        pthread_mutex_lock(&w->mu);
        if (!w->stopping && !w->poked)
            clock_cond_wait_ms(&w->cond, &w->mu, (uint64_t)w->poll_ms);
        w->poked = 0;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

topo_watch *topo_watch_start(const char *controller_url, long poll_ms)
{
    topo_watch *w = calloc(1, sizeof *w);
    size_t n = strlen(controller_url) + sizeof "/topology";

    w->url = malloc(n);
    snprintf(w->url, n, "%s/topology", controller_url);
    w->poll_ms = poll_ms > 0 ? poll_ms : 1000;
    pthread_mutex_init(&w->mu, NULL);
    clock_cond_init(&w->cond);
    if (pthread_create(&w->thread, NULL, topo_watch_main, w) != 0) {
        free(w->url);
        free(w);
        return NULL;
    }
    return w;
}

void topo_watch_stop(topo_watch *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    topo_put(w->cur);
    free(w->cur_text);
    free(w->url);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

void topo_watch_poke(topo_watch *w)
{
    pthread_mutex_lock(&w->mu);
    w->poked = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

topo_t *topo_watch_get(topo_watch *w)
{
    topo_t *t;

    pthread_mutex_lock(&w->mu);
    t = w->cur;
    if (t)
        topo_get(t);
    pthread_mutex_unlock(&w->mu);
    return t;
}

int topo_watch_wait(topo_watch *w, long timeout_ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)timeout_ms;
    uint64_t now;
    int ok;

    pthread_mutex_lock(&w->mu);
    while (w->cur == NULL && !w->stopping && (now = clock_mono_ms()) < end)
        clock_cond_wait_ms(&w->cond, &w->mu, end - now);
    ok = w->cur != NULL;
    pthread_mutex_unlock(&w->mu);
    return ok ? 0 : -1;
}
