#include "quorum.h"

#include "quorum_pick.h"

#include "clock.h"
#include "json_whole.h"
#include "kvhdr.h"
#include "log.h"
#include "metrics.h"
#include "repair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A read follows at most this many 421s after the first one (and the
 * stores it names never repeat the one just asked): quorum_rd_moved_again. */
#define QUORUM_MOVED_HOPS 1

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
METRIC_COUNTER(m_not_primary, "kv_api_read_not_primary_total",
               "R = 0 reads the store asked as primary refused with 409 not_primary");
METRIC_COUNTER(m_moved_reroutes, "kv_api_read_moved_total",
               "reads a store answered 421 moved (a migration switched the key)");

void quorum_metrics_register(void)
{
    metrics_register(&m_q_reads);
    metrics_register(&m_q_unavail);
    metrics_register(&m_q_fallback_rounds);
    metrics_register(&m_q_stale_seen);
    metrics_register(&m_primary_fallback);
    metrics_register(&m_epoch_retries);
    metrics_register(&m_not_primary);
    metrics_register(&m_moved_reroutes);
}

/* ---- replicas that just failed to answer ---- */

/* A replica that did not answer (transport error or timeout) is "suspect"
 * for QUORUM_SUSPECT_MS: reads ask it last, after the others, so that a
 * paused or dead secondary does not cost every read a timeout. A table of
 * URL hashes, lock-free; a collision only reorders a read. */
#define QUORUM_SUSPECT_SLOTS 1024
#define QUORUM_SUSPECT_MS 1000

struct quorum_state {
    _Atomic uint64_t suspect_hash[QUORUM_SUSPECT_SLOTS];
    _Atomic int64_t suspect_until[QUORUM_SUSPECT_SLOTS];
    _Atomic int64_t last_poke;  /* QUORUM_POKE_MS apart at most */
};

quorum_state *quorum_state_new(void)
{
    quorum_state *s = calloc(1, sizeof *s);
    return s;
}

void quorum_state_free(quorum_state *s)
{
    free(s);
}

static int64_t quorum_now_ms(void)
{
    return (int64_t)clock_mono_ms();
}

static uint64_t quorum_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h ? h : 1;
}

void quorum_mark(quorum_state *s, const char *url, int answered)
{
    uint64_t h = quorum_hash(url);
    size_t i = (size_t)(h % QUORUM_SUSPECT_SLOTS);

    if (answered) {
        if (atomic_load_explicit(&s->suspect_hash[i], memory_order_relaxed) == h)
            atomic_store(&s->suspect_until[i], 0);
        return;
    }
    atomic_store(&s->suspect_hash[i], h);
    atomic_store(&s->suspect_until[i], quorum_now_ms() + QUORUM_SUSPECT_MS);
}

int quorum_suspect(quorum_state *s, const char *url)
{
    uint64_t h = quorum_hash(url);
    size_t i = (size_t)(h % QUORUM_SUSPECT_SLOTS);

    if (atomic_load_explicit(&s->suspect_hash[i], memory_order_relaxed) != h)
        return 0;
    return atomic_load(&s->suspect_until[i]) > quorum_now_ms();
}

/* The topology moved on (a store at a newer epoch) or may be moving (the
 * primary does not answer): have the watcher poll now rather than at its
 * next tick; at most every QUORUM_POKE_MS, however many reads notice. */
#define QUORUM_POKE_MS 100

void quorum_poke(api_app *a)
{
    int64_t now = quorum_now_ms(), last = atomic_load(&a->quorum->last_poke);

    if (now - last >= QUORUM_POKE_MS &&
        atomic_compare_exchange_strong(&a->quorum->last_poke, &last, now))
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
    *version = 0;
    *tomb = 0;
    if (resp->status != 200 && resp->status != 404)
        return 0;
    if (kvhdr_u64(resp, "X-KV-Version", version) != 0)
        *version = 0;
    *tomb = resp->status == 404 && *version > 0;
    return 1;
}

/* 409 not_primary (store/store_fence.c): 1, and the primary the store
 * names (or "") into named; else 0. */
static int quorum_not_primary(const httpc_resp *resp, char *named, size_t n)
{
    named[0] = '\0';
    if (resp->status != 409 || resp->body == NULL ||
        strstr(resp->body, "not_primary") == NULL)
        return 0;
    cJSON *j = json_whole_parse(resp->body, resp->len, NULL);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "primary");
    if (cJSON_IsString(p) && strlen(p->valuestring) < n)
        snprintf(named, n, "%s", p->valuestring);
    cJSON_Delete(j);
    return 1;
}

