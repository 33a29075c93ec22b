/* cluster_publish: /topology, /status, /metrics and the summary
 * (cluster_publish.h). */
#include "cluster_publish.h"

#include "cluster_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cJSON *cluster_publish_ids(const uint32_t *ids, size_t n)
{
    cJSON *a = cJSON_CreateArray();

    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
    return a;
}

/* "ring" and "migration" (lib/topo.h) while a migration runs; lock held.
 * In prepare the new shard is in "shards" (its stores find themselves and
 * replicate) but not in "ring", and there is no "migration" yet. */
static void cluster_publish_ring(cluster_t *cl, cJSON *root)
{
    const cluster_migration *m = &cl->mig;
    uint32_t ids[CLUSTER_MAX_SHARDS];
    size_t n;
    cJSON *mj;

    if (!cluster_mig_active(m))
        return;
    n = cluster_ring_ids(cl, ids);
    cJSON_AddItemToObject(root, "ring", cluster_publish_ids(ids, n));
    if (m->phase == CLUSTER_MIG_PREPARE)
        return;
    mj = cJSON_AddObjectToObject(root, "migration");
    cJSON_AddNumberToObject(mj, "id", (double)m->id);
    cJSON_AddStringToObject(mj, "phase", cluster_mig_phase_name(m->phase));
    cJSON_AddItemToObject(mj, "from", cluster_publish_ids(m->from, m->nfrom));
    cJSON_AddItemToObject(mj, "to", cluster_publish_ids(m->to, m->nto));
}

cJSON *cluster_publish_topology(cluster_t *cl)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *shards = cJSON_CreateArray();
    const char *queue = "";

    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].kind == CLUSTER_QUEUE)
            queue = cl->nodes[i].url;
    pthread_mutex_lock(&cl->mu);
    cJSON_AddNumberToObject(root, "epoch", (double)cl->epoch);
    cJSON_AddNumberToObject(root, "vnodes", (double)cl->cfg.vnodes);
    cJSON_AddStringToObject(root, "queue", queue);
    for (size_t s = 0; s < cl->nshards; s++) {
        cJSON *sh, *secs;
        int primary = cl->shards[s].primary;

        if (!cl->shards[s].present)
            continue;
        sh = cJSON_CreateObject();
        secs = cJSON_CreateArray();

        cJSON_AddNumberToObject(sh, "id", (double)s);
        cJSON_AddNumberToObject(sh, "epoch", (double)cl->shards[s].epoch);
        cJSON_AddItemToObject(sh, "primary", cJSON_CreateNull());
        for (size_t i = 0; i < cl->nnodes; i++) {
            const cluster_node *n = &cl->nodes[i];
            if (n->kind != CLUSTER_STORE || n->shard != (int)s ||
                atomic_load(&n->gone))
                continue;
            if (n->replica == primary)
                cJSON_ReplaceItemInObject(sh, "primary",
                                          cJSON_CreateString(n->url));
            else
                cJSON_AddItemToArray(secs, cJSON_CreateString(n->url));
        }
        cJSON_AddItemToObject(sh, "secondaries", secs);
        cJSON_AddNumberToObject(sh, "handoff_seq",
                                (double)cl->shards[s].handoff_seq);
        cJSON_AddItemToArray(shards, sh);
    }
    cJSON_AddItemToObject(root, "shards", shards);
    cluster_publish_ring(cl, root);
    pthread_mutex_unlock(&cl->mu);
    return root;
}

