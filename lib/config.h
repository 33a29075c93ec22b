/* config: the cluster configuration, one JSON file shared by every process,
 * with environment overrides and validation that names the bad field.
 *
 * Precedence: built-in defaults < JSON file < environment < command-line
 * (config_set). Every field has a dotted JSON path ("queue.max_queue_size")
 * and most an environment name ("MAX_QUEUE_SIZE"); `kv-controller --help`
 * prints the table. Plain struct, no heap: copy it freely. */
#ifndef KV_CONFIG_H
#define KV_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_STR_MAX 256

typedef struct kv_config {
    /* cluster */
    int64_t shards;            /* cluster.shards */
    int64_t replicas;          /* cluster.replicas: copies per shard, primary included */
    int64_t vnodes;            /* cluster.vnodes */
    int64_t base_port;         /* cluster.base_port: controller; others follow */
    char bind[CFG_STR_MAX];    /* cluster.bind */
    char data_dir[CFG_STR_MAX];/* cluster.data_dir */
    char advertise_host[CFG_STR_MAX]; /* cluster.advertise_host: host template
                                  of node URLs ("" = the address of bind) */
    char token[CFG_STR_MAX];   /* cluster.token: Bearer token for /internal/ */
    char auth[8];              /* cluster.auth: token | off (loopback only) */
    char token_file[CFG_STR_MAX]; /* cluster.token_file: where it is kept (lib/token.h) */
    int64_t write_quorum;      /* cluster.write_quorum: W secondaries per write */
    int64_t read_quorum;       /* cluster.read_quorum: R secondaries per read */
    char quorum_policy[16];    /* cluster.quorum_policy: any | ordered */
    /* limits */
    int64_t max_key_bytes;     /* limits.max_key_bytes */
    int64_t max_value_bytes;   /* limits.max_value_bytes */
    int64_t max_connections;   /* limits.max_connections: per server */
    int64_t max_connections_per_ip; /* limits.max_connections_per_ip */
    int64_t header_timeout_ms; /* limits.header_timeout_ms: first head's deadline */
    /* store */
    char fsync[16];            /* store.fsync: always | everysec | no */
    int64_t map_size_mb;       /* store.map_size_mb */
    int64_t max_version_skew_ms; /* store.max_version_skew_ms */
    int64_t store_threads;     /* store.threads (0 = cores) */
    int64_t reconcile_interval_ms; /* store.reconcile_interval_ms */
    int64_t repl_batch_max;    /* store.repl_batch_max: ops per replication batch */
    int64_t migrate_rate;      /* store.migrate_rate: records/s a source reads, 0 = any */
    int64_t quorum_timeout_ms; /* store.quorum_timeout_ms: wait for W acks */
    int64_t repl_delay_ms;     /* store.repl_delay_ms: added per batch (lab, studies) */
    int64_t repl_delay_random; /* store.repl_delay_random: 1 = uniform(0, repl_delay_ms) per batch */
    int64_t lab_sync_delay_ms; /* store.lab_sync_delay_ms: per batch to a sync-set secondary (lab) */
    int64_t lab_async_delay_ms;/* store.lab_async_delay_ms: per batch to any other secondary (lab) */
    int64_t heartbeat_ms;      /* store.heartbeat_ms: lab heartbeats to the controller */
    int64_t lease_ms;          /* store.lease_ms: apply replicated data only this long after
                                  the last acknowledged heartbeat (0: no lease) */
    /* queue */
    int64_t max_queue_size;    /* queue.max_queue_size */
    int64_t worker_count;      /* queue.worker_count: dispatcher threads */
    int64_t batch_max;         /* queue.batch_max: ops per batch to a shard */
    int64_t batch_linger_us;   /* queue.batch_linger_us */
    int64_t retry_backoff_ms;  /* queue.retry_backoff_ms: first retry delay */
    int64_t wait_max_ms;       /* queue.wait_max_ms: longest ?sync wait */
    int64_t jobs_kept;         /* queue.jobs_kept: finished jobs remembered */
    int64_t spillover_queue_size; /* queue.spillover_queue_size: EXCESS jobs */
    int64_t stale_queue_size;  /* queue.stale_queue_size: STALE jobs */
    int64_t max_key_rate;      /* queue.max_key_rate: writes per key per window, 0 = off */
    int64_t key_window_s;      /* queue.key_window_s */
    int64_t stale_after_ms;    /* queue.stale_after_ms */
    int64_t stale_retry_max;   /* queue.stale_retry_max */
    int64_t dispatch_rate;     /* queue.dispatch_rate: ops/s to shards, 0 = no limit */
    int64_t queue_threads;     /* queue.threads (0 = cores) */
    int64_t journal_map_mb;    /* queue.journal_map_mb */
    /* api */
    int64_t api_count;         /* api.count: processes behind nginx */
    int64_t api_threads;       /* api.threads (0 = cores) */
    int64_t rate_limit;        /* api.rate_limit: requests per client per window, 0 = off */
    int64_t rate_window_ms;    /* api.rate_window_ms */
    int64_t upstream_timeout_ms; /* api.upstream_timeout_ms */
    int64_t topology_poll_ms;  /* api.topology_poll_ms (also the queue's) */
    int64_t api_shutdown_delay_ms; /* api.shutdown_delay_ms */
    /* controller */
    int64_t restart_backoff_ms;     /* controller.restart_backoff_ms */
    int64_t restart_backoff_max_ms; /* controller.restart_backoff_max_ms */
    int64_t health_interval_ms;     /* controller.health_interval_ms */
    int64_t failover_after_ms;      /* controller.failover_after_ms */
    int64_t supervise;              /* controller.supervise: 1 = start the
                                       processes, 0 = watch external ones */
    /* nginx */
    int64_t nginx_port;        /* nginx.port */
    char nginx_bin[CFG_STR_MAX]; /* nginx.bin */
    int64_t nginx_workers;     /* nginx.workers (0 = auto) */
} kv_config;

