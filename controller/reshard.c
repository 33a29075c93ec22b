/* reshard: the shard migration driver and its API (reshard.h). */
#include "reshard.h"

#include "cluster_cmd.h"
#include "cluster_state.h"
#include "httpc.h"
#include "json_whole.h"
#include "kvhdr.h"
#include "events.h"
#include "log.h"
#include "notify.h"
#include "probe.h"
#include "ring.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESHARD_LOG_EVERY_MS 5000
#define RESHARD_MAX_PROBES (CLUSTER_MAX_SHARDS * CLUSTER_MAX_REPLICAS)

struct reshard {
    cluster_t *cl;
    sup_t *sup;
    pthread_mutex_t op;          /* one change of the migration at a time */
    pthread_mutex_t mu;          /* guards the progress below */
    reshard_src srcs[CLUSTER_MAX_SHARDS]; /* source primaries, last seen */
    size_t nsrcs;
    uint64_t srcs_mig;           /* the migration they belong to */
    int64_t copy_start_ms;       /* sup_now_ms() the copy was first seen */
    uint64_t prepare_mig;        /* the migration prepare_ms belongs to */
    int64_t prepare_ms;          /* sup_now_ms() prepare was first seen */
    int64_t last_log_ms;
    int retire;                  /* a removed shard's stores still run */
    uint32_t retire_id;
    int64_t retire_at_ms;        /* sup_now_ms() they stop at */
    long probe_timeout_ms;
    char auth[KVHDR_AUTH_MAX];
};

static int64_t reshard_unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the driver ---- */

reshard_t *reshard_new(cluster_t *cl, sup_t *sup)
{
    reshard_t *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->cl = cl;
    r->sup = sup;
    pthread_mutex_init(&r->op, NULL);
    pthread_mutex_init(&r->mu, NULL);
    r->probe_timeout_ms = cl->cfg.health_interval_ms < 200 ? 200
                          : cl->cfg.health_interval_ms > 1000
                              ? 1000
                              : (long)cl->cfg.health_interval_ms;
    kvhdr_auth(r->auth, sizeof r->auth, cl->cfg.token);
    return r;
}

void reshard_free(reshard_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->op);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* "migration 3 (add shard 2)" */
static void reshard_name(const cluster_migration *m, char *out, size_t len)
{
    snprintf(out, len, "migration %llu (%s shard %u)",
             (unsigned long long)m->id,
             m->kind == CLUSTER_MIG_REMOVE ? "remove" : "add", m->shard);
}

static int reshard_notify_pick(const cluster_node *n, void *ctx)
{
    (void)ctx;
    return n->kind != CLUSTER_NGINX;
}

/* Every node but nginx hears of the new topology (notify.h). */
static void reshard_notify(reshard_t *r)
{
    size_t asked, told = notify_nodes(r->cl, r->auth, reshard_notify_pick,
                                      NULL, NULL, &asked);

    log_info("reshard: %zu of %zu nodes told of the new topology (the rest "
             "poll it)", told, asked);
}

/* Stop (supervised) the stores of shard id; they are gone from now on. */
static void reshard_stop_shard(reshard_t *r, uint32_t id)
{
    cluster_t *cl = r->cl;
    size_t total = cl->nnodes;

    for (size_t i = 0; i < total; i++) {
        cluster_node *n = &cl->nodes[i];
        if (n->kind != CLUSTER_STORE || n->shard != (int)id)
            continue;
        if (n->sup_index >= 0) {
            sup_stop_child(r->sup, (size_t)n->sup_index);
            log_info("reshard: %s stopped", n->name);
        } else {
            log_info("reshard: %s (%s) is out of the topology: stop it",
                     n->name, n->url);
        }
    }
    cluster_shard_drop(cl, id);
}

/* Move migration id from phase `from` to `to` (under the lock, only if it
 * is still there): a new cluster epoch, saved and told. 0, or -1 when the
 * migration moved on meanwhile. */
static int reshard_advance(reshard_t *r, uint64_t id,
                           enum cluster_mig_phase from,
                           enum cluster_mig_phase to, const char *why)
{
    cluster_t *cl = r->cl;
    cluster_migration m;
    uint64_t epoch, sent, bytes;
    char name[96];

