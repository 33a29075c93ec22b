#include "sdb.h"

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

/* Record header: u64 version, u64 seq, u8 flags (host byte order: an LMDB
 * file is not portable across architectures anyway). Long-key records then
 * hold u32 key length and the key before the value. */
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
    MDB_dbi data, changes, meta;
    hlc_t hlc;
    size_t max_key, max_value;
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

static uint64_t sdb_ld64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* LMDB key of a user key: the key itself, or the surrogate of a long key.
 * buf must hold lmdb_maxkey bytes. */
static void sdb_dkey(const sdb *db, const void *key, size_t klen, char *buf,
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
static int sdb_rec_parse(const MDB_val *v, const void *key, size_t klen,
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
    out->val = p + off;
    out->val_len = v->mv_size - off;
    out->flags &= SDB_F_TOMBSTONE; /* callers see only public flags */
    return 0;
}

static int sdb_meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name,
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

static int sdb_meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name,
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
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &db->meta)) != 0)
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

int sdb_get(sdb *db, const void *key, size_t klen, sdb_record *out)
{
    struct sdb_copy c = {out, 0, 0};

    memset(out, 0, sizeof *out);
    if (sdb_get_with(db, key, klen, sdb_copy_fn, &c) != 0 || c.oom)
        return -1;
    return c.found ? 0 : 1;
}

void sdb_record_free(sdb_record *rec)
{
    if (rec == NULL)
        return;
    free((void *)rec->val);
    rec->val = NULL;
    rec->val_len = 0;
}

/* ---- writes ----------------------------------------------------------- */

/* What a batch changes in meta, applied to the cache after commit. */
struct sdb_txstate {
    uint64_t last_seq, max_version, tombstones, applied_seq, keys, unstamped;
};

static void sdb_fail_op(wire_result *res, sdb_opinfo *info, uint16_t status,
                        enum sdb_err e)
{
    res->status = status;
    if (info)
        info->err = e;
}

/* Formats v as decimal into buf (>= 21 bytes); returns the length. */
static size_t sdb_fmt_i64(int64_t v, char *buf)
{
    char tmp[24];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        buf[len++] = '-';
    while (n)
        buf[len++] = tmp[--n];
    return len;
}

/* Removes the changes entry at seq. With check, only when it is key's: a
 * replicated history should never hold another key there, but if it does
 * that key's entry must survive. */
