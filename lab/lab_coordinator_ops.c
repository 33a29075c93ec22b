/* lab_coordinator_ops: the data path's plans (who a write and a read go
 * to) and the operator's POST /kill, /spawn and /pause (lab_coordinator.h). */
#include "lab_coordinator_internal.h"

#include "clock.h"
#include "config.h"
#include "events.h"
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

/* ---- the data path's plans --------------------------------------------------- */

unsigned lab_coordinator_write_plan(lab_coordinator_t *L, char *leader, size_t leaderlen,
                           char (*sync)[32], size_t max, size_t *nsync,
                           cJSON **out)
{
    lab_coordinator_node *fol[LAB_COORDINATOR_MAX_NODES], *ld;
    size_t n, alive, k = 0;
    cJSON *d;

    pthread_mutex_lock(&L->mu);
    ld = lab_coordinator_leader(L);
    alive = lab_coordinator_alive_locked(L);
    if ((int64_t)alive < L->cfg.write_quorum) {
        pthread_mutex_unlock(&L->mu);
        *out = lab_coordinator_detail("Write quorum not available", &d);
        cJSON_AddNumberToObject(d, "alive", (double)alive);
        cJSON_AddNumberToObject(d, "required", (double)L->cfg.write_quorum);
        return 503;
    }
    if (ld == NULL || ld->proc < 0 || ld->state != LAB_ALIVE) {
        pthread_mutex_unlock(&L->mu);
        *out = lab_coordinator_detail("Leader not available", &d);
        cJSON_AddStringToObject(d, "leader", ld ? lab_coordinator_status_name(ld) : "none");
        return 503;
    }
    snprintf(leader, leaderlen, "%s", L->procs[ld->proc].url);
    n = lab_coordinator_followers(L, fol);
    for (size_t i = 0; i < n && k < max && (int64_t)k < L->cfg.write_quorum; i++)
        if (fol[i]->state == LAB_ALIVE)
            snprintf(sync[k++], 32, "%s", fol[i]->id);
    *nsync = k;
    pthread_mutex_unlock(&L->mu);
    return 0;
}

unsigned lab_coordinator_read_plan(lab_coordinator_t *L, char (*ids)[32], char (*urls)[64],
                          size_t max, size_t *nout, cJSON **out)
{
    lab_coordinator_node *fol[LAB_COORDINATOR_MAX_NODES], *ld;
    size_t n, alive, k = 0;
    int64_t R = L->cfg.read_quorum;
    cJSON *d;

    pthread_mutex_lock(&L->mu);
    alive = lab_coordinator_alive_locked(L);
    if (R <= 0) {
        ld = lab_coordinator_leader(L);
        if (ld && ld->proc >= 0 && ld->state == LAB_ALIVE && max > 0) {
            snprintf(ids[0], 32, "%s", ld->id);
            snprintf(urls[0], 64, "%s", L->procs[ld->proc].url);
            k = 1;
        }
    } else if ((int64_t)alive >= R) {
        n = lab_coordinator_followers(L, fol);
        /* The last R alive followers by id. */
        for (size_t i = n; i > 0 && (int64_t)k < R && k < max; i--)
            if (fol[i - 1]->state == LAB_ALIVE) {
                snprintf(ids[k], 32, "%s", fol[i - 1]->id);
                snprintf(urls[k], 64, "%s", L->procs[fol[i - 1]->proc].url);
                k++;
            }
    }
    pthread_mutex_unlock(&L->mu);
    if (k == 0 || (R > 0 && (int64_t)k < R)) {
        *out = lab_coordinator_detail("Read quorum not available", &d);
        cJSON_AddNumberToObject(d, "alive", (double)alive);
        cJSON_AddNumberToObject(d, "required", (double)R);
        return 503;
    }
    *nout = k;
    return 0;
}

/* ---- kill, spawn, pause ------------------------------------------------------ */

static cJSON *lab_coordinator_unknown(const char *id)
{
    cJSON *d, *j = lab_coordinator_detail("Unknown node", &d);
    cJSON_AddStringToObject(d, "node_id", id);
    return j;
}

