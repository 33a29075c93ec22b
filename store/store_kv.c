#include "store_kv.h"

#include "clock.h"
#include "kvhdr.h"
#include "kvhttp.h"
#include "num.h"
#include "precond.h"
#include "repl_send.h"
#include "store_fence.h"
#include "store_http_internal.h"
#include "store_migrate.h"
#include "store_reply.h"
#include "store_stats.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct store_kv_key {
    const char *p;  /* the key bytes (NUL-terminated when owned) */
    size_t len;
    char *owned;    /* decoded copy to free, or NULL when p is the raw path */
} store_kv_key;

/* Parses the key (path segment 2), answering 400/414 itself on failure
 * (-1). A key without %-escapes is used in place, so the GET path allocates
 * nothing; everything else goes through kvhttp_key for the shared rules. */
static int store_kv_key_parse(const store_http *h, httpd_req *r,
                              const char *seg, size_t n, store_kv_key *k)
{
    k->owned = NULL;
    if (n > 0 && n <= h->max_key && memchr(seg, '%', n) == NULL) {
        k->p = seg;
        k->len = n;
        return 0;
    }
    if (kvhttp_key(r, 2, h->max_key, &k->owned, &k->len) != 0)
        return -1;
    k->p = k->owned;
    return 0;
}

/* A NUL-terminated copy for JSON answers (write paths only). */
static char *store_kv_key_cstr(const store_kv_key *k)
{
    char *s = malloc(k->len + 1);
    if (s) {
        memcpy(s, k->p, k->len);
        s[k->len] = '\0';
    }
    return s;
}


/* Answers a failed single op from its status and error detail. */
static void store_kv_op_error(httpd_req *r, const wire_result *res,
                              const sdb_opinfo *info, const store_http *h)
{
    switch (info->err) {
    case SDB_E_BAD_VERSION:
        httpd_error(r, 400, "bad_version", "version must be below 2^53");
        return;
    case SDB_E_FUTURE_VERSION:
        httpd_error(r, 400, "version_in_future",
                    "the version is more than store.max_version_skew_ms ahead "
                    "of this store's clock");
        return;
    case SDB_E_KEY_SIZE:
        httpd_error(r, 414, "key_too_long", "the key is over the %zu byte limit",
                    h->max_key);
        return;
    case SDB_E_VALUE_SIZE:
        httpd_error(r, 413, "value_too_large",
                    "the value is over the %zu byte limit", h->max_value);
        return;
    case SDB_E_NOT_INTEGER:
        httpd_error(r, 409, "not_integer",
                    "the stored value is not a decimal integer");
        return;
    case SDB_E_OVERFLOW:
        httpd_error(r, 409, "overflow",
                    "the increment would overflow a 64-bit integer");
        return;
    case SDB_E_PRECONDITION:
        store_reply_json_error(r, 412, NULL, "precondition_failed",
                               PRECOND_FAILED_MSG, "current_version",
                               res->version);
        return;
    case SDB_E_FULL:
        store_reply_fail(r, 507, "insufficient_storage",
                        "the store is full (store.map_size_mb)");
        return;
    case SDB_E_BAD_OP:
        httpd_error(r, 400, "bad_request", "invalid operation");
        return;
    default:
        store_reply_fail(r, res->status >= 500 ? res->status : 500, "internal",
                        "the store could not apply the write");
        return;
    }
}

/* ---- /internal/kv ----------------------------------------------------- */

/* What the read callback needs besides the record. */
typedef struct store_kv_read {
    httpd_req *r;
    uint64_t now_ms; /* the store's clock, for expiry */
} store_kv_read;

