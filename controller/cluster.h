/* cluster: what the controller runs and publishes, built from kv_config.
 *
 * A cluster_t lists the nodes of the local cluster (every store replica, the
 * queue, the api processes, nginx) with their ports, URLs and command lines,
 * and holds the topology state the controller serves at GET /topology:
 * cluster epoch and, per shard, its epoch and which replica is primary.
 * Failover changes that state with cluster_promote; everything
 * else reads it under the lock.
 *
 * Files in the run directory (cluster_preflight_prepare):
 *   cluster.json     the effective configuration, passed to every child
 *   nginx.conf       rendered from nginx/nginx.conf.template
 *   nginx.pid, nginx-error.log, nginx-tmp/   nginx's own files
 *
 * Ownership: cluster_init fills a caller-owned cluster_t and allocates its
 * arrays; cluster_free releases them. */
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
    int sup_index;               /* -1 until cluster_cmd_register */
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
    char nginx_bin[PATH_MAX];    /* resolved by cluster_preflight_check_binaries */
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

/* Failover seam: make replica the primary of shard, bump its epoch and the
 * cluster epoch. 0 or -1. */
int cluster_set_primary(cluster_t *cl, unsigned shard, int replica);
/* A promotion: cluster_set_primary plus the shard's handoff_seq, its
 * failover count and time (now_ms), all under one lock. 0 or -1. */
int cluster_promote(cluster_t *cl, unsigned shard, int replica,
                    uint64_t handoff_seq, int64_t now_ms);
/* The store node of (shard, replica), or NULL. */
cluster_node *cluster_store_node(cluster_t *cl, unsigned shard, int replica);
/* Role of a store node under the current topology. */
const char *cluster_node_role(cluster_t *cl, const cluster_node *n);
/* "store", "queue", "api" or "nginx". */
const char *cluster_kind_name(enum cluster_kind k);

/* Shared by the cluster_* files: vsnprintf into err, returns -1. */
int cluster_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* snprintf that reports truncation: 0 or -1. */
int cluster_fmt(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