uint64_t quorum_stale_epoch(const httpc_resp *resp)
{
    uint64_t e = 0;

    if (resp->status != 409 || resp->body == NULL ||
        strstr(resp->body, "stale_epoch") == NULL)
        return 0;
    if (kvhdr_u64(resp, KVHDR_EPOCH, &e) == 0)
        return e;
    cJSON *j = json_whole_parse(resp->body, resp->len, NULL);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    if (cJSON_IsNumber(v) && v->valuedouble > 0 && v->valuedouble < 9.0e15)
        e = (uint64_t)v->valuedouble;
    cJSON_Delete(j);
    return e;
}

/* ---- one read, asynchronous ----
 *
 * A read is a small state machine on its worker's httpc loop: every GET to a
 * replica is started with quorum_rd_get and lands in quorum_rd_got, which decides what
 * comes next (another replica, another round, or the answer). It holds the
 * topology reference that sh points into until it ends. */

typedef struct quorum_rep {
    size_t idx;            /* which secondary */
    char *url;
    httpc_resp resp;
    int answered;
    uint64_t version;
    int tomb;
} quorum_rep;

enum quorum_rd_phase {
    QUORUM_RD_PRIMARY,            /* R = 0: the primary first */
    QUORUM_RD_FALLBACK,           /* R = 0: secondaries one by one */
    QUORUM_RD_PRIMARY_LAST,       /* R = 0: the suspect primary after all */
    QUORUM_RD_PRIMARY_NAMED,      /* R = 0: the primary a store named */
    QUORUM_RD_ROUND,              /* R >= 1: a round of parallel GETs */
    QUORUM_RD_MOVED               /* after a 421: the owner the store named */
};

typedef struct quorum_rd {
    api_call *c;
    topo_t *t;
    const topo_shard *sh;
    char *raw_key;
    size_t raw_len;
    unsigned r;
    enum quorum_rd_phase phase;
    size_t order[TOPO_MAX_SECONDARIES];
    size_t n, next;        /* secondaries; the next one of order to ask */
    size_t nrep, answered, outstanding;
    httpc_resp presp;      /* R = 0: the primary's failed answer */
    int have_primary;
    int primary_refused;   /* R = 0: 409 not_primary: not asked again */
    char *named;           /* the primary the asked one named, and the */
    char *named_url;       /* key's URL there */
    int moved;             /* a store answered 421: not its key any more */
    int rerouted;          /* this read already followed one 421 */
    int hops;              /* 421s followed to the owner a store named */
    char *moved_url;       /* the key's URL at the owner the 421 named */
    uint64_t moved_epoch;  /* and that shard's epoch */
    quorum_rep reps[];     /* one per secondary asked, at most n */
} quorum_rd;

/* One GET in flight: which reply slot (reps index, or -1 the primary's) and
 * the epoch it was sent at, for the one retry at a newer epoch. */
typedef struct qget {
    quorum_rd *q;
    int slot;
    const char *url;
    uint64_t epoch;
    int retried;
} qget;

static void quorum_rd_got(httpc_resp *resp, void *ctx);
static void quorum_rd_reroute(quorum_rd *q);
static void quorum_rd_moved_note(quorum_rd *q, const httpc_resp *resp);
static int quorum_rd_moved_again(quorum_rd *q, const httpc_resp *resp);

/* The headers of a read to a store: token, epoch, and what the read is
 * after: the primary (R = 0, lib/kvhdr.h) or a key a source sent it to. */
static const char *const *quorum_hdrs(const api_app *a, const char **out,
                                      char *eh, size_t ehlen, uint64_t epoch,
                                      enum quorum_rd_phase phase)
{
    size_t n = 0;
    if (a->auth[0])
        out[n++] = a->auth;
    kvhdr_epoch(eh, ehlen, epoch);
    out[n++] = eh;
    if (phase == QUORUM_RD_PRIMARY || phase == QUORUM_RD_PRIMARY_LAST ||
        phase == QUORUM_RD_PRIMARY_NAMED)
        out[n++] = KVHDR_READ_PRIMARY ": 1";
    else if (phase == QUORUM_RD_MOVED)
        out[n++] = "X-KV-Moved: 1"; /* a source sent us here (store_owner.h) */
    out[n] = NULL;
    return out;
}

