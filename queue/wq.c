#include "wq.h"

#include "clock.h"
#include "coalesce.h"
#include "hlc.h"
#include "httpc.h"
#include "journal.h"
#include "kvhdr.h"
#include "log.h"
#include "metrics.h"
#include "ratelimit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define WQ_MAX_SHARDS 64
#define WQ_JOB_BUCKETS (1u << 16)
#define WQ_KEY_BUCKETS (1u << 16)
#define WQ_BACKOFF_MAX_US 5000000ULL
#define WQ_HOLD_US 200000ULL /* a shard without a primary is retried this often */
#define WQ_BATCH_BYTES ((size_t)16 << 20) /* well under the store's body cap */

enum wq_class { WQ_MAIN, WQ_EXCESS, WQ_STALE, WQ_NCLASS };
static const char *const wq_class_names[] = {"main", "excess", "stale"};

typedef struct wq_waiter {
    void *who;
    wq_outcome out;                   /* filled when it is due */
    uint64_t deadline_us;
    struct wq_job *job;
    struct wq_waiter *jnext;          /* the job's waiters; then the due list */
    struct wq_waiter *prev, *next;    /* every waiter, for the timeout scan */
} wq_waiter;

typedef struct wq_job {               /* one client write */
    uint64_t id;                      /* = its version */
    uint8_t op;
    enum wq_state state;
    uint16_t status;
    uint32_t shard;
    uint32_t attempts;
    int64_t number;
    uint64_t admitted_us;
    uint64_t applied_as;              /* the op version it ended with */
    enum wq_class charged;            /* MAIN or EXCESS: whose capacity it holds */
    const char *error, *message;      /* static text */
    char *key;
    size_t klen;
    struct wq_op *op_of;              /* while queued */
    struct wq_job *jnext;             /* the op's jobs */
    struct wq_job *next;              /* the finished list */
    struct wq_job *hnext;             /* id hash chain */
    wq_waiter *waiters;
} wq_job;

typedef struct wq_op {                /* one key's write, as sent to a shard */
    uint8_t kind;
    uint64_t version;                 /* its newest job's */
    int64_t delta;
    char *val;
    size_t vlen;
    struct wq_key *k;
    uint32_t shard;
    enum wq_class cls;
    int inflight;
    uint32_t attempts;                /* failed sends */
    uint64_t oldest_us;               /* admission of its first job */
    size_t njobs;
    wq_job *jobs;
    struct wq_op *prev, *next;        /* its FIFO; the batch while in flight */
    struct wq_op *kprev, *knext;      /* the key's ops, oldest first */
} wq_op;

typedef struct wq_key {               /* exists while the key has ops */
    char *key;
    size_t klen;
    wq_op *first, *last;
    struct wq_key *hnext;
} wq_key;

typedef struct wq_fifo {
    wq_op *head, *tail;
} wq_fifo;

typedef struct wq_shard {
    wq_fifo fifo[WQ_NCLASS];
    size_t ops;                       /* queued, not in flight */
    int busy;                         /* a batch is in flight */
    uint64_t sent_us;                 /* when the last batch went out */
    int backlog;                      /* writes arrived while it was out */
    uint64_t next_try_us;
    uint32_t failures;                /* consecutive failed batches */
    uint64_t sent_epoch;              /* the shard epoch the last batch went to */
} wq_shard;

struct wq {
    kv_config cfg;
    topo_watch *topo;
    wq_notify_fn notify;
    jnl_t *jnl;
    ratelimit_t *key_rate;                   /* admission: over it spills to EXCESS */
    ratelimit_t *drain_rate;                 /* EXCESS drains at the same rate */
    hlc_t hlc;
    pthread_mutex_t mu;
    pthread_cond_t work;
    int stopping;
    size_t cap[WQ_NCLASS];
    /* Capacity: a job holds a place in MAIN or EXCESS (where it was
     * admitted) until it ends, in flight or not, wherever it moved since.
     * STALE's capacity bounds the jobs sitting in STALE. */
    size_t charged[WQ_NCLASS];
    size_t jobs_in[WQ_NCLASS];        /* jobs queued in each FIFO now */
    wq_shard shards[WQ_MAX_SHARDS];
    wq_job *jobs[WQ_JOB_BUCKETS];
    wq_key *keys[WQ_KEY_BUCKETS];
    wq_job *fin_head, *fin_tail;      /* finished jobs, oldest first */
    size_t nfinished;
    wq_waiter *waiters;
    double tokens;                    /* global dispatch budget */
    uint64_t tokens_at_us;
    unsigned rr;
    uint64_t log_window_us;           /* spill logging: at most 10 a second */
    unsigned log_count, log_dropped;
    pthread_t *workers;
    pthread_t reaper;
};

METRIC_COUNTER(m_admitted, "kv_queue_admitted_total", "jobs accepted");
METRIC_COUNTER(m_applied, "kv_queue_applied_total", "jobs applied by a shard");
METRIC_COUNTER(m_failed, "kv_queue_failed_total", "jobs that ended failed");
METRIC_COUNTER(m_rejected, "kv_queue_rejected_total", "writes refused with 429");
METRIC_COUNTER(m_coalesced, "kv_queue_coalesced_total",
               "jobs merged into a pending op of the same key");
METRIC_COUNTER(m_dispatched, "kv_queue_dispatched_total", "ops sent to shards");
METRIC_COUNTER(m_batches, "kv_queue_batches_total", "batches sent to primaries");
METRIC_COUNTER(m_retries, "kv_queue_retries_total", "batches retried after an error");
METRIC_COUNTER(m_spill_excess, "kv_queue_spilled_excess_total",
               "writes of keys over max_key_rate sent to EXCESS");
METRIC_COUNTER(m_spill_stale, "kv_queue_spilled_stale_total",
               "ops that waited past stale_after_ms moved to STALE");
