/* lab_gateway: see lab_gateway.h. */
#include "lab_gateway.h"

#include "api_app.h"
#include "api_call.h"
#include "api_http.h"

#include "clock.h"
#include "kvhttp.h"
#include "log.h"
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lab_gateway {
    char *controller;             /* base URL, no trailing slash */
    uint64_t started_ms;
    _Atomic uint64_t requests;    /* every request, limited ones included */
    _Atomic uint64_t forwarded;   /* answered by the controller */
    _Atomic uint64_t errors;      /* no answer, or a 5xx one */
    _Atomic uint64_t unreachable; /* no answer from the controller */
    _Atomic uint64_t limited;     /* answered 429 here */
    _Atomic uint64_t writes, reads, statuses;
};

lab_gateway_t *lab_gateway_new(const char *controller_url)
{
    lab_gateway_t *g = calloc(1, sizeof *g);
    size_t n;

    if (g == NULL || (g->controller = strdup(controller_url)) == NULL) {
        free(g);
        return NULL;
    }
    n = strlen(g->controller);
    while (n > 0 && g->controller[n - 1] == '/')
        g->controller[--n] = '\0';
    g->started_ms = clock_mono_ms();
    return g;
}

void lab_gateway_free(lab_gateway_t *g)
{
    if (g == NULL)
        return;
    free(g->controller);
    free(g);
}

long lab_gateway_max_call_ms(void)
{
    return LAB_GATEWAY_WRITE_TIMEOUT_MS + 1000;
}

/* The call's X-RateLimit-* headers plus up to two more, NULL-terminated. */
static const char *const *lab_gateway_hdrs(const api_call *c, const char **out,
                                  const char *e1, const char *e2)
{
    size_t n = 0;

    for (unsigned i = 0; i < c->nrl; i++)
        out[n++] = c->rl_hdrs[i];
    if (e1)
        out[n++] = e1;
    if (e2)
        out[n++] = e2;
    out[n] = NULL;
    return out;
}

/* {"error":code,"message":...} with the limiter's headers; frees the call. */
static void lab_gateway_error(api_call *c, unsigned status, const char *extra,
                     const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void lab_gateway_error(api_call *c, unsigned status, const char *extra,
                     const char *code, const char *fmt, ...)
{
    const char *h[8];
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    httpd_error_h(c->r, status, lab_gateway_hdrs(c, h, extra, NULL), code, "%s", msg);
    api_call_free(c);
}

static void lab_gateway_not_found(api_call *c)
{
    const char *path = httpd_path(c->r);
    lab_gateway_error(c, 404, NULL, "not_found",
             "no route for %s %.200s (the gateway serves POST /write, GET "
             "/read/{key}, GET /cluster-status, GET /stats, GET /health)",
             httpd_method(c->r), path);
}

static void lab_gateway_bad_method(api_call *c, const char *allow)
{
    char hdr[64];
    snprintf(hdr, sizeof hdr, "Allow: %s", allow);
    lab_gateway_error(c, 405, hdr, "method_not_allowed",
             "%s is not allowed on %.200s (allowed: %s)", httpd_method(c->r),
             httpd_path(c->r), allow);
}

/* The fixed window of the client's address: 0 to go on, -1 when it
 * answered 429 (the call is then freed). */
static int lab_gateway_limit(api_call *c)
{
    api_app *a = c->app;
    const char *ip;
    ratelimit_verdict v;
    unsigned s;
    char retry[48];
    const char *h[8];
    cJSON *o;

    if (a->rl == NULL)
        return 0;
    ip = httpd_peer_ip(c->r);
    v = ratelimit_check(a->rl, ip, clock_mono_ms());
    snprintf(c->rl_hdrs[0], sizeof c->rl_hdrs[0], "X-RateLimit-Limit: %u", v.limit);
    snprintf(c->rl_hdrs[1], sizeof c->rl_hdrs[1], "X-RateLimit-Remaining: %u",
             v.allowed ? v.remaining : 0);
    snprintf(c->rl_hdrs[2], sizeof c->rl_hdrs[2], "X-RateLimit-Reset: %llu",
             (unsigned long long)(v.reset_ms + 999) / 1000);
    c->nrl = 3;
    if (v.allowed)
        return 0;
    atomic_fetch_add(&a->lab_gateway->limited, 1);
    s = ratelimit_retry_after_s(&v);
    snprintf(retry, sizeof retry, "Retry-After: %u", s);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", "Too Many Requests");
    cJSON_AddNumberToObject(o, "retry_after", s);
    {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "rate limit of %u requests per %g s exceeded for %s; the "
                 "window resets in %u s", v.limit,
                 (double)a->cfg.rate_window_ms / 1000.0, ip, s);
        cJSON_AddStringToObject(o, "message", msg);
    }
    httpd_respond_json(c->r, 429, o, lab_gateway_hdrs(c, h, retry, NULL));
    api_call_free(c);
    return -1;
}

