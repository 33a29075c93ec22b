#include "store_stats.h"

#include "kvhttp.h"
#include "metrics.h"
#include "recon.h"
#include "repl_send.h"
#include "role.h"
#include "store_http_internal.h"
#include "store_migrate.h"
#include "topo.h"
#include "store_reply.h"
#include "wquorum.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
METRIC_COUNTER(sm_moved, "kv_store_moved_total",
               "ops refused with 421: another shard owns the key");
METRIC_COUNTER(sm_migrating, "kv_store_migrating_total",
               "writes refused with 503 while their key moves");
METRIC_COUNTER(sm_reaped, "kv_store_reaped_total",
               "expired records the reaper turned into tombstones");
METRIC_GAUGE(sm_keys, "kv_store_keys", "live keys");
METRIC_GAUGE(sm_expiring, "kv_store_expiring",
             "records carrying an expiry, expired ones not reaped yet too");
METRIC_GAUGE(sm_tombs, "kv_store_tombstones", "tombstones kept");
METRIC_GAUGE(sm_seq, "kv_store_last_seq", "last applied sequence number");
METRIC_GAUGE(sm_epoch, "kv_store_epoch", "shard epoch this store knows");
METRIC_GAUGE(sm_applied_seq, "kv_store_applied_seq",
             "highest upstream seq applied (secondaries)");
METRIC_GAUGE(sm_map_used, "kv_store_map_used_bytes", "LMDB map in use");
METRIC_GAUGE(sm_map_size, "kv_store_map_size_bytes", "LMDB map size");
static metrics_hist sm_write_lat = {.name = "kv_store_write_seconds",
                                .help = "time to apply a write transaction"};

/* Indexed by enum store_stats_counter; also the registration order. */
static metric *const store_stats_counters[STORE_STATS_N] = {
    [STORE_STATS_GETS] = &sm_gets,
    [STORE_STATS_GET_MISSES] = &sm_get_misses,
    [STORE_STATS_PUTS] = &sm_puts,
    [STORE_STATS_DELS] = &sm_dels,
    [STORE_STATS_INCRS] = &sm_incrs,
    [STORE_STATS_BATCHES] = &sm_batches,
    [STORE_STATS_BATCH_OPS] = &sm_batch_ops,
    [STORE_STATS_APPLIED] = &sm_applied,
    [STORE_STATS_NOOPS] = &sm_noops,
    [STORE_STATS_CHANGES] = &sm_changes,
    [STORE_STATS_FENCED] = &sm_fenced,
    [STORE_STATS_ERRORS] = &sm_errors,
    [STORE_STATS_NOT_PRIMARY] = &sm_not_primary,
    [STORE_STATS_EPOCH_PENDING] = &sm_epoch_pending,
    [STORE_STATS_QUORUM_UNAVAIL] = &sm_quorum_unavail,
    [STORE_STATS_REPLICATE] = &sm_replicate,
    [STORE_STATS_REPLICATE_OPS] = &sm_replicate_ops,
    [STORE_STATS_REPAIRS] = &sm_repairs,
    [STORE_STATS_MOVED] = &sm_moved,
    [STORE_STATS_MIGRATING] = &sm_migrating,
    [STORE_STATS_REAPED] = &sm_reaped,
};

static pthread_once_t store_stats_once = PTHREAD_ONCE_INIT;

static void store_stats_register_once(void)
{
    metric *gauges[] = {&sm_keys,     &sm_expiring, &sm_tombs,
                        &sm_seq,      &sm_epoch,    &sm_applied_seq,
                        &sm_map_used, &sm_map_size};

    for (size_t i = 0; i < STORE_STATS_N; i++)
        metrics_register(store_stats_counters[i]);
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++)
        metrics_register(gauges[i]);
    metrics_register_hist(&sm_write_lat);
}

void store_stats_register(void)
{
    pthread_once(&store_stats_once, store_stats_register_once);
}

void store_stats_add(enum store_stats_counter c, int64_t n)
{
    metrics_add(store_stats_counters[c], n);
}

void store_stats_write_us(uint64_t us)
{
    metrics_hist_record(&sm_write_lat, us);
}

/* Where this store stands in its primary's stream (its own seq when it is
 * the primary; 0 while its copy is partial). The controller promotes the
 * secondary with the highest. */
static uint64_t store_stats_position(const sdb_stats *st)
{
    if (st->resyncing)
        return 0;
    if (st->role == SDB_ROLE_PRIMARY)
        return st->last_seq;
    return st->applied_seq;
}

static void store_stats_replication(store_http *h, cJSON *j,
                                    const sdb_stats *st)
{
    char primary[256];

    cJSON_AddStringToObject(j, "state", role_state(h->role));
    if (role_primary(h->role, primary, sizeof primary) == 0)
        cJSON_AddStringToObject(j, "primary", primary);
    else
        cJSON_AddNullToObject(j, "primary");
    store_reply_add_u64(j, "applied_seq", store_stats_position(st));
    cJSON_AddBoolToObject(j, "resyncing", st->resyncing);
    if (st->role == SDB_ROLE_PRIMARY) {
        cJSON *arr = cJSON_AddArrayToObject(j, "secondaries");
        repl_send_stats_json(role_repl(h->role), arr);
    }
    {
        topo_t *t = role_topo(h->role);
        store_migrate_json(h->mig, t, j);
        topo_put(t);
    }
}

void store_stats_health(store_http *h, httpd_req *r, const char *rest)
{
    sdb_stats st;
    cJSON *j = cJSON_CreateObject();

    (void)rest;
    sdb_stats_get(h->db, &st);
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddNumberToObject(j, "shard", h->shard);
    cJSON_AddNumberToObject(j, "replica", h->replica);
    cJSON_AddStringToObject(j, "role", sdb_role_name(st.role));
    store_reply_add_u64(j, "epoch", st.epoch);
    store_reply_add_u64(j, "seq", st.last_seq);
    store_reply_add_u64(j, "keys", st.keys);
    store_stats_replication(h, j, &st);
    httpd_respond_json(r, 200, j, NULL);
}