    pthread_mutex_lock(&r->op);
    pthread_mutex_lock(&cl->mu);
    if (cl->mig.id != id || cl->mig.phase != from) {
        pthread_mutex_unlock(&cl->mu);
        pthread_mutex_unlock(&r->op);
        return -1;
    }
    cl->mig.phase = to;
    cl->mig.phase_unix_ms = reshard_unix_ms();
    if (to == CLUSTER_MIG_DONE || to == CLUSTER_MIG_FAILED)
        cl->mig.ended_unix_ms = cl->mig.phase_unix_ms;
    if (to == CLUSTER_MIG_FAILED)
        snprintf(cl->mig.error, sizeof cl->mig.error, "%s", why);
    m = cl->mig;
    /* Open, for a remove, or a failed add: the shard leaves "shards" in
     * the same epoch. */
    if ((to == CLUSTER_MIG_DONE && m.kind == CLUSTER_MIG_REMOVE) ||
        (to == CLUSTER_MIG_FAILED && m.kind == CLUSTER_MIG_ADD))
        cl->shards[m.shard].present = 0;
    epoch = ++cl->epoch;
    if (cluster_state_save_locked(cl) < 0)
        log_error("reshard: cannot save %s", cl->state_path);
    pthread_mutex_unlock(&cl->mu);
    if (to == CLUSTER_MIG_FAILED && m.kind == CLUSTER_MIG_ADD) {
        reshard_stop_shard(r, m.shard);
    } else if (to == CLUSTER_MIG_DONE && m.kind == CLUSTER_MIG_REMOVE) {
        /* Not at once: an api or queue that has not polled the topology
         * yet still sends the shard's old keys there, and its stores answer
         * 421 moved with the owner; two polls later nobody does. */
        r->retire = 1;
        r->retire_id = m.shard;
        r->retire_at_ms = sup_now_ms() + 2 * cl->cfg.topology_poll_ms + 1000;
    }
    reshard_name(&m, name, sizeof name);
    reshard_progress(r, &sent, &bytes);
    log_info("reshard: %s: %s -> %s, topology epoch %llu, %.1f s in, %llu "
             "records (%llu bytes) sent: %s", name,
             cluster_mig_phase_name(from), cluster_mig_phase_name(to),
             (unsigned long long)epoch,
             (double)(m.phase_unix_ms - m.started_unix_ms) / 1000.0,
             (unsigned long long)sent, (unsigned long long)bytes, why);
    events_add("migration", "%s: %s -> %s, %llu records sent", name,
               cluster_mig_phase_name(from), cluster_mig_phase_name(to),
               (unsigned long long)sent);
    reshard_notify(r);
    pthread_mutex_unlock(&r->op);
    return 0;
}

/* GET /health of the primaries of the source shards of m into r->srcs. */
static void reshard_probe_sources(reshard_t *r, const cluster_migration *m)
{
    cluster_t *cl = r->cl;
    const char *bases[CLUSTER_MAX_SHARDS] = {0};
    httpc_resp *resps = calloc(CLUSTER_MAX_SHARDS, sizeof *resps);
    reshard_src got[CLUSTER_MAX_SHARDS];
    uint32_t ids[CLUSTER_MAX_SHARDS];
    size_t n = 0;

    if (resps == NULL)
        return;
    if (m->kind == CLUSTER_MIG_REMOVE)
        ids[n++] = m->shard;
    else
        for (size_t i = 0; i < m->nfrom; i++)
            ids[n++] = m->from[i];
    for (size_t i = 0; i < n; i++) {
        int primary;
        const cluster_node *p;
        pthread_mutex_lock(&cl->mu);
        primary = cl->shards[ids[i]].primary;
        pthread_mutex_unlock(&cl->mu);
        p = primary >= 0 ? cluster_store_node(cl, ids[i], primary) : NULL;
        bases[i] = p ? p->url : "http://0.0.0.0:0"; /* fails: no primary */
    }
    probe_health(bases, n, r->probe_timeout_ms, resps);
    for (size_t i = 0; i < n; i++) {
        memset(&got[i], 0, sizeof got[i]);
        got[i].shard = ids[i];
        if (resps[i].status == 200)
            reshard_decide_parse_health(resps[i].body, resps[i].len, &got[i]);
        httpc_resp_free(&resps[i]);
    }
    free(resps);
    pthread_mutex_lock(&r->mu);
    memcpy(r->srcs, got, n * sizeof *got);
    r->nsrcs = n;
    r->srcs_mig = m->id;
    pthread_mutex_unlock(&r->mu);
}

