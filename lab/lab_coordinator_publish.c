/* lab_coordinator_publish: what the lab coordinator shows: GET /status,
 * /topology, the quorum and the /metrics lines (lab_coordinator.h). */
#include "lab_coordinator_internal.h"

#include "clock.h"
#include "config.h"
#include "httpc.h"
#include "lab_coordinator_http.h"
#include "log.h"
#include "sup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- status, topology, metrics -------------------------------------------- */

static cJSON *lab_coordinator_node_json(lab_coordinator_t *L, const lab_coordinator_node *n)
{
    cJSON *o = cJSON_CreateObject();
    const lab_coordinator_proc *p = n->proc >= 0 ? &L->procs[n->proc] : NULL;
    pid_t pid = 0;

    cJSON_AddStringToObject(o, "node_id", n->id);
    cJSON_AddStringToObject(o, "url", p ? p->url : "");
    cJSON_AddStringToObject(o, "status", lab_coordinator_status_name(n));
    cJSON_AddNumberToObject(o, "incarnation", (double)n->inc);
    if (p) {
        cJSON_AddNumberToObject(o, "port", p->port);
        if (lab_coordinator_proc_running(L, p, &pid) && pid > 0)
            cJSON_AddNumberToObject(o, "pid", pid);
    }
    cJSON_AddNumberToObject(o, "applied_seq", (double)n->applied_seq);
    /* Paused by POST /pause (SIGSTOP): it is whatever its heartbeats say,
     * and this says why they stopped. */
    if (p && p->cont_at_ms > (int64_t)clock_mono_ms())
        cJSON_AddNumberToObject(o, "paused_ms_left",
                                (double)(p->cont_at_ms - (int64_t)clock_mono_ms()));
    if (n->state == LAB_DEAD && lab_coordinator_dead_by_name(n->dead_by))
        cJSON_AddStringToObject(o, "dead_because", lab_coordinator_dead_by_name(n->dead_by));
    if (n->last_hb_ms)
        cJSON_AddNumberToObject(o, "last_heartbeat_ms_ago",
                                (double)(clock_mono_ms() - n->last_hb_ms));
    return o;
}