/* Fill with the built-in defaults. */
void config_defaults(kv_config *c);
/* Load path (NULL: none) over c, then the environment, then validate.
 * 0, or -1 with err naming the field ("queue.max_queue_size: must be >= 1"). */
int config_load(kv_config *c, const char *path, char *err, size_t errlen);
/* The JSON text[0..len) over c, fields only: no environment, no
 * validate (config_load's first step; also what tests/fuzz/fuzz_config.c
 * drives). name is the origin for messages ("...: not valid JSON").
 * 0 or -1 + err. */
int config_load_text(kv_config *c, const char *text, size_t len,
                     const char *name, char *err, size_t errlen);
/* Set one field by its dotted path from text, validated. 0 or -1 + err. */
int config_set(kv_config *c, const char *path, const char *value, char *err,
               size_t errlen);
/* Cross-field checks (also done by config_load). */
int config_validate(const kv_config *c, char *err, size_t errlen);
/* Unset the environment variable of every field (a parent that hands its
 * children a complete configuration file, like the lab controller, so
 * that the caller's environment cannot override it under them). */
void config_clear_env(void);
/* The field table as help text: path, env, default, meaning. */
void config_print_help(FILE *f);
/* The whole configuration as JSON text (caller frees). */
char *config_to_json(const kv_config *c);

/* Ports derived from base_port: controller = base, queue = base + 1,
 * api i = base + 10 + i, store (shard s, replica r) = base + 100 + 10 s + r. */
uint16_t config_queue_port(const kv_config *c);
uint16_t config_api_port(const kv_config *c, unsigned i);
uint16_t config_store_port(const kv_config *c, unsigned shard, unsigned replica);
/* The host a client on this machine dials to reach a server bound to bind:
 * bind itself, or 127.0.0.1 for "" and 0.0.0.0 (every address). */
const char *config_local_host(const char *bind);

#endif
