/* wq_internal: what the write queue's files share (queue/wq.h is the
 * public side). Everything here is touched with wq.mu held unless a
 * function says otherwise.
 *
 *   wq.c           the struct's lifecycle (wq_start, wq_stop), gauges, spill log
 *   wq_table.c     the job and key hash tables, the FIFOs
 *   wq_end.c       ending jobs: outcomes, waiters, journal records to forget
 *   wq_admit.c     admission: routing, coalescing, the journal's hooks
 *   wq_dispatch.c  dispatcher threads: batches to shard primaries
 *   wq_route.c     which shard an op goes to, and ops that change shard
 *                  when a migration moves their key
 *   wq_age.c       the reaper: wait deadlines and MAIN -> STALE aging
 *   wq_replay.c    the journal replay at start
 *   wq_json.c      GET /jobs/{id} and /stats
 *
 * Ownership: jobs live in the job table until they fall out of the
 * finished list (jobs_kept); ops and keys while they have queued work;
 * waiters until they are notified (wq_end_flush frees them). */
#ifndef KV_QUEUE_WQ_INTERNAL_H
#define KV_QUEUE_WQ_INTERNAL_H

#include "wq.h"

#include "hlc.h"
#include "journal.h"
#include "metrics.h"
#include "ratelimit.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define WQ_MAX_SHARDS TOPO_MAX_SHARD_IDS /* indexed by shard id */
#define WQ_JOB_BUCKETS (1u << 16)
#define WQ_KEY_BUCKETS (1u << 16)
#define WQ_BACKOFF_MAX_US 5000000ULL
#define WQ_HOLD_US 200000ULL /* a shard without a primary is retried this often */
#define WQ_MIGRATING_HOLD_US 50000ULL /* a shard answering 503 migrating */
#define WQ_BATCH_BYTES ((size_t)16 << 20) /* well under the store's body cap */

enum wq_class { WQ_MAIN, WQ_EXCESS, WQ_STALE, WQ_NCLASS };
/* "main", "excess", "stale": the names /stats and /jobs use. */
extern const char *const wq_class_names[WQ_NCLASS];

typedef struct wq_waiter {
    void *who;
    wq_outcome out;                   /* filled when it is due */
    uint64_t deadline_us;
    struct wq_job *job;
    struct wq_waiter *jnext;          /* the job's waiters; then the due list */
    struct wq_waiter *prev, *next;    /* every waiter, for the timeout scan */
} wq_waiter;

typedef struct wq_job {               /* one client write */
    jobid id;                         /* its public name (random) */
    uint64_t version;                 /* its journal record's key too */
    uint8_t op;
    enum wq_state state;
    uint16_t status;
    uint32_t shard;
    uint32_t attempts;
    int64_t number;
    uint64_t current;                 /* superseded, 412: the shard's version */
    uint64_t admitted_us;
    uint64_t applied_as;              /* the op version it ended with */
    enum wq_class charged;            /* MAIN or EXCESS: whose capacity it holds */
    const char *error, *message;      /* static text */
    char *key;
    size_t klen;
    struct wq_op *op_of;              /* while queued */
    struct wq_job *jnext;             /* the op's jobs */
    struct wq_job *next;              /* the finished list */
    struct wq_job *hnext;             /* id hash chain */
    wq_waiter *waiters;
} wq_job;

typedef struct wq_op {                /* one key's write, as sent to a shard */
    uint8_t kind;
    uint8_t cond;                     /* WIRE_F_IF_* of its one job, or 0 */
    uint64_t if_match;
    uint64_t expires_at;              /* its TTL as Unix ms, 0: none */
    uint64_t version;                 /* its newest job's */
    int64_t delta;
    char *val;
    size_t vlen;
    struct wq_key *k;
    uint32_t shard;
    enum wq_class cls;
    int inflight;
    uint32_t attempts;                /* failed sends */
    uint64_t oldest_us;               /* admission of its first job */
    size_t njobs;
    wq_job *jobs;
    struct wq_op *prev, *next;        /* its FIFO; the batch while in flight */
    struct wq_op *kprev, *knext;      /* the key's ops, oldest first */
} wq_op;

typedef struct wq_key {               /* exists while the key has ops */
    char *key;
    size_t klen;
    wq_op *first, *last;
    struct wq_key *hnext;
} wq_key;

typedef struct wq_fifo {
    wq_op *head, *tail;
} wq_fifo;

typedef struct wq_shard {
    wq_fifo fifo[WQ_NCLASS];
    size_t ops;                       /* queued, not in flight */
    int busy;                         /* a batch is in flight */
    uint64_t sent_us;                 /* when the last batch went out */
    int backlog;                      /* writes arrived while it was out */
    uint64_t next_try_us;
    uint32_t failures;                /* consecutive failed batches */
    uint64_t sent_epoch;              /* the shard epoch the last batch went to */
} wq_shard;

