#include "http.h"

#include "clock.h"
#include "kvhdr.h"
#include "kvhttp.h"
#include "log.h"
#include "metrics.h"
#include "num.h"
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
/* Full-resync snapshots a primary keeps open, and how long one may idle. */
#define STORE_SNAPS 8
#define STORE_SNAP_IDLE_US (30u * 1000000u)

typedef struct store_snap_slot {
    uint64_t id;          /* 0 = free */
    sdb_snap *snap;
    uint64_t used_us;
    int busy;
} store_snap_slot;

struct store_http {
    sdb *db;
    role_t *role;
    wquorum *wqm;
    unsigned write_quorum;
    unsigned shard, replica;
    char *token;          /* NULL when /internal/ needs no token */
    size_t max_key, max_value;
    int (*may_apply)(void *arg);
    void *may_apply_arg;
    pthread_mutex_t snap_mu;
    store_snap_slot snaps[STORE_SNAPS];
    uint64_t next_snap;
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
METRIC_COUNTER(sm_not_primary, "kv_store_not_primary_total",
               "writes refused because this store is not the primary");
METRIC_COUNTER(sm_epoch_pending, "kv_store_epoch_pending_total",
               "requests from a newer epoch answered 503 while re-reading");
METRIC_COUNTER(sm_quorum_unavail, "kv_store_quorum_unavailable_total",
               "writes refused with 503: fewer than W secondaries alive");
METRIC_COUNTER(sm_replicate, "kv_store_replicate_requests_total",
               "POST /internal/replicate (secondaries)");
METRIC_COUNTER(sm_replicate_ops, "kv_store_replicate_ops_total",
               "ops received from the primary's stream");
METRIC_COUNTER(sm_repairs, "kv_store_repair_ops_total",
               "ops received by POST /internal/repair");
METRIC_GAUGE(sm_keys, "kv_store_keys", "live keys");
METRIC_GAUGE(sm_tombs, "kv_store_tombstones", "tombstones kept");
METRIC_GAUGE(sm_seq, "kv_store_last_seq", "last applied sequence number");
METRIC_GAUGE(sm_epoch, "kv_store_epoch", "shard epoch this store knows");
METRIC_GAUGE(sm_applied_seq, "kv_store_applied_seq",
             "highest upstream seq applied (secondaries)");
METRIC_GAUGE(sm_map_used, "kv_store_map_used_bytes", "LMDB map in use");
METRIC_GAUGE(sm_map_size, "kv_store_map_size_bytes", "LMDB map size");
static metrics_hist sm_write_lat = {.name = "kv_store_write_seconds",
                                .help = "time to apply a write transaction"};

static pthread_once_t store_http_metrics_once = PTHREAD_ONCE_INIT;

static void store_http_metrics_init(void)
{
    metric *all[] = {&sm_gets,   &sm_get_misses, &sm_puts,    &sm_dels,
                     &sm_incrs,  &sm_batches,    &sm_batch_ops, &sm_applied,
                     &sm_noops,  &sm_changes,    &sm_fenced,  &sm_errors,
                     &sm_not_primary, &sm_epoch_pending, &sm_quorum_unavail,
                     &sm_replicate, &sm_replicate_ops, &sm_repairs,
                     &sm_keys,   &sm_tombs,      &sm_seq,     &sm_epoch,
                     &sm_applied_seq, &sm_map_used, &sm_map_size};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        metrics_register(all[i]);
    metrics_register_hist(&sm_write_lat);
}

#define store_http_now_us clock_mono_us

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
    h->role = o->role;
    h->wqm = o->wqm;
    h->write_quorum = o->wqm ? o->write_quorum : 0;
    pthread_mutex_init(&h->snap_mu, NULL);
    h->shard = o->shard;
    h->replica = o->replica;
    h->max_key = o->max_key_bytes ? o->max_key_bytes : 1024;
    h->max_value = o->max_value_bytes;
    h->may_apply = o->may_apply;
    h->may_apply_arg = o->may_apply_arg;
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
    for (size_t i = 0; i < STORE_SNAPS; i++)
        sdb_snap_close(h->snaps[i].snap);
    pthread_mutex_destroy(&h->snap_mu);
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
        metrics_add(&sm_errors, 1);
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

/* {"error":code,"message":msg,<field>:<v>} with an optional header. */
static void store_http_error_u64(httpd_req *r, unsigned status,
                                 const char *const *hdrs, const char *code,
                                 const char *msg, const char *field,
                                 uint64_t v)
{
    cJSON *j = cJSON_CreateObject();
    char num[24];

    if (status >= 500)
        metrics_add(&sm_errors, 1);
    cJSON_AddStringToObject(j, "error", code);
    cJSON_AddStringToObject(j, "message", msg);
    if (field) {
        snprintf(num, sizeof num, "%" PRIu64, v);
        cJSON_AddRawToObject(j, field, num);
    }
    httpd_respond_json(r, status, j, hdrs);
}

/* Checks X-KV-Epoch: answers and returns 1 when the request is from
 * another epoch (409 older, 503 newer after asking for the topology).
 * *epoch gets the request's epoch (the store's when absent). */
static int store_http_fenced(store_http *h, httpd_req *r, uint64_t *epoch)
{
    const char *e = httpd_header(r, KVHDR_EPOCH);
    uint64_t got, cur = sdb_get_epoch(h->db);
    char hdr[KVHDR_EPOCH_MAX], msg[160];
    const char *hdrs[] = {hdr, NULL};

    if (epoch)
        *epoch = cur;
    if (e == NULL)
        return 0;
    if (store_http_u64(e, &got) != 0) {
        httpd_error(r, 400, "bad_epoch", "X-KV-Epoch must be an integer");
        return 1;
    }
    if (epoch)
        *epoch = got;
    if (got == cur)
        return 0;
    kvhdr_epoch(hdr, sizeof hdr, cur);
    if (got < cur) {
        metrics_add(&sm_fenced, 1);
        snprintf(msg, sizeof msg,
                 "epoch %" PRIu64 " is older than this store's %" PRIu64, got,
                 cur);
        store_http_error_u64(r, 409, hdrs, "stale_epoch", msg, "epoch", cur);
        return 1;
    }
    /* Newer than ours: we are behind the topology. Catch up first. */
    role_poke(h->role);
    metrics_add(&sm_epoch_pending, 1);
    {
        static const char retry[] = "Retry-After: 1";
        const char *h2[] = {hdr, retry, NULL};
        snprintf(msg, sizeof msg,
                 "epoch %" PRIu64 " is newer than this store's %" PRIu64
                 "; it is re-reading the topology", got, cur);
        cJSON *j = cJSON_CreateObject();
        char num[24];
        cJSON_AddStringToObject(j, "error", "epoch_pending");
        cJSON_AddStringToObject(j, "message", msg);
        snprintf(num, sizeof num, "%" PRIu64, cur);
        cJSON_AddRawToObject(j, "epoch", num);
        httpd_respond_json(r, 503, j, h2);
    }
    return 1;
}

/* The lab's lease (store_http_opts.may_apply): 503 lease_expired (1) while
 * this store may have been replaced; nothing is applied then. */
static int store_http_no_lease(store_http *h, httpd_req *r)
{
    static const char body[] =
        "{\"error\":\"lease_expired\",\"message\":\"this store has no "
        "current lease from the controller (it may have been replaced); it "
        "applies nothing until a heartbeat is acknowledged\"}";
    static const char *const rh[] = {"Retry-After: 1", NULL};

    if (h->may_apply == NULL || h->may_apply(h->may_apply_arg))
        return 0;
    metrics_add(&sm_errors, 1);
    httpd_respond(r, 503, STORE_JSON, body, sizeof body - 1, rh);
    return 1;
}

/* A client write reaching a secondary: 409 not_primary naming the primary,
 * so that a queue with an old topology learns. 1 when answered. */
static int store_http_not_primary(store_http *h, httpd_req *r)
{
    char primary[256];
    cJSON *j;

    if (sdb_get_role(h->db) == SDB_ROLE_PRIMARY &&
        strcmp(role_state(h->role), "primary") == 0)
        return 0;
    metrics_add(&sm_not_primary, 1);
    role_poke(h->role);
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", "not_primary");
    cJSON_AddStringToObject(j, "message",
                            "this store is not the shard's primary");
    if (role_primary(h->role, primary, sizeof primary) == 0 &&
        strcmp(primary, "") != 0)
        cJSON_AddStringToObject(j, "primary", primary);
    else
        cJSON_AddNullToObject(j, "primary");
    httpd_respond_json(r, 409, j, NULL);
    return 1;
}

/* W > 0: 503 quorum_unavailable (1) when fewer than W secondaries are
 * alive; nothing is applied then. */
static int store_http_quorum_gone(store_http *h, httpd_req *r)
{
    size_t alive, total;
    cJSON *j;
    char num[24];
    static const char retry[] = "Retry-After: 1";
    const char *hdrs[] = {retry, NULL};

    if (h->write_quorum == 0)
        return 0;
    alive = repl_send_alive(role_repl(h->role), &total);
    if (alive >= h->write_quorum)
        return 0;
    metrics_add(&sm_quorum_unavail, 1);
    metrics_add(&sm_errors, 1);
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", "quorum_unavailable");
    cJSON_AddStringToObject(j, "message",
                            "fewer than W secondaries are alive; nothing "
                            "was written");
    snprintf(num, sizeof num, "%zu", alive);
    cJSON_AddRawToObject(j, "alive", num);
    snprintf(num, sizeof num, "%u", h->write_quorum);
    cJSON_AddRawToObject(j, "required", num);
    snprintf(num, sizeof num, "%zu", total);
    cJSON_AddRawToObject(j, "secondaries", num);
    httpd_respond_json(r, 503, j, hdrs);
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
        metrics_add(&sm_get_misses, 1);
        httpd_respond(r, 404, STORE_JSON, notfound, sizeof notfound - 1, NULL);
        return;
    }
    snprintf(hdr, sizeof hdr, "X-KV-Version: %" PRIu64, rec->version);
    if (rec->flags & SDB_F_TOMBSTONE) {
        metrics_add(&sm_get_misses, 1);
        httpd_respond(r, 404, STORE_JSON, deleted, sizeof deleted - 1, hdrs);
        return;
    }
    /* The one copy of the value: from the LMDB map into the response. */
    httpd_respond(r, 200, STORE_BIN, rec->val, rec->val_len, hdrs);
}

