/* cluster: what the controller runs and publishes, built from kv_config.
 *
 * A cluster_t lists the nodes of the local cluster (every store replica, the
 * queue, the api processes, nginx) with their ports, URLs and command lines,
 * and holds the topology state the controller serves at GET /topology:
 * cluster epoch and, per shard, its epoch and which replica is primary.
 * Failover changes that state with cluster_promote; everything
 * else reads it under the lock.
 *
 * Shards have ids (lib/topo.h: distinct, 0..255, never reused) and shards[]
 * is indexed by id: it holds CLUSTER_MAX_SHARDS slots from the start, of
 * which the ones with `present` are the cluster's; nshards is one past the
 * highest id ever present (a loop bound). A shard added at runtime
 * (cluster_shard_add, the migration driver) appends its store nodes; a
 * removed one (cluster_shard_drop) leaves its nodes in place marked `gone`.
 * nodes[] is allocated once for every node the cluster can ever have, so
 * readers (HTTP, health and failover threads) walk nodes[0..nnodes) without
 * the lock while one writer appends: a node is complete before nnodes
 * counts it.
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
    _Atomic int gone;            /* its shard was removed: not watched,
                                    not shown, its process stopped */
} cluster_node;

#define CLUSTER_MAX_SHARDS 256   /* = TOPO_MAX_SHARD_IDS */
#define CLUSTER_MAX_REPLICAS 10

typedef struct cluster_shard {
    uint64_t epoch;
    int primary;                 /* replica index, -1 = none */
    uint64_t handoff_seq;        /* promoted replica's seq at the last failover */
    uint64_t failovers;          /* promotions of this shard */
    int64_t last_failover_ms;    /* sup_now_ms() of the last one, 0 = never */
    int present;                 /* the slot holds a shard of the cluster */
    int64_t added_ms;            /* sup_now_ms() when added at runtime (its
                                    stores start then: failover waits) */
    size_t nurls;                /* > 0: external stores given by URL
                                    (POST /shards with controller.supervise=0) */
    char urls[CLUSTER_MAX_REPLICAS][SUP_URL_MAX];
} cluster_shard;

/* A shard migration (docs/PROTOCOL.md "Growing and shrinking"). */
enum cluster_mig_kind { CLUSTER_MIG_ADD = 0, CLUSTER_MIG_REMOVE };
enum cluster_mig_phase {
    CLUSTER_MIG_NONE = 0,        /* no migration was ever started */
    CLUSTER_MIG_PREPARE,         /* add: the new shard's stores come up */
    CLUSTER_MIG_COPY,
    CLUSTER_MIG_FREEZE,
    CLUSTER_MIG_SWITCH,
    CLUSTER_MIG_DONE,
    CLUSTER_MIG_FAILED
};

typedef struct cluster_migration {
    uint64_t id;                 /* 1, 2, ...; 0 = none yet */
    enum cluster_mig_kind kind;
    uint32_t shard;              /* the shard added or removed */
    enum cluster_mig_phase phase;
    uint32_t from[CLUSTER_MAX_SHARDS], to[CLUSTER_MAX_SHARDS];
    size_t nfrom, nto;           /* the rings before and after */
    double share;                /* ring_share of shard: predicted to move */
    int64_t started_unix_ms, phase_unix_ms, ended_unix_ms;
    char error[256];             /* why it failed */
} cluster_migration;

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
    _Atomic size_t nnodes;
    size_t nodes_cap;
    cluster_shard *shards;       /* CLUSTER_MAX_SHARDS slots, by id */
    _Atomic size_t nshards;      /* one past the highest id present */
    uint64_t epoch;
    pthread_mutex_t mu;          /* guards epoch, shards and mig */
    uint32_t next_shard_id;      /* the id the next added shard gets */
    size_t created_shards;       /* the shard count it was created with */
    cluster_migration mig;       /* the current or the last migration */
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
/* Build the node list again from the present shards (the state file's list
 * replaced the configured one). Before any thread runs. 0 or -1 + err. */
int cluster_init_renodes(cluster_t *cl, char *err, size_t errlen);

/* Failover seam: make replica the primary of shard, bump its epoch and the
 * cluster epoch. 0 or -1. */
int cluster_set_primary(cluster_t *cl, unsigned shard, int replica);
/* A promotion: cluster_set_primary plus the shard's handoff_seq, its
 * failover count and time (now_ms), all under one lock. 0 or -1. */
int cluster_promote(cluster_t *cl, unsigned shard, int replica,
                    uint64_t handoff_seq, int64_t now_ms);
/* How many shards the cluster has (present ones). Takes the lock. */
size_t cluster_shard_count(cluster_t *cl);
/* Add shard id (nothing may hold it yet) with its store nodes: urls (n of
 * them, replica order) when given, else the port layout. It is present
 * from now on; not registered with the supervisor (cluster_cmd). Call with
 * the lock held (with the migration and the epoch it is one change; one
 * writer appends nodes at a time). 0 or -1 + err. */
int cluster_shard_add(cluster_t *cl, uint32_t id, const char *const *urls,
                      size_t nurls, int64_t now_ms, char *err, size_t errlen);
/* Take shard id out (its nodes stay, marked gone). */
void cluster_shard_drop(cluster_t *cl, uint32_t id);
/* 1 while a migration runs (prepare .. switch); call with the lock held. */
int cluster_mig_active(const cluster_migration *m);
/* "prepare", "copy", "freeze", "switch", "done", "failed", "none". */
const char *cluster_mig_phase_name(enum cluster_mig_phase p);
enum cluster_mig_phase cluster_mig_phase_parse(const char *s);
/* The ids owning keys now (the ring): during a migration from, or to from
 * the switch on; else every present shard. Lock held. Returns the count. */
size_t cluster_ring_ids(const cluster_t *cl, uint32_t *out);

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
