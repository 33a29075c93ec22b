#include "wq.h"

#include "hlc.h"
#include "httpc.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WQ_MAX_SHARDS 64
#define WQ_HASH_BUCKETS (1u << 16)
#define WQ_BACKOFF_MAX_US 5000000ULL
#define WQ_HOLD_US 200000ULL /* a shard without a primary is retried this often */

typedef struct wq_waiter {
    void *who;
    wq_outcome out;                   /* filled when it is due */
    uint64_t deadline_us;
    struct wq_job *job;
    struct wq_waiter *jnext;          /* the job's waiters */
    struct wq_waiter *prev, *next;    /* every waiter, for the timeout scan */
} wq_waiter;

typedef struct wq_job {
    uint64_t id;                      /* = version */
    uint8_t op;
    enum wq_state state;
    uint16_t status;
    uint32_t attempts;
    uint32_t shard;
    int64_t delta;
    int64_t number;
    uint64_t admitted_us;
    const char *error, *message;      /* static text */
    char *key, *val;
    size_t klen, vlen;
    struct wq_job *next;              /* shard FIFO, then the finished list */
    struct wq_job *hnext;             /* id hash chain */
    wq_waiter *waiters;
} wq_job;

typedef struct wq_shard {
    wq_job *head, *tail;
    size_t depth;
    int busy;                         /* a batch is in flight */
    uint64_t next_try_us;
    uint32_t failures;                /* consecutive failed batches */
} wq_shard;

struct wq {
    kv_config cfg;
    topo_watch *topo;
    wq_notify_fn notify;
    hlc_t hlc;
    pthread_mutex_t mu;
    pthread_cond_t work;              /* new jobs or a shard became free */
    int stopping;
    wq_shard shards[WQ_MAX_SHARDS];
    size_t depth;                     /* queued jobs over all shards */
    wq_job *table[WQ_HASH_BUCKETS];
    wq_job *fin_head, *fin_tail;      /* finished jobs, oldest first */
    size_t nfinished;
    wq_waiter *waiters;
    unsigned rr;                      /* round-robin start for workers */
    pthread_t *workers;
    pthread_t reaper;
};

METRIC_COUNTER(m_admitted, "kv_queue_admitted_total", "jobs accepted");
METRIC_COUNTER(m_applied, "kv_queue_applied_total", "jobs applied by a shard");
METRIC_COUNTER(m_failed, "kv_queue_failed_total", "jobs that ended failed");
METRIC_COUNTER(m_rejected, "kv_queue_rejected_total", "writes refused with 429");
METRIC_COUNTER(m_batches, "kv_queue_batches_total", "batches sent to primaries");
METRIC_COUNTER(m_retries, "kv_queue_retries_total", "batches retried after an error");
METRIC_GAUGE(m_depth, "kv_queue_depth", "jobs waiting to be applied");
static lat_hist m_apply = {.name = "kv_queue_apply_seconds",
                           .help = "admission to apply latency"};

static uint64_t wq_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

const char *wq_op_name(uint8_t op)
{
    return op == WIRE_PUT ? "put" : op == WIRE_DEL ? "delete" : "incr";
}

static void wq_job_free(wq_job *j)
{
    free(j->key);
    free(j->val);
    free(j);
}

static wq_job **wq_slot(wq_t *q, uint64_t id)
{
    wq_job **pp = &q->table[(id ^ (id >> 17)) % WQ_HASH_BUCKETS];
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->hnext;
    return pp;
}

static wq_outcome wq_outcome_of(const wq_job *j)
{
    wq_outcome o = {.job = j->id, .version = j->id, .state = j->state,
                    .status = j->status, .number = j->number,
                    .error = j->error, .message = j->message};
    return o;
}

