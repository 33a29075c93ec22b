/* wq: the write queue. Admission gives a job a version (the queue's HLC;
 * the job id is that version, so ids are unique across restarts) and puts it
 * on its shard's FIFO. Dispatcher threads send each shard's jobs in order, in
 * batches, to the shard primary named by the topology, one batch in flight
 * per shard (which keeps a shard's writes in version order), retrying with
 * exponential backoff while the primary is unreachable.
 *
 * A client may wait for its job: admission takes an opaque waiter and
 * calls the wq_notify_fn once, when the job ends or the wait times out.
 *
 * Seams for what comes next: the journal (append at admission, remove at
 * completion), EXCESS/STALE spillover and coalescing all sit in wq_admit and
 * wq_take_batch.
 * Ownership: wq_start allocates, wq_stop frees; wq copies keys and values. */
#ifndef KV_WQ_H
#define KV_WQ_H

#include "config.h"
#include "topo.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wq wq_t;

enum wq_state { WQ_QUEUED, WQ_APPLIED, WQ_FAILED };

/* What a waiter is told. */
typedef struct wq_outcome {
    uint64_t job;
    uint64_t version;
    enum wq_state state;       /* WQ_QUEUED: the wait ended first */
    uint16_t status;           /* failures: the HTTP status to answer */
    int64_t number;            /* increments: the counter afterwards */
    const char *error;         /* failures: short code */
    const char *message;       /* failures: sentence */
} wq_outcome;

typedef void (*wq_notify_fn)(void *waiter, const wq_outcome *o);

enum wq_admit_rc {
    WQ_OK = 0,
    WQ_FULL = -1,        /* at capacity: 429 */
    WQ_NO_TOPOLOGY = -2, /* no topology yet: 503 */
    WQ_NOMEM = -3,
    WQ_STOPPING = -4     /* shutting down: 503 */
};

wq_t *wq_start(const kv_config *cfg, topo_watch *topo, wq_notify_fn notify);
/* Stops dispatching; answers every waiter (as still queued); frees. */
void wq_stop(wq_t *q);
/* op is WIRE_PUT / WIRE_DEL / WIRE_INCR (val holds nothing for INCR: delta).
 * waiter (or NULL) is notified once, within wait_ms. */
int wq_admit(wq_t *q, uint8_t op, const char *key, size_t klen, const void *val,
             size_t vlen, int64_t delta, void *waiter, uint64_t wait_ms,
             uint64_t *job_out);
/* The job as JSON (caller deletes) or NULL when unknown. */
cJSON *wq_job_json(wq_t *q, uint64_t id);
/* Depths, counters and latency into obj. */
void wq_stats_json(wq_t *q, cJSON *obj);
const char *wq_op_name(uint8_t op);

#endif
