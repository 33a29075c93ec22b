/* cluster_publish: what the controller shows of the cluster: the bodies of
 * GET /topology and /status (docs/PROTOCOL.md "Controller"), the children's
 * Prometheus lines and the startup summary.
 * Ownership: the JSON builders return new cJSON trees (the caller deletes
 * them or hands them to httpd_respond_json); the metrics text is the
 * caller's to free. */
#ifndef KV_CTL_CLUSTER_PUBLISH_H
#define KV_CTL_CLUSTER_PUBLISH_H

#include "cluster.h"
#include "metrics.h"
#include "sup.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

/* GET /topology body (lib/topo.h format). */
cJSON *cluster_publish_topology(cluster_t *cl);
/* GET /status body: the controller and every child. */
cJSON *cluster_publish_status(cluster_t *cl, sup_t *sup);
/* The controller's Prometheus lines (readiness, epochs, failovers, every
 * child's state), written into a /metrics render (lib/metrics). */
void cluster_publish_metrics(metrics_text *t, cluster_t *cl, sup_t *sup);
/* Where everything is, ending with the line "ready". */
void cluster_publish_summary(cluster_t *cl, sup_t *sup, FILE *f);

#endif