static int sdb_changes_del(sdb *db, MDB_txn *txn, uint64_t seq,
                           const void *key, size_t klen, int check)
{
    size_t s = (size_t)seq;
    MDB_val ck = {sizeof s, &s}, cv;
    int rc;

    if (check) {
        rc = mdb_get(txn, db->changes, &ck, &cv);
        if (rc == MDB_NOTFOUND)
            return 0;
        if (rc != 0)
            return rc;
        if (cv.mv_size != klen || memcmp(cv.mv_data, key, klen) != 0)
            return 0;
    }
    rc = mdb_del(txn, db->changes, &ck, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Points changes[seq] at key. append: seq is above every entry (the
 * common case, which skips the B-tree search). */
static int sdb_changes_put(sdb *db, MDB_txn *txn, uint64_t seq, int append,
                           const void *key, size_t klen)
{
    size_t s = (size_t)seq;
    MDB_val ck = {sizeof s, &s}, cv = {klen, (void *)key}, old;

    if (!append) {
        int rc = mdb_get(txn, db->changes, &ck, &old);
        if (rc == 0 && (old.mv_size != klen || memcmp(old.mv_data, key, klen)))
            log_warn("store db: seq %llu is taken by another key: the "
                     "replicated history diverged; a full resync fixes it",
                     (unsigned long long)seq);
        else if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
    }
    return mdb_put(txn, db->changes, &ck, &cv, append ? MDB_APPEND : 0);
}

/* A replicated op carries the same version as the stored record but a newer
 * seq (the record came first by repair, or its primary renumbered it at
 * promotion): move the record to the stream's seq so this replica's changes
 * index matches its primary's. oldv is the stored value. */
static int sdb_restamp(sdb *db, MDB_txn *txn, MDB_val *k,
                       const MDB_val *oldv, uint64_t old_seq, const wire_op *op,
                       struct sdb_txstate *st)
{
    MDB_val nv;
    char *copy;
    int rc;

    /* The old value lives in the map: copy it before writing. */
    copy = malloc(oldv->mv_size);
    if (copy == NULL)
        return ENOMEM;
    memcpy(copy, oldv->mv_data, oldv->mv_size);
    memcpy(copy + 8, &op->seq, 8);
    nv.mv_size = oldv->mv_size;
    nv.mv_data = copy;
    if (old_seq)
        rc = sdb_changes_del(db, txn, old_seq, op->key, op->key_len, 1);
    else {
        st->unstamped--;
        rc = 0;
    }
    if (rc == 0)
        rc = mdb_put(txn, db->data, k, &nv, 0);
    free(copy);
    if (rc == 0)
        rc = sdb_changes_put(db, txn, op->seq, op->seq > st->last_seq,
                             op->key, op->key_len);
    if (rc == 0 && op->seq > st->last_seq)
        st->last_seq = op->seq;
    return rc;
}

/* One op on its way through sdb_apply_one. */
typedef struct sdb_apply_ctx {
    const wire_op *op;
    enum sdb_apply_mode m;
    wire_result *res;
    sdb_opinfo *info;
    char kbuf[512];
    MDB_val k;          /* the data key (a surrogate for a long key) */
    int long_key;
    int have_old;       /* old and oldv hold the stored record */
    sdb_record old;
    MDB_val oldv;
    const char *val;    /* the value to store */
    size_t vlen;
    char num[24];       /* an INCR's result text */
    uint8_t flags;      /* SDB_F_TOMBSTONE */
    uint64_t version, seq;
} sdb_apply_ctx;

/* Checks the op alone; 1 when it may be applied, else 0 with its failure
 * in res/info. */
static int sdb_apply_is_valid(const sdb *db, sdb_apply_ctx *c)
{
    const wire_op *op = c->op;

    if (op->key_len == 0 || (op->key == NULL) ||
        memchr(op->key, '\0', op->key_len) != NULL ||
        (op->op != WIRE_PUT && op->op != WIRE_DEL && op->op != WIRE_INCR) ||
        (op->op == WIRE_INCR && op->val_len != 8) ||
        /* A stream or a repair carries results, never increments, and a
         * stream op always has its version and seq. */
        (c->m != SDB_APPLY_WRITE && op->op == WIRE_INCR) ||
        (c->m == SDB_APPLY_REPLICATE && (op->version == 0 || op->seq == 0))) {
        sdb_fail_op(c->res, c->info, 400, SDB_E_BAD_OP);
        return 0;
    }
    if (op->key_len > db->max_key) {
        sdb_fail_op(c->res, c->info, 414, SDB_E_KEY_SIZE);
        return 0;
    }
    if (op->op == WIRE_PUT && op->val_len > db->max_value) {
        sdb_fail_op(c->res, c->info, 413, SDB_E_VALUE_SIZE);
        return 0;
    }
    if (op->version > HLC_MAX) {
        sdb_fail_op(c->res, c->info, 400, SDB_E_BAD_VERSION);
        return 0;
    }
    return 1;
}

/* Reads the stored record, if any, into c. 0 (*failed = 1 when the op
 * failed on its record) or an LMDB error. */
static int sdb_apply_read_old(sdb *db, MDB_txn *txn, sdb_apply_ctx *c,
                              int *failed)
{
    MDB_val v;
    int rc, p;

    *failed = 0;
    sdb_dkey(db, c->op->key, c->op->key_len, c->kbuf, &c->k);
    c->long_key = c->op->key_len > db->lmdb_maxkey;
    rc = mdb_get(txn, db->data, &c->k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    p = sdb_rec_parse(&v, c->op->key, c->op->key_len, &c->old);
    if (p != 0) {
        /* Corrupt record or an XXH3-128 collision between two long keys:
         * refuse rather than overwrite another key's record. */
        log_error("store db: cannot apply to a key whose record is %s",
                  p < 0 ? "corrupt" : "taken by a colliding long key");
        sdb_fail_op(c->res, c->info, 500, SDB_E_INTERNAL);
        *failed = 1;
        return 0;
    }
    c->have_old = 1;
    c->oldv = v;
    return 0;
}

/* Last writer wins: a version not above the stored one is a no-op (208), so
 * retries and reordered replays are harmless; a stream op of the same
 * version and a newer seq re-stamps the record. 0 or an LMDB error. */
static int sdb_apply_not_newer(sdb *db, MDB_txn *txn, sdb_apply_ctx *c,
                               struct sdb_txstate *st)
{
    const sdb_record *old = &c->old;

    c->res->status = 208;
    c->res->version = old->version;
    if (c->op->op == WIRE_INCR && !(old->flags & SDB_F_TOMBSTONE))
        (void)sdb_parse_i64(old->val, old->val_len, &c->res->number);
    if (c->m == SDB_APPLY_REPLICATE && c->version == old->version &&
        (old->seq == 0 || c->op->seq > old->seq))
        return sdb_restamp(db, txn, &c->k, &c->oldv, old->seq, c->op, st);
    return 0;
}

/* The value to store (c->val, c->vlen, c->flags); an INCR adds to the
 * stored integer. 1 when there is one, else 0 with the INCR's failure in
 * res/info. */
static int sdb_apply_has_value(sdb_apply_ctx *c)
{
    const wire_op *op = c->op;
    int64_t cur = 0, sum;

    switch (op->op) {
    case WIRE_PUT:
        c->val = op->val;
        c->vlen = op->val_len;
        return 1;
    case WIRE_DEL:
        c->flags = SDB_F_TOMBSTONE;
        return 1;
    default:
        break;
    }
    if (c->have_old && !(c->old.flags & SDB_F_TOMBSTONE) &&
        sdb_parse_i64(c->old.val, c->old.val_len, &cur) != 0) {
        c->res->version = c->old.version;
        sdb_fail_op(c->res, c->info, 409, SDB_E_NOT_INTEGER);
        return 0;
    }
    if (__builtin_add_overflow(cur, wire_decode_delta(op->val), &sum)) {
        c->res->version = c->have_old ? c->old.version : 0;
        c->res->number = cur;
        sdb_fail_op(c->res, c->info, 409, SDB_E_OVERFLOW);
        return 0;
    }
    c->vlen = sdb_fmt_i64(sum, c->num);
    c->val = c->num;
    c->res->number = sum;
    return 1;
}

/* The seq the op gets in mode m. */
static uint64_t sdb_apply_seq(const sdb_apply_ctx *c,
                              const struct sdb_txstate *st)
{
    switch (c->m) {
    case SDB_APPLY_REPLICATE:
        return c->op->seq;
    case SDB_APPLY_REPAIR:
        /* A repair on a secondary has no seq of its primary's: the record
         * waits unstamped (outside changes) until the stream brings it. */
        return 0;
    default:
        return st->last_seq + 1;
    }
}

/* Moves the counters from the old record to the new one and drops the
 * key's previous changes entry (one entry per key). 0 or an LMDB error. */
static int sdb_apply_count(sdb *db, MDB_txn *txn, const sdb_apply_ctx *c,
                           struct sdb_txstate *st)
{
    int rc;

    if (c->have_old) {
        if (c->old.seq) {
            rc = sdb_changes_del(db, txn, c->old.seq, c->op->key,
                                 c->op->key_len, c->m != SDB_APPLY_WRITE);
            if (rc != 0)
                return rc;
        } else {
            st->unstamped--;
        }
        if (c->old.flags & SDB_F_TOMBSTONE)
            st->tombstones--;
        else
            st->keys--;
    }
    if (c->flags & SDB_F_TOMBSTONE)
        st->tombstones++;
    else
        st->keys++;
    if (c->seq == 0)
        st->unstamped++;
    return 0;
}

/* Writes the record in place with MDB_RESERVE: one copy of the value. 0 or
 * an LMDB error. */
static int sdb_apply_put_record(sdb *db, MDB_txn *txn, sdb_apply_ctx *c)
{
    size_t hdr = c->long_key ? SDB_LONG_HDR + c->op->key_len : SDB_HDR;
    uint8_t f = (uint8_t)(c->flags | (c->long_key ? SDB_F_LONGKEY : 0));
    MDB_val v = {hdr + c->vlen, NULL};
    char *p;
    int rc;

    if ((rc = mdb_put(txn, db->data, &c->k, &v, MDB_RESERVE)) != 0)
        return rc;
    p = v.mv_data;
    memcpy(p, &c->version, 8);
    memcpy(p + 8, &c->seq, 8);
    p[16] = (char)f;
    if (c->long_key) {
        uint32_t kl = (uint32_t)c->op->key_len;
        memcpy(p + SDB_HDR, &kl, 4);
        memcpy(p + SDB_LONG_HDR, c->op->key, c->op->key_len);
    }
    if (c->vlen)
        memcpy(p + hdr, c->val, c->vlen);
    return 0;
}

/* Applies one op inside txn in mode m (never SDB_APPLY_AUTO; REPAIR is
 * resolved by the caller to WRITE on a primary). Returns 0 (the op's
 * outcome is in res/info, including per-op failures) or an error that
 * dooms the transaction. */
static int sdb_apply_one(sdb *db, MDB_txn *txn, const wire_op *op,
                         enum sdb_apply_mode m, struct sdb_txstate *st,
                         wire_result *res, sdb_opinfo *info)
{
    sdb_apply_ctx c = {.op = op, .m = m, .res = res, .info = info};
    int rc, failed;

    if (!sdb_apply_is_valid(db, &c))
        return 0;
    if ((rc = sdb_apply_read_old(db, txn, &c, &failed)) != 0 || failed)
        return rc;
    if (op->version)
        hlc_observe(&db->hlc, op->version);
    c.version = op->version ? op->version : hlc_next(&db->hlc);
    if (c.have_old && c.version <= c.old.version)
        return sdb_apply_not_newer(db, txn, &c, st);
    if (!sdb_apply_has_value(&c))
        return 0;
    c.seq = sdb_apply_seq(&c, st);
    if ((rc = sdb_apply_count(db, txn, &c, st)) != 0 ||
        (rc = sdb_apply_put_record(db, txn, &c)) != 0)
        return rc;
    if (c.seq) {
        /* Our own seqs only grow, so they append; a stream's seq usually
         * does too (it arrives in order). */
        int append = c.seq > st->last_seq;
        if ((rc = sdb_changes_put(db, txn, c.seq, append, op->key,
                                  op->key_len)) != 0)
            return rc;
        if (append)
            st->last_seq = c.seq;
    }
    if (c.version > st->max_version)
        st->max_version = c.version;
    res->status = 200;
    res->version = c.version;
    if (info)
        info->seq = c.seq;
    return 0;
}

/* Every write goes through here: one transaction, meta in the same commit,
 * the cache published under wmu. ra (optional) makes it a replicated batch:
 * checked against epoch, resync state and position first (returns
 * SDB_REPL_*, nothing applied), then applied_seq moves to ra->upto. */
static int sdb_apply_common(sdb *db, const wire_op *ops, size_t n,
                            enum sdb_apply_mode mode, const sdb_repl_args *ra,
                            wire_result *results, sdb_opinfo *info,
                            uint64_t *applied_out)
{
    struct sdb_txstate st, st0;
    MDB_txn *txn = NULL;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        if (info)
            memset(&info[i], 0, sizeof info[i]);
    }
    if (n == 0 && ra == NULL)
        return 0;

    pthread_mutex_lock(&db->wmu);
    st.last_seq = atomic_load(&db->last_seq);
    st.max_version = atomic_load(&db->max_version);
    st.tombstones = atomic_load(&db->tombstones);
    st.applied_seq = atomic_load(&db->applied_seq);
    st.keys = atomic_load(&db->keys);
    st.unstamped = atomic_load(&db->unstamped);
    st0 = st;

    if (ra) {
        int refuse = 0;
        if (ra->epoch && ra->epoch != atomic_load(&db->epoch))
            refuse = SDB_REPL_EPOCH;
        else if (atomic_load(&db->resyncing) && !ra->resync)
            refuse = SDB_REPL_RESYNC;
        else if (ra->since > st.applied_seq)
            refuse = SDB_REPL_GAP;
        if (refuse || (n == 0 && ra->upto <= st.applied_seq)) {
            if (applied_out)
                *applied_out = st.applied_seq;
            pthread_mutex_unlock(&db->wmu);
            return refuse;
        }
    }
    /* A repair is an ordinary write on a primary. */
    if (mode == SDB_APPLY_REPAIR &&
        atomic_load(&db->role) == SDB_ROLE_PRIMARY)
        mode = SDB_APPLY_WRITE;

    rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        enum sdb_apply_mode m = mode;
        if (m == SDB_APPLY_AUTO)
            m = ops[i].seq ? SDB_APPLY_REPLICATE : SDB_APPLY_WRITE;
        rc = sdb_apply_one(db, txn, &ops[i], m, &st, &results[i],
                           info ? &info[i] : NULL);
        /* The upstream position moves past every op we were sent, applied
         * or not: a 208 means we already hold something as new. */
        if (rc == 0 && m == SDB_APPLY_REPLICATE && ops[i].seq > st.applied_seq)
            st.applied_seq = ops[i].seq;
    }
    if (rc == 0 && ra && ra->upto > st.applied_seq)
        st.applied_seq = ra->upto;
    /* Meta changes ride in the same transaction as the data. */
    if (rc == 0 && st.last_seq != st0.last_seq)
        rc = sdb_meta_put(txn, db->meta, SDB_META_LAST_SEQ, st.last_seq);
    if (rc == 0 && st.max_version != st0.max_version)
        rc = sdb_meta_put(txn, db->meta, SDB_META_MAX_VERSION, st.max_version);
    if (rc == 0 && st.tombstones != st0.tombstones)
        rc = sdb_meta_put(txn, db->meta, SDB_META_TOMBSTONES, st.tombstones);
    if (rc == 0 && st.keys != st0.keys)
        rc = sdb_meta_put(txn, db->meta, SDB_META_KEYS, st.keys);
    if (rc == 0 && st.applied_seq != st0.applied_seq)
        rc = sdb_meta_put(txn, db->meta, SDB_META_APPLIED_SEQ, st.applied_seq);
    if (rc == 0 && st.unstamped != st0.unstamped)
        rc = sdb_meta_put(txn, db->meta, SDB_META_UNSTAMPED, st.unstamped);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    if (rc == 0) {
        atomic_store(&db->last_seq, st.last_seq);
        atomic_store(&db->max_version, st.max_version);
        atomic_store(&db->tombstones, st.tombstones);
        atomic_store(&db->keys, st.keys);
        atomic_store(&db->applied_seq, st.applied_seq);
        atomic_store(&db->unstamped, st.unstamped);
    }
    if (applied_out)
        *applied_out = atomic_load(&db->applied_seq);
    pthread_mutex_unlock(&db->wmu);

    if (rc != 0) {
        int full = rc == MDB_MAP_FULL;
        log_error("store db: batch of %zu ops failed: %s", n,
                  rc == ENOMEM ? "out of memory" : mdb_strerror(rc));
        for (size_t i = 0; i < n; i++) {
            memset(&results[i], 0, sizeof results[i]);
            results[i].status = full ? 507 : 500;
            if (info) {
                info[i].seq = 0;
                info[i].err = full ? SDB_E_FULL : SDB_E_INTERNAL;
            }
        }
        return -1;
    }
    return 0;
}

int sdb_apply_batch(sdb *db, const wire_op *ops, size_t n, wire_result *results,
                    sdb_opinfo *info)
{
    return sdb_apply_common(db, ops, n, SDB_APPLY_AUTO, NULL, results, info,
                            NULL);
}

int sdb_apply_as(sdb *db, enum sdb_apply_mode mode, const wire_op *ops,
                 size_t n, wire_result *results, sdb_opinfo *info)
{
    return sdb_apply_common(db, ops, n, mode, NULL, results, info, NULL);
}

int sdb_replicate(sdb *db, const wire_op *ops, size_t n,
                  const sdb_repl_args *a, wire_result *results,
                  uint64_t *applied_seq)
{
    return sdb_apply_common(db, ops, n, SDB_APPLY_REPLICATE, a, results, NULL,
                            applied_seq);
}

/* ---- changes ---------------------------------------------------------- */

/* The changes walk inside a read transaction (a one-shot one, or a
 * snapshot's). */
static int sdb_changes_txn(sdb *db, MDB_txn *txn, uint64_t since, size_t limit,
                           size_t max_bytes, wire_buf *out,
                           uint64_t *next_since, int *more)
{
    char kbuf[512];
    MDB_cursor *cur = NULL;
    MDB_val ck, cv, k, v;
    uint64_t snap_last;
    uint64_t last_written = 0;
    size_t written = 0, start_len = out->len;
    size_t s;
    int rc;

    *more = 0;
    *next_since = since;
    /* last_seq of this snapshot, not of the cache: a commit after the
     * snapshot must not be skipped by the caller's next position. */
    if ((rc = sdb_meta_get(txn, db->meta, SDB_META_LAST_SEQ, &snap_last)) != 0)
        goto fail;
    if (since >= snap_last) {
        *next_since = snap_last > since ? snap_last : since;
        return 0;
    }
    if ((rc = mdb_cursor_open(txn, db->changes, &cur)) != 0)
        goto fail;
    s = (size_t)since + 1;
    ck.mv_size = sizeof s;
    ck.mv_data = &s;
    rc = mdb_cursor_get(cur, &ck, &cv, MDB_SET_RANGE);
    while (rc == 0) {
        sdb_record rec;
        wire_op op;
        uint64_t seq;

        if ((limit && written >= limit) ||
            (max_bytes && written && out->len - start_len >= max_bytes)) {
            *more = 1;
            break;
        }
        seq = sdb_ld64(ck.mv_data);
        sdb_dkey(db, cv.mv_data, cv.mv_size, kbuf, &k);
        rc = mdb_get(txn, db->data, &k, &v);
        if (rc != 0 || sdb_rec_parse(&v, cv.mv_data, cv.mv_size, &rec) != 0 ||
            rec.seq != seq) {
            /* changes and data are written in one transaction, so this is
             * corruption (or a diverged replica); say so and skip the entry
             * rather than stall every replica behind it. */
            log_error("store db: changes entry %llu has no record",
                      (unsigned long long)seq);
        } else {
            memset(&op, 0, sizeof op);
            op.op = (rec.flags & SDB_F_TOMBSTONE) ? WIRE_DEL : WIRE_PUT;
            op.version = rec.version;
            op.seq = seq;
            op.key = cv.mv_data;
            op.key_len = cv.mv_size;
            op.val = op.op == WIRE_PUT ? rec.val : NULL;
            op.val_len = op.op == WIRE_PUT ? rec.val_len : 0;
            if (wire_put_op(out, &op) != 0) {
                rc = ENOMEM;
                goto fail;
            }
            written++;
        }
        last_written = seq;
        rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto fail;
    mdb_cursor_close(cur);
    *next_since = *more ? last_written : snap_last;
    return 0;
fail:
    log_error("store db: changes since %llu: %s", (unsigned long long)since,
              rc == ENOMEM ? "out of memory" : mdb_strerror(rc));
    if (cur)
        mdb_cursor_close(cur);
    out->len = start_len;
    return -1;
}

int sdb_changes_since(sdb *db, uint64_t since, size_t limit, size_t max_bytes,
                      wire_buf *out, uint64_t *next_since, int *more)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);

    *more = 0;
    *next_since = since;
    if (rc != 0) {
        log_error("store db: changes: read txn: %s", mdb_strerror(rc));
        return -1;
    }
    rc = sdb_changes_txn(db, txn, since, limit, max_bytes, out, next_since,
                         more);
    mdb_txn_abort(txn);
    return rc;
}

