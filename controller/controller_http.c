#include "controller_http.h"

#include "cluster_publish.h"
#include "kvhttp.h"
#include "ui_state.h"
#include "ui_static.h"
#include "log.h"
#include "metrics.h"
#include "num.h"

#include <stdlib.h>
#include <string.h>

struct controller_http {
    httpd_t *srv;
    cluster_t *cl;
    sup_t *sup;
    reshard_t *rs;
};

METRIC_COUNTER(controller_http_requests, "kv_controller_http_requests_total",
               "HTTP requests served by the controller");

static const char *const controller_http_allow_get[] = {"Allow: GET", NULL};

/* The controller's own lines in every /metrics render (lib/metrics). */
static void controller_http_metrics(metrics_text *t, void *ctx)
{
    controller_http *h = ctx;

    cluster_publish_metrics(t, h->cl, h->sup);
    if (h->rs)
        reshard_metrics(t, h->rs);
}

static const char *const controller_http_allow_shards[] = {"Allow: POST",
                                                            NULL};
static const char *const controller_http_allow_shard[] = {"Allow: DELETE",
                                                           NULL};

/* POST /shards, DELETE /shards/{id} (reshard.h). */
static void controller_http_shards(struct controller_http *h, httpd_req *r,
                                   const char *path, size_t plen)
{
    int status = 500;
    cJSON *out;

    if (plen == 7) {
        size_t len = 0;
        const void *body;
        if (!httpd_method_is(r, "POST")) {
            httpd_error_h(r, 405, controller_http_allow_shards,
                          "method_not_allowed", "%s /shards: only POST (add "
                          "a shard) is allowed", httpd_method(r));
            return;
        }
        body = httpd_body(r, &len);
        out = reshard_add(h->rs, body ? body : "", body ? len : 0, &status);
    } else {
        char idtext[16];
        size_t n = plen - 8;
        uint64_t id;
        if (!httpd_method_is(r, "DELETE")) {
            httpd_error_h(r, 405, controller_http_allow_shard,
                          "method_not_allowed", "%s /shards/{id}: only "
                          "DELETE (remove the shard) is allowed",
                          httpd_method(r));
            return;
        }
        if (n == 0 || n >= sizeof idtext) {
            httpd_error(r, 400, "bad_request", "DELETE /shards/{id}: the id "
                        "is a number 0..%d", CLUSTER_MAX_SHARDS - 1);
            return;
        }
        memcpy(idtext, path + 8, n);
        idtext[n] = '\0';
        if (num_parse_max(idtext, UINT32_MAX, &id) != 0) {
            httpd_error(r, 400, "bad_request", "DELETE /shards/%s: the id is "
                        "a number 0..%d", idtext, CLUSTER_MAX_SHARDS - 1);
            return;
        }
        out = reshard_remove(h->rs, (uint32_t)id, &status);
    }
    httpd_respond_json(r, (unsigned)status, out, NULL);
}

/* The mutating routes (POST /shards, DELETE /shards/{id}) need the token;
 * the reads (/topology every process polls, /health, /status) do not. The
 * dashboard (/ui/) is open to this machine only: from elsewhere it needs
 * the token too (its page sends it once the user typed it). */
static void controller_http_admit(httpd_req *r, void *app)
{
    struct controller_http *h = app;
    const char *path = httpd_path(r);

    if (strncmp(path, "/shards", 7) == 0 && !httpd_method_is(r, "GET") &&
        !httpd_method_is(r, "HEAD"))
        kvhttp_auth(r, h->cl->cfg.token);
    else if (strncmp(path, "/ui", 3) == 0 && !kvhttp_is_local(r))
        kvhttp_auth(r, h->cl->cfg.token);
}

/* GET /ui/state[?after=ID] (controller/ui_state.h). */
static void controller_http_ui_state(struct controller_http *h, httpd_req *r)
{
    uint64_t id;

    if (ui_static_after(r, &id) == 0)
        httpd_respond_json(r, 200, ui_state_cluster(h->cl, h->sup, h->rs, id), NULL);
}

void controller_http_handle(httpd_req *r, void *app)
{
    struct controller_http *h = app;
    const char *path = httpd_path(r);
    size_t plen = strcspn(path, "?");
    static const char *const routes[] = {"/topology", "/health", "/status",
                                         "/metrics", "/rebalance"};
    int route = -1;

    metrics_add(&controller_http_requests, 1);
    if (plen == 9 && memcmp(path, "/ui/state", 9) == 0 &&
        (httpd_method_is(r, "GET") || httpd_method_is(r, "HEAD"))) {
        controller_http_ui_state(h, r);
        return;
    }
    if (ui_static_serve(r, path, plen))
        return;
    if (h->rs && plen >= 7 && memcmp(path, "/shards", 7) == 0 &&
        (plen == 7 || path[7] == '/')) {
        controller_http_shards(h, r, path, plen);
        return;
    }
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strlen(routes[i]) == plen && memcmp(routes[i], path, plen) == 0)
            route = (int)i;
    if (route < 0) {
        httpd_error(r, 404, "not_found", "no route %.*s on the controller",
                    (int)(plen > 200 ? 200 : plen), path);
        return;
    }
    if (!httpd_method_is(r, "GET") && !httpd_method_is(r, "HEAD")) {
        httpd_error_h(r, 405, controller_http_allow_get, "method_not_allowed",
                      "%s %.*s: only GET is allowed", httpd_method(r),
                      (int)plen, path);
        return;
    }
    switch (route) {
    case 0:
        httpd_respond_json(r, 200, cluster_publish_topology(h->cl), NULL);
        break;
    case 1:
        kvhttp_ok(r, NULL);
        break;
    case 2:
        httpd_respond_json(r, 200, cluster_publish_status(h->cl, h->sup), NULL);
        break;
    case 4:
        if (h->rs)
            httpd_respond_json(r, 200, reshard_rebalance(h->rs), NULL);
        else
            httpd_error(r, 404, "not_found", "no migrations here");
        break;
    default:
        kvhttp_metrics(r);
    }
}

controller_http *controller_http_start(cluster_t *cl, sup_t *sup,
                                       reshard_t *rs)
{
    static int registered; /* a metric registers once per process */
    struct controller_http *h = calloc(1, sizeof *h);
    httpd_opts o;

    if (h == NULL)
        return NULL;
    if (!registered) {
        metrics_register(&controller_http_requests);
        registered = 1;
    }
    h->cl = cl;
    h->sup = sup;
    h->rs = rs;
    memset(&o, 0, sizeof o);
    o.bind = cl->cfg.bind[0] ? cl->cfg.bind : "0.0.0.0";
    o.port = (uint16_t)cl->cfg.base_port;
    o.threads = 2;
    o.max_body = 64 * 1024;
    kvhttp_limits(&o, &cl->cfg);
    o.admit = controller_http_admit;
    if (metrics_register_fn(controller_http_metrics, h) != 0) {
        free(h);
        return NULL;
    }
    h->srv = httpd_start(&o, controller_http_handle, h);
    if (h->srv == NULL) {
        metrics_unregister_fn(controller_http_metrics, h);
        free(h);
        return NULL;
    }
    return h;
}

void controller_http_stop(controller_http *h)
{
    if (h == NULL)
        return;
    httpd_stop(h->srv);
    metrics_unregister_fn(controller_http_metrics, h);
    free(h);
}