static void wq_waiter_unlink(wq_t *q, wq_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

/* Called with the lock held: the job ends; its waiters move to *due
 * (linked through jnext) with their outcome, to be notified unlocked. */
static void wq_finish(wq_t *q, wq_job *j, enum wq_state st, uint16_t status,
                      const char *error, const char *message, wq_waiter **due)
{
    j->state = st;
    j->status = status;
    j->error = error;
    j->message = message;
    free(j->val);
    j->val = NULL;
    metric_add(st == WQ_APPLIED ? &m_applied : &m_failed, 1);
    lat_record(&m_apply, wq_now_us() - j->admitted_us);
    for (wq_waiter *w = j->waiters, *n; w; w = n) {
        n = w->jnext;
        wq_waiter_unlink(q, w);
        w->out = wq_outcome_of(j);
        w->jnext = *due;
        *due = w;
    }
    j->waiters = NULL;
    j->next = NULL;
    if (q->fin_tail)
        q->fin_tail->next = j;
    else
        q->fin_head = j;
    q->fin_tail = j;
    /* Forget the oldest finished jobs past jobs_kept. */
    for (q->nfinished++; q->nfinished > (size_t)q->cfg.jobs_kept; q->nfinished--) {
        wq_job *old = q->fin_head;
        *wq_slot(q, old->id) = old->hnext;
        q->fin_head = old->next;
        if (q->fin_head == NULL)
            q->fin_tail = NULL;
        wq_job_free(old);
    }
}

static void wq_notify_due(wq_t *q, wq_waiter *due)
{
    for (wq_waiter *w = due, *n; w; w = n) {
        n = w->jnext;
        q->notify(w->who, &w->out);
        free(w);
    }
}

int wq_admit(wq_t *q, uint8_t op, const char *key, size_t klen, const void *val,
             size_t vlen, int64_t delta, void *waiter, uint64_t wait_ms,
             uint64_t *job_out)
{
    topo_t *t = topo_watch_get(q->topo);
    wq_waiter *w = NULL;
    wq_job *j;
    wq_shard *s;
    uint32_t shard;

    if (t == NULL)
        return WQ_NO_TOPOLOGY;
    shard = ring_lookup(t->ring, key, klen);
    topo_put(t);
    if (shard >= WQ_MAX_SHARDS)
        return WQ_NO_TOPOLOGY;
    j = calloc(1, sizeof *j);
    if (j == NULL || (j->key = malloc(klen + 1)) == NULL ||
        (vlen && (j->val = malloc(vlen)) == NULL)) {
        if (j)
            wq_job_free(j);
        return WQ_NOMEM;
    }
    memcpy(j->key, key, klen);
    j->key[klen] = '\0';
    j->klen = klen;
    if (vlen)
        memcpy(j->val, val, vlen);
    j->vlen = vlen;
    j->op = op;
    j->delta = delta;
    j->shard = shard;
    j->state = WQ_QUEUED;
    if (waiter && (w = calloc(1, sizeof *w)) == NULL) {
        wq_job_free(j);
        return WQ_NOMEM;
    }

    pthread_mutex_lock(&q->mu);
    if (q->depth >= (size_t)q->cfg.max_queue_size || q->stopping) {
        int rc = q->stopping ? WQ_STOPPING : WQ_FULL;
        pthread_mutex_unlock(&q->mu);
        metric_add(&m_rejected, rc == WQ_FULL);
        wq_job_free(j);
        free(w);
        return rc;
    }
    /* Versions are taken under the lock so FIFO order is version order. */
    j->id = hlc_next(&q->hlc);
    j->admitted_us = wq_now_us();
    *wq_slot(q, j->id) = j;
    s = &q->shards[shard];
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    s->depth++;
    q->depth++;
    if (w) {
        w->who = waiter;
        w->job = j;
        w->deadline_us = j->admitted_us + wait_ms * 1000;
        j->waiters = w;
        w->next = q->waiters;
        if (q->waiters)
            q->waiters->prev = w;
        q->waiters = w;
    }
    *job_out = j->id;
    metric_add(&m_admitted, 1);
    metric_set(&m_depth, (int64_t)q->depth);
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->mu);
    return WQ_OK;
}

/* A shard whose turn it is: has jobs, no batch in flight, not backing off.
 * Round-robin so that one busy shard cannot starve the others. */
static int wq_pick(wq_t *q, uint64_t now, uint64_t *wake_us)
{
    for (size_t k = 0; k < WQ_MAX_SHARDS; k++) {
        size_t i = (q->rr + k) % WQ_MAX_SHARDS;
        wq_shard *s = &q->shards[i];
        if (s->depth == 0 || s->busy)
            continue;
        if (s->next_try_us > now) {
            if (s->next_try_us < *wake_us)
                *wake_us = s->next_try_us;
            continue;
        }
        q->rr = (unsigned)(i + 1);
        return (int)i;
    }
    return -1;
}

