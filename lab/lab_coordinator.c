/* lab_coordinator: see lab_coordinator.h. This file: the nodes and their
 * processes, the monitor thread (the lab's clock) and heartbeats. */
#include "lab_coordinator_internal.h"

#include "clock.h"
#include "config.h"
#include "httpc.h"
#include "lab_coordinator_http.h"
#include "events.h"
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

/* ---- small helpers ------------------------------------------------------ */

const lab_config *lab_coordinator_cfg(const lab_coordinator_t *L)
{
    return &L->cfg;
}

const char *lab_coordinator_status_name(const lab_coordinator_node *n)
{
    switch (n->state) {
    case LAB_ALIVE: return "alive";
    case LAB_DEAD: return "dead";
    case LAB_STARTING: break;
    }
    return "catching_up";
}

const char *lab_coordinator_dead_by_name(enum lab_coordinator_dead_by b)
{
    switch (b) {
    case LAB_BY_KILL: return "killed";
    case LAB_BY_EXIT: return "exited";
    case LAB_BY_SILENCE: return "silent";
    case LAB_BY_NONE: break;
    }
    return NULL;
}

/* cJSON object {"detail":{"error":msg}} plus the caller's fields. */
cJSON *lab_coordinator_detail(const char *msg, cJSON **detail)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *d = cJSON_AddObjectToObject(j, "detail");
    cJSON_AddStringToObject(d, "error", msg);
    if (detail)
        *detail = d;
    return j;
}

/* Can anything bind 127.0.0.1:port now (SO_REUSEADDR, as the servers)? */
int lab_coordinator_port_free(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ok;
    struct sockaddr_in sa;

    if (fd < 0)
        return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* The supervisor's view of a process: 1 while it may hold its port (about
 * to start, running, stopping), 0 once reaped. */
int lab_coordinator_proc_running(lab_coordinator_t *L, const lab_coordinator_proc *p, pid_t *pid)
{
    sup_info info;

    if (pid)
        *pid = 0;
    if (p->sup < 0 || sup_get(L->sup, (size_t)p->sup, &info) != 0)
        return 0;
    if (pid)
        *pid = info.pid;
    return info.state != SUP_STOPPED;
}

lab_coordinator_node *lab_coordinator_find(lab_coordinator_t *L, const char *id)
{
    for (size_t i = 0; i < L->nnodes; i++)
        if (strcmp(L->nodes[i].id, id) == 0)
            return &L->nodes[i];
    return NULL;
}

/* Followers in id order (by number) into out; returns how many. mu held. */
size_t lab_coordinator_followers(lab_coordinator_t *L, lab_coordinator_node **out)
{
    size_t n = 0;

    for (size_t i = 0; i < L->nnodes; i++)
        if (!L->nodes[i].leader)
            out[n++] = &L->nodes[i];
    for (size_t i = 1; i < n; i++)
        for (size_t k = i; k > 0 && out[k - 1]->num > out[k]->num; k--) {
            lab_coordinator_node *t = out[k];
            out[k] = out[k - 1];
            out[k - 1] = t;
        }
    return n;
}

lab_coordinator_node *lab_coordinator_leader(lab_coordinator_t *L)
{
    for (size_t i = 0; i < L->nnodes; i++)
        if (L->nodes[i].leader)
            return &L->nodes[i];
    return NULL;
}

size_t lab_coordinator_alive_locked(lab_coordinator_t *L)
{
    size_t n = 0;
    for (size_t i = 0; i < L->nnodes; i++)
        n += !L->nodes[i].leader && L->nodes[i].state == LAB_ALIVE;
    return n;
}

size_t lab_coordinator_alive(lab_coordinator_t *L)
{
    size_t n;
    pthread_mutex_lock(&L->mu);
    n = lab_coordinator_alive_locked(L);
    pthread_mutex_unlock(&L->mu);
    return n;
}

/* Is a node's current incarnation listed in the topology? Killed and
 * exited ones are not; a silent one stays listed (its replacement, with
 * auto-spawn, takes its place). */
int lab_coordinator_in_topology(const lab_coordinator_node *n)
{
    return n->proc >= 0 &&
           !(n->state == LAB_DEAD &&
             (n->dead_by == LAB_BY_KILL || n->dead_by == LAB_BY_EXIT));
}