static void store_kv_get_cb(const sdb_record *rec, void *arg)
{
    const store_kv_read *rd = arg;
    httpd_req *r = rd->r;
    char hdr[40], exp[48];
    const char *hdrs[] = {hdr, NULL, NULL};
    static const char notfound[] =
        "{\"error\":\"not_found\",\"message\":\"no such key\"}";
    static const char deleted[] =
        "{\"error\":\"deleted\",\"message\":\"the key was deleted\"}";
    static const char expired[] =
        "{\"error\":\"expired\",\"message\":\"the key's TTL has passed\"}";

    if (rec == NULL) {
        store_stats_add(STORE_STATS_GET_MISSES, 1);
        httpd_respond(r, 404, STORE_REPLY_JSON, notfound, sizeof notfound - 1, NULL);
        return;
    }
    snprintf(hdr, sizeof hdr, "X-KV-Version: %" PRIu64, rec->version);
    if (rec->flags & SDB_F_TOMBSTONE) {
        int reaped = (rec->flags & SDB_F_REAPED) != 0;
        store_stats_add(STORE_STATS_GET_MISSES, 1);
        httpd_respond(r, 404, STORE_REPLY_JSON, reaped ? expired : deleted,
                      reaped ? sizeof expired - 1 : sizeof deleted - 1, hdrs);
        return;
    }
    /* Expired reads like a tombstone at its version (404 with the version),
     * so a quorum read takes it as the newest state of the key. */
    if (sdb_record_expired(rec, rd->now_ms)) {
        store_stats_add(STORE_STATS_GET_MISSES, 1);
        httpd_respond(r, 404, STORE_REPLY_JSON, expired, sizeof expired - 1, hdrs);
        return;
    }
    if (rec->expires_at) {
        snprintf(exp, sizeof exp, "X-KV-Expires-At: %" PRIu64, rec->expires_at);
        hdrs[1] = exp;
    }
    /* The one copy of the value: from the LMDB map into the response. */
    httpd_respond(r, 200, STORE_REPLY_BIN, rec->val, rec->val_len, hdrs);
}

static void store_kv_get(store_http *h, httpd_req *r, const store_kv_key *k)
{
    topo_t *t;
    int refused;

    store_stats_add(STORE_STATS_GETS, 1);
    /* A read for the primary, at a store that is not (any more, or not
     * yet): its copy may be behind the one that is. */
    if (httpd_header(r, KVHDR_READ_PRIMARY) && store_fence_primary(h, r) != 0)
        return;
    t = role_topo(h->role);
    refused = store_fence_owner(h, r, t, k->p, k->len,
                                httpd_header(r, "X-KV-Moved") ? STORE_OWNER_READ_MOVED
                                                              : STORE_OWNER_READ);
    topo_put(t);
    if (refused)
        return;
    if (sdb_resyncing(h->db)) {
        static const char resync[] =
            "{\"error\":\"resyncing\",\"message\":\"this replica is in a "
            "full resync and its copy is incomplete\"}";
        static const char *const rh[] = {"Retry-After: 1", NULL};
        httpd_respond(r, 503, STORE_REPLY_JSON, resync, sizeof resync - 1, rh);
        return;
    }
    store_kv_read rd = {r, sdb_now_ms(h->db)};
    if (sdb_get_with(h->db, k->p, k->len, store_kv_get_cb, &rd) != 0)
        store_reply_fail(r, 500, "internal", "the store could not read the key");
}

