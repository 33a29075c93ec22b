/* wq_admit: admission. A write gets a job and a place in MAIN or EXCESS
 * (its key's rate decides), is journaled with its group, and is queued by
 * the group's leader in id order (wq_admit_committed), coalescing with the
 * key's newest queued op where queue/coalesce.h allows. */
#include "wq_internal.h"

#include "clock.h"
#include "coalesce.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Merge a write into the key's newest queued op (queue/coalesce.h). */
static int wq_admit_coalesce(wq_op *o, const wq_write *w, uint64_t version)
{
    enum coalesce_how how = coalesce_rule(o->kind, w->op);

    /* A condition is about the state its client saw: merged, it would be
     * judged for another write, or let one through unjudged. */
    if (o->inflight || how == COALESCE_NONE || o->cond || w->cond)
        return 0;
    /* Increments add up only when neither sets a TTL: each would keep or
     * set the key's expiry differently. */
    if (how == COALESCE_ADD && (o->expires_at || w->expires_at))
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
        o->expires_at = w->expires_at; /* a put sets its own, or none */
    }
    o->version = version;
    return 1;
}

/* With the lock held: queue an admitted job (journaled already). */
int wq_admit_enqueue(wq_t *q, wq_job *j, const wq_write *w, enum wq_class cls,
                      wq_key *k)
{
    wq_shard *s = &q->shards[j->shard];
    wq_op *o = k->last;

    if (o && o->cls == cls && wq_admit_coalesce(o, w, j->version)) {
        metrics_add(&wq_m_coalesced, 1);
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
        o->cond = w->cond;
        o->if_match = w->if_match;
        o->expires_at = w->expires_at;
        o->version = j->version;
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
        wq_table_fifo_push(&s->fifo[cls], o);
        s->ops++;
    }
    j->op_of = o;
    j->jnext = o->jobs;
    o->jobs = j;
    o->njobs++;
    q->jobs_in[cls]++;
    return 0;
}

/* The FIFO a new write of this key goes to: the key's current one if it has
 * queued ops (its writes stay in order), else EXCESS when over its rate. */
static enum wq_class wq_admit_route(wq_key *k, int over_rate)
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

/* An admission waiting for its journal group. */
typedef struct wq_admit_pending {
    const wq_write *w;
    wq_job *job;
    wq_waiter *wt;
    void *waiter;
    uint64_t wait_ms;
    int over;
    enum wq_class charged;     /* the capacity it holds */
    enum wq_admit_rc rc;
} wq_admit_pending;

uint64_t wq_admit_next_id(void *arg)
{
    return hlc_next(&((wq_t *)arg)->hlc);
}

/* The journal leader, once a group is durable, in id order: queue them. */
void wq_admit_committed(void *arg, journal_rec *const *recs, size_t n)
{
    wq_t *q = arg;
    uint64_t now = clock_mono_us();

    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        wq_admit_pending *p = recs[i]->ctx;
        wq_job *j = p->job;
        wq_key *k = wq_table_key_get(q, p->w->key, p->w->klen);
        enum wq_class cls;

        j->id = recs[i]->job;
        j->version = recs[i]->version;
        j->admitted_us = now;
        if (k == NULL) {
            p->rc = WQ_NOMEM; /* journaled: replayed at the next start */
            continue;
        }
        /* A key going over its rate takes its queued writes along to
         * EXCESS: all of a key's ops share one FIFO, which keeps them in
         * order. */
        cls = wq_admit_route(k, p->over);
        if (cls == WQ_EXCESS && p->over) {
            wq_table_key_move(q, k, WQ_EXCESS);
            metrics_add(&wq_m_spill_excess, 1);
            wq_log_spill(q, "key %.*s over max_key_rate: to EXCESS (shard %u)",
                         p->w->key, p->w->klen, j->shard);
        }
        if (wq_admit_enqueue(q, j, p->w, cls, k) != 0) {
            wq_table_key_release(q, k);
            p->rc = WQ_NOMEM;
            continue;
        }
        *wq_table_job_slot(q, &j->id) = j;
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
        metrics_add(&wq_m_admitted, 1);
    }
    wq_gauges(q);
    pthread_cond_signal(&q->work);
    pthread_mutex_unlock(&q->mu);
}