unsigned lab_coordinator_kill(lab_coordinator_t *L, const char *id, cJSON **out)
{
    lab_coordinator_node *n;
    lab_coordinator_proc *p;
    int64_t now = clock_mono_ms();
    size_t alive;
    int was_dead;

    pthread_mutex_lock(&L->mu);
    n = lab_coordinator_find(L, id);
    if (n == NULL || n->proc < 0) {
        pthread_mutex_unlock(&L->mu);
        *out = lab_coordinator_unknown(id);
        return 404;
    }
    p = &L->procs[n->proc];
    was_dead = n->state == LAB_DEAD;
    p->killed = 1;
    if (lab_coordinator_proc_running(L, p, NULL)) {
        sup_stop_child(L->sup, (size_t)p->sup);
        /* A paused process acts on SIGTERM only once it runs again. */
        sup_signal_child(L->sup, (size_t)p->sup, SIGCONT);
        p->cont_at_ms = 0;
        p->kill_at_ms = now + LAB_COORDINATOR_KILL_GRACE_MS;
    }
    L->kills++;
    if (!was_dead || n->dead_by == LAB_BY_SILENCE)
        lab_coordinator_mark_dead(L, n, LAB_BY_KILL, now, "killed (POST /kill)");
    alive = lab_coordinator_alive_locked(L);
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "status", "stopped");
    cJSON_AddStringToObject(*out, "node_id", n->id);
    cJSON_AddNumberToObject(*out, "incarnation", (double)n->inc);
    cJSON_AddStringToObject(*out, "url", p->url);
    cJSON_AddBoolToObject(*out, "can_write",
                          (int64_t)alive >= L->cfg.write_quorum &&
                              lab_coordinator_leader(L) && lab_coordinator_leader(L)->state == LAB_ALIVE);
    cJSON_AddBoolToObject(*out, "can_read", (int64_t)alive >= L->cfg.read_quorum);
    cJSON_AddNumberToObject(*out, "total_alive", (double)alive);
    if (was_dead)
        cJSON_AddStringToObject(*out, "note", "it was dead already");
    pthread_mutex_unlock(&L->mu);
    return 200;
}

/* "follower-<k>" with 1 <= k: k, else 0. */
static unsigned lab_coordinator_follower_num(const char *id)
{
    const char *p = id + 9;
    char *end;
    unsigned long k;

    if (strncmp(id, "follower-", 9) != 0 || *p < '1' || *p > '9')
        return 0;
    k = strtoul(p, &end, 10);
    if (*end != '\0' || k > 1000)
        return 0;
    return (unsigned)k;
}

