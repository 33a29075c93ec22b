/* repair: background read repair of the api (docs/PROTOCOL.md
 * "Read quorum R").
 *
 * A quorum read that finds a replica older than the newest answer (or
 * without the key) queues a repair here instead of delaying the read. One
 * thread sends each as POST <replica>/internal/repair with one lib/wire.h op
 * carrying the newest version: WIRE_PUT with the value, or WIRE_DEL for a
 * tombstone. The replica applies it by version, so a repair that arrives
 * after replication already caught up is a no-op. The queue is bounded by a
 * count and by bytes; a repair that does not fit is dropped and counted
 * (reconciliation fixes that replica later anyway).
 *
 * Metrics (lib/metrics, on the api's /metrics): kv_api_read_repairs_queued_total,
 * _sent_total, _applied_total (the replica changed), _failed_total and
 * _dropped_total.
 *
 * Ownership: repair_start allocates, repair_stop joins the thread and frees
 * everything (repairs still queued are dropped). repair_push copies what it
 * is given. Thread-safe. */
#ifndef KV_API_REPAIR_H
#define KV_API_REPAIR_H

#include <stddef.h>
#include <stdint.h>

typedef struct repair repair_t;

typedef struct repair_opts {
    size_t max_items;        /* queued repairs at most (default 1024) */
    size_t max_bytes;        /* keys + values queued at most (default 16 MiB) */
    long timeout_ms;         /* per POST (default 1000) */
    const char *auth;        /* "Authorization: Bearer ..." or NULL/"" */
} repair_opts;

/* Register the metrics once per process, before /metrics is served. */
void repair_metrics_register(void);

repair_t *repair_start(const repair_opts *o);
void repair_stop(repair_t *q);

/* Queue a repair of replica (its base URL, "http://host:port") at shard
 * epoch `epoch`: key and, unless tombstone, value at `version`, expiring
 * at expires_at (Unix ms, 0: never). 0 queued, -1 dropped (full, or out of
 * memory). */
int repair_push(repair_t *q, const char *replica, uint64_t epoch,
                int tombstone, const char *key, size_t klen, const void *val,
                size_t vlen, uint64_t version, uint64_t expires_at);

/* Block until the queue is empty and nothing is in flight, or timeout_ms
 * passes; 0 or -1 (for tests). */
int repair_flush(repair_t *q, long timeout_ms);

#endif
