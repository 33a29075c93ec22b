#include "http.h"

#include "kvhttp.h"
#include "log.h"
#include "metrics.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STORE_CHANGES_DEFAULT_LIMIT 1000
#define STORE_CHANGES_MAX_LIMIT 100000
/* Cap on one changes answer; a single larger value still goes out alone. */
#define STORE_CHANGES_MAX_BYTES ((size_t)8 << 20)

struct store_http {
    sdb *db;
    unsigned shard, replica;
    char *token;          /* NULL when /internal/ needs no token */
    size_t max_key, max_value;
};

/* ---- metrics ---------------------------------------------------------- */

METRIC_COUNTER(sm_gets, "kv_store_gets_total", "GET /internal/kv requests");
METRIC_COUNTER(sm_get_misses, "kv_store_get_misses_total",
               "GETs of absent or deleted keys");
METRIC_COUNTER(sm_puts, "kv_store_puts_total", "PUT /internal/kv requests");
METRIC_COUNTER(sm_dels, "kv_store_deletes_total",
               "DELETE /internal/kv requests");
METRIC_COUNTER(sm_incrs, "kv_store_incrs_total", "increment requests");
METRIC_COUNTER(sm_batches, "kv_store_batches_total", "POST /internal/batch");
METRIC_COUNTER(sm_batch_ops, "kv_store_batch_ops_total", "ops received in batches");
METRIC_COUNTER(sm_applied, "kv_store_applied_total", "ops applied (status 200)");
METRIC_COUNTER(sm_noops, "kv_store_noop_total",
               "ops not newer than the stored version (208)");
METRIC_COUNTER(sm_changes, "kv_store_changes_requests_total",
               "GET /internal/changes requests");
METRIC_COUNTER(sm_fenced, "kv_store_fenced_total",
               "writes refused for carrying an older epoch");
METRIC_COUNTER(sm_errors, "kv_store_errors_total", "answers with status >= 500");
METRIC_GAUGE(sm_keys, "kv_store_keys", "live keys");
METRIC_GAUGE(sm_tombs, "kv_store_tombstones", "tombstones kept");
METRIC_GAUGE(sm_seq, "kv_store_last_seq", "last applied sequence number");
METRIC_GAUGE(sm_epoch, "kv_store_epoch", "shard epoch this store knows");
METRIC_GAUGE(sm_applied_seq, "kv_store_applied_seq",
             "highest upstream seq applied (secondaries)");
METRIC_GAUGE(sm_map_used, "kv_store_map_used_bytes", "LMDB map in use");
METRIC_GAUGE(sm_map_size, "kv_store_map_size_bytes", "LMDB map size");
static lat_hist sm_write_lat = {.name = "kv_store_write_seconds",
                                .help = "time to apply a write transaction"};

static pthread_once_t store_http_metrics_once = PTHREAD_ONCE_INIT;

static void store_http_metrics_init(void)
{
    metric *all[] = {&sm_gets,   &sm_get_misses, &sm_puts,    &sm_dels,
                     &sm_incrs,  &sm_batches,    &sm_batch_ops, &sm_applied,
                     &sm_noops,  &sm_changes,    &sm_fenced,  &sm_errors,
                     &sm_keys,   &sm_tombs,      &sm_seq,     &sm_epoch,
                     &sm_applied_seq, &sm_map_used, &sm_map_size};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        metrics_register(all[i]);
    metrics_register_hist(&sm_write_lat);
}

static uint64_t store_http_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- setup ------------------------------------------------------------ */

size_t store_http_max_body(size_t max_value_bytes)
{
    /* A batch carries up to queue.batch_max values; 64 MiB bounds the
     * memory one request can pin while still fitting the largest value. */
    size_t floor = (size_t)64 << 20;
    size_t need = 2 * max_value_bytes + ((size_t)1 << 20);
    return need > floor ? need : floor;
}

store_http *store_http_new(const store_http_opts *o)
{
    store_http *h = calloc(1, sizeof *h);

    if (h == NULL)
        return NULL;
    h->db = o->db;
    h->shard = o->shard;
    h->replica = o->replica;
    h->max_key = o->max_key_bytes ? o->max_key_bytes : 1024;
    h->max_value = o->max_value_bytes;
    if (o->token && o->token[0] && (h->token = strdup(o->token)) == NULL) {
        free(h);
        return NULL;
    }
    pthread_once(&store_http_metrics_once, store_http_metrics_init);
    return h;
}

void store_http_free(store_http *h)
{
    if (h == NULL)
        return;
    free(h->token);
    free(h);
}

/* ---- helpers ---------------------------------------------------------- */

