/* wq_route: which shard an op goes to, and ops that change shard when a
 * migration moves their key (docs/PROTOCOL.md "Growing and shrinking").
 * An op is routed once, when it is admitted, by the ring of the topology
 * the queue has then. Two things move it later: the topology's ring
 * changes while it waits (wq_route_follow), or the shard answers 421
 * moved because it saw the switch first (wq_route_moved). */
#include "wq_internal.h"

#include "clock.h"
#include "log.h"

#include <stdlib.h>

uint32_t wq_route_owner(const topo_t *t, const char *key, size_t klen)
{
    return ring_lookup(t->ring, key, klen);
}

/* Take op o off its FIFO (it is queued, not in flight), as if it had been
 * sent: wq_table_requeue puts it back. */
static void wq_route_unqueue(wq_t *q, wq_op *o)
{
    wq_shard *s = &q->shards[o->shard];

    wq_table_fifo_del(&s->fifo[o->cls], o);
    s->ops--;
    q->jobs_in[o->cls] -= o->njobs;
    o->inflight = 1;
}

/* Op o (off every FIFO) goes to shard `to`, together with every queued op
 * of its key: in front of that shard's FIFOs, in the key's order, so that
 * no newer write to the key goes out before an older one. */
static void wq_route_to(wq_t *q, wq_op *o, uint32_t to)
{
    wq_op *first = o, *tail = o;

    o->next = NULL;
    for (wq_op *k = o->k->first; k; k = k->knext) {
        if (k == o || k->inflight)
            continue;
        wq_route_unqueue(q, k);
        k->next = NULL;
        if (k->version < o->version) { /* older: before o */
            k->next = first;
            first = k;
        } else {
            tail->next = k;
            tail = k;
        }
    }
    for (wq_op *k = first; k; k = k->next) {
        k->shard = to;
        for (wq_job *j = k->jobs; j; j = j->jnext)
            j->shard = to;
    }
    wq_table_requeue(q, &q->shards[to], first);
}

void wq_route_follow(wq_t *q)
{
    topo_t *t = topo_watch_get(q->topo);
    wq_op **away = NULL;
    size_t n = 0, cap = 0, moved = 0;

    if (t == NULL || t->epoch == q->routed_epoch) {
        topo_put(t);
        return;
    }
    q->routed_epoch = t->epoch;
    /* First find them, then move them: moving a key's ops takes its other
     * queued ops along, wherever they are in the FIFOs being walked. */
    for (uint32_t si = 0; si < WQ_MAX_SHARDS; si++) {
        wq_shard *s = &q->shards[si];

        for (int c = 0; c < WQ_NCLASS && s->ops; c++)
            for (wq_op *o = s->fifo[c].head; o; o = o->next) {
                uint32_t to = wq_route_owner(t, o->k->key, o->k->klen);

                if (to == si || to >= WQ_MAX_SHARDS)
                    continue;
                if (n == cap) {
                    size_t nc = cap ? 2 * cap : 256;
                    wq_op **a = realloc(away, nc * sizeof *a);
                    if (a == NULL)
                        break; /* the rest is found by the 421s */
                    away = a;
                    cap = nc;
                }
                away[n++] = o;
            }
    }
    for (size_t i = 0; i < n; i++) {
        wq_op *o = away[i];
        uint32_t to = wq_route_owner(t, o->k->key, o->k->klen);

        if (o->inflight || o->shard == to)
            continue; /* moved with another op of its key */
        wq_route_unqueue(q, o);
        wq_route_to(q, o, to);
        moved++;
    }
    free(away);
    if (moved)
        log_info("topology epoch %llu: %zu queued writes go to other shards "
                 "now", (unsigned long long)t->epoch, moved);
    topo_put(t);
}

void wq_route_moved(wq_t *q, wq_op *o, uint32_t from, int64_t owner)
{
    topo_t *t = topo_watch_get(q->topo);
    uint32_t to = from;

    /* The store names the owner (wire_result.number); our own topology
     * has to know that shard to send it there. */
    if (t && owner >= 0 && owner < WQ_MAX_SHARDS && owner != from &&
        topo_shard_by_id(t, (uint32_t)owner))
        to = (uint32_t)owner;
    else if (t)
        to = topo_owner_to(t, o->k->key, o->k->klen);
    if (to >= WQ_MAX_SHARDS)
        to = from;
    wq_route_to(q, o, to);
    if (to == from) {
        /* The shard knows a newer topology than ours: fetch it, and do not
         * send it the same ops again before. */
        topo_watch_poke(q->topo);
        q->shards[from].next_try_us = clock_mono_us() + WQ_MIGRATING_HOLD_US;
    }
    topo_put(t);
}
