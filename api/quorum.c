#include "quorum.h"

#include "log.h"
#include "metrics.h"
#include "repair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

METRIC_COUNTER(m_q_reads, "kv_api_quorum_reads_total",
               "reads served from R >= 1 secondaries");
METRIC_COUNTER(m_q_unavail, "kv_api_quorum_unavailable_total",
               "reads answered 503: fewer than R secondaries answered");
METRIC_COUNTER(m_q_fallback_rounds, "kv_api_quorum_fallback_rounds_total",
               "extra rounds of a quorum read after a secondary did not answer");
METRIC_COUNTER(m_q_stale_seen, "kv_api_quorum_stale_answers_total",
               "secondaries whose answer to a quorum read was older than the newest");
METRIC_COUNTER(m_primary_fallback, "kv_api_primary_fallback_reads_total",
               "R = 0 reads served by a secondary because the primary did not answer");
METRIC_COUNTER(m_epoch_retries, "kv_api_read_epoch_retries_total",
               "reads asked again at a store's newer epoch after a 409");

void quorum_metrics_register(void)
{
    metrics_register(&m_q_reads);
    metrics_register(&m_q_unavail);
    metrics_register(&m_q_fallback_rounds);
    metrics_register(&m_q_stale_seen);
    metrics_register(&m_primary_fallback);
    metrics_register(&m_epoch_retries);
}

/* ---- replicas that just failed to answer ---- */

/* A replica that did not answer (transport error or timeout) is "suspect"
 * for QUORUM_SUSPECT_MS: reads ask it last, after the others, so that a
 * paused or dead secondary does not cost every read a timeout. A table of
 * URL hashes, lock-free; a collision only reorders a read. */
#define QUORUM_SUSPECT_SLOTS 1024
#define QUORUM_SUSPECT_MS 1000

static _Atomic uint64_t quorum_suspect_hash[QUORUM_SUSPECT_SLOTS];
static _Atomic int64_t quorum_suspect_until[QUORUM_SUSPECT_SLOTS];

static int64_t quorum_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t quorum_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

void quorum_mark(const char *url, int answered)
{
    uint64_t h = quorum_hash(url);
    size_t i = (size_t)(h % QUORUM_SUSPECT_SLOTS);

    if (answered) {
        if (atomic_load_explicit(&quorum_suspect_hash[i], memory_order_relaxed) == h)
            atomic_store(&quorum_suspect_until[i], 0);
        return;
    }
    atomic_store(&quorum_suspect_hash[i], h);
    atomic_store(&quorum_suspect_until[i], quorum_now_ms() + QUORUM_SUSPECT_MS);
}

int quorum_suspect(const char *url)
{
    uint64_t h = quorum_hash(url);
    size_t i = (size_t)(h % QUORUM_SUSPECT_SLOTS);

    if (atomic_load_explicit(&quorum_suspect_hash[i], memory_order_relaxed) != h)
        return 0;
    return atomic_load(&quorum_suspect_until[i]) > quorum_now_ms();
}

/* The topology moved on (a store at a newer epoch) or may be moving (the
 * primary does not answer): have the watcher poll now rather than at its
 * next tick; at most every QUORUM_POKE_MS, however many reads notice. */
#define QUORUM_POKE_MS 100

static _Atomic int64_t quorum_last_poke;

void quorum_poke(api_app *a)
{
    int64_t now = quorum_now_ms(), last = atomic_load(&quorum_last_poke);

    if (now - last >= QUORUM_POKE_MS &&
        atomic_compare_exchange_strong(&quorum_last_poke, &last, now))
        topo_watch_poke(a->topo);
}

static __thread uint64_t quorum_rng;

static uint64_t quorum_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t *quorum_thread_rng(void)
{
    if (quorum_rng == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        quorum_rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
                     (uint64_t)(uintptr_t)&quorum_rng;
        if (quorum_rng == 0)
            quorum_rng = 0x9E3779B97F4A7C15ULL;
    }
    return &quorum_rng;
}

