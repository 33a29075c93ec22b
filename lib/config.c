#include "config.h"

#include "json_whole.h"
#include "num.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum config_type { CONFIG_INT, CONFIG_STR };

/* One row per field: the single place that names, defaults, bounds and
 * documents it. */
typedef struct config_field {
    const char *path;
    const char *env;
    enum config_type type;
    size_t offset;
    size_t size;          /* CONFIG_STR: buffer size */
    int64_t def;          /* CONFIG_INT: default */
    const char *sdef;     /* CONFIG_STR: default */
    int64_t min, max;     /* CONFIG_INT bounds */
    const char *choices;  /* CONFIG_STR: "a|b|c", or NULL for free text */
    const char *help;
} config_field;

#define INT(p, e, f, d, lo, hi, h) \
    {p, e, CONFIG_INT, offsetof(kv_config, f), 0, d, NULL, lo, hi, NULL, h}
#define STR(p, e, f, d, ch, h)                                               \
    {p, e, CONFIG_STR, offsetof(kv_config, f), sizeof(((kv_config *)0)->f), 0, \
     d, 0, 0, ch, h}

static const config_field config_fields[] = {
    INT("cluster.shards", "KV_SHARDS", shards, 2, 1, 64, "number of shards"),
    INT("cluster.replicas", "KV_REPLICAS", replicas, 2, 1, 32,
        "copies of each shard, primary included"),
    INT("cluster.vnodes", "KV_VNODES", vnodes, 128, 1, 4096,
        "virtual nodes per shard on the hash ring"),
    INT("cluster.base_port", "KV_BASE_PORT", base_port, 7000, 1024, 64000,
        "controller port; queue +1, api i +10+i, store s/r +100+10s+r"),
    STR("cluster.bind", "KV_BIND", bind, "127.0.0.1", NULL,
        "address every server binds"),
    STR("cluster.data_dir", "KV_DATA_DIR", data_dir, "data", NULL,
        "where stores, the queue journal and run files live"),
    STR("cluster.advertise_host", "KV_ADVERTISE_HOST", advertise_host, "", NULL,
        "host part of every node URL the controller publishes; {name} "
        "(store-S-R, queue), {kind}, {shard} and {replica} are filled in "
        "(containers: {name}); empty: the address of cluster.bind"),
    STR("cluster.token", "KV_TOKEN", token, "", NULL,
        "Bearer token of /internal/ and admin routes (empty: from token_file)"),
    STR("cluster.auth", "KV_AUTH", auth, "token", "token|off",
        "off: no token anywhere (only with a loopback cluster.bind)"),
    STR("cluster.token_file", "KV_TOKEN_FILE", token_file, "", NULL,
        "file of the token (empty: <data_dir>/run/token, made by the controller)"),
    INT("cluster.write_quorum", "WRITE_QUORUM", write_quorum, 0, 0, 31,
        "W: secondaries that must apply a write before it is acknowledged"),
    INT("cluster.read_quorum", "READ_QUORUM", read_quorum, 0, 0, 31,
        "R: secondaries a read consults, newest wins (0: the primary)"),
    STR("cluster.quorum_policy", "QUORUM_POLICY", quorum_policy, "any",
        "any|ordered", "which secondaries count for W and R"),
    INT("limits.max_key_bytes", "MAX_KEY_BYTES", max_key_bytes, 1024, 1, 65536,
        "longest key (414 above)"),
    INT("limits.max_value_bytes", "MAX_VALUE_BYTES", max_value_bytes,
        1024 * 1024, 0, 64 * 1024 * 1024, "largest value (413 above)"),
    INT("limits.max_connections", "MAX_CONNECTIONS", max_connections, 4096,
        16, 1 << 20, "connections each server keeps open at most"),
    INT("limits.max_connections_per_ip", "MAX_CONNECTIONS_PER_IP",
        max_connections_per_ip, 1024, 1, 1 << 20,
        "of them from one client address"),
    INT("limits.header_timeout_ms", "HEADER_TIMEOUT_MS", header_timeout_ms,
        10000, 100, 600000,
        "a new connection's first request head must arrive by then"),
    STR("store.fsync", "FSYNC", fsync, "everysec", "always|everysec|no",
        "when a store flushes LMDB to disk"),
    INT("store.map_size_mb", "STORE_MAP_SIZE_MB", map_size_mb, 4096, 1, 1 << 20,
        "LMDB map size (the store's size limit, 507 past it)"),
    INT("store.max_version_skew_ms", "STORE_MAX_VERSION_SKEW_MS",
        max_version_skew_ms, 5000, 1, 86400000,
        "how far ahead of a store's clock a given version may be (400 above)"),
    INT("store.threads", "STORE_THREADS", store_threads, 0, 0, 256,
        "HTTP threads of a store (0: cores)"),
    INT("store.reconcile_interval_ms", "RECONCILE_INTERVAL_MS",
        reconcile_interval_ms, 1000, 10, 3600000,
        "how often a secondary pulls the changes it missed"),
    INT("store.repl_batch_max", "REPL_BATCH_MAX", repl_batch_max, 512, 1,
        100000, "most records in one replication batch"),
    INT("store.migrate_rate", "MIGRATE_RATE", migrate_rate, 0, 0, 100000000,
        "most records a migration source reads per second (0: no limit)"),
    INT("store.quorum_timeout_ms", "QUORUM_TIMEOUT_MS", quorum_timeout_ms, 2000,
        1, 600000, "how long a write waits for W acknowledgements"),
    INT("store.repl_delay_ms", "REPL_DELAY_MS", repl_delay_ms, 0, 0, 600000,
        "artificial delay per replication batch (lab and studies)"),
    INT("store.repl_delay_random", "REPL_DELAY_RANDOM", repl_delay_random, 0, 0,
        1, "1: each batch to each secondary waits uniform(0, repl_delay_ms)"),
    INT("store.lab_sync_delay_ms", "LAB_SYNC_DELAY_MS", lab_sync_delay_ms, 0, 0,
        600000,
        "lab: delay per batch to a secondary of the sync set "
        "(the first W live ones)"),
    INT("store.lab_async_delay_ms", "LAB_ASYNC_DELAY_MS", lab_async_delay_ms, 0,
        0, 600000, "lab: delay per batch to a secondary outside the sync set"),
    INT("store.heartbeat_ms", "HEARTBEAT_MS", heartbeat_ms, 500, 50, 60000,
        "lab: how often a store started with --heartbeat reports in"),
    INT("store.lease_ms", "LEASE_MS", lease_ms, 0, 0, 3600000,
        "lab: replicated data is applied only this long after the last "
        "acknowledged heartbeat (0: always)"),
    INT("queue.max_queue_size", "MAX_QUEUE_SIZE", max_queue_size, 100000, 1,
        100000000, "jobs the queue holds before answering 429"),
    INT("queue.worker_count", "WORKER_COUNT", worker_count, 2, 1, 64,
        "dispatcher threads sending batches to shard primaries"),
    INT("queue.batch_linger_us", "QUEUE_BATCH_LINGER_US", batch_linger_us, 2000,
        0, 1000000,
        "a shard that sent a batch this recently waits to fill the next one "
        "(0: send at once)"),
    INT("queue.batch_max", "QUEUE_BATCH_MAX", batch_max, 256, 1, 10000,
        "most ops in one batch to a shard"),
    INT("queue.retry_backoff_ms", "QUEUE_RETRY_BACKOFF_MS", retry_backoff_ms,
        50, 1, 60000, "first retry delay, doubling up to 5 s"),
    INT("queue.wait_max_ms", "QUEUE_WAIT_MAX_MS", wait_max_ms, 10000, 1, 600000,
        "longest a ?sync=1 write waits before answering 202"),
    INT("queue.jobs_kept", "QUEUE_JOBS_KEPT", jobs_kept, 100000, 16, 100000000,
        "finished jobs remembered for GET /jobs/{id}"),
    INT("queue.spillover_queue_size", "SPILLOVER_QUEUE_SIZE",
        spillover_queue_size, 10000, 0, 100000000,
        "jobs of keys over max_key_rate held in EXCESS before 429"),
    INT("queue.stale_queue_size", "STALE_QUEUE_SIZE", stale_queue_size, 10000,
        0, 100000000, "jobs older than stale_after_ms held in STALE"),
    INT("queue.max_key_rate", "MAX_KEY_RATE", max_key_rate, 1000, 0, 100000000,
        "writes per key per key_window_s before it spills to EXCESS (0: off)"),
    INT("queue.key_window_s", "KEY_WINDOW_S", key_window_s, 1, 1, 3600,
        "per-key rate window"),
    INT("queue.stale_after_ms", "STALE_AFTER_MS", stale_after_ms, 5000, 1,
        86400000, "a job waiting this long moves to STALE"),
    INT("queue.stale_retry_max", "STALE_RETRY_MAX", stale_retry_max, 5, 0, 1000,
        "failed sends of a STALE job before it fails"),
    INT("queue.dispatch_rate", "DISPATCH_RATE", dispatch_rate, 0, 0, 100000000,
        "ops per second sent to the shards (0: no limit)"),
    INT("queue.threads", "QUEUE_THREADS", queue_threads, 0, 0, 256,
        "HTTP worker threads of the queue (0: the cores)"),
    INT("queue.journal_map_mb", "JOURNAL_MAP_MB", journal_map_mb, 8192, 1,
        1 << 20, "journal size limit (507 past it)"),
    INT("api.count", "API_COUNT", api_count, 2, 1, 64,
        "kv-api processes behind nginx"),
    INT("api.threads", "API_THREADS", api_threads, 0, 0, 256,
        "HTTP worker threads of an api (0: the cores; the apis a "
        "controller starts: cores / api.count each)"),
    INT("api.rate_limit", "RATE_LIMIT", rate_limit, 100000, 0, 1000000000,
        "requests per client per window (0: no limit)"),
    INT("api.rate_window_ms", "RATE_WINDOW_MS", rate_window_ms, 1000, 1,
        86400000, "rate-limit window"),
    INT("api.upstream_timeout_ms", "UPSTREAM_TIMEOUT_MS", upstream_timeout_ms,
        2000, 10, 600000, "timeout of an api call to a store or the queue"),
    INT("api.shutdown_delay_ms", "API_SHUTDOWN_DELAY_MS", api_shutdown_delay_ms,
        0, 0, 600000,
        "after SIGTERM an api answers /ready 503 and closes every connection "
        "it answers on for this long before it stops (a load balancer moves "
        "away first)"),
    INT("api.topology_poll_ms", "TOPOLOGY_POLL_MS", topology_poll_ms, 1000, 10,
        60000, "how often api and queue re-read the topology"),
    INT("controller.restart_backoff_ms", "RESTART_BACKOFF_MS",
        restart_backoff_ms, 200, 1, 600000,
        "first delay before restarting a child"),
    INT("controller.restart_backoff_max_ms", "RESTART_BACKOFF_MAX_MS",
        restart_backoff_max_ms, 10000, 1, 3600000, "longest restart delay"),
    INT("controller.health_interval_ms", "HEALTH_INTERVAL_MS",
        health_interval_ms, 500, 10, 600000,
        "how often the controller checks every process"),
    INT("controller.failover_after_ms", "FAILOVER_AFTER_MS", failover_after_ms,
        3000, 10, 3600000,
        "a primary down this long is replaced by a secondary"),
    INT("controller.supervise", "KV_SUPERVISE", supervise, 1, 0, 1,
        "1: start and restart every process here; 0: start none, watch the "
        "stores and the queue at their advertised hosts (containers)"),
    INT("nginx.port", "KV_PORT", nginx_port, 8000, 1, 65535,
        "public port (nginx)"),
    STR("nginx.bin", "NGINX_BIN", nginx_bin, "nginx", NULL, "nginx executable"),
    INT("nginx.workers", "NGINX_WORKERS", nginx_workers, 0, 0, 64,
        "nginx worker processes (0: auto)"),
};
#undef INT
#undef STR
#define CONFIG_NFIELDS (sizeof config_fields / sizeof config_fields[0])