static void store_http_get(store_http *h, httpd_req *r, const store_key *k)
{
    metrics_add(&sm_gets, 1);
    if (sdb_resyncing(h->db)) {
        static const char resync[] =
            "{\"error\":\"resyncing\",\"message\":\"this replica is in a "
            "full resync and its copy is incomplete\"}";
        static const char *const rh[] = {"Retry-After: 1", NULL};
        httpd_respond(r, 503, STORE_JSON, resync, sizeof resync - 1, rh);
        return;
    }
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

    if (store_http_fenced(h, r, NULL) || store_http_not_primary(h, r))
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
        metrics_add(&sm_puts, 1);
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
        metrics_add(&sm_incrs, 1);
    } else {
        metrics_add(&sm_dels, 1);
    }

    if (store_http_quorum_gone(h, r))
        return;
    t0 = store_http_now_us();
    sdb_apply_as(h->db, SDB_APPLY_WRITE, &op, 1, &res, &info);
    metrics_hist_record(&sm_write_lat, store_http_now_us() - t0);
    if (res.status != 200 && res.status != 208) {
        store_http_op_error(r, &res, &info, h);
        return;
    }
    metrics_add(res.status == 200 ? &sm_applied : &sm_noops, 1);
    if (res.status == 200)
        repl_send_notify(role_repl(h->role));

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
    if (h->write_quorum) {
        /* A no-op (208) waits for everything applied so far: the record
         * it found may not have reached the secondaries yet. */
        uint64_t seq = res.status == 200 ? info.seq : sdb_last_seq(h->db);
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (text == NULL) {
            store_http_fail(r, 500, "internal", "out of memory");
            return;
        }
        wquorum_wait(h->wqm, r, seq, 200, STORE_JSON, text, strlen(text),
                     NULL);
        return;
    }
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