struct sdb_snap {
    sdb *db;
    MDB_txn *txn;
};

sdb_snap *sdb_snap_open(sdb *db)
{
    sdb_snap *s = calloc(1, sizeof *s);
    int rc;

    if (s == NULL)
        return NULL;
    s->db = db;
    rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &s->txn);
    if (rc != 0) {
        log_error("store db: snapshot: %s", mdb_strerror(rc));
        free(s);
        return NULL;
    }
    return s;
}

int sdb_snap_changes(sdb_snap *s, uint64_t since, size_t limit,
                     size_t max_bytes, wire_buf *out, uint64_t *next_since,
                     int *more)
{
    return sdb_changes_txn(s->db, s->txn, since, limit, max_bytes, out,
                           next_since, more);
}

void sdb_snap_close(sdb_snap *s)
{
    if (s == NULL)
        return;
    mdb_txn_abort(s->txn);
    free(s);
}

int sdb_collect_tombstones(sdb *db, uint64_t upto_seq, uint64_t *collected)
{
    char kbuf[512];
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val ck, cv, k, v;
    uint64_t n = 0, tomb, gc;
    size_t start;
    int rc;

    if (collected)
        *collected = 0;
    pthread_mutex_lock(&db->wmu);
    tomb = atomic_load(&db->tombstones);
    gc = atomic_load(&db->gc_seq);
    if (upto_seq <= gc) {
        /* Everything up to gc_seq was collected before: a tombstone written
         * since has a newer seq. */
        pthread_mutex_unlock(&db->wmu);
        return 0;
    }
    rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc != 0)
        goto out;
    if ((rc = mdb_cursor_open(txn, db->changes, &cur)) != 0)
        goto abort;
    start = (size_t)gc + 1;
    ck.mv_size = sizeof start;
    ck.mv_data = &start;
    rc = tomb ? mdb_cursor_get(cur, &ck, &cv, MDB_SET_RANGE) : MDB_NOTFOUND;
    while (rc == 0 && sdb_ld64(ck.mv_data) <= upto_seq) {
        sdb_record rec;
        sdb_dkey(db, cv.mv_data, cv.mv_size, kbuf, &k);
        rc = mdb_get(txn, db->data, &k, &v);
        if (rc == 0 && sdb_rec_parse(&v, cv.mv_data, cv.mv_size, &rec) == 0 &&
            (rec.flags & SDB_F_TOMBSTONE) && rec.seq == sdb_ld64(ck.mv_data)) {
            if ((rc = mdb_del(txn, db->data, &k, NULL)) != 0 ||
                (rc = mdb_cursor_del(cur, 0)) != 0)
                goto abort;
            n++;
            tomb--;
            /* MDB_NEXT after a delete yields the entry that followed it. */
            rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT);
            continue;
        }
        if (rc != 0 && rc != MDB_NOTFOUND)
            goto abort;
        rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto abort;
    mdb_cursor_close(cur);
    cur = NULL;
    rc = n ? sdb_meta_put(txn, db->meta, SDB_META_TOMBSTONES, tomb) : 0;
    if (rc == 0)
        rc = sdb_meta_put(txn, db->meta, SDB_META_GC_SEQ, upto_seq);
    if (rc != 0)
        goto abort;
    rc = mdb_txn_commit(txn);
    if (rc == 0) {
        atomic_store(&db->tombstones, tomb);
        atomic_store(&db->gc_seq, upto_seq);
    }
    goto out;
