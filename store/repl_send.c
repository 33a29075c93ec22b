#include "repl_send.h"

#include "clock.h"
#include "httpc.h"
#include "json_whole.h"
#include "kvhdr.h"
#include "log.h"
#include "metrics.h"
#include "wire.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPL_SEND_MAX_PEERS 32

METRIC_COUNTER(rm_batches, "kv_store_repl_batches_total",
               "replication batches the secondaries applied");
METRIC_COUNTER(rm_ops, "kv_store_repl_ops_total",
               "ops streamed to secondaries");
METRIC_COUNTER(rm_errors, "kv_store_repl_errors_total",
               "replication POSTs that failed");
static metrics_hist rm_lat = {.name = "kv_store_repl_post_seconds",
                          .help = "round trip of a replication POST"};
static pthread_once_t rm_once = PTHREAD_ONCE_INIT;

static void repl_send_metrics_register(void)
{
    metrics_register(&rm_batches);
    metrics_register(&rm_ops);
    metrics_register(&rm_errors);
    metrics_register_hist(&rm_lat);
}

typedef struct repl_send_peer {
    struct repl_send *r;
    char url[256];
    pthread_t thr;
    int started;
    int stop;
    /* under r->mu */
    uint64_t acked;      /* the secondary's applied seq, when known */
    int known;
    int ok;              /* the last answer was a 200 */
    uint64_t last_ok_us, last_try_us, next_try_us;
    unsigned fails;
    uint64_t batch_at_us;   /* when the pending data was first seen, 0: none */
    uint64_t batch_delay_us;/* repl_delay_ms or a random share of it */
    unsigned seed;          /* rand_r state for store.repl_delay_random */
    uint64_t batches, ops, errors;
    int ahead_logged;
    char err[200];
} repl_send_peer;

struct repl_send {
    repl_send_opts o;
    char auth[KVHDR_AUTH_MAX];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    repl_send_peer *peers[REPL_SEND_MAX_PEERS]; /* replica-id order */
    size_t npeers;
    /* Stopped senders not joined yet: one may be inside a POST to a hung
     * secondary, and a topology change must not wait for it. */
    repl_send_peer *dead[4 * REPL_SEND_MAX_PEERS];
    size_t ndead;
    _Atomic size_t active;
    uint64_t alive_us;
};

/* Waits on r->cv (r->mu held) until the monotonic time `until` (us). */
static void repl_send_wait_until(repl_send_t *r, uint64_t until)
{
    uint64_t now = clock_mono_us();

    if (until > now)
        clock_cond_wait_us(&r->cv, &r->mu, until - now);
}

static int repl_send_peer_alive(const repl_send_t *r, const repl_send_peer *p,
                                uint64_t now)
{
    return p->ok && now - p->last_ok_us <= r->alive_us;
}

/* ---- one exchange ------------------------------------------------------ */

typedef struct repl_send_outcome {
    int ok;               /* a 200 with applied_seq */
    uint64_t applied;
    uint64_t remote_epoch; /* from a 409 stale_epoch */
    int stale;
    size_t nops;
    char err[200];
} repl_send_outcome;

static uint64_t repl_send_json_u64(const cJSON *j, const char *name, int *found)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
        if (found)
            *found = 0;
        return 0;
    }
    if (found)
        *found = 1;
    return (uint64_t)v->valuedouble;
}