static char *quorum_url(const char *base, const char *raw_key, size_t raw_len)
{
    char *u = NULL;
    if (asprintf(&u, "%s/internal/kv/%.*s", base, (int)raw_len, raw_key) < 0)
        return NULL;
    return u;
}

static void quorum_rd_free(quorum_rd *q)
{
    for (size_t i = 0; i < q->nrep; i++) {
        free(q->reps[i].url);
        httpc_resp_free(&q->reps[i].resp);
    }
    httpc_resp_free(&q->presp);
    free(q->moved_url);
    free(q->named);
    free(q->named_url);
    topo_put(q->t);
    free(q->raw_key);
    free(q);
}

/* Answer the client from resp (kept by the caller) and end the read. */
static void quorum_rd_finish(quorum_rd *q, httpc_resp *resp)
{
    api_call_finish(q->c, resp);
    quorum_rd_free(q);
}

static void quorum_rd_fail(quorum_rd *q, unsigned status, const char *code, const char *msg)
{
    static const char *const h[] = {"Retry-After: 1", NULL};
    httpd_error_h(q->c->r, status, h, code, "%s", msg);
    api_call_free(q->c);
    quorum_rd_free(q);
}

/* Start GET url at epoch; its answer goes to slot. 0, or -1 (nothing sent). */
static int quorum_rd_get_at(quorum_rd *q, int slot, const char *url, uint64_t epoch,
                     int retried)
{
    const char *hdrs[4];
    char eh[KVHDR_EPOCH_MAX];
    qget *g = malloc(sizeof *g);
    /* subreq: the reads of one pass for one store go together */
    httpc_req req = {.method = "GET", .url = url,
                     .timeout_ms = q->c->app->cfg.upstream_timeout_ms,
                     .subreq = 1};

    if (g == NULL || url == NULL) {
        free(g);
        return -1;
    }
    *g = (qget){.q = q, .slot = slot, .url = url, .epoch = epoch,
                .retried = retried};
    req.headers = quorum_hdrs(q->c->app, hdrs, eh, sizeof eh, epoch, q->phase);
    if (httpc_loop_async(httpd_loop(q->c->r), &req, quorum_rd_got, g) != 0) {
        free(g);
        return -1;
    }
    q->outstanding++;
    return 0;
}

static int quorum_rd_get(quorum_rd *q, int slot, const char *url)
{
    return quorum_rd_get_at(q, slot, url, q->c->epoch, 0);
}

static void quorum_rd_fallback_next(quorum_rd *q);
static void quorum_rd_round(quorum_rd *q);

/* R = 0: the first attempt at the primary, or a suspect primary skipped. */
static void quorum_rd_start_primary(quorum_rd *q)
{
    const topo_shard *sh = q->sh;

    q->phase = QUORUM_RD_PRIMARY;
    if (sh->primary) {
        if (api_call_url(q->c, "%s/internal/kv/%.*s", sh->primary,
                         (int)q->raw_len, q->raw_key)) {
            api_call_free(q->c); /* answered 503 */
            quorum_rd_free(q);
            return;
        }
        /* A primary that just timed out is asked last (after the
         * secondaries), not first: it may be paused or gone. */
        if (sh->nsecondaries == 0 || !quorum_suspect(q->c->app->quorum, sh->primary)) {
            if (quorum_rd_get(q, -1, q->c->url) != 0)
                quorum_rd_fail(q, 503, "overloaded", "the api could not start the read");
            return;
        }
    }
    q->phase = QUORUM_RD_FALLBACK;
    quorum_rd_fallback_next(q);
}

/* R = 0: the next secondary in topology order, or the end of them. */
static void quorum_rd_fallback_next(quorum_rd *q)
{
    const topo_shard *sh = q->sh;

    while (q->next < sh->nsecondaries) {
        quorum_rep *rp = &q->reps[q->nrep];
        rp->idx = q->next++;
        rp->url = quorum_url(sh->secondaries[rp->idx], q->raw_key, q->raw_len);
        q->nrep++;
        if (quorum_rd_get(q, (int)(q->nrep - 1), rp->url) == 0)
            return;
    }
    if (!q->have_primary && !q->primary_refused && sh->primary) {
        /* It was skipped as suspect and no secondary answered: ask it. */
        q->phase = QUORUM_RD_PRIMARY_LAST;
        if (quorum_rd_get(q, -1, q->c->url) == 0)
            return;
    }
    if (q->have_primary) {
        quorum_rd_finish(q, &q->presp); /* the primary's answer as it is */
        return;
    }
    char msg[160];
    snprintf(msg, sizeof msg,
             "shard %u has no primary right now (failover under way) and no "
             "secondary answered", sh->id);
    quorum_rd_fail(q, 503, "no_primary", msg);
}