abort:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
out:
    pthread_mutex_unlock(&db->wmu);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        log_error("store db: tombstone collection: %s", mdb_strerror(rc));
        return -1;
    }
    if (collected)
        *collected = n;
    return 0;
}

/* ---- replica life cycle ------------------------------------------------ */

int sdb_wipe(sdb *db, uint64_t epoch)
{
    MDB_txn *txn;
    int rc;

    pthread_mutex_lock(&db->wmu);
    if (atomic_load(&db->role) == SDB_ROLE_PRIMARY ||
        epoch < atomic_load(&db->epoch)) {
        /* Promoted meanwhile, or the epoch moved on: not ours to wipe. */
        pthread_mutex_unlock(&db->wmu);
        log_warn("store db: wipe for epoch %llu refused (role %s, epoch %llu)",
                 (unsigned long long)epoch,
                 sdb_role_name((enum sdb_role)atomic_load(&db->role)),
                 (unsigned long long)atomic_load(&db->epoch));
        return -1;
    }
    rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc == 0) {
        if ((rc = mdb_drop(txn, db->data, 0)) == 0 &&
            (rc = mdb_drop(txn, db->changes, 0)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_LAST_SEQ, 0)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_APPLIED_SEQ, 0)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_KEYS, 0)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_TOMBSTONES, 0)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_UNSTAMPED, 0)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_GC_SEQ, 0)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_RESYNCING, 1)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_EPOCH, epoch)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_ROLE,
                               SDB_ROLE_SECONDARY)) == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0) {
        atomic_store(&db->last_seq, 0);
        atomic_store(&db->applied_seq, 0);
        atomic_store(&db->keys, 0);
        atomic_store(&db->tombstones, 0);
        atomic_store(&db->unstamped, 0);
        atomic_store(&db->gc_seq, 0);
        atomic_store(&db->resyncing, 1);
        atomic_store(&db->epoch, epoch);
        atomic_store(&db->role, SDB_ROLE_SECONDARY);
    }
    pthread_mutex_unlock(&db->wmu);
    if (rc != 0) {
        log_error("store db: wipe: %s", mdb_strerror(rc));
        return -1;
    }
    return 0;
}