/* GET /health of every replica of the source shards (switch -> open). */
static int reshard_sources_switched(reshard_t *r, const cluster_migration *m)
{
    cluster_t *cl = r->cl;
    const char **bases = calloc(RESHARD_MAX_PROBES, sizeof *bases);
    httpc_resp *resps = calloc(RESHARD_MAX_PROBES, sizeof *resps);
    reshard_src *got = calloc(RESHARD_MAX_PROBES, sizeof *got);
    size_t n = 0, total = cl->nnodes;
    int ok = 0;

    if (bases && resps && got) {
        for (size_t i = 0; i < total && n < RESHARD_MAX_PROBES; i++) {
            const cluster_node *nd = &cl->nodes[i];
            int source = 0;
            if (nd->kind != CLUSTER_STORE || atomic_load(&nd->gone))
                continue;
            if (m->kind == CLUSTER_MIG_REMOVE)
                source = nd->shard == (int)m->shard;
            else
                for (size_t k = 0; k < m->nfrom; k++)
                    source |= nd->shard == (int)m->from[k];
            if (source)
                got[n].shard = (uint32_t)nd->shard, bases[n++] = nd->url;
        }
        probe_health(bases, n, r->probe_timeout_ms, resps);
        for (size_t i = 0; i < n; i++) {
            if (resps[i].status == 200)
                reshard_decide_parse_health(resps[i].body, resps[i].len, &got[i]);
            httpc_resp_free(&resps[i]);
        }
        ok = reshard_decide_may_open(got, n, m->id);
    }
    free(bases);
    free(resps);
    free(got);
    return ok;
}

/* prepare: the new shard's stores up, its primary sees its secondaries. */
static int reshard_prepared(reshard_t *r, const cluster_migration *m)
{
    cluster_t *cl = r->cl;
    size_t total = cl->nnodes, want = 0, alive = 0;
    const cluster_node *primary = NULL;
    httpc_resp resp;
    int pidx;

    pthread_mutex_lock(&cl->mu);
    pidx = cl->shards[m->shard].primary;
    pthread_mutex_unlock(&cl->mu);
    for (size_t i = 0; i < total; i++) {
        const cluster_node *nd = &cl->nodes[i];
        if (nd->kind != CLUSTER_STORE || nd->shard != (int)m->shard ||
            atomic_load(&nd->gone))
            continue;
        if (!atomic_load(&nd->healthy))
            return 0;
        if (nd->replica == pidx)
            primary = nd;
        else
            want++;
    }
    if (primary == NULL)
        return 0;
    if (want == 0)
        return 1;
    probe_health((const char *const[]){primary->url}, 1, r->probe_timeout_ms,
                 &resp);
    if (resp.status == 200) {
        cJSON *root = json_whole_parse(resp.body, resp.len, NULL);
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(root,
                                                               "secondaries"))
            alive += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "alive"));
        cJSON_Delete(root);
    }
    httpc_resp_free(&resp);
    return alive >= want;
}

/* Every RESHARD_LOG_EVERY_MS a line with the figures. */
static void reshard_log_progress(reshard_t *r, const cluster_migration *m,
                                 int64_t now_ms)
{
    char name[96], line[1024];
    size_t off = 0;

    if (now_ms - r->last_log_ms < RESHARD_LOG_EVERY_MS)
        return;
    r->last_log_ms = now_ms;
    reshard_name(m, name, sizeof name);
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nsrcs && off < sizeof line - 1; i++) {
        const reshard_src *s = &r->srcs[i];
        int k = snprintf(line + off, sizeof line - off,
                         "%s shard %u: %sposition %llu/%llu sent %llu "
                         "(%llu bytes)%s",
                         i ? ";" : "", s->shard,
                         !s->answered  ? "no answer, "
                         : !s->has_mig ? "no migration yet, "
                                       : "",
                         (unsigned long long)s->position,
                         (unsigned long long)s->last_seq,
                         (unsigned long long)s->sent,
                         (unsigned long long)s->sent_bytes,
                         s->drained ? " drained" : "");
        if (k < 0)
            break;
        off += (size_t)k;
    }
    line[off < sizeof line ? off : sizeof line - 1] = '\0';
    pthread_mutex_unlock(&r->mu);
    log_info("reshard: %s in phase %s:%s", name,
             cluster_mig_phase_name(m->phase), line);
}

