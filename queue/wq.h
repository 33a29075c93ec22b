/* wq: the write queue (docs/PROTOCOL.md "Queue").
 *
 * A client's write is a job: admission gives it a version from the queue's
 * HLC and a random id (queue/jobid.h: GET /jobs/{id} shows its key to who
 * names it, so the id is not the guessable version), journals both
 * (queue/journal.h) and answers once it is durable. What is sent to a shard
 * is an op: one key's write. Pending writes to one key coalesce into its
 * newest op (a put or delete replaces it, increments add up), so one op may
 * carry many jobs, and all of them end when it does. A conditional write
 * (If-Match / If-None-Match) never coalesces, either way: its condition is
 * about the state its client saw, which a merge would change. Neither does
 * an increment with a TTL, or one after it (the TTL is the write's own).
 *
 * Each shard has three FIFOs of ops: MAIN; EXCESS for keys over
 * max_key_rate (drained at that rate per key); STALE for ops that waited
 * longer than stale_after_ms (sent after fresh work, failing after
 * stale_retry_max failed sends). All pending ops of one key are always in
 * the same FIFO, in version order, and move together, so a key's writes
 * reach its shard in version order: the store applies by version, which
 * makes retries and journal replays no-ops, increments included.
 *
 * Dispatcher threads send a shard's ops in batches to its primary (from the
 * topology), one batch in flight per shard, under a global ops/s budget,
 * with backoff while the shard fails; a shard without a primary holds its
 * writes (bounded by the capacities) without spending their retries.
 *
 * A client may wait for its job: admission takes an opaque waiter and
 * calls the wq_notify_fn once, when the job ends or the wait is over.
 * Ownership: wq_start allocates, wq_stop frees; wq copies keys and values. */
#ifndef KV_WQ_H
#define KV_WQ_H

#include "config.h"
#include "jobid.h"
#include "topo.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wq wq_t;

/* SUPERSEDED: the shard already held a newer version of the key, so the
 * write changed nothing (last writer wins); the job ended, not failed. */
enum wq_state { WQ_QUEUED, WQ_APPLIED, WQ_FAILED, WQ_SUPERSEDED };

/* What a waiter is told. A failed condition is WQ_FAILED with status 412
 * and current (the version it was judged on, 0: none). */
typedef struct wq_outcome {
    jobid job;
    uint64_t version;
    enum wq_state state;       /* WQ_QUEUED: the wait ended first */
    uint16_t status;           /* failures: the HTTP status to answer */
    int64_t number;            /* increments: the counter afterwards */
    uint64_t current;          /* superseded, 412: the version the shard holds */
    const char *error;         /* failures: short code */
    const char *message;       /* failures: sentence */
} wq_outcome;

typedef void (*wq_notify_fn)(void *waiter, const wq_outcome *o);

enum wq_admit_rc {
    WQ_OK = 0,
    WQ_FULL = -1,        /* the target FIFO is at capacity: 429 */
    WQ_NO_TOPOLOGY = -2, /* no topology yet: 503 */
    WQ_NOMEM = -3,       /* 503 */
    WQ_STOPPING = -4,    /* shutting down: 503 */
    WQ_JOURNAL = -5,     /* the journal could not take it: 507 */
    WQ_NO_RANDOM = -6    /* no random bytes for a job id: 503 */
};

typedef struct wq_write {
    uint8_t op;                /* WIRE_PUT / WIRE_DEL / WIRE_INCR */
    const char *key;
    size_t klen;
    const void *val;           /* PUT only */
    size_t vlen;
    int64_t delta;             /* INCR only */
    uint8_t cond;              /* If-Match / If-None-Match: WIRE_F_IF_* or 0 */
    uint64_t if_match;         /* with WIRE_F_IF_MATCH */
    uint64_t expires_at;       /* ?ttl= as Unix ms (PUT, INCR), 0: none */
} wq_write;

/* journal_dir: where the journal lives (replayed here before returning). */
wq_t *wq_start(const kv_config *cfg, topo_watch *topo, const char *journal_dir,
               wq_notify_fn notify);
/* Stops dispatching; answers every waiter (as still queued); frees. What is
 * still queued stays in the journal for the next start. */
void wq_stop(wq_t *q);
/* One write to admit, and what became of it. */
typedef struct wq_admission {
    wq_write w;                /* in: borrowed until wq_admit_many returns */
    void *waiter;              /* in: or NULL; notified once, within wait_ms */
    uint64_t wait_ms;
    enum wq_admit_rc rc;       /* out */
    jobid job;                 /* out: the job id when WQ_OK */
    uint64_t version;          /* out: its version when WQ_OK */
    const char *full;          /* out: WQ_FULL: the FIFO that is full
                                  ("main", "excess" or "stale") */
} wq_admission;

/* Admit n writes with one journal commit where they fit in one group (a
 * server pass's worth: see queue/http.c); returns once they are durable. */
void wq_admit_many(wq_t *q, wq_admission *as, size_t n);
/* The job as JSON (caller deletes) or NULL when unknown. */
cJSON *wq_json_job(wq_t *q, const jobid *id);
/* Depths, counters and latency into obj. */
void wq_json_stats(wq_t *q, cJSON *obj);
const char *wq_op_name(uint8_t op);

#endif
