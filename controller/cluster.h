/* cluster: what the controller runs and publishes, built from kv_config.
 *
 * A cluster_t lists the nodes of the local cluster (every store replica, the
 * queue, the api processes, nginx) with their ports, URLs and command lines,
 * and holds the topology state the controller serves at GET /topology:
 * cluster epoch and, per shard, its epoch and which replica is primary.
 * Failover (later) changes that state with cluster_set_primary; everything
 * else reads it under the lock.
 *
 * Files in the run directory (cluster_prepare):
 *   cluster.json     the effective configuration, passed to every child
 *   nginx.conf       rendered from nginx/nginx.conf.template
 *   nginx.pid, nginx-error.log, nginx-tmp/   nginx's own files
 *
 * Ownership: cluster_init fills a caller-owned cluster_t and allocates its
 * arrays; cluster_free releases them. JSON builders return new cJSON trees
 * (the caller deletes them or hands them to httpd_respond_json). */
#ifndef KV_CTL_CLUSTER_H
#define KV_CTL_CLUSTER_H

#include "config.h"
#include "sup.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

enum cluster_kind { CLUSTER_STORE, CLUSTER_QUEUE, CLUSTER_API, CLUSTER_NGINX };

typedef struct cluster_node {
    enum cluster_kind kind;
    char name[SUP_NAME_MAX];
    int shard, replica;          /* -1 unless a store */
    uint16_t port;
    char url[SUP_URL_MAX];
    int sup_index;               /* -1 until cluster_register */
    _Atomic int healthy;         /* last /health probe answered 2xx */
    _Atomic int64_t last_ok_ms;  /* sup_now_ms() of the last 2xx probe */
    _Atomic uint64_t seen_seq;   /* stores: applied_seq (or seq) last seen */
    _Atomic uint64_t seen_epoch; /* stores: epoch last seen in /health */
    char last_error[128];        /* why the last probe failed (probe thread) */
} cluster_node;

typedef struct cluster_shard {
    uint64_t epoch;
    int primary;                 /* replica index, -1 = none */
    uint64_t handoff_seq;        /* promoted replica's seq at the last failover */
    uint64_t failovers;          /* promotions of this shard */
    int64_t last_failover_ms;    /* sup_now_ms() of the last one, 0 = never */
} cluster_shard;

/* A command line: argv points into buf. */
typedef struct cluster_argv {
    char *argv[SUP_MAX_ARGS + 1];
    size_t argc;
    char buf[8192];
    size_t used;
} cluster_argv;

typedef struct cluster {
    kv_config cfg;               /* effective; data_dir made absolute */
    char host[64];               /* address children are reached on */
    char controller_url[SUP_URL_MAX];
    char run_dir[PATH_MAX];
    char data_dir[PATH_MAX];
    char bin_dir[PATH_MAX];      /* where kv-store, kv-queue, kv-api live */
    char config_path[PATH_MAX];  /* run_dir/cluster.json */
    char nginx_conf[PATH_MAX];
    char nginx_pidfile[PATH_MAX];
    char nginx_errlog[PATH_MAX];
    char nginx_bin[PATH_MAX];    /* resolved by cluster_check_binaries */
    char log_dir[PATH_MAX];      /* "" = children log to our stderr */
    cluster_node *nodes;
    size_t nnodes;
    cluster_shard *shards;
    size_t nshards;
    uint64_t epoch;
    pthread_mutex_t mu;          /* guards epoch and shards */
    _Atomic int ready;
    int supervise;               /* controller.supervise: 0 = the nodes are
                                    external (containers): nothing is
                                    spawned, api and nginx are not watched */
    char state_path[PATH_MAX];   /* data_dir/controller-state.json */
    _Atomic uint64_t failovers;          /* promotions, every shard */
    _Atomic uint64_t failovers_skipped;  /* primary down, no live secondary */
} cluster_t;

/* The address others use to reach a server bound to bind. */
void cluster_advertise_host(const char *bind, char *out, size_t len);

/* Build the node list and topology state: every store replica and the
 * queue, plus, when the controller supervises (controller.supervise = 1),
 * api.count api processes and nginx. Node URLs are http://<host>:<port>
 * with the port layout of kv_config and the host from
 * cluster.advertise_host (controller/addr.h). run_dir NULL or "" means
 * <data_dir>/run; log_dir may be NULL. No I/O except getcwd.
 * 0 or -1 + err. */
