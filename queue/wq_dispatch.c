/* wq_dispatch: the dispatcher threads. Each takes a shard whose turn it is,
 * fills a batch (MAIN, then EXCESS within its drain rate, STALE only when
 * nothing fresh waits), sends it to the shard's primary and ends or
 * requeues its ops by the answer. */
#include "wq_internal.h"

#include "clock.h"
#include "httpc.h"
#include "kvhdr.h"
#include "log.h"
#include "outcome.h"
#include "precond.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The global budget: a token bucket of dispatch_rate ops/s (one second of
 * burst). Unlimited when dispatch_rate is 0. */
static size_t wq_dispatch_budget(wq_t *q, uint64_t now, uint64_t *wake_us)
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
static int wq_dispatch_primary_moved(wq_t *q, size_t shard, wq_shard *s)
{
    topo_t *t = topo_watch_get(q->topo);
    const topo_shard *sh = t ? topo_shard_by_id(t, (uint32_t)shard) : NULL;
    int moved = sh && sh->primary && sh->epoch != s->sent_epoch;

    topo_put(t);
    return moved;
}

/* A shard whose turn it is: has ops, no batch in flight, not backing off.
 * Round-robin so that one busy shard cannot starve the others. */
static int wq_dispatch_pick(wq_t *q, uint64_t now, uint64_t *wake_us)
{
    for (size_t n = 0; n < WQ_MAX_SHARDS; n++) {
        size_t i = (q->rr + n) % WQ_MAX_SHARDS;
        wq_shard *s = &q->shards[i];
        if (s->ops == 0 || s->busy)
            continue;
        if (s->next_try_us > now && !wq_dispatch_primary_moved(q, i, s)) {
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
static void wq_dispatch_take(wq_t *q, wq_shard *s, wq_op *o, wq_op **first,
                    wq_op **tail)
{
    wq_table_fifo_del(&s->fifo[o->cls], o);
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
static wq_op *wq_dispatch_fill(wq_t *q, wq_shard *s, size_t budget, size_t *n_out)
{
    wq_op *first = NULL, *tail = NULL;
    size_t n = 0, bytes = 0;
    uint64_t now_ms = clock_mono_ms();

    /* Large values: also stop at WQ_BATCH_BYTES (one op always goes). An op
     * whose key has an older op out to another shard (a migration moved
     * the key meanwhile) waits for it: a key's writes apply in order. */
    for (wq_op *o = s->fifo[WQ_MAIN].head, *nx;
         o && n < budget && bytes < WQ_BATCH_BYTES; o = nx) {
        nx = o->next;
        if (o->kprev && o->kprev->inflight && o->kprev->shard != o->shard)
            continue;
        bytes += o->vlen + o->k->klen;
        wq_dispatch_take(q, s, o, &first, &tail);
        n++;
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
        wq_dispatch_take(q, s, o, &first, &tail);
        n++;
    }
    if (n == 0)
        for (; n < budget && s->fifo[WQ_STALE].head; n++)
            wq_dispatch_take(q, s, s->fifo[WQ_STALE].head, &first, &tail);
    *n_out = n;
    return first;
}

static void wq_dispatch_encode(wq_op *first, wire_buf *buf)
{
    char delta[8];

    wire_buf_reset(buf);
    for (wq_op *o = first; o; o = o->next) {
        wire_op op = {.op = o->kind,
                      .flags = (uint8_t)(o->cond | (o->expires_at ? WIRE_F_EXPIRES : 0)),
                      .version = o->version, .key = o->k->key,
                      .key_len = o->k->klen, .val = o->val, .val_len = o->vlen,
                      .if_match = o->if_match, .expires_at = o->expires_at};
        if (o->kind == WIRE_INCR) {
            wire_encode_delta(o->delta, delta);
            op.val = delta;
            op.val_len = sizeof delta;
        }
        wire_put_op(buf, &op);
    }
}

enum wq_dispatch_rc { WQ_DISPATCH_SENT, WQ_DISPATCH_FAILED, WQ_DISPATCH_NO_PRIMARY };

/* Send one batch; WQ_DISPATCH_SENT with resp filled when the shard answered 200 with
 * one result per op. */
static enum wq_dispatch_rc wq_dispatch_send(wq_t *q, uint32_t shard, const wire_buf *buf, size_t n,
                   httpc_resp *resp, uint64_t *epoch_out, char *why,
                   size_t whylen)
{
    topo_t *t = topo_watch_get(q->topo);
    const topo_shard *sh;
    char url[512], auth[KVHDR_AUTH_MAX], epoch[KVHDR_EPOCH_MAX];
    const char *hdrs[4] = {"Content-Type: application/octet-stream", NULL};
    int nh = 1;

    memset(resp, 0, sizeof *resp);
    sh = t ? topo_shard_by_id(t, shard) : NULL;
    if (sh == NULL || sh->primary == NULL) {
        snprintf(why, whylen, "shard %u has no primary", shard);
        topo_put(t);
        return WQ_DISPATCH_NO_PRIMARY;
    }
    snprintf(url, sizeof url, "%s/internal/batch", sh->primary);
    *epoch_out = sh->epoch;
    hdrs[nh++] = kvhdr_epoch(epoch, sizeof epoch, sh->epoch);
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
        return WQ_DISPATCH_SENT;
    return WQ_DISPATCH_FAILED;
}

/* Append o to the list (first, tail). */
static void wq_dispatch_link(wq_op **first, wq_op **tail, wq_op *o)
{
    o->next = NULL;
    if (*tail)
        (*tail)->next = o;
    else
        *first = o;
    *tail = o;
}

/* One result per op, read by queue/outcome.h. Moved and migrating are a
 * migration's (docs/PROTOCOL.md "Growing and shrinking"): moved, the op
 * goes to the key's new owner; migrating, it waits here a moment. Neither
 * costs the op a retry. */
static void wq_dispatch_apply_results(wq_t *q, uint32_t si, wq_op *first,
                                      const httpc_resp *resp, wq_end_list *e)
{
    wq_op *wait = NULL, *wait_tail = NULL;
    size_t off = 0;
    wire_result r;

    for (wq_op *o = first, *n; o; o = n) {
        n = o->next;
        if (wire_next_result(resp->body, resp->len, &off, &r) != 1)
            r.status = 500;
        switch (outcome_of(&r, o->version)) {
        case OUTCOME_APPLIED:
            wq_end_op(q, o, WQ_APPLIED, 200, &r, NULL, NULL, e);
            break;
        case OUTCOME_SUPERSEDED:
            wq_end_op(q, o, WQ_SUPERSEDED, 200, &r, NULL, NULL, e);
            break;
        case OUTCOME_MOVED:
            wq_route_moved(q, o, si, r.number); /* number: the owner */
            break;
        case OUTCOME_MIGRATING:
            wq_dispatch_link(&wait, &wait_tail, o);
            break;
        case OUTCOME_PRECONDITION:
            wq_end_op(q, o, WQ_FAILED, 412, &r, "precondition_failed",
                      PRECOND_FAILED_MSG, e);
            break;
        case OUTCOME_FAILED:
            if (r.status == 409 && o->kind == WIRE_INCR)
                wq_end_op(q, o, WQ_FAILED, 409, NULL, "not_integer",
                          "the stored value is not an integer, or would overflow", e);
            else
                wq_end_op(q, o, WQ_FAILED, r.status >= 400 ? r.status : 500, NULL,
                          "store_error", "the shard refused the write", e);
            break;
        }
    }
    if (wait) {
        wq_table_requeue(q, &q->shards[si], wait);
        q->shards[si].next_try_us = clock_mono_us() + WQ_MIGRATING_HOLD_US;
    }
}

/* A batch failed: STALE ops that used up their retries fail, the rest go
 * back to wait for the shard, which backs off. */
static void wq_dispatch_batch_failed(wq_t *q, int si, wq_op *batch, size_t n,
                            const char *why, wq_end_list *e)
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
            wq_end_op(q, o, WQ_FAILED, 503, NULL, "shard_unavailable",
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
        wq_table_requeue(q, s, keep);
    s->failures++;
    backoff = (uint64_t)q->cfg.retry_backoff_ms * 1000ULL
              << (s->failures - 1 < 16 ? s->failures - 1 : 16);
    if (backoff > WQ_BACKOFF_MAX_US)
        backoff = WQ_BACKOFF_MAX_US;
    s->next_try_us = clock_mono_us() + backoff;
    metrics_add(&wq_m_retries, 1);
    log_warn("shard %d: batch of %zu failed (%u in a row), %zu jobs' ops gave "
             "up, retrying in %llu ms: %s", si, n, s->failures, failed,
             (unsigned long long)backoff / 1000, why);
}

void *wq_dispatch_worker(void *arg)
{
    wq_t *q = arg;
    wire_buf buf = {0};
    char why[1024];

    pthread_mutex_lock(&q->mu);
    while (!q->stopping) {
        wq_route_follow(q);
        uint64_t now = clock_mono_us(), wake = now + 100000;
        size_t budget = wq_dispatch_budget(q, now, &wake), n = 0;
        int si = budget ? wq_dispatch_pick(q, now, &wake) : -1;
        wq_end_list e = {0};
        wq_shard *s = NULL;
        wq_op *batch = NULL;
        httpc_resp resp;
        enum wq_dispatch_rc rc;

        if (si >= 0) {
            s = &q->shards[si];
            batch = wq_dispatch_fill(q, s, budget, &n);
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

        wq_dispatch_encode(batch, &buf);
        uint64_t epoch = 0;
        rc = wq_dispatch_send(q, (uint32_t)si, &buf, n, &resp, &epoch, why, sizeof why);

        pthread_mutex_lock(&q->mu);
        s->busy = 0;
        s->sent_epoch = epoch;
        s->backlog = s->ops > 0;
        if (rc == WQ_DISPATCH_SENT) {
            s->failures = 0;
            metrics_add(&wq_m_batches, 1);
            metrics_add(&wq_m_dispatched, (int64_t)n);
            wq_dispatch_apply_results(q, (uint32_t)si, batch, &resp, &e);
        } else if (rc == WQ_DISPATCH_NO_PRIMARY) {
            /* Failover under way: hold the writes (bounded by the
             * capacities) without spending their retries. */
            wq_table_requeue(q, s, batch);
            s->next_try_us = clock_mono_us() + WQ_HOLD_US;
        } else {
            wq_dispatch_batch_failed(q, si, batch, n, why, &e);
        }
        wq_gauges(q);
        pthread_cond_broadcast(&q->work);
        pthread_mutex_unlock(&q->mu);
        httpc_resp_free(&resp);
        wq_end_flush(q, &e);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    wire_buf_free(&buf);
    return NULL;
}