/* 409 not_primary: the store asked is not the primary now (replaced while
 * this api's topology is older, or just started and not yet told), so its
 * copy may be behind. Once, ask the primary it names; else the
 * secondaries, as for a primary that does not answer. */
static void quorum_rd_not_primary(quorum_rd *q, const char *named)
{
    const topo_shard *sh = q->sh;
    int first = q->phase == QUORUM_RD_PRIMARY;

    metrics_add(&m_not_primary, 1);
    quorum_poke(q->c->app);
    q->primary_refused = 1;
    if (first && named[0] && strcmp(named, sh->primary) != 0 &&
        (q->named = strdup(named)) != NULL &&
        (q->named_url = quorum_url(named, q->raw_key, q->raw_len)) != NULL) {
        q->phase = QUORUM_RD_PRIMARY_NAMED;
        snprintf(q->c->served_by, sizeof q->c->served_by,
                 "%s; redirect=not_primary", named);
        if (quorum_rd_get(q, -1, q->named_url) == 0)
            return;
    }
    log_debug("read %s: the primary asked is not primary: trying secondaries",
              q->c->url);
    if (q->phase != QUORUM_RD_PRIMARY_LAST)
        q->phase = QUORUM_RD_FALLBACK;
    quorum_rd_fallback_next(q);
}

static void quorum_rd_primary_got(quorum_rd *q, httpc_resp *resp)
{
    const topo_shard *sh = q->sh;
    const char *asked = q->phase == QUORUM_RD_PRIMARY_NAMED ? q->named : sh->primary;
    char named[256];

    if (quorum_not_primary(resp, named, sizeof named)) {
        quorum_rd_not_primary(q, named);
        return;
    }
    if (q->phase == QUORUM_RD_PRIMARY_LAST) {
        quorum_mark(q->c->app->quorum, asked, resp->status == 200 || resp->status == 404);
        quorum_rd_finish(q, resp);
        return;
    }
    if (resp->status != 0 && resp->status < 500) {
        if (resp->status == 200 || resp->status == 404)
            quorum_mark(q->c->app->quorum, asked, 1);
        quorum_rd_finish(q, resp);
        return;
    }
    if (resp->status == 0)
        quorum_mark(q->c->app->quorum, asked, 0);
    quorum_poke(q->c->app);
    log_debug("read %s: primary failed (%s): trying secondaries", q->c->url,
              resp->status ? "5xx" : resp->error);
    q->presp = *resp; /* kept: the answer if no secondary does better */
    resp->body = resp->headers = NULL;
    q->have_primary = 1;
    q->phase = QUORUM_RD_FALLBACK;
    quorum_rd_fallback_next(q);
}

static void quorum_rd_fallback_got(quorum_rd *q, quorum_rep *rp, httpc_resp *resp)
{
    const topo_shard *sh = q->sh;
    api_call *c = q->c;

    if (resp->status == 0)
        quorum_mark(q->c->app->quorum, sh->secondaries[rp->idx], 0);
    if (resp->status == 200 || resp->status == 404) {
        metrics_add(&m_primary_fallback, 1);
        snprintf(c->served_by, sizeof c->served_by, "%s; fallback=%s",
                 sh->secondaries[rp->idx],
                 q->primary_refused ? "not_primary" : "primary_unreachable");
        quorum_rd_finish(q, resp);
        return;
    }
    quorum_rd_fallback_next(q);
}

/* Keep the order, but move the secondaries that just failed to the end. */
static void quorum_suspects_last(quorum_state *s, const topo_shard *sh,
                                 size_t *order, size_t n)
{
    size_t tmp[TOPO_MAX_SECONDARIES], k = 0;
    int any = 0;

    for (size_t i = 0; i < n; i++)
        if (quorum_suspect(s, sh->secondaries[order[i]])) {
            any = 1;
            break;
        }
    if (!any)
        return;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if (quorum_suspect(s, sh->secondaries[order[i]]) == pass)
                tmp[k++] = order[i];
    memcpy(order, tmp, n * sizeof *order);
}