static void lab_coordinator_topology_changed(lab_coordinator_t *L)
{
    L->topo_epoch++;
    L->poke = 1;
}

/* ---- processes ------------------------------------------------------------ */

/* A free proc slot: a new one, or one of a reaped process that is no
 * node's current incarnation. mu held. */
static int lab_coordinator_proc_slot(lab_coordinator_t *L)
{
    if (L->nprocs < LAB_COORDINATOR_MAX_PROCS)
        return (int)L->nprocs++;
    for (size_t i = 0; i < L->nprocs; i++) {
        int current = 0;
        for (size_t k = 0; k < L->nnodes; k++)
            current |= L->nodes[k].proc == (int)i;
        if (!current && !lab_coordinator_proc_running(L, &L->procs[i], NULL))
            return (int)i;
    }
    return -1;
}

/* Is port taken by a lab process that may still hold it? mu held. */
int lab_coordinator_port_taken(lab_coordinator_t *L, unsigned port)
{
    if (port == LAB_COORDINATOR_CTL_PORT || port == LAB_COORDINATOR_GATEWAY_PORT)
        return 1;
    for (size_t i = 0; i < L->nprocs; i++)
        if (L->procs[i].used && L->procs[i].port == port &&
            lab_coordinator_proc_running(L, &L->procs[i], NULL))
            return 1;
    return 0;
}

/* A port for a new incarnation of n: its home port (7001 + num) when no
 * process holds it, else the first free spare port. 0 when none. */
unsigned lab_coordinator_pick_port(lab_coordinator_t *L, const lab_coordinator_node *n)
{
    unsigned home = LAB_COORDINATOR_LEADER_PORT + n->num;

    if (home <= 65535 && !lab_coordinator_port_taken(L, home) && lab_coordinator_port_free(home))
        return home;
    if (n->leader)
        return 0;
    for (unsigned p = LAB_COORDINATOR_FIRST_SPARE_PORT; p < LAB_COORDINATOR_FIRST_SPARE_PORT + 2000;
         p++)
        if (!lab_coordinator_port_taken(L, p) && lab_coordinator_port_free(p))
            return p;
    return 0;
}

/* Start a new incarnation of n on port: register it with the supervisor and
 * ask for its start (the main thread forks). 0 or -1. mu held. */
