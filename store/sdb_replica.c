/* sdb_replica: the replica life cycle of store/sdb.h (sdb_wipe,
 * sdb_resync_done, sdb_promote, sdb_follow), each one transaction. */
#include "sdb_internal.h"

#include "log.h"

#include <errno.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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
            (rc = mdb_drop(txn, db->expiry, 0)) == 0 &&
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

