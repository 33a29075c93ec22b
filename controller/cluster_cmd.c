/* cluster_cmd: children's command lines (cluster_cmd.h). */
#include "cluster_cmd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int cluster_cmd_arg(cluster_cmd_argv *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int cluster_cmd_arg(cluster_cmd_argv *a, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (a->argc >= SUP_MAX_ARGS)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(a->buf + a->used, sizeof a->buf - a->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof a->buf - a->used)
        return -1;
    a->argv[a->argc++] = a->buf + a->used;
    a->argv[a->argc] = NULL;
    a->used += (size_t)n + 1;
    return 0;
}

/* What every server binary starts with: <bin_dir>/<prog> --config C --port P. */
static int cluster_cmd_server(const cluster_t *cl, const cluster_node *n,
                              const char *prog, cluster_cmd_argv *a)
{
    int rc = 0;

    rc |= cluster_cmd_arg(a, "%s/%s", cl->bin_dir, prog);
    rc |= cluster_cmd_arg(a, "--config");
    rc |= cluster_cmd_arg(a, "%s", cl->config_path);
    rc |= cluster_cmd_arg(a, "--port");
    rc |= cluster_cmd_arg(a, "%u", (unsigned)n->port);
    return rc;
}

static int cluster_cmd_controller(const cluster_t *cl, cluster_cmd_argv *a)
{
    int rc = cluster_cmd_arg(a, "--controller");

    return rc | cluster_cmd_arg(a, "%s", cl->controller_url);
}

/* api.threads 0 means the cores, for an api alone on its machine. The apis
 * this controller starts share one: each gets its part of the cores (at
 * least one), as nginx's workers together are one per core. Twice as many
 * threads as cores cost about 6% of get_nginx's req/s in context switches
 * (three paired make bench runs, 2026-12-07). */
static int cluster_cmd_api_threads(const cluster_t *cl, cluster_cmd_argv *a)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long each = cores > 0 ? cores / (long)cl->cfg.api_count : 1;

    if (cl->cfg.api_threads != 0)
        return 0;
    return cluster_cmd_arg(a, "--set") |
           cluster_cmd_arg(a, "api.threads=%ld", each > 0 ? each : 1);
}

int cluster_cmd_node_argv(cluster_t *cl, size_t i, cluster_cmd_argv *a)
{
    const cluster_node *n = &cl->nodes[i];
    int rc = 0;

    a->argc = 0;
    a->used = 0;
    a->argv[0] = NULL;
    switch (n->kind) {
    case CLUSTER_STORE:
        rc |= cluster_cmd_server(cl, n, "kv-store", a);
        rc |= cluster_cmd_arg(a, "--shard");
        rc |= cluster_cmd_arg(a, "%d", n->shard);
        rc |= cluster_cmd_arg(a, "--replica");
        rc |= cluster_cmd_arg(a, "%d", n->replica);
        rc |= cluster_cmd_arg(a, "--role");
        rc |= cluster_cmd_arg(a, "%s", cluster_node_role(cl, n));
        rc |= cluster_cmd_arg(a, "--data");
        rc |= cluster_cmd_arg(a, "%s/shard-%d-%d", cl->data_dir, n->shard,
                              n->replica);
        rc |= cluster_cmd_controller(cl, a);
        break;
    case CLUSTER_QUEUE:
        rc |= cluster_cmd_server(cl, n, "kv-queue", a);
        rc |= cluster_cmd_controller(cl, a);
        rc |= cluster_cmd_arg(a, "--data");
        rc |= cluster_cmd_arg(a, "%s/queue", cl->data_dir);
        break;
    case CLUSTER_API:
        rc |= cluster_cmd_server(cl, n, "kv-api", a);
        rc |= cluster_cmd_controller(cl, a);
        rc |= cluster_cmd_api_threads(cl, a);
        break;
    case CLUSTER_NGINX:
        rc |= cluster_cmd_arg(a, "%s", cl->nginx_bin[0] ? cl->nginx_bin
                                                    : cl->cfg.nginx_bin);
        rc |= cluster_cmd_arg(a, "-p");
        rc |= cluster_cmd_arg(a, "%s/", cl->run_dir);
        rc |= cluster_cmd_arg(a, "-c");
        rc |= cluster_cmd_arg(a, "%s", cl->nginx_conf);
        rc |= cluster_cmd_arg(a, "-e");
        rc |= cluster_cmd_arg(a, "%s", cl->nginx_errlog);
        break;
    }
    return rc ? -1 : 0;
}

int cluster_cmd_register_node(cluster_t *cl, sup_t *sup, size_t i)
{
    cluster_node *n = &cl->nodes[i];
    cluster_cmd_argv a;
    sup_spec spec;
    int idx;

    if (cluster_cmd_node_argv(cl, i, &a) < 0)
        return -1;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.name, sizeof spec.name, "%s", n->name);
    snprintf(spec.kind, sizeof spec.kind, "%s", cluster_kind_name(n->kind));
    snprintf(spec.role, sizeof spec.role, "%s", cluster_node_role(cl, n));
    snprintf(spec.url, sizeof spec.url, "%s", n->url);
    spec.shard = n->shard;
    spec.replica = n->replica;
    spec.port = n->port;
    spec.argv = a.argv;
    if (n->kind == CLUSTER_NGINX) {
        spec.group = 1; /* master + workers: guarded process group */
        spec.pidfile = cl->nginx_pidfile;
    }
    idx = sup_add(sup, &spec);
    if (idx < 0)
        return -1;
    n->sup_index = idx;
    return idx;
}

int cluster_cmd_register(cluster_t *cl, sup_t *sup)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (!atomic_load(&cl->nodes[i].gone) &&
            cluster_cmd_register_node(cl, sup, i) < 0)
            return -1;
    return 0;
}

int cluster_cmd_update_child(cluster_t *cl, sup_t *sup, size_t i)
{
    cluster_cmd_argv a;

    if (i >= cl->nnodes || cl->nodes[i].sup_index < 0 ||
        cluster_cmd_node_argv(cl, i, &a) < 0)
        return -1;
    return sup_set_spec(sup, (size_t)cl->nodes[i].sup_index,
                        cluster_node_role(cl, &cl->nodes[i]), a.argv);
}

