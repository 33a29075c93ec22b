/* wq_age: the reaper thread. Every 20 ms it answers waiters whose wait is
 * over and moves ops that waited past stale_after_ms from MAIN to STALE. */
#include "wq_internal.h"

#include "clock.h"
#include "log.h"

#include <time.h>

/* Moves ops that waited past stale_after_ms from MAIN to STALE (the whole
 * key, to keep its order) while STALE has room. Lock held. */
static void wq_age_main(wq_t *q, uint64_t now)
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
            metrics_add(&wq_m_spill_stale, 1);
            wq_log_spill(q, "key %.*s waited past stale_after_ms: to STALE "
                         "(shard %u)", o->k->key, o->k->klen, (uint32_t)i);
            wq_table_key_move(q, o->k, WQ_STALE);
        }
    }
}

/* Every 20 ms: answer waiters whose wait is over, and age MAIN. */
void *wq_age_reaper(void *arg)
{
    wq_t *q = arg;
    struct timespec tick = {0, 20 * 1000000L};

    for (;;) {
        wq_end_list e = {0};
        uint64_t now;
        int stopping;

        pthread_mutex_lock(&q->mu);
        now = clock_mono_us(); /* under the lock: no op is younger than now */
        stopping = q->stopping;
        for (wq_waiter *w = q->waiters, *n; w; w = n) {
            n = w->next;
            if (!stopping && w->deadline_us > now)
                continue;
            wq_end_waiter_due(q, w, w->job, &e);
        }
        if (!stopping)
            wq_age_main(q, now);
        wq_gauges(q);
        pthread_mutex_unlock(&q->mu);
        wq_end_flush(q, &e);
        if (stopping)
            return NULL;
        nanosleep(&tick, NULL);
    }
}