static int64_t *config_int(kv_config *c, const config_field *f)
{
    return (int64_t *)((char *)c + f->offset);
}

static const int64_t *config_int_c(const kv_config *c, const config_field *f)
{
    return (const int64_t *)((const char *)c + f->offset);
}

static const char *config_str_c(const kv_config *c, const config_field *f)
{
    return (const char *)c + f->offset;
}

void config_defaults(kv_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < CONFIG_NFIELDS; i++) {
        const config_field *f = &config_fields[i];
        if (f->type == CONFIG_INT)
            *config_int(c, f) = f->def;
        else
            snprintf((char *)c + f->offset, f->size, "%s", f->sdef);
    }
}

static int config_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int config_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static const config_field *config_find(const char *path)
{
    for (size_t i = 0; i < CONFIG_NFIELDS; i++)
        if (strcmp(config_fields[i].path, path) == 0)
            return &config_fields[i];
    return NULL;
}

/* Check v against f's bounds and store it. */
static int config_store_int(kv_config *c, const config_field *f, int64_t v,
                            char *err, size_t errlen)
{
    if (v < f->min)
        return config_fail(err, errlen, "%s: must be >= %lld (got %lld)", f->path,
                        (long long)f->min, (long long)v);
    if (v > f->max)
        return config_fail(err, errlen, "%s: must be <= %lld (got %lld)", f->path,
                        (long long)f->max, (long long)v);
    *config_int(c, f) = v;
    return 0;
}