/* Static JSON for the frequent errors, so they cost no allocation. */
#define STORE_JSON "application/json"
#define STORE_BIN "application/octet-stream"

static void store_http_fail(httpd_req *r, unsigned status, const char *code,
                            const char *msg)
{
    if (status >= 500)
        metric_add(&sm_errors, 1);
    httpd_error(r, status, code, "%s", msg);
}

/* Strict unsigned decimal: digits only, no overflow. 0 or -1. */
static int store_http_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (s == NULL || *s == '\0')
        return -1;
    for (; *s; s++) {
        unsigned d = (unsigned)(unsigned char)*s - '0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int store_http_is_get(const httpd_req *r)
{
    return httpd_method_is(r, "GET") || httpd_method_is(r, "HEAD");
}

/* A key taken from one raw path segment. */
typedef struct store_key {
    const char *p;  /* the key bytes (NUL-terminated when owned) */
    size_t len;
    char *owned;    /* decoded copy to free, or NULL when p is the raw path */
} store_key;

/* Parses the key (path segment 2), answering 400/414 itself on failure
 * (-1). A key without %-escapes is used in place, so the GET path allocates
 * nothing; everything else goes through kvhttp_key for the shared rules. */
static int store_http_key(const store_http *h, httpd_req *r, const char *seg,
                          size_t n, store_key *k)
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
static char *store_key_cstr(const store_key *k)
{
    char *s = malloc(k->len + 1);
    if (s) {
        memcpy(s, k->p, k->len);
        s[k->len] = '\0';
    }
    return s;
}

/* Fences writes from an older epoch: answers and returns 1 when refused. */
static int store_http_fenced(store_http *h, httpd_req *r)
{
    const char *e = httpd_header(r, "X-KV-Epoch");
    uint64_t got, cur;
    char hdr[48];
    const char *hdrs[] = {hdr, NULL};

    if (e == NULL)
        return 0;
    if (store_http_u64(e, &got) != 0) {
        httpd_error(r, 400, "bad_epoch", "X-KV-Epoch must be an integer");
        return 1;
    }
    cur = sdb_get_epoch(h->db);
    if (got >= cur)
        return 0;
    metric_add(&sm_fenced, 1);
    snprintf(hdr, sizeof hdr, "X-KV-Epoch: %" PRIu64, cur);
    httpd_error_h(r, 409, hdrs, "stale_epoch",
                  "epoch %" PRIu64 " is older than this store's %" PRIu64, got,
                  cur);
    return 1;
}

static void store_http_add_u64(cJSON *j, const char *name, uint64_t v)
{
    /* Raw text: cJSON numbers are doubles and would round past 2^53. */
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    cJSON_AddRawToObject(j, name, buf);
}

static void store_http_add_i64(cJSON *j, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    cJSON_AddRawToObject(j, name, buf);
}

/* Answers a failed single op from its status and error detail. */
static void store_http_op_error(httpd_req *r, const wire_result *res,
                                const sdb_opinfo *info, const store_http *h)
{
    switch (info->err) {
    case SDB_E_BAD_VERSION:
        httpd_error(r, 400, "bad_version", "version must be below 2^53");
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
    case SDB_E_FULL:
        store_http_fail(r, 507, "insufficient_storage",
                        "the store is full (store.map_size_mb)");
        return;
    case SDB_E_BAD_OP:
        httpd_error(r, 400, "bad_request", "invalid operation");
        return;
    default:
        store_http_fail(r, res->status >= 500 ? res->status : 500, "internal",
                        "the store could not apply the write");
        return;
    }
}

/* ---- /internal/kv ----------------------------------------------------- */

static void store_http_get_cb(const sdb_record *rec, void *arg)
{
    httpd_req *r = arg;
    char hdr[40];
    const char *hdrs[] = {hdr, NULL};
    static const char notfound[] =
        "{\"error\":\"not_found\",\"message\":\"no such key\"}";
    static const char deleted[] =
        "{\"error\":\"deleted\",\"message\":\"the key was deleted\"}";

    if (rec == NULL) {
        metric_add(&sm_get_misses, 1);
        httpd_respond(r, 404, STORE_JSON, notfound, sizeof notfound - 1, NULL);
        return;
    }
    snprintf(hdr, sizeof hdr, "X-KV-Version: %" PRIu64, rec->version);
    if (rec->flags & SDB_F_TOMBSTONE) {
        metric_add(&sm_get_misses, 1);
        httpd_respond(r, 404, STORE_JSON, deleted, sizeof deleted - 1, hdrs);
        return;
    }
    /* The one copy of the value: from the LMDB map into the response. */
    httpd_respond(r, 200, STORE_BIN, rec->val, rec->val_len, hdrs);
}

static void store_http_get(store_http *h, httpd_req *r, const store_key *k)
{
    metric_add(&sm_gets, 1);
    if (sdb_get_with(h->db, k->p, k->len, store_http_get_cb, r) != 0)
        store_http_fail(r, 500, "internal", "the store could not read the key");
}

/* PUT, DELETE and incr: one op in one transaction. */
static void store_http_write(store_http *h, httpd_req *r, const store_key *k,
                             uint8_t kind)
{
    const char *vq = httpd_query(r, "version");
    wire_op op;
    wire_result res;
    sdb_opinfo info;
    char delta[8];
    uint64_t t0;
    cJSON *j;
    char *key;

    if (store_http_fenced(h, r))
        return;
    memset(&op, 0, sizeof op);
    op.op = kind;
    op.key = k->p;
    op.key_len = k->len;
    if (vq && store_http_u64(vq, &op.version) != 0) {
        httpd_error(r, 400, "bad_version", "version must be an integer");
        return;
    }
    if (kind == WIRE_PUT) {
        op.val = httpd_body(r, &op.val_len);
        if (op.val_len > h->max_value) {
            httpd_error(r, 413, "value_too_large",
                        "the value is %zu bytes, over the %zu byte limit",
                        op.val_len, h->max_value);
            return;
        }
        metric_add(&sm_puts, 1);
    } else if (kind == WIRE_INCR) {
        const char *by = httpd_query(r, "by");
        int64_t d = 1;
        if (by && kvhttp_parse_i64(by, &d) != 0) {
            httpd_error(r, 400, "bad_increment",
                        "by must be a 64-bit decimal integer");
            return;
        }
        wire_encode_delta(d, delta);
        op.val = delta;
        op.val_len = sizeof delta;
        metric_add(&sm_incrs, 1);
    } else {
        metric_add(&sm_dels, 1);
    }

    t0 = store_http_now_us();
    sdb_apply_batch(h->db, &op, 1, &res, &info);
    lat_record(&sm_write_lat, store_http_now_us() - t0);
    if (res.status != 200 && res.status != 208) {
        store_http_op_error(r, &res, &info, h);
        return;
    }
    metric_add(res.status == 200 ? &sm_applied : &sm_noops, 1);

    key = store_key_cstr(k);
    j = cJSON_CreateObject();
    if (key == NULL || j == NULL) {
        free(key);
        cJSON_Delete(j);
        store_http_fail(r, 500, "internal", "out of memory");
        return;
    }
    cJSON_AddStringToObject(j, "key", key);
    free(key);
    if (kind == WIRE_INCR)
        store_http_add_i64(j, "value", res.number);
    store_http_add_u64(j, "version", res.version);
    if (kind != WIRE_INCR)
        store_http_add_u64(j, "seq", info.seq);
    cJSON_AddBoolToObject(j, "applied", res.status == 200);
    httpd_respond_json(r, 200, j, NULL);
}

/* rest: what follows "/internal/kv/". */
static void store_http_kv(store_http *h, httpd_req *r, const char *rest)
{
    const char *slash = strchr(rest, '/');
    size_t seglen = slash ? (size_t)(slash - rest) : strlen(rest);
    int incr = 0;
    store_key k;

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
    } else if (!store_http_is_get(r) && !httpd_method_is(r, "PUT") &&
               !httpd_method_is(r, "DELETE")) {
        kvhttp_bad_method(r, "GET, HEAD, PUT, DELETE");
        return;
    }
    if (store_http_key(h, r, rest, seglen, &k) != 0)
        return;
    if (incr)
        store_http_write(h, r, &k, WIRE_INCR);
    else if (store_http_is_get(r))
        store_http_get(h, r, &k);
    else if (httpd_method_is(r, "PUT"))
        store_http_write(h, r, &k, WIRE_PUT);
    else
        store_http_write(h, r, &k, WIRE_DEL);
    free(k.owned);
}