static void lab_gateway_done(httpc_resp *resp, void *ctx)
{
    api_call *c = ctx;
    lab_gateway_t *g = c->app->lab_gateway;

    if (resp->status == 0) {
        atomic_fetch_add(&g->errors, 1);
        atomic_fetch_add(&g->unreachable, 1);
        log_warn("controller call %s failed: %s", c->url, resp->error);
        lab_gateway_error(c, 503, "Retry-After: 1", "controller_unavailable",
                 "the lab controller (%s) did not answer: %s", g->controller,
                 resp->error);
        return;
    }
    atomic_fetch_add(&g->forwarded, 1);
    if (resp->status >= 500)
        atomic_fetch_add(&g->errors, 1);
    /* Status, body, Content-Type and Retry-After as the controller sent
     * them, plus the limiter's headers; frees the call. */
    api_call_finish(c, resp);
}

/* Send c->url to the controller with the client request suspended. */
static void lab_gateway_forward(api_call *c, const char *method, const void *body,
                       size_t len, long timeout_ms)
{
    httpc_req req = {.method = method, .url = c->url, .body = body,
                     .body_len = len, .headers = c->hdrs,
                     .timeout_ms = timeout_ms};
    int rc = api_call_async(c, &req, lab_gateway_done);

    if (rc == -1) {
        lab_gateway_error(c, 503, "Retry-After: 1", "shutting_down",
                 "the gateway is stopping");
    } else if (rc != 0) {
        atomic_fetch_add(&c->app->lab_gateway->errors, 1);
        lab_gateway_error(c, 503, "Retry-After: 1", "overloaded",
                 "the gateway could not start the call");
    }
}

static void lab_gateway_write(api_call *c)
{
    lab_gateway_t *g = c->app->lab_gateway;
    size_t len;
    const void *body = httpd_body(c->r, &len);

    atomic_fetch_add(&g->writes, 1);
    if (api_call_url(c, "%s/write", g->controller)) {
        api_call_free(c);
        return;
    }
    api_call_header(c, "Content-Type: application/json");
    lab_gateway_forward(c, "POST", body, len, LAB_GATEWAY_WRITE_TIMEOUT_MS);
}

/* raw: the key segment as the client sent it (still %-encoded). */
static void lab_gateway_read(api_call *c, const char *raw)
{
    api_app *a = c->app;
    size_t rawlen = strlen(raw), klen;
    size_t max = (size_t)a->cfg.max_key_bytes;
    char *key;

    atomic_fetch_add(&a->lab_gateway->reads, 1);
    if (rawlen == 0) {
        lab_gateway_error(c, 400, NULL, "bad_key", "the key is empty");
        return;
    }
    if (rawlen > 3 * max) {
        lab_gateway_error(c, 414, NULL, "key_too_long", "keys are at most %zu bytes", max);
        return;
    }
    key = httpd_decode(raw, rawlen, &klen);
    if (key == NULL) {
        lab_gateway_error(c, 400, NULL, "bad_key", "the key has a bad %%-escape or a NUL byte");
        return;
    }
    free(key);
    if (klen > max) {
        lab_gateway_error(c, 414, NULL, "key_too_long", "keys are at most %zu bytes", max);
        return;
    }
    if (api_call_url(c, "%s/read/%s", a->lab_gateway->controller, raw)) {
        api_call_free(c);
        return;
    }
    lab_gateway_forward(c, "GET", NULL, 0, LAB_GATEWAY_READ_TIMEOUT_MS);
}

static void lab_gateway_cluster_status(api_call *c)
{
    lab_gateway_t *g = c->app->lab_gateway;

    atomic_fetch_add(&g->statuses, 1);
    if (api_call_url(c, "%s/status", g->controller)) {
        api_call_free(c);
        return;
    }
    lab_gateway_forward(c, "GET", NULL, 0, LAB_GATEWAY_STATUS_TIMEOUT_MS);
}

/* GET /stats; windows adds each client's current window (the dashboard's
 * GET /internal/limiter). */
