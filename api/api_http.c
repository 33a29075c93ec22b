#include "api_http.h"

#include "api_app.h"

#include "clock.h"
#include "kvhttp.h"
#include "metrics.h"
#include "num.h"
#include "quorum.h"
#include "wire.h"
#include "api_call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

METRIC_COUNTER(m_requests, "kv_api_requests_total", "requests received");
METRIC_COUNTER(m_limited, "kv_api_rate_limited_total", "requests refused with 429");
static metrics_hist m_latency = {
    .name = "kv_api_request_seconds",
    .help = "time from a request's arrival to its answer"};
static metrics_recent m_latency_recent = METRICS_RECENT_INIT;

void api_http_metrics_register(void)
{
    metrics_register(&m_requests);
    metrics_register(&m_limited);
    metrics_register_hist(&m_latency);
}

metrics_hist *api_http_latency(void)
{
    return &m_latency;
}

/* The per-client limit; 0 to go on, -1 when it answered 429. */
static int api_http_rate_limit(httpd_req *r, api_app *a, api_call *c)
{
    ratelimit_verdict v;

    if (a->rl == NULL)
        return 0;
    v = ratelimit_check(a->rl, httpd_client_ip(r), clock_mono_ms());
    snprintf(c->rl_hdrs[0], sizeof c->rl_hdrs[0], "X-RateLimit-Limit: %u", v.limit);
    snprintf(c->rl_hdrs[1], sizeof c->rl_hdrs[1], "X-RateLimit-Remaining: %u",
             v.remaining);
    snprintf(c->rl_hdrs[2], sizeof c->rl_hdrs[2], "X-RateLimit-Reset: %llu",
             (unsigned long long)(v.reset_ms + 999) / 1000);
    c->nrl = 3;
    if (v.allowed)
        return 0;
    char retry[48];
    const char *h[] = {c->rl_hdrs[0], c->rl_hdrs[1], c->rl_hdrs[2], retry, NULL};
    unsigned s = ratelimit_retry_after_s(&v);
    snprintf(retry, sizeof retry, "Retry-After: %u", s);
    metrics_add(&m_limited, 1);
    httpd_error_h(r, 429, h, "rate_limited",
                  "more than %u requests in %lld ms from %s; retry in %u s",
                  v.limit, (long long)a->cfg.rate_window_ms, httpd_client_ip(r), s);
    return -1;
}

static topo_t *api_http_topo(httpd_req *r, api_app *a)
{
    topo_t *t = topo_watch_get(a->topo);
    if (t == NULL) {
        static const char *const h[] = {"Retry-After: 1", NULL};
        httpd_error_h(r, 503, h, "not_ready",
                      "the api has not received the cluster topology yet");
    }
    return t;
}

/* GET /kv/{key} and GET /counter/{key}: to the shard the ring names, its
 * primary (R = 0) or R of its secondaries (quorum.h). */
static void api_http_read(api_call *c, const char *raw_key, size_t raw_len)
{
    topo_t *t = api_http_topo(c->r, c->app);
    const topo_shard *sh;
    const char *accept;
    unsigned r = (unsigned)c->app->cfg.read_quorum;

    if (t == NULL) {
        api_call_free(c);
        return;
    }
    sh = topo_shard_for(t, c->key, c->klen);
    c->shard = sh->id;
    c->epoch = sh->epoch;
    if (sh->primary)
        snprintf(c->served_by, sizeof c->served_by, "%s", sh->primary);
    accept = httpd_header(c->r, "Accept");
    c->want_json = accept && strstr(accept, "application/json") != NULL;
    /* The read keeps the topology until it is answered: sh points in it. */
    if (r == 0)
        quorum_read_primary(c, t, sh, raw_key, raw_len);
    else
        quorum_read(c, t, sh, raw_key, raw_len, r);
}

/* Writes: to the queue, same path under /internal/. by < 0 never reaches
 * here for put/delete: incr says so with is_incr. */