void wq_admit_many(wq_t *q, wq_admission *as, size_t n)
{
    topo_t *t = topo_watch_get(q->topo);
    wq_admit_pending *ps = calloc(n, sizeof *ps);
    journal_rec *recs = calloc(n, sizeof *recs);
    journal_rec **rp = calloc(n, sizeof *rp);
    int *rcs = calloc(n, sizeof *rcs);
    size_t *which = calloc(n, sizeof *which); /* rp[k] is as[which[k]] */
    jobid *ids = calloc(n, sizeof *ids);
    size_t k = 0;

    for (size_t i = 0; i < n; i++)
        as[i].rc = WQ_OK;
    if (ps == NULL || recs == NULL || rp == NULL || rcs == NULL || which == NULL ||
        ids == NULL) {
        for (size_t i = 0; i < n; i++)
            as[i].rc = WQ_NOMEM;
        goto out;
    }
    /* The whole pass's ids with one getrandom call. */
    if (jobid_new(ids, n) != 0) {
        log_error("no random bytes for job ids: %s", strerror(errno));
        for (size_t i = 0; i < n; i++)
            as[i].rc = WQ_NO_RANDOM;
        goto out;
    }
    /* Route each write and make its job. */
    for (size_t i = 0; i < n; i++) {
        wq_admission *a = &as[i];
        wq_admit_pending *p = &ps[i];
        uint32_t shard = t ? wq_route_owner(t, a->w.key, a->w.klen) : 0;

        if (t == NULL || shard >= WQ_MAX_SHARDS) {
            a->rc = WQ_NO_TOPOLOGY;
            continue;
        }
        *p = (wq_admit_pending){.w = &a->w, .waiter = a->waiter,
                          .wait_ms = a->wait_ms, .rc = WQ_OK};
        if (q->key_rate)
            p->over = !ratelimit_check(q->key_rate, a->w.key, clock_mono_ms()).allowed;
        if ((p->job = wq_table_job_new(&a->w, shard)) == NULL ||
            (a->waiter && (p->wt = calloc(1, sizeof *p->wt)) == NULL)) {
            a->rc = WQ_NOMEM;
            continue;
        }
        p->job->charged = p->charged = p->over ? WQ_EXCESS : WQ_MAIN;
    }
    /* Hold a place for each, then journal them together (the group's
     * leader queues the jobs: wq_admit_committed). */
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < n; i++) {
        wq_admission *a = &as[i];
        wq_admit_pending *p = &ps[i];
        if (a->rc != WQ_OK)
            continue;
        enum wq_class charged = p->charged;
        if (q->stopping || q->charged[charged] >= q->cap[charged]) {
            a->rc = q->stopping ? WQ_STOPPING : WQ_FULL;
            metrics_add(&wq_m_rejected, a->rc == WQ_FULL);
            a->full = wq_class_names[charged];
            continue;
        }
        q->charged[charged]++; /* held until the job ends */
        recs[k] = (journal_rec){.job = ids[i], .op = a->w.op,
                            .flags = (uint8_t)(a->w.cond |
                                               (a->w.expires_at ? WIRE_F_EXPIRES : 0)),
                            .if_match = a->w.if_match,
                            .expires_at = a->w.expires_at, .delta = a->w.delta,
                            .key = a->w.key, .klen = a->w.klen,
                            .val = a->w.val, .vlen = a->w.vlen, .ctx = p};
        rp[k] = &recs[k];
        which[k++] = i;
    }
    pthread_mutex_unlock(&q->mu);
    if (k && journal_append_many(q->jnl, rp, k, rcs) != 0)
        for (size_t m = 0; m < k; m++)
            rcs[m] = -1;
    for (size_t m = 0; m < k; m++) {
        wq_admission *a = &as[which[m]];
        a->rc = rcs[m] != 0 ? WQ_JOURNAL : ps[which[m]].rc;
        if (a->rc == WQ_OK) {
            a->job = recs[m].job;
            a->version = recs[m].version;
            continue;
        }
        pthread_mutex_lock(&q->mu);
        q->charged[ps[which[m]].charged]--;
        pthread_mutex_unlock(&q->mu);
    }
out:
    for (size_t i = 0; ps && i < n; i++) {
        wq_table_job_free(ps[i].job);
        free(ps[i].wt);
    }
    topo_put(t);
    free(ps);
    free(recs);
    free(rp);
    free(rcs);
    free(which);
    free(ids);
}