METRIC_COUNTER(m_replayed, "kv_queue_replayed_total", "jobs replayed from the journal");
METRIC_GAUGE(m_depth_main, "kv_queue_depth_main", "jobs queued in MAIN");
METRIC_GAUGE(m_depth_excess, "kv_queue_depth_excess", "jobs queued in EXCESS");
METRIC_GAUGE(m_depth_stale, "kv_queue_depth_stale", "jobs queued in STALE");
static metrics_hist m_apply = {.name = "kv_queue_apply_seconds",
                           .help = "admission to apply latency"};

#define wq_now_us clock_mono_us

const char *wq_op_name(uint8_t op)
{
    return op == WIRE_PUT ? "put" : op == WIRE_DEL ? "delete" : "incr";
}

static void wq_gauges(wq_t *q)
{
    metrics_set(&m_depth_main, (int64_t)q->jobs_in[WQ_MAIN]);
    metrics_set(&m_depth_excess, (int64_t)q->jobs_in[WQ_EXCESS]);
    metrics_set(&m_depth_stale, (int64_t)q->jobs_in[WQ_STALE]);
}

/* One log line per spill, at most 10 a second (a hot key spills a lot). */
static void wq_log_spill(wq_t *q, const char *fmt, const char *key, size_t klen,
                         uint32_t shard)
{
    uint64_t now = wq_now_us();
    if (now - q->log_window_us > 1000000) {
        if (q->log_dropped)
            log_info("(%u more spills not logged)", q->log_dropped);
        q->log_window_us = now;
        q->log_count = q->log_dropped = 0;
    }
    if (q->log_count++ < 10)
        log_info(fmt, (int)(klen > 64 ? 64 : klen), key, shard);
    else
        q->log_dropped++;
}

/* ---- the tables ---------------------------------------------------------- */

static wq_job **wq_job_slot(wq_t *q, uint64_t id)
{
    wq_job **pp = &q->jobs[(id ^ (id >> 17)) % WQ_JOB_BUCKETS];
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->hnext;
    return pp;
}