static void repl_send_exchange(repl_send_t *r, repl_send_peer *p, int data,
                               uint64_t since, wire_buf *buf,
                               repl_send_outcome *out)
{
    char url[300], h_epoch[KVHDR_EPOCH_MAX], h_since[48], h_upto[48], h_gc[48];
    const char *hdrs[8];
    int nh = 0;
    uint64_t next = since, t0;
    int more = 0;
    httpc_req req;
    httpc_resp resp;

    memset(out, 0, sizeof *out);
    wire_buf_reset(buf);
    if (data) {
        if (sdb_changes_since(r->o.db, since, r->o.batch_max, REPL_SEND_BATCH_BYTES,
                              buf, &next, &more) != 0) {
            snprintf(out->err, sizeof out->err, "cannot read local changes");
            return;
        }
        {
            size_t off = 0;
            wire_op op;
            while (wire_next_op(buf->data, buf->len, &off, &op) == 1)
                out->nops++;
        }
    }
    snprintf(url, sizeof url, "%s/internal/replicate", p->url);
    hdrs[nh++] = "Content-Type: application/octet-stream";
    kvhdr_epoch(h_epoch, sizeof h_epoch, sdb_get_epoch(r->o.db));
    hdrs[nh++] = h_epoch;
    snprintf(h_gc, sizeof h_gc, "X-KV-Gc-Seq: %" PRIu64, sdb_gc_seq(r->o.db));
    hdrs[nh++] = h_gc;
    if (data) {
        snprintf(h_since, sizeof h_since, "X-KV-Since: %" PRIu64, since);
        snprintf(h_upto, sizeof h_upto, "X-KV-Upto: %" PRIu64, next);
        hdrs[nh++] = h_since;
        hdrs[nh++] = h_upto;
    }
    if (r->auth[0])
        hdrs[nh++] = r->auth;
    hdrs[nh] = NULL;
    memset(&req, 0, sizeof req);
    req.method = "POST";
    req.url = url;
    req.body = buf->data ? (const void *)buf->data : "";
    req.body_len = buf->len;
    req.headers = hdrs;
    req.timeout_ms = r->o.timeout_ms;
    t0 = clock_mono_us();
    if (httpc_do(&req, &resp) != 0) {
        snprintf(out->err, sizeof out->err, "%.190s", resp.error);
        httpc_resp_free(&resp);
        return;
    }
    metrics_hist_record(&rm_lat, clock_mono_us() - t0);
    {
        cJSON *j = json_whole_parse(resp.body, resp.len, NULL);
        int found = 0;
        if (resp.status == 200) {
            out->applied = repl_send_json_u64(j, "applied_seq", &found);
            out->ok = found;
            if (!found)
                snprintf(out->err, sizeof out->err,
                         "200 without applied_seq: %.120s", resp.body);
        } else {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
            if (resp.status == 409 && cJSON_IsString(e) &&
                strcmp(e->valuestring, "stale_epoch") == 0) {
                out->stale = 1;
                out->remote_epoch = repl_send_json_u64(j, "epoch", NULL);
            }
            snprintf(out->err, sizeof out->err, "HTTP %ld: %.150s",
                     resp.status, resp.body);
        }
        cJSON_Delete(j);
    }
    httpc_resp_free(&resp);
}

/* ---- the sender thread ------------------------------------------------- */

/* Is p in the sync set: the first W live secondaries in topology order?
 * mu held. */
static int repl_send_in_sync_set(const repl_send_t *r,
                                 const repl_send_peer *p, uint64_t now)
{
    unsigned before = 0;

    if (r->o.write_quorum == 0)
        return 0;
    for (size_t i = 0; i < r->npeers; i++) {
        const repl_send_peer *q = r->peers[i];
        if (q == p)
            return repl_send_peer_alive(r, p, now) && before < r->o.write_quorum;
        before += repl_send_peer_alive(r, q, now) != 0;
    }
    return 0;
}

/* How long a batch waits before it goes out (us), decided when the data
 * is first seen pending (batch_delay_us) or, with the lab delays, from the
 * peer's place now: a secondary that joins the sync set while its batch
 * waits gets the sync delay from then on. mu held. */
static uint64_t repl_send_batch_delay(const repl_send_t *r,
                                      const repl_send_peer *p, uint64_t now)
{
    if (r->o.sync_delay_ms > 0 || r->o.async_delay_ms > 0)
        return (uint64_t)(repl_send_in_sync_set(r, p, now) ? r->o.sync_delay_ms
                                                      : r->o.async_delay_ms) *
               1000u;
    return p->batch_delay_us;
}

static uint64_t repl_send_pick_delay(const repl_send_t *r, repl_send_peer *p)
{
    uint64_t max = r->o.delay_ms > 0 ? (uint64_t)r->o.delay_ms * 1000u : 0;

    if (max == 0 || !r->o.delay_random)
        return max;
    /* uniform(0, max): two rand_r draws cover 2^31 x 2^31 >> any delay. */
    {
        uint64_t a = (uint64_t)rand_r(&p->seed), b = (uint64_t)rand_r(&p->seed);
        return ((a << 31) ^ b) % (max + 1);
    }
}