/* Detach up to batch_max jobs from the head of the shard's FIFO. */
static wq_job *wq_take_batch(wq_t *q, wq_shard *s, size_t *n_out)
{
    wq_job *first = s->head, *last = first;
    size_t n = 1;

    while (n < (size_t)q->cfg.batch_max && last->next) {
        last = last->next;
        n++;
    }
    s->head = last->next;
    if (s->head == NULL)
        s->tail = NULL;
    last->next = NULL;
    s->depth -= n;
    q->depth -= n;
    *n_out = n;
    return first;
}

/* Put a failed batch back at the head, in order. */
static void wq_requeue(wq_t *q, wq_shard *s, wq_job *first, size_t n)
{
    wq_job *last = first;
    while (last->next)
        last = last->next;
    last->next = s->head;
    s->head = first;
    if (s->tail == NULL)
        s->tail = last;
    s->depth += n;
    q->depth += n;
}

static void wq_encode(wq_job *first, wire_buf *buf)
{
    char delta[8];

    wire_buf_reset(buf);
    for (wq_job *j = first; j; j = j->next) {
        wire_op op = {.op = j->op, .version = j->id, .key = j->key,
                      .key_len = j->klen, .val = j->val, .val_len = j->vlen};
        if (j->op == WIRE_INCR) {
            wire_encode_delta(j->delta, delta);
            op.val = delta;
            op.val_len = sizeof delta;
        }
        wire_put_op(buf, &op);
    }
}

/* Send one batch; 0 with resp filled when the shard answered 200 with one
 * result per op, -1 when it should be retried (why in *why). */