int reshard_tick(reshard_t *r, int64_t now_ms)
{
    cluster_t *cl = r->cl;
    cluster_migration m;
    char why[160];
    int go;

    pthread_mutex_lock(&r->op);
    if (r->retire && now_ms >= r->retire_at_ms) {
        r->retire = 0;
        reshard_stop_shard(r, r->retire_id);
    }
    pthread_mutex_unlock(&r->op);
    pthread_mutex_lock(&cl->mu);
    m = cl->mig;
    pthread_mutex_unlock(&cl->mu);
    if (!cluster_mig_active(&m))
        return r->retire;
    switch (m.phase) {
    case CLUSTER_MIG_PREPARE:
        if (r->prepare_mig != m.id) {
            r->prepare_mig = m.id;
            r->prepare_ms = now_ms;
        }
        if (reshard_prepared(r, &m)) {
            reshard_advance(r, m.id, m.phase, CLUSTER_MIG_COPY,
                            "the new shard's stores are up");
        } else if (now_ms - r->prepare_ms > RESHARD_PREPARE_MS) {
            snprintf(why, sizeof why, "the new shard's stores did not all "
                     "answer /health with their secondaries alive within "
                     "%d ms", RESHARD_PREPARE_MS);
            reshard_advance(r, m.id, m.phase, CLUSTER_MIG_FAILED, why);
        }
        return 1;
    case CLUSTER_MIG_COPY:
    case CLUSTER_MIG_FREEZE:
        reshard_probe_sources(r, &m);
        pthread_mutex_lock(&r->mu);
        if (m.phase == CLUSTER_MIG_COPY && r->copy_start_ms == 0)
            r->copy_start_ms = now_ms;
        go = m.phase == CLUSTER_MIG_COPY
                 ? reshard_decide_may_freeze(r->srcs, r->nsrcs, m.id, RESHARD_MAX_LAG)
                 : reshard_decide_may_switch(r->srcs, r->nsrcs, m.id);
        pthread_mutex_unlock(&r->mu);
        reshard_log_progress(r, &m, now_ms);
        snprintf(why, sizeof why, "every source caught up within %d "
                 "records of its last seq", RESHARD_MAX_LAG);
        if (go && m.phase == CLUSTER_MIG_COPY)
            reshard_advance(r, m.id, m.phase, CLUSTER_MIG_FREEZE, why);
        else if (go)
            reshard_advance(r, m.id, m.phase, CLUSTER_MIG_SWITCH,
                            "every source drained its moving records");
        return 1;
    case CLUSTER_MIG_SWITCH:
        if (reshard_sources_switched(r, &m))
            reshard_advance(r, m.id, m.phase, CLUSTER_MIG_DONE,
                            "every live replica of the sources shows the "
                            "switch: open");
        else
            reshard_log_progress(r, &m, now_ms);
        return 1;
    default:
        return 1;
    }
}

void reshard_metrics(metrics_text *t, reshard_t *r)
{
    cluster_migration m;
    uint64_t sent, bytes;

    pthread_mutex_lock(&r->cl->mu);
    m = r->cl->mig;
    pthread_mutex_unlock(&r->cl->mu);
    reshard_progress(r, &sent, &bytes);
    metrics_text_family(t, "kv_controller_migration_id",
                        "Id of the current or last shard migration (0: none)",
                        "gauge");
    metrics_text_sample(t, "kv_controller_migration_id", NULL, NULL,
                        (int64_t)m.id);
    metrics_text_family(t, "kv_controller_migration_phase",
                        "Phase of the migration: 0 none, 1 prepare, 2 copy, "
                        "3 freeze, 4 switch, 5 done, 6 failed", "gauge");
    metrics_text_sample(t, "kv_controller_migration_phase", NULL, NULL,
                        (int64_t)m.phase);
    metrics_text_family(t, "kv_controller_migration_running",
                        "1 while a shard migration runs", "gauge");
    metrics_text_sample(t, "kv_controller_migration_running", NULL, NULL,
                        cluster_mig_active(&m));
    metrics_text_family(t, "kv_controller_migration_keys_sent",
                        "Records the source primaries sent to their targets",
                        "gauge");
    metrics_text_sample(t, "kv_controller_migration_keys_sent", NULL, NULL,
                        (int64_t)sent);
    metrics_text_family(t, "kv_controller_migration_bytes_sent",
                        "Bytes the source primaries sent to their targets",
                        "gauge");
    metrics_text_sample(t, "kv_controller_migration_bytes_sent", NULL, NULL,
                        (int64_t)bytes);
}