static void *repl_send_peer_main(void *arg)
{
    repl_send_peer *p = arg;
    repl_send_t *r = p->r;
    wire_buf buf = {0};

    pthread_setname_np(pthread_self(), "repl-send"); /* top -H, perf */
    pthread_mutex_lock(&r->mu);
    while (!p->stop) {
        uint64_t now = clock_mono_us();
        uint64_t last = sdb_last_seq(r->o.db);
        int pending = p->known && last > p->acked;
        uint64_t due = 0;
        int data, hb;
        uint64_t since;
        repl_send_outcome out;

        if (now < p->next_try_us) {
            repl_send_wait_until(r, p->next_try_us);
            continue;
        }
        /* The slow link of the lab and of the quorum study: pending data
         * goes out once its delay has passed; heartbeats keep going
         * meanwhile, so the secondary stays known to be alive. */
        if (!pending) {
            p->batch_at_us = 0;
        } else {
            if (p->batch_at_us == 0) {
                p->batch_at_us = now;
                p->batch_delay_us = repl_send_pick_delay(r, p);
            }
            due = p->batch_at_us + repl_send_batch_delay(r, p, now);
        }
        data = pending && now >= due;
        hb = !p->known || now >= p->last_try_us + REPL_SEND_HEARTBEAT_MS * 1000u;
        if (!data && !hb) {
            uint64_t until = p->last_try_us + REPL_SEND_HEARTBEAT_MS * 1000u;
            uint64_t idle = now + REPL_SEND_IDLE_MS * 1000u;
            if (idle < until)
                until = idle;
            if (pending && due < until)
                until = due;
            repl_send_wait_until(r, until);
            continue;
        }
        since = p->acked;
        p->last_try_us = clock_mono_us();
        pthread_mutex_unlock(&r->mu);

        repl_send_exchange(r, p, data, since, &buf, &out);
        if (out.ok && out.applied > sdb_last_seq(r->o.db)) {
            /* Ahead of us: it holds another history (a failover it has not
             * followed yet). Its acks mean nothing here until it resyncs. */
            out.ok = 0;
            snprintf(out.err, sizeof out.err,
                     "secondary is at seq %" PRIu64 ", past ours (%" PRIu64
                     "): waiting for it to resync", out.applied,
                     sdb_last_seq(r->o.db));
        }

        pthread_mutex_lock(&r->mu);
        now = clock_mono_us();
        if (out.ok) {
            if (p->fails)
                log_info("replication to %s: back (applied seq %" PRIu64
                         ") after %u failures", p->url, out.applied, p->fails);
            p->acked = out.applied;
            if (data)
                p->batch_at_us = 0; /* the next batch waits afresh */
            p->known = 1;
            p->ok = 1;
            p->last_ok_us = now;
            p->fails = 0;
            p->next_try_us = 0;
            p->ahead_logged = 0;
            if (data && out.applied > since) {
                p->batches++;
                p->ops += out.nops;
                metrics_add(&rm_batches, 1);
                metrics_add(&rm_ops, (int64_t)out.nops);
            }
        } else {
            unsigned shift;
            uint64_t back;
            p->ok = 0;
            p->known = 0;
            p->errors++;
            metrics_add(&rm_errors, 1);
            if (p->fails == 0 || p->fails % 20 == 0)
                log_warn("replication to %s failed (%u in a row): %s",
                         p->url, p->fails + 1, out.err);
            p->fails++;
            shift = p->fails - 1 < 8 ? p->fails - 1 : 8;
            back = (uint64_t)REPL_SEND_BACKOFF_MIN_MS << shift;
            if (back > REPL_SEND_BACKOFF_MAX_MS)
                back = REPL_SEND_BACKOFF_MAX_MS;
            p->next_try_us = now + back * 1000u;
            snprintf(p->err, sizeof p->err, "%s", out.err);
        }
        pthread_mutex_unlock(&r->mu);
        if (out.stale && out.remote_epoch > sdb_get_epoch(r->o.db) &&
            r->o.on_stale_epoch)
            r->o.on_stale_epoch(r->o.arg);
        repl_send_update_quorum(r);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    wire_buf_free(&buf);
    httpc_thread_done();
    return NULL;
}

/* ---- the set of senders ------------------------------------------------ */

static void repl_send_metrics(metrics_text *t, void *ctx);

repl_send_t *repl_send_new(const repl_send_opts *o)
{
    repl_send_t *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    pthread_once(&rm_once, repl_send_metrics_register);
    r->o = *o;
    r->o.token = NULL;
    if (r->o.batch_max == 0)
        r->o.batch_max = 512;
    if (r->o.timeout_ms <= 0)
        r->o.timeout_ms = 2000;
    kvhdr_auth(r->auth, sizeof r->auth, o->token);
    r->alive_us = ((uint64_t)REPL_SEND_ALIVE_MS +
                   (uint64_t)(o->delay_ms > 0 ? o->delay_ms : 0)) * 1000u;
    pthread_mutex_init(&r->mu, NULL);
    clock_cond_init(&r->cv);
    if (metrics_register_fn(repl_send_metrics, r) != 0)
        log_warn("repl_send: the metrics registry is full: no per-secondary "
                 "lines in /metrics");
    return r;
}

/* Frees the stopped senders whose threads have finished. mu held (a
 * finished thread needs nothing of ours, so this never waits). */
static void repl_send_reap(repl_send_t *r)
{
    size_t k = 0;

    for (size_t i = 0; i < r->ndead; i++) {
        repl_send_peer *p = r->dead[i];
        if (!p->started || pthread_tryjoin_np(p->thr, NULL) == 0)
            free(p);
        else
            r->dead[k++] = p;
    }
    r->ndead = k;
}

int repl_send_set_peers(repl_send_t *r, char *const *urls, size_t n)
{
    repl_send_peer *next[REPL_SEND_MAX_PEERS], *over[REPL_SEND_MAX_PEERS];
    size_t nn = 0, ng = 0, nover = 0;
    int rc = 0;

    if (n > REPL_SEND_MAX_PEERS)
        n = REPL_SEND_MAX_PEERS;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        repl_send_peer *p = NULL;
        for (size_t k = 0; k < r->npeers; k++)
            if (r->peers[k] && strcmp(r->peers[k]->url, urls[i]) == 0) {
                p = r->peers[k];
                r->peers[k] = NULL;
                break;
            }
        if (p == NULL) {
            p = calloc(1, sizeof *p);
            if (p == NULL) {
                rc = -1;
                continue;
            }
            p->r = r;
            snprintf(p->url, sizeof p->url, "%s", urls[i]);
            p->seed = (unsigned)clock_mono_us() ^ (unsigned)(i * 2654435761u);
            if (pthread_create(&p->thr, NULL, repl_send_peer_main, p) != 0) {
                log_error("replication: cannot start a sender for %s",
                          p->url);
                free(p);
                rc = -1;
                continue;
            }
            p->started = 1;
            log_info("replication: streaming to %s", p->url);
        }
        next[nn++] = p;
    }
    for (size_t k = 0; k < r->npeers; k++)
        if (r->peers[k]) {
            r->peers[k]->stop = 1;
            ng++;
            log_info("replication: no longer streaming to %s",
                     r->peers[k]->url);
            if (r->ndead < sizeof r->dead / sizeof r->dead[0])
                r->dead[r->ndead++] = r->peers[k];
            else
                over[nover++] = r->peers[k]; /* joined below, unlocked */
        }
    memcpy(r->peers, next, nn * sizeof next[0]);
    r->npeers = nn;
    atomic_store(&r->active, nn);
    pthread_cond_broadcast(&r->cv);
    repl_send_reap(r);
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < nover; i++) {
        if (over[i]->started)
            pthread_join(over[i]->thr, NULL);
        free(over[i]);
    }
    if (ng)
        repl_send_update_quorum(r);
    return rc;
}

