#include "store_repair.h"

#include "kvhttp.h"
#include "repl_send.h"
#include "store_fence.h"
#include "store_http_internal.h"
#include "store_owner.h"
#include "store_reply.h"
#include "store_stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* The ops this shard may take under t (the owner now, before or after a
 * migration: store/store_owner.h), applied by version in ONE transaction;
 * the others get 421 with number = the owner's id, or 503 (a source's
 * moving key from the freeze on). 0, or -1 when the
 * transaction failed (every result 500/507). */
static int store_repair_apply(store_http *h, const topo_t *t,
                              const wire_op *ops, size_t n, wire_result *res)
{
    wire_op *ok_ops;
    wire_result *ok_res;
    size_t *idx, m = 0;
    int rc = -1;

    if (t == NULL)
        return sdb_apply_as(h->db, SDB_APPLY_REPAIR, ops, n, res, NULL);
    ok_ops = malloc(n * sizeof *ok_ops);
    ok_res = malloc(n * sizeof *ok_res);
    idx = malloc(n * sizeof *idx);
    if (ok_ops == NULL || ok_res == NULL || idx == NULL) {
        for (size_t i = 0; i < n; i++)
            res[i] = (wire_result){.status = 500};
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t owner;
        res[i] = (wire_result){0};
        switch (store_owner_check(t, h->shard, ops[i].key, ops[i].key_len,
                                  STORE_OWNER_REPAIR, &owner)) {
        case STORE_OWNER_OK:
            idx[m] = i;
            ok_ops[m++] = ops[i];
            break;
        case STORE_OWNER_MIGRATING:
            res[i].status = 503;
            break;
        case STORE_OWNER_MOVED:
            res[i].status = 421;
            res[i].number = owner;
            store_stats_add(STORE_STATS_MOVED, 1);
            break;
        }
    }
    if (m == n) {
        rc = sdb_apply_as(h->db, SDB_APPLY_REPAIR, ops, n, res, NULL);
        goto out;
    }
    rc = sdb_apply_as(h->db, SDB_APPLY_REPAIR, ok_ops, m, ok_res, NULL);
    for (size_t j = 0; j < m; j++)
        res[idx[j]] = ok_res[j];
    if (rc != 0)
        for (size_t i = 0; i < n; i++)
            res[i] = (wire_result){.status = ok_res[0].status};
out:
    free(idx);
    free(ok_res);
    free(ok_ops);
    return rc;
}

/* One request's ops, applied and answered on any thread. */
typedef struct store_repair_job {
    store_http *h;
    httpd_req *r;
    wire_op *ops;  /* point into r's body: valid until r is answered */
    size_t n;
} store_repair_job;

static void store_repair_run(void *arg)
{
    store_repair_job *j = arg;
    store_http *h = j->h;
    httpd_req *r = j->r;
    wire_result *res = NULL;
    wire_buf out = {0};
    int applied = 0, rc;
    topo_t *t;
    char h1[48];
    const char *hdrs[] = {h1, NULL};

    if (j->n) {
        if ((res = malloc(j->n * sizeof *res)) == NULL) {
            store_reply_fail(r, 500, "internal", "out of memory");
            goto out;
        }
        /* Under the write fence, as client writes: a freeze sees each
         * repair of a moving key either committed or refused. */
        t = store_migrate_write_begin(h->mig, h->role);
        rc = store_repair_apply(h, t, j->ops, j->n, res);
        store_migrate_write_end(h->mig, t);
        if (rc != 0) {
            store_reply_txn_failed(r, res);
            goto out;
        }
        for (size_t i = 0; i < j->n; i++)
            applied |= res[i].status == 200;
        if (store_reply_results(res, j->n, &out) != 0) {
            store_reply_fail(r, 500, "internal", "out of memory");
            goto out;
        }
    }
    if (applied && sdb_get_role(h->db) == SDB_ROLE_PRIMARY)
        repl_send_notify(role_repl(h->role));
    /* The migration's copier waits for the target's secondaries to ack
     * this seq before it says drained (store/store_migrate.h). */
    snprintf(h1, sizeof h1, "X-KV-Last-Seq: %" PRIu64, sdb_last_seq(h->db));
    httpd_respond(r, 200, STORE_REPLY_BIN, out.data ? (void *)out.data : "",
                  out.len, hdrs);
out:
    wire_buf_free(&out);
    free(res);
    free(j->ops);
    free(j);
}

void store_repair_route(store_http *h, httpd_req *r, const char *rest)
{
    store_repair_job *j;
    wire_op *ops = NULL;
    size_t n = 0;

    (void)rest;
    if (!httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        return;
    }
    if (store_fence_epoch(h, r, NULL) != 0 || store_fence_lease(h, r) != 0 ||
        store_reply_ops(r, &ops, &n) != 0)
        return;
    store_stats_add(STORE_STATS_REPAIRS, (int64_t)n);
    if ((j = malloc(sizeof *j)) == NULL) {
        free(ops);
        store_reply_fail(r, 500, "internal", "out of memory");
        return;
    }
    *j = (store_repair_job){.h = h, .r = r, .ops = ops, .n = n};
    /* A migration's batch (the copier names it) is applied on the
     * migration's thread, below the request threads: the foreground keeps
     * its CPU while keys move in. */
    if (n && httpd_header(r, "X-KV-Migration") != NULL) {
        httpd_suspend(r);
        if (store_migrate_defer(h->mig, store_repair_run, j) == 0)
            return;
    }
    store_repair_run(j);
}