int lab_coordinator_start_proc(lab_coordinator_t *L, lab_coordinator_node *n, unsigned port, int now)
{
    char data[PATH_MAX + 64], name[SUP_NAME_MAX], bin[PATH_MAX + 16];
    char sport[16], srep[16], sinc[24], lease[48];
    char *argv[40];
    size_t a = 0;
    int slot = lab_coordinator_proc_slot(L), idx;
    uint64_t inc = n->proc >= 0 ? n->inc + 1 : 1;
    lab_coordinator_proc *p;
    sup_spec spec;

    if (slot < 0) {
        log_error("lab: no room for another process");
        return -1;
    }
    if (n->leader) {
        snprintf(data, sizeof data, "%s/leader", L->dir);
        snprintf(name, sizeof name, "leader.%" PRIu64, inc);
    } else {
        char parent[PATH_MAX + 32];
        snprintf(parent, sizeof parent, "%s/%s", L->dir, n->id);
        if (mkdir(parent, 0755) != 0 && errno != EEXIST) {
            log_error("lab: mkdir %s: %s", parent, strerror(errno));
            return -1;
        }
        snprintf(data, sizeof data, "%s/inc-%" PRIu64, parent, inc);
        snprintf(name, sizeof name, "%s.%" PRIu64, n->id, inc);
    }
    snprintf(bin, sizeof bin, "%s/kv-store", L->bin_dir);
    snprintf(sport, sizeof sport, "%u", port);
    snprintf(srep, sizeof srep, "%u", n->num);
    snprintf(sinc, sizeof sinc, "%" PRIu64, inc);
    snprintf(lease, sizeof lease, "store.lease_ms=%lld",
             n->leader ? 0LL : (long long)L->lease_ms);
    argv[a++] = bin;
    argv[a++] = "--config";
    argv[a++] = L->conf;
    argv[a++] = "--port";
    argv[a++] = sport;
    argv[a++] = "--shard";
    argv[a++] = "0";
    argv[a++] = "--replica";
    argv[a++] = srep;
    argv[a++] = "--role";
    argv[a++] = n->leader ? "primary" : "secondary";
    argv[a++] = "--data";
    argv[a++] = data;
    argv[a++] = "--controller";
    argv[a++] = L->ctl_url;
    argv[a++] = "--heartbeat";
    argv[a++] = L->ctl_url;
    argv[a++] = "--node-id";
    argv[a++] = n->id;
    argv[a++] = "--incarnation";
    argv[a++] = sinc;
    argv[a++] = "--set";
    argv[a++] = lease;
    argv[a] = NULL;

    memset(&spec, 0, sizeof spec);
    snprintf(spec.name, sizeof spec.name, "%s", name);
    snprintf(spec.kind, sizeof spec.kind, "store");
    snprintf(spec.role, sizeof spec.role, "%s",
             n->leader ? "primary" : "secondary");
    spec.shard = 0;
    spec.replica = (int)n->num;
    spec.port = (uint16_t)port;
    snprintf(spec.url, sizeof spec.url, "http://%s:%u", LAB_COORDINATOR_HOST, port);
    spec.argv = argv;
    spec.once = 1;
    idx = sup_add(L->sup, &spec);
    if (idx < 0) {
        log_error("lab: cannot register %s", name);
        return -1;
    }
    p = &L->procs[slot];
    memset(p, 0, sizeof *p);
    p->used = 1;
    p->node = (int)(n - L->nodes);
    p->inc = inc;
    p->sup = idx;
    p->port = (uint16_t)port;
    snprintf(p->url, sizeof p->url, "http://%s:%u", LAB_COORDINATOR_HOST, port);
    p->started_ms = clock_mono_ms();
    if (n->proc >= 0 && !L->procs[n->proc].killed &&
        lab_coordinator_proc_running(L, &L->procs[n->proc], NULL))
        L->procs[n->proc].retired = 1;
    n->proc = slot;
    n->inc = inc;
    n->state = LAB_STARTING;
    n->dead_by = LAB_BY_NONE;
    n->dead_since_ms = 0;
    n->last_hb_ms = 0;
    n->applied_seq = 0;
    snprintf(n->store_state, sizeof n->store_state, "starting");
    n->target_seq = L->leader_seq;
    n->next_try_ms = 0;
    if (now)
        sup_start_child(L->sup, (size_t)idx);
    lab_coordinator_topology_changed(L);
    log_info("lab: %s incarnation %" PRIu64 " on %s (data %s)%s", n->id, inc,
             p->url, data,
             n->target_seq ? "; it catches up from the leader" : "");
    events_add("start", "%s incarnation %" PRIu64 " on %s", n->id, inc, p->url);
    return 0;
}

lab_coordinator_node *lab_coordinator_new_node(lab_coordinator_t *L, unsigned num)
{
    lab_coordinator_node *n;

    /* The leader plus at most LAB_COORDINATOR_MAX_FOLLOWERS followers (the topology's
     * and the leader's limit on secondaries). */
    if (L->nnodes >= LAB_COORDINATOR_MAX_FOLLOWERS + 1)
        return NULL;
    n = &L->nodes[L->nnodes++];
    memset(n, 0, sizeof *n);
    n->proc = -1;
    n->num = num;
    n->leader = num == 0;
    if (n->leader)
        snprintf(n->id, sizeof n->id, "leader");
    else
        snprintf(n->id, sizeof n->id, "follower-%u", num);
    n->state = LAB_DEAD;
    return n;
}

/* A node that dies: mu held. */
void lab_coordinator_mark_dead(lab_coordinator_t *L, lab_coordinator_node *n, enum lab_coordinator_dead_by by,
                          int64_t now, const char *why)
{
    int was_listed = lab_coordinator_in_topology(n);

    n->state = LAB_DEAD;
    n->dead_by = by;
    n->dead_since_ms = now;
    if (was_listed && !lab_coordinator_in_topology(n))
        lab_coordinator_topology_changed(L);
    log_warn("lab: %s (incarnation %" PRIu64 ") is dead: %s", n->id, n->inc,
             why);
    events_add("dead", "%s incarnation %" PRIu64 ": %s", n->id, n->inc, why);
}