/* ---- wire bodies ------------------------------------------------------ */

/* Decodes a wire body into a malloc'd op array (*ops, NULL when empty).
 * Answers 400 itself and returns -1 on a malformed body. */
static int store_http_ops(httpd_req *r, wire_op **ops, size_t *n)
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
        store_http_fail(r, 500, "internal", "out of memory");
        return -1;
    }
    off = 0;
    for (size_t i = 0; i < cnt; i++)
        wire_next_op(body, len, &off, &(*ops)[i]);
    *n = cnt;
    return 0;
}

/* Answers a failed transaction (nothing applied). */
static void store_http_txn_failed(httpd_req *r, const wire_result *res)
{
    if (res[0].status == 507)
        store_http_fail(r, 507, "insufficient_storage",
                        "the store is full (store.map_size_mb)");
    else
        store_http_fail(r, 500, "internal", "the store could not apply the "
                                            "batch");
}

/* One wire_result per op into out; counts applied and no-ops. 0 or -1. */
static int store_http_results(const wire_result *res, size_t n, wire_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (res[i].status == 200)
            metrics_add(&sm_applied, 1);
        else if (res[i].status == 208)
            metrics_add(&sm_noops, 1);
        if (wire_put_result(out, &res[i]) != 0)
            return -1;
    }
    return 0;
}

