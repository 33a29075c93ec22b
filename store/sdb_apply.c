/* sdb_apply: the write path of store/sdb.h (sdb_apply_batch, sdb_apply_as,
 * sdb_replicate): last-writer-wins ops in one transaction, the changes
 * index kept with them, meta and the cache published after the commit. */
#include "sdb_internal.h"

#include "hlc.h"
#include "log.h"

#include <errno.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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
    int live;           /* the stored record is there: no tombstone, not
                           expired */
    uint64_t expires_at;/* the new record's, 0: none */
    uint64_t version, seq;
} sdb_apply_ctx;

/* 1 when version is more than the allowed skew ahead of this store's clock.
 * Versions are HLC microseconds since 2020 (lib/hlc.h): the clock is the
 * wall clock, or the HLC's last version when it ran ahead of it (a burst
 * of writes in one microsecond, a version observed from a peer within the
 * skew), so a version this store or its peers handed out always passes. */
static int sdb_apply_in_future(const sdb *db, uint64_t version)
{
    uint64_t now = db->hlc.clock();
    uint64_t phys = now > HLC_EPOCH_UNIX_US ? now - HLC_EPOCH_UNIX_US : 0;
    uint64_t last = atomic_load(&db->hlc.last);

    if (last > phys)
        phys = last;
    return version > phys && version - phys > db->max_skew_us;
}

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
        /* Conditions are the primary's to judge, on a client's write. */
        (c->m != SDB_APPLY_WRITE && (op->flags & WIRE_F_CONDITIONS)) ||
        /* A delete has no value to expire (a reap's expiry names its index
         * entry), and a reap is of a delete at a given version. */
        ((op->flags & WIRE_F_EXPIRES) &&
         ((op->op == WIRE_DEL && !(op->flags & WIRE_F_REAPED)) ||
          op->expires_at == 0)) ||
        ((op->flags & WIRE_F_REAPED) &&
         (op->op != WIRE_DEL || op->version == 0 ||
          (op->flags & WIRE_F_CONDITIONS))) ||
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
    if (op->version && sdb_apply_in_future(db, op->version)) {
        sdb_fail_op(c->res, c->info, 400, SDB_E_FUTURE_VERSION);
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
    c->live = !(c->old.flags & SDB_F_TOMBSTONE) && !sdb_record_expired(&c->old, sdb_now_ms(db));
    return 0;
}

/* The op's condition (lib/wire.h) against the live record: 1 when it holds,
 * else 0 with 412 and the live version (0: none) in res/info. */
static int sdb_apply_condition_holds(sdb_apply_ctx *c)
{
    uint8_t f = c->op->flags;
    int live = c->live;
    int ok = (f & WIRE_F_IF_MATCH)    ? live && c->old.version == c->op->if_match
             : (f & WIRE_F_IF_EXISTS) ? live
             : (f & WIRE_F_IF_ABSENT) ? !live
                                      : 1;

    if (!ok) {
        c->res->version = live ? c->old.version : 0;
        sdb_fail_op(c->res, c->info, 412, SDB_E_PRECONDITION);
    }
    return ok;
}

/* A reap (lib/wire.h WIRE_F_REAPED) replaces the stored record of its own
 * version when that one is live and expires (at the very time the
 * reaper's index entry says, when the op names one). */
static int sdb_apply_reaps(const sdb_apply_ctx *c)
{
    const wire_op *op = c->op;

    return (op->flags & WIRE_F_REAPED) && c->have_old &&
           !(c->old.flags & SDB_F_TOMBSTONE) && c->old.expires_at &&
           c->old.version == op->version &&
           (!(op->flags & WIRE_F_EXPIRES) ||
            c->old.expires_at == op->expires_at);
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

    /* A put sets the expiry it carries (none clears it); an increment
     * keeps the live record's unless it carries one; a tombstone has none. */
    c->expires_at = (op->flags & WIRE_F_EXPIRES) ? op->expires_at : 0;
    switch (op->op) {
    case WIRE_PUT:
        c->val = op->val;
        c->vlen = op->val_len;
        return 1;
    case WIRE_DEL:
        c->flags = SDB_F_TOMBSTONE |
                   ((op->flags & WIRE_F_REAPED) ? SDB_F_REAPED : 0);
        c->expires_at = 0;
        return 1;
    default:
        break;
    }
    if (!(op->flags & WIRE_F_EXPIRES) && c->live)
        c->expires_at = c->old.expires_at;
    if (c->live && sdb_parse_i64(c->old.val, c->old.val_len, &cur) != 0) {
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

/* Moves the counters and the expiry index entry from the old record to the
 * new one and drops the key's previous changes entry (one entry per key).
 * 0 or an LMDB error. */
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
    /* The expiry index follows the record (only live ones expire). */
    if (c->have_old && c->old.expires_at &&
        (rc = sdb_expiry_del(db, txn, c->old.expires_at, &c->k)) != 0)
        return rc;
    if (c->expires_at)
        return sdb_expiry_put(db, txn, c->expires_at, &c->k);
    return 0;
}

/* Writes the record in place with MDB_RESERVE: one copy of the value. 0 or
 * an LMDB error. */
static int sdb_apply_put_record(sdb *db, MDB_txn *txn, sdb_apply_ctx *c)
{
    size_t key_end = c->long_key ? SDB_LONG_HDR + c->op->key_len : SDB_HDR;
    size_t hdr = key_end + (c->expires_at ? 8 : 0);
    uint8_t f = (uint8_t)(c->flags | (c->long_key ? SDB_F_LONGKEY : 0) |
                          (c->expires_at ? SDB_F_EXPIRES : 0));
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
    if (c->expires_at)
        memcpy(p + key_end, &c->expires_at, 8);
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
    int rc, failed, reap;

    if (!sdb_apply_is_valid(db, &c))
        return 0;
    if ((rc = sdb_apply_read_old(db, txn, &c, &failed)) != 0 || failed)
        return rc;
    reap = sdb_apply_reaps(&c);
    if ((op->flags & (WIRE_F_REAPED | WIRE_F_EXPIRES)) ==
        (WIRE_F_REAPED | WIRE_F_EXPIRES)) {
        /* The reaper's own op: its index entry goes whatever the record
         * became meanwhile, and only the record it was meant for goes. */
        if ((rc = sdb_expiry_del(db, txn, op->expires_at, &c.k)) != 0)
            return rc;
        if (!reap) {
            /* 208 when something as new is stored, else nothing to reap */
            int newer = c.have_old && c.old.version >= op->version;
            res->status = newer ? 208 : 404;
            res->version = c.have_old ? c.old.version : 0;
            return 0;
        }
    }
    if (op->version)
        hlc_observe(&db->hlc, op->version);
    c.version = op->version ? op->version : hlc_next(&db->hlc);
    /* Its own version stored already: a resend of this very write, answered
     * 208 below rather than judged on the record it made. */
    if (!(c.have_old && c.old.version == c.version) &&
        !sdb_apply_condition_holds(&c))
        return 0;
    if (c.have_old && c.version <= c.old.version && !reap)
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

enum sdb_repl_rc sdb_replicate(sdb *db, const wire_op *ops, size_t n,
                               const sdb_repl_args *a, wire_result *results,
                               uint64_t *applied_seq)
{
    return (enum sdb_repl_rc)sdb_apply_common(db, ops, n, SDB_APPLY_REPLICATE, a, results, NULL,
                            applied_seq);
}