void repl_send_free(repl_send_t *r)
{
    if (r == NULL)
        return;
    metrics_unregister_fn(repl_send_metrics, r);
    repl_send_set_peers(r, NULL, 0);
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    /* A sender may need the lock to finish: join without holding it. */
    for (size_t i = 0; i < r->ndead; i++)
        if (r->dead[i]->started)
            pthread_join(r->dead[i]->thr, NULL);
    for (size_t i = 0; i < r->ndead; i++)
        free(r->dead[i]);
    r->ndead = 0;
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void repl_send_notify(repl_send_t *r)
{
    if (atomic_load(&r->active) == 0)
        return;
    pthread_mutex_lock(&r->mu);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

size_t repl_send_alive(repl_send_t *r, size_t *total)
{
    uint64_t now = clock_mono_us();
    size_t a = 0;

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->npeers; i++)
        a += repl_send_peer_alive(r, r->peers[i], now) != 0;
    if (total)
        *total = r->npeers;
    pthread_mutex_unlock(&r->mu);
    return a;
}

uint64_t repl_send_min_acked(repl_send_t *r)
{
    uint64_t m = UINT64_MAX;

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->npeers; i++) {
        uint64_t a = r->peers[i]->known ? r->peers[i]->acked : 0;
        if (a < m)
            m = a;
    }
    pthread_mutex_unlock(&r->mu);
    return m == UINT64_MAX ? sdb_last_seq(r->o.db) : m;
}

