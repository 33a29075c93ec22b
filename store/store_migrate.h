/* store_migrate: a store's side of a live shard migration (docs/PROTOCOL.md
 * "Growing and shrinking: shard migration"), one thread per store.
 *
 * The write fence. Client writes (store_kv, store_batch) hold
 * store_migrate_write_begin .. _end from their ownership check to their
 * commit (a read lock, writer-preferring). When the store first sees phase
 * freeze it takes the lock in write mode and reads its last seq as
 * fence_seq: a write that passed its check under the older topology has
 * committed by then, and every later one checks against the freeze and is
 * refused for a moving key, so no write to a moving key can carry a seq
 * above fence_seq.
 *
 * The copier. On a primary whose topology has phase copy or freeze and
 * whose shard is in migration.from, the thread walks its changes index
 * (sdb_changes_picked: only moving keys are read) from seq 0 in pages and
 * sends every record (value or
 * tombstone, with its version) whose owner before the migration is this
 * shard and after it another, to that shard's primary as POST
 * /internal/repair batches (at most STORE_MIGRATE_BATCH_OPS ops and about
 * STORE_MIGRATE_BATCH_BYTES), with the target's X-KV-Epoch, X-KV-Migration
 * and the cluster token. position = the seq up to which every moving record was sent and
 * answered 200 with every op 200 or 208; a failure redoes the page from
 * position after a backoff (100 ms doubling to 2 s) with the latest
 * topology. After the first pass it follows new changes. Once frozen and
 * position >= fence_seq, it asks every target it sent to (GET /health) that
 * each of its live secondaries acked the target's seq as of our last batch
 * there (X-KV-Last-Seq of the repair answer), then shows drained. Phase
 * switch, a secondary, a shard not in migration.from: idle. A restart, a
 * new primary or a target whose primary changed starts over from seq 0
 * (idempotent by version). With a rate (store.migrate_rate) it reads at
 * most that many records a second, in pages of a tenth of it: a copy that
 * must leave the foreground its I/O.
 *
 * The purge. With no migration in the topology and this shard listed in
 * it, after each migration the store saw end and once at start, records of
 * keys another shard owns now are deleted without tombstones (sdb_purge),
 * in short transactions (a shard listed but not in the ring owns nothing:
 * a migration to it was called off).
 * Before it starts copying the copier waits for a tombstone collection
 * under way (role_gc_barrier): none starts during a migration.
 *
 * Report (store_migrate_json, in /health and /stats), when the topology has
 * a migration: "migration":{"id","phase","source","position","last_seq",
 * "caught_up","fence_seq","scanned","sent","sent_bytes","drained"}.
 * Metrics kv_store_migrate_sent_total, kv_store_migrate_sent_bytes_total,
 * kv_store_migrate_purged_total.
 *
 * Deferred jobs. A target applies the copier's batches on this thread
 * (store_migrate_defer, from store_repair), which runs below the request
 * threads like the copier: moving keys costs the foreground as little on
 * the target as on the source.
 *
 * Ownership: store_migrate_start allocates and starts the thread;
 * store_migrate_close runs what is deferred and refuses more (call it
 * before stopping the HTTP server: the jobs answer requests);
 * store_migrate_stop joins and frees (stop the HTTP server first: writes
 * use the fence). db and role are borrowed and outlive it. */
#ifndef KV_STORE_MIGRATE_H
#define KV_STORE_MIGRATE_H

#include "role.h"
#include "sdb.h"
#include "topo.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_MIGRATE_BATCH_OPS 5000
#define STORE_MIGRATE_BATCH_BYTES ((size_t)4 << 20)
#define STORE_MIGRATE_PAGE_OPS 20000
#define STORE_MIGRATE_BACKOFF_MIN_MS 100
#define STORE_MIGRATE_BACKOFF_MAX_MS 2000
#define STORE_MIGRATE_PURGE_BATCH 2000
#define STORE_MIGRATE_NICE 10 /* the thread's nice value (setpriority) */

typedef struct store_migrate store_migrate;

typedef struct store_migrate_opts {
    sdb *db;
    role_t *role;
    unsigned shard;
    const char *token;     /* cluster token or NULL */
    long timeout_ms;       /* per request (0: 10000) */
    uint64_t rate;         /* records read per second at most (0: no limit) */
} store_migrate_opts;

store_migrate *store_migrate_start(const store_migrate_opts *o);
void store_migrate_stop(store_migrate *m);    /* NULL is a no-op */

/* The write fence: the latest topology (a reference, or NULL) with the
 * fence held for reading; _end puts both back. m NULL: no fence, just
 * role_topo(role). */
topo_t *store_migrate_write_begin(store_migrate *m, role_t *role);
void store_migrate_write_end(store_migrate *m, topo_t *t);

/* Adds "migration" to obj when t (the store's latest topology) has one.
 * m NULL: id and phase only. */
void store_migrate_json(store_migrate *m, const topo_t *t, cJSON *obj);

/* Run fn(arg) on the migration's thread, after what was deferred before.
 * 0 = it will run; -1 = it will not (m NULL, closed, out of memory): run
 * it yourself. */
int store_migrate_defer(store_migrate *m, void (*fn)(void *arg), void *arg);
/* Runs what is deferred, on the caller's thread; later defers fail. */
void store_migrate_close(store_migrate *m);

#endif