cJSON *lab_coordinator_status_json(lab_coordinator_t *L)
{
    cJSON *j = cJSON_CreateObject(), *arr, *q, *as, *ret;
    lab_coordinator_node *fol[LAB_COORDINATOR_MAX_NODES];
    size_t n, alive;
    lab_coordinator_node *ld;

    pthread_mutex_lock(&L->mu);
    ld = lab_coordinator_leader(L);
    if (ld)
        cJSON_AddItemToObject(j, "leader", lab_coordinator_node_json(L, ld));
    arr = cJSON_AddArrayToObject(j, "followers");
    n = lab_coordinator_followers(L, fol);
    alive = lab_coordinator_alive_locked(L);
    {
        /* Where the next write and read go (ordered): the first W and the
         * last R alive followers by id. */
        size_t rank = 0;
        for (size_t i = 0; i < n; i++) {
            cJSON *o = lab_coordinator_node_json(L, fol[i]);
            int up = fol[i]->state == LAB_ALIVE;
            cJSON_AddBoolToObject(o, "in_sync_set",
                                  up && (int64_t)rank < L->cfg.write_quorum);
            cJSON_AddBoolToObject(o, "in_read_set",
                                  up && (int64_t)(alive - rank) <=
                                            L->cfg.read_quorum);
            rank += up;
            cJSON_AddItemToArray(arr, o);
        }
    }
    q = cJSON_AddObjectToObject(j, "quorum");
    cJSON_AddNumberToObject(q, "W", (double)L->cfg.write_quorum);
    cJSON_AddNumberToObject(q, "R", (double)L->cfg.read_quorum);
    cJSON_AddNumberToObject(q, "N", (double)L->cfg.followers);
    cJSON_AddNumberToObject(q, "total_alive", (double)alive);
    cJSON_AddBoolToObject(q, "can_write",
                          ld && ld->state == LAB_ALIVE &&
                              (int64_t)alive >= L->cfg.write_quorum);
    cJSON_AddBoolToObject(q, "can_read",
                          (int64_t)alive >= L->cfg.read_quorum);
    cJSON_AddStringToObject(q, "policy", "ordered");
    cJSON_AddBoolToObject(q, "strong",
                          L->cfg.write_quorum + L->cfg.read_quorum >
                              L->cfg.followers);
    cJSON_AddNumberToObject(j, "respawns", (double)L->respawns);
    cJSON_AddNumberToObject(j, "fenced", (double)L->fenced);
    cJSON_AddNumberToObject(j, "spawns", (double)L->spawns);
    as = cJSON_AddObjectToObject(j, "auto_spawn");
    cJSON_AddBoolToObject(as, "enabled", L->cfg.auto_spawn);
    cJSON_AddNumberToObject(as, "delay_s", L->cfg.auto_spawn_delay);
    cJSON_AddNumberToObject(as, "dead_after_ms", (double)L->dead_after_ms);
    cJSON_AddNumberToObject(as, "heartbeat_ms", LAB_COORDINATOR_HEARTBEAT_MS);
    ret = cJSON_AddArrayToObject(j, "retired");
    for (size_t i = 0; i < L->nprocs; i++) {
        const lab_coordinator_proc *p = &L->procs[i];
        pid_t pid;
        cJSON *o;
        if (!p->used || !p->retired)
            continue;
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "node_id", L->nodes[p->node].id);
        cJSON_AddNumberToObject(o, "incarnation", (double)p->inc);
        cJSON_AddStringToObject(o, "url", p->url);
        cJSON_AddBoolToObject(o, "fenced", p->fenced);
        cJSON_AddBoolToObject(o, "running", lab_coordinator_proc_running(L, p, &pid));
        if (pid > 0)
            cJSON_AddNumberToObject(o, "pid", pid);
        cJSON_AddItemToArray(ret, o);
    }
    cJSON_AddNumberToObject(j, "leader_seq", (double)L->leader_seq);
    cJSON_AddNumberToObject(j, "topology_epoch", (double)L->topo_epoch);
    cJSON_AddBoolToObject(j, "ready", L->ready);
    pthread_mutex_unlock(&L->mu);
    return j;
}

cJSON *lab_coordinator_topology_json(lab_coordinator_t *L)
{
    cJSON *j = cJSON_CreateObject(), *shards, *sh, *secs;
    lab_coordinator_node *fol[LAB_COORDINATOR_MAX_NODES], *ld;
    size_t n;

    pthread_mutex_lock(&L->mu);
    ld = lab_coordinator_leader(L);
    cJSON_AddNumberToObject(j, "epoch", (double)L->topo_epoch);
    cJSON_AddNumberToObject(j, "vnodes", 128);
    cJSON_AddNullToObject(j, "queue");
    shards = cJSON_AddArrayToObject(j, "shards");
    sh = cJSON_CreateObject();
    cJSON_AddNumberToObject(sh, "id", 0);
    cJSON_AddNumberToObject(sh, "epoch", 1);
    if (ld && ld->proc >= 0)
        cJSON_AddStringToObject(sh, "primary", L->procs[ld->proc].url);
    else
        cJSON_AddNullToObject(sh, "primary");
    secs = cJSON_AddArrayToObject(sh, "secondaries");
    n = lab_coordinator_followers(L, fol);
    for (size_t i = 0; i < n; i++)
        if (lab_coordinator_in_topology(fol[i]))
            cJSON_AddItemToArray(secs,
                                 cJSON_CreateString(L->procs[fol[i]->proc].url));
    cJSON_AddNumberToObject(sh, "handoff_seq", 0);
    cJSON_AddItemToArray(shards, sh);
    cJSON_AddBoolToObject(j, "lab", 1);
    pthread_mutex_unlock(&L->mu);
    return j;
}

