#include "store_batch.h"

#include "clock.h"
#include "kvhdr.h"
#include "kvhttp.h"
#include "repl_send.h"
#include "store_fence.h"
#include "store_http_internal.h"
#include "store_migrate.h"
#include "store_owner.h"
#include "store_reply.h"
#include "store_stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* Whether a quorum wait is due (something was applied or found not newer)
 * and for which seq: the highest applied, or, when an op was a no-op (208),
 * everything applied so far, since the record it found may not have reached
 * the secondaries yet. */
static int store_batch_wait_seq(store_http *h, const wire_result *res,
                                const sdb_opinfo *info, size_t n,
                                uint64_t *seq)
{
    uint64_t last;
    int noop = 0, applied = 0;

    *seq = 0;
    for (size_t i = 0; i < n; i++) {
        if (res[i].status == 200) {
            applied = 1;
            if (info[i].seq > *seq)
                *seq = info[i].seq;
        } else if (res[i].status == 208) {
            noop = 1;
        }
    }
    if (noop && (last = sdb_last_seq(h->db)) > *seq)
        *seq = last;
    return applied || noop;
}

/* Applies the ops this shard may take under t in one transaction; the
 * others get 421 (number = the owner's id) or 503 and stay unapplied.
 * 0, or -1 when the transaction failed (every result 500/507). */
static int store_batch_apply(store_http *h, const topo_t *t,
                             const wire_op *ops, size_t n, wire_result *res,
                             sdb_opinfo *info)
{
    wire_op *ok_ops;
    wire_result *ok_res;
    sdb_opinfo *ok_info;
    size_t *idx, m = 0;
    int rc;

    if (t == NULL)
        return sdb_apply_as(h->db, SDB_APPLY_WRITE, ops, n, res, info);
    ok_ops = malloc(n * sizeof *ok_ops);
    ok_res = malloc(n * sizeof *ok_res);
    ok_info = malloc(n * sizeof *ok_info);
    idx = malloc(n * sizeof *idx);
    if (ok_ops == NULL || ok_res == NULL || ok_info == NULL || idx == NULL) {
        rc = -1;
        for (size_t i = 0; i < n; i++) {
            res[i] = (wire_result){.status = 500};
            info[i] = (sdb_opinfo){.err = SDB_E_INTERNAL};
        }
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t owner;
        enum store_owner_rc oc =
            store_owner_check(t, h->shard, ops[i].key, ops[i].key_len,
                              STORE_OWNER_WRITE, &owner);
        res[i] = (wire_result){0};
        info[i] = (sdb_opinfo){0};
        if (oc == STORE_OWNER_OK) {
            idx[m] = i;
            ok_ops[m++] = ops[i];
        } else if (oc == STORE_OWNER_MOVED) {
            res[i].status = 421;
            res[i].number = owner;
            store_stats_add(STORE_STATS_MOVED, 1);
        } else {
            res[i].status = 503;
            store_stats_add(STORE_STATS_MIGRATING, 1);
        }
    }
    if (m == n) {
        rc = sdb_apply_as(h->db, SDB_APPLY_WRITE, ops, n, res, info);
        goto out;
    }
    rc = sdb_apply_as(h->db, SDB_APPLY_WRITE, ok_ops, m, ok_res, ok_info);
    for (size_t j = 0; j < m; j++) {
        res[idx[j]] = ok_res[j];
        info[idx[j]] = ok_info[j];
    }
    if (rc != 0) /* the whole batch fails: the sender retries all of it */
        for (size_t i = 0; i < n; i++)
            res[i] = (wire_result){.status = ok_res[0].status};
out:
    free(idx);
    free(ok_info);
    free(ok_res);
    free(ok_ops);
    return rc;
}

void store_batch_route(store_http *h, httpd_req *r, const char *rest)
{
    size_t n = 0;
    wire_op *ops = NULL;
    wire_result *res = NULL;
    sdb_opinfo *info = NULL;
    wire_buf out = {0};
    char h1[48], h2[48], h3[48];
    const char *hdrs[] = {h1, h2, h3, NULL};
    uint64_t t0, wait_seq = 0;
    int applied = 0, wait = 0, rc;
    topo_t *t;

    (void)rest;
    if (!httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        return;
    }
    if (store_fence_epoch(h, r, NULL) != 0 || store_fence_primary(h, r) != 0 ||
        store_reply_ops(r, &ops, &n) != 0)
        return;
    store_stats_add(STORE_STATS_BATCHES, 1);
    store_stats_add(STORE_STATS_BATCH_OPS, (int64_t)n);
    if (n && store_fence_quorum(h, r) != 0)
        goto out;
    if (n) {
        res = malloc(n * sizeof *res);
        info = malloc(n * sizeof *info);
        if (res == NULL || info == NULL) {
            store_reply_fail(r, 500, "internal", "out of memory");
            goto out;
        }
        t0 = clock_mono_us();
        /* Senders other than a primary send seq 0; a seq is ignored here.
         * Ownership is checked per op inside the write fence (see
         * store_kv.c); refused ops keep their 421/503 and are not applied. */
        t = store_migrate_write_begin(h->mig, h->role);
        rc = store_batch_apply(h, t, ops, n, res, info);
        store_migrate_write_end(h->mig, t);
        if (rc != 0) {
            /* Nothing was applied: a whole-batch error tells the sender to
             * retry the batch rather than trust per-op answers. */
            store_reply_txn_failed(r, res);
            goto out;
        }
        store_stats_write_us(clock_mono_us() - t0);
        for (size_t i = 0; i < n; i++)
            applied |= res[i].status == 200;
        wait = store_batch_wait_seq(h, res, info, n, &wait_seq);
        if (store_reply_results(res, n, &out) != 0) {
            store_reply_fail(r, 500, "internal", "out of memory");
            goto out;
        }
    }
    if (applied)
        repl_send_notify(role_repl(h->role));
    /* The sender (the queue) learns where this replica stands without
     * another round trip. */
    snprintf(h1, sizeof h1, "X-KV-Last-Seq: %" PRIu64, sdb_last_seq(h->db));
    snprintf(h2, sizeof h2, "X-KV-Applied-Seq: %" PRIu64,
             sdb_applied_seq(h->db));
    kvhdr_epoch(h3, sizeof h3, sdb_get_epoch(h->db));
    if (h->write_quorum && wait) {
        /* wquorum answers from out's bytes and frees them. */
        wquorum_wait(h->wqm, r, wait_seq, 200, STORE_REPLY_BIN,
                     (char *)out.data, out.len, hdrs);
        out = (wire_buf){0};
        goto out;
    }
    httpd_respond(r, 200, STORE_REPLY_BIN, out.data ? (void *)out.data : "",
                  out.len, hdrs);
out:
    wire_buf_free(&out);
    free(info);
    free(res);
    free(ops);
}