/* ---- /internal/batch -------------------------------------------------- */

static void store_http_batch(store_http *h, httpd_req *r)
{
    size_t len, off = 0, n = 0;
    const void *body = httpd_body(r, &len);
    wire_op op, *ops = NULL;
    wire_result *res = NULL;
    wire_buf out = {0};
    char h1[48], h2[48], h3[48];
    const char *hdrs[] = {h1, h2, h3, NULL};
    uint64_t t0;
    int rc;

    if (!httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        return;
    }
    if (store_http_fenced(h, r))
        return;
    while ((rc = wire_next_op(body, len, &off, &op)) == 1)
        n++;
    if (rc < 0) {
        httpd_error(r, 400, "bad_batch", "malformed op at byte %zu", off);
        return;
    }
    metric_add(&sm_batches, 1);
    metric_add(&sm_batch_ops, (int64_t)n);
    if (n) {
        ops = malloc(n * sizeof *ops);
        res = malloc(n * sizeof *res);
        if (ops == NULL || res == NULL) {
            free(ops);
            free(res);
            store_http_fail(r, 500, "internal", "out of memory");
            return;
        }
        off = 0;
        for (size_t i = 0; i < n; i++)
            wire_next_op(body, len, &off, &ops[i]);
        t0 = store_http_now_us();
        rc = sdb_apply_batch(h->db, ops, n, res, NULL);
        lat_record(&sm_write_lat, store_http_now_us() - t0);
        if (rc != 0) {
            /* Nothing was applied: a whole-batch error tells the sender to
             * retry the batch rather than trust per-op answers. */
            int full = res[0].status == 507;
            free(ops);
            free(res);
            if (full)
                store_http_fail(r, 507, "insufficient_storage",
                                "the store is full (store.map_size_mb)");
            else
                store_http_fail(r, 500, "internal",
                                "the store could not apply the batch");
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (res[i].status == 200)
                metric_add(&sm_applied, 1);
            else if (res[i].status == 208)
                metric_add(&sm_noops, 1);
            if (wire_put_result(&out, &res[i]) != 0) {
                free(ops);
                free(res);
                wire_buf_free(&out);
                store_http_fail(r, 500, "internal", "out of memory");
                return;
            }
        }
        free(ops);
        free(res);
    }
    /* The sender (a primary's replication, or the queue) learns where this
     * replica stands without another round trip. */
    snprintf(h1, sizeof h1, "X-KV-Last-Seq: %" PRIu64, sdb_last_seq(h->db));
    snprintf(h2, sizeof h2, "X-KV-Applied-Seq: %" PRIu64,
             sdb_applied_seq(h->db));
    snprintf(h3, sizeof h3, "X-KV-Epoch: %" PRIu64, sdb_get_epoch(h->db));
    httpd_respond(r, 200, STORE_BIN, out.data ? (void *)out.data : "", out.len,
                  hdrs);
    wire_buf_free(&out);
}

