/* sdb: the LMDB storage of one store replica (one shard copy).
 *
 * One LMDB environment per store directory, four named databases:
 *   data     key -> record: u64 version, u64 seq, u8 flags, [long key],
 *            [u64 expires_at], value
 *   changes  u64 seq (MDB_INTEGERKEY) -> full key; one entry per key, at the
 *            seq of its latest change (rewriting a key moves its entry), so
 *            "everything since seq S" is a cursor walk from S + 1
 *   expiry   u64 expires_at (MDB_INTEGERKEY, MDB_DUPSORT) -> data key, one
 *            entry per record carrying an expiry: the reaper's work list,
 *            kept on every replica so that a promoted one has it
 *   meta     small u64 values: epoch, last_seq, max_version, role, keys,
 *            tombstones, applied_seq, gc_seq, unstamped, resyncing
 *
 * Writes follow last-writer-wins by version (lib/hlc.h): an op whose version
 * is not newer than the stored one changes nothing (status 208). A delete
 * writes a tombstone. The one exception is a reap (lib/wire.h
 * WIRE_F_REAPED): it replaces an expired record of its own version by a
 * tombstone of that version, so the reaper never invents a version and a
 * write that raced it always wins. Every op a primary applies gets the next seq; a
 * secondary stores what it replicates under its primary's seq (so its
 * applied_seq is a position in the primary's changes). last_seq is persisted
 * in the same transaction as the op, so a crash can never leave a record
 * whose seq is above last_seq.
 *
 * Keys longer than LMDB's key limit (511 bytes in Debian's build) are stored
 * under a 511-byte surrogate key (prefix, NUL, XXH3-128 of the whole key);
 * such records carry the full key so it can be checked. Callers never see
 * this.
 *
 * Files: sdb.c (open, close, reads, meta), sdb_apply.c (writes),
 * sdb_changes.c (the changes feed and snapshots), sdb_gc.c (tombstones),
 * sdb_reap.c (the expiry index and sdb_reap),
 * sdb_purge.c (dropping records other shards own after a migration),
 * sdb_replica.c (wipe, resync, promote, follow); sdb_internal.h is theirs.
 *
 * Threads: every function may be called from any thread (MDB_NOTLS). Writes
 * are serialised by LMDB's single write lock; reads never block.
 *
 * Ownership: sdb_open allocates the handle, sdb_close frees it (callers stop
 * every user first). sdb_get returns a malloc'd copy of the value that the
 * caller frees with sdb_record_free; sdb_get_with lends a pointer into the map
 * valid only during the callback. wire_op inputs are borrowed; changes are
 * appended to a caller-owned wire_buf. */
#ifndef KV_STORE_SDB_H
#define KV_STORE_SDB_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sdb sdb;

enum sdb_fsync {
    SDB_FSYNC_ALWAYS = 0, /* every commit is durable before it returns */
    SDB_FSYNC_EVERYSEC,   /* MDB_NOSYNC + a thread syncing once a second */
    SDB_FSYNC_NO,         /* MDB_NOSYNC: the OS writes back when it likes */
};

enum sdb_role { SDB_ROLE_PRIMARY = 1, SDB_ROLE_SECONDARY = 2 };

/* Record flags. */
#define SDB_F_TOMBSTONE 0x01u
#define SDB_F_LONGKEY 0x02u /* internal: the record carries the full key */
#define SDB_F_EXPIRES 0x04u /* internal: the record carries expires_at */
#define SDB_F_REAPED 0x08u  /* with TOMBSTONE: the reaper's, at the version
                               of the expired record it replaced */

/* Per-op error detail beside wire_result.status (which is HTTP-like). */
enum sdb_err {
    SDB_OK = 0,
    SDB_E_BAD_OP,      /* 400: unknown op, empty key, NUL in key, bad delta */
    SDB_E_BAD_VERSION, /* 400: version above HLC_MAX (not JSON-safe) */
    SDB_E_FUTURE_VERSION, /* 400: version more than max_version_skew_ms
                             ahead of this store's clock */
    SDB_E_KEY_SIZE,    /* 414 */
    SDB_E_VALUE_SIZE,  /* 413 */
    SDB_E_NOT_INTEGER, /* 409: INCR on a value that is not decimal int64 */
    SDB_E_OVERFLOW,    /* 409: INCR past int64 */
    SDB_E_PRECONDITION,/* 412: the op's condition (lib/wire.h WIRE_F_IF_*)
                          does not hold; version = the live version */
    SDB_E_FULL,        /* 507: the map is full, nothing in the batch applied */
    SDB_E_INTERNAL,    /* 500: LMDB failure, nothing in the batch applied */
};

