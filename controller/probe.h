/* probe: health probing, GET <url>/health, for everything the controller
 * watches. The generic part (probe_health, probe_health_seq) knows only
 * URLs and bodies, so any caller (the cluster, failover's candidate
 * round, the lab) can use it; the rest records the outcome on the
 * cluster's nodes (healthy, last_ok_ms, last_error, seen_seq, seen_epoch).
 * Ownership: probe_health fills caller-owned responses, each freed with
 * httpc_resp_free; nothing else allocates. */
#ifndef KV_CTL_PROBE_H
#define KV_CTL_PROBE_H

#include "cluster.h"
#include "httpc.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* GET <bases[i]>/health for i < n, in parallel, each bounded by
 * timeout_ms; resps[i] is bases[i]'s answer (status 0 + error when none
 * came). */
void probe_health(const char *const *bases, size_t n, long timeout_ms,
                  httpc_resp *resps);
/* A store's position from its /health body: "applied_seq", else "seq",
 * and its "epoch" (0 when absent; epoch may be NULL).
 * 0, or -1 when the body has neither. */
int probe_health_seq(const char *body, size_t len, uint64_t *seq,
                     uint64_t *epoch);

/* One /health probe of every node, in parallel, each bounded by timeout_ms
 * (updates healthy, last_ok_ms and, for stores, seen_seq/seen_epoch; the
 * status pages show a node healthy only while its process runs and its last
 * probe passed). */
void probe_nodes(cluster_t *cl, long timeout_ms);
/* Probe every node until all answer 2xx or timeout_ms passes (nginx last:
 * its /health goes through to an api); sets cl->ready. Stops early when
 * *stop becomes non-zero. 0, or -1 with err naming the nodes not ready. */
int probe_wait_ready(cluster_t *cl, int64_t timeout_ms, const atomic_int *stop,
                     char *err, size_t errlen);
/* 1 when the last probe of every node passed. */
int probe_all_healthy(cluster_t *cl);

#endif