static void quorum_unavailable(api_call *c, size_t answered, unsigned r)
{
    cJSON *o = cJSON_CreateObject();
    char msg[160];

    metrics_add(&m_q_unavail, 1);
    snprintf(msg, sizeof msg,
             "only %zu of the %u secondaries a read needs answered "
             "(shard %u); retry shortly",
             answered, r, c->shard);
    cJSON_AddStringToObject(o, "error", "quorum_unavailable");
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddNumberToObject(o, "answered", (double)answered);
    cJSON_AddNumberToObject(o, "required", r);
    cJSON_AddNumberToObject(o, "shard", c->shard);
    api_call_json(c, 503, o, "Retry-After: 1");
}

/* R >= 1, every answer in: the newest wins; older replicas get repaired. */
static void quorum_rd_conclude(quorum_rd *q)
{
    api_call *c = q->c;
    const topo_shard *sh = q->sh;
    quorum_pick_answer pick[TOPO_MAX_SECONDARIES];
    int win;
    unsigned repairs = 0;

    if (q->answered < q->r) {
        quorum_unavailable(c, q->answered, q->r);
        quorum_rd_free(q);
        return;
    }
    for (size_t i = 0; i < q->nrep; i++)
        pick[i] = (quorum_pick_answer){.candidate = q->reps[i].answered != 0,
                                       .value = q->reps[i].resp.status == 200,
                                       .version = q->reps[i].version};
    win = quorum_pick_winner(pick, q->nrep);
    quorum_rep *w = &q->reps[win];
    uint64_t expires_at = 0; /* the winner's TTL goes with its repairs */
    if (kvhdr_u64(&w->resp, "X-KV-Expires-At", &expires_at) != 0)
        expires_at = 0;
    for (size_t i = 0; i < q->nrep; i++) {
        const quorum_rep *rp = &q->reps[i];
        if (!quorum_pick_is_stale(&pick[i], &pick[win]))
            continue;
        /* Both read as absent (a tombstone or an expired record against a
         * miss): nothing for a reader to tell apart, the stream brings the
         * newer state, and a repaired tombstone would be one outside the
         * changes index, which no collection reaches. */
        if (!pick[win].value && !pick[i].value)
            continue;
        metrics_add(&m_q_stale_seen, 1);
        if (repair_push(c->app->repair, sh->secondaries[rp->idx], c->epoch,
                        w->tomb, c->key, c->klen, w->resp.body,
                        w->resp.len, w->version, expires_at) == 0)
            repairs++;
    }
    snprintf(c->served_by, sizeof c->served_by, "%s", sh->secondaries[w->idx]);
    snprintf(c->quorum_hdr, sizeof c->quorum_hdr,
             "X-KV-Quorum: answered=%zu required=%u repairs=%u", q->answered,
             q->r, repairs);
    quorum_rd_finish(q, &w->resp);
}

/* R >= 1: ask as many more secondaries as answers are missing, in parallel;
 * the round ends when all of them are in (quorum_rd_round_got). */
static void quorum_rd_round(quorum_rd *q)
{
    size_t k = q->r - q->answered;

    if (q->answered >= q->r || q->next >= q->n) {
        quorum_rd_conclude(q);
        return;
    }
    if (k > q->n - q->next)
        k = q->n - q->next;
    if (q->nrep > 0)
        metrics_add(&m_q_fallback_rounds, 1);
    for (size_t j = 0; j < k; j++) {
        quorum_rep *rp = &q->reps[q->nrep];
        rp->idx = q->order[q->next++];
        rp->url = quorum_url(q->sh->secondaries[rp->idx], q->raw_key, q->raw_len);
        q->nrep++;
        /* One that cannot even start counts as not answering. */
        quorum_rd_get(q, (int)(q->nrep - 1), rp->url);
    }
    if (q->outstanding == 0)
        quorum_rd_round(q);
}

