/* lab_coordinator: see lab_coordinator.h. */
#include "lab_coordinator.h"

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

#define LAB_COORDINATOR_TICK_MS 50

enum lab_coordinator_state { LAB_STARTING = 0, LAB_ALIVE, LAB_DEAD };
enum lab_coordinator_dead_by { LAB_BY_NONE = 0, LAB_BY_KILL, LAB_BY_EXIT, LAB_BY_SILENCE };

/* One process: an incarnation of a node. */
typedef struct lab_coordinator_proc {
    int used;
    int node;                /* index in nodes */
    uint64_t inc;
    int sup;                 /* supervisor index */
    uint16_t port;
    char url[64];
    int64_t started_ms;
    int64_t cont_at_ms;      /* SIGCONT due (a pause), 0 = none */
    int64_t kill_at_ms;      /* SIGKILL due (SIGTERM ignored), 0 = none */
    int killed;              /* POST /kill stopped it */
    int retired;             /* replaced while it may still run: fenced
                                when it next reports */
    int fenced;              /* a heartbeat told it so */
} lab_coordinator_proc;

typedef struct lab_coordinator_node {
    char id[32];
    int leader;
    unsigned num;            /* follower-<num>; 0 for the leader */
    int proc;                /* current incarnation, -1 = none yet */
    uint64_t inc;            /* its number */
    enum lab_coordinator_state state;
    enum lab_coordinator_dead_by dead_by;
    int64_t dead_since_ms;
    int64_t last_hb_ms;      /* 0 = none from this incarnation yet */
    uint64_t applied_seq;
    char store_state[16];
    uint64_t target_seq;     /* the leader's seq when it was spawned */
    int64_t next_try_ms;     /* auto-spawn retry after a failed start */
} lab_coordinator_node;

struct lab_coordinator {
    lab_config cfg;
    char bin_dir[PATH_MAX];
    char dir[PATH_MAX];          /* this run's data and logs */
    char logs[PATH_MAX];
    char conf[PATH_MAX];         /* the stores' and gateway's config file */
    int remove_dir;              /* a temporary directory: removed at exit */
    char ctl_url[64];
    int64_t dead_after_ms;
    int64_t lease_ms;
    sup_t *sup;
    httpc_loop *loop;
    int gw_sup;

    pthread_mutex_t mu;          /* guards what follows */
    lab_coordinator_node nodes[LAB_COORDINATOR_MAX_NODES];
    size_t nnodes;
    lab_coordinator_proc procs[LAB_COORDINATOR_MAX_PROCS];
    size_t nprocs;
    uint64_t topo_epoch;
    uint64_t leader_seq;
    uint64_t respawns, spawns, fenced, kills, pauses, heartbeats;
    int64_t started_ms;
    int ready;
    int poke;                    /* the topology changed: tell the stores */

    pthread_t mon;
    int mon_started;
    atomic_int stop;
};

/* ---- small helpers ------------------------------------------------------ */

const lab_config *lab_coordinator_cfg(const lab_coordinator_t *L)
{
    return &L->cfg;
}

static const char *lab_coordinator_status_name(const lab_coordinator_node *n)
{
    switch (n->state) {
    case LAB_ALIVE: return "alive";
    case LAB_DEAD: return "dead";
    case LAB_STARTING: break;
    }
    return "catching_up";
}

static const char *lab_coordinator_dead_by_name(enum lab_coordinator_dead_by b)
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
static cJSON *lab_coordinator_detail(const char *msg, cJSON **detail)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *d = cJSON_AddObjectToObject(j, "detail");
    cJSON_AddStringToObject(d, "error", msg);
    if (detail)
        *detail = d;
    return j;
}

/* Can anything bind 127.0.0.1:port now (SO_REUSEADDR, as the servers)? */
static int lab_coordinator_port_free(unsigned port)
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
static int lab_coordinator_proc_running(lab_coordinator_t *L, const lab_coordinator_proc *p, pid_t *pid)
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

static lab_coordinator_node *lab_coordinator_find(lab_coordinator_t *L, const char *id)
{
    for (size_t i = 0; i < L->nnodes; i++)
        if (strcmp(L->nodes[i].id, id) == 0)
            return &L->nodes[i];
    return NULL;
}

