/* sdb_purge: dropping records this store no longer owns after a shard
 * migration (store/sdb.h sdb_purge), without tombstones: the owner has the
 * key with its newest version, and a key that moves back later comes with
 * it again. */
#include "sdb_internal.h"

#include "log.h"

#include <lmdb.h>
#include <stdatomic.h>
#include <string.h>

/* The changes entry at seq, when it is key's. */
static int sdb_purge_changes_del(sdb *db, MDB_txn *txn, uint64_t seq,
                                 const char *key, size_t len)
{
    size_t s = (size_t)seq;
    MDB_val ck = {sizeof s, &s}, cv;
    int rc = mdb_get(txn, db->changes, &ck, &cv);

    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (cv.mv_size != len || memcmp(cv.mv_data, key, len) != 0)
        return 0;
    return mdb_del(txn, db->changes, &ck, NULL);
}

typedef struct sdb_purge_state {
    uint64_t keys, tombstones, unstamped, n;
} sdb_purge_state;

/* One batch from *resume (the data key to start at or after, empty: the
 * first): examines up to batch records inside txn. 0 (with *end = 1 when
 * the data ran out) or an LMDB error. */
static int sdb_purge_batch(sdb *db, MDB_txn *txn, const sdb_purge_fns *f,
                           void *ctx, size_t batch, char *resume,
                           size_t *resume_len, sdb_purge_state *st, int *end)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t seen = 0;
    int rc;

    *end = 0;
    if ((rc = mdb_cursor_open(txn, db->data, &cur)) != 0)
        return rc;
    if (*resume_len) {
        k.mv_size = *resume_len;
        k.mv_data = resume;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        /* The last key of the previous batch, if it is still there. */
        if (rc == 0 && k.mv_size == *resume_len &&
            memcmp(k.mv_data, resume, *resume_len) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    while (rc == 0 && seen < batch) {
        const char *key;
        size_t len;
        const char *p = v.mv_data;

        seen++;
        memcpy(resume, k.mv_data, k.mv_size);
        *resume_len = k.mv_size;
        if (sdb_rec_key(&k, &v, &key, &len) != 0) {
            log_error("store db: purge: corrupt record skipped");
        } else if (!f->owned(ctx, key, len)) {
            sdb_record rec;
            uint64_t seq = sdb_ld64(p + 8);
            int tomb = ((uint8_t)p[16] & SDB_F_TOMBSTONE) != 0;
            if (seq && (rc = sdb_purge_changes_del(db, txn, seq, key, len)) != 0)
                break;
            if (sdb_rec_parse(&v, NULL, 0, &rec) == 0 && rec.expires_at &&
                (rc = sdb_expiry_del(db, txn, rec.expires_at, &k)) != 0)
                break;
            if (seq == 0)
                st->unstamped--;
            if (tomb)
                st->tombstones--;
            else
                st->keys--;
            st->n++;
            /* MDB_NEXT after a delete yields the entry that followed it. */
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        *end = 1;
        rc = 0;
    }
    return rc;
}

int sdb_purge(sdb *db, const sdb_purge_fns *f, size_t batch, uint64_t *purged,
              int *done)
{
    char resume[512];
    size_t resume_len = 0;
    uint64_t total = 0;
    int rc = 0, end = 0;

    if (batch == 0)
        batch = 2000;
    *done = 0;
    while (!end) {
        sdb_purge_state st, st0;
        MDB_txn *txn = NULL;
        void *ctx;

        pthread_mutex_lock(&db->wmu);
        if ((ctx = f->begin(f->arg)) == NULL) {
            pthread_mutex_unlock(&db->wmu);
            break;
        }
        st.keys = atomic_load(&db->keys);
        st.tombstones = atomic_load(&db->tombstones);
        st.unstamped = atomic_load(&db->unstamped);
        st.n = 0;
        st0 = st;
        rc = mdb_txn_begin(db->env, NULL, 0, &txn);
        if (rc == 0)
            rc = sdb_purge_batch(db, txn, f, ctx, batch, resume, &resume_len,
                                 &st, &end);
        if (rc == 0 && st.n == 0) {
            mdb_txn_abort(txn); /* nothing to commit: no sync either */
            txn = NULL;
        }
        if (rc == 0 && txn && st.keys != st0.keys)
            rc = sdb_meta_put(txn, db->meta, SDB_META_KEYS, st.keys);
        if (rc == 0 && txn && st.tombstones != st0.tombstones)
            rc = sdb_meta_put(txn, db->meta, SDB_META_TOMBSTONES, st.tombstones);
        if (rc == 0 && txn && st.unstamped != st0.unstamped)
            rc = sdb_meta_put(txn, db->meta, SDB_META_UNSTAMPED, st.unstamped);
        if (rc == 0 && txn) {
            rc = mdb_txn_commit(txn);
            txn = NULL;
            if (rc == 0) {
                atomic_store(&db->keys, st.keys);
                atomic_store(&db->tombstones, st.tombstones);
                atomic_store(&db->unstamped, st.unstamped);
                total += st.n;
            }
        }
        if (txn)
            mdb_txn_abort(txn);
        pthread_mutex_unlock(&db->wmu);
        if (f->end)
            f->end(ctx);
        if (rc != 0) {
            log_error("store db: purge: %s", mdb_strerror(rc));
            break;
        }
    }
    if (purged)
        *purged = total;
    *done = rc == 0 && end;
    return rc == 0 ? 0 : -1;
}