void store_stats_json(store_http *h, httpd_req *r, const char *rest)
{
    sdb_stats st;
    cJSON *j = cJSON_CreateObject();
    cJSON *req = cJSON_CreateObject();
    cJSON *lat = cJSON_CreateObject();
    cJSON *rec = cJSON_CreateObject();
    cJSON *q = cJSON_CreateObject();

    (void)rest;
    sdb_stats_get(h->db, &st);
    cJSON_AddNumberToObject(j, "shard", h->shard);
    cJSON_AddNumberToObject(j, "replica", h->replica);
    cJSON_AddStringToObject(j, "role", sdb_role_name(st.role));
    store_reply_add_u64(j, "epoch", st.epoch);
    store_reply_add_u64(j, "seq", st.last_seq);
    store_stats_replication(h, j, &st);
    store_reply_add_u64(j, "keys", st.keys);
    store_reply_add_u64(j, "expiring", st.expiring);
    store_reply_add_u64(j, "tombstones", st.tombstones);
    store_reply_add_u64(j, "gc_seq", st.gc_seq);
    store_reply_add_u64(j, "unstamped", st.unstamped);
    store_reply_add_u64(j, "max_version", st.max_version);
    store_reply_add_u64(j, "map_size_bytes", st.map_size);
    store_reply_add_u64(j, "map_used_bytes", st.map_used);
    recon_stats_json(role_recon(h->role), rec);
    cJSON_AddItemToObject(j, "reconcile", rec);
    /* The counters the tests read, also at the top level. */
    store_reply_add_u64(j, "full_resyncs", recon_full_resyncs(role_recon(h->role)));
    store_reply_add_u64(j, "catchups", recon_catchups(role_recon(h->role)));
    cJSON_AddNumberToObject(q, "write_quorum", h->write_quorum);
    cJSON_AddNumberToObject(q, "waiting", h->wqm ? (double)wquorum_waiting(h->wqm)
                                                 : 0);
    {
        size_t total, alive = repl_send_alive(role_repl(h->role), &total);
        cJSON_AddNumberToObject(q, "alive", (double)alive);
        cJSON_AddNumberToObject(q, "secondaries", (double)total);
    }
    cJSON_AddItemToObject(j, "quorum", q);
    store_reply_add_i64(req, "get", metrics_get(&sm_gets));
    store_reply_add_i64(req, "get_misses", metrics_get(&sm_get_misses));
    store_reply_add_i64(req, "put", metrics_get(&sm_puts));
    store_reply_add_i64(req, "delete", metrics_get(&sm_dels));
    store_reply_add_i64(req, "incr", metrics_get(&sm_incrs));
    store_reply_add_i64(req, "batch", metrics_get(&sm_batches));
    store_reply_add_i64(req, "batch_ops", metrics_get(&sm_batch_ops));
    store_reply_add_i64(req, "changes", metrics_get(&sm_changes));
    store_reply_add_i64(req, "replicate", metrics_get(&sm_replicate));
    store_reply_add_i64(req, "replicate_ops", metrics_get(&sm_replicate_ops));
    store_reply_add_i64(req, "repair_ops", metrics_get(&sm_repairs));
    store_reply_add_i64(req, "applied", metrics_get(&sm_applied));
    store_reply_add_i64(req, "noop", metrics_get(&sm_noops));
    store_reply_add_i64(req, "fenced", metrics_get(&sm_fenced));
    store_reply_add_i64(req, "epoch_pending", metrics_get(&sm_epoch_pending));
    store_reply_add_i64(req, "not_primary", metrics_get(&sm_not_primary));
    store_reply_add_i64(req, "quorum_unavailable",
                       metrics_get(&sm_quorum_unavail));
    store_reply_add_i64(req, "moved", metrics_get(&sm_moved));
    store_reply_add_i64(req, "migrating", metrics_get(&sm_migrating));
    store_reply_add_i64(req, "reaped", metrics_get(&sm_reaped));
    store_reply_add_i64(req, "errors", metrics_get(&sm_errors));
    cJSON_AddItemToObject(j, "requests", req);
    store_reply_add_u64(lat, "p50", metrics_hist_percentile(&sm_write_lat, 0.5));
    store_reply_add_u64(lat, "p99", metrics_hist_percentile(&sm_write_lat, 0.99));
    cJSON_AddItemToObject(j, "write_latency_us", lat);
    httpd_respond_json(r, 200, j, NULL);
}

void store_stats_metrics(store_http *h, httpd_req *r, const char *rest)
{
    sdb_stats st;

    /* Gauges are sampled here rather than through metric.read, which has no
     * context argument to reach this store. */
    (void)rest;
    sdb_stats_get(h->db, &st);
    metrics_set(&sm_keys, (int64_t)st.keys);
    metrics_set(&sm_expiring, (int64_t)st.expiring);
    metrics_set(&sm_tombs, (int64_t)st.tombstones);
    metrics_set(&sm_seq, (int64_t)st.last_seq);
    metrics_set(&sm_epoch, (int64_t)st.epoch);
    metrics_set(&sm_applied_seq, (int64_t)store_stats_position(&st));
    metrics_set(&sm_map_used, (int64_t)st.map_used);
    metrics_set(&sm_map_size, (int64_t)st.map_size);
    /* Per-secondary lines come from repl_send's own render callback. */
    kvhttp_metrics(r);
}

/* ---- routing ---------------------------------------------------------- */