static wq_key **wq_key_slot(wq_t *q, const char *key, size_t klen)
{
    wq_key **pp = &q->keys[XXH3_64bits(key, klen) % WQ_KEY_BUCKETS];
    while (*pp && ((*pp)->klen != klen || memcmp((*pp)->key, key, klen) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void wq_fifo_push(wq_fifo *f, wq_op *o)
{
    o->next = NULL;
    o->prev = f->tail;
    if (f->tail)
        f->tail->next = o;
    else
        f->head = o;
    f->tail = o;
}

static void wq_fifo_push_front(wq_fifo *f, wq_op *o)
{
    o->prev = NULL;
    o->next = f->head;
    if (f->head)
        f->head->prev = o;
    else
        f->tail = o;
    f->head = o;
}

static void wq_fifo_del(wq_fifo *f, wq_op *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        f->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        f->tail = o->prev;
    o->prev = o->next = NULL;
}

/* Move every queued op of a key to another FIFO, keeping their order. */
static void wq_key_move(wq_t *q, wq_key *k, enum wq_class to)
{
    for (wq_op *o = k->first; o; o = o->knext) {
        wq_shard *s = &q->shards[o->shard];
        if (o->inflight || o->cls == to)
            continue;
        wq_fifo_del(&s->fifo[o->cls], o);
        q->jobs_in[o->cls] -= o->njobs;
        q->jobs_in[to] += o->njobs;
        o->cls = to;
        wq_fifo_push(&s->fifo[to], o);
    }
}

static void wq_op_free(wq_t *q, wq_op *o)
{
    wq_key *k = o->k;
    if (o->kprev)
        o->kprev->knext = o->knext;
    else
        k->first = o->knext;
    if (o->knext)
        o->knext->kprev = o->kprev;
    else
        k->last = o->kprev;
    if (k->first == NULL) {
        wq_key **pp = wq_key_slot(q, k->key, k->klen);
        *pp = k->hnext;
        free(k->key);
        free(k);
    }
    free(o->val);
    free(o);
}

/* ---- ending jobs ---------------------------------------------------------- */

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

typedef struct wq_ended {             /* collected under the lock */
    wq_waiter *due;                   /* waiters to notify */
    uint64_t *ids;                    /* journal records to forget */
    size_t nids, capids;
} wq_ended;

static void wq_ended_id(wq_ended *e, uint64_t id)
{
    if (e->nids == e->capids) {
        size_t cap = e->capids ? 2 * e->capids : 256;
        uint64_t *n = realloc(e->ids, cap * sizeof *n);
        if (n == NULL)
            return; /* replayed later: a no-op at the store */
        e->ids = n;
        e->capids = cap;
    }
    e->ids[e->nids++] = id;
}

/* With the lock held: every job of the op ends; the op is freed. */
static void wq_end_op(wq_t *q, wq_op *o, enum wq_state st, uint16_t status,
                      int64_t number, const char *error, const char *message,
                      wq_ended *e)
{
    uint64_t now = wq_now_us();

    for (wq_job *j = o->jobs, *jn; j; j = jn) {
        jn = j->jnext;
        j->state = st;
        j->status = status;
        j->number = number;
        j->error = error;
        j->message = message;
        j->attempts = o->attempts + (st == WQ_APPLIED);
        j->applied_as = o->version;
        j->op_of = NULL;
        q->charged[j->charged]--;
        metrics_add(st == WQ_APPLIED ? &m_applied : &m_failed, 1);
        metrics_hist_record(&m_apply, now - j->admitted_us);
        wq_ended_id(e, j->id);
        for (wq_waiter *w = j->waiters, *wn; w; w = wn) {
            wn = w->jnext;
            wq_waiter_unlink(q, w);
            w->out = wq_outcome_of(j);
            w->jnext = e->due;
            e->due = w;
        }
        j->waiters = NULL;
        j->next = NULL;
        if (q->fin_tail)
            q->fin_tail->next = j;
        else
            q->fin_head = j;
        q->fin_tail = j;
        /* Forget the oldest finished jobs past jobs_kept. */
        for (q->nfinished++; q->nfinished > (size_t)q->cfg.jobs_kept;
             q->nfinished--) {
            wq_job *old = q->fin_head;
            *wq_job_slot(q, old->id) = old->hnext;
            q->fin_head = old->next;
            if (q->fin_head == NULL)
                q->fin_tail = NULL;
            free(old->key);
            free(old);
        }
    }
    wq_op_free(q, o);
}

/* Without the lock: tell the waiters, forget the journal records. */
static void wq_ended_flush(wq_t *q, wq_ended *e)
{
    for (wq_waiter *w = e->due, *n; w; w = n) {
        n = w->jnext;
        q->notify(w->who, &w->out);
        free(w);
    }
    if (e->nids)
        jnl_forget(q->jnl, e->ids, e->nids);
    free(e->ids);
}

/* ---- admission ------------------------------------------------------------ */

/* Merge a write into the key's newest queued op (queue/coalesce.h). */
static int wq_coalesce(wq_op *o, const wq_write *w, uint64_t version)
{
    enum coalesce_how how = coalesce_rule(o->kind, w->op);

    if (o->inflight || how == COALESCE_NONE)
        return 0;
    if (how == COALESCE_ADD) {
        o->delta += w->delta;
    } else {
        char *val = NULL;
        if (w->vlen && (val = malloc(w->vlen)) == NULL)
            return 0;
        if (w->vlen)
            memcpy(val, w->val, w->vlen);
        free(o->val);
        o->val = val;
        o->vlen = w->vlen;
        o->kind = w->op;
        o->delta = 0;
    }
    o->version = version;
    return 1;
}

/* With the lock held: queue an admitted job (journaled already). */
static int wq_enqueue(wq_t *q, wq_job *j, const wq_write *w, enum wq_class cls,
                      wq_key *k)
{
    wq_shard *s = &q->shards[j->shard];
    wq_op *o = k->last;

    if (o && o->cls == cls && wq_coalesce(o, w, j->id)) {
        metrics_add(&m_coalesced, 1);
    } else {
        o = calloc(1, sizeof *o);
        if (o == NULL || (w->vlen && (o->val = malloc(w->vlen)) == NULL)) {
            free(o);
            return -1;
        }
        if (w->vlen)
            memcpy(o->val, w->val, w->vlen);
        o->vlen = w->vlen;
        o->kind = w->op;
        o->delta = w->delta;
        o->version = j->id;
        o->k = k;
        o->shard = j->shard;
        o->cls = cls;
        o->oldest_us = j->admitted_us;
        o->kprev = k->last;
        if (k->last)
            k->last->knext = o;
        else
            k->first = o;
        k->last = o;
        wq_fifo_push(&s->fifo[cls], o);
        s->ops++;
    }
    j->op_of = o;
    j->jnext = o->jobs;
    o->jobs = j;
    o->njobs++;
    q->jobs_in[cls]++;
    return 0;
}

static wq_key *wq_key_get(wq_t *q, const char *key, size_t klen)
{
    wq_key **pp = wq_key_slot(q, key, klen), *k = *pp;

    if (k)
        return k;
    k = calloc(1, sizeof *k);
    if (k == NULL || (k->key = malloc(klen + 1)) == NULL) {
        free(k);
        return NULL;
    }
    memcpy(k->key, key, klen);
    k->key[klen] = '\0';
    k->klen = klen;
    *pp = k;
    return k;
}

/* The FIFO a new write of this key goes to: the key's current one if it has
 * queued ops (its writes stay in order), else EXCESS when over its rate. */
static enum wq_class wq_route(wq_key *k, int over_rate)
{
    enum wq_class cls = WQ_MAIN;

    for (wq_op *o = k->last; o; o = o->kprev)
        if (!o->inflight) {
            cls = o->cls;
            break;
        }
    if (over_rate && cls == WQ_MAIN)
        cls = WQ_EXCESS;
    return cls;
}

static wq_job *wq_job_new(const wq_write *w, uint32_t shard)
{
    wq_job *j = calloc(1, sizeof *j);
    if (j == NULL || (j->key = malloc(w->klen + 1)) == NULL) {
        free(j);
        return NULL;
    }
    memcpy(j->key, w->key, w->klen);
    j->key[w->klen] = '\0';
    j->klen = w->klen;
    j->op = w->op;
    j->shard = shard;
    return j;
}

/* An admission waiting for its journal group. */
typedef struct wq_pending {
    const wq_write *w;
    wq_job *job;
    wq_waiter *wt;
    void *waiter;
    uint64_t wait_ms;
    int over;
    enum wq_class charged;     /* the capacity it holds */
    int rc;
} wq_pending;

static uint64_t wq_next_id(void *arg)
{
    return hlc_next(&((wq_t *)arg)->hlc);
}

/* The journal leader, once a group is durable, in id order: queue them. */
static void wq_committed(void *arg, jnl_rec *const *recs, size_t n)
{
    wq_t *q = arg;
    uint64_t now = wq_now_us();

    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        wq_pending *p = recs[i]->ctx;
        wq_job *j = p->job;
        wq_key *k = wq_key_get(q, p->w->key, p->w->klen);
        enum wq_class cls;

        j->id = recs[i]->id;
        j->admitted_us = now;
        if (k == NULL) {
            p->rc = WQ_NOMEM; /* journaled: replayed at the next start */
            continue;
        }
        /* A key going over its rate takes its queued writes along to
         * EXCESS: all of a key's ops share one FIFO, which keeps them in
         * order. */
        cls = wq_route(k, p->over);
        if (cls == WQ_EXCESS && p->over) {
            wq_key_move(q, k, WQ_EXCESS);
            metrics_add(&m_spill_excess, 1);
            wq_log_spill(q, "key %.*s over max_key_rate: to EXCESS (shard %u)",
                         p->w->key, p->w->klen, j->shard);
        }
        if (wq_enqueue(q, j, p->w, cls, k) != 0) {
            if (k->first == NULL) {
                *wq_key_slot(q, k->key, k->klen) = k->hnext;
                free(k->key);
                free(k);
            }
            p->rc = WQ_NOMEM;
            continue;
        }
        *wq_job_slot(q, j->id) = j;
        if (p->wt) {
            wq_waiter *wt = p->wt;
            wt->who = p->waiter;
            wt->job = j;
            wt->deadline_us = now + p->wait_ms * 1000;
            j->waiters = wt;
            wt->next = q->waiters;
            if (q->waiters)
                q->waiters->prev = wt;
            q->waiters = wt;
            p->wt = NULL; /* owned by the job now */
        }
        p->job = NULL;
        p->rc = WQ_OK;
        metrics_add(&m_admitted, 1);
    }
    wq_gauges(q);
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->mu);
}

void wq_admit_many(wq_t *q, wq_admission *as, size_t n)
{
    topo_t *t = topo_watch_get(q->topo);
    wq_pending *ps = calloc(n, sizeof *ps);
    jnl_rec *recs = calloc(n, sizeof *recs);
    jnl_rec **rp = calloc(n, sizeof *rp);
    int *rcs = calloc(n, sizeof *rcs);
    size_t *which = calloc(n, sizeof *which); /* rp[k] is as[which[k]] */
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        as[i].rc = WQ_OK;
    if (ps == NULL || recs == NULL || rp == NULL || rcs == NULL || which == NULL) {
        for (size_t i = 0; i < n; i++)
            as[i].rc = WQ_NOMEM;
        goto out;
    }
    /* Route each write and make its job. */
    for (size_t i = 0; i < n; i++) {
        wq_admission *a = &as[i];
        wq_pending *p = &ps[i];
        uint32_t shard = t ? ring_lookup(t->ring, a->w.key, a->w.klen) : 0;

        if (t == NULL || shard >= WQ_MAX_SHARDS) {
            a->rc = WQ_NO_TOPOLOGY;
            continue;
        }
        *p = (wq_pending){.w = &a->w, .waiter = a->waiter,
                          .wait_ms = a->wait_ms, .rc = WQ_OK};
        if (q->key_rate)
            p->over = !ratelimit_check(q->key_rate, a->w.key, clock_mono_ms()).allowed;
        if ((p->job = wq_job_new(&a->w, shard)) == NULL ||
            (a->waiter && (p->wt = calloc(1, sizeof *p->wt)) == NULL)) {
            a->rc = WQ_NOMEM;
            continue;
        }
        p->job->charged = p->charged = p->over ? WQ_EXCESS : WQ_MAIN;
    }
    /* Hold a place for each, then journal them together (the group's
     * leader queues the jobs: wq_committed). */
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        wq_admission *a = &as[i];
        wq_pending *p = &ps[i];
        if (a->rc != WQ_OK)
            continue;
        enum wq_class charged = p->charged;
        if (q->stopping || q->charged[charged] >= q->cap[charged]) {
            a->rc = q->stopping ? WQ_STOPPING : WQ_FULL;
            metrics_add(&m_rejected, a->rc == WQ_FULL);
            a->full = wq_class_names[charged];
            continue;
        }
        q->charged[charged]++; /* held until the job ends */
        recs[k] = (jnl_rec){.op = a->w.op, .delta = a->w.delta,
                            .key = a->w.key, .klen = a->w.klen,
                            .val = a->w.val, .vlen = a->w.vlen, .ctx = p};
        rp[k] = &recs[k];
        which[k++] = i;
    }
    pthread_mutex_unlock(&q->mu);
    if (k && jnl_append_many(q->jnl, rp, k, rcs) != 0)
        for (size_t m = 0; m < k; m++)
            rcs[m] = -1;
    for (size_t m = 0; m < k; m++) {
        wq_admission *a = &as[which[m]];
        a->rc = rcs[m] != 0 ? WQ_JOURNAL : ps[which[m]].rc;
        if (a->rc == WQ_OK) {
            a->job = recs[m].id;
            continue;
        }
        pthread_mutex_lock(&q->mu);
        q->charged[ps[which[m]].charged]--;
        pthread_mutex_unlock(&q->mu);
    }
out:
    for (size_t i = 0; ps && i < n; i++) {
        if (ps[i].job)
            free(ps[i].job->key);
        free(ps[i].job);
        free(ps[i].wt);
    }
    topo_put(t);
    free(ps);
    free(recs);
    free(rp);
    free(rcs);
    free(which);
}

