/* health: the controller's health-check scheduler. One thread waits for
 * every node's first /health answer (up to the ready timeout), prints the
 * summary, then every controller.health_interval_ms probes every node and
 * fails shards over (failover.h), printing the summary again the first
 * time the whole cluster is healthy, and after each round takes one step
 * of a running shard migration (reshard_tick; rs may be NULL).
 * Ownership: health_start allocates and starts the thread; health_stop
 * joins it and frees. cl and sup are borrowed and outlive it. */
#ifndef KV_CTL_HEALTH_H
#define KV_CTL_HEALTH_H

#include "cluster.h"
#include "reshard.h"
#include "sup.h"

typedef struct health health_t;

/* ready_timeout_ms: how long the nodes get for their first answer (0 =
 * print the summary without waiting). A supervised cluster that does not
 * come up in time asks the supervisor to exit 1. NULL on failure. */
health_t *health_start(cluster_t *cl, sup_t *sup, long ready_timeout_ms,
                       reshard_t *rs);
/* No new round or promotion starts after this (shutdown begins). */
void health_request_stop(health_t *h);
/* health_request_stop, then join the thread and free. */
void health_stop(health_t *h);

#endif