void reshard_progress(reshard_t *r, uint64_t *sent, uint64_t *sent_bytes)
{
    *sent = *sent_bytes = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->nsrcs; i++) {
        *sent += r->srcs[i].sent;
        *sent_bytes += r->srcs[i].sent_bytes;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- the API ---- */

static cJSON *reshard_error(int *status, int code, const char *error,
                            const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static cJSON *reshard_error(int *status, int code, const char *error,
                            const char *fmt, ...)
{
    cJSON *o = cJSON_CreateObject();
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(o, "error", error);
    cJSON_AddStringToObject(o, "message", msg);
    *status = code;
    return o;
}

/* 409 when a migration runs (lock held); NULL when none does. */
static cJSON *reshard_busy(reshard_t *r, int *status)
{
    const cluster_migration *m = &r->cl->mig;
    char name[96];
    cJSON *o;

    if (!cluster_mig_active(m))
        return NULL;
    reshard_name(m, name, sizeof name);
    o = reshard_error(status, 409, "migration_running", "%s is in phase %s",
                      name, cluster_mig_phase_name(m->phase));
    cJSON_AddItemToObject(o, "migration", cluster_state_mig_json(m));
    return o;
}

/* The share of id in the ring of ids[0..n). */
static double reshard_share(const cluster_t *cl, const uint32_t *ids,
                            size_t n, uint32_t id)
{
    ring_t *ring = ring_new_ids(ids, n, (uint32_t)cl->cfg.vnodes);
    double share = ring ? ring_share(ring, id) : 0;

    ring_free(ring);
    return share;
}

/* The body of POST /shards into urls (external) or nothing (supervised).
 * NULL, or the 400 answer. */
static cJSON *reshard_add_body(reshard_t *r, const char *body, size_t len,
                               char urls[][SUP_URL_MAX], size_t *nurls,
                               int *status)
{
    cluster_t *cl = r->cl;
    cJSON *root, *out = NULL;
    const cJSON *p, *secs, *s;
    size_t i = 0;

    *nurls = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' ||
                       body[i] == '\t'))
        i++;
    if (i == len) {
        if (cl->supervise)
            return NULL;
        return reshard_error(status, 400, "bad_request", "with "
                             "controller.supervise=0 POST /shards needs "
                             "{\"primary\":\"http://...\",\"secondaries\":"
                             "[\"http://...\",...]}: the new shard's stores "
                             "are yours to start");
    }
    root = json_whole_parse(body, len, NULL);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return reshard_error(status, 400, "bad_json",
                             "the body of POST /shards is not a JSON object");
    }
    if (cl->supervise) {
        if (cJSON_GetArraySize(root) != 0)
            out = reshard_error(status, 400, "bad_request", "the controller "
                                "supervises this cluster and starts the new "
                                "shard's stores itself: POST /shards takes "
                                "an empty body or {}");
        cJSON_Delete(root);
        return out;
    }
    p = cJSON_GetObjectItemCaseSensitive(root, "primary");
    secs = cJSON_GetObjectItemCaseSensitive(root, "secondaries");
    if (!cJSON_IsString(p) || strncmp(p->valuestring, "http://", 7) != 0 ||
        (secs && !cJSON_IsArray(secs))) {
        cJSON_Delete(root);
        return reshard_error(status, 400, "bad_request", "POST /shards needs "
                             "{\"primary\":\"http://...\",\"secondaries\":"
                             "[\"http://...\",...]}");
    }
    snprintf(urls[(*nurls)++], SUP_URL_MAX, "%s", p->valuestring);
    cJSON_ArrayForEach(s, secs) {
        if (!cJSON_IsString(s) || strncmp(s->valuestring, "http://", 7) != 0 ||
            *nurls >= (size_t)cl->cfg.replicas) {
            out = reshard_error(status, 400, "bad_request", "secondaries: at "
                                "most %lld http:// URLs (cluster.replicas is "
                                "%lld)", (long long)cl->cfg.replicas - 1,
                                (long long)cl->cfg.replicas);
            break;
        }
        snprintf(urls[(*nurls)++], SUP_URL_MAX, "%s", s->valuestring);
    }
    cJSON_Delete(root);
    for (size_t a = 0; out == NULL && a < *nurls; a++) {
        if (strlen(urls[a]) >= SUP_URL_MAX - 1)
            out = reshard_error(status, 400, "bad_request", "URL too long");
        for (size_t b = 0; out == NULL && b < cl->nnodes; b++)
            if (!atomic_load(&cl->nodes[b].gone) &&
                strcmp(cl->nodes[b].url, urls[a]) == 0)
                out = reshard_error(status, 400, "bad_request", "%s is "
                                    "already %s", urls[a], cl->nodes[b].name);
    }
    return out;
}