/* ---- dispatch ------------------------------------------------------------- */

/* The global budget: a token bucket of dispatch_rate ops/s (one second of
 * burst). Unlimited when dispatch_rate is 0. */
static size_t wq_budget(wq_t *q, uint64_t now, uint64_t *wake_us)
{
    double rate = (double)q->cfg.dispatch_rate;

    if (rate <= 0)
        return (size_t)q->cfg.batch_max;
    q->tokens += rate * (double)(now - q->tokens_at_us) / 1e6;
    if (q->tokens > rate)
        q->tokens = rate;
    q->tokens_at_us = now;
    if (q->tokens < 1) {
        uint64_t at = now + (uint64_t)((1 - q->tokens) / rate * 1e6) + 1;
        if (at < *wake_us)
            *wake_us = at;
        return 0;
    }
    return q->tokens < (double)q->cfg.batch_max ? (size_t)q->tokens
                                                : (size_t)q->cfg.batch_max;
}

/* A shard backing off after failed sends: has the topology moved it on to
 * a new epoch (a failover) since? Then its writes go to the new primary at
 * once, not after the backoff the dead one earned (up to 5 s: longer than
 * a client's ?sync=1 wait once the failover itself took 3). */
static int wq_primary_moved(wq_t *q, size_t shard, wq_shard *s)
{
    topo_t *t = topo_watch_get(q->topo);
    int moved = t && shard < t->nshards && t->shards[shard].primary &&
                t->shards[shard].epoch != s->sent_epoch;

    topo_put(t);
    return moved;
}

