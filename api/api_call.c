#include "api_call.h"

#include "json_whole.h"
#include "kvhttp.h"
#include "log.h"
#include "num.h"
#include "render.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

api_call *api_call_new(httpd_req *r, api_app *a, enum api_call_kind kind)
{
    api_call *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->r = r;
    c->app = a;
    c->kind = kind;
    if (a->auth[0])
        c->hdrs[0] = a->auth;
    return c;
}

void api_call_free(api_call *c)
{
    free(c->key);
    free(c->url);
    free(c);
}

int api_call_url(api_call *c, const char *fmt, ...)
{
    va_list ap;
    int n;

    free(c->url);
    va_start(ap, fmt);
    n = vasprintf(&c->url, fmt, ap);
    va_end(ap);
    if (n < 0) {
        c->url = NULL;
        httpd_error(c->r, 503, "overloaded", "out of memory");
        return -1;
    }
    return 0;
}

void api_call_header(api_call *c, const char *fmt, ...)
{
    size_t n = 0, b = 0;
    va_list ap;

    while (c->hdrs[n])
        n++;
    while (b < 4 && c->hbuf[b][0])
        b++;
    if (n + 1 >= API_CALL_MAX_HDRS || b == 4)
        return;
    va_start(ap, fmt);
    vsnprintf(c->hbuf[b], sizeof c->hbuf[b], fmt, ap);
    va_end(ap);
    c->hdrs[n] = c->hbuf[b];
}

/* The headers every answer to the client carries, then extra (a NULL-
 * terminated list of at most API_CLIENT_EXTRA, or NULL); out has room for
 * API_CLIENT_HDRS. */
#define API_CLIENT_EXTRA 5
#define API_CLIENT_HDRS (3 + 1 + API_CLIENT_EXTRA + 1)
static const char *const *api_call_client_hdrs(api_call *c, const char **out,
                                               const char *const *extra)
{
    size_t n = 0;
    for (unsigned i = 0; i < c->nrl; i++)
        out[n++] = c->rl_hdrs[i];
    if (c->quorum_hdr[0])
        out[n++] = c->quorum_hdr;
    for (size_t i = 0; extra && extra[i] && i < API_CLIENT_EXTRA; i++)
        out[n++] = extra[i];
    out[n] = NULL;
    return out;
}

/* Pass the upstream answer through (status, body, Content-Type, Retry-After). */
static void api_call_relay(api_call *c, const httpc_resp *resp)
{
    char ctype[128], retry[32], rh[48];
    const char *h[API_CLIENT_HDRS], *ra[2] = {NULL, NULL};

    if (httpc_resp_header(resp, "Retry-After", retry, sizeof retry)) {
        snprintf(rh, sizeof rh, "Retry-After: %s", retry);
        ra[0] = rh;
    }
    if (!httpc_resp_header(resp, "Content-Type", ctype, sizeof ctype))
        strcpy(ctype, "application/json");
    httpd_respond(c->r, (unsigned)resp->status, ctype, resp->body, resp->len,
                  api_call_client_hdrs(c, h, ra));
}

void api_call_json(api_call *c, unsigned status, cJSON *json,
                       const char *extra)
{
    const char *h[API_CLIENT_HDRS], *ex[2] = {extra, NULL};

    httpd_respond_json(c->r, status, json, api_call_client_hdrs(c, h, ex));
    api_call_free(c);
}

static void api_call_on_read(api_call *c, const httpc_resp *resp)
{
    char ver[32], vh[48], sh[48], by[300], etag[48], exp[32], eh[56];
    const char *h[API_CLIENT_HDRS], *extra[API_CLIENT_EXTRA + 1];
    size_t ne = 0;
    uint64_t version = 0, expires_at = 0;

    snprintf(sh, sizeof sh, "X-KV-Shard: %u", c->shard);
    snprintf(by, sizeof by, "X-KV-Served-By: %s", c->served_by);
    if (resp->status != 200) {
        api_call_relay(c, resp);
        return;
    }
    if (!httpc_resp_header(resp, "X-KV-Version", ver, sizeof ver))
        strcpy(ver, "0");
    /* The version is the entity tag a conditional write names (If-Match). */
    snprintf(etag, sizeof etag, "ETag: \"%s\"", ver);
    if (!c->want_json) {
        snprintf(vh, sizeof vh, "X-KV-Version: %s", ver);
        extra[ne++] = vh;
    }
    extra[ne++] = sh;
    extra[ne++] = by;
    extra[ne++] = etag;
    if (httpc_resp_header(resp, "X-KV-Expires-At", exp, sizeof exp) &&
        num_parse_u64(exp, &expires_at) == 0) {
        snprintf(eh, sizeof eh, "X-KV-Expires-At: %llu",
                 (unsigned long long)expires_at);
        extra[ne++] = eh;
    }
    extra[ne] = NULL;
    if (c->want_json) {
        /* The store sends a u64; anything else renders as 0. */
        if (num_parse_u64(ver, &version) != 0)
            version = 0;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", c->key);
        render_value(o, resp->body, resp->len);
        cJSON_AddNumberToObject(o, "version", (double)version);
        cJSON_AddNumberToObject(o, "shard", c->shard);
        cJSON_AddStringToObject(o, "served_by", c->served_by);
        if (expires_at)
            cJSON_AddNumberToObject(o, "expires_at", (double)expires_at);
        httpd_respond_json(c->r, 200, o, api_call_client_hdrs(c, h, extra));
        return;
    }
    httpd_respond(c->r, 200, "application/octet-stream", resp->body, resp->len,
                  api_call_client_hdrs(c, h, extra));
}