/* The new shard's stores under the supervisor, started. */
static void reshard_start_stores(reshard_t *r, uint32_t id)
{
    cluster_t *cl = r->cl;
    size_t total = cl->nnodes;

    for (size_t i = 0; i < total; i++) {
        cluster_node *n = &cl->nodes[i];
        int idx;
        if (n->kind != CLUSTER_STORE || n->shard != (int)id ||
            n->sup_index >= 0 || atomic_load(&n->gone))
            continue;
        idx = cluster_cmd_register_node(cl, r->sup, i);
        if (idx < 0 || sup_start_child(r->sup, (size_t)idx) < 0)
            log_error("reshard: cannot start %s", n->name);
        else
            log_info("reshard: %s started on %s", n->name, n->url);
    }
}

cJSON *reshard_add(reshard_t *r, const char *body, size_t len, int *status)
{
    cluster_t *cl = r->cl;
    char urls[CLUSTER_MAX_REPLICAS][SUP_URL_MAX];
    const char *up[CLUSTER_MAX_REPLICAS];
    cluster_migration m, last;
    char err[256], name[96];
    cJSON *out;
    size_t nurls;
    uint32_t id;

    pthread_mutex_lock(&r->op);
    pthread_mutex_lock(&cl->mu);
    out = reshard_busy(r, status); /* first: it says the most */
    id = cl->next_shard_id;
    memset(&m, 0, sizeof m);
    m.nfrom = cluster_ring_ids(cl, m.from);
    pthread_mutex_unlock(&cl->mu);
    if (out == NULL)
        out = reshard_add_body(r, body, len, urls, &nurls, status);
    if (out)
        goto done;
    if (id >= CLUSTER_MAX_SHARDS) {
        out = reshard_error(status, 400, "no_shard_ids", "every shard id "
                            "0..%d was given once and ids are never reused",
                            CLUSTER_MAX_SHARDS - 1);
        goto done;
    }
    for (size_t i = 0; i < nurls; i++)
        up[i] = urls[i];
    memcpy(m.to, m.from, m.nfrom * sizeof *m.from);
    m.nto = m.nfrom;
    m.to[m.nto++] = id;
    m.kind = CLUSTER_MIG_ADD;
    m.shard = id;
    m.phase = CLUSTER_MIG_PREPARE;
    m.share = reshard_share(cl, m.to, m.nto, id);
    m.started_unix_ms = m.phase_unix_ms = reshard_unix_ms();
    /* The migration, the shard, the epoch and the state file in one
     * change under the lock: no topology shows the new, empty shard
     * without the ring that leaves it no keys, and none shows what is not
     * on disk yet. */
    pthread_mutex_lock(&cl->mu);
    last = cl->mig;
    m.id = cl->mig.id + 1;
    cl->mig = m;
    if (cluster_shard_add(cl, id, up, nurls, sup_now_ms(), err,
                          sizeof err) < 0) {
        cl->mig = last;
        pthread_mutex_unlock(&cl->mu);
        out = reshard_error(status, 400, "bad_request", "%s", err);
        goto done;
    }
    cl->epoch++;
    if (cluster_state_save_locked(cl) < 0)
        log_error("reshard: cannot save %s", cl->state_path);
    pthread_mutex_unlock(&cl->mu);
    reshard_name(&m, name, sizeof name);
    log_info("reshard: %s: prepare (predicted to move %.1f %% of the keys); "
             "its stores %s", name, m.share * 100,
             cl->supervise ? "start now" : "are the given URLs");
    if (cl->supervise)
        reshard_start_stores(r, id);
    reshard_notify(r);
    out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "migration", cluster_state_mig_json(&m));
    *status = 202;