/* Replace follower n by a new incarnation now (auto-spawn). mu held. */
static void lab_coordinator_respawn(lab_coordinator_t *L, lab_coordinator_node *n, int64_t now)
{
    unsigned port = lab_coordinator_pick_port(L, n);

    if (port == 0 || lab_coordinator_start_proc(L, n, port, 1) != 0) {
        log_error("lab: auto-spawn of %s failed; retrying in 1 s", n->id);
        n->next_try_ms = now + 1000;
        return;
    }
    L->respawns++;
    log_warn("lab: auto-spawn: %s replaced by incarnation %" PRIu64
             " (respawn #%" PRIu64 ")", n->id, n->inc, L->respawns);
    events_add("respawn", "%s replaced by incarnation %" PRIu64, n->id, n->inc);
}

/* ---- the monitor: the lab's clock ---------------------------------------- */

static void lab_coordinator_tick(lab_coordinator_t *L)
{
    int64_t now = clock_mono_ms();

    pthread_mutex_lock(&L->mu);
    for (size_t i = 0; i < L->nprocs; i++) {
        lab_coordinator_proc *p = &L->procs[i];
        if (!p->used)
            continue;
        if (p->cont_at_ms && now >= p->cont_at_ms) {
            p->cont_at_ms = 0;
            sup_signal_child(L->sup, (size_t)p->sup, SIGCONT);
            log_info("lab: %s incarnation %" PRIu64 " resumed (SIGCONT)",
                     L->nodes[p->node].id, p->inc);
            events_add("resumed", "%s incarnation %" PRIu64 " resumed",
                       L->nodes[p->node].id, p->inc);
        }
        if (p->kill_at_ms && now >= p->kill_at_ms) {
            p->kill_at_ms = 0;
            if (lab_coordinator_proc_running(L, p, NULL)) {
                log_warn("lab: %s incarnation %" PRIu64 " ignored SIGTERM "
                         "for %d ms: SIGKILL", L->nodes[p->node].id, p->inc,
                         LAB_COORDINATOR_KILL_GRACE_MS);
                sup_signal_child(L->sup, (size_t)p->sup, SIGCONT);
                sup_signal_child(L->sup, (size_t)p->sup, SIGKILL);
            }
        }
    }
    for (size_t i = 0; i < L->nnodes; i++) {
        lab_coordinator_node *n = &L->nodes[i];
        lab_coordinator_proc *p;
        sup_info info;

        if (n->proc < 0)
            continue;
        p = &L->procs[n->proc];
        if (n->state != LAB_DEAD) {
            int64_t silent_since = n->last_hb_ms
                                       ? n->last_hb_ms
                                       : p->started_ms + LAB_COORDINATOR_START_GRACE_MS -
                                             L->dead_after_ms;
            if (sup_get(L->sup, (size_t)p->sup, &info) == 0 &&
                info.state == SUP_STOPPED) {
                char why[128];
                snprintf(why, sizeof why, "its process exited (%s)",
                         info.last_exit[0] ? info.last_exit : "?");
                lab_coordinator_mark_dead(L, n, LAB_BY_EXIT, now, why);
            } else if (now - silent_since > L->dead_after_ms) {
                char why[128];
                snprintf(why, sizeof why, "no heartbeat for %lld ms",
                         (long long)(now - silent_since));
                lab_coordinator_mark_dead(L, n, LAB_BY_SILENCE, now, why);
                if (!n->leader && L->cfg.auto_spawn)
                    lab_coordinator_respawn(L, n, now);
            }
            continue;
        }
        /* Dead: auto-spawn replaces a follower. */
        if (n->leader || !L->cfg.auto_spawn || now < n->next_try_ms)
            continue;
        if (n->dead_by == LAB_BY_SILENCE ||
            now - n->dead_since_ms >=
                (int64_t)(L->cfg.auto_spawn_delay * 1000.0))
            lab_coordinator_respawn(L, n, now);
    }
    pthread_mutex_unlock(&L->mu);
}

