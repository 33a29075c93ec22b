/* sdb_reap: the expiry index (store/sdb_internal.h) and the reaper's pass
 * (store/sdb.h sdb_reap).
 *
 * The pass reads the due entries in a read transaction and writes their
 * tombstones as one ordinary batch (sdb_apply_as), so a reap is a write
 * like any other: it gets a seq, moves the counters, replicates through the
 * changes feed and is collected like a delete. A client write that lands
 * between the two transactions has a newer version and wins (208 for the
 * reap). Each reap op names its index entry (WIRE_F_EXPIRES), which the
 * write drops whatever it finds, so a stale entry cannot stall the pass. */
#include "sdb_internal.h"

#include "log.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#define SDB_REAP_MAX 1000

int sdb_expiry_put(sdb *db, MDB_txn *txn, uint64_t at, const MDB_val *dkey)
{
    size_t k = (size_t)at;
    MDB_val kv = {sizeof k, &k}, dv = *dkey;
    int rc = mdb_put(txn, db->expiry, &kv, &dv, MDB_NODUPDATA);

    return rc == MDB_KEYEXIST ? 0 : rc;
}

int sdb_expiry_del(sdb *db, MDB_txn *txn, uint64_t at, const MDB_val *dkey)
{
    size_t k = (size_t)at;
    MDB_val kv = {sizeof k, &k}, dv = *dkey;
    int rc = mdb_del(txn, db->expiry, &kv, &dv);

    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Indexes every live record carrying an expiry: a store written before the
 * index existed. *n gets how many. */
static int sdb_expiry_build(sdb *db, MDB_txn *txn, uint64_t *n)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    *n = 0;
    if ((rc = mdb_cursor_open(txn, db->data, &cur)) != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        sdb_record rec;
        if (sdb_rec_parse(&v, NULL, 0, &rec) != 0 || rec.expires_at == 0)
            continue;
        if ((rc = sdb_expiry_put(db, txn, rec.expires_at, &k)) != 0)
            break;
        (*n)++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int sdb_expiry_open(sdb *db, MDB_txn *txn)
{
    unsigned f = MDB_INTEGERKEY | MDB_DUPSORT;
    uint64_t n = 0;
    int rc = mdb_dbi_open(txn, "expiry", f, &db->expiry);

    if (rc != MDB_NOTFOUND)
        return rc;
    if ((rc = mdb_dbi_open(txn, "expiry", f | MDB_CREATE, &db->expiry)) != 0 ||
        (rc = sdb_expiry_build(db, txn, &n)) != 0)
        return rc;
    if (n)
        log_info("store db: indexed %llu records that expire",
                 (unsigned long long)n);
    return 0;
}

uint64_t sdb_expiry_count(sdb *db)
{
    MDB_txn *txn;
    MDB_stat st;
    uint64_t n = 0;

    if (mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_stat(txn, db->expiry, &st) == 0)
        n = st.ms_entries;
    mdb_txn_abort(txn);
    return n;
}

/* The reap op of the index entry (at -> dkey) into out: the record's key
 * and version. A record that went missing gets version 1 under its data
 * key: the write then only drops the entry. */
static int sdb_reap_op(MDB_txn *txn, sdb *db, uint64_t at, MDB_val *dkey,
                       wire_buf *out)
{
    wire_op op = {.op = WIRE_DEL, .flags = WIRE_F_REAPED | WIRE_F_EXPIRES,
                  .version = 1, .expires_at = at, .key = dkey->mv_data,
                  .key_len = dkey->mv_size};
    MDB_val v;
    sdb_record rec;
    int rc = mdb_get(txn, db->data, dkey, &v);

    if (rc == 0 && sdb_rec_parse(&v, NULL, 0, &rec) == 0 &&
        sdb_rec_key(dkey, &v, &op.key, &op.key_len) == 0)
        op.version = rec.version;
    else if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    return wire_put_op(out, &op) == 0 ? 0 : ENOMEM;
}

/* The due entries, as reap ops in out (*n of them). */
static int sdb_reap_collect(sdb *db, uint64_t now_ms, size_t max,
                            wire_buf *out, size_t *n, int *more)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, db->expiry, &cur)) != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
         rc == 0 && sdb_ld64(k.mv_data) <= now_ms;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (*n == max) {
            *more = 1;
            break;
        }
        if ((rc = sdb_reap_op(txn, db, sdb_ld64(k.mv_data), &v, out)) != 0)
            break;
        (*n)++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int sdb_reap(sdb *db, uint64_t now_ms, size_t max, uint64_t *reaped,
             int *more)
{
    wire_buf b = {0};
    wire_op *ops = NULL;
    wire_result *res = NULL;
    size_t n = 0, off = 0;
    int rc;

    *reaped = 0;
    *more = 0;
    if (max == 0)
        max = SDB_REAP_MAX;
    rc = sdb_reap_collect(db, now_ms, max, &b, &n, more);
    if (rc != 0) {
        log_error("store db: reap: %s", mdb_strerror(rc));
        goto out;
    }
    if (n == 0)
        goto out;
    ops = calloc(n, sizeof *ops);
    res = calloc(n, sizeof *res);
    if (ops == NULL || res == NULL) {
        rc = ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        (void)wire_next_op(b.data, b.len, &off, &ops[i]);
    if (sdb_apply_as(db, SDB_APPLY_WRITE, ops, n, res, NULL) != 0) {
        rc = -1;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (res[i].status == 200)
            (*reaped)++;
        else if (res[i].status != 208 && res[i].status != 404)
            log_warn("store db: reap of a record at %llu failed: %u",
                     (unsigned long long)ops[i].expires_at, res[i].status);
out:
    free(ops);
    free(res);
    wire_buf_free(&b);
    return rc == 0 ? 0 : -1;
}
