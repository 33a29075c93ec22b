/* sdb_gc: tombstone collection of store/sdb.h (sdb_collect_tombstones). */
#include "sdb_internal.h"

#include "log.h"

#include <errno.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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