/* ---- /internal/changes ------------------------------------------------ */

static void store_http_changes(store_http *h, httpd_req *r)
{
    const char *sq = httpd_query(r, "since");
    const char *lq = httpd_query(r, "limit");
    uint64_t since = 0, limit = STORE_CHANGES_DEFAULT_LIMIT, next;
    wire_buf out = {0};
    int more;
    char h1[48], h2[32], h3[48];
    const char *hdrs[] = {h1, h2, h3, NULL};

    if (!store_http_is_get(r)) {
        kvhttp_bad_method(r, "GET, HEAD");
        return;
    }
    if (sq && store_http_u64(sq, &since) != 0) {
        httpd_error(r, 400, "bad_since", "since must be an integer");
        return;
    }
    if (lq && (store_http_u64(lq, &limit) != 0 || limit == 0)) {
        httpd_error(r, 400, "bad_limit", "limit must be a positive integer");
        return;
    }
    if (limit > STORE_CHANGES_MAX_LIMIT)
        limit = STORE_CHANGES_MAX_LIMIT;
    metric_add(&sm_changes, 1);
    if (sdb_changes_since(h->db, since, (size_t)limit, STORE_CHANGES_MAX_BYTES,
                          &out, &next, &more) != 0) {
        wire_buf_free(&out);
        store_http_fail(r, 500, "internal", "the store could not read changes");
        return;
    }
    /* X-KV-Last-Seq is where to resume: pass it as the next since. */
    snprintf(h1, sizeof h1, "X-KV-Last-Seq: %" PRIu64, next);
    snprintf(h2, sizeof h2, "X-KV-More: %d", more);
    snprintf(h3, sizeof h3, "X-KV-Epoch: %" PRIu64, sdb_get_epoch(h->db));
    httpd_respond(r, 200, STORE_BIN, out.data ? (void *)out.data : "", out.len,
                  hdrs);
    wire_buf_free(&out);
}

/* ---- /health, /stats, /metrics ---------------------------------------- */

