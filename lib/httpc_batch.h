/* httpc_batch: the client side of lib/subreq.h, inside lib/httpc_loop. A
 * request submitted with httpc_req.subreq on its loop's own thread waits,
 * with the others for the same host:port, until the loop's next run starts
 * what is pending; then one that is alone goes as it is, and two or more go
 * as one POST to SUBREQ_PATH, whose answer is split into each one's own
 * answer (status, headers, body) for its callback.
 *
 * While a transfer of this loop to that host:port is out, what comes for
 * it waits for the answer, or HTTPC_BATCH_HOLD_US after that transfer left,
 * whichever comes first (Nagle's rule, with a bound): under load the
 * requests of many passes go together, one round trip each. A request
 * that finds nothing out to its server leaves at once, so one client
 * alone sees no added latency; and one slow transfer (a write waiting for
 * its quorum) delays the next by HTTPC_BATCH_HOLD_US at most.
 *
 * A batch is at most SUBREQ_MAX requests and HTTPC_BATCH_BYTES of body (a
 * full one goes at once); a request with a bigger body goes alone. When
 * the server refuses the batch itself (400, 404, 405, 413: it does not
 * serve sub-requests, or not this many), each request is sent again alone,
 * and that host gets no batch for HTTPC_BATCH_OFF_MS. Any other answer to
 * the batch (a transport failure, 401, 503...) is every request's answer.
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
#define HTTPC_BATCH_HOLD_US 1000

typedef struct httpc_batch httpc_batch;

httpc_batch *httpc_batch_new(httpc_loop *l);
/* Hold req for host:port until httpc_batch_flush (host, port and path:
 * httpc_url_split of its URL). 0, or -1: not held (out of memory, its body
 * too big, or the host refuses batches): send it the usual way. */
int httpc_batch_add(httpc_batch *b, const httpc_req *req, const char *host,
                    size_t hlen, uint16_t port, const char *path,
                    httpc_done_fn cb, void *ctx);
/* Send what is held and may go now (through httpc_loop_async on the
 * batch's loop); the rest waits for an answer or its hold to end. */
void httpc_batch_flush(httpc_batch *b);
/* Send everything held, waiting or not (the loop is closing). */
void httpc_batch_flush_all(httpc_batch *b);
/* Milliseconds until a held request may go: 0 now, -1 none held. */
long httpc_batch_timeout_ms(const httpc_batch *b);
/* Flushes all first; the loop has ended every transfer the batch sent
 * before (httpc_loop_free). */
void httpc_batch_free(httpc_batch *b);

void httpc_batch_metrics_register(void);

#endif