static void quorum_rd_round_got(quorum_rd *q, quorum_rep *rp)
{
    rp->answered = quorum_classify(&rp->resp, &rp->version, &rp->tomb);
    if (rp->answered || rp->resp.status == 0)
        quorum_mark(q->c->app->quorum, q->sh->secondaries[rp->idx], rp->answered);
    if (rp->answered)
        q->answered++;
    else
        log_debug("quorum read %s: no answer (%s)", rp->url ? rp->url : "?",
                  rp->resp.status ? "error status" : rp->resp.error);
    if (q->outstanding == 0)
        quorum_rd_round(q);
}

static void quorum_rd_got(httpc_resp *resp, void *ctx)
{
    qget *g = ctx;
    quorum_rd *q = g->q;
    uint64_t e = quorum_stale_epoch(resp);

    q->outstanding--;
    /* A store at a newer epoch: the topology moved on and this api has not
     * seen it yet. A read needs no fencing: ask once more at its epoch. */
    if (e > g->epoch && !g->retried) {
        metrics_add(&m_epoch_retries, 1);
        quorum_poke(q->c->app);
        if (quorum_rd_get_at(q, g->slot, g->url, e, 1) == 0) {
            free(g);
            return;
        }
    }
    int slot = g->slot;
    free(g);
    if (q->phase == QUORUM_RD_MOVED) {
        if (resp->status == 421 && quorum_rd_moved_again(q, resp) == 0)
            return;
        if (resp->status == 421)
            quorum_rd_fail(q, 503, "moved", "the key has moved to another "
                           "shard twice; retry shortly");
        else
            quorum_rd_finish(q, resp);
        return;
    }
    if (resp->status == 421)
        quorum_rd_moved_note(q, resp);
    if (q->moved) {
        /* A migration switched the key to another shard and this api's
         * topology is older than the store's: the read starts over there
         * once nothing is in flight here. */
        if (q->outstanding == 0)
            quorum_rd_reroute(q);
        return;
    }
    if (slot < 0) {
        quorum_rd_primary_got(q, resp);
        return;
    }
    quorum_rep *rp = &q->reps[slot];
    if (q->phase != QUORUM_RD_ROUND) {
        quorum_rd_fallback_got(q, rp, resp);
        return;
    }
    rp->resp = *resp; /* kept until the read ends */
    resp->body = resp->headers = NULL;
    quorum_rd_round_got(q, rp);
}

static quorum_rd *quorum_rd_alloc(api_call *c, topo_t *t, const topo_shard *sh,
                                  const char *raw_key, size_t raw_len, unsigned r);
static void quorum_rd_begin(quorum_rd *q);

/* A 421 moved: note where the store says the key is (X-KV-Owner, the
 * owner primary by the store's topology, and X-KV-Owner-Epoch). */
static void quorum_rd_moved_note(quorum_rd *q, const httpc_resp *resp)
{
    char url[300];
    const char *at = httpc_resp_header(resp, "X-KV-Owner", url, sizeof url);

    q->moved = 1;
    if (at == NULL || q->moved_url ||
        kvhdr_u64(resp, "X-KV-Owner-Epoch", &q->moved_epoch) != 0)
        return;
    if (asprintf(&q->moved_url, "%s/internal/kv/%.*s", at, (int)q->raw_len,
                 q->raw_key) < 0)
        q->moved_url = NULL;
    else
        snprintf(q->c->served_by, sizeof q->c->served_by, "%s", at);
}

/* The owner a store named answered 421 too, naming another store: follow
 * it, once. An api whose topology is past the switch reads the new owner
 * first; a target whose own topology is still at the freeze answers 421
 * naming the source, and the source (at the switch or later) names the
 * target back. That 421 comes from a store that saw the switch, so the
 * target serves the read it sends (X-KV-Moved, store/store_owner.h). 0 when
 * the GET is under way, -1 when there is nothing more to follow. */
static int quorum_rd_moved_again(quorum_rd *q, const httpc_resp *resp)
{
    char url[300];
    const char *at = httpc_resp_header(resp, "X-KV-Owner", url, sizeof url);
    uint64_t epoch;
    char *next = NULL;

    if (q->hops >= QUORUM_MOVED_HOPS || at == NULL ||
        kvhdr_u64(resp, "X-KV-Owner-Epoch", &epoch) != 0 ||
        asprintf(&next, "%s/internal/kv/%.*s", at, (int)q->raw_len,
                 q->raw_key) < 0)
        return -1;
    if (q->moved_url && strcmp(next, q->moved_url) == 0) {
        free(next); /* the same store again: no progress */
        return -1;
    }
    free(q->moved_url);
    q->moved_url = next;
    q->moved_epoch = epoch;
    q->hops++;
    snprintf(q->c->served_by, sizeof q->c->served_by, "%s", at);
    metrics_add(&m_moved_reroutes, 1);
    return quorum_rd_get_at(q, -1, q->moved_url, q->moved_epoch, 1);
}

