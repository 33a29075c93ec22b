/* gateway: kv-api --lab, the CloudCart lab's gateway (DESIGN §6).
 *
 * Routes: POST /write {"key","value"} -> the controller's POST /write;
 * GET /read/{key} -> its GET /read/{key}; GET /cluster-status -> its GET
 * /status (status code and JSON body passed through); GET /health
 * {"status":"ok"}; GET /stats {"gateway":{...},"rate_limiter":{...}};
 * GET /metrics. Anything else is 404 JSON, a known path with another method
 * 405 JSON with Allow.
 *
 * The limiter (api.rate_limit requests per api.rate_window_ms, off at 0) is
 * the fixed window per client of lib/ratelimit.h (RATELIMIT_FIXED: the window
 * starts at the client's first request), in front of every path, /health
 * and /stats included. The client is the TCP peer address: no proxy stands
 * in front of the lab gateway, so X-Real-IP is not trusted. A denial is 429
 * {"error":"Too Many Requests","retry_after":S,"message":...} with
 * Retry-After: S (whole seconds), X-RateLimit-Limit and
 * X-RateLimit-Remaining: 0; every other answer carries X-RateLimit-Limit and
 * X-RateLimit-Remaining too (while the limiter is on).
 *
 * Forwarded calls run on the worker's httpc loop with the client request
 * suspended (api_call_async): a lab write waits for W slow followers (0.5 s
 * each in the lab profile), so it must not hold a server thread.
 *
 * Ownership: gw_new allocates the gateway (the controller URL is copied);
 * gw_free frees it after the server has drained. */
#ifndef KV_API_GATEWAY_H
#define KV_API_GATEWAY_H

#include "app.h"

#define API_LAB_PORT 8000
#define API_LAB_CONTROLLER "http://127.0.0.1:7000"
#define GW_WRITE_TIMEOUT_MS 15000L   /* POST /write: the lab quorum is slow */
#define GW_READ_TIMEOUT_MS 10000L    /* GET /read/{key} */
#define GW_STATUS_TIMEOUT_MS 5000L   /* GET /cluster-status */

typedef struct gw gw_t;

gw_t *gw_new(const char *controller_url);
void gw_free(gw_t *g);
/* The request handler of lab mode (api_handle hands every request here
 * when app->gw is set). */
void gw_handle(httpd_req *r, api_app *a);
/* Longest a forwarded call may take: how long shutdown drains. */
long gw_max_call_ms(void);

#endif
