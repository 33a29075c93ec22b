/* sdb: opening and closing the LMDB store of store/sdb.h, reads, the record
 * and meta helpers the other sdb files share (store/sdb_internal.h), and the
 * cached meta values. */
#include "sdb_internal.h"

#include "clock.h"
#include "hlc.h"
#include "log.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

/* ---- small helpers ---------------------------------------------------- */

static void sdb_seterr(char *err, size_t errlen, const char *fmt, const char *a,
                       const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
}

int sdb_fsync_parse(const char *s, enum sdb_fsync *out)
{
    if (strcmp(s, "always") == 0)
        *out = SDB_FSYNC_ALWAYS;
    else if (strcmp(s, "everysec") == 0)
        *out = SDB_FSYNC_EVERYSEC;
    else if (strcmp(s, "no") == 0)
        *out = SDB_FSYNC_NO;
    else
        return -1;
    return 0;
}

const char *sdb_role_name(enum sdb_role r)
{
    return r == SDB_ROLE_SECONDARY ? "secondary" : "primary";
}

int sdb_role_parse(const char *s, enum sdb_role *out)
{
    if (strcmp(s, "primary") == 0)
        *out = SDB_ROLE_PRIMARY;
    else if (strcmp(s, "secondary") == 0)
        *out = SDB_ROLE_SECONDARY;
    else
        return -1;
    return 0;
}

int sdb_parse_i64(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    uint64_t acc = 0;
    uint64_t lim;

    if (n > 0 && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (i == n)
        return -1;
    /* The magnitude limit differs by sign: INT64_MIN has no positive twin. */
    lim = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        unsigned d = (unsigned char)s[i] - '0';
        if (d > 9)
            return -1;
        if (acc > (lim - d) / 10)
            return -1;
        acc = acc * 10 + d;
    }
    if (neg)
        *out = acc == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)acc;
    else
        *out = (int64_t)acc;
    return 0;
}

uint64_t sdb_ld64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* LMDB key of a user key: the key itself, or the surrogate of a long key.
 * buf must hold lmdb_maxkey bytes. */
void sdb_dkey(const sdb *db, const void *key, size_t klen, char *buf,
              MDB_val *out)
{
    if (klen <= db->lmdb_maxkey) {
        out->mv_data = (void *)key;
        out->mv_size = klen;
        return;
    }
    size_t prefix = db->lmdb_maxkey - 1 - SDB_HASH_LEN;
    XXH128_hash_t h = XXH3_128bits(key, klen);
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, h);
    memcpy(buf, key, prefix);
    buf[prefix] = '\0';
    memcpy(buf + prefix + 1, c.digest, SDB_HASH_LEN);
    out->mv_data = buf;
    out->mv_size = db->lmdb_maxkey;
}

/* Decodes a stored record. 0 ok, 1 = a long-key record of another key (hash
 * collision: treat as absent), -1 = corrupt. */
int sdb_rec_parse(const MDB_val *v, const void *key, size_t klen,
                  sdb_record *out)
{
    const char *p = v->mv_data;
    size_t off = SDB_HDR;

    if (v->mv_size < SDB_HDR)
        return -1;
    out->version = sdb_ld64(p);
    out->seq = sdb_ld64(p + 8);
    out->flags = (uint8_t)p[16];
    if (out->flags & SDB_F_LONGKEY) {
        uint32_t kl;
        if (v->mv_size < SDB_LONG_HDR)
            return -1;
        memcpy(&kl, p + SDB_HDR, 4);
        if (v->mv_size < SDB_LONG_HDR + kl)
            return -1;
        if (key && (kl != klen || memcmp(p + SDB_LONG_HDR, key, klen) != 0))
            return 1;
        off = SDB_LONG_HDR + kl;
    }
    out->expires_at = 0;
    if (out->flags & SDB_F_EXPIRES) {
        if (v->mv_size < off + 8)
            return -1;
        out->expires_at = sdb_ld64(p + off);
        off += 8;
    }
    out->val = p + off;
    out->val_len = v->mv_size - off;
    /* callers see only public flags */
    out->flags &= SDB_F_TOMBSTONE | SDB_F_REAPED;
    return 0;
}