struct wq {
    kv_config cfg;
    topo_watch *topo;
    wq_notify_fn notify;
    journal_t *jnl;
    ratelimit_t *key_rate;                   /* admission: over it spills to EXCESS */
    ratelimit_t *drain_rate;                 /* EXCESS drains at the same rate */
    hlc_t hlc;
    pthread_mutex_t mu;
    pthread_cond_t work;
    int stopping;
    size_t cap[WQ_NCLASS];
    /* Capacity: a job holds a place in MAIN or EXCESS (where it was
     * admitted) until it ends, in flight or not, wherever it moved since.
     * STALE's capacity bounds the jobs sitting in STALE. */
    size_t charged[WQ_NCLASS];
    size_t jobs_in[WQ_NCLASS];        /* jobs queued in each FIFO now */
    wq_shard shards[WQ_MAX_SHARDS];
    wq_job *jobs[WQ_JOB_BUCKETS];
    wq_key *keys[WQ_KEY_BUCKETS];
    wq_job *fin_head, *fin_tail;      /* finished jobs, oldest first */
    size_t nfinished;
    wq_waiter *waiters;
    double tokens;                    /* global dispatch budget */
    uint64_t tokens_at_us;
    unsigned rr;
    uint64_t routed_epoch;            /* the topology wq_route_follow last saw */
    uint64_t log_window_us;           /* spill logging: at most 10 a second */
    unsigned log_count, log_dropped;
    pthread_t *workers;
    pthread_t reaper;
};

/* Collected under the lock, acted on without it (wq_end_flush). */
typedef struct wq_end_list {
    wq_waiter *due;                   /* waiters to notify */
    uint64_t *versions;               /* journal records to forget */
    size_t nversions, capversions;
} wq_end_list;

extern metric wq_m_admitted, wq_m_applied, wq_m_superseded, wq_m_failed,
    wq_m_rejected,
    wq_m_coalesced, wq_m_dispatched, wq_m_batches, wq_m_retries,
    wq_m_spill_excess, wq_m_spill_stale, wq_m_replayed, wq_m_depth_main,
    wq_m_depth_excess, wq_m_depth_stale;
extern metrics_hist wq_m_apply;

/* wq.c */
void wq_gauges(wq_t *q);
/* One log line per spill, at most 10 a second (a hot key spills a lot). */
void wq_log_spill(wq_t *q, const char *fmt, const char *key, size_t klen,
                  uint32_t shard);

/* wq_table.c */
wq_job **wq_table_job_slot(wq_t *q, const jobid *id);
wq_key **wq_table_key_slot(wq_t *q, const char *key, size_t klen);
/* The key's entry, made (empty) when it has none; NULL: out of memory. */
wq_key *wq_table_key_get(wq_t *q, const char *key, size_t klen);
/* Unlink and free a key that has no ops left (no-op otherwise). */
void wq_table_key_release(wq_t *q, wq_key *k);
void wq_table_fifo_push(wq_fifo *f, wq_op *o);
void wq_table_fifo_push_front(wq_fifo *f, wq_op *o);
void wq_table_fifo_del(wq_fifo *f, wq_op *o);
void wq_table_key_move(wq_t *q, wq_key *k, enum wq_class to);
/* Put ops (linked by next, in flight) back in front of their FIFOs of
 * shard s, in order, each in its key's current class. */
void wq_table_requeue(wq_t *q, wq_shard *s, wq_op *first);
void wq_table_op_free(wq_t *q, wq_op *o);
/* A job for w (key copied), not in the table yet; NULL: out of memory. */
wq_job *wq_table_job_new(const wq_write *w, uint32_t shard);
void wq_table_job_free(wq_job *j);

/* wq_end.c */
wq_outcome wq_end_outcome(const wq_job *j);
/* Take waiter w of job j off every list and put it on e's due list. */
void wq_end_waiter_due(wq_t *q, wq_waiter *w, wq_job *j, wq_end_list *e);
/* res: the shard's result for the op (NULL when it failed before one). */
void wq_end_op(wq_t *q, wq_op *o, enum wq_state st, uint16_t status,
               const wire_result *res, const char *error, const char *message,
               wq_end_list *e);
void wq_end_flush(wq_t *q, wq_end_list *e);

/* wq_admit.c */
int wq_admit_enqueue(wq_t *q, wq_job *j, const wq_write *w, enum wq_class cls,
                     wq_key *k);
uint64_t wq_admit_next_id(void *arg);
void wq_admit_committed(void *arg, journal_rec *const *recs, size_t n);

/* wq_route.c */
/* The shard that owns key now in t (its "ring"). */
uint32_t wq_route_owner(const topo_t *t, const char *key, size_t klen);
/* With the lock held: when the topology changed since the last call, move
 * every queued op (not in flight) whose key has another owner now to that
 * shard's FIFOs. */
void wq_route_follow(wq_t *q);
/* With the lock held: an op (in flight) that shard `from` answered 421
 * moved goes to the owner the store named (owner, -1: none) when this
 * queue's topology has that shard, else to the owner its topology names
 * after the migration; when that is `from` still, it waits there for the
 * new topology (asked for now). */
void wq_route_moved(wq_t *q, wq_op *o, uint32_t from, int64_t owner);

/* wq_dispatch.c: one dispatcher thread (arg: the wq_t). */
void *wq_dispatch_worker(void *arg);
/* wq_age.c: the reaper thread (arg: the wq_t). */
void *wq_age_reaper(void *arg);
/* wq_replay.c: queue again what the journal holds (waits for the first
 * topology when there is something). 0 or -1. */
int wq_replay_journal(wq_t *q, const char *journal_dir);

#endif