/* Tell every store the topology changed (fire and forget). */
static void lab_coordinator_poke_done(httpc_resp *resp, void *ctx)
{
    (void)resp;
    free(ctx);
}

static void lab_coordinator_poke_stores(lab_coordinator_t *L)
{
    char urls[LAB_COORDINATOR_MAX_NODES][96];
    size_t n = 0;

    pthread_mutex_lock(&L->mu);
    if (!L->poke) {
        pthread_mutex_unlock(&L->mu);
        return;
    }
    L->poke = 0;
    for (size_t i = 0; i < L->nnodes; i++) {
        const lab_coordinator_node *nd = &L->nodes[i];
        if (nd->proc >= 0 && lab_coordinator_in_topology(nd))
            snprintf(urls[n++], sizeof urls[0], "%s/internal/topology-changed",
                     L->procs[nd->proc].url);
    }
    pthread_mutex_unlock(&L->mu);
    for (size_t i = 0; i < n; i++) {
        char *url = strdup(urls[i]);
        httpc_req req = {0};
        if (url == NULL)
            continue;
        req.method = "POST";
        req.url = url;
        req.body = "";
        req.timeout_ms = 1000;
        if (httpc_loop_async(L->loop, &req, lab_coordinator_poke_done, url) != 0)
            free(url);
    }
}

/* Does the gateway answer /health? */
static int lab_coordinator_gateway_up(void)
{
    char url[64];
    httpc_req req = {0};
    httpc_resp resp;
    int up;

    snprintf(url, sizeof url, "http://%s:%d/health", LAB_COORDINATOR_HOST,
             LAB_COORDINATOR_GATEWAY_PORT);
    req.url = url;
    req.timeout_ms = 500;
    up = httpc_do(&req, &resp) == 0 && resp.status == 200;
    httpc_resp_free(&resp);
    return up;
}

static void lab_coordinator_print_ready(lab_coordinator_t *L)
{
    lab_coordinator_node *fol[LAB_COORDINATOR_MAX_NODES];
    size_t n;
    int gw = 0;

    /* The gateway starts with the stores; give it a moment. */
    for (int i = 0; i < 20 && !(gw = lab_coordinator_gateway_up()); i++)
        usleep(100 * 1000);
    pthread_mutex_lock(&L->mu);
    n = lab_coordinator_followers(L, fol);
    printf("\nCloudCart lab: one leader and %zu followers, W = %lld, R = %lld "
           "(ordered), auto-spawn %s\n", n, (long long)L->cfg.write_quorum,
           (long long)L->cfg.read_quorum, L->cfg.auto_spawn ? "on" : "off");
    printf("  controller  %s   (GET /status, POST /write, GET /read/{key}, "
           "POST /kill/{id}, POST /spawn, POST /pause/{id}?ms=N)\n",
           L->ctl_url);
    printf("  gateway     http://%s:%d%s\n", LAB_COORDINATOR_HOST, LAB_COORDINATOR_GATEWAY_PORT,
           gw ? "" : "   (NOT answering: see its log)");
    if (lab_coordinator_leader(L) && lab_coordinator_leader(L)->proc >= 0)
        printf("  leader      %s\n", L->procs[lab_coordinator_leader(L)->proc].url);
    for (size_t i = 0; i < n; i++)
        if (fol[i]->proc >= 0)
            printf("  %-11s %s\n", fol[i]->id, L->procs[fol[i]->proc].url);
    printf("  data and logs: %s\n", L->dir);
    printf("ready\n");
    fflush(stdout);
    pthread_mutex_unlock(&L->mu);
    log_info("lab ready in %lld ms", (long long)(clock_mono_ms() - L->started_ms));
}

static int lab_coordinator_all_alive(lab_coordinator_t *L)
{
    int all = 1;
    pthread_mutex_lock(&L->mu);
    for (size_t i = 0; i < L->nnodes; i++)
        all &= L->nodes[i].state == LAB_ALIVE;
    pthread_mutex_unlock(&L->mu);
    return all;
}