/* A shard whose turn it is: has ops, no batch in flight, not backing off.
 * Round-robin so that one busy shard cannot starve the others. */
static int wq_pick(wq_t *q, uint64_t now, uint64_t *wake_us)
{
    for (size_t n = 0; n < WQ_MAX_SHARDS; n++) {
        size_t i = (q->rr + n) % WQ_MAX_SHARDS;
        wq_shard *s = &q->shards[i];
        if (s->ops == 0 || s->busy)
            continue;
        if (s->next_try_us > now && !wq_primary_moved(q, i, s)) {
            if (s->next_try_us < *wake_us)
                *wake_us = s->next_try_us;
            continue;
        }
        /* Linger: when writes kept arriving while the last batch was out
         * (load), the next one waits until batch_linger_us after the last
         * went out, unless it is full. Fewer, bigger batches: each costs
         * the shard a commit and a replication round. A client writing one
         * at a time never waits: its shard had nothing queued. */
        uint64_t ready = s->sent_us + (uint64_t)q->cfg.batch_linger_us;
        if (s->backlog && ready > now && s->ops < (size_t)q->cfg.batch_max) {
            if (ready < *wake_us)
                *wake_us = ready;
            continue;
        }
        q->rr = (unsigned)(i + 1);
        return (int)i;
    }
    return -1;
}

/* Move an op from its FIFO to the end of the batch being built. */
static void wq_take(wq_t *q, wq_shard *s, wq_op *o, wq_op **first,
                    wq_op **tail)
{
    wq_fifo_del(&s->fifo[o->cls], o);
    s->ops--;
    o->inflight = 1;
    q->jobs_in[o->cls] -= o->njobs;
    if (*tail)
        (*tail)->next = o;
    else
        *first = o;
    *tail = o;
}

/* Fill a batch: MAIN first, then EXCESS ops whose key has drain budget, and
 * STALE only when there is no fresh work. Returns the first op (linked by
 * next) and how many. */
static wq_op *wq_fill(wq_t *q, wq_shard *s, size_t budget, size_t *n_out)
{
    wq_op *first = NULL, *tail = NULL;
    size_t n = 0, bytes = 0;
    uint64_t now_ms = clock_mono_ms();

    /* Large values: also stop at WQ_BATCH_BYTES (one op always goes). */
    for (; n < budget && s->fifo[WQ_MAIN].head && bytes < WQ_BATCH_BYTES; n++) {
        bytes += s->fifo[WQ_MAIN].head->vlen + s->fifo[WQ_MAIN].head->k->klen;
        wq_take(q, s, s->fifo[WQ_MAIN].head, &first, &tail);
    }
    for (wq_op *o = s->fifo[WQ_EXCESS].head, *nx;
         o && n < budget && bytes < WQ_BATCH_BYTES; o = nx) {
        nx = o->next;
        /* Only a key's oldest queued op may go (its order), and only as often
         * as max_key_rate allows. */
        if (o->kprev && !o->kprev->inflight)
            continue;
        if (q->drain_rate && !ratelimit_check(q->drain_rate, o->k->key, now_ms).allowed)
            continue;
        bytes += o->vlen + o->k->klen;
        wq_take(q, s, o, &first, &tail);
        n++;
    }
    if (n == 0)
        for (; n < budget && s->fifo[WQ_STALE].head; n++)
            wq_take(q, s, s->fifo[WQ_STALE].head, &first, &tail);
    *n_out = n;
    return first;
}

/* A failed batch goes back in front of its FIFO (or its key's current one),
 * in order: reverse it, then push each op to the front. */
static void wq_requeue(wq_t *q, wq_shard *s, wq_op *first)
{
    wq_op *rev = NULL;

    for (wq_op *o = first, *nx; o; o = nx) {
        nx = o->next;
        o->next = rev;
        rev = o;
    }
    for (wq_op *o = rev, *nx; o; o = nx) {
        enum wq_class cls = o->cls;
        nx = o->next;
        /* The key may have moved on (to STALE, say) while this was away. */
        for (wq_op *later = o->knext; later; later = later->knext)
            if (!later->inflight) {
                cls = later->cls;
                break;
            }
        o->inflight = 0;
        o->cls = cls;
        q->jobs_in[cls] += o->njobs;
        wq_fifo_push_front(&s->fifo[cls], o);
        s->ops++;
    }
}

static void wq_encode(wq_op *first, wire_buf *buf)
{
    char delta[8];

    wire_buf_reset(buf);
    for (wq_op *o = first; o; o = o->next) {
        wire_op op = {.op = o->kind, .version = o->version, .key = o->k->key,
                      .key_len = o->k->klen, .val = o->val, .val_len = o->vlen};
        if (o->kind == WIRE_INCR) {
            wire_encode_delta(o->delta, delta);
            op.val = delta;
            op.val_len = sizeof delta;
        }
        wire_put_op(buf, &op);
    }
}

enum { WQ_SENT = 0, WQ_SEND_FAILED = -1, WQ_NO_PRIMARY = -2 };

/* Send one batch; WQ_SENT with resp filled when the shard answered 200 with
 * one result per op. */