static void store_http_health(store_http *h, httpd_req *r)
{
    sdb_stats st;
    cJSON *j = cJSON_CreateObject();

    sdb_stats_get(h->db, &st);
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddNumberToObject(j, "shard", h->shard);
    cJSON_AddNumberToObject(j, "replica", h->replica);
    cJSON_AddStringToObject(j, "role", sdb_role_name(st.role));
    store_http_add_u64(j, "epoch", st.epoch);
    store_http_add_u64(j, "seq", st.last_seq);
    store_http_add_u64(j, "keys", st.keys);
    httpd_respond_json(r, 200, j, NULL);
}

static void store_http_stats(store_http *h, httpd_req *r)
{
    sdb_stats st;
    cJSON *j = cJSON_CreateObject();
    cJSON *req = cJSON_CreateObject();
    cJSON *lat = cJSON_CreateObject();

    sdb_stats_get(h->db, &st);
    cJSON_AddNumberToObject(j, "shard", h->shard);
    cJSON_AddNumberToObject(j, "replica", h->replica);
    cJSON_AddStringToObject(j, "role", sdb_role_name(st.role));
    store_http_add_u64(j, "epoch", st.epoch);
    store_http_add_u64(j, "seq", st.last_seq);
    store_http_add_u64(j, "applied_seq", st.applied_seq);
    store_http_add_u64(j, "keys", st.keys);
    store_http_add_u64(j, "tombstones", st.tombstones);
    store_http_add_u64(j, "max_version", st.max_version);
    store_http_add_u64(j, "map_size_bytes", st.map_size);
    store_http_add_u64(j, "map_used_bytes", st.map_used);
    store_http_add_i64(req, "get", metric_get(&sm_gets));
    store_http_add_i64(req, "get_misses", metric_get(&sm_get_misses));
    store_http_add_i64(req, "put", metric_get(&sm_puts));
    store_http_add_i64(req, "delete", metric_get(&sm_dels));
    store_http_add_i64(req, "incr", metric_get(&sm_incrs));
    store_http_add_i64(req, "batch", metric_get(&sm_batches));
    store_http_add_i64(req, "batch_ops", metric_get(&sm_batch_ops));
    store_http_add_i64(req, "changes", metric_get(&sm_changes));
    store_http_add_i64(req, "applied", metric_get(&sm_applied));
    store_http_add_i64(req, "noop", metric_get(&sm_noops));
    store_http_add_i64(req, "fenced", metric_get(&sm_fenced));
    store_http_add_i64(req, "errors", metric_get(&sm_errors));
    cJSON_AddItemToObject(j, "requests", req);
    store_http_add_u64(lat, "p50", lat_percentile(&sm_write_lat, 0.5));
    store_http_add_u64(lat, "p99", lat_percentile(&sm_write_lat, 0.99));
    cJSON_AddItemToObject(j, "write_latency_us", lat);
    httpd_respond_json(r, 200, j, NULL);
}

static void store_http_metrics(store_http *h, httpd_req *r)
{
    sdb_stats st;

    /* Gauges are sampled here rather than through metric.read, which has no
     * context argument to reach this store. */
    sdb_stats_get(h->db, &st);
    metric_set(&sm_keys, (int64_t)st.keys);
    metric_set(&sm_tombs, (int64_t)st.tombstones);
    metric_set(&sm_seq, (int64_t)st.last_seq);
    metric_set(&sm_epoch, (int64_t)st.epoch);
    metric_set(&sm_applied_seq, (int64_t)st.applied_seq);
    metric_set(&sm_map_used, (int64_t)st.map_used);
    metric_set(&sm_map_size, (int64_t)st.map_size);
    kvhttp_metrics(r);
}

/* ---- routing ---------------------------------------------------------- */

void store_http_handle(httpd_req *r, void *app)
{
    store_http *h = app;
    const char *path = httpd_path(r);

    if (strncmp(path, "/internal/", 10) == 0) {
        const char *rest = path + 10;
        if (h->token && kvhttp_auth(r, h->token) != 0)
            return;
        if (strncmp(rest, "kv/", 3) == 0) {
            store_http_kv(h, r, rest + 3);
            return;
        }
        if (strcmp(rest, "batch") == 0) {
            store_http_batch(h, r);
            return;
        }
        if (strcmp(rest, "changes") == 0) {
            store_http_changes(h, r);
            return;
        }
    } else if (strcmp(path, "/health") == 0 || strcmp(path, "/stats") == 0 ||
               strcmp(path, "/metrics") == 0) {
        if (!store_http_is_get(r))
            kvhttp_bad_method(r, "GET, HEAD");
        else if (path[1] == 'h')
            store_http_health(h, r);
        else if (path[1] == 's')
            store_http_stats(h, r);
        else
            store_http_metrics(h, r);
        return;
    }
    kvhttp_not_found(r);
}
