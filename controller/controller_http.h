/* http: the controller's HTTP routes (on cluster.bind:cluster.base_port).
 *   GET /topology   the topology (lib/topo.h format)
 *   GET /health     {"status":"ok"}
 *   GET /status     the controller and every child (cluster_publish_status)
 *   GET /metrics    Prometheus text
 *   POST /shards, DELETE /shards/{id}, GET /rebalance
 *                   shard migrations (reshard.h; absent when rs is NULL)
 * Anything else: 404 JSON; a known path with another method: 405 JSON with
 * an Allow header.
 * Ownership: controller_http_start returns a server the caller stops with
 * controller_http_stop; cl, sup and rs are borrowed and must outlive it. */
#ifndef KV_CTL_HTTP_H
#define KV_CTL_HTTP_H

#include "cluster.h"
#include "httpd.h"
#include "reshard.h"
#include "sup.h"

typedef struct controller_http controller_http;

controller_http *controller_http_start(cluster_t *cl, sup_t *sup,
                                       reshard_t *rs);
void controller_http_stop(controller_http *h);

/* The handler itself, for tests that drive routes without a socket. */
void controller_http_handle(httpd_req *r, void *app);

#endif