static int wq_send(wq_t *q, uint32_t shard, const wire_buf *buf, size_t n,
                   httpc_resp *resp, uint64_t *epoch_out, char *why,
                   size_t whylen)
{
    topo_t *t = topo_watch_get(q->topo);
    char url[512], auth[KVHDR_AUTH_MAX], epoch[KVHDR_EPOCH_MAX];
    const char *hdrs[4] = {"Content-Type: application/octet-stream", NULL};
    int nh = 1;

    memset(resp, 0, sizeof *resp);
    if (t == NULL || shard >= t->nshards || t->shards[shard].primary == NULL) {
        snprintf(why, whylen, "shard %u has no primary", shard);
        topo_put(t);
        return WQ_NO_PRIMARY;
    }
    snprintf(url, sizeof url, "%s/internal/batch", t->shards[shard].primary);
    *epoch_out = t->shards[shard].epoch;
    hdrs[nh++] = kvhdr_epoch(epoch, sizeof epoch, t->shards[shard].epoch);
    if (q->cfg.token[0])
        hdrs[nh++] = kvhdr_auth(auth, sizeof auth, q->cfg.token);
    topo_put(t);
    /* The primary may wait for W secondaries: allow for its quorum wait. */
    httpc_req req = {.method = "POST", .url = url, .body = buf->data,
                     .body_len = buf->len, .headers = hdrs,
                     .timeout_ms = q->cfg.upstream_timeout_ms +
                                   q->cfg.quorum_timeout_ms};
    if (httpc_do(&req, resp) != 0)
        snprintf(why, whylen, "%s: %s", url, resp->error);
    else if (resp->status != 200)
        snprintf(why, whylen, "%s answered %ld: %.200s", url, resp->status,
                 resp->body);
    else if (resp->len != n * WIRE_RESULT_LEN)
        snprintf(why, whylen, "%s answered %zu bytes for %zu ops", url,
                 resp->len, n);
    else
        return WQ_SENT;
    return WQ_SEND_FAILED;
}

static void wq_apply_results(wq_t *q, wq_op *first, const httpc_resp *resp,
                             wq_ended *e)
{
    size_t off = 0;
    wire_result r;

    for (wq_op *o = first, *n; o; o = n) {
        n = o->next;
        if (wire_next_result(resp->body, resp->len, &off, &r) != 1)
            r.status = 500;
        if (r.status == 200 || r.status == 208)
            wq_end_op(q, o, WQ_APPLIED, 200, r.number, NULL, NULL, e);
        else if (r.status == 409 && o->kind == WIRE_INCR)
            wq_end_op(q, o, WQ_FAILED, 409, 0, "not_integer",
                      "the stored value is not an integer, or would overflow", e);
        else
            wq_end_op(q, o, WQ_FAILED, r.status >= 400 ? r.status : 500, 0,
                      "store_error", "the shard refused the write", e);
    }
}

/* A batch failed: STALE ops that used up their retries fail, the rest go
 * back to wait for the shard, which backs off. */
static void wq_batch_failed(wq_t *q, int si, wq_op *batch, size_t n,
                            const char *why, wq_ended *e)
{
    wq_shard *s = &q->shards[si];
    wq_op *keep = NULL, *tail = NULL;
    size_t failed = 0;
    uint64_t backoff;

    for (wq_op *o = batch, *nx; o; o = nx) {
        nx = o->next;
        o->next = NULL;
        o->attempts++;
        if (o->cls == WQ_STALE && o->attempts > (uint32_t)q->cfg.stale_retry_max) {
            wq_end_op(q, o, WQ_FAILED, 503, 0, "shard_unavailable",
                      "the shard primary could not be reached; gave up after "
                      "the STALE retries", e);
            failed++;
            continue;
        }
        if (tail)
            tail->next = o;
        else
            keep = o;
        tail = o;
    }
    if (keep)
        wq_requeue(q, s, keep);
    s->failures++;
    backoff = (uint64_t)q->cfg.retry_backoff_ms * 1000ULL
              << (s->failures - 1 < 16 ? s->failures - 1 : 16);
    if (backoff > WQ_BACKOFF_MAX_US)
        backoff = WQ_BACKOFF_MAX_US;
    s->next_try_us = wq_now_us() + backoff;
    metrics_add(&m_retries, 1);
    log_warn("shard %d: batch of %zu failed (%u in a row), %zu jobs' ops gave "
             "up, retrying in %llu ms: %s", si, n, s->failures, failed,
             (unsigned long long)backoff / 1000, why);
}

