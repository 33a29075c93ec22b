/* api_call: asynchronous calls from the api to a store or the queue on
 * behalf of a suspended client request, on the httpc loop of the worker
 * thread that runs the request (httpd_loop), and turning their answers into
 * the client's answer. Ownership: api_call_start takes the call
 * (allocated by api_call_new) and frees it after the client has been
 * answered. */
#ifndef KV_API_CALL_H
#define KV_API_CALL_H

#include "api_app.h"

#include <stdint.h>

enum api_call_kind {
    API_CALL_READ,          /* GET /kv/{key} */
    API_CALL_WRITE,         /* PUT, DELETE, POST .../incr: relay the queue */
    API_CALL_COUNTER_INC,   /* POST /counter/{key}/increment */
    API_CALL_COUNTER_GET,   /* GET /counter/{key} */
    API_CALL_RELAY          /* relay as is (GET /jobs/{id}) */
};

#define API_CALL_MAX_HDRS 8

typedef struct api_call {
    httpd_req *r;
    api_app *app;
    enum api_call_kind kind;
    char *key;                     /* decoded key (freed with the call) */
    size_t klen;
    uint32_t shard;
    uint64_t epoch;                /* the shard epoch the topology gave */
    int want_json;
    char *url;                     /* sized for the key (api_call_url) */
    char served_by[256];
    char quorum_hdr[96];           /* "X-KV-Quorum: ..." for the client, or "" */
    const char *hdrs[API_CALL_MAX_HDRS];   /* to upstream */
    char hbuf[4][320];
    char rl_hdrs[3][64];              /* X-RateLimit-* for the client */
    unsigned nrl;
} api_call;

api_call *api_call_new(httpd_req *r, api_app *a, enum api_call_kind kind);
void api_call_free(api_call *c);
/* Build c->url with printf; a 1024-byte key is up to 3072 bytes encoded.
 * 0, or -1 (answered 503) when out of memory. */
int api_call_url(api_call *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Add a "Name: value" header to the upstream request. */
void api_call_header(api_call *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Suspend the client request and start req on its worker's loop, cb(resp,
 * c) to follow on that thread. 0 started; -1 the api is stopping, -2 the
 * call could not start: the request is suspended either way, the caller
 * answers it. */
int api_call_async(api_call *c, const httpc_req *req, httpc_done_fn cb);
/* Suspend the client request and send method url with body (borrowed from
 * the client request). Answers 503 itself if the call cannot start. */
void api_call_start(api_call *c, const char *method, const void *body,
                        size_t len, long timeout_ms);
/* Answer the client from an upstream answer (status 0: the upstream did not
 * answer: 503) and free the call. resp stays the caller's. */
void api_call_finish(api_call *c, httpc_resp *resp);
/* Answer the client with json (taken) plus the call's client headers and
 * one extra header (or NULL), and free the call. */
void api_call_json(api_call *c, unsigned status, cJSON *json,
                       const char *extra);

#endif
