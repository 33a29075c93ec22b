/* sdb_internal: what the files of the sdb module share (store/sdb.h is the
 * contract): the record layout, the meta names, struct sdb, and the record
 * and meta helpers. Only store/sdb*.c include it. */
#ifndef KV_STORE_SDB_INTERNAL_H
#define KV_STORE_SDB_INTERNAL_H

#include "sdb.h"

#include "hlc.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Record header: u64 version, u64 seq, u8 flags (host byte order: an LMDB
 * file is not portable across architectures anyway). Long-key records then
 * hold u32 key length and the key, and records with SDB_F_EXPIRES a u64
 * expires_at (Unix ms), before the value. */
#define SDB_HDR 17u
#define SDB_LONG_HDR (SDB_HDR + 4u)
/* Surrogate key of a long key: prefix, NUL (never in a real key, so it cannot
 * collide with a short key), 16-byte XXH3-128 of the whole key. */
#define SDB_HASH_LEN 16u

#define SDB_META_EPOCH "epoch"
#define SDB_META_LAST_SEQ "last_seq"
#define SDB_META_MAX_VERSION "max_version"
#define SDB_META_ROLE "role"
#define SDB_META_TOMBSTONES "tombstones"
#define SDB_META_APPLIED_SEQ "applied_seq"
#define SDB_META_KEYS "keys"
#define SDB_META_RESYNCING "resyncing"
#define SDB_META_GC_SEQ "gc_seq"
#define SDB_META_UNSTAMPED "unstamped"

/* changes keys are size_t (MDB_INTEGERKEY) read back as u64. */
_Static_assert(sizeof(size_t) == 8, "64-bit size_t required");

struct sdb {
    MDB_env *env;
    MDB_dbi data, changes, meta, expiry;
    hlc_t hlc;
    size_t max_key, max_value;
    uint64_t max_skew_us;          /* sdb_opts.max_version_skew_ms, in us */
    size_t lmdb_maxkey;          /* mdb_env_get_maxkeysize */
    enum sdb_fsync fsync;
    /* Serialises our write transactions so that the cached counters below
     * are read and published under one lock (LMDB's own write lock is
     * released inside mdb_txn_commit, before we could publish). */
    pthread_mutex_t wmu;
    /* Cached meta values, written under wmu after a commit, read lock-free. */
    _Atomic uint64_t last_seq, epoch, max_version, tombstones, applied_seq,
        keys, gc_seq, unstamped;
    _Atomic int role;
    _Atomic int resyncing;
    /* everysec sync thread */
    pthread_t sync_thr;
    int sync_started;
    int stopping;
    pthread_mutex_t smu;
    pthread_cond_t scv;
};

/* A u64 from unaligned map memory. */
uint64_t sdb_ld64(const void *p);
/* The data key of key: itself, or its surrogate (in buf, which holds
 * lmdb_maxkey bytes) when it is over LMDB's key limit. */
void sdb_dkey(const sdb *db, const void *key, size_t klen, char *buf,
              MDB_val *out);
/* Parses a data record of key into out (val points into the map). 0, -1
 * corrupt, 1 a colliding long key's record. */
int sdb_rec_parse(const MDB_val *v, const void *key, size_t klen,
                  sdb_record *out);
/* The user key a data entry stands for: the entry's key, or a long key's
 * copy in the record. 0, or -1 when the record is corrupt. */
int sdb_rec_key(const MDB_val *k, const MDB_val *v, const char **key,
                size_t *len);
/* The expiry index (store/sdb_reap.c): u64 expires_at (MDB_INTEGERKEY,
 * MDB_DUPSORT) -> data key, one entry per record carrying an expiry, kept
 * by every write in the write's transaction. open: opens it inside txn,
 * building it from data when the store predates it. put/del: 0 or an LMDB
 * error (del of an absent entry is 0). */
int sdb_expiry_open(sdb *db, MDB_txn *txn);
int sdb_expiry_put(sdb *db, MDB_txn *txn, uint64_t at, const MDB_val *dkey);
int sdb_expiry_del(sdb *db, MDB_txn *txn, uint64_t at, const MDB_val *dkey);
/* Entries in the index (a read transaction of its own); 0 on error. */
uint64_t sdb_expiry_count(sdb *db);
/* One meta value inside txn: 0, or an LMDB error (meta_get: MDB_NOTFOUND
 * when absent). */
int sdb_meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t *out);
int sdb_meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name, uint64_t val);

#endif