/* PUT, DELETE and incr: one op in one transaction. */
static void store_kv_write(store_http *h, httpd_req *r, const store_kv_key *k,
                           uint8_t kind)
{
    const char *vq = httpd_query(r, "version");
    uint64_t ttl_s = 0;
    wire_op op;
    wire_result res;
    sdb_opinfo info;
    char delta[8];
    uint64_t t0;
    cJSON *j;
    char *key;
    topo_t *t;

    if (store_fence_epoch(h, r, NULL) != 0 || store_fence_primary(h, r) != 0)
        return;
    memset(&op, 0, sizeof op);
    op.op = kind;
    op.key = k->p;
    op.key_len = k->len;
    if (vq && num_parse_u64(vq, &op.version) != 0) {
        httpd_error(r, 400, "bad_version", "version must be an integer");
        return;
    }
    if (kvhttp_condition(r, &op.flags, &op.if_match) != 0 ||
        (kind != WIRE_DEL && kvhttp_ttl(r, &ttl_s) != 0))
        return;
    if (ttl_s) {
        op.flags |= WIRE_F_EXPIRES;
        op.expires_at = sdb_now_ms(h->db) + ttl_s * 1000u;
    }
    if (kind == WIRE_PUT) {
        op.val = httpd_body(r, &op.val_len);
        if (op.val_len > h->max_value) {
            httpd_error(r, 413, "value_too_large",
                        "the value is %zu bytes, over the %zu byte limit",
                        op.val_len, h->max_value);
            return;
        }
        store_stats_add(STORE_STATS_PUTS, 1);
    } else if (kind == WIRE_INCR) {
        const char *by = httpd_query(r, "by");
        int64_t d = 1;
        if (by && num_parse_i64(by, &d) != 0) {
            httpd_error(r, 400, "bad_increment",
                        "by must be a 64-bit decimal integer");
            return;
        }
        wire_encode_delta(d, delta);
        op.val = delta;
        op.val_len = sizeof delta;
        store_stats_add(STORE_STATS_INCRS, 1);
    } else {
        store_stats_add(STORE_STATS_DELS, 1);
    }

    if (store_fence_quorum(h, r) != 0)
        return;
    /* From the ownership check to the commit inside the write fence, so
     * that a freeze (store/store_migrate.h) sees this write either
     * committed or refused. */
    t = store_migrate_write_begin(h->mig, h->role);
    if (store_fence_owner(h, r, t, k->p, k->len, STORE_OWNER_WRITE) != 0) {
        store_migrate_write_end(h->mig, t);
        return;
    }
    t0 = clock_mono_us();
    sdb_apply_as(h->db, SDB_APPLY_WRITE, &op, 1, &res, &info);
    store_stats_write_us(clock_mono_us() - t0);
    store_migrate_write_end(h->mig, t);
    if (res.status != 200 && res.status != 208) {
        store_kv_op_error(r, &res, &info, h);
        return;
    }
    store_stats_add(res.status == 200 ? STORE_STATS_APPLIED
                                      : STORE_STATS_NOOPS, 1);
    if (res.status == 200)
        repl_send_notify(role_repl(h->role));

    key = store_kv_key_cstr(k);
    j = cJSON_CreateObject();
    if (key == NULL || j == NULL) {
        free(key);
        cJSON_Delete(j);
        store_reply_fail(r, 500, "internal", "out of memory");
        return;
    }
    cJSON_AddStringToObject(j, "key", key);
    free(key);
    if (kind == WIRE_INCR)
        store_reply_add_i64(j, "value", res.number);
    store_reply_add_u64(j, "version", res.version);
    if (kind != WIRE_INCR)
        store_reply_add_u64(j, "seq", info.seq);
    cJSON_AddBoolToObject(j, "applied", res.status == 200);
    if (h->write_quorum) {
        /* A no-op (208) waits for everything applied so far: the record
         * it found may not have reached the secondaries yet. */
        uint64_t seq = res.status == 200 ? info.seq : sdb_last_seq(h->db);
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (text == NULL) {
            store_reply_fail(r, 500, "internal", "out of memory");
            return;
        }
        wquorum_wait(h->wqm, r, seq, 200, STORE_REPLY_JSON, text, strlen(text),
                     NULL);
        return;
    }
    httpd_respond_json(r, 200, j, NULL);
}

void store_kv_route(store_http *h, httpd_req *r, const char *rest)
{
    const char *slash = strchr(rest, '/');
    size_t seglen = slash ? (size_t)(slash - rest) : strlen(rest);
    int incr = 0;
    store_kv_key k;

    if (slash) {
        if (strcmp(slash, "/incr") != 0) {
            kvhttp_not_found(r);
            return;
        }
        incr = 1;
        if (!httpd_method_is(r, "POST")) {
            kvhttp_bad_method(r, "POST");
            return;
        }
    } else if (!store_reply_is_get(r) && !httpd_method_is(r, "PUT") &&
               !httpd_method_is(r, "DELETE")) {
        kvhttp_bad_method(r, "GET, HEAD, PUT, DELETE");
        return;
    }
    if (store_kv_key_parse(h, r, rest, seglen, &k) != 0)
        return;
    if (incr)
        store_kv_write(h, r, &k, WIRE_INCR);
    else if (store_reply_is_get(r))
        store_kv_get(h, r, &k);
    else if (httpd_method_is(r, "PUT"))
        store_kv_write(h, r, &k, WIRE_PUT);
    else
        store_kv_write(h, r, &k, WIRE_DEL);
    free(k.owned);
}

/* ---- wire bodies ------------------------------------------------------ */