typedef struct sdb_opts {
    size_t map_size_mb;     /* 0 = 1024 */
    enum sdb_fsync fsync;
    size_t max_key_bytes;   /* 0 = 1024 */
    size_t max_value_bytes; /* 0 = 1 MiB */
    /* A given version (a direct ?version=, a batch, a replicated or
     * repaired op) more than this far ahead of the store's clock is refused:
     * last writer wins would let it shadow every later write. 0 = 5000. */
    uint64_t max_version_skew_ms;
    uint64_t (*clock)(void); /* HLC wall clock for tests; NULL = real time */
} sdb_opts;

typedef struct sdb_record {
    uint64_t version;
    uint64_t seq;
    uint8_t flags;     /* SDB_F_TOMBSTONE, SDB_F_REAPED */
    uint64_t expires_at; /* Unix ms from which it reads as absent; 0: never */
    const char *val;   /* NUL-terminated copy (sdb_get) or map pointer */
    size_t val_len;
} sdb_record;

/* Extra per-op output of sdb_apply_batch (optional). */
typedef struct sdb_opinfo {
    uint64_t seq;      /* seq given to the op, 0 when nothing was applied */
    enum sdb_err err;
} sdb_opinfo;

typedef struct sdb_stats {
    uint64_t keys;         /* live keys */
    uint64_t tombstones;
    uint64_t last_seq;
    uint64_t epoch;
    uint64_t max_version;  /* highest version ever stored */
    uint64_t applied_seq;  /* highest upstream op.seq applied (secondaries) */
    enum sdb_role role;
    uint64_t gc_seq;       /* tombstones up to this seq are collected */
    uint64_t unstamped;    /* records held without a seq (repairs on a
                              secondary, waiting for the stream) */
    uint64_t expiring;     /* records carrying an expiry (the expiry
                              index: expired ones not reaped yet too) */
    int resyncing;         /* a full resync is under way (data partial) */
    uint64_t map_size;     /* bytes */
    uint64_t map_used;     /* bytes of the map in use */
} sdb_stats;

/* Parses "always" | "everysec" | "no"; -1 on anything else. */
int sdb_fsync_parse(const char *s, enum sdb_fsync *out);
const char *sdb_role_name(enum sdb_role r);
int sdb_role_parse(const char *s, enum sdb_role *out);

/* Opens (creating the directory and the databases when needed) the store at
 * dir. NULL on failure, with a sentence in err. */
sdb *sdb_open(const char *dir, const sdb_opts *opts, char *err, size_t errlen);
/* Stops the sync thread, syncs to disk, closes and frees. NULL is a no-op. */
void sdb_close(sdb *db);
/* Forces everything committed so far to disk. 0 or -1. */
int sdb_sync(sdb *db);

/* Reads key. A tombstone is found too: check flags. When found, out->val
 * is a malloc'd NUL-terminated copy: free it with sdb_record_free (an empty
 * value still allocates one byte). */
enum sdb_get_rc {
    SDB_GET_FAILED = -1,
    SDB_GET_FOUND = 0,
    SDB_GET_ABSENT = 1,
};
enum sdb_get_rc sdb_get(sdb *db, const void *key, size_t klen,
                        sdb_record *out);
void sdb_record_free(sdb_record *rec);
/* The store's clock (sdb_opts.clock) in Unix milliseconds. */
uint64_t sdb_now_ms(sdb *db);
/* Whether rec has expired at now_ms: an expired record reads as absent
 * everywhere (its version still counts for last writer wins, like a
 * tombstone's). Pure, so an sdb_read_fn may call it. */
int sdb_record_expired(const sdb_record *rec, uint64_t now_ms);

/* Zero-copy read: calls fn(rec, arg) inside the read transaction with
 * rec->val pointing into the map (valid only during the call); rec is NULL
 * when the key is absent. Returns 0, or -1 on error (fn not called). The
 * HTTP GET path uses this to copy the value exactly once, into the
 * response. fn must not call other sdb functions. */
typedef void (*sdb_read_fn)(const sdb_record *rec, void *arg);
int sdb_get_with(sdb *db, const void *key, size_t klen, sdb_read_fn fn,
                 void *arg);

