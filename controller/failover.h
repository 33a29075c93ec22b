/* failover: the controller's health checks and primary promotion
 * (docs/PROTOCOL.md "Replication, quorums and failover").
 *
 * failover_tick runs every controller.health_interval_ms on one thread (the
 * controller's probe thread, after the cluster is ready). It probes every
 * child's /health in parallel and, for each shard whose primary has had no
 * 2xx answer for controller.failover_after_ms:
 *   1. asks the shard's other stores for /health and takes their
 *      "applied_seq" (or "seq" when a store does not report it);
 *   2. promotes the live one with the highest seq (ties: lowest replica id):
 *      shard epoch + 1, topology epoch + 1, shards[i].handoff_seq = its seq;
 *      the old primary becomes a secondary of the shard (the supervisor keeps
 *      restarting it, now with --role secondary);
 *   3. saves the topology state, publishes it (GET /topology answers the new
 *      one at once) and POSTs /internal/topology-changed (best effort, short
 *      timeout, Bearer token when set) to every store of the shard, the
 *      queue and the apis, so that they poll the topology now.
 * A shard without a live secondary keeps its topology (logged, counted as
 * skipped). A shard never fails over twice within failover_after_ms.
 * Every step is logged.
 *
 * Ownership: failover_new allocates, failover_free frees; cl, sup and stop
 * are borrowed and outlive it. Not thread-safe: one thread ticks. */
#ifndef KV_CTL_FAILOVER_H
#define KV_CTL_FAILOVER_H

#include "cluster.h"
#include "sup.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct failover failover_t;

/* A promotion candidate: a live secondary and its position. */
typedef struct failover_cand {
    int replica;
    uint64_t seq;
} failover_cand;

/* stop: when it becomes non-zero no promotion starts (shutdown). */
failover_t *failover_new(cluster_t *cl, sup_t *sup, const atomic_int *stop);
void failover_free(failover_t *f);

/* One round: probe every child, fail over every shard that is due. Returns
 * the number of promotions done. now_ms is sup_now_ms(). */
int failover_tick(failover_t *f, int64_t now_ms);

enum failover_result {
    FAILOVER_ERROR = -1,   /* no such shard, or the promotion failed */
    FAILOVER_SKIPPED = 0,  /* no live secondary, or stopping: nothing changed */
    FAILOVER_PROMOTED = 1
};

/* Fail over one shard now (its primary is taken as down). */
enum failover_result failover_shard(failover_t *f, unsigned shard,
                                    int64_t now_ms);

/* The candidate to promote: highest seq, ties to the lowest replica id.
 * Index into c, or -1 when n == 0. */
int failover_pick(const failover_cand *c, size_t n);

/* How long a /health probe may take for a health interval. */
long failover_probe_timeout_ms(int64_t health_interval_ms);

#endif