static void api_http_write(api_call *c, const char *method, const char *raw_key,
                      size_t raw_len, int is_incr, int64_t by)
{
    api_app *a = c->app;
    topo_t *t = api_http_topo(c->r, a);
    const void *body = NULL;
    size_t len = 0;
    uint64_t wait_ms = 0, if_match = 0, ttl_s = 0;
    uint8_t cond = 0;
    const char *prefer = httpd_header(c->r, "Prefer");
    int n;

    if (t == NULL) {
        api_call_free(c);
        return;
    }
    /* A malformed wait, condition or TTL is refused here (400) rather than
     * by the queue (which makes the TTL absolute when it admits the write). */
    if (kvhttp_wait_ms(c->r, (uint64_t)a->cfg.wait_max_ms, &wait_ms) != 0 ||
        kvhttp_condition(c->r, &cond, &if_match) != 0 ||
        (strcmp(method, "DELETE") != 0 && kvhttp_ttl(c->r, &ttl_s) != 0)) {
        topo_put(t);
        api_call_free(c);
        return;
    }
    if (t->queue == NULL) {
        static const char *const h[] = {"Retry-After: 1", NULL};
        topo_put(t);
        httpd_error_h(c->r, 503, h, "no_queue", "the write queue is not known yet");
        api_call_free(c);
        return;
    }
    /* Pass the client's wait on: Prefer as is, else ?sync=1; and the TTL. */
    int prefer_wait = prefer && strstr(prefer, "wait=");
    char query[96] = "";
    size_t ql = 0;
    if (is_incr)
        ql += (size_t)snprintf(query + ql, sizeof query - ql, "&by=%lld", (long long)by);
    if (wait_ms && !prefer_wait)
        ql += (size_t)snprintf(query + ql, sizeof query - ql, "&sync=1");
    if (ttl_s)
        ql += (size_t)snprintf(query + ql, sizeof query - ql, "&ttl=%llu",
                               (unsigned long long)ttl_s);
    if (ql)
        query[0] = '?';
    n = api_call_url(c, "%s/internal/kv/%.*s%s%s", t->queue, (int)raw_len,
                     raw_key, is_incr ? "/incr" : "", query);
    topo_put(t);
    if (n) {
        api_call_free(c);
        return;
    }
    if (prefer_wait)
        api_call_header(c, "Prefer: %s", prefer);
    if (cond & WIRE_F_IF_MATCH)
        api_call_header(c, "If-Match: \"%llu\"", (unsigned long long)if_match);
    else if (cond & WIRE_F_IF_EXISTS)
        api_call_header(c, "If-Match: *");
    else if (cond & WIRE_F_IF_ABSENT)
        api_call_header(c, "If-None-Match: *");
    if (strcmp(method, "PUT") == 0)
        body = httpd_body(c->r, &len);
    /* A waiting write may take up to the queue's wait plus the round trip. */
    api_call_start(c, method, body, len,
                       a->cfg.upstream_timeout_ms + (long)wait_ms);
}

/* /kv/{key}[/incr] and /counter/{key}[/increment] */
static void api_http_kv(httpd_req *r, api_app *a, api_call *c, int counter)
{
    unsigned nseg = httpd_path_nsegs(r);
    size_t raw_len, sub_len = 0;
    const char *raw = httpd_path_seg(r, 1, &raw_len);
    const char *sub = nseg == 3 ? httpd_path_seg(r, 2, &sub_len) : NULL;
    const char *want = counter ? "increment" : "incr";
    int64_t by = 1;

    if (sub && (sub_len != strlen(want) || memcmp(sub, want, sub_len) != 0)) {
        kvhttp_not_found(r);
        api_call_free(c);
        return;
    }
    if (sub && !httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        api_call_free(c);
        return;
    }
    if (!sub && !(httpd_method_is(r, "GET") ||
                  (!counter && (httpd_method_is(r, "PUT") ||
                                httpd_method_is(r, "DELETE"))))) {
        kvhttp_bad_method(r, counter ? "GET" : "GET, PUT, DELETE");
        api_call_free(c);
        return;
    }
    if (kvhttp_key(r, 1, (size_t)a->cfg.max_key_bytes, &c->key, &c->klen)) {
        api_call_free(c);
        return;
    }
    if (httpd_method_is(r, "PUT")) {
        size_t len;
        httpd_body(r, &len);
        if (len > (size_t)a->cfg.max_value_bytes) {
            httpd_error(r, 413, "value_too_large", "values are at most %lld bytes",
                        (long long)a->cfg.max_value_bytes);
            api_call_free(c);
            return;
        }
    }
    if (sub && !counter && httpd_query(r, "by") &&
        num_parse_i64(httpd_query(r, "by"), &by)) {
        httpd_error(r, 400, "bad_increment", "by must be an integer");
        api_call_free(c);
        return;
    }
    if (sub) {
        c->kind = counter ? API_CALL_COUNTER_INC : API_CALL_WRITE;
        api_http_write(c, "POST", raw, raw_len, 1, by);
    } else if (httpd_method_is(r, "GET")) {
        c->kind = counter ? API_CALL_COUNTER_GET : API_CALL_READ;
        api_http_read(c, raw, raw_len);
    } else {
        api_http_write(c, httpd_method(r), raw, raw_len, 0, 0);
    }
}