static void *wq_worker(void *arg)
{
    wq_t *q = arg;
    wire_buf buf = {0};
    char why[1024];

    pthread_mutex_lock(&q->mu);
    while (!q->stopping) {
        uint64_t now = wq_now_us(), wake = now + 100000;
        size_t budget = wq_budget(q, now, &wake), n = 0;
        int si = budget ? wq_pick(q, now, &wake) : -1;
        wq_ended e = {0};
        wq_shard *s = NULL;
        wq_op *batch = NULL;
        httpc_resp resp;
        int rc;

        if (si >= 0) {
            s = &q->shards[si];
            batch = wq_fill(q, s, budget, &n);
            if (n == 0) /* only EXCESS ops without drain budget: later */
                s->next_try_us = now + 20000;
        }
        if (n == 0) {
            clock_cond_wait_us(&q->work, &q->mu, wake - now);
            continue;
        }
        s->busy = 1;
        s->sent_us = now;
        if (q->cfg.dispatch_rate > 0)
            q->tokens -= (double)n;
        wq_gauges(q);
        pthread_mutex_unlock(&q->mu);

        wq_encode(batch, &buf);
        uint64_t epoch = 0;
        rc = wq_send(q, (uint32_t)si, &buf, n, &resp, &epoch, why, sizeof why);

        pthread_mutex_lock(&q->mu);
        s->busy = 0;
        s->sent_epoch = epoch;
        s->backlog = s->ops > 0;
        if (rc == WQ_SENT) {
            s->failures = 0;
            metrics_add(&m_batches, 1);
            metrics_add(&m_dispatched, (int64_t)n);
            wq_apply_results(q, batch, &resp, &e);
        } else if (rc == WQ_NO_PRIMARY) {
            /* Failover under way: hold the writes (bounded by the
             * capacities) without spending their retries. */
            wq_requeue(q, s, batch);
            s->next_try_us = wq_now_us() + WQ_HOLD_US;
        } else {
            wq_batch_failed(q, si, batch, n, why, &e);
        }
        wq_gauges(q);
        pthread_cond_broadcast(&q->work);
        pthread_mutex_unlock(&q->mu);
        httpc_resp_free(&resp);
        wq_ended_flush(q, &e);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    wire_buf_free(&buf);
    return NULL;
}

/* Moves ops that waited past stale_after_ms from MAIN to STALE (the whole
 * key, to keep its order) while STALE has room. Lock held. */
static void wq_age(wq_t *q, uint64_t now)
{
    uint64_t limit = (uint64_t)q->cfg.stale_after_ms * 1000;

    for (size_t i = 0; i < WQ_MAX_SHARDS; i++) {
        wq_shard *s = &q->shards[i];
        wq_op *o;
        /* oldest_us + limit < now, not now - oldest_us > limit: an op
         * admitted after `now` was read must not look 584 000 years old. */
        while ((o = s->fifo[WQ_MAIN].head) && o->oldest_us + limit < now) {
            size_t jobs = 0;
            for (wq_op *x = o->k->first; x; x = x->knext)
                jobs += x->inflight ? 0 : x->njobs;
            if (q->jobs_in[WQ_STALE] + jobs > q->cap[WQ_STALE])
                break; /* STALE is full: stay in MAIN, still served */
            metrics_add(&m_spill_stale, 1);
            wq_log_spill(q, "key %.*s waited past stale_after_ms: to STALE "
                         "(shard %u)", o->k->key, o->k->klen, (uint32_t)i);
            wq_key_move(q, o->k, WQ_STALE);
        }
    }
}

/* Every 20 ms: answer waiters whose wait is over, and age MAIN. */
static void *wq_reaper(void *arg)
{
    wq_t *q = arg;
    struct timespec tick = {0, 20 * 1000000L};

    for (;;) {
        wq_ended e = {0};
        uint64_t now;
        int stopping;

        pthread_mutex_lock(&q->mu);
        now = wq_now_us(); /* under the lock: no op is younger than now */
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
            w->jnext = e.due;
            e.due = w;
        }
        if (!stopping)
            wq_age(q, now);
        wq_gauges(q);
        pthread_mutex_unlock(&q->mu);
        wq_ended_flush(q, &e);
        if (stopping)
            return NULL;
        nanosleep(&tick, NULL);
    }
}

/* Journal replay at start: every job left is queued again in MAIN with its
 * version; the store's version rule makes those already applied no-ops. */
static void wq_replay_one(const jnl_rec *r, void *ctx)
{
    wq_t *q = ctx;
    topo_t *t = topo_watch_get(q->topo);
    wq_write w = {.op = r->op, .key = r->key, .klen = r->klen, .val = r->val,
                  .vlen = r->vlen, .delta = r->delta};
    uint32_t shard = ring_lookup(t->ring, r->key, r->klen);
    wq_job *j = wq_job_new(&w, shard);
    wq_key *k;

    topo_put(t);
    hlc_observe(&q->hlc, r->id);
    if (j == NULL || (k = wq_key_get(q, r->key, r->klen)) == NULL ||
        (j->id = r->id, j->admitted_us = wq_now_us(),
         wq_enqueue(q, j, &w, WQ_MAIN, k) != 0)) {
        log_error("replay: out of memory at job %llu", (unsigned long long)r->id);
        if (j)
            free(j->key);
        free(j);
        return;
    }
    *wq_job_slot(q, j->id) = j;
    q->charged[WQ_MAIN]++; /* over capacity if it must: nothing is dropped */
    metrics_add(&m_replayed, 1);
}

wq_t *wq_start(const kv_config *cfg, topo_watch *topo, const char *journal_dir,
               wq_notify_fn notify)
{
    wq_t *q = calloc(1, sizeof *q);
    static metric *const ms[] = {
        &m_admitted, &m_applied, &m_failed, &m_rejected, &m_coalesced,
        &m_dispatched, &m_batches, &m_retries, &m_spill_excess,
        &m_spill_stale, &m_replayed, &m_depth_main, &m_depth_excess,
        &m_depth_stale};

    if (q == NULL)
        return NULL;
    q->cfg = *cfg;
    q->topo = topo;
    q->notify = notify;
    q->cap[WQ_MAIN] = (size_t)cfg->max_queue_size;
    q->cap[WQ_EXCESS] = (size_t)cfg->spillover_queue_size;
    q->cap[WQ_STALE] = (size_t)cfg->stale_queue_size;
    q->tokens_at_us = wq_now_us();
    hlc_init(&q->hlc, NULL);
    pthread_mutex_init(&q->mu, NULL);
    clock_cond_init(&q->work);
    if (cfg->max_key_rate > 0) {
        q->key_rate = ratelimit_new(RATELIMIT_SLIDING, (uint32_t)cfg->max_key_rate,
                             (uint64_t)cfg->key_window_s * 1000, 1000000);
        q->drain_rate = ratelimit_new(RATELIMIT_SLIDING, (uint32_t)cfg->max_key_rate,
                               (uint64_t)cfg->key_window_s * 1000, 1000000);
    }
    jnl_hooks hooks = {.next_id = wq_next_id, .committed = wq_committed, .arg = q};
    q->jnl = jnl_open(journal_dir, (size_t)cfg->journal_map_mb, cfg->fsync, &hooks);
    if (q->jnl == NULL) {
        ratelimit_free(q->key_rate);
        ratelimit_free(q->drain_rate);
        free(q);
        return NULL;
    }
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        metrics_register(ms[i]);
    metrics_register_hist(&m_apply);
    /* Never number below what an earlier run handed out. */
    hlc_observe(&q->hlc, jnl_high(q->jnl));
    /* Replay needs the ring: wait for the first topology. */
    if (jnl_count(q->jnl) > 0) {
        if (topo_watch_wait(topo, 30000) != 0) {
            log_error("no topology within 30 s: cannot replay the journal");
            jnl_close(q->jnl);
            free(q);
            return NULL;
        }
        jnl_replay(q->jnl, wq_replay_one, q);
        log_info("replayed %lld jobs from the journal in %s",
                 (long long)metrics_get(&m_replayed), journal_dir);
    }
    wq_gauges(q);
    q->workers = calloc((size_t)cfg->worker_count, sizeof *q->workers);
    for (int64_t i = 0; i < cfg->worker_count; i++)
        pthread_create(&q->workers[i], NULL, wq_worker, q);
    pthread_create(&q->reaper, NULL, wq_reaper, q);
    return q;
}