/* Applies n ops in order in ONE write transaction (one commit, one fsync
 * under "always"). results[i] is always filled: status 200 applied, 208 not
 * newer (version = the stored version), 400/413/414 invalid op, 409 INCR
 * failed, 412 condition not met, 404 a reaper's op (WIRE_F_REAPED with
 * WIRE_F_EXPIRES) that found no record of its version to reap; number =
 * counter after an INCR. A
 * condition is judged on the live record (a tombstone is none) and only in
 * WRITE mode (elsewhere it is 400); an op whose own version is stored
 * already is a resend, 208, whatever its condition says now. A version of 0 means "assign one
 * now" from the store's clock. info (optional, n entries) gets each op's seq
 * and error detail. Ops carrying seq != 0 (a primary's stream) are applied
 * as SDB_APPLY_REPLICATE (below), the others as SDB_APPLY_WRITE. Returns 0 when the transaction committed, -1 when it failed:
 * then nothing was applied and every result is 500 or 507. */
int sdb_apply_batch(sdb *db, const wire_op *ops, size_t n, wire_result *results,
                    sdb_opinfo *info);

/* How sdb_apply_as applies ops.
 *  WRITE      a primary's own write: every applied op gets the next seq.
 *  REPLICATE  a primary's stream: the record is stored under op.seq (the
 *             primary's numbering) and applied_seq moves past it; an op
 *             with the stored version but a newer seq re-stamps the record
 *             (208, changes index moved). INCR and seq/version 0 are 400.
 *  REPAIR     by version, no seq of the sender's: on a primary a WRITE; on
 *             a secondary the record is kept unstamped (seq 0, outside
 *             changes) and applied_seq does not move, until the stream
 *             brings the same version with its seq. INCR is 400.
 *  AUTO       (sdb_apply_batch) REPLICATE for ops with a seq, else WRITE. */
enum sdb_apply_mode {
    SDB_APPLY_AUTO = 0,
    SDB_APPLY_WRITE,
    SDB_APPLY_REPLICATE,
    SDB_APPLY_REPAIR,
};
int sdb_apply_as(sdb *db, enum sdb_apply_mode mode, const wire_op *ops,
                 size_t n, wire_result *results, sdb_opinfo *info);

/* A replicated batch (a primary's push, or a page of its changes). */
typedef struct sdb_repl_args {
    uint64_t epoch;  /* must equal the store's epoch (0: not checked) */
    uint64_t since;  /* the batch continues the stream from this seq: it
                        must be <= applied_seq, or nothing is applied */
    uint64_t upto;   /* afterwards applied_seq = max(applied_seq, upto) */
    int resync;      /* the full resync's own pages (allowed while
                        resyncing; everything else is refused then) */
} sdb_repl_args;

/* What sdb_replicate did. The refusals apply nothing and set *applied_seq. */
enum sdb_repl_rc {
    SDB_REPL_FAILED = -1, /* the transaction failed: nothing applied */
    SDB_REPL_OK = 0,
    SDB_REPL_GAP = 1,     /* since > applied_seq: resend from applied_seq */
    SDB_REPL_EPOCH = 2,   /* a.epoch is not the store's epoch */
    SDB_REPL_RESYNC = 3,  /* a full resync is under way */
};

/* Applies ops in REPLICATE mode in one transaction after the checks above;
 * n may be 0 (just moves applied_seq to upto). *applied_seq (optional)
 * gets the position afterwards. */
enum sdb_repl_rc sdb_replicate(sdb *db, const wire_op *ops, size_t n,
                               const sdb_repl_args *a, wire_result *results,
                               uint64_t *applied_seq);

/* Appends to out, as wire ops with seq set (tombstones as WIRE_DEL with no
 * value), every key whose latest change has seq > since, in seq order; at
 * most limit ops (0 = no limit) and about max_bytes of output (0 = no
 * limit; at least one op is always written). *next_since is where the next
 * call should resume: the seq of the last op written when the answer was
 * cut short (*more = 1), else the store's last_seq (*more = 0). 0 or -1. */
int sdb_changes_since(sdb *db, uint64_t since, size_t limit, size_t max_bytes,
                      wire_buf *out, uint64_t *next_since, int *more);
/* As sdb_changes_since, but only the keys keep(arg, key, len) accepts are
 * written, and the others are not even looked up (a migration's copier
 * reads a third of what it walks); limit counts every entry examined, and
 * *examined (optional) gets their number. */
int sdb_changes_picked(sdb *db, uint64_t since, size_t limit,
                       size_t max_bytes,
                       int (*keep)(void *arg, const char *key, size_t len),
                       void *arg, wire_buf *out, uint64_t *next_since,
                       int *more, uint64_t *examined);