/* ---- /internal/batch -------------------------------------------------- */

static void store_http_batch(store_http *h, httpd_req *r)
{
    size_t n = 0;
    wire_op *ops = NULL;
    wire_result *res = NULL;
    sdb_opinfo *info = NULL;
    wire_buf out = {0};
    char h1[48], h2[48], h3[48];
    const char *hdrs[] = {h1, h2, h3, NULL};
    uint64_t t0, wait_seq = 0;
    int noop = 0, applied = 0;

    if (!httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        return;
    }
    if (store_http_fenced(h, r, NULL) || store_http_not_primary(h, r))
        return;
    if (store_http_ops(r, &ops, &n) != 0)
        return;
    metrics_add(&sm_batches, 1);
    metrics_add(&sm_batch_ops, (int64_t)n);
    if (n && store_http_quorum_gone(h, r)) {
        free(ops);
        return;
    }
    if (n) {
        res = malloc(n * sizeof *res);
        info = malloc(n * sizeof *info);
        if (res == NULL || info == NULL) {
            free(ops);
            free(res);
            free(info);
            store_http_fail(r, 500, "internal", "out of memory");
            return;
        }
        t0 = store_http_now_us();
        /* Senders other than a primary send seq 0; a seq is ignored here. */
        if (sdb_apply_as(h->db, SDB_APPLY_WRITE, ops, n, res, info) != 0) {
            /* Nothing was applied: a whole-batch error tells the sender to
             * retry the batch rather than trust per-op answers. */
            store_http_txn_failed(r, res);
            free(ops);
            free(res);
            free(info);
            return;
        }
        metrics_hist_record(&sm_write_lat, store_http_now_us() - t0);
        for (size_t i = 0; i < n; i++) {
            if (res[i].status == 200) {
                applied = 1;
                if (info[i].seq > wait_seq)
                    wait_seq = info[i].seq;
            } else if (res[i].status == 208) {
                noop = 1;
            }
        }
        if (store_http_results(res, n, &out) != 0) {
            free(ops);
            free(res);
            free(info);
            wire_buf_free(&out);
            store_http_fail(r, 500, "internal", "out of memory");
            return;
        }
        free(ops);
        free(res);
        free(info);
    }
    if (applied)
        repl_send_notify(role_repl(h->role));
    /* The sender (the queue) learns where this replica stands without
     * another round trip. */
    snprintf(h1, sizeof h1, "X-KV-Last-Seq: %" PRIu64, sdb_last_seq(h->db));
    snprintf(h2, sizeof h2, "X-KV-Applied-Seq: %" PRIu64,
             sdb_applied_seq(h->db));
    kvhdr_epoch(h3, sizeof h3, sdb_get_epoch(h->db));
    if (h->write_quorum && (applied || noop)) {
        if (noop) {
            /* A 208 found a record at least as new; it may not have
             * reached the secondaries yet: wait for all we applied. */
            uint64_t last = sdb_last_seq(h->db);
            if (last > wait_seq)
                wait_seq = last;
        }
        wquorum_wait(h->wqm, r, wait_seq, 200, STORE_BIN, (char *)out.data,
                     out.len, hdrs);
        return;
    }
    httpd_respond(r, 200, STORE_BIN, out.data ? (void *)out.data : "", out.len,
                  hdrs);
    wire_buf_free(&out);
}

/* ---- /internal/replicate (secondary) ------------------------------------ */

static void store_http_applied(httpd_req *r, uint64_t applied, int gap)
{
    char body[96];
    int n = snprintf(body, sizeof body, "{\"applied_seq\":%" PRIu64 "%s}",
                     applied, gap ? ",\"gap\":true" : "");
    httpd_respond(r, 200, STORE_JSON, body, (size_t)n, NULL);
}