/* After a 421: the same read at the key's owner. When the store named it,
 * one GET to its primary there (the newest copy: the store's topology is
 * newer than ours); else where this api's topology sends the key after the
 * migration (its "to"), with the same R; once only. */
static void quorum_rd_reroute(quorum_rd *q)
{
    api_call *c = q->c;
    uint32_t to = topo_owner_to(q->t, c->key, c->klen);
    const topo_shard *sh = topo_shard_by_id(q->t, to);
    quorum_rd *nq;

    quorum_poke(c->app);
    metrics_add(&m_moved_reroutes, 1);
    if (q->moved_url) {
        q->phase = QUORUM_RD_MOVED;
        if (quorum_rd_get_at(q, -1, q->moved_url, q->moved_epoch, 1) != 0)
            quorum_rd_fail(q, 503, "overloaded", "the api could not start the read");
        return;
    }
    if (q->rerouted || sh == NULL || sh == q->sh) {
        quorum_rd_fail(q, 503, "moved", "the key has moved to another shard "
                       "and this api has not seen the new topology yet");
        return;
    }
    topo_get(q->t);
    nq = quorum_rd_alloc(c, q->t, sh, q->raw_key, q->raw_len, q->r);
    quorum_rd_free(q);
    if (nq == NULL)
        return; /* answered 503 */
    nq->rerouted = 1;
    c->shard = sh->id;
    c->epoch = sh->epoch;
    snprintf(c->served_by, sizeof c->served_by, "%s", sh->primary ? sh->primary : "");
    quorum_rd_begin(nq);
}

/* A read's state, sized to the shard: most reads need no reply slot at
 * all. NULL when out of memory (then the client has its 503). */
static quorum_rd *quorum_rd_alloc(api_call *c, topo_t *t, const topo_shard *sh,
                                  const char *raw_key, size_t raw_len, unsigned r)
{
    quorum_rd *q = calloc(1, sizeof *q + sh->nsecondaries * sizeof q->reps[0]);

    if (q == NULL || (q->raw_key = strndup(raw_key, raw_len)) == NULL) {
        free(q);
        topo_put(t);
        httpd_error(c->r, 503, "overloaded", "out of memory");
        api_call_free(c);
        return NULL;
    }
    q->c = c;
    q->t = t;
    q->sh = sh;
    q->raw_len = raw_len;
    q->r = r;
    q->n = sh->nsecondaries;
    return q;
}

static quorum_rd *quorum_rd_new(api_call *c, topo_t *t, const topo_shard *sh,
                     const char *raw_key, size_t raw_len, unsigned r)
{
    quorum_rd *q = quorum_rd_alloc(c, t, sh, raw_key, raw_len, r);

    /* Suspended from here on: every answer comes from a callback. */
    if (q)
        httpd_suspend(c->r);
    return q;
}

/* The first GETs: the primary (R = 0), or the first round (R >= 1). */
static void quorum_rd_begin(quorum_rd *q)
{
    if (q->r == 0) {
        quorum_rd_start_primary(q);
        return;
    }
    q->phase = QUORUM_RD_ROUND;
    quorum_order(q->n, strcmp(q->c->app->cfg.quorum_policy, "ordered") == 0,
                 quorum_thread_rng(), q->order);
    quorum_suspects_last(q->c->app->quorum, q->sh, q->order, q->n);
    quorum_rd_round(q);
}

void quorum_read_primary(api_call *c, topo_t *t, const topo_shard *sh,
                         const char *raw_key, size_t raw_len)
{
    quorum_rd *q = quorum_rd_new(c, t, sh, raw_key, raw_len, 0);

    if (q)
        quorum_rd_begin(q);
}

void quorum_read(api_call *c, topo_t *t, const topo_shard *sh,
                 const char *raw_key, size_t raw_len, unsigned r)
{
    quorum_rd *q = quorum_rd_new(c, t, sh, raw_key, raw_len, r);

    if (q == NULL)
        return;
    metrics_add(&m_q_reads, 1);
    quorum_rd_begin(q);
}