cJSON *cluster_publish_status(cluster_t *cl, sup_t *sup)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *ctl = cJSON_CreateObject();
    cJSON *kids = cJSON_CreateArray();
    cJSON *shards = cJSON_CreateArray();
    int64_t now = sup_now_ms();
    uint64_t epoch;

    pthread_mutex_lock(&cl->mu);
    epoch = cl->epoch;
    for (size_t s = 0; s < cl->nshards; s++) {
        const cluster_shard *sh = &cl->shards[s];
        cJSON *o;
        const cluster_node *p = NULL;

        if (!sh->present)
            continue;
        o = cJSON_CreateObject();
        for (size_t i = 0; i < cl->nnodes && sh->primary >= 0; i++)
            if (cl->nodes[i].kind == CLUSTER_STORE &&
                cl->nodes[i].shard == (int)s &&
                cl->nodes[i].replica == sh->primary &&
                !atomic_load(&cl->nodes[i].gone))
                p = &cl->nodes[i];
        cJSON_AddNumberToObject(o, "id", (double)s);
        cJSON_AddNumberToObject(o, "epoch", (double)sh->epoch);
        cJSON_AddNumberToObject(o, "primary_replica", sh->primary);
        if (p)
            cJSON_AddStringToObject(o, "primary", p->url);
        else
            cJSON_AddNullToObject(o, "primary");
        cJSON_AddNumberToObject(o, "handoff_seq", (double)sh->handoff_seq);
        cJSON_AddNumberToObject(o, "failovers", (double)sh->failovers);
        if (sh->last_failover_ms > 0)
            cJSON_AddNumberToObject(o, "last_failover_ms_ago",
                                    (double)(now - sh->last_failover_ms));
        cJSON_AddItemToArray(shards, o);
    }
    if (cl->mig.id)
        cJSON_AddItemToObject(root, "migration",
                              cluster_state_mig_json(&cl->mig));
    pthread_mutex_unlock(&cl->mu);
    cJSON_AddStringToObject(root, "status", "ok");
    cJSON_AddStringToObject(root, "mode", cl->supervise ? "supervise"
                                                        : "external");
    cJSON_AddBoolToObject(root, "ready", atomic_load(&cl->ready));
    cJSON_AddNumberToObject(root, "epoch", (double)epoch);
    cJSON_AddNumberToObject(root, "failovers",
                            (double)atomic_load(&cl->failovers));
    cJSON_AddNumberToObject(root, "failovers_skipped",
                            (double)atomic_load(&cl->failovers_skipped));
    cJSON_AddNumberToObject(ctl, "pid", (double)getpid());
    cJSON_AddStringToObject(ctl, "url", cl->controller_url);
    cJSON_AddNumberToObject(ctl, "port", (double)cl->cfg.base_port);
    cJSON_AddStringToObject(ctl, "run_dir", cl->run_dir);
    cJSON_AddStringToObject(ctl, "data_dir", cl->data_dir);
    cJSON_AddItemToObject(root, "controller", ctl);
    for (size_t i = 0; i < cl->nnodes; i++) {
        const cluster_node *n = &cl->nodes[i];
        cJSON *k;
        sup_info info;

        if (atomic_load(&n->gone))
            continue;
        k = cJSON_CreateObject();

        if (n->sup_index < 0 || sup_get(sup, (size_t)n->sup_index, &info) < 0) {
            memset(&info, 0, sizeof info);
            info.state = SUP_STOPPED;
        }
        cJSON_AddStringToObject(k, "name", n->name);
        cJSON_AddStringToObject(k, "kind", cluster_kind_name(n->kind));
        cJSON_AddStringToObject(k, "role", cluster_node_role(cl, n));
        if (n->kind == CLUSTER_STORE) {
            cJSON_AddNumberToObject(k, "shard", n->shard);
            cJSON_AddNumberToObject(k, "replica", n->replica);
            cJSON_AddNumberToObject(k, "applied_seq",
                                    (double)atomic_load(&n->seen_seq));
            cJSON_AddNumberToObject(k, "store_epoch",
                                    (double)atomic_load(&n->seen_epoch));
        }
        if (info.pid > 0)
            cJSON_AddNumberToObject(k, "pid", (double)info.pid);
        else
            cJSON_AddNullToObject(k, "pid");
        cJSON_AddNumberToObject(k, "port", n->port);
        cJSON_AddStringToObject(k, "url", n->url);
        if (n->sup_index < 0) {
            /* Not ours to run: what the last /health probe said. */
            cJSON_AddStringToObject(k, "state", "external");
            cJSON_AddBoolToObject(k, "healthy", atomic_load(&n->healthy));
            if (!atomic_load(&n->healthy) && n->last_error[0])
                cJSON_AddStringToObject(k, "last_error", n->last_error);
        } else {
            cJSON_AddStringToObject(k, "state", sup_state_name(info.state));
            cJSON_AddBoolToObject(k, "healthy", info.state == SUP_RUNNING &&
                                                    atomic_load(&n->healthy));
        }
        if (n->sup_index >= 0) { /* the supervisor's to tell */
            cJSON_AddNumberToObject(k, "restarts", info.restarts);
            cJSON_AddNumberToObject(k, "uptime_ms", (double)info.uptime_ms);
        }
        if (info.state == SUP_RESTARTING)
            cJSON_AddNumberToObject(k, "restart_in_ms",
                                    (double)info.next_start_ms);
        if (info.last_exit[0])
            cJSON_AddStringToObject(k, "last_exit", info.last_exit);
        cJSON_AddItemToArray(kids, k);
    }
    cJSON_AddItemToObject(root, "children", kids);
    cJSON_AddItemToObject(root, "shards", shards);
    return root;
}

/* One child's value for the pass'th family of cluster_publish_metrics. */
static long long cluster_publish_child_value(const cluster_node *n, sup_t *sup,
                                             int pass)
{
    sup_info info;

    memset(&info, 0, sizeof info);
    if (n->sup_index >= 0)
        sup_get(sup, (size_t)n->sup_index, &info);
    else /* external: up = answers /health */
        info.state = atomic_load(&n->healthy) ? SUP_RUNNING : SUP_STOPPED;
    if (pass == 0)
        return info.state == SUP_RUNNING;
    if (pass == 1)
        return (long long)info.restarts;
    return info.state == SUP_RUNNING && atomic_load(&n->healthy);
}

