/* cluster_cmd: the command lines of the children (kv-store, kv-queue,
 * kv-api, nginx; docs/PROTOCOL.md's table) and handing them to the
 * supervisor.
 * Ownership: a cluster_cmd_argv is the caller's (on the stack); its argv
 * points into its own buf. */
#ifndef KV_CTL_CLUSTER_CMD_H
#define KV_CTL_CLUSTER_CMD_H

#include "cluster.h"
#include "sup.h"

#include <stddef.h>

/* A command line: argv points into buf. */
typedef struct cluster_cmd_argv {
    char *argv[SUP_MAX_ARGS + 1];
    size_t argc;
    char buf[8192];
    size_t used;
} cluster_cmd_argv;

/* The command line of node i. 0 or -1 when it does not fit. */
int cluster_cmd_node_argv(cluster_t *cl, size_t i, cluster_cmd_argv *out);
/* Hand node i to the supervisor (not started: sup_start_child, or
 * sup_start_all at start). Its supervisor index, or -1. */
int cluster_cmd_register_node(cluster_t *cl, sup_t *sup, size_t i);
/* Hand every node to the supervisor. 0 or -1. */
int cluster_cmd_register(cluster_t *cl, sup_t *sup);
/* After a topology change: give the supervisor node i's new role and command
 * line, used from its next (re)start on. 0 or -1. */
int cluster_cmd_update_child(cluster_t *cl, sup_t *sup, size_t i);

#endif