void lab_coordinator_metrics(metrics_text *t, void *ctx)
{
    lab_coordinator_t *L = ctx;
    lab_coordinator_node *fol[LAB_COORDINATOR_MAX_NODES];
    size_t n;

    pthread_mutex_lock(&L->mu);
    metrics_text_printf(t,
        "# HELP kv_lab_respawns_total Followers replaced by auto-spawn\n"
        "# TYPE kv_lab_respawns_total counter\n"
        "kv_lab_respawns_total %" PRIu64 "\n"
        "# HELP kv_lab_spawns_total Followers started by POST /spawn\n"
        "# TYPE kv_lab_spawns_total counter\n"
        "kv_lab_spawns_total %" PRIu64 "\n"
        "# HELP kv_lab_fenced_total Replaced incarnations told to stop\n"
        "# TYPE kv_lab_fenced_total counter\n"
        "kv_lab_fenced_total %" PRIu64 "\n"
        "# HELP kv_lab_kills_total POST /kill calls\n"
        "# TYPE kv_lab_kills_total counter\n"
        "kv_lab_kills_total %" PRIu64 "\n"
        "# HELP kv_lab_pauses_total POST /pause calls\n"
        "# TYPE kv_lab_pauses_total counter\n"
        "kv_lab_pauses_total %" PRIu64 "\n"
        "# HELP kv_lab_heartbeats_total Heartbeats received\n"
        "# TYPE kv_lab_heartbeats_total counter\n"
        "kv_lab_heartbeats_total %" PRIu64 "\n"
        "# HELP kv_lab_followers_alive Followers alive\n"
        "# TYPE kv_lab_followers_alive gauge\n"
        "kv_lab_followers_alive %zu\n"
        "# HELP kv_lab_write_quorum W\n"
        "# TYPE kv_lab_write_quorum gauge\n"
        "kv_lab_write_quorum %lld\n"
        "# HELP kv_lab_read_quorum R\n"
        "# TYPE kv_lab_read_quorum gauge\n"
        "kv_lab_read_quorum %lld\n"
        "# HELP kv_lab_leader_seq The leader's last seq as last reported\n"
        "# TYPE kv_lab_leader_seq gauge\n"
        "kv_lab_leader_seq %" PRIu64 "\n"
        "# HELP kv_lab_node_alive 1 while a node is alive\n"
        "# TYPE kv_lab_node_alive gauge\n",
        L->respawns, L->spawns, L->fenced, L->kills, L->pauses, L->heartbeats,
        lab_coordinator_alive_locked(L), (long long)L->cfg.write_quorum,
        (long long)L->cfg.read_quorum, L->leader_seq);
    if (lab_coordinator_leader(L))
        metrics_text_printf(t,
                                "kv_lab_node_alive{node=\"leader\"} %d\n",
                                lab_coordinator_leader(L)->state == LAB_ALIVE);
    n = lab_coordinator_followers(L, fol);
    for (size_t i = 0; i < n; i++)
        metrics_text_printf(t,
                                "kv_lab_node_alive{node=\"%s\"} %d\n",
                                fol[i]->id, fol[i]->state == LAB_ALIVE);
    for (size_t i = 0; i < n; i++)
        metrics_text_printf(t,
                                "%skv_lab_node_incarnation{node=\"%s\"} %" PRIu64
                                "\n",
                                i == 0 ? "# HELP kv_lab_node_incarnation "
                                         "Current incarnation of a follower\n"
                                         "# TYPE kv_lab_node_incarnation gauge\n"
                                       : "",
                                fol[i]->id, fol[i]->inc);
    pthread_mutex_unlock(&L->mu);
}

cJSON *lab_coordinator_quorum_json(lab_coordinator_t *L)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddNumberToObject(q, "W", (double)L->cfg.write_quorum);
    cJSON_AddNumberToObject(q, "R", (double)L->cfg.read_quorum);
    cJSON_AddNumberToObject(q, "N", (double)L->cfg.followers);
    cJSON_AddStringToObject(q, "policy", "ordered");
    return q;
}