static int config_store_str(kv_config *c, const config_field *f, const char *s,
                         char *err, size_t errlen)
{
    size_t n = strlen(s);

    if (n >= f->size)
        return config_fail(err, errlen, "%s: longer than %zu characters", f->path,
                        f->size - 1);
    if (f->choices) {
        const char *p = f->choices;
        int ok = 0;
        while (*p && !ok) {
            size_t len = strcspn(p, "|");
            ok = len == n && strncmp(p, s, n) == 0;
            p += len + (p[len] == '|');
        }
        if (!ok)
            return config_fail(err, errlen, "%s: must be one of %s (got \"%s\")",
                            f->path, f->choices, s);
    }
    memcpy((char *)c + f->offset, s, n + 1);
    return 0;
}

int config_set(kv_config *c, const char *path, const char *value, char *err,
               size_t errlen)
{
    const config_field *f = config_find(path);
    int64_t v;

    if (f == NULL)
        return config_fail(err, errlen, "%s: unknown setting", path);
    if (f->type == CONFIG_STR)
        return config_store_str(c, f, value, err, errlen);
    if (num_parse_i64(value, &v) != 0)
        return config_fail(err, errlen, "%s: not an integer: \"%s\"", path, value);
    return config_store_int(c, f, v, err, errlen);
}

