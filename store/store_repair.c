#include "store_repair.h"

#include "kvhttp.h"
#include "repl_send.h"
#include "store_fence.h"
#include "store_http_internal.h"
#include "store_reply.h"
#include "store_stats.h"

#include <stdlib.h>

void store_repair_route(store_http *h, httpd_req *r, const char *rest)
{
    wire_op *ops = NULL;
    wire_result *res = NULL;
    wire_buf out = {0};
    size_t n = 0;
    int applied = 0;

    (void)rest;
    if (!httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        return;
    }
    if (store_fence_epoch(h, r, NULL) != 0 || store_fence_lease(h, r) != 0 ||
        store_reply_ops(r, &ops, &n) != 0)
        return;
    store_stats_add(STORE_STATS_REPAIRS, (int64_t)n);
    if (n) {
        if ((res = malloc(n * sizeof *res)) == NULL) {
            store_reply_fail(r, 500, "internal", "out of memory");
            goto out;
        }
        if (sdb_apply_as(h->db, SDB_APPLY_REPAIR, ops, n, res, NULL) != 0) {
            store_reply_txn_failed(r, res);
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            applied |= res[i].status == 200;
        if (store_reply_results(res, n, &out) != 0) {
            store_reply_fail(r, 500, "internal", "out of memory");
            goto out;
        }
    }
    if (applied && sdb_get_role(h->db) == SDB_ROLE_PRIMARY)
        repl_send_notify(role_repl(h->role));
    httpd_respond(r, 200, STORE_REPLY_BIN, out.data ? (void *)out.data : "",
                  out.len, NULL);
out:
    wire_buf_free(&out);
    free(res);
    free(ops);
}
