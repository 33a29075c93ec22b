/* db: the LMDB storage of one store replica (one shard copy).
 *
 * One LMDB environment per store directory, three named databases:
 *   data     key -> record: u64 version, u64 seq, u8 flags, [long key], value
 *   changes  u64 seq (MDB_INTEGERKEY) -> full key; one entry per key, at the
 *            seq of its latest change (rewriting a key moves its entry), so
 *            "everything since seq S" is a cursor walk from S + 1
 *   meta     small u64 values: epoch, last_seq, max_version, role, keys,
 *            tombstones, applied_seq
 *
 * Writes follow last-writer-wins by version (lib/hlc.h): an op whose version
 * is not newer than the stored one changes nothing (status 208). A delete
 * writes a tombstone. Every applied op gets the next seq, and last_seq is
 * persisted in the same transaction as the op, so a crash can never leave a
 * record whose seq is above last_seq.
 *
 * Keys longer than LMDB's key limit (511 bytes in Debian's build) are stored
 * under a 511-byte surrogate key (prefix, NUL, XXH3-128 of the whole key);
 * such records carry the full key so it can be checked. Callers never see
 * this.
 *
 * Threads: every function may be called from any thread (MDB_NOTLS). Writes
 * are serialised by LMDB's single write lock; reads never block.
 *
 * Ownership: sdb_open allocates the handle, sdb_close frees it (callers stop
 * every user first). sdb_get returns a malloc'd copy of the value that the
 * caller frees with sdb_record_free; sdb_get_with lends a pointer into the map
 * valid only during the callback. wire_op inputs are borrowed; changes are
 * appended to a caller-owned wire_buf. */
#ifndef KV_STORE_DB_H
#define KV_STORE_DB_H

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

/* Per-op error detail beside wire_result.status (which is HTTP-like). */
enum sdb_err {
    SDB_OK = 0,
    SDB_E_BAD_OP,      /* 400: unknown op, empty key, NUL in key, bad delta */
    SDB_E_BAD_VERSION, /* 400: version above HLC_MAX (not JSON-safe) */
    SDB_E_KEY_SIZE,    /* 414 */
    SDB_E_VALUE_SIZE,  /* 413 */
    SDB_E_NOT_INTEGER, /* 409: INCR on a value that is not decimal int64 */
    SDB_E_OVERFLOW,    /* 409: INCR past int64 */
    SDB_E_FULL,        /* 507: the map is full, nothing in the batch applied */
    SDB_E_INTERNAL,    /* 500: LMDB failure, nothing in the batch applied */
};

typedef struct sdb_opts {
    size_t map_size_mb;     /* 0 = 1024 */
    enum sdb_fsync fsync;
    size_t max_key_bytes;   /* 0 = 1024 */
    size_t max_value_bytes; /* 0 = 1 MiB */
    uint64_t (*clock)(void); /* HLC wall clock for tests; NULL = real time */
} sdb_opts;

typedef struct sdb_record {
    uint64_t version;
    uint64_t seq;
    uint8_t flags;     /* SDB_F_TOMBSTONE */
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

/* Reads key. 0 = found (a tombstone is found too: check flags), 1 = absent,
 * -1 = error. On 0, out->val is a malloc'd NUL-terminated copy: free it with
 * sdb_record_free (an empty value still allocates one byte). */
int sdb_get(sdb *db, const void *key, size_t klen, sdb_record *out);
void sdb_record_free(sdb_record *rec);

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
 * failed; number = counter after an INCR. A version of 0 means "assign one
 * now" from the store's clock. info (optional, n entries) gets each op's seq
 * and error detail. Ops carrying seq != 0 (a primary's stream) advance
 * applied_seq. Returns 0 when the transaction committed, -1 when it failed:
 * then nothing was applied and every result is 500 or 507. */
int sdb_apply_batch(sdb *db, const wire_op *ops, size_t n, wire_result *results,
                    sdb_opinfo *info);

/* Appends to out, as wire ops with seq set (tombstones as WIRE_DEL with no
 * value), every key whose latest change has seq > since, in seq order; at
 * most limit ops (0 = no limit) and about max_bytes of output (0 = no
 * limit; at least one op is always written). *next_since is where the next
 * call should resume: the seq of the last op written when the answer was
 * cut short (*more = 1), else the store's last_seq (*more = 0). 0 or -1. */
int sdb_changes_since(sdb *db, uint64_t since, size_t limit, size_t max_bytes,
                      wire_buf *out, uint64_t *next_since, int *more);

/* Deletes tombstones whose seq is <= upto_seq (every replica has passed
 * them), from data and changes. *collected (optional) gets how many. 0/-1. */
int sdb_collect_tombstones(sdb *db, uint64_t upto_seq, uint64_t *collected);

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
