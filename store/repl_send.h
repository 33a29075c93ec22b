/* repl_send: a primary's replication stream (docs/PROTOCOL.md
 * "Replication, quorums and failover"), one sender thread per secondary.
 *
 * A sender reads sdb_changes_since(acked) in batches of store.repl_batch_max
 * ops and POSTs them to <secondary>/internal/replicate with X-KV-Epoch,
 * X-KV-Since (the position the batch continues: its acked seq), X-KV-Upto
 * (where the batch ends) and X-KV-Gc-Seq; the secondary answers
 * {"applied_seq":S} and S is the new acked seq (lower when the secondary
 * lost data or wiped: the sender resends from there). It wakes on every
 * write (repl_send_notify) and otherwise every 100 ms; an idle secondary
 * gets an empty heartbeat POST every 500 ms, so liveness is known without
 * writes.
 * While a secondary fails it backs off 100 ms doubling to 2 s.
 *
 * Slow links (the lab and the quorum study): pending data waits before it
 * goes out, heartbeats still flow meanwhile.
 *  - store.repl_delay_ms > 0: each batch waits that long, or with
 *    store.repl_delay_random = 1 a uniform(0, repl_delay_ms) drawn per batch
 *    and per secondary;
 *  - store.lab_sync_delay_ms / store.lab_async_delay_ms (either > 0, they
 *    take precedence): a batch to a secondary of the sync set (the first W
 *    live secondaries in topology order) waits the sync delay, to any other
 *    the async delay; the place is re-evaluated while the batch waits.
 *
 * A secondary is alive when its last answer was 200 and came within
 * REPL_SEND_ALIVE_MS (2000) + repl_delay_ms. A freshly started sender knows
 * nothing until its first answer (a heartbeat learns the position, so a
 * restarted primary does not resend everything).
 *
 * After every answer the senders recompute the write quorum seq
 * (store/wquorum.h) and release the writes it covers.
 *
 * Locks: one mutex guards every peer's state; the HTTP exchange and the
 * LMDB read run outside it. repl_send_set_peers joins removed senders.
 *
 * Ownership: repl_send_new allocates; repl_send_free stops and joins every
 * sender. db and wqm are borrowed and outlive it. */
#ifndef KV_STORE_REPL_SEND_H
#define KV_STORE_REPL_SEND_H

#include "sdb.h"
#include "wquorum.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define REPL_SEND_ALIVE_MS 2000
#define REPL_SEND_HEARTBEAT_MS 500
#define REPL_SEND_IDLE_MS 100
#define REPL_SEND_BACKOFF_MIN_MS 100
#define REPL_SEND_BACKOFF_MAX_MS 2000
#define REPL_SEND_BATCH_BYTES ((size_t)4 << 20)

typedef struct repl_send repl_send_t;

typedef struct repl_send_opts {
    sdb *db;
    wquorum *wqm;                  /* NULL: no write quorum */
    unsigned write_quorum;        /* W */
    enum wquorum_policy policy;
    const char *token;            /* cluster token or NULL */
    size_t batch_max;             /* ops per batch */
    long delay_ms;                /* store.repl_delay_ms */
    int delay_random;             /* store.repl_delay_random: each batch
                                     waits uniform(0, delay_ms) instead */
    long sync_delay_ms;           /* store.lab_sync_delay_ms */
    long async_delay_ms;          /* store.lab_async_delay_ms */
    long timeout_ms;              /* per POST */
    /* Called (from a sender thread) when a secondary says our epoch is
     * stale: re-read the topology now. */
    void (*on_stale_epoch)(void *arg);
    void *arg;
} repl_send_opts;

repl_send_t *repl_send_new(const repl_send_opts *o);
void repl_send_free(repl_send_t *r);

/* The shard's secondaries, in replica-id order: starts senders for new
 * ones, stops (and joins) the others. n == 0 stops them all. 0 or -1. */
int repl_send_set_peers(repl_send_t *r, char *const *urls, size_t n);
/* A write committed: wake the senders. Cheap when there are none. */
void repl_send_notify(repl_send_t *r);

/* Live secondaries now and how many there are. */
size_t repl_send_alive(repl_send_t *r, size_t *total);
/* The seq every secondary has acked (0 while one is unknown); with no
 * secondaries, the store's last seq. For tombstone collection. */
uint64_t repl_send_min_acked(repl_send_t *r);
/* Recompute the quorum seq and release the writes it covers. */
void repl_send_update_quorum(repl_send_t *r);

/* Per secondary: url, acked_seq, lag, alive, known, last_ok_ms_ago,
 * batches, ops, errors, last_error; appended to arr. */
void repl_send_stats_json(repl_send_t *r, cJSON *arr);

#endif