void cluster_publish_metrics(metrics_text *t, cluster_t *cl, sup_t *sup)
{
    static const char *const child[3][3] = {
        {"kv_controller_child_up", "1 while the child process runs", "gauge"},
        {"kv_controller_child_restarts_total",
         "Unexpected exits followed by a restart", "counter"},
        {"kv_controller_child_healthy", "1 when the last /health probe passed",
         "gauge"}};
    uint64_t epoch;

    pthread_mutex_lock(&cl->mu);
    epoch = cl->epoch;
    pthread_mutex_unlock(&cl->mu);
    metrics_text_family(t, "kv_controller_ready",
                        "1 once every child answered /health", "gauge");
    metrics_text_sample(t, "kv_controller_ready", NULL, NULL,
                        atomic_load(&cl->ready));
    metrics_text_family(t, "kv_controller_epoch", "Cluster topology epoch",
                        "gauge");
    metrics_text_sample(t, "kv_controller_epoch", NULL, NULL, (int64_t)epoch);
    metrics_text_family(t, "kv_controller_failovers_total",
                        "Primaries replaced by a promoted secondary", "counter");
    metrics_text_sample(t, "kv_controller_failovers_total", NULL, NULL,
                        (int64_t)atomic_load(&cl->failovers));
    metrics_text_family(t, "kv_controller_failovers_skipped_total",
                        "Failovers due but not done: no live secondary",
                        "counter");
    metrics_text_sample(t, "kv_controller_failovers_skipped_total", NULL, NULL,
                        (int64_t)atomic_load(&cl->failovers_skipped));
    for (int pass = 0; pass < 3; pass++) {
        metrics_text_family(t, child[pass][0], child[pass][1], child[pass][2]);
        for (size_t i = 0; i < cl->nnodes; i++) {
            const cluster_node *n = &cl->nodes[i];
            if (atomic_load(&n->gone))
                continue;
            metrics_text_printf(t, "%s{name=\"%s\",kind=\"%s\"} %lld\n",
                                child[pass][0], n->name,
                                cluster_kind_name(n->kind),
                                cluster_publish_child_value(n, sup, pass));
        }
    }
    pthread_mutex_lock(&cl->mu);
    metrics_text_family(t, "kv_controller_shard_epoch", "Epoch of each shard",
                        "gauge");
    for (size_t s = 0; s < cl->nshards; s++)
        if (cl->shards[s].present)
            metrics_text_printf(t,
                                "kv_controller_shard_epoch{shard=\"%zu\"} "
                                "%llu\n",
                                s, (unsigned long long)cl->shards[s].epoch);
    metrics_text_family(t, "kv_controller_shard_failovers_total",
                        "Promotions per shard", "counter");
    for (size_t s = 0; s < cl->nshards; s++)
        if (cl->shards[s].present)
            metrics_text_printf(t,
                                "kv_controller_shard_failovers_total{shard="
                                "\"%zu\"} %llu\n",
                                s, (unsigned long long)cl->shards[s].failovers);
    pthread_mutex_unlock(&cl->mu);
}


void cluster_publish_summary(cluster_t *cl, sup_t *sup, FILE *f)
{
    size_t nshards = cluster_shard_count(cl);

    if (cl->supervise)
        fprintf(f, "kv cluster: %zu shard%s x %lld replica%s, %lld api, "
                   "queue, nginx\n",
                nshards, nshards == 1 ? "" : "s",
                (long long)cl->cfg.replicas, cl->cfg.replicas == 1 ? "" : "s",
                (long long)cl->cfg.api_count);
    else
        fprintf(f, "kv cluster: %zu shard%s x %lld replica%s and the queue, "
                   "external (controller.supervise=0)\n",
                nshards, nshards == 1 ? "" : "s",
                (long long)cl->cfg.replicas, cl->cfg.replicas == 1 ? "" : "s");
    fprintf(f, "  %-12s %-26s %-20s pid %d\n", "controller",
            cl->controller_url, "/topology /status", (int)getpid());
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < cl->nnodes; i++) {
            const cluster_node *n = &cl->nodes[i];
            sup_info info;
            char what[64];

            if ((pass == 0) != (n->kind == CLUSTER_NGINX) ||
                atomic_load(&n->gone))
                continue;
            memset(&info, 0, sizeof info);
            if (n->sup_index >= 0)
                sup_get(sup, (size_t)n->sup_index, &info);
            if (n->kind == CLUSTER_STORE)
                snprintf(what, sizeof what, "shard %d %s", n->shard,
                         cluster_node_role(cl, n));
            else if (n->kind == CLUSTER_NGINX)
                snprintf(what, sizeof what, "public API");
            else
                snprintf(what, sizeof what, "%s", cluster_kind_name(n->kind));
            if (n->sup_index < 0)
                fprintf(f, "  %-12s %-26s %-20s external\n", n->name, n->url,
                        what);
            else
                fprintf(f, "  %-12s %-26s %-20s pid %d\n", n->name, n->url,
                        what, (int)info.pid);
        }
    if (cl->supervise)
        fprintf(f, "  run dir      %s (cluster.json, nginx.conf, "
                   "nginx-error.log)\n", cl->run_dir);
    fprintf(f, "  data dir     %s\n", cl->data_dir);
    if (cl->supervise)
        fprintf(f, "  child logs   %s\n",
                cl->log_dir[0] ? cl->log_dir : "this terminal (stderr)");
    fprintf(f, "%sready\n", cl->supervise ? "Stop with Ctrl-C.\n" : "");
    fflush(f);
}