static int config_set_json(kv_config *c, const config_field *f, const cJSON *v,
                        char *err, size_t errlen)
{
    if (f->type == CONFIG_STR) {
        if (!cJSON_IsString(v))
            return config_fail(err, errlen, "%s: must be a string", f->path);
        return config_store_str(c, f, v->valuestring, err, errlen);
    }
    /* Range-check the double before converting: a cast of 1e300 is UB. */
    if (!cJSON_IsNumber(v) || v->valuedouble < -9.2e18 || v->valuedouble > 9.2e18 ||
        v->valuedouble != (double)(int64_t)v->valuedouble)
        return config_fail(err, errlen, "%s: must be an integer", f->path);
    return config_store_int(c, f, (int64_t)v->valuedouble, err, errlen);
}

/* Walk a section object; every key must be a known field. */
static int config_load_json(kv_config *c, const cJSON *root, char *err,
                         size_t errlen)
{
    const cJSON *sec, *item;
    char path[128];

    if (!cJSON_IsObject(root))
        return config_fail(err, errlen, "the configuration must be a JSON object");
    cJSON_ArrayForEach(sec, root) {
        size_t n = strlen(sec->string), known = 0;
        for (size_t i = 0; i < CONFIG_NFIELDS && !known; i++)
            known = strncmp(config_fields[i].path, sec->string, n) == 0 &&
                    config_fields[i].path[n] == '.';
        if (!known)
            return config_fail(err, errlen, "%s: unknown section", sec->string);
        if (!cJSON_IsObject(sec))
            return config_fail(err, errlen, "%s: must be an object of settings",
                            sec->string);
        cJSON_ArrayForEach(item, sec) {
            const config_field *f;
            snprintf(path, sizeof path, "%s.%s", sec->string, item->string);
            f = config_find(path);
            if (f == NULL)
                return config_fail(err, errlen, "%s: unknown setting", path);
            if (config_set_json(c, f, item, err, errlen))
                return -1;
        }
    }
    return 0;
}

static char *config_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
        *len = fread(buf, 1, (size_t)n, f);
        buf[*len] = '\0';
    }
    fclose(f);
    return buf;
}

int config_load_text(kv_config *c, const char *text, size_t len,
                     const char *name, char *err, size_t errlen)
{
    cJSON *root = json_whole_parse(text, len, NULL);
    int rc;

    if (root == NULL)
        return config_fail(err, errlen, "%s: not valid JSON", name);
    rc = config_load_json(c, root, err, errlen);
    cJSON_Delete(root);
    return rc;
}

int config_load(kv_config *c, const char *path, char *err, size_t errlen)
{
    if (path) {
        size_t len = 0;
        char *text = config_read_file(path, &len);
        int rc;

        if (text == NULL)
            return config_fail(err, errlen, "%s: cannot read: %s", path,
                            strerror(errno));
        rc = config_load_text(c, text, len, path, err, errlen);
        free(text);
        if (rc)
            return -1;
    }
    for (size_t i = 0; i < CONFIG_NFIELDS; i++) {
        const char *v = config_fields[i].env ? getenv(config_fields[i].env) : NULL;
        if (v && *v && config_set(c, config_fields[i].path, v, err, errlen)) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, " (from $%s)", config_fields[i].env);
            return -1;
        }
    }
    return config_validate(c, err, errlen);
}