void repl_send_update_quorum(repl_send_t *r)
{
    wquorum_peer v[REPL_SEND_MAX_PEERS];
    uint64_t now = clock_mono_us(), q;
    size_t n;

    if (r->o.wqm == NULL || r->o.write_quorum == 0)
        return;
    pthread_mutex_lock(&r->mu);
    n = r->npeers;
    for (size_t i = 0; i < n; i++) {
        const repl_send_peer *p = r->peers[i];
        v[i].acked = p->known ? p->acked : 0;
        v[i].alive = repl_send_peer_alive(r, p, now);
    }
    pthread_mutex_unlock(&r->mu);
    q = wquorum_seq(v, n, r->o.write_quorum, r->o.policy);
    wquorum_release(r->o.wqm, q);
}

void repl_send_stats_json(repl_send_t *r, cJSON *arr)
{
    uint64_t now = clock_mono_us(), last = sdb_last_seq(r->o.db);
    char num[24];

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->npeers; i++) {
        const repl_send_peer *p = r->peers[i];
        cJSON *o = cJSON_CreateObject();
        uint64_t acked = p->known ? p->acked : 0;
        cJSON_AddStringToObject(o, "url", p->url);
        snprintf(num, sizeof num, "%" PRIu64, acked);
        cJSON_AddRawToObject(o, "acked_seq", num);
        snprintf(num, sizeof num, "%" PRIu64, last > acked ? last - acked : 0);
        cJSON_AddRawToObject(o, "lag", num);
        cJSON_AddBoolToObject(o, "alive", repl_send_peer_alive(r, p, now));
        cJSON_AddBoolToObject(o, "known", p->known);
        if (p->last_ok_us)
            cJSON_AddNumberToObject(o, "last_ok_ms_ago",
                                    (double)((now - p->last_ok_us) / 1000u));
        else
            cJSON_AddNullToObject(o, "last_ok_ms_ago");
        cJSON_AddNumberToObject(o, "batches", (double)p->batches);
        cJSON_AddNumberToObject(o, "ops", (double)p->ops);
        cJSON_AddNumberToObject(o, "errors", (double)p->errors);
        cJSON_AddNumberToObject(o, "failures_in_a_row", p->fails);
        if (p->err[0] && !p->ok)
            cJSON_AddStringToObject(o, "last_error", p->err);
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&r->mu);
}

/* Per secondary, labelled lines (lib/metrics render callback): what
 * kv_store_repl_acked_seq{secondary="<url>"}, _lag and _alive say. */
static void repl_send_metrics(metrics_text *t, void *ctx)
{
    static const char *const name[3] = {"kv_store_repl_acked_seq",
                                        "kv_store_repl_lag",
                                        "kv_store_repl_alive"};
    static const char *const help[3] = {
        "seq a secondary has acked", "seqs a secondary is behind the primary",
        "1 when a secondary answered lately"};
    repl_send_t *r = ctx;
    uint64_t now = clock_mono_us(), last = sdb_last_seq(r->o.db);

    pthread_mutex_lock(&r->mu);
    for (int m = 0; m < 3 && r->npeers; m++) {
        metrics_text_family(t, name[m], help[m], "gauge");
        for (size_t i = 0; i < r->npeers; i++) {
            const repl_send_peer *p = r->peers[i];
            uint64_t acked = p->known ? p->acked : 0;
            uint64_t v = m == 0 ? acked
                         : m == 1 ? (last > acked ? last - acked : 0)
                                  : (uint64_t)repl_send_peer_alive(r, p, now);
            metrics_text_sample(t, name[m], "secondary", p->url, (int64_t)v);
        }
    }
    pthread_mutex_unlock(&r->mu);
}