static void store_http_replicate(store_http *h, httpd_req *r)
{
    const char *sq = httpd_header(r, "X-KV-Since");
    const char *uq = httpd_header(r, "X-KV-Upto");
    const char *gq = httpd_header(r, "X-KV-Gc-Seq");
    uint64_t epoch, since = 0, upto = 0, gc, applied = 0;
    wire_op *ops = NULL;
    wire_result *res = NULL;
    size_t n = 0;
    int rc;

    if (!httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        return;
    }
    metrics_add(&sm_replicate, 1);
    if (httpd_header(r, KVHDR_EPOCH) == NULL) {
        httpd_error(r, 400, "bad_epoch", "replication needs X-KV-Epoch");
        return;
    }
    if (store_http_fenced(h, r, &epoch))
        return;
    if (store_http_no_lease(h, r))
        return;
    if (sdb_get_role(h->db) == SDB_ROLE_PRIMARY) {
        log_warn("replicate: another store streams to us at our own epoch "
                 "%" PRIu64 " while we are primary", epoch);
        role_poke(h->role);
        store_http_error_u64(r, 409, NULL, "not_secondary",
                             "this store is a primary at this epoch",
                             "epoch", epoch);
        return;
    }
    if (sdb_resyncing(h->db) || strcmp(role_state(h->role), "rejoining") == 0) {
        static const char *const rh[] = {"Retry-After: 1", NULL};
        store_http_error_u64(r, 503, rh, "resyncing",
                             "this replica is resyncing from its primary",
                             "applied_seq", 0);
        return;
    }
    if ((sq && store_http_u64(sq, &since) != 0) ||
        (uq && store_http_u64(uq, &upto) != 0) ||
        (gq && store_http_u64(gq, &gc) != 0)) {
        httpd_error(r, 400, "bad_header",
                    "X-KV-Since, X-KV-Upto and X-KV-Gc-Seq are integers");
        return;
    }
    if (gq)
        recon_note_gc(role_recon(h->role), gc);
    if (uq == NULL) {
        /* A heartbeat: just say where we are. */
        store_http_applied(r, sdb_applied_seq(h->db), 0);
        return;
    }
    if (store_http_ops(r, &ops, &n) != 0)
        return;
    if (n && (res = malloc(n * sizeof *res)) == NULL) {
        free(ops);
        store_http_fail(r, 500, "internal", "out of memory");
        return;
    }
    metrics_add(&sm_replicate_ops, (int64_t)n);
    rc = sdb_replicate(h->db, ops, n,
                       &(sdb_repl_args){.epoch = epoch, .since = since,
                                        .upto = upto},
                       res, &applied);
    if (rc < 0)
        store_http_txn_failed(r, res);
    else if (rc == SDB_REPL_EPOCH)
        store_http_error_u64(r, 503, NULL, "epoch_pending",
                             "the epoch changed while applying", "epoch",
                             sdb_get_epoch(h->db));
    else if (rc == SDB_REPL_RESYNC)
        store_http_error_u64(r, 503, NULL, "resyncing",
                             "this replica is resyncing from its primary",
                             "applied_seq", 0);
    else
        store_http_applied(r, applied, rc == SDB_REPL_GAP);
    free(ops);
    free(res);
}

/* ---- /internal/repair --------------------------------------------------- */

static void store_http_repair(store_http *h, httpd_req *r)
{
    wire_op *ops = NULL;
    wire_result *res = NULL;
    wire_buf out = {0};
    size_t n = 0;
    int applied = 0;

    if (!httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        return;
    }
    if (store_http_fenced(h, r, NULL))
        return;
    if (store_http_no_lease(h, r))
        return;
    if (store_http_ops(r, &ops, &n) != 0)
        return;
    metrics_add(&sm_repairs, (int64_t)n);
    if (n) {
        if ((res = malloc(n * sizeof *res)) == NULL) {
            free(ops);
            store_http_fail(r, 500, "internal", "out of memory");
            return;
        }
        if (sdb_apply_as(h->db, SDB_APPLY_REPAIR, ops, n, res, NULL) != 0) {
            store_http_txn_failed(r, res);
            free(ops);
            free(res);
            return;
        }
        for (size_t i = 0; i < n; i++)
            applied |= res[i].status == 200;
        if (store_http_results(res, n, &out) != 0) {
            free(ops);
            free(res);
            wire_buf_free(&out);
            store_http_fail(r, 500, "internal", "out of memory");
            return;
        }
    }
    free(ops);
    free(res);
    if (applied && sdb_get_role(h->db) == SDB_ROLE_PRIMARY)
        repl_send_notify(role_repl(h->role));
    httpd_respond(r, 200, STORE_BIN, out.data ? (void *)out.data : "", out.len,
                  NULL);
    wire_buf_free(&out);
}

