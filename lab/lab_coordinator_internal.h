/* lab_coordinator_internal: what the files of the lab coordinator share
 * (lab/lab_coordinator.h is the contract): the nodes and their processes,
 * struct lab_coordinator, and the helpers more than one file calls. Only
 * lab/lab_coordinator*.c include it. The fields after mu are touched with
 * it held, and so are the helpers' arguments, unless a function says
 * otherwise. */
#ifndef KV_LAB_COORDINATOR_INTERNAL_H
#define KV_LAB_COORDINATOR_INTERNAL_H

#include "lab_coordinator.h"

#include "httpc_loop.h"
#include "sup.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

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

size_t lab_coordinator_alive_locked(lab_coordinator_t *L);
const char *lab_coordinator_dead_by_name(enum lab_coordinator_dead_by b);
cJSON *lab_coordinator_detail(const char *msg, cJSON **detail);
lab_coordinator_node *lab_coordinator_find(lab_coordinator_t *L, const char *id);
size_t lab_coordinator_followers(lab_coordinator_t *L, lab_coordinator_node **out);
int lab_coordinator_in_topology(const lab_coordinator_node *n);
lab_coordinator_node *lab_coordinator_leader(lab_coordinator_t *L);
void lab_coordinator_mark_dead(lab_coordinator_t *L, lab_coordinator_node *n, enum lab_coordinator_dead_by by,
                          int64_t now, const char *why);
void *lab_coordinator_monitor(void *arg);
lab_coordinator_node *lab_coordinator_new_node(lab_coordinator_t *L, unsigned num);
unsigned lab_coordinator_pick_port(lab_coordinator_t *L, const lab_coordinator_node *n);
int lab_coordinator_port_free(unsigned port);
int lab_coordinator_port_taken(lab_coordinator_t *L, unsigned port);
int lab_coordinator_proc_running(lab_coordinator_t *L, const lab_coordinator_proc *p, pid_t *pid);
int lab_coordinator_start_proc(lab_coordinator_t *L, lab_coordinator_node *n, unsigned port, int now);
const char *lab_coordinator_status_name(const lab_coordinator_node *n);

#endif