static int wq_send(wq_t *q, uint32_t shard, const wire_buf *buf, size_t n,
                   httpc_resp *resp, char *why, size_t whylen)
{
    topo_t *t = topo_watch_get(q->topo);
    char url[512], auth[300], epoch[48];
    const char *hdrs[4] = {"Content-Type: application/octet-stream", NULL};
    int nh = 1, rc = -1;

    memset(resp, 0, sizeof *resp);
    if (t == NULL || shard >= t->nshards || t->shards[shard].primary == NULL) {
        snprintf(why, whylen, "shard %u has no primary", shard);
        topo_put(t);
        return -2;
    }
    snprintf(url, sizeof url, "%s/internal/batch", t->shards[shard].primary);
    snprintf(epoch, sizeof epoch, "X-KV-Epoch: %llu",
             (unsigned long long)t->shards[shard].epoch);
    hdrs[nh++] = epoch;
    if (q->cfg.token[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", q->cfg.token);
        hdrs[nh++] = auth;
    }
    topo_put(t);
    httpc_req req = {.method = "POST", .url = url, .body = buf->data,
                     .body_len = buf->len, .headers = hdrs,
                     .timeout_ms = q->cfg.upstream_timeout_ms};
    if (httpc_do(&req, resp) != 0)
        snprintf(why, whylen, "%s: %s", url, resp->error);
    else if (resp->status != 200)
        snprintf(why, whylen, "%s answered %ld", url, resp->status);
    else if (resp->len != n * WIRE_RESULT_LEN)
        snprintf(why, whylen, "%s answered %zu bytes for %zu ops", url,
                 resp->len, n);
    else
        rc = 0;
    return rc;
}

static void wq_apply_results(wq_t *q, wq_job *first, const httpc_resp *resp,
                             wq_waiter **due)
{
    size_t off = 0;
    wire_result r;

    for (wq_job *j = first, *n; j; j = n) {
        n = j->next;
        if (wire_next_result(resp->body, resp->len, &off, &r) != 1)
            r.status = 500;
        j->attempts++;
        j->number = r.number;
        if (r.status == 200 || r.status == 208)
            wq_finish(q, j, WQ_APPLIED, 200, NULL, NULL, due);
        else if (r.status == 409)
            wq_finish(q, j, WQ_FAILED, 409,
                      j->op == WIRE_INCR ? "not_integer" : "conflict",
                      j->op == WIRE_INCR
                          ? "the stored value is not an integer or would overflow"
                          : "the shard refused the write",
                      due);
        else
            wq_finish(q, j, WQ_FAILED, r.status >= 400 ? r.status : 500,
                      "store_error", "the shard could not apply the write", due);
    }
}

static void *wq_worker(void *arg)
{
    wq_t *q = arg;
    wire_buf buf = {0};
    char why[1024];

    pthread_mutex_lock(&q->mu);
    while (!q->stopping) {
        uint64_t now = wq_now_us(), wake = now + 100000;
        int si = wq_pick(q, now, &wake);
        wq_shard *s;
        wq_job *batch;
        wq_waiter *due = NULL;
        httpc_resp resp;
        size_t n;
        int rc;

        if (si < 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            uint64_t ns = (uint64_t)ts.tv_nsec + (wake - now) * 1000;
            ts.tv_sec += (time_t)(ns / 1000000000ULL);
            ts.tv_nsec = (long)(ns % 1000000000ULL);
            pthread_cond_timedwait(&q->work, &q->mu, &ts);
            continue;
        }
        s = &q->shards[si];
        s->busy = 1;
        batch = wq_take_batch(q, s, &n);
        pthread_mutex_unlock(&q->mu);

        wq_encode(batch, &buf);
        rc = wq_send(q, (uint32_t)si, &buf, n, &resp, why, sizeof why);
        metric_add(&m_batches, rc == 0);

        pthread_mutex_lock(&q->mu);
        s->busy = 0;
        if (rc == 0) {
            s->failures = 0;
            wq_apply_results(q, batch, &resp, &due);
        } else if (rc == -2) {
            /* No primary (failover under way): hold the writes, bounded by
             * the queue's capacity, without spending their retries. */
            wq_requeue(q, s, batch, n);
            s->next_try_us = wq_now_us() + WQ_HOLD_US;
        } else if (++s->failures > (uint32_t)q->cfg.retry_max) {
            log_error("shard %d: giving up on %zu writes after %u tries: %s",
                      si, n, s->failures, why);
            for (wq_job *j = batch, *nx; j; j = nx) {
                nx = j->next;
                j->attempts = s->failures;
                wq_finish(q, j, WQ_FAILED, 503, "shard_unavailable",
                          "the shard primary could not be reached", &due);
            }
            s->failures = 0;
        } else {
            uint64_t backoff = (uint64_t)q->cfg.retry_backoff_ms * 1000ULL
                               << (s->failures - 1 < 16 ? s->failures - 1 : 16);
            if (backoff > WQ_BACKOFF_MAX_US)
                backoff = WQ_BACKOFF_MAX_US;
            log_warn("shard %d: batch of %zu failed (try %u of %lld), retrying "
                     "in %llu ms: %s", si, n, s->failures,
                     (long long)q->cfg.retry_max + 1,
                     (unsigned long long)backoff / 1000, why);
            metric_add(&m_retries, 1);
            wq_requeue(q, s, batch, n);
            s->next_try_us = wq_now_us() + backoff;
        }
        metric_set(&m_depth, (int64_t)q->depth);
        pthread_cond_broadcast(&q->work);
        pthread_mutex_unlock(&q->mu);
        httpc_resp_free(&resp);
        wq_notify_due(q, due);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    wire_buf_free(&buf);
    return NULL;
}

/* Answers waiters whose wait is over while their job is still queued. */
static void *wq_reaper(void *arg)
{
    wq_t *q = arg;
    struct timespec tick = {0, 20 * 1000000L};

    for (;;) {
        wq_waiter *due = NULL;
        uint64_t now = wq_now_us();
        int stopping;

        pthread_mutex_lock(&q->mu);
        stopping = q->stopping;
        for (wq_waiter *w = q->waiters, *n; w; w = n) {
            n = w->next;
            if (!stopping && w->deadline_us > now)
                continue;
            wq_waiter **pp = &w->job->waiters;
            while (*pp != w)
                pp = &(*pp)->jnext;
            *pp = w->jnext;
            wq_waiter_unlink(q, w);
            w->out = wq_outcome_of(w->job);
            w->jnext = due;
            due = w;
        }
        pthread_mutex_unlock(&q->mu);
        wq_notify_due(q, due);
        if (stopping)
            return NULL;
        nanosleep(&tick, NULL);
    }
}

wq_t *wq_start(const kv_config *cfg, topo_watch *topo, wq_notify_fn notify)
{
    wq_t *q = calloc(1, sizeof *q);

    if (q == NULL)
        return NULL;
    q->cfg = *cfg;
    q->topo = topo;
    q->notify = notify;
    hlc_init(&q->hlc, NULL);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->work, NULL);
    metrics_register(&m_admitted);
    metrics_register(&m_applied);
    metrics_register(&m_failed);
    metrics_register(&m_rejected);
    metrics_register(&m_batches);
    metrics_register(&m_retries);
    metrics_register(&m_depth);
    metrics_register_hist(&m_apply);
    q->workers = calloc((size_t)cfg->worker_count, sizeof *q->workers);
    for (int64_t i = 0; i < cfg->worker_count; i++)
        pthread_create(&q->workers[i], NULL, wq_worker, q);
    pthread_create(&q->reaper, NULL, wq_reaper, q);
    return q;
}

void wq_stop(wq_t *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    for (int64_t i = 0; i < q->cfg.worker_count; i++)
        pthread_join(q->workers[i], NULL);
    pthread_join(q->reaper, NULL);
    if (q->depth)
        log_warn("stopping with %zu writes not yet applied", q->depth);
    for (size_t b = 0; b < WQ_HASH_BUCKETS; b++)
        for (wq_job *j = q->table[b], *n; j; j = n) {
            n = j->hnext;
            wq_job_free(j);
        }
    free(q->workers);
    pthread_cond_destroy(&q->work);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

cJSON *wq_job_json(wq_t *q, uint64_t id)
{
    cJSON *o = NULL;
    wq_job *j;

    pthread_mutex_lock(&q->mu);
    j = *wq_slot(q, id);
    if (j) {
        static const char *const names[] = {"queued", "applied", "failed"};
        char idtxt[24];
        snprintf(idtxt, sizeof idtxt, "%llu", (unsigned long long)j->id);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "job", idtxt);
        cJSON_AddStringToObject(o, "key", j->key);
        cJSON_AddStringToObject(o, "op", wq_op_name(j->op));
        cJSON_AddStringToObject(o, "status", names[j->state]);
        cJSON_AddNumberToObject(o, "version", (double)j->id);
        cJSON_AddNumberToObject(o, "attempts", j->attempts);
        cJSON_AddNumberToObject(o, "shard", j->shard);
        if (j->state == WQ_APPLIED && j->op == WIRE_INCR)
            cJSON_AddNumberToObject(o, "value", (double)j->number);
        if (j->state == WQ_FAILED) {
            cJSON_AddStringToObject(o, "error", j->error);
            cJSON_AddStringToObject(o, "message", j->message);
            cJSON_AddNumberToObject(o, "code", j->status);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return o;
}

void wq_stats_json(wq_t *q, cJSON *obj)
{
    cJSON *shards = cJSON_CreateArray();

    pthread_mutex_lock(&q->mu);
    cJSON_AddNumberToObject(obj, "depth", (double)q->depth);
    cJSON_AddNumberToObject(obj, "capacity", (double)q->cfg.max_queue_size);
    for (int64_t i = 0; i < q->cfg.shards && i < WQ_MAX_SHARDS; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "shard", (double)i);
        cJSON_AddNumberToObject(s, "backlog", (double)q->shards[i].depth);
        cJSON_AddNumberToObject(s, "failures", q->shards[i].failures);
        cJSON_AddItemToArray(shards, s);
    }
    pthread_mutex_unlock(&q->mu);
    cJSON_AddItemToObject(obj, "shards", shards);
    cJSON_AddNumberToObject(obj, "admitted", (double)metric_get(&m_admitted));
    cJSON_AddNumberToObject(obj, "applied", (double)metric_get(&m_applied));
    cJSON_AddNumberToObject(obj, "failed", (double)metric_get(&m_failed));
    cJSON_AddNumberToObject(obj, "rejected", (double)metric_get(&m_rejected));
    cJSON_AddNumberToObject(obj, "batches", (double)metric_get(&m_batches));
    cJSON_AddNumberToObject(obj, "retries", (double)metric_get(&m_retries));
    cJSON_AddNumberToObject(obj, "apply_p50_ms", lat_percentile(&m_apply, 0.5) / 1000.0);
    cJSON_AddNumberToObject(obj, "apply_p99_ms", lat_percentile(&m_apply, 0.99) / 1000.0);
}