static void lab_gateway_stats(api_call *c, int windows)
{
    api_app *a = c->app;
    lab_gateway_t *g = a->lab_gateway;
    const char *h[8];
    cJSON *o = cJSON_CreateObject();
    cJSON *gj = cJSON_AddObjectToObject(o, "gateway");
    cJSON *rl = cJSON_AddObjectToObject(o, "rate_limiter");
    ratelimit_stats st = {0};

    cJSON_AddStringToObject(gj, "mode", "lab");
    cJSON_AddStringToObject(gj, "controller", g->controller);
    cJSON_AddNumberToObject(gj, "uptime_s",
                            (double)((clock_mono_ms() - g->started_ms) / 1000));
    cJSON_AddNumberToObject(gj, "requests", (double)atomic_load(&g->requests));
    cJSON_AddNumberToObject(gj, "forwarded", (double)atomic_load(&g->forwarded));
    cJSON_AddNumberToObject(gj, "errors", (double)atomic_load(&g->errors));
    cJSON_AddNumberToObject(gj, "controller_unreachable",
                            (double)atomic_load(&g->unreachable));
    cJSON_AddNumberToObject(gj, "rate_limited", (double)atomic_load(&g->limited));
    cJSON_AddNumberToObject(gj, "writes", (double)atomic_load(&g->writes));
    cJSON_AddNumberToObject(gj, "reads", (double)atomic_load(&g->reads));
    cJSON_AddNumberToObject(gj, "cluster_status", (double)atomic_load(&g->statuses));

    if (a->rl)
        ratelimit_get_stats(a->rl, &st);
    cJSON_AddStringToObject(rl, "strategy", "fixed_window");
    cJSON_AddBoolToObject(rl, "enabled", a->rl != NULL);
    cJSON_AddNumberToObject(rl, "max_requests", (double)a->cfg.rate_limit);
    cJSON_AddNumberToObject(rl, "window_seconds",
                            (double)a->cfg.rate_window_ms / 1000.0);
    cJSON_AddStringToObject(rl, "client", "tcp_peer_address");
    cJSON_AddNumberToObject(rl, "clients", (double)st.clients);
    cJSON_AddNumberToObject(rl, "allowed", (double)st.allowed);
    cJSON_AddNumberToObject(rl, "denied", (double)st.denied);
    if (windows && a->rl) {
        ratelimit_client cl[64];
        size_t n = ratelimit_clients(a->rl, clock_mono_ms(), cl, 64);
        cJSON *arr = cJSON_AddArrayToObject(rl, "windows");
        for (size_t i = 0; i < n; i++) {
            cJSON *w = cJSON_CreateObject();
            cJSON_AddStringToObject(w, "client", cl[i].client);
            cJSON_AddNumberToObject(w, "count", cl[i].count);
            cJSON_AddNumberToObject(w, "reset_ms", (double)cl[i].reset_ms);
            cJSON_AddItemToArray(arr, w);
        }
    }
    httpd_respond_json(c->r, 200, o, lab_gateway_hdrs(c, h, NULL, NULL));
    api_call_free(c);
}

void lab_gateway_handle(httpd_req *r, void *app)
{
    api_app *a = app;
    const char *path = httpd_path(r);
    api_call *c;

    /* The lab dashboard's look at the limiter: from this machine, outside
     * the limit and the counts, so an open page never spends a client's
     * window nor shows up in it. */
    if (strcmp(path, "/internal/limiter") == 0 && kvhttp_is_local(r) &&
        httpd_method_is(r, "GET")) {
        if ((c = api_call_new(r, a, API_CALL_RELAY)) == NULL)
            httpd_error(r, 503, "overloaded", "out of memory");
        else
            lab_gateway_stats(c, 1);
        return;
    }
    api_http_count_request();
    atomic_fetch_add(&a->lab_gateway->requests, 1);
    c = api_call_new(r, a, API_CALL_RELAY);
    if (c == NULL) {
        httpd_error(r, 503, "overloaded", "out of memory");
        return;
    }
    if (lab_gateway_limit(c))
        return;
    if (strcmp(path, "/write") == 0) {
        if (httpd_method_is(r, "POST"))
            lab_gateway_write(c);
        else
            lab_gateway_bad_method(c, "POST");
    } else if (strncmp(path, "/read/", 6) == 0 && strchr(path + 6, '/') == NULL) {
        if (httpd_method_is(r, "GET"))
            lab_gateway_read(c, path + 6);
        else
            lab_gateway_bad_method(c, "GET");
    } else if (strcmp(path, "/cluster-status") == 0 || strcmp(path, "/health") == 0 ||
               strcmp(path, "/stats") == 0 || strcmp(path, "/metrics") == 0) {
        const char *h[8];
        if (!httpd_method_is(r, "GET"))
            lab_gateway_bad_method(c, "GET");
        else if (path[1] == 'c')
            lab_gateway_cluster_status(c);
        else if (path[1] == 's')
            lab_gateway_stats(c, 0);
        else if (path[1] == 'h') {
            kvhttp_ok(r, lab_gateway_hdrs(c, h, NULL, NULL));
            api_call_free(c);
        } else {
            api_call_free(c);
            kvhttp_metrics(r);
        }
    } else {
        lab_gateway_not_found(c);
    }
}