void *lab_coordinator_monitor(void *arg)
{
    lab_coordinator_t *L = arg;
    int warned = 0;

    while (!atomic_load(&L->stop)) {
        lab_coordinator_tick(L);
        lab_coordinator_poke_stores(L);
        if (!L->ready) {
            if (lab_coordinator_all_alive(L)) {
                L->ready = 1;
                lab_coordinator_print_ready(L);
            } else if (!warned && clock_mono_ms() - L->started_ms >
                                      LAB_COORDINATOR_READY_TIMEOUT_MS) {
                warned = 1;
                log_error("lab: not every node is alive after %d s; see GET "
                          "%s/status and the logs in %s", LAB_COORDINATOR_READY_TIMEOUT_MS / 1000,
                          L->ctl_url, L->logs);
            }
        }
        usleep(LAB_COORDINATOR_TICK_MS * 1000);
    }
    httpc_thread_done();
    return NULL;
}

/* ---- heartbeats --------------------------------------------------------- */

int lab_coordinator_heartbeat(lab_coordinator_t *L, const char *id, uint64_t incarnation,
                     uint64_t applied_seq, const char *state, uint64_t *current)
{
    lab_coordinator_node *n;
    int rc = 0;
    int64_t now = clock_mono_ms();

    pthread_mutex_lock(&L->mu);
    L->heartbeats++;
    n = lab_coordinator_find(L, id);
    if (n == NULL || n->proc < 0) {
        pthread_mutex_unlock(&L->mu);
        return -1;
    }
    *current = n->inc;
    if (incarnation < n->inc) {
        /* A replaced incarnation woke up: fence it, count it once. */
        for (size_t i = 0; i < L->nprocs; i++) {
            lab_coordinator_proc *p = &L->procs[i];
            if (p->used && p->node == (int)(n - L->nodes) &&
                p->inc == incarnation && p->retired && !p->fenced) {
                p->fenced = 1;
                L->fenced++;
                log_warn("lab: fenced %s incarnation %" PRIu64 " (replaced "
                         "by %" PRIu64 "): told it to stop", id, incarnation,
                         n->inc);
                events_add("fenced", "ghost %s incarnation %" PRIu64
                           " fenced (replaced by %" PRIu64 ")", id, incarnation,
                           n->inc);
            }
        }
        pthread_mutex_unlock(&L->mu);
        return 1;
    }
    if (incarnation > n->inc) {
        pthread_mutex_unlock(&L->mu);
        return -1;
    }
    if (n->state == LAB_DEAD &&
        (n->dead_by == LAB_BY_KILL || n->dead_by == LAB_BY_EXIT)) {
        /* A killed process saying goodbye: it stays dead. */
        pthread_mutex_unlock(&L->mu);
        return 0;
    }
    n->last_hb_ms = now;
    n->applied_seq = applied_seq;
    snprintf(n->store_state, sizeof n->store_state, "%s", state ? state : "");
    if (n->leader) {
        if (applied_seq > L->leader_seq)
            L->leader_seq = applied_seq;
        if (n->state != LAB_ALIVE)
            log_info("lab: leader alive (seq %" PRIu64 ")", applied_seq);
        n->state = LAB_ALIVE;
        n->dead_by = LAB_BY_NONE;
    } else {
        if (n->state == LAB_DEAD) {
            /* Back from a silence that did not get it replaced. */
            n->state = LAB_STARTING;
            n->dead_by = LAB_BY_NONE;
            n->target_seq = L->leader_seq;
            log_info("lab: %s heartbeats again", n->id);
        }
        if (n->state == LAB_STARTING && applied_seq >= n->target_seq &&
            state && strcmp(state, "secondary") == 0) {
            n->state = LAB_ALIVE;
            log_info("lab: %s incarnation %" PRIu64 " alive (applied seq %"
                     PRIu64 ", caught up past %" PRIu64 ")", n->id, n->inc,
                     applied_seq, n->target_seq);
        }
    }
    pthread_mutex_unlock(&L->mu);
    return rc;
}

void lab_coordinator_note_leader_seq(lab_coordinator_t *L, uint64_t seq)
{
    pthread_mutex_lock(&L->mu);
    if (seq > L->leader_seq)
        L->leader_seq = seq;
    pthread_mutex_unlock(&L->mu);
}