/* A read snapshot of the changes (one LMDB read transaction) for a full
 * resync served in pages: every page sees the same state. Hold it briefly:
 * LMDB cannot reuse pages freed after it began. A snapshot is used by one
 * thread at a time; sdb_snap_close frees it. */
typedef struct sdb_snap sdb_snap;
sdb_snap *sdb_snap_open(sdb *db);
int sdb_snap_changes(sdb_snap *s, uint64_t since, size_t limit,
                     size_t max_bytes, wire_buf *out, uint64_t *next_since,
                     int *more);
void sdb_snap_close(sdb_snap *s);

/* Deletes tombstones whose seq is <= upto_seq (every replica has passed
 * them), from data and changes. *collected (optional) gets how many. 0/-1. */
int sdb_collect_tombstones(sdb *db, uint64_t upto_seq, uint64_t *collected);

/* Reaps expired records, one bounded pass: reads up to max (0: 1000) of the
 * earliest entries of the expiry index that are due at now_ms, and writes
 * each one's tombstone (WIRE_F_REAPED, the record's version, a new seq) in
 * ONE write transaction, like a batch of deletes. A record rewritten since
 * it was read keeps the newer write (208). *reaped gets how many became
 * tombstones, *more 1 when more were due than one pass takes. For a
 * primary (a secondary gets its primary's tombstones); 0 or -1. */
int sdb_reap(sdb *db, uint64_t now_ms, size_t max, uint64_t *reaped,
             int *more);

/* Purge after a shard migration: deletes, WITHOUT tombstones, every record
 * (value, tombstone or unstamped) whose key owned() says this store does
 * not keep, from data and changes, keys and counters adjusted. The walk
 * goes in write transactions examining at most batch records each (0:
 * 2000), so writes wait at most one short batch. Before each transaction,
 * with the write lock held, begin(arg) gives the ctx owned() decides with
 * for that batch (a topology taken under the lock sees every write that
 * committed before: a record a migration's copier just brought is judged
 * by the topology that let it in); NULL stops the walk there. end(ctx) is
 * called after each batch. *purged gets how many records went, *done 1
 * when the walk reached the end. 0, or -1 on an LMDB error. */
typedef struct sdb_purge_fns {
    void *(*begin)(void *arg);
    int (*owned)(void *ctx, const char *key, size_t len);
    void (*end)(void *ctx);
    void *arg;
} sdb_purge_fns;
int sdb_purge(sdb *db, const sdb_purge_fns *f, size_t batch,
              uint64_t *purged, int *done);

/* Replica life cycle, each one transaction (role, epoch and positions
 * change together, so a crash never leaves half of it).
 * sdb_wipe: empties data and changes, zeroes the positions, marks a full
 *   resync under way, role secondary at epoch. Versions stay monotonic.
 *   Refused (-1, nothing changed) on a primary or below the store's epoch.
 * sdb_resync_done: the full resync reached upto: clears the mark.
 * sdb_promote: role primary at epoch; last_seq continues from
 *   max(last_seq, applied_seq); unstamped records get seqs (*stamped).
 * sdb_follow: role secondary at epoch, upstream position applied_seq. */
int sdb_wipe(sdb *db, uint64_t epoch);
int sdb_resync_done(sdb *db, uint64_t upto);
int sdb_resyncing(sdb *db);        /* from memory, lock-free */
int sdb_promote(sdb *db, uint64_t epoch, uint64_t *stamped);
int sdb_follow(sdb *db, uint64_t epoch, uint64_t applied_seq);
uint64_t sdb_gc_seq(sdb *db);      /* from memory, lock-free */

int sdb_stats_get(sdb *db, sdb_stats *out);
uint64_t sdb_last_seq(sdb *db);    /* from memory, lock-free */
uint64_t sdb_applied_seq(sdb *db); /* from memory, lock-free */
uint64_t sdb_get_epoch(sdb *db);   /* from memory, lock-free */
int sdb_set_epoch(sdb *db, uint64_t epoch); /* persisted; 0 or -1 */
enum sdb_role sdb_get_role(sdb *db);
int sdb_set_role(sdb *db, enum sdb_role role); /* persisted; 0 or -1 */
/* Forget the upstream position (before a full resync from seq 0). */
int sdb_set_applied_seq(sdb *db, uint64_t seq);
/* A new version from the store's clock (newer than anything stored). */
uint64_t sdb_next_version(sdb *db);

/* Strict decimal int64 text ("-12", no spaces, no '+'): 0 or -1. */
int sdb_parse_i64(const char *s, size_t n, int64_t *out);

#endif
