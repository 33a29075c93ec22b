/* queue_http: the routes of kv-queue (docs/PROTOCOL.md "Queue"). */
#ifndef KV_QUEUE_HTTP_H
#define KV_QUEUE_HTTP_H

#include "config.h"
#include "httpd.h"
#include "wq.h"

typedef struct queue_http_app {
    const kv_config *cfg;
    wq_t *wq;
    topo_watch *topo;
} queue_http_app;

void queue_http_handle(httpd_req *r, void *app);
/* opts.admit: /internal/ routes need the token (401 before the body). */
void queue_http_admit(httpd_req *r, void *app);
/* httpd's on_pass: journal and answer the writes this worker took in its
 * pass (queue_http_handle collects them). */
void queue_http_flush(void *app);
/* The wq_notify_fn that answers a waiting request. */
void queue_http_notify(void *waiter, const wq_outcome *o);

#endif
