/* httpc_batch: the client side of lib/subreq.h, inside lib/httpc_loop. A
 * request submitted with httpc_req.subreq on its loop's own thread waits,
 * with the others for the same host:port, until the loop's next run starts
 * what is pending; then one that is alone goes as it is, and two or more go
 * as one POST to SUBREQ_PATH, whose answer is split into each one's own
 * answer (status, headers, body) for its callback. So only requests that
 * were already waiting together travel together, and a request alone is
 * not delayed at all.
 *
 * A batch is at most SUBREQ_MAX requests and HTTPC_BATCH_BYTES of body; a
 * request with a bigger body goes alone. When the server refuses the batch
 * itself (400, 404, 405, 413: it does not serve sub-requests, or not this
 * many), each request is sent again alone, and that host gets no batch for
 * HTTPC_BATCH_OFF_MS. Any other answer to the batch (a transport failure,
 * 401, 503...) is every request's answer.
 *
 * Threads: the loop's. Ownership: the batch copies what it keeps of a
 * request (method, URL, headers); the body stays borrowed until the
 * request's callback, as with httpc_loop_async. */
#ifndef KV_HTTPC_BATCH_H
#define KV_HTTPC_BATCH_H

#include "httpc_loop.h"

#include <stdint.h>

#define HTTPC_BATCH_BYTES ((size_t)60 * 1024)
#define HTTPC_BATCH_OFF_MS 10000

typedef struct httpc_batch httpc_batch;

httpc_batch *httpc_batch_new(httpc_loop *l);
/* Hold req for host:port until httpc_batch_flush (host, port and path:
 * httpc_url_split of its URL). 0, or -1: not held (out of memory, its body
 * too big, or the host refuses batches): send it the usual way. */
int httpc_batch_add(httpc_batch *b, const httpc_req *req, const char *host,
                    size_t hlen, uint16_t port, const char *path,
                    httpc_done_fn cb, void *ctx);
/* Send what is held (through httpc_loop_async on the batch's loop). */
void httpc_batch_flush(httpc_batch *b);
/* 1 when a request is held: the loop's next run has work. */
int httpc_batch_holding(const httpc_batch *b);
/* Flushes first: what it sent ends with the loop's other requests. */
void httpc_batch_free(httpc_batch *b);

void httpc_batch_metrics_register(void);

#endif