static void api_http_jobs(httpd_req *r, api_app *a, api_call *c)
{
    size_t len;
    const char *id = httpd_path_seg(r, 1, &len);
    topo_t *t;

    if (!httpd_method_is(r, "GET")) {
        kvhttp_bad_method(r, "GET");
        api_call_free(c);
        return;
    }
    if ((t = api_http_topo(r, a)) == NULL) {
        api_call_free(c);
        return;
    }
    if (api_call_url(c, "%s/jobs/%.*s", t->queue ? t->queue : "", (int)len, id)) {
        topo_put(t);
        api_call_free(c);
        return;
    }
    topo_put(t);
    api_call_start(c, "GET", NULL, 0, a->cfg.upstream_timeout_ms);
}

static void api_http_ring(httpd_req *r, api_app *a)
{
    const char *key = httpd_query(r, "key");
    topo_t *t;
    const topo_shard *sh;
    cJSON *o, *secs;

    if (key == NULL || key[0] == '\0') {
        httpd_error(r, 400, "bad_key", "give the key as ?key=K");
        return;
    }
    if (strlen(key) > (size_t)a->cfg.max_key_bytes) {
        httpd_error(r, 414, "key_too_long", "keys are at most %lld bytes",
                    (long long)a->cfg.max_key_bytes);
        return;
    }
    if ((t = api_http_topo(r, a)) == NULL)
        return;
    sh = topo_shard_for(t, key, strlen(key));
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddNumberToObject(o, "shard", sh->id);
    cJSON_AddNumberToObject(o, "epoch", (double)sh->epoch);
    if (sh->primary)
        cJSON_AddStringToObject(o, "primary", sh->primary);
    else
        cJSON_AddNullToObject(o, "primary");
    secs = cJSON_AddArrayToObject(o, "secondaries");
    for (size_t i = 0; i < sh->nsecondaries; i++)
        cJSON_AddItemToArray(secs, cJSON_CreateString(sh->secondaries[i]));
    topo_put(t);
    httpd_respond_json(r, 200, o, NULL);
}

static void api_http_stats(httpd_req *r, api_app *a)
{
    cJSON *o = cJSON_CreateObject(), *rl;
    topo_t *t = topo_watch_get(a->topo);

    cJSON_AddNumberToObject(o, "requests", (double)metrics_get(&m_requests));
    cJSON_AddNumberToObject(o, "rate_limited", (double)metrics_get(&m_limited));
    {
        cJSON *lat = cJSON_AddObjectToObject(o, "latency");
        uint64_t p50, p99, n;
        metrics_recent_read(&m_latency, &m_latency_recent, clock_mono_ms(),
                            1000, &p50, &p99, &n);
        cJSON_AddNumberToObject(lat, "p50_ms", metrics_hist_percentile(&m_latency, 0.5) / 1000.0);
        cJSON_AddNumberToObject(lat, "p99_ms", metrics_hist_percentile(&m_latency, 0.99) / 1000.0);
        /* Since the previous /stats at least a second before: the live
         * view's number (a dashboard polls every second). */
        cJSON_AddNumberToObject(lat, "recent_p50_ms", p50 / 1000.0);
        cJSON_AddNumberToObject(lat, "recent_p99_ms", p99 / 1000.0);
        cJSON_AddNumberToObject(lat, "recent_requests", (double)n);
    }
    cJSON_AddNumberToObject(o, "topology_epoch", t ? (double)t->epoch : 0);
    topo_put(t);
    cJSON_AddNumberToObject(o, "read_quorum", (double)a->cfg.read_quorum);
    cJSON_AddStringToObject(o, "quorum_policy", a->cfg.quorum_policy);
    rl = cJSON_AddObjectToObject(o, "rate_limiter");
    cJSON_AddStringToObject(rl, "strategy", a->rl ? "sliding_window" : "off");
    cJSON_AddNumberToObject(rl, "max_requests", (double)a->cfg.rate_limit);
    cJSON_AddNumberToObject(rl, "window_ms", (double)a->cfg.rate_window_ms);
    if (a->rl) {
        ratelimit_stats st;
        ratelimit_get_stats(a->rl, &st);
        cJSON_AddNumberToObject(rl, "allowed", (double)st.allowed);
        cJSON_AddNumberToObject(rl, "denied", (double)st.denied);
        cJSON_AddNumberToObject(rl, "clients", (double)st.clients);
    }
    httpd_respond_json(r, 200, o, NULL);
}

