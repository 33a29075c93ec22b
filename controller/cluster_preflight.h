/* cluster_preflight: what is checked and made before any child starts:
 * the binaries, the ports, the data/run/log directories, cluster.json and
 * nginx.conf (checked with `nginx -t`).
 * Ownership: nothing is kept; paths are written into the cluster_t. */
#ifndef KV_CTL_CLUSTER_PREFLIGHT_H
#define KV_CTL_CLUSTER_PREFLIGHT_H

#include "cluster.h"

#include <stddef.h>

/* Find nginx.bin (PATH, /usr/sbin, ...). 0 with the path in out, or -1. */
int cluster_preflight_find_program(const char *name, char *out, size_t outlen);
/* Every child binary exists and is executable (resolves nginx). Nothing
 * to check (0) when the nodes are external. */
int cluster_preflight_check_binaries(cluster_t *cl, char *err, size_t errlen);
/* Every port is free on cluster.bind (the controller's included; only the
 * controller's when the nodes are external). */
int cluster_preflight_check_ports(const cluster_t *cl, char *err, size_t errlen);
/* Create data/run/log dirs, write cluster.json and nginx.conf, and check the
 * nginx file with `nginx -t`; with external nodes only the data dir (where
 * the topology state lives). 0 or -1 + err. */
int cluster_preflight_prepare(cluster_t *cl, const char *nginx_template,
                              char *err, size_t errlen);

#endif