void quorum_order(size_t n, int ordered, uint64_t *rng, size_t *order)
{
    for (size_t i = 0; i < n; i++)
        order[i] = ordered ? n - 1 - i : i;
    if (ordered)
        return;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(quorum_rand(rng) % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

int quorum_classify(const httpc_resp *resp, uint64_t *version, int *tomb)
{
    char buf[32];

    *version = 0;
    *tomb = 0;
    if (resp->status != 200 && resp->status != 404)
        return 0;
    if (httpc_resp_header(resp, "X-KV-Version", buf, sizeof buf))
        *version = strtoull(buf, NULL, 10);
    *tomb = resp->status == 404 && *version > 0;
    return 1;
}

uint64_t quorum_stale_epoch(const httpc_resp *resp)
{
    char buf[32];
    uint64_t e = 0;

    if (resp->status != 409 || resp->body == NULL ||
        strstr(resp->body, "stale_epoch") == NULL)
        return 0;
    if (httpc_resp_header(resp, "X-KV-Epoch", buf, sizeof buf))
        return strtoull(buf, NULL, 10);
    cJSON *j = cJSON_ParseWithLength(resp->body, resp->len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    if (cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 9.0e15)
        e = (uint64_t)v->valuedouble;
    cJSON_Delete(j);
    return e;
}

/* The headers of a read to a store: token and epoch. */
static const char *const *quorum_hdrs(const api_app *a, const char **out,
                                      char *eh, size_t ehlen, uint64_t epoch)
{
    size_t n = 0;
    if (a->auth[0])
        out[n++] = a->auth;
    snprintf(eh, ehlen, "X-KV-Epoch: %llu", (unsigned long long)epoch);
    out[n++] = eh;
    out[n] = NULL;
    return out;
}

/* GET url into *resp at epoch; a 409 stale_epoch is asked once more at the
 * store's epoch. */
static void quorum_get(api_call *c, const char *url, httpc_resp *resp,
                       uint64_t epoch)
{
    const char *hdrs[3];
    char eh[48];
    httpc_req req = {.method = "GET", .url = url,
                     .timeout_ms = c->app->cfg.upstream_timeout_ms};
    uint64_t e;

    req.headers = quorum_hdrs(c->app, hdrs, eh, sizeof eh, epoch);
    httpc_do(&req, resp);
    e = quorum_stale_epoch(resp);
    if (e > epoch) {
        metric_add(&m_epoch_retries, 1);
        quorum_poke(c->app);
        httpc_resp_free(resp);
        req.headers = quorum_hdrs(c->app, hdrs, eh, sizeof eh, e);
        httpc_do(&req, resp);
    }
}

static char *quorum_url(const char *base, const char *raw_key, size_t raw_len)
{
    char *u = NULL;
    if (asprintf(&u, "%s/internal/kv/%.*s", base, (int)raw_len, raw_key) < 0)
        return NULL;
    return u;
}

void quorum_read_primary(api_call *c, const topo_shard *sh,
                         const char *raw_key, size_t raw_len)
{
    httpc_resp resp;
    int have = 0;

    memset(&resp, 0, sizeof resp);
    if (sh->primary) {
        if (api_call_url(c, "%s/internal/kv/%.*s", sh->primary, (int)raw_len,
                         raw_key)) {
            api_call_free(c);
            return;
        }
        /* A primary that just timed out is asked last (after the
         * secondaries), not first: it may be paused or gone. */
        if (sh->nsecondaries == 0 || !quorum_suspect(sh->primary)) {
            quorum_get(c, c->url, &resp, c->epoch);
            if (resp.status != 0 && resp.status < 500) {
                if (resp.status == 200 || resp.status == 404)
                    quorum_mark(sh->primary, 1);
                api_upstream_finish(c, &resp);
                httpc_resp_free(&resp);
                return;
            }
            if (resp.status == 0)
                quorum_mark(sh->primary, 0);
            quorum_poke(c->app);
            have = 1;
            log_debug("read %s: primary failed (%s): trying secondaries",
                      c->url, resp.status ? "5xx" : resp.error);
        }
    }
    for (size_t i = 0; i < sh->nsecondaries; i++) {
        httpc_resp sr;
        char *url = quorum_url(sh->secondaries[i], raw_key, raw_len);
        if (url == NULL)
            break;
        memset(&sr, 0, sizeof sr);
        quorum_get(c, url, &sr, c->epoch);
        free(url);
        if (sr.status == 0)
            quorum_mark(sh->secondaries[i], 0);
        if (sr.status == 200 || sr.status == 404) {
            metric_add(&m_primary_fallback, 1);
            snprintf(c->served_by, sizeof c->served_by,
                     "%s; fallback=primary_unreachable", sh->secondaries[i]);
            api_upstream_finish(c, &sr);
            httpc_resp_free(&sr);
            httpc_resp_free(&resp);
            return;
        }
        httpc_resp_free(&sr);
    }
    if (!have && sh->primary) {
        /* It was skipped as suspect and no secondary answered: ask it. */
        quorum_get(c, c->url, &resp, c->epoch);
        quorum_mark(sh->primary, resp.status == 200 || resp.status == 404);
        have = 1;
    }
    if (have) {
        api_upstream_finish(c, &resp); /* the primary's answer as it is */
        httpc_resp_free(&resp);
        return;
    }
    static const char *const h[] = {"Retry-After: 1", NULL};
    httpd_error_h(c->r, 503, h, "no_primary",
                  "shard %u has no primary right now (failover under way) "
                  "and no secondary answered",
                  sh->id);
    api_call_free(c);
}

/* Keep the order, but move the secondaries that just failed to the end. */
static void quorum_suspects_last(const topo_shard *sh, size_t *order, size_t n)
{
    size_t tmp[TOPO_MAX_SECONDARIES], k = 0;
    int any = 0;

    for (size_t i = 0; i < n; i++)
        if (quorum_suspect(sh->secondaries[order[i]])) {
            any = 1;
            break;
        }
    if (!any)
        return;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if (quorum_suspect(sh->secondaries[order[i]]) == pass)
                tmp[k++] = order[i];
    memcpy(order, tmp, n * sizeof *order);
}

typedef struct quorum_rep {
    size_t idx;            /* which secondary */
    char *url;
    httpc_resp resp;
    int answered;
    uint64_t version;
    int tomb;
} quorum_rep;

/* Ask reps[0..k) in parallel (one request: on this thread's keep-alive
 * handle); 409 stale_epoch answers are asked again at the store's epoch. */
static void quorum_fetch(api_call *c, quorum_rep *reps, size_t k)
{
    httpc_req reqs[TOPO_MAX_SECONDARIES];
    httpc_resp resps[TOPO_MAX_SECONDARIES];
    const char *hdrs[3];
    char eh[48];
    size_t n = 0, map[TOPO_MAX_SECONDARIES];

    if (k == 1) {
        if (reps[0].url)
            quorum_get(c, reps[0].url, &reps[0].resp, c->epoch);
        return;
    }
    quorum_hdrs(c->app, hdrs, eh, sizeof eh, c->epoch);
    memset(reqs, 0, sizeof reqs);
    memset(resps, 0, sizeof resps);
    for (size_t i = 0; i < k; i++) {
        if (reps[i].url == NULL)
            continue;
        reqs[n].method = "GET";
        reqs[n].url = reps[i].url;
        reqs[n].headers = hdrs;
        reqs[n].timeout_ms = c->app->cfg.upstream_timeout_ms;
        map[n++] = i;
    }
    httpc_parallel(reqs, resps, n, c->app->cfg.upstream_timeout_ms);
    for (size_t j = 0; j < n; j++) {
        quorum_rep *rp = &reps[map[j]];
        rp->resp = resps[j];
        uint64_t e = quorum_stale_epoch(&rp->resp);
        if (e > c->epoch) {
            metric_add(&m_epoch_retries, 1);
            quorum_poke(c->app);
            httpc_resp_free(&rp->resp);
            quorum_get(c, rp->url, &rp->resp, e);
        }
    }
}

static void quorum_unavailable(api_call *c, size_t answered, unsigned r)
{
    cJSON *o = cJSON_CreateObject();
    char msg[160];

    metric_add(&m_q_unavail, 1);
    snprintf(msg, sizeof msg,
             "only %zu of the %u secondaries a read needs answered "
             "(shard %u); retry shortly",
             answered, r, c->shard);
    cJSON_AddStringToObject(o, "error", "quorum_unavailable");
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddNumberToObject(o, "answered", (double)answered);
    cJSON_AddNumberToObject(o, "required", r);
    cJSON_AddNumberToObject(o, "shard", c->shard);
    api_upstream_json(c, 503, o, "Retry-After: 1");
}

void quorum_read(api_call *c, const topo_shard *sh, const char *raw_key,
                 size_t raw_len, unsigned r)
{
    api_app *a = c->app;
    size_t n = sh->nsecondaries, next = 0, answered = 0, nrep = 0;
    size_t order[TOPO_MAX_SECONDARIES];
    quorum_rep reps[TOPO_MAX_SECONDARIES];
    int ordered = strcmp(a->cfg.quorum_policy, "ordered") == 0;
    int win = -1;
    unsigned repairs = 0;

    metric_add(&m_q_reads, 1);
    memset(reps, 0, sizeof reps);
    quorum_order(n, ordered, quorum_thread_rng(), order);
    quorum_suspects_last(sh, order, n);
    while (answered < r && next < n) {
        size_t k = r - answered;
        if (k > n - next)
            k = n - next;
        if (nrep > 0)
            metric_add(&m_q_fallback_rounds, 1);
        for (size_t j = 0; j < k; j++) {
            quorum_rep *rp = &reps[nrep + j];
            rp->idx = order[next + j];
            rp->url = quorum_url(sh->secondaries[rp->idx], raw_key, raw_len);
        }
        quorum_fetch(c, &reps[nrep], k);
        for (size_t j = 0; j < k; j++) {
            quorum_rep *rp = &reps[nrep + j];
            rp->answered = quorum_classify(&rp->resp, &rp->version, &rp->tomb);
            if (rp->answered || rp->resp.status == 0)
                quorum_mark(sh->secondaries[rp->idx], rp->answered);
            if (rp->answered)
                answered++;
            else
                log_debug("quorum read %s: no answer (%s)",
                          rp->url ? rp->url : "?",
                          rp->resp.status ? "error status" : rp->resp.error);
        }
        nrep += k;
        next += k;
    }
    if (answered < r) {
        quorum_unavailable(c, answered, r);
        goto out;
    }
    for (size_t i = 0; i < nrep; i++) {
        const quorum_rep *rp = &reps[i];
        if (!rp->answered)
            continue;
        if (win < 0 || rp->version > reps[win].version ||
            (rp->version == reps[win].version && rp->resp.status == 200 &&
             reps[win].resp.status != 200))
            win = (int)i;
    }
    if (reps[win].version > 0) {
        const quorum_rep *w = &reps[win];
        for (size_t i = 0; i < nrep; i++) {
            const quorum_rep *rp = &reps[i];
            if (!rp->answered || rp->version >= w->version)
                continue;
            metric_add(&m_q_stale_seen, 1);
            if (repair_push(a->repair, sh->secondaries[rp->idx], c->epoch,
                            w->tomb, c->key, c->klen, w->resp.body,
                            w->resp.len, w->version) == 0)
                repairs++;
        }
    }
    snprintf(c->served_by, sizeof c->served_by, "%s",
             sh->secondaries[reps[win].idx]);
    snprintf(c->quorum_hdr, sizeof c->quorum_hdr,
             "X-KV-Quorum: answered=%zu required=%u repairs=%u", answered, r,
             repairs);
    api_upstream_finish(c, &reps[win].resp);
out:
    for (size_t i = 0; i < nrep; i++) {
        free(reps[i].url);
        httpc_resp_free(&reps[i].resp);
    }
}
