#include "store_reply.h"

#include "store_stats.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

void store_reply_fail(httpd_req *r, unsigned status, const char *code,
                      const char *msg)
{
    if (status >= 500)
        store_stats_add(STORE_STATS_ERRORS, 1);
    httpd_error(r, status, code, "%s", msg);
}

int store_reply_is_get(const httpd_req *r)
{
    return httpd_method_is(r, "GET") || httpd_method_is(r, "HEAD");
}

void store_reply_add_u64(cJSON *j, const char *name, uint64_t v)
{
    char num[24];

    snprintf(num, sizeof num, "%" PRIu64, v);
    cJSON_AddRawToObject(j, name, num);
}

void store_reply_add_i64(cJSON *j, const char *name, int64_t v)
{
    char num[24];

    snprintf(num, sizeof num, "%" PRId64, v);
    cJSON_AddRawToObject(j, name, num);
}

void store_reply_json_error(httpd_req *r, unsigned status,
                            const char *const *hdrs, const char *code,
                            const char *msg, const char *field, uint64_t v)
{
    cJSON *j = cJSON_CreateObject();

    cJSON_AddStringToObject(j, "error", code);
    cJSON_AddStringToObject(j, "message", msg);
    if (field)
        store_reply_add_u64(j, field, v);
    httpd_respond_json(r, status, j, hdrs);
}

void store_reply_error_u64(httpd_req *r, unsigned status,
                           const char *const *hdrs, const char *code,
                           const char *msg, const char *field, uint64_t v)
{
    if (status >= 500)
        store_stats_add(STORE_STATS_ERRORS, 1);
    store_reply_json_error(r, status, hdrs, code, msg, field, v);
}

int store_reply_ops(httpd_req *r, wire_op **ops, size_t *n)
{
    size_t len, off = 0, cnt = 0;
    const void *body = httpd_body(r, &len);
    wire_op op;
    int rc;

    *ops = NULL;
    *n = 0;
    while ((rc = wire_next_op(body, len, &off, &op)) == 1)
        cnt++;
    if (rc < 0) {
        httpd_error(r, 400, "bad_batch", "malformed op at byte %zu", off);
        return -1;
    }
    if (cnt == 0)
        return 0;
    *ops = malloc(cnt * sizeof **ops);
    if (*ops == NULL) {
        store_reply_fail(r, 500, "internal", "out of memory");
        return -1;
    }
    off = 0;
    for (size_t i = 0; i < cnt; i++)
        wire_next_op(body, len, &off, &(*ops)[i]);
    *n = cnt;
    return 0;
}

void store_reply_txn_failed(httpd_req *r, const wire_result *res)
{
    if (res[0].status == 507)
        store_reply_fail(r, 507, "insufficient_storage",
                        "the store is full (store.map_size_mb)");
    else
        store_reply_fail(r, 500, "internal", "the store could not apply the "
                                            "batch");
}

int store_reply_results(const wire_result *res, size_t n, wire_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (res[i].status == 200)
            store_stats_add(STORE_STATS_APPLIED, 1);
        else if (res[i].status == 208)
            store_stats_add(STORE_STATS_NOOPS, 1);
        if (wire_put_result(out, &res[i]) != 0)
            return -1;
    }
    return 0;
}