int sdb_rec_key(const MDB_val *k, const MDB_val *v, const char **key,
                size_t *len)
{
    const char *p = v->mv_data;
    uint32_t kl;

    if (v->mv_size < SDB_HDR)
        return -1;
    if (!((uint8_t)p[16] & SDB_F_LONGKEY)) {
        *key = k->mv_data;
        *len = k->mv_size;
        return 0;
    }
    if (v->mv_size < SDB_LONG_HDR)
        return -1;
    memcpy(&kl, p + SDB_HDR, 4);
    if (v->mv_size < SDB_LONG_HDR + (size_t)kl)
        return -1;
    *key = p + SDB_LONG_HDR;
    *len = kl;
    return 0;
}

int sdb_meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name,
                 uint64_t *out)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, dbi, &k, &v);

    if (rc == MDB_NOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rc != 0)
        return rc;
    if (v.mv_size != 8)
        return MDB_CORRUPTED;
    *out = sdb_ld64(v.mv_data);
    return 0;
}

int sdb_meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name,
                 uint64_t val)
{
    MDB_val k = {strlen(name), (void *)name}, v = {8, &val};
    return mdb_put(txn, dbi, &k, &v, 0);
}

/* Sets one meta value in its own write transaction and publishes it. */
static int sdb_meta_write(sdb *db, const char *name, uint64_t val,
                          _Atomic uint64_t *cache)
{
    MDB_txn *txn;
    int rc;

    pthread_mutex_lock(&db->wmu);
    rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc == 0) {
        rc = sdb_meta_put(txn, db->meta, name, val);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0 && cache)
        atomic_store(cache, val);
    pthread_mutex_unlock(&db->wmu);
    if (rc != 0) {
        log_error("store db: cannot write meta %s: %s", name, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- open / close ----------------------------------------------------- */

static void *sdb_sync_main(void *arg)
{
    sdb *db = arg;

    pthread_setname_np(pthread_self(), "sdb-sync"); /* top -H, perf */
    pthread_mutex_lock(&db->smu);
    while (!db->stopping) {
        clock_cond_wait_ms(&db->scv, &db->smu, 1000);
        if (db->stopping)
            break;
        /* Sync outside the lock: it may take a while on a slow disk. */
        pthread_mutex_unlock(&db->smu);
        int rc = mdb_env_sync(db->env, 1);
        if (rc != 0)
            log_warn("store db: background sync failed: %s", mdb_strerror(rc));
        pthread_mutex_lock(&db->smu);
    }
    pthread_mutex_unlock(&db->smu);
    return NULL;
}

static int sdb_mkdirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof path)
        return -1;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        path[i] = c;
    }
    return 0;
}

/* Opens the named databases and loads meta into the cache. */
static int sdb_load(sdb *db)
{
    MDB_txn *txn;
    uint64_t role;
    uint64_t v;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);

    if (rc != 0)
        return rc;
    if ((rc = mdb_dbi_open(txn, "data", MDB_CREATE, &db->data)) != 0 ||
        (rc = mdb_dbi_open(txn, "changes", MDB_CREATE | MDB_INTEGERKEY,
                           &db->changes)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->meta)) != 0 ||
        (rc = sdb_expiry_open(db, txn)) != 0)
        goto fail;
#define SDB_LOAD(name, field)                                                  \
    do {                                                                       \
        if ((rc = sdb_meta_get(txn, db->meta, name, &v)) != 0)                 \
            goto fail;                                                         \
        atomic_store(&db->field, v);                                           \
    } while (0)
    SDB_LOAD(SDB_META_LAST_SEQ, last_seq);
    SDB_LOAD(SDB_META_EPOCH, epoch);
    SDB_LOAD(SDB_META_MAX_VERSION, max_version);
    SDB_LOAD(SDB_META_TOMBSTONES, tombstones);
    SDB_LOAD(SDB_META_APPLIED_SEQ, applied_seq);
    SDB_LOAD(SDB_META_KEYS, keys);
    SDB_LOAD(SDB_META_GC_SEQ, gc_seq);
    SDB_LOAD(SDB_META_UNSTAMPED, unstamped);
#undef SDB_LOAD
    if ((rc = sdb_meta_get(txn, db->meta, SDB_META_RESYNCING, &v)) != 0)
        goto fail;
    atomic_store(&db->resyncing, v != 0);
    if ((rc = sdb_meta_get(txn, db->meta, SDB_META_ROLE, &role)) != 0)
        goto fail;
    atomic_store(&db->role, role == SDB_ROLE_SECONDARY ? SDB_ROLE_SECONDARY
                                                       : SDB_ROLE_PRIMARY);
    return mdb_txn_commit(txn);
fail:
    mdb_txn_abort(txn);
    return rc;
}