int cluster_init(cluster_t *cl, const kv_config *c, const char *run_dir,
                 const char *bin_dir, const char *log_dir, char *err,
                 size_t errlen);
void cluster_free(cluster_t *cl);

/* The command line of node i. 0 or -1 when it does not fit. */
int cluster_node_argv(cluster_t *cl, size_t i, cluster_argv *out);

/* Find nginx.bin (PATH, /usr/sbin, ...). 0 with the path in out, or -1. */
int cluster_find_program(const char *name, char *out, size_t outlen);
/* Every child binary exists and is executable (resolves nginx). Nothing
 * to check (0) when the nodes are external. */
int cluster_check_binaries(cluster_t *cl, char *err, size_t errlen);
/* Every port is free on cluster.bind (the controller's included; only the
 * controller's when the nodes are external). */
int cluster_check_ports(const cluster_t *cl, char *err, size_t errlen);
/* Create data/run/log dirs, write cluster.json and nginx.conf, and check the
 * nginx file with `nginx -t`; with external nodes only the data dir (where
 * the topology state lives). 0 or -1 + err. */
int cluster_prepare(cluster_t *cl, const char *nginx_template, char *err,
                    size_t errlen);

/* Hand every node to the supervisor. 0 or -1. */
int cluster_register(cluster_t *cl, sup_t *sup);

/* Failover seam: make replica the primary of shard, bump its epoch and the
 * cluster epoch. 0 or -1. */
int cluster_set_primary(cluster_t *cl, unsigned shard, int replica);
/* A promotion: cluster_set_primary plus the shard's handoff_seq, its
 * failover count and time (now_ms), all under one lock. 0 or -1. */
int cluster_promote(cluster_t *cl, unsigned shard, int replica,
                    uint64_t handoff_seq, int64_t now_ms);
/* The store node of (shard, replica), or NULL. */
cluster_node *cluster_store_node(cluster_t *cl, unsigned shard, int replica);

/* Topology state (epochs, primaries, handoff seqs) survives a restart of
 * the controller in state_path, because the stores keep their epochs on
 * disk: a controller that started over at epoch 1 would be fenced.
 * cluster_load_state: 0 (loaded, or no file), -1 + err when the file does
 * not match this cluster. cluster_save_state: write it atomically (rename);
 * 0 or -1. */
int cluster_load_state(cluster_t *cl, char *err, size_t errlen);
int cluster_save_state(cluster_t *cl);
/* After a topology change: give the supervisor node i's new role and command
 * line, used from its next (re)start on. 0 or -1. */
int cluster_update_child(cluster_t *cl, sup_t *sup, size_t i);
/* Role of a store node under the current topology. */
const char *cluster_node_role(cluster_t *cl, const cluster_node *n);

/* GET /topology body (lib/topo.h format). */
cJSON *cluster_topology_json(cluster_t *cl);
/* GET /status body: the controller and every child. */
cJSON *cluster_status_json(cluster_t *cl, sup_t *sup);
/* Prometheus lines for the children (caller frees). */
char *cluster_metrics_text(cluster_t *cl, sup_t *sup, size_t *len);

/* Probe GET <url>/health of every node until all answer 2xx or timeout_ms
 * passes (nginx last: its /health goes through to an api). Stops early when
 * *stop becomes non-zero. 0, or -1 with err naming the nodes not ready. */
int cluster_wait_ready(cluster_t *cl, int64_t timeout_ms, const atomic_int *stop,
                       char *err, size_t errlen);
/* One /health probe of every node, in parallel, each bounded by timeout_ms
 * (updates healthy, last_ok_ms and, for stores, seen_seq/seen_epoch; the
 * status pages show a node healthy only while its process runs and its last
 * probe passed). */
void cluster_probe_all(cluster_t *cl, long timeout_ms);
/* A store's position from its /health body: "applied_seq", else "seq".
 * 0, or -1 when the body has neither. */
int cluster_health_seq(const char *body, size_t len, uint64_t *seq,
                       uint64_t *epoch);
/* 1 when the last probe of every node passed. */
int cluster_all_healthy(cluster_t *cl);
/* Where everything is, ending with the line "ready". */
void cluster_print_summary(cluster_t *cl, sup_t *sup, FILE *f);

#endif
