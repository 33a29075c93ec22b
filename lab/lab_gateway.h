/* lab_gateway: kv-api --lab, the CloudCart lab's gateway (docs/PROTOCOL.md,
 * "The CloudCart lab").
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
 * Ownership: lab_gateway_new allocates the gateway (the controller URL is copied);
 * lab_gateway_free frees it after the server has drained. */
#ifndef KV_API_GATEWAY_H
#define KV_API_GATEWAY_H

#include "httpd.h"

#define LAB_GATEWAY_PORT 8000
#define LAB_GATEWAY_CONTROLLER "http://127.0.0.1:7000"
#define LAB_GATEWAY_WRITE_TIMEOUT_MS 15000L   /* POST /write: the lab quorum is slow */
#define LAB_GATEWAY_READ_TIMEOUT_MS 10000L    /* GET /read/{key} */
#define LAB_GATEWAY_STATUS_TIMEOUT_MS 5000L   /* GET /cluster-status */

typedef struct lab_gateway lab_gateway_t;

lab_gateway_t *lab_gateway_new(const char *controller_url);
void lab_gateway_free(lab_gateway_t *g);
/* The request handler of kv-api --lab (api/main.c passes it to httpd_start
 * with the api_app, whose lab_gateway is set): the gateway's routes and
 * limiter only; api/http.c serves the product API. */
void lab_gateway_handle(httpd_req *r, void *app);
/* Longest a forwarded call may take: how long shutdown drains. */
long lab_gateway_max_call_ms(void);

#endif
