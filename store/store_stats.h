/* store_stats: the kv-store's counters and the routes that report them
 * (docs/PROTOCOL.md "Store"): GET /health, /stats (JSON) and /metrics
 * (Prometheus). The counters are lib/metrics registrations owned by this
 * module; the other route modules count through store_stats_add.
 *
 * Ownership: nothing is allocated per call beyond the answer; the metrics
 * are file-scope registrations that live as long as the process. */
#ifndef KV_STORE_STATS_H
#define KV_STORE_STATS_H

#include "httpd.h"
#include "sdb.h"

#include <stdint.h>

typedef struct store_http store_http;

enum store_stats_counter {
    STORE_STATS_GETS,
    STORE_STATS_GET_MISSES,
    STORE_STATS_PUTS,
    STORE_STATS_DELS,
    STORE_STATS_INCRS,
    STORE_STATS_BATCHES,
    STORE_STATS_BATCH_OPS,
    STORE_STATS_APPLIED,
    STORE_STATS_NOOPS,
    STORE_STATS_CHANGES,
    STORE_STATS_FENCED,
    STORE_STATS_ERRORS,
    STORE_STATS_NOT_PRIMARY,
    STORE_STATS_EPOCH_PENDING,
    STORE_STATS_QUORUM_UNAVAIL,
    STORE_STATS_REPLICATE,
    STORE_STATS_REPLICATE_OPS,
    STORE_STATS_REPAIRS,
    STORE_STATS_MOVED,
    STORE_STATS_MIGRATING,
    STORE_STATS_REAPED,
    STORE_STATS_N
};

/* Registers the store's metrics with lib/metrics; once per process, safe
 * to call again. */
void store_stats_register(void);
void store_stats_add(enum store_stats_counter c, int64_t n);
/* Records the time one write transaction took. */
void store_stats_write_us(uint64_t us);

/* Route handlers (GET or HEAD; store_http checks the method). */
void store_stats_health(store_http *h, httpd_req *r, const char *rest);
void store_stats_json(store_http *h, httpd_req *r, const char *rest);
void store_stats_metrics(store_http *h, httpd_req *r, const char *rest);

#endif