void wq_stop(wq_t *q)
{
    size_t left;

    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    for (int64_t i = 0; i < q->cfg.worker_count; i++)
        pthread_join(q->workers[i], NULL);
    pthread_join(q->reaper, NULL);
    left = q->jobs_in[WQ_MAIN] + q->jobs_in[WQ_EXCESS] + q->jobs_in[WQ_STALE];
    if (left)
        log_info("stopping with %zu jobs queued: they stay in the journal", left);
    for (size_t i = 0; i < WQ_MAX_SHARDS; i++)
        for (int c = 0; c < WQ_NCLASS; c++)
            while (q->shards[i].fifo[c].head) {
                wq_op *o = q->shards[i].fifo[c].head;
                wq_fifo_del(&q->shards[i].fifo[c], o);
                wq_op_free(q, o);
            }
    for (size_t b = 0; b < WQ_JOB_BUCKETS; b++)
        for (wq_job *j = q->jobs[b], *n; j; j = n) {
            n = j->hnext;
            free(j->key);
            free(j);
        }
    jnl_close(q->jnl);
    ratelimit_free(q->key_rate);
    ratelimit_free(q->drain_rate);
    free(q->workers);
    pthread_cond_destroy(&q->work);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

cJSON *wq_job_json(wq_t *q, uint64_t id)
{
    static const char *const names[] = {"queued", "applied", "failed"};
    cJSON *o = NULL;
    wq_job *j;
    char idtxt[24];

    pthread_mutex_lock(&q->mu);
    j = *wq_job_slot(q, id);
    if (j) {
        snprintf(idtxt, sizeof idtxt, "%llu", (unsigned long long)j->id);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "job", idtxt);
        cJSON_AddStringToObject(o, "key", j->key);
        cJSON_AddStringToObject(o, "op", wq_op_name(j->op));
        cJSON_AddStringToObject(o, "status", names[j->state]);
        cJSON_AddNumberToObject(o, "version", (double)j->id);
        cJSON_AddNumberToObject(o, "shard", j->shard);
        if (j->state == WQ_QUEUED) {
            cJSON_AddStringToObject(o, "queue", wq_class_names[j->op_of->cls]);
            cJSON_AddNumberToObject(o, "attempts", j->op_of->attempts);
        } else {
            cJSON_AddNumberToObject(o, "attempts", j->attempts);
            /* Coalesced: it went out as part of a newer write of the key. */
            if (j->applied_as != j->id)
                cJSON_AddNumberToObject(o, "coalesced_into", (double)j->applied_as);
        }
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
    cJSON *shards = cJSON_CreateArray(), *depth, *cap, *used;

    pthread_mutex_lock(&q->mu);
    depth = cJSON_AddObjectToObject(obj, "depth");
    cap = cJSON_AddObjectToObject(obj, "capacity");
    used = cJSON_AddObjectToObject(obj, "held");
    for (int c = 0; c < WQ_NCLASS; c++) {
        cJSON_AddNumberToObject(depth, wq_class_names[c], (double)q->jobs_in[c]);
        cJSON_AddNumberToObject(cap, wq_class_names[c], (double)q->cap[c]);
    }
    cJSON_AddNumberToObject(used, "main", (double)q->charged[WQ_MAIN]);
    cJSON_AddNumberToObject(used, "excess", (double)q->charged[WQ_EXCESS]);
    for (int64_t i = 0; i < q->cfg.shards && i < WQ_MAX_SHARDS; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "shard", (double)i);
        cJSON_AddNumberToObject(s, "backlog_ops", (double)q->shards[i].ops);
        cJSON_AddNumberToObject(s, "failures", q->shards[i].failures);
        cJSON_AddBoolToObject(s, "sending", q->shards[i].busy);
        cJSON_AddItemToArray(shards, s);
    }
    pthread_mutex_unlock(&q->mu);
    cJSON_AddItemToObject(obj, "shards", shards);
    cJSON_AddNumberToObject(obj, "admitted", (double)metrics_get(&m_admitted));
    cJSON_AddNumberToObject(obj, "applied", (double)metrics_get(&m_applied));
    cJSON_AddNumberToObject(obj, "failed", (double)metrics_get(&m_failed));
    cJSON_AddNumberToObject(obj, "rejected", (double)metrics_get(&m_rejected));
    cJSON_AddNumberToObject(obj, "coalesced", (double)metrics_get(&m_coalesced));
    cJSON_AddNumberToObject(obj, "dispatched_ops", (double)metrics_get(&m_dispatched));
    cJSON_AddNumberToObject(obj, "batches", (double)metrics_get(&m_batches));
    cJSON_AddNumberToObject(obj, "retried_batches", (double)metrics_get(&m_retries));
    cJSON_AddNumberToObject(obj, "spilled_excess", (double)metrics_get(&m_spill_excess));
    cJSON_AddNumberToObject(obj, "spilled_stale", (double)metrics_get(&m_spill_stale));
    cJSON_AddNumberToObject(obj, "replayed", (double)metrics_get(&m_replayed));
    cJSON_AddNumberToObject(obj, "journal_records", (double)jnl_count(q->jnl));
    cJSON_AddNumberToObject(obj, "apply_p50_ms", metrics_hist_percentile(&m_apply, 0.5) / 1000.0);
    cJSON_AddNumberToObject(obj, "apply_p99_ms", metrics_hist_percentile(&m_apply, 0.99) / 1000.0);
}