/* ---- /internal/changes ------------------------------------------------ */

/* Closes snapshots idle for too long. snap_mu held. */
static void store_http_snaps_expire(store_http *h, uint64_t now)
{
    for (size_t i = 0; i < STORE_SNAPS; i++) {
        store_snap_slot *s = &h->snaps[i];
        if (s->id && !s->busy && now - s->used_us > STORE_SNAP_IDLE_US) {
            log_info("changes: resync snapshot %" PRIu64 " expired", s->id);
            sdb_snap_close(s->snap);
            memset(s, 0, sizeof *s);
        }
    }
}

/* Registers snap; its id, or 0 when every slot is busy (then it is closed
 * and the resync goes on from fresh snapshots: still correct, since a
 * key's seq only grows). */
static uint64_t store_http_snap_add(store_http *h, sdb_snap *snap)
{
    uint64_t now = store_http_now_us(), id = 0;
    store_snap_slot *slot = NULL;

    pthread_mutex_lock(&h->snap_mu);
    store_http_snaps_expire(h, now);
    for (size_t i = 0; i < STORE_SNAPS && slot == NULL; i++)
        if (h->snaps[i].id == 0)
            slot = &h->snaps[i];
    for (size_t i = 0; i < STORE_SNAPS && slot == NULL; i++)
        if (!h->snaps[i].busy) {
            /* Full: the least recently used idle one goes. */
            store_snap_slot *lru = &h->snaps[i];
            for (size_t k = i + 1; k < STORE_SNAPS; k++)
                if (!h->snaps[k].busy && h->snaps[k].used_us < lru->used_us)
                    lru = &h->snaps[k];
            sdb_snap_close(lru->snap);
            memset(lru, 0, sizeof *lru);
            slot = lru;
        }
    if (slot) {
        id = ++h->next_snap;
        slot->id = id;
        slot->snap = snap;
        slot->used_us = now;
    }
    pthread_mutex_unlock(&h->snap_mu);
    if (slot == NULL)
        sdb_snap_close(snap);
    return id;
}

static void store_http_changes(store_http *h, httpd_req *r)
{
    const char *sq = httpd_query(r, "since");
    const char *lq = httpd_query(r, "limit");
    const char *snq = httpd_query(r, "snapshot");
    uint64_t since = 0, limit = STORE_CHANGES_DEFAULT_LIMIT, next, snap_id = 0;
    wire_buf out = {0};
    store_snap_slot *slot = NULL;
    sdb_snap *snap = NULL;
    int more, rc;
    char h1[48], h2[32], h3[48], h4[48], h5[48];
    const char *hdrs[6] = {h1, h2, h3, h4, NULL, NULL};

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
    if (snq && (store_http_u64(snq, &snap_id) != 0 || snap_id == 0)) {
        httpd_error(r, 400, "bad_snapshot", "snapshot must be an id");
        return;
    }
    if (store_http_fenced(h, r, NULL))
        return;
    if (limit > STORE_CHANGES_MAX_LIMIT)
        limit = STORE_CHANGES_MAX_LIMIT;
    metrics_add(&sm_changes, 1);
    if (snap_id) {
        pthread_mutex_lock(&h->snap_mu);
        for (size_t i = 0; i < STORE_SNAPS; i++)
            if (h->snaps[i].id == snap_id && !h->snaps[i].busy) {
                slot = &h->snaps[i];
                slot->busy = 1;
            }
        pthread_mutex_unlock(&h->snap_mu);
        if (slot == NULL) {
            httpd_error(r, 410, "snapshot_gone",
                        "resync snapshot %" PRIu64 " expired or is in use; "
                        "start the resync over", snap_id);
            return;
        }
        rc = sdb_snap_changes(slot->snap, since, (size_t)limit,
                              STORE_CHANGES_MAX_BYTES, &out, &next, &more);
        pthread_mutex_lock(&h->snap_mu);
        slot->busy = 0;
        slot->used_us = store_http_now_us();
        if (rc != 0 || !more) {
            sdb_snap_close(slot->snap);
            memset(slot, 0, sizeof *slot);
        }
        pthread_mutex_unlock(&h->snap_mu);
    } else {
        if (since > sdb_last_seq(h->db)) {
            /* The asker holds seqs we never gave: another history. */
            store_http_error_u64(r, 409, NULL, "seq_ahead",
                                 "since is past this store's last seq",
                                 "seq", sdb_last_seq(h->db));
            return;
        }
        if (since == 0)
            snap = sdb_snap_open(h->db);
        if (snap)
            rc = sdb_snap_changes(snap, since, (size_t)limit,
                                  STORE_CHANGES_MAX_BYTES, &out, &next, &more);
        else
            rc = sdb_changes_since(h->db, since, (size_t)limit,
                                   STORE_CHANGES_MAX_BYTES, &out, &next, &more);
        if (snap && rc == 0 && more) {
            snap_id = store_http_snap_add(h, snap);
            if (snap_id) {
                snprintf(h5, sizeof h5, "X-KV-Snapshot: %" PRIu64, snap_id);
                hdrs[4] = h5;
            }
        } else {
            sdb_snap_close(snap);
        }
    }
    if (rc != 0) {
        wire_buf_free(&out);
        store_http_fail(r, 500, "internal", "the store could not read changes");
        return;
    }
    /* X-KV-Last-Seq is where to resume: pass it as the next since. */
    snprintf(h1, sizeof h1, "X-KV-Last-Seq: %" PRIu64, next);
    snprintf(h2, sizeof h2, "X-KV-More: %d", more);
    kvhdr_epoch(h3, sizeof h3, sdb_get_epoch(h->db));
    snprintf(h4, sizeof h4, "X-KV-Gc-Seq: %" PRIu64, sdb_gc_seq(h->db));
    httpd_respond(r, 200, STORE_BIN, out.data ? (void *)out.data : "", out.len,
                  hdrs);
    wire_buf_free(&out);
}