done:
    pthread_mutex_unlock(&r->op);
    return out;
}

cJSON *reshard_remove(reshard_t *r, uint32_t id, int *status)
{
    cluster_t *cl = r->cl;
    cluster_migration m;
    char name[96];
    cJSON *out;
    size_t count = 0;
    int present;

    pthread_mutex_lock(&r->op);
    pthread_mutex_lock(&cl->mu);
    present = id < CLUSTER_MAX_SHARDS && cl->shards[id].present;
    for (size_t s = 0; s < cl->nshards; s++)
        count += cl->shards[s].present != 0;
    out = reshard_busy(r, status);
    if (out == NULL && !present)
        out = reshard_error(status, 404, "not_found", "no shard %u in the "
                            "cluster", id);
    if (out == NULL && count <= 1)
        out = reshard_error(status, 400, "last_shard", "shard %u is the "
                            "cluster's last shard: its keys would have "
                            "nowhere to go", id);
    if (out == NULL) {
        memset(&m, 0, sizeof m);
        m.nfrom = cluster_ring_ids(cl, m.from);
        for (size_t i = 0; i < m.nfrom; i++)
            if (m.from[i] != id)
                m.to[m.nto++] = m.from[i];
        m.kind = CLUSTER_MIG_REMOVE;
        m.shard = id;
        m.phase = CLUSTER_MIG_COPY;
        m.share = reshard_share(cl, m.from, m.nfrom, id);
        m.started_unix_ms = m.phase_unix_ms = reshard_unix_ms();
        m.id = cl->mig.id + 1;
        cl->mig = m;
        cl->epoch++;
        if (cluster_state_save_locked(cl) < 0)
            log_error("reshard: cannot save %s", cl->state_path);
    }
    pthread_mutex_unlock(&cl->mu);
    if (out == NULL) {
        reshard_name(&m, name, sizeof name);
        log_info("reshard: %s: copy (predicted to move %.1f %% of the keys "
                 "to the other shards)", name, m.share * 100);
        reshard_notify(r);
        out = cJSON_CreateObject();
        cJSON_AddItemToObject(out, "migration", cluster_state_mig_json(&m));
        *status = 202;
    }
    pthread_mutex_unlock(&r->op);
    return out;
}