int sdb_resync_done(sdb *db, uint64_t upto)
{
    MDB_txn *txn;
    uint64_t applied;
    int rc;

    pthread_mutex_lock(&db->wmu);
    applied = atomic_load(&db->applied_seq);
    if (upto > applied)
        applied = upto;
    rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc == 0) {
        if ((rc = sdb_meta_put(txn, db->meta, SDB_META_RESYNCING, 0)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_APPLIED_SEQ,
                               applied)) == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0) {
        atomic_store(&db->applied_seq, applied);
        atomic_store(&db->resyncing, 0);
    }
    pthread_mutex_unlock(&db->wmu);
    if (rc != 0) {
        log_error("store db: resync done: %s", mdb_strerror(rc));
        return -1;
    }
    return 0;
}

int sdb_resyncing(sdb *db)
{
    return atomic_load(&db->resyncing);
}

int sdb_promote(sdb *db, uint64_t epoch, uint64_t *stamped)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint64_t last, n = 0;
    uint64_t unstamped;
    int rc;

    if (stamped)
        *stamped = 0;
    pthread_mutex_lock(&db->wmu);
    last = atomic_load(&db->last_seq);
    if (atomic_load(&db->applied_seq) > last)
        last = atomic_load(&db->applied_seq);
    unstamped = atomic_load(&db->unstamped);
    rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc != 0)
        goto out;
    if (unstamped) {
        /* Records that came by repair and never by the stream: give them
         * seqs of ours so they are streamed to our secondaries. */
        if ((rc = mdb_cursor_open(txn, db->data, &cur)) != 0)
            goto abort;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == 0) {
            sdb_record rec;
            char kcopy[512];
            const void *key = kcopy;
            size_t klen = k.mv_size;
            /* k points into the page the put below rewrites. */
            memcpy(kcopy, k.mv_data, k.mv_size);
            k.mv_data = kcopy;
            if (v.mv_size >= SDB_HDR && sdb_ld64((char *)v.mv_data + 8) == 0 &&
                sdb_rec_parse(&v, NULL, 0, &rec) == 0) {
                char *copy = malloc(v.mv_size);
                uint64_t seq = ++last;
                size_t s = (size_t)seq;
                MDB_val nv = {v.mv_size, copy}, ck = {sizeof s, &s}, cv;
                if (copy == NULL) {
                    rc = ENOMEM;
                    goto abort;
                }
                memcpy(copy, v.mv_data, v.mv_size);
                memcpy(copy + 8, &seq, 8);
                if (((uint8_t)copy[16]) & SDB_F_LONGKEY) {
                    uint32_t kl;
                    memcpy(&kl, copy + SDB_HDR, 4);
                    key = copy + SDB_LONG_HDR;
                    klen = kl;
                }
                cv.mv_size = klen;
                cv.mv_data = (void *)key;
                rc = mdb_put(txn, db->changes, &ck, &cv, MDB_APPEND);
                if (rc == 0)
                    rc = mdb_cursor_put(cur, &k, &nv, MDB_CURRENT);
                free(copy);
                if (rc != 0)
                    goto abort;
                n++;
            }
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (rc != MDB_NOTFOUND)
            goto abort;
        mdb_cursor_close(cur);
        cur = NULL;
    }
    if ((rc = sdb_meta_put(txn, db->meta, SDB_META_LAST_SEQ, last)) != 0 ||
        (rc = sdb_meta_put(txn, db->meta, SDB_META_UNSTAMPED, 0)) != 0 ||
        (rc = sdb_meta_put(txn, db->meta, SDB_META_RESYNCING, 0)) != 0 ||
        (rc = sdb_meta_put(txn, db->meta, SDB_META_EPOCH, epoch)) != 0 ||
        (rc = sdb_meta_put(txn, db->meta, SDB_META_ROLE, SDB_ROLE_PRIMARY)) !=
            0)
        goto abort;
    rc = mdb_txn_commit(txn);
    if (rc == 0) {
        atomic_store(&db->last_seq, last);
        atomic_store(&db->unstamped, 0);
        atomic_store(&db->resyncing, 0);
        atomic_store(&db->epoch, epoch);
        atomic_store(&db->role, SDB_ROLE_PRIMARY);
        if (stamped)
            *stamped = n;
    }
    goto out;
abort:
    if (cur)
        mdb_cursor_close(cur);
    mdb_txn_abort(txn);
out:
    pthread_mutex_unlock(&db->wmu);
    if (rc != 0) {
        log_error("store db: promote: %s",
                  rc == ENOMEM ? "out of memory" : mdb_strerror(rc));
        return -1;
    }
    return 0;
}

int sdb_follow(sdb *db, uint64_t epoch, uint64_t applied_seq)
{
    MDB_txn *txn;
    int rc;

    pthread_mutex_lock(&db->wmu);
    rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc == 0) {
        if ((rc = sdb_meta_put(txn, db->meta, SDB_META_EPOCH, epoch)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_ROLE,
                               SDB_ROLE_SECONDARY)) == 0 &&
            (rc = sdb_meta_put(txn, db->meta, SDB_META_APPLIED_SEQ,
                               applied_seq)) == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0) {
        atomic_store(&db->epoch, epoch);
        atomic_store(&db->role, SDB_ROLE_SECONDARY);
        atomic_store(&db->applied_seq, applied_seq);
    }
    pthread_mutex_unlock(&db->wmu);
    if (rc != 0) {
        log_error("store db: follow: %s", mdb_strerror(rc));
        return -1;
    }
    return 0;
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