/* ---- /health, /stats, /metrics ---------------------------------------- */

/* Where this store stands in its primary's stream (its own seq when it is
 * the primary; 0 while its copy is partial). The controller promotes the
 * secondary with the highest. */
static uint64_t store_http_position(const sdb_stats *st)
{
    if (st->resyncing)
        return 0;
    if (st->role == SDB_ROLE_PRIMARY)
        return st->last_seq;
    return st->applied_seq;
}

static void store_http_replication(store_http *h, cJSON *j,
                                   const sdb_stats *st)
{
    char primary[256];

    cJSON_AddStringToObject(j, "state", role_state(h->role));
    if (role_primary(h->role, primary, sizeof primary) == 0)
        cJSON_AddStringToObject(j, "primary", primary);
    else
        cJSON_AddNullToObject(j, "primary");
    store_http_add_u64(j, "applied_seq", store_http_position(st));
    cJSON_AddBoolToObject(j, "resyncing", st->resyncing);
    if (st->role == SDB_ROLE_PRIMARY) {
        cJSON *arr = cJSON_AddArrayToObject(j, "secondaries");
        repl_send_stats_json(role_repl(h->role), arr);
    }
}

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
    store_http_replication(h, j, &st);
    httpd_respond_json(r, 200, j, NULL);
}