/* Followers in id order (by number) into out; returns how many. mu held. */
static size_t lab_coordinator_followers(lab_coordinator_t *L, lab_coordinator_node **out)
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

static lab_coordinator_node *lab_coordinator_leader(lab_coordinator_t *L)
{
    for (size_t i = 0; i < L->nnodes; i++)
        if (L->nodes[i].leader)
            return &L->nodes[i];
    return NULL;
}

static size_t lab_coordinator_alive_locked(lab_coordinator_t *L)
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
static int lab_coordinator_in_topology(const lab_coordinator_node *n)
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
static int lab_coordinator_port_taken(lab_coordinator_t *L, unsigned port)
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
static unsigned lab_coordinator_pick_port(lab_coordinator_t *L, const lab_coordinator_node *n)
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
static int lab_coordinator_start_proc(lab_coordinator_t *L, lab_coordinator_node *n, unsigned port, int now)
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
    return 0;
}

static lab_coordinator_node *lab_coordinator_new_node(lab_coordinator_t *L, unsigned num)
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
static void lab_coordinator_mark_dead(lab_coordinator_t *L, lab_coordinator_node *n, enum lab_coordinator_dead_by by,
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

static void *lab_coordinator_monitor(void *arg)
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

char *lab_coordinator_metrics_text(lab_coordinator_t *L, size_t *len)
{
    size_t cap = 4096 + LAB_COORDINATOR_MAX_NODES * 200, off = 0;
    char *buf = malloc(cap);
    lab_coordinator_node *fol[LAB_COORDINATOR_MAX_NODES];
    size_t n;

    if (buf == NULL)
        return NULL;
    pthread_mutex_lock(&L->mu);
    off += (size_t)snprintf(buf + off, cap - off,
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
    if (lab_coordinator_leader(L) && off < cap)
        off += (size_t)snprintf(buf + off, cap - off,
                                "kv_lab_node_alive{node=\"leader\"} %d\n",
                                lab_coordinator_leader(L)->state == LAB_ALIVE);
    n = lab_coordinator_followers(L, fol);
    for (size_t i = 0; i < n && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off,
                                "kv_lab_node_alive{node=\"%s\"} %d\n",
                                fol[i]->id, fol[i]->state == LAB_ALIVE);
    for (size_t i = 0; i < n && off < cap; i++)
        off += (size_t)snprintf(buf + off, cap - off,
                                "%skv_lab_node_incarnation{node=\"%s\"} %" PRIu64
                                "\n",
                                i == 0 ? "# HELP kv_lab_node_incarnation "
                                         "Current incarnation of a follower\n"
                                         "# TYPE kv_lab_node_incarnation gauge\n"
                                       : "",
                                fol[i]->id, fol[i]->inc);
    pthread_mutex_unlock(&L->mu);
    if (off >= cap)
        off = cap - 1;
    buf[off] = '\0';
    *len = off;
    return buf;
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
    *out = cJSON_CreateObject();
    cJSON_AddStringToObject(*out, "status", "paused");
    cJSON_AddStringToObject(*out, "node_id", n->id);
    cJSON_AddNumberToObject(*out, "ms", (double)ms);
    cJSON_AddNumberToObject(*out, "incarnation", (double)n->inc);
    cJSON_AddStringToObject(*out, "url", p->url);
    pthread_mutex_unlock(&L->mu);
    return 200;
}

/* ---- setting up and running ------------------------------------------------- */

static int lab_coordinator_rm_one(const char *path, const struct stat *sb, int flag,
                      struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* The run directory: $KV_DATA_DIR/lab-<time>-<pid> (kept), else a fresh
 * temporary directory (removed at exit). */
static int lab_coordinator_make_dir(lab_coordinator_t *L)
{
    const char *base = getenv("KV_DATA_DIR");

    if (base && *base) {
        char stamp[32];
        time_t t = time(NULL);
        struct tm tm;
        if (mkdir(base, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "kv-controller: mkdir %s: %s\n", base,
                    strerror(errno));
            return -1;
        }
        localtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        if ((size_t)snprintf(L->dir, sizeof L->dir, "%s/lab-%s-%ld", base,
                             stamp, (long)getpid()) >= sizeof L->dir - 64 ||
            mkdir(L->dir, 0755) != 0) {
            fprintf(stderr, "kv-controller: cannot create %s: %s\n", L->dir,
                    strerror(errno));
            return -1;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(L->dir, sizeof L->dir, "%s/kv-lab-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(L->dir) == NULL) {
            fprintf(stderr, "kv-controller: mkdtemp %s: %s\n", L->dir,
                    strerror(errno));
            return -1;
        }
        L->remove_dir = 1;
    }
    return 0;
}

/* The configuration file every lab store and the gateway read: the lab
 * timing profile. */
static int lab_coordinator_write_config(lab_coordinator_t *L)
{
    kv_config c;
    char err[256], *text;
    FILE *f;
    int rc = 0;

    config_defaults(&c);
    snprintf(c.bind, sizeof c.bind, "%s", LAB_COORDINATOR_HOST);
    if ((size_t)snprintf(c.data_dir, sizeof c.data_dir, "%s", L->dir) >=
        sizeof c.data_dir) {
        fprintf(stderr, "kv-controller: %s: path too long\n", L->dir);
        return -1;
    }
    c.shards = 1;
    c.replicas = 32;
    c.base_port = LAB_COORDINATOR_CTL_PORT;
    c.write_quorum = L->cfg.write_quorum;
    c.read_quorum = L->cfg.read_quorum;
    snprintf(c.quorum_policy, sizeof c.quorum_policy, "ordered");
    c.quorum_timeout_ms = LAB_COORDINATOR_QUORUM_TIMEOUT_MS;
    c.lab_sync_delay_ms = LAB_COORDINATOR_SYNC_DELAY_MS;
    c.lab_async_delay_ms = LAB_COORDINATOR_ASYNC_DELAY_MS;
    c.heartbeat_ms = LAB_COORDINATOR_HEARTBEAT_MS;
    c.lease_ms = 0;   /* per follower on its command line */
    /* The stream delivers everything; a secondary's own pull is only a
     * safety net here, or it would undo the async delay. */
    c.reconcile_interval_ms = 30000;
    c.topology_poll_ms = 500;
    c.map_size_mb = 1024;
    c.store_threads = 4;
    c.api_count = 1;
    c.api_threads = 4;
    c.upstream_timeout_ms = 15000;
    c.rate_limit = L->cfg.rate_limit_enabled ? L->cfg.rate_limit_max : 0;
    c.rate_window_ms = (int64_t)(L->cfg.rate_limit_window * 1000.0 + 0.5);
    if (c.rate_window_ms < 1)
        c.rate_window_ms = 1;
    if (config_validate(&c, err, sizeof err) != 0) {
        fprintf(stderr, "kv-controller: lab configuration: %s\n", err);
        return -1;
    }
    if ((size_t)snprintf(L->conf, sizeof L->conf, "%s/lab-config.json",
                         L->dir) >= sizeof L->conf)
        return -1;
    text = config_to_json(&c);
    f = fopen(L->conf, "w");
    if (text == NULL || f == NULL || fputs(text, f) < 0 || fputc('\n', f) < 0)
        rc = -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(text);
    if (rc)
        fprintf(stderr, "kv-controller: cannot write %s\n", L->conf);
    return rc;
}

static int lab_coordinator_add_gateway(lab_coordinator_t *L)
{
    char bin[PATH_MAX + 16], port[16], ctl[80], rl[64], rw[64];
    char *argv[16];
    size_t a = 0;
    sup_spec spec;

    snprintf(bin, sizeof bin, "%s/kv-api", L->bin_dir);
    snprintf(port, sizeof port, "%d", LAB_COORDINATOR_GATEWAY_PORT);
    snprintf(ctl, sizeof ctl, "%s", L->ctl_url);
    snprintf(rl, sizeof rl, "api.rate_limit=%lld",
             L->cfg.rate_limit_enabled ? (long long)L->cfg.rate_limit_max : 0LL);
    snprintf(rw, sizeof rw, "api.rate_window_ms=%lld",
             (long long)(L->cfg.rate_limit_window * 1000.0 + 0.5) > 0
                 ? (long long)(L->cfg.rate_limit_window * 1000.0 + 0.5)
                 : 1LL);
    argv[a++] = bin;
    argv[a++] = "--lab";
    argv[a++] = "--config";
    argv[a++] = L->conf;
    argv[a++] = "--port";
    argv[a++] = port;
    argv[a++] = "--controller";
    argv[a++] = ctl;
    argv[a++] = "--set";
    argv[a++] = rl;
    argv[a++] = "--set";
    argv[a++] = rw;
    argv[a] = NULL;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.name, sizeof spec.name, "gateway");
    snprintf(spec.kind, sizeof spec.kind, "api");
    snprintf(spec.role, sizeof spec.role, "gateway");
    spec.shard = spec.replica = -1;
    spec.port = LAB_COORDINATOR_GATEWAY_PORT;
    snprintf(spec.url, sizeof spec.url, "http://%s:%d", LAB_COORDINATOR_HOST,
             LAB_COORDINATOR_GATEWAY_PORT);
    spec.argv = argv;
    L->gw_sup = sup_add(L->sup, &spec);
    return L->gw_sup < 0 ? -1 : 0;
}

static void lab_coordinator_print_lines(const char *prefix, const char *msg)
{
    while (*msg) {
        size_t n = strcspn(msg, "\n");
        if (n)
            fprintf(stderr, "%s%.*s\n", prefix, (int)n, msg);
        msg += n;
        if (*msg == '\n')
            msg++;
    }
}

int lab_coordinator_main(const char *config_path, const char *bin_dir,
                const char *log_dir)
{
    lab_coordinator_t *L = calloc(1, sizeof *L);
    char err[4096], warn[2048], bin[PATH_MAX + 16];
    lab_coordinator_http_t *http = NULL;
    int code = 1;

    if (L == NULL)
        return 1;
    pthread_mutex_init(&L->mu, NULL);
    atomic_init(&L->stop, 0);
    L->gw_sup = -1;
    if (lab_config_load_resolved(&L->cfg, config_path, err, sizeof err, warn,
                             sizeof warn) != 0) {
        lab_coordinator_print_lines("kv-controller: ", err);
        pthread_mutex_destroy(&L->mu);
        free(L);
        return 2;
    }
    lab_coordinator_print_lines("kv-controller: warning: ", warn);
    lab_config_print_summary(stdout, &L->cfg);
    fflush(stdout);
    snprintf(L->bin_dir, sizeof L->bin_dir, "%s", bin_dir);
    snprintf(L->ctl_url, sizeof L->ctl_url, "http://%s:%d", LAB_COORDINATOR_HOST,
             LAB_COORDINATOR_CTL_PORT);
    /* Silence for dead_after means dead; never below two heartbeats. */
    L->dead_after_ms = L->cfg.auto_spawn
                           ? (int64_t)(L->cfg.auto_spawn_delay * 1000.0 + 0.5)
                           : LAB_COORDINATOR_DEAD_AFTER_DEFAULT_MS;
    if (L->dead_after_ms < 2 * LAB_COORDINATOR_HEARTBEAT_MS)
        L->dead_after_ms = 2 * LAB_COORDINATOR_HEARTBEAT_MS;
    L->lease_ms = L->dead_after_ms;

    snprintf(bin, sizeof bin, "%s/kv-store", bin_dir);
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "kv-controller: %s: %s (build it with make)\n", bin,
                strerror(errno));
        goto out;
    }
    {
        unsigned ports[LAB_CONFIG_MAX_FOLLOWERS + 3];
        size_t np = 0;
        ports[np++] = LAB_COORDINATOR_CTL_PORT;
        ports[np++] = LAB_COORDINATOR_GATEWAY_PORT;
        for (int64_t i = 0; i <= L->cfg.followers; i++)
            ports[np++] = LAB_COORDINATOR_LEADER_PORT + (unsigned)i;
        for (size_t i = 0; i < np; i++)
            if (!lab_coordinator_port_free(ports[i])) {
                fprintf(stderr, "kv-controller: port %u is in use (another "
                        "lab still running? the lab needs 7000, 7001..%u and "
                        "8000)\n", ports[i],
                        LAB_COORDINATOR_LEADER_PORT + (unsigned)L->cfg.followers);
                goto out;
            }
    }
    if (lab_coordinator_make_dir(L) != 0)
        goto out;
    if ((size_t)snprintf(L->logs, sizeof L->logs, "%s%s",
                         log_dir && *log_dir ? log_dir : L->dir,
                         log_dir && *log_dir ? "" : "/logs") >= sizeof L->logs) {
        fprintf(stderr, "kv-controller: %s: path too long\n", L->dir);
        goto out;
    }
    if (mkdir(L->logs, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "kv-controller: mkdir %s: %s\n", L->logs,
                strerror(errno));
        goto out;
    }
    if (lab_coordinator_write_config(L) != 0)
        goto out;
    /* The children read the lab's file; the caller's environment must not
     * change W, the delays or the ports under them. */
    config_clear_env();

    httpc_global_init();
    L->loop = httpc_loop_start();
    L->sup = sup_new(&(sup_opts){.backoff_ms = 500,
                                 .backoff_max_ms = 5000,
                                 .log_dir = L->logs});
    if (L->loop == NULL || L->sup == NULL)
        goto out;
    http = lab_coordinator_http_start(L, LAB_COORDINATOR_HOST, LAB_COORDINATOR_CTL_PORT);
    if (http == NULL) {
        fprintf(stderr, "kv-controller: cannot listen on %s:%d\n", LAB_COORDINATOR_HOST,
                LAB_COORDINATOR_CTL_PORT);
        goto out;
    }
    L->started_ms = clock_mono_ms();
    L->topo_epoch = 1;
    pthread_mutex_lock(&L->mu);
    for (int64_t i = 0; i <= L->cfg.followers; i++) {
        lab_coordinator_node *n = lab_coordinator_new_node(L, (unsigned)i);
        if (n == NULL || lab_coordinator_start_proc(L, n, LAB_COORDINATOR_LEADER_PORT + (unsigned)i,
                                        0) != 0) {
            pthread_mutex_unlock(&L->mu);
            goto out;
        }
    }
    pthread_mutex_unlock(&L->mu);
    snprintf(bin, sizeof bin, "%s/kv-api", bin_dir);
    if (access(bin, X_OK) != 0)
        log_error("lab: %s: %s: running without a gateway", bin,
                  strerror(errno));
    else if (lab_coordinator_add_gateway(L) != 0)
        log_error("lab: cannot register the gateway");
    log_info("lab: controller on %s, data and logs in %s (one log per "
             "process in %s), heartbeats every %d ms, dead after %lld ms of "
             "silence", L->ctl_url, L->dir, L->logs, LAB_COORDINATOR_HEARTBEAT_MS,
             (long long)L->dead_after_ms);
    sup_start_all(L->sup);
    if (pthread_create(&L->mon, NULL, lab_coordinator_monitor, L) != 0)
        goto out;
    L->mon_started = 1;

    code = sup_run(L->sup);

out:
    atomic_store(&L->stop, 1);
    if (L->mon_started)
        pthread_join(L->mon, NULL);
    if (L->sup) {
        /* Paused processes act on SIGTERM only once they run again. */
        pthread_mutex_lock(&L->mu);
        for (size_t i = 0; i < L->nprocs; i++)
            if (L->procs[i].used && L->procs[i].sup >= 0)
                sup_signal_child(L->sup, (size_t)L->procs[i].sup, SIGCONT);
        pthread_mutex_unlock(&L->mu);
        sup_stop_all(L->sup, 5000);
    }
    lab_coordinator_http_stop(http);
    if (L->loop)
        httpc_loop_stop(L->loop);
    sup_free(L->sup);
    if (L->remove_dir && L->dir[0])
        nftw(L->dir, lab_coordinator_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    else if (L->dir[0])
        log_info("lab: data and logs kept in %s", L->dir);
    httpc_thread_done();
    pthread_mutex_destroy(&L->mu);
    free(L);
    log_info("lab stopped (exit %d)", code);
    return code;
}

httpc_loop *lab_coordinator_loop(lab_coordinator_t *L)
{
    return L->loop;
}