sdb *sdb_open(const char *dir, const sdb_opts *opts, char *err, size_t errlen)
{
    sdb_opts o = opts ? *opts : (sdb_opts){0};
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
    sdb *db;
    int rc;

    if (sdb_mkdirs(dir) != 0) {
        sdb_seterr(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        return NULL;
    }
    db = calloc(1, sizeof *db);
    if (db == NULL) {
        sdb_seterr(err, errlen, "%s%s", "out of memory", "");
        return NULL;
    }
    db->fsync = o.fsync;
    db->max_key = o.max_key_bytes ? o.max_key_bytes : 1024;
    db->max_value = o.max_value_bytes ? o.max_value_bytes : 1024 * 1024;
    db->max_skew_us = (o.max_version_skew_ms ? o.max_version_skew_ms : 5000) * 1000;
    pthread_mutex_init(&db->wmu, NULL);
    pthread_mutex_init(&db->smu, NULL);
    clock_cond_init(&db->scv);
    hlc_init(&db->hlc, o.clock);
    if (o.fsync != SDB_FSYNC_ALWAYS)
        flags |= MDB_NOSYNC;

    if ((rc = mdb_env_create(&db->env)) != 0)
        goto fail;
    if ((rc = mdb_env_set_mapsize(
             db->env, (size_t)(o.map_size_mb ? o.map_size_mb : 1024) << 20)) !=
            0 ||
        (rc = mdb_env_set_maxdbs(db->env, 4)) != 0 ||
        /* One reader slot per concurrent read transaction (MDB_NOTLS):
         * http threads, changes streams, stats. */
        (rc = mdb_env_set_maxreaders(db->env, 512)) != 0)
        goto fail;
    if ((rc = mdb_env_open(db->env, dir, flags, 0644)) != 0)
        goto fail;
    /* Our key buffers are 512 bytes; a build allowing longer LMDB keys just
     * uses surrogates a little earlier than it needs to. */
    db->lmdb_maxkey = (size_t)mdb_env_get_maxkeysize(db->env);
    if (db->lmdb_maxkey > 511)
        db->lmdb_maxkey = 511;
    if ((rc = sdb_load(db)) != 0)
        goto fail;
    /* Versions must stay monotonic across restarts: a version assigned now
     * must beat every version already stored, even if the clock went back. */
    hlc_observe(&db->hlc, atomic_load(&db->max_version));
    if (o.fsync == SDB_FSYNC_EVERYSEC) {
        /* The sync thread must never take a process signal (SIGTERM's
         * default action would kill us mid-write): start it with all
         * signals blocked whatever the caller's mask is. */
        sigset_t all, old;
        int prc;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        prc = pthread_create(&db->sync_thr, NULL, sdb_sync_main, db);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (prc != 0) {
            sdb_seterr(err, errlen, "%s%s", "cannot start the sync thread", "");
            sdb_close(db);
            return NULL;
        }
        db->sync_started = 1;
    }
    return db;
fail:
    sdb_seterr(err, errlen, "lmdb at %s: %s", dir, mdb_strerror(rc));
    sdb_close(db);
    return NULL;
}

void sdb_close(sdb *db)
{
    if (db == NULL)
        return;
    if (db->sync_started) {
        pthread_mutex_lock(&db->smu);
        db->stopping = 1;
        pthread_cond_signal(&db->scv);
        pthread_mutex_unlock(&db->smu);
        pthread_join(db->sync_thr, NULL);
    }
    if (db->env) {
        /* Under NOSYNC policies this is what makes a clean stop durable. */
        int rc = mdb_env_sync(db->env, 1);
        if (rc != 0)
            log_warn("store db: final sync failed: %s", mdb_strerror(rc));
        mdb_env_close(db->env);
    }
    pthread_cond_destroy(&db->scv);
    pthread_mutex_destroy(&db->smu);
    pthread_mutex_destroy(&db->wmu);
    free(db);
}

int sdb_sync(sdb *db)
{
    int rc = mdb_env_sync(db->env, 1);
    if (rc != 0) {
        log_error("store db: sync failed: %s", mdb_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- reads ------------------------------------------------------------ */

int sdb_get_with(sdb *db, const void *key, size_t klen, sdb_read_fn fn,
                 void *arg)
{
    char kbuf[512];
    MDB_txn *txn;
    MDB_val k, v;
    sdb_record rec;
    int rc;

    if (klen == 0)
        return -1;
    sdb_dkey(db, key, klen, kbuf, &k);
    rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        log_error("store db: read txn: %s", mdb_strerror(rc));
        return -1;
    }
    rc = mdb_get(txn, db->data, &k, &v);
    if (rc == 0) {
        int p = sdb_rec_parse(&v, key, klen, &rec);
        if (p < 0) {
            mdb_txn_abort(txn);
            log_error("store db: corrupt record");
            return -1;
        }
        fn(p == 0 ? &rec : NULL, arg);
    } else if (rc == MDB_NOTFOUND) {
        fn(NULL, arg);
    } else {
        mdb_txn_abort(txn);
        log_error("store db: get: %s", mdb_strerror(rc));
        return -1;
    }
    mdb_txn_abort(txn);
    return 0;
}

struct sdb_copy {
    sdb_record *out;
    int found;
    int oom;
};

static void sdb_copy_fn(const sdb_record *rec, void *arg)
{
    struct sdb_copy *c = arg;
    char *val;

    if (rec == NULL)
        return;
    val = malloc(rec->val_len + 1);
    if (val == NULL) {
        c->oom = 1;
        return;
    }
    memcpy(val, rec->val, rec->val_len);
    val[rec->val_len] = '\0';
    *c->out = *rec;
    c->out->val = val;
    c->found = 1;
}

enum sdb_get_rc sdb_get(sdb *db, const void *key, size_t klen,
                        sdb_record *out)
{
    struct sdb_copy c = {out, 0, 0};

    memset(out, 0, sizeof *out);
    if (sdb_get_with(db, key, klen, sdb_copy_fn, &c) != 0 || c.oom)
        return SDB_GET_FAILED;
    return c.found ? SDB_GET_FOUND : SDB_GET_ABSENT;
}

uint64_t sdb_now_ms(sdb *db)
{
    return db->hlc.clock() / 1000u;
}

int sdb_record_expired(const sdb_record *rec, uint64_t now_ms)
{
    return rec->expires_at != 0 && rec->expires_at <= now_ms;
}

void sdb_record_free(sdb_record *rec)
{
    if (rec == NULL)
        return;
    free((void *)rec->val);
    rec->val = NULL;
    rec->val_len = 0;
}

/* ---- meta ------------------------------------------------------------- */

int sdb_stats_get(sdb *db, sdb_stats *out)
{
    MDB_envinfo ei;
    MDB_stat es;

    memset(out, 0, sizeof *out);
    out->keys = atomic_load(&db->keys);
    out->tombstones = atomic_load(&db->tombstones);
    out->last_seq = atomic_load(&db->last_seq);
    out->epoch = atomic_load(&db->epoch);
    out->max_version = atomic_load(&db->max_version);
    out->applied_seq = atomic_load(&db->applied_seq);
    out->role = (enum sdb_role)atomic_load(&db->role);
    out->gc_seq = atomic_load(&db->gc_seq);
    out->unstamped = atomic_load(&db->unstamped);
    out->resyncing = atomic_load(&db->resyncing);
    if (mdb_env_info(db->env, &ei) != 0 || mdb_env_stat(db->env, &es) != 0)
        return -1;
    out->expiring = sdb_expiry_count(db);
    out->map_size = ei.me_mapsize;
    out->map_used = (uint64_t)(ei.me_last_pgno + 1) * es.ms_psize;
    return 0;
}

uint64_t sdb_last_seq(sdb *db)
{
    return atomic_load(&db->last_seq);
}

uint64_t sdb_applied_seq(sdb *db)
{
    return atomic_load(&db->applied_seq);
}

uint64_t sdb_gc_seq(sdb *db)
{
    return atomic_load(&db->gc_seq);
}

uint64_t sdb_get_epoch(sdb *db)
{
    return atomic_load(&db->epoch);
}

int sdb_set_epoch(sdb *db, uint64_t epoch)
{
    return sdb_meta_write(db, SDB_META_EPOCH, epoch, &db->epoch);
}

enum sdb_role sdb_get_role(sdb *db)
{
    return (enum sdb_role)atomic_load(&db->role);
}

int sdb_set_role(sdb *db, enum sdb_role role)
{
    if (sdb_meta_write(db, SDB_META_ROLE, (uint64_t)role, NULL) != 0)
        return -1;
    atomic_store(&db->role, (int)role);
    return 0;
}

int sdb_set_applied_seq(sdb *db, uint64_t seq)
{
    return sdb_meta_write(db, SDB_META_APPLIED_SEQ, seq, &db->applied_seq);
}

uint64_t sdb_next_version(sdb *db)
{
    return hlc_next(&db->hlc);
}

