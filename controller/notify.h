/* notify: tell nodes the topology changed (POST /internal/topology-changed,
 * in parallel, NOTIFY_TIMEOUT_MS each). It is a hint: a node that is not
 * told, or lacks the route (404), polls the topology anyway. Failover tells
 * the stores of the shard it changed plus the queue and the apis; a
 * migration tells every node but nginx.
 * Ownership: nothing is kept; the cluster is borrowed. */
#ifndef KV_CTL_NOTIFY_H
#define KV_CTL_NOTIFY_H

#include "cluster.h"
#include "httpc.h"

#include <stddef.h>

#define NOTIFY_TIMEOUT_MS 300L

/* Whether node n is to be told (ctx: the caller's). */
typedef int (*notify_pick_fn)(const cluster_node *n, void *ctx);
/* Each node's answer (status 0: not reached, error says why); may be NULL. */
typedef void (*notify_answer_fn)(const cluster_node *n, const httpc_resp *r,
                                 void *ctx);

/* Tell every node pick accepts that is not gone; auth: the bearer header
 * or "" . Returns how many answered 2xx; *asked (optional) gets how many
 * were asked. */
size_t notify_nodes(cluster_t *cl, const char *auth, notify_pick_fn pick,
                    notify_answer_fn answer, void *ctx, size_t *asked);

#endif