static void api_call_on_counter_get(api_call *c, const httpc_resp *resp)
{
    const char *h[API_CLIENT_HDRS];
    int64_t v = 0;

    if (resp->status != 200 && resp->status != 404) {
        api_call_relay(c, resp);
        return;
    }
    if (resp->status == 200 && num_parse_i64(resp->body, &v)) {
        httpd_error(c->r, 409, "not_integer",
                    "the value of this key is not an integer counter");
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", c->key);
    cJSON_AddNumberToObject(o, "value", (double)v);
    httpd_respond_json(c->r, 200, o, api_call_client_hdrs(c, h, NULL));
}

static void api_call_on_counter_inc(api_call *c, const httpc_resp *resp)
{
    const char *h[API_CLIENT_HDRS];
    cJSON *in, *o;

    if (resp->status != 202 && resp->status != 200) {
        api_call_relay(c, resp);
        return;
    }
    in = json_whole_parse(resp->body, resp->len, NULL);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", c->key);
    {
        /* The queue's word: applied, superseded (an older increment the
         * shard had passed) or queued. */
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(in, "status"));
        cJSON_AddStringToObject(o, "status",
                                st ? st : resp->status == 200 ? "applied" : "queued");
    }
    if (resp->status == 200 && cJSON_GetObjectItem(in, "value"))
        cJSON_AddNumberToObject(o, "value",
                                cJSON_GetNumberValue(cJSON_GetObjectItem(in, "value")));
    if (cJSON_GetObjectItem(in, "current_version"))
        cJSON_AddNumberToObject(o, "current_version",
                                cJSON_GetNumberValue(cJSON_GetObjectItem(in, "current_version")));
    cJSON_Delete(in);
    httpd_respond_json(c->r, (unsigned)resp->status, o,
                       api_call_client_hdrs(c, h, NULL));
}

static void api_call_done(httpc_resp *resp, void *ctx)
{
    api_call_finish(ctx, resp);
}

void api_call_finish(api_call *c, httpc_resp *resp)
{
    if (resp->status == 0) {
        static const char *const h[] = {"Retry-After: 1", NULL};
        log_warn("upstream %s failed: %s", c->url, resp->error);
        httpd_error_h(c->r, 503, h, "upstream_unavailable",
                      "%s is not answering; retry shortly",
                      c->kind == API_CALL_READ || c->kind == API_CALL_COUNTER_GET
                          ? "the shard"
                          : "the write queue");
    } else if (c->kind == API_CALL_READ) {
        api_call_on_read(c, resp);
    } else if (c->kind == API_CALL_COUNTER_GET) {
        api_call_on_counter_get(c, resp);
    } else if (c->kind == API_CALL_COUNTER_INC) {
        api_call_on_counter_inc(c, resp);
    } else {
        api_call_relay(c, resp);
    }
    api_call_free(c);
}

int api_call_async(api_call *c, const httpc_req *req, httpc_done_fn cb)
{
    /* Suspend (counted as pending) before looking at stopping: shutdown sets
     * stopping and then drains, so no call can slip past both. */
    httpd_suspend(c->r);
    if (atomic_load(&c->app->stopping))
        return -1;
    return httpc_loop_async(httpd_loop(c->r), req, cb, c) ? -2 : 0;
}

void api_call_start(api_call *c, const char *method, const void *body,
                        size_t len, long timeout_ms)
{
    /* subreq: the writes of one pass go to the queue together */
    httpc_req req = {.method = method, .url = c->url, .body = body,
                     .body_len = len, .headers = c->hdrs,
                     .timeout_ms = timeout_ms, .subreq = 1};
    int rc = api_call_async(c, &req, api_call_done);

    if (rc == 0)
        return;
    if (rc == -1) {
        static const char *const h[] = {"Retry-After: 1", NULL};
        httpd_error_h(c->r, 503, h, "shutting_down", "this api is stopping");
    } else {
        httpd_error(c->r, 503, "overloaded", "the api could not start the call");
    }
    api_call_free(c);
}