static int api_http_seg_is(httpd_req *r, const char *name)
{
    size_t len;
    const char *s = httpd_path_seg(r, 0, &len);
    return s && len == strlen(name) && memcmp(s, name, len) == 0;
}

void api_http_count_request(void)
{
    metrics_add(&m_requests, 1);
}

void api_http_admit(httpd_req *r, void *app)
{
    api_app *a = app;
    kvhttp_admit_internal(r, a->cfg.token);
}

void api_http_handle(httpd_req *r, void *app)
{
    api_app *a = app;
    const char *path = httpd_path(r);
    unsigned nseg = httpd_path_nsegs(r);
    api_call *c;

    metrics_add(&m_requests, 1);
    /* Operational routes: never rate limited, answered here, GET only. */
    if ((strcmp(path, "/health") == 0 || strcmp(path, "/ready") == 0 ||
         strcmp(path, "/stats") == 0 || strcmp(path, "/metrics") == 0) &&
        !httpd_method_is(r, "GET")) {
        kvhttp_bad_method(r, "GET");
        return;
    }
    if (strcmp(path, "/health") == 0) {
        kvhttp_ok(r, NULL);
        return;
    }
    if (strcmp(path, "/ready") == 0) {
        topo_t *t = topo_watch_get(a->topo);
        if (atomic_load(&a->draining))
            httpd_error(r, 503, "draining", "this api is stopping");
        else if (t)
            httpd_respond(r, 200, "application/json", "{\"status\":\"ready\"}",
                          18, NULL);
        else
            httpd_error(r, 503, "not_ready", "no cluster topology yet");
        topo_put(t);
        return;
    }
    if (strcmp(path, "/stats") == 0) {
        api_http_stats(r, a);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        kvhttp_metrics(r);
        return;
    }
    if (strcmp(path, "/internal/topology-changed") == 0) {
        /* The controller's hint after a failover: poll the topology now. */
        if (!httpd_method_is(r, "POST")) {
            kvhttp_bad_method(r, "POST");
            return;
        }
        quorum_poke(a);
        kvhttp_ok(r, NULL);
        return;
    }
    c = api_call_new(r, a, API_CALL_RELAY);
    if (c == NULL) {
        httpd_error(r, 503, "overloaded", "out of memory");
        return;
    }
    if (api_http_rate_limit(r, a, c)) {
        api_call_free(c);
        return;
    }
    if ((api_http_seg_is(r, "kv") || api_http_seg_is(r, "counter")) &&
        (nseg == 2 || nseg == 3)) {
        api_http_kv(r, a, c, api_http_seg_is(r, "counter"));
    } else if (api_http_seg_is(r, "jobs") && nseg == 2) {
        api_http_jobs(r, a, c);
    } else if (strcmp(path, "/ring") == 0) {
        api_call_free(c);
        if (httpd_method_is(r, "GET"))
            api_http_ring(r, a);
        else
            kvhttp_bad_method(r, "GET");
    } else {
        api_call_free(c);
        kvhttp_not_found(r);
    }
}
