/* api_http: the routes of kv-api, the public API (README.md; docs/PROTOCOL.md
 * "Api"): /kv/{key} reads (api/quorum.h) and writes (to the queue),
 * /counter/..., /jobs/{id}, /ring, /health, /ready, /stats, /metrics and
 * POST /internal/topology-changed. Every answer that needs another server is
 * given from an api_call's callback (api/api_call.h). */
#ifndef KV_API_HTTP_H
#define KV_API_HTTP_H

#include "httpd.h"

/* The httpd handler; app is the api_app. */
void api_http_handle(httpd_req *r, void *app);
/* opts.admit: /internal/ routes need the token (401 before the body). */
void api_http_admit(httpd_req *r, void *app);
/* kv_api_requests_total += 1: api_http_handle counts its requests, the lab
 * gateway (kv-api --lab) its own. */
void api_http_count_request(void);
/* Once, before the server starts. */
void api_http_metrics_register(void);
/* The api's answer-time histogram (kv_api_request_seconds), which its
 * server records into (httpd_opts.latency). */
metrics_hist *api_http_latency(void);

#endif