unsigned lab_coordinator_spawn(lab_coordinator_t *L, const char *id, unsigned port, cJSON **out)
{
    lab_coordinator_node *n = NULL, *fol[LAB_COORDINATOR_MAX_NODES];
    cJSON *d;
    size_t nf;

    pthread_mutex_lock(&L->mu);
    if (id) {
        n = lab_coordinator_find(L, id);
        if (n == NULL) {
            unsigned k = lab_coordinator_follower_num(id);
            if (k == 0) {
                pthread_mutex_unlock(&L->mu);
                *out = lab_coordinator_detail("node_id must be \"leader\" or "
                                  "\"follower-<number>\"", &d);
                cJSON_AddStringToObject(d, "node_id", id);
                return 400;
            }
            n = lab_coordinator_new_node(L, k);
            if (n == NULL) {
                pthread_mutex_unlock(&L->mu);
                *out = lab_coordinator_detail("Too many followers (at most 31)", NULL);
                return 409;
            }
        } else if (n->state != LAB_DEAD) {
            pthread_mutex_unlock(&L->mu);
            *out = lab_coordinator_detail(n->state == LAB_ALIVE
                                  ? "Node is alive"
                                  : "Node is starting and catching up", &d);
            cJSON_AddStringToObject(d, "node_id", n->id);
            cJSON_AddStringToObject(d, "status", lab_coordinator_status_name(n));
            return 409;
        }
    } else {
        nf = lab_coordinator_followers(L, fol);
        for (size_t i = 0; i < nf && n == NULL; i++)
            if (fol[i]->state == LAB_DEAD)
                n = fol[i];
        if (n == NULL) {
            unsigned k = 0;
            for (size_t i = 0; i < nf; i++)
                if (fol[i]->num > k)
                    k = fol[i]->num;
            n = lab_coordinator_new_node(L, k + 1);
            if (n == NULL) {
                pthread_mutex_unlock(&L->mu);
                *out = lab_coordinator_detail("Too many followers (at most 31)", NULL);
                return 409;
            }
        }
    }
    if (port) {
        if (port < 1024 || port > 65535 || lab_coordinator_port_taken(L, port) ||
            !lab_coordinator_port_free(port)) {
            if (n->proc < 0)
                L->nnodes--; /* the node just named: forget it again */
            pthread_mutex_unlock(&L->mu);
            *out = lab_coordinator_detail("Port not available", &d);
            cJSON_AddNumberToObject(d, "port", port);
            return 409;
        }
    } else if ((port = lab_coordinator_pick_port(L, n)) == 0 ||
               (n->leader && port != LAB_COORDINATOR_LEADER_PORT)) {
        if (n->proc < 0)
            L->nnodes--;
        pthread_mutex_unlock(&L->mu);
        *out = lab_coordinator_detail(n->leader ? "The leader's port is still held by "
                                      "its stopping process; retry"
                                    : "No free port", NULL);
        return 409;
    }
    if (lab_coordinator_start_proc(L, n, port, 1) != 0) {
        if (n->proc < 0)
            L->nnodes--;
        pthread_mutex_unlock(&L->mu);
        *out = lab_coordinator_detail("Cannot start the node", NULL);
        return 500;
    }
    L->spawns++;
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "status", "spawned");
    cJSON_AddStringToObject(*out, "node_id", n->id);
    cJSON_AddStringToObject(*out, "url", L->procs[n->proc].url);
    cJSON_AddNumberToObject(*out, "incarnation", (double)n->inc);
    cJSON_AddNumberToObject(*out, "port", port);
    cJSON_AddNumberToObject(*out, "catch_up_to_seq", (double)n->target_seq);
    pthread_mutex_unlock(&L->mu);
    return 200;
}

unsigned lab_coordinator_pause(lab_coordinator_t *L, const char *id, long ms, cJSON **out)
{
    lab_coordinator_node *n;
    lab_coordinator_proc *p;
    cJSON *d;

    pthread_mutex_lock(&L->mu);
    n = lab_coordinator_find(L, id);
    if (n == NULL || n->proc < 0) {
        pthread_mutex_unlock(&L->mu);
        *out = lab_coordinator_unknown(id);
        return 404;
    }
    p = &L->procs[n->proc];
    if (!lab_coordinator_proc_running(L, p, NULL) ||
        (n->state == LAB_DEAD && n->dead_by != LAB_BY_SILENCE)) {
        pthread_mutex_unlock(&L->mu);
        *out = lab_coordinator_detail("Node is not running", &d);
        cJSON_AddStringToObject(d, "node_id", n->id);
        return 409;
    }
    sup_signal_child(L->sup, (size_t)p->sup, SIGSTOP);
    p->cont_at_ms = clock_mono_ms() + ms;
    L->pauses++;
    log_warn("lab: %s incarnation %" PRIu64 " paused for %ld ms (SIGSTOP: a "
             "network blip)", n->id, n->inc, ms);
    events_add("paused", "%s incarnation %" PRIu64 " paused for %ld ms",
               n->id, n->inc, ms);
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "status", "paused");
    cJSON_AddStringToObject(*out, "node_id", n->id);
    cJSON_AddNumberToObject(*out, "ms", (double)ms);
    cJSON_AddNumberToObject(*out, "incarnation", (double)n->inc);
    cJSON_AddStringToObject(*out, "url", p->url);
    pthread_mutex_unlock(&L->mu);
    return 200;
}