int config_validate(const kv_config *c, char *err, size_t errlen)
{
    uint64_t top = (uint64_t)c->base_port + 100 + 10 * (uint64_t)c->shards;
    if (c->api_count > 90)
        return config_fail(err, errlen, "api.count: at most 90 in the port layout");
    if (top > 65535)
        return config_fail(err, errlen,
                        "cluster.base_port: %lld leaves no room for %lld shards",
                        (long long)c->base_port, (long long)c->shards);
    if (c->shards > 1 && c->replicas > 10)
        return config_fail(err, errlen,
                        "cluster.replicas: at most 10 per shard when there "
                        "are several shards (store ports are base + 100 + "
                        "10 x shard + replica)");
    if (c->restart_backoff_max_ms < c->restart_backoff_ms)
        return config_fail(err, errlen,
                        "controller.restart_backoff_max_ms: must be >= "
                        "controller.restart_backoff_ms");
    if (c->write_quorum > c->replicas - 1)
        return config_fail(err, errlen,
                        "cluster.write_quorum: %lld is more than the %lld "
                        "secondaries of a shard", (long long)c->write_quorum,
                        (long long)c->replicas - 1);
    if (c->read_quorum > c->replicas - 1)
        return config_fail(err, errlen,
                        "cluster.read_quorum: %lld is more than the %lld "
                        "secondaries of a shard", (long long)c->read_quorum,
                        (long long)c->replicas - 1);
    if (c->data_dir[0] == '\0')
        return config_fail(err, errlen, "cluster.data_dir: must not be empty");
    if (strcmp(c->auth, "off") == 0 && strncmp(c->bind, "127.", 4) != 0)
        return config_fail(err, errlen,
                        "cluster.auth: off only with a loopback cluster.bind "
                        "(127.x.x.x), not %s: anyone who reaches a server "
                        "could write to it", c->bind);
    return 0;
}

void config_clear_env(void)
{
    for (size_t i = 0; i < CONFIG_NFIELDS; i++)
        if (config_fields[i].env)
            unsetenv(config_fields[i].env);
}

static void config_value_text(const kv_config *c, const config_field *f, char *buf,
                           size_t n)
{
    if (f->type == CONFIG_STR)
        snprintf(buf, n, "\"%s\"", config_str_c(c, f));
    else
        snprintf(buf, n, "%lld", (long long)*config_int_c(c, f));
}

void config_print_help(FILE *out)
{
    kv_config d;
    char val[CFG_STR_MAX + 2];

    config_defaults(&d);
    fprintf(out, "%-34s %-24s %-12s %s\n", "setting (JSON path)", "environment",
            "default", "meaning");
    for (size_t i = 0; i < CONFIG_NFIELDS; i++) {
        const config_field *f = &config_fields[i];
        config_value_text(&d, f, val, sizeof val);
        fprintf(out, "%-34s %-24s %-12s %s%s%s\n", f->path, f->env ? f->env : "-",
                val, f->help, f->choices ? ": " : "",
                f->choices ? f->choices : "");
    }
}

char *config_to_json(const kv_config *c)
{
    cJSON *root = cJSON_CreateObject();
    char sec[64];
    char *s;

    for (size_t i = 0; i < CONFIG_NFIELDS; i++) {
        const config_field *f = &config_fields[i];
        const char *dot = strchr(f->path, '.');
        size_t n = (size_t)(dot - f->path);
        cJSON *obj;
        memcpy(sec, f->path, n);
        sec[n] = '\0';
        obj = cJSON_GetObjectItemCaseSensitive(root, sec);
        if (obj == NULL)
            obj = cJSON_AddObjectToObject(root, sec);
        if (f->type == CONFIG_STR)
            cJSON_AddStringToObject(obj, dot + 1, config_str_c(c, f));
        else
            cJSON_AddNumberToObject(obj, dot + 1, (double)*config_int_c(c, f));
    }
    s = cJSON_Print(root);
    cJSON_Delete(root);
    return s;
}

uint16_t config_queue_port(const kv_config *c)
{
    return (uint16_t)(c->base_port + 1);
}

uint16_t config_api_port(const kv_config *c, unsigned i)
{
    return (uint16_t)(c->base_port + 10 + i);
}

uint16_t config_store_port(const kv_config *c, unsigned shard, unsigned replica)
{
    return (uint16_t)(c->base_port + 100 + 10 * shard + replica);
}

const char *config_local_host(const char *bind)
{
    if (bind == NULL || bind[0] == '\0' || strcmp(bind, "0.0.0.0") == 0)
        return "127.0.0.1";
    return bind;
}
