#include "store_repl_recv.h"

#include "kvhdr.h"
#include "kvhttp.h"
#include "log.h"
#include "num.h"
#include "recon.h"
#include "store_fence.h"
#include "store_http_internal.h"
#include "store_reply.h"
#include "store_stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void store_repl_recv_applied(httpd_req *r, uint64_t applied, int gap)
{
    char body[96];
    int n = snprintf(body, sizeof body, "{\"applied_seq\":%" PRIu64 "%s}",
                     applied, gap ? ",\"gap\":true" : "");
    httpd_respond(r, 200, STORE_REPLY_JSON, body, (size_t)n, NULL);
}

static void store_repl_recv_resyncing(httpd_req *r)
{
    static const char *const rh[] = {"Retry-After: 1", NULL};

    store_reply_error_u64(r, 503, rh, "resyncing",
                          "this replica is resyncing from its primary",
                          "applied_seq", 0);
}

/* Whether this store may take the stream now: a secondary, not in a full
 * resync, the epoch and the lease current. 0 = go on, -1 = answered. */
static int store_repl_recv_refused(store_http *h, httpd_req *r,
                                   uint64_t *epoch)
{
    if (httpd_header(r, KVHDR_EPOCH) == NULL) {
        httpd_error(r, 400, "bad_epoch", "replication needs X-KV-Epoch");
        return -1;
    }
    if (store_fence_epoch(h, r, epoch) != 0 || store_fence_lease(h, r) != 0)
        return -1;
    if (sdb_get_role(h->db) == SDB_ROLE_PRIMARY) {
        log_warn("replicate: another store streams to us at our own epoch "
                 "%" PRIu64 " while we are primary", *epoch);
        role_poke(h->role);
        store_reply_error_u64(r, 409, NULL, "not_secondary",
                              "this store is a primary at this epoch",
                              "epoch", *epoch);
        return -1;
    }
    if (sdb_resyncing(h->db) || strcmp(role_state(h->role), "rejoining") == 0) {
        store_repl_recv_resyncing(r);
        return -1;
    }
    return 0;
}

/* Applies one batch of the stream and answers. */
static void store_repl_recv_apply(store_http *h, httpd_req *r,
                                  const sdb_repl_args *a)
{
    wire_op *ops = NULL;
    wire_result *res = NULL;
    uint64_t applied = 0;
    size_t n = 0;

    if (store_reply_ops(r, &ops, &n) != 0)
        return;
    if (n && (res = malloc(n * sizeof *res)) == NULL) {
        store_reply_fail(r, 500, "internal", "out of memory");
        goto out;
    }
    store_stats_add(STORE_STATS_REPLICATE_OPS, (int64_t)n);
    switch (sdb_replicate(h->db, ops, n, a, res, &applied)) {
    case SDB_REPL_FAILED:
        store_reply_txn_failed(r, res);
        break;
    case SDB_REPL_EPOCH:
        store_reply_error_u64(r, 503, NULL, "epoch_pending",
                              "the epoch changed while applying", "epoch",
                              sdb_get_epoch(h->db));
        break;
    case SDB_REPL_RESYNC:
        store_repl_recv_resyncing(r);
        break;
    case SDB_REPL_GAP:
        store_repl_recv_applied(r, applied, 1);
        break;
    case SDB_REPL_OK:
        store_repl_recv_applied(r, applied, 0);
        break;
    }
out:
    free(res);
    free(ops);
}

void store_repl_recv_route(store_http *h, httpd_req *r, const char *rest)
{
    const char *sq = httpd_header(r, "X-KV-Since");
    const char *uq = httpd_header(r, "X-KV-Upto");
    const char *gq = httpd_header(r, "X-KV-Gc-Seq");
    uint64_t epoch, since = 0, upto = 0, gc;

    (void)rest;
    if (!httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        return;
    }
    store_stats_add(STORE_STATS_REPLICATE, 1);
    if (store_repl_recv_refused(h, r, &epoch) != 0)
        return;
    if ((sq && num_parse_u64(sq, &since) != 0) ||
        (uq && num_parse_u64(uq, &upto) != 0) ||
        (gq && num_parse_u64(gq, &gc) != 0)) {
        httpd_error(r, 400, "bad_header",
                    "X-KV-Since, X-KV-Upto and X-KV-Gc-Seq are integers");
        return;
    }
    if (gq)
        recon_note_gc(role_recon(h->role), gc);
    if (uq == NULL) {
        /* A heartbeat: just say where we are. */
        store_repl_recv_applied(r, sdb_applied_seq(h->db), 0);
        return;
    }
    store_repl_recv_apply(h, r,
                          &(sdb_repl_args){.epoch = epoch, .since = since,
                                           .upto = upto});
}