/* "2026-12-03T06:10:00Z" */
static void reshard_iso(int64_t unix_ms, char *out, size_t len)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The sources' figures, totals, rates and ETA into o. */
static void reshard_rebalance_progress(reshard_t *r, const cluster_migration *m,
                                       cJSON *o)
{
    cJSON *srcs = cJSON_AddArrayToObject(o, "sources");
    cJSON *tot = cJSON_AddObjectToObject(o, "totals");
    uint64_t scanned = 0, sent = 0, bytes = 0, keys = 0;
    double secs, predicted;
    int64_t now = sup_now_ms();

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; r->srcs_mig == m->id && i < r->nsrcs; i++) {
        const reshard_src *s = &r->srcs[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "shard", s->shard);
        cJSON_AddBoolToObject(j, "answered", s->answered);
        cJSON_AddBoolToObject(j, "seen_migration", s->has_mig && s->id == m->id);
        cJSON_AddNumberToObject(j, "position", (double)s->position);
        cJSON_AddNumberToObject(j, "last_seq", (double)s->last_seq);
        cJSON_AddBoolToObject(j, "caught_up", s->caught_up);
        cJSON_AddNumberToObject(j, "scanned", (double)s->scanned);
        cJSON_AddNumberToObject(j, "sent", (double)s->sent);
        cJSON_AddNumberToObject(j, "sent_bytes", (double)s->sent_bytes);
        cJSON_AddBoolToObject(j, "drained", s->drained);
        cJSON_AddNumberToObject(j, "keys", (double)s->keys);
        cJSON_AddItemToArray(srcs, j);
        scanned += s->scanned;
        sent += s->sent;
        bytes += s->sent_bytes;
        keys += s->keys;
    }
    secs = r->srcs_mig == m->id && r->copy_start_ms
               ? (double)(now - r->copy_start_ms) / 1000.0 : 0;
    pthread_mutex_unlock(&r->mu);
    if (m->ended_unix_ms && m->started_unix_ms)
        secs = (double)(m->ended_unix_ms - m->started_unix_ms) / 1000.0;
    cJSON_AddNumberToObject(tot, "scanned", (double)scanned);
    cJSON_AddNumberToObject(tot, "sent", (double)sent);
    cJSON_AddNumberToObject(tot, "sent_bytes", (double)bytes);
    cJSON_AddNumberToObject(tot, "keys", (double)keys);
    /* add: the new shard's share of every source's keys; remove: all of
     * the removed shard's. */
    predicted = m->kind == CLUSTER_MIG_REMOVE ? (double)keys
                                              : (double)keys * m->share;
    cJSON_AddNumberToObject(o, "predicted_keys", (double)(uint64_t)predicted);
    cJSON_AddNumberToObject(o, "keys_per_s", secs > 0 ? (double)sent / secs : 0);
    cJSON_AddNumberToObject(o, "mb_per_s",
                            secs > 0 ? (double)bytes / secs / 1e6 : 0);
    if (cluster_mig_active(m) && secs > 0 && sent > 0 &&
        predicted > (double)sent)
        cJSON_AddNumberToObject(o, "eta_s",
                                (predicted - (double)sent) / ((double)sent / secs));
    else
        cJSON_AddNullToObject(o, "eta_s");
}

cJSON *reshard_rebalance(reshard_t *r)
{
    cluster_t *cl = r->cl;
    cluster_migration m;
    cJSON *o = cJSON_CreateObject(), *a;
    char iso[32];

    pthread_mutex_lock(&cl->mu);
    m = cl->mig;
    pthread_mutex_unlock(&cl->mu);
    cJSON_AddNumberToObject(o, "id", (double)m.id);
    cJSON_AddStringToObject(o, "phase", cluster_mig_phase_name(m.phase));
    if (m.id == 0)
        return o; /* never one */
    cJSON_AddStringToObject(o, "kind", m.kind == CLUSTER_MIG_REMOVE ? "remove"
                                                                    : "add");
    cJSON_AddNumberToObject(o, "shard", m.shard);
    cJSON_AddBoolToObject(o, "running", cluster_mig_active(&m));
    a = cJSON_AddArrayToObject(o, "from");
    for (size_t i = 0; i < m.nfrom; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(m.from[i]));
    a = cJSON_AddArrayToObject(o, "to");
    for (size_t i = 0; i < m.nto; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(m.to[i]));
    reshard_iso(m.started_unix_ms, iso, sizeof iso);
    cJSON_AddStringToObject(o, "started", iso);
    cJSON_AddNumberToObject(o, "started_unix_ms", (double)m.started_unix_ms);
    reshard_iso(m.phase_unix_ms, iso, sizeof iso);
    cJSON_AddStringToObject(o, "phase_since", iso);
    if (m.ended_unix_ms) {
        reshard_iso(m.ended_unix_ms, iso, sizeof iso);
        cJSON_AddStringToObject(o, "ended", iso);
        cJSON_AddNumberToObject(o, "ended_unix_ms", (double)m.ended_unix_ms);
    } else {
        cJSON_AddNullToObject(o, "ended");
    }
    cJSON_AddNumberToObject(o, "elapsed_s",
                            (double)((m.ended_unix_ms ? m.ended_unix_ms
                                                      : reshard_unix_ms()) -
                                     m.started_unix_ms) / 1000.0);
    cJSON_AddNumberToObject(o, "share", m.share);
    if (m.error[0])
        cJSON_AddStringToObject(o, "error", m.error);
    reshard_rebalance_progress(r, &m, o);
    return o;
}
