/* sdb_changes: reading the changes index of store/sdb.h in seq order, live
 * (sdb_changes_since) or through a read snapshot (sdb_snap_*). */
#include "sdb_internal.h"

#include "log.h"

#include <errno.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* What a walk writes: every key, or the ones keep accepts. */
typedef struct sdb_changes_pick {
    int (*keep)(void *arg, const char *key, size_t len);
    void *arg;
    uint64_t examined;  /* entries looked at */
} sdb_changes_pick;

/* The changes walk inside a read transaction (a one-shot one, or a
 * snapshot's). With a pick, limit counts the entries examined and a key
 * keep refuses is not even looked up. */
static int sdb_changes_txn(sdb *db, MDB_txn *txn, uint64_t since, size_t limit,
                           size_t max_bytes, sdb_changes_pick *pick,
                           wire_buf *out, uint64_t *next_since, int *more)
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

        if ((limit && (pick ? pick->examined : written) >= limit) ||
            (max_bytes && written && out->len - start_len >= max_bytes)) {
            *more = 1;
            break;
        }
        seq = sdb_ld64(ck.mv_data);
        if (pick) {
            pick->examined++;
            if (!pick->keep(pick->arg, cv.mv_data, cv.mv_size)) {
                last_written = seq;
                rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT);
                continue;
            }
        }
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
            /* The expiry travels with the record: replicas, resyncs and
             * migrations all judge it by the same time. */
            if (op.op == WIRE_PUT && rec.expires_at) {
                op.flags = WIRE_F_EXPIRES;
                op.expires_at = rec.expires_at;
            }
            /* A reaped tombstone replaces the expired record of its
             * version wherever that one still is. */
            if (rec.flags & SDB_F_REAPED)
                op.flags = WIRE_F_REAPED;
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

static int sdb_changes_live(sdb *db, uint64_t since, size_t limit,
                            size_t max_bytes, sdb_changes_pick *pick,
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
    rc = sdb_changes_txn(db, txn, since, limit, max_bytes, pick, out,
                         next_since, more);
    mdb_txn_abort(txn);
    return rc;
}

int sdb_changes_since(sdb *db, uint64_t since, size_t limit, size_t max_bytes,
                      wire_buf *out, uint64_t *next_since, int *more)
{
    return sdb_changes_live(db, since, limit, max_bytes, NULL, out,
                            next_since, more);
}

int sdb_changes_picked(sdb *db, uint64_t since, size_t limit,
                       size_t max_bytes,
                       int (*keep)(void *arg, const char *key, size_t len),
                       void *arg, wire_buf *out, uint64_t *next_since,
                       int *more, uint64_t *examined)
{
    sdb_changes_pick pick = {.keep = keep, .arg = arg};
    int rc = sdb_changes_live(db, since, limit, max_bytes, &pick, out,
                              next_since, more);

    if (examined)
        *examined = rc == 0 ? pick.examined : 0;
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
    return sdb_changes_txn(s->db, s->txn, since, limit, max_bytes, NULL, out,
                           next_since, more);
}

void sdb_snap_close(sdb_snap *s)
{
    if (s == NULL)
        return;
    mdb_txn_abort(s->txn);
    free(s);
}