static void store_http_stats(store_http *h, httpd_req *r)
{
    sdb_stats st;
    cJSON *j = cJSON_CreateObject();
    cJSON *req = cJSON_CreateObject();
    cJSON *lat = cJSON_CreateObject();
    cJSON *rec = cJSON_CreateObject();
    cJSON *q = cJSON_CreateObject();

    sdb_stats_get(h->db, &st);
    cJSON_AddNumberToObject(j, "shard", h->shard);
    cJSON_AddNumberToObject(j, "replica", h->replica);
    cJSON_AddStringToObject(j, "role", sdb_role_name(st.role));
    store_http_add_u64(j, "epoch", st.epoch);
    store_http_add_u64(j, "seq", st.last_seq);
    store_http_replication(h, j, &st);
    store_http_add_u64(j, "keys", st.keys);
    store_http_add_u64(j, "tombstones", st.tombstones);
    store_http_add_u64(j, "gc_seq", st.gc_seq);
    store_http_add_u64(j, "unstamped", st.unstamped);
    store_http_add_u64(j, "max_version", st.max_version);
    store_http_add_u64(j, "map_size_bytes", st.map_size);
    store_http_add_u64(j, "map_used_bytes", st.map_used);
    recon_stats_json(role_recon(h->role), rec);
    cJSON_AddItemToObject(j, "reconcile", rec);
    /* The counters the tests read, also at the top level. */
    store_http_add_u64(j, "full_resyncs", recon_full_resyncs(role_recon(h->role)));
    store_http_add_u64(j, "catchups", recon_catchups(role_recon(h->role)));
    cJSON_AddNumberToObject(q, "write_quorum", h->write_quorum);
    cJSON_AddNumberToObject(q, "waiting", h->wqm ? (double)wquorum_waiting(h->wqm)
                                                 : 0);
    {
        size_t total, alive = repl_send_alive(role_repl(h->role), &total);
        cJSON_AddNumberToObject(q, "alive", (double)alive);
        cJSON_AddNumberToObject(q, "secondaries", (double)total);
    }
    cJSON_AddItemToObject(j, "quorum", q);
    store_http_add_i64(req, "get", metrics_get(&sm_gets));
    store_http_add_i64(req, "get_misses", metrics_get(&sm_get_misses));
    store_http_add_i64(req, "put", metrics_get(&sm_puts));
    store_http_add_i64(req, "delete", metrics_get(&sm_dels));
    store_http_add_i64(req, "incr", metrics_get(&sm_incrs));
    store_http_add_i64(req, "batch", metrics_get(&sm_batches));
    store_http_add_i64(req, "batch_ops", metrics_get(&sm_batch_ops));
    store_http_add_i64(req, "changes", metrics_get(&sm_changes));
    store_http_add_i64(req, "replicate", metrics_get(&sm_replicate));
    store_http_add_i64(req, "replicate_ops", metrics_get(&sm_replicate_ops));
    store_http_add_i64(req, "repair_ops", metrics_get(&sm_repairs));
    store_http_add_i64(req, "applied", metrics_get(&sm_applied));
    store_http_add_i64(req, "noop", metrics_get(&sm_noops));
    store_http_add_i64(req, "fenced", metrics_get(&sm_fenced));
    store_http_add_i64(req, "epoch_pending", metrics_get(&sm_epoch_pending));
    store_http_add_i64(req, "not_primary", metrics_get(&sm_not_primary));
    store_http_add_i64(req, "quorum_unavailable",
                       metrics_get(&sm_quorum_unavail));
    store_http_add_i64(req, "errors", metrics_get(&sm_errors));
    cJSON_AddItemToObject(j, "requests", req);
    store_http_add_u64(lat, "p50", metrics_hist_percentile(&sm_write_lat, 0.5));
    store_http_add_u64(lat, "p99", metrics_hist_percentile(&sm_write_lat, 0.99));
    cJSON_AddItemToObject(j, "write_latency_us", lat);
    httpd_respond_json(r, 200, j, NULL);
}

static void store_http_metrics(store_http *h, httpd_req *r)
{
    sdb_stats st;
    size_t len, plen;
    char *text, *peers, *all;

    /* Gauges are sampled here rather than through metric.read, which has no
     * context argument to reach this store. */
    sdb_stats_get(h->db, &st);
    metrics_set(&sm_keys, (int64_t)st.keys);
    metrics_set(&sm_tombs, (int64_t)st.tombstones);
    metrics_set(&sm_seq, (int64_t)st.last_seq);
    metrics_set(&sm_epoch, (int64_t)st.epoch);
    metrics_set(&sm_applied_seq, (int64_t)store_http_position(&st));
    metrics_set(&sm_map_used, (int64_t)st.map_used);
    metrics_set(&sm_map_size, (int64_t)st.map_size);
    peers = repl_send_metrics_text(role_repl(h->role));
    if (peers == NULL || peers[0] == '\0') {
        free(peers);
        kvhttp_metrics(r);
        return;
    }
    /* The registry plus one labelled line per secondary. */
    text = metrics_render(&len);
    plen = strlen(peers);
    all = text ? malloc(len + plen + 1) : NULL;
    if (all == NULL) {
        free(text);
        free(peers);
        store_http_fail(r, 500, "internal", "out of memory");
        return;
    }
    memcpy(all, text, len);
    memcpy(all + len, peers, plen + 1);
    httpd_respond(r, 200, "text/plain; version=0.0.4", all, len + plen, NULL);
    free(all);
    free(text);
    free(peers);
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
        if (strcmp(rest, "replicate") == 0) {
            store_http_replicate(h, r);
            return;
        }
        if (strcmp(rest, "changes") == 0) {
            store_http_changes(h, r);
            return;
        }
        if (strcmp(rest, "repair") == 0) {
            store_http_repair(h, r);
            return;
        }
        if (strcmp(rest, "topology-changed") == 0) {
            if (!httpd_method_is(r, "POST")) {
                kvhttp_bad_method(r, "POST");
                return;
            }
            role_poke(h->role);
            kvhttp_ok(r, NULL);
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
