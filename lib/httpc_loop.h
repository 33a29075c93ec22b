/* httpc_loop: the event-loop HTTP client, written by hand (lib/httpc_loop.c).
 * A request is started with httpc_loop_async and its callback runs on the
 * loop's thread when it ends; for servers that suspend a request while they
 * wait on another server (api -> store and queue, lab controller -> nodes).
 *
 * Why a second client beside libcurl (lib/httpc.h): on these hot paths
 * libcurl's multi interface cost about 10 us of CPU a transfer on the 2-core
 * VM (two poll()s to check a reused connection, an epoll_ctl pair per
 * transfer, a dozen mallocs), making the api twice as expensive as an nginx
 * hop. This client does one sendmsg and one or two recvs per request on
 * sockets that stay in the loop's epoll set (edge-triggered) for their life.
 *
 * What it does, exactly:
 *  - HTTP/1.1 over plain TCP to "http://host[:port]/path" URLs. No TLS,
 *    proxies, redirects, Expect: 100-continue, or src_addr (ignored).
 *  - Request: "Host: host:port", the caller's headers, and for a body or any
 *    method but GET/HEAD a Content-Length (and Content-Type:
 *    application/octet-stream if the caller gave a body and none).
 *  - Response bodies framed by Content-Length, chunked encoding, or the end
 *    of the connection; none for HEAD, 204, 304; interim 1xx answers are
 *    skipped (parsed by llhttp through lib/http1_parse.h, strict: a
 *    malformed or ambiguous answer fails). Bodies over HTTPC_MAX_RESP_BODY
 *    fail the request.
 *  - Keep-alive: connections are pooled per host:port in each loop (up to
 *    64 idle); one is closed when the answer said Connection: close or was
 *    close-delimited, or when an idle one reads anything (bytes or EOF).
 *  - Retry: a request whose REUSED connection dies before any byte of the
 *    answer arrived is sent once more on a new connection, whatever its
 *    method (the server closed an idle connection as we wrote).
 *  - Timeout: one deadline per request, timeout_ms from the submission
 *    (default HTTPC_DEFAULT_TIMEOUT_MS), covering the wait for the host's
 *    address, connect, send and the whole answer; there is no separate
 *    connect timeout. It is checked on each httpc_loop_run, which a
 *    caller's loop runs at httpc_loop_timeout_ms() at the latest.
 *  - Batches: a request with httpc_req.subreq, submitted on the loop's own
 *    thread, may go to its server together with the others for it that
 *    wait with it, as one POST /internal/subreq whose answer is split back
 *    into each one's (lib/httpc_batch.h); its callback sees the answer it
 *    would have had alone. While that server has a transfer of this loop
 *    out, such a request waits up to HTTPC_BATCH_HOLD_US for its answer.
 *  - Host names come from lib/resolve, whose own thread does the DNS: a
 *    request whose name has no address yet waits (its deadline running)
 *    without holding up the loop.
 *  - Failures (refused, reset, timed out, malformed) reach the callback as
 *    status 0 with resp->error set, never as a -1 from httpc_loop_async.
 *
 * Threads: a loop belongs to one thread, the caller of httpc_loop_new or
 * httpc_loop_start's own thread; callbacks run only there, inside
 * httpc_loop_run. httpc_loop_async may be called from any thread: on the
 * loop's thread the request waits for the next httpc_loop_run (so a
 * callback never runs inside httpc_loop_async), from other threads it goes
 * through an inbox and wakes the loop (an eventfd).
 *
 * Ownership: the caller owns httpc_req; httpc_loop_async copies the URL and
 * the headers but borrows body until the callback has run. The response a
 * callback gets is valid during the callback only: take resp->body (and
 * set it to NULL) to keep it. The loop owns its connections; httpc_loop_free
 * and httpc_loop_stop fail what is pending (callbacks run) and close them. */
#ifndef KV_HTTPC_LOOP_H
#define KV_HTTPC_LOOP_H

#include "httpc.h"

typedef struct httpc_loop httpc_loop;
typedef void (*httpc_done_fn)(httpc_resp *resp, void *ctx);

/* A loop with its own thread. */
httpc_loop *httpc_loop_start(void);
void httpc_loop_stop(httpc_loop *l);   /* fails pending requests, joins */

/* A loop run by the calling thread: wait until httpc_loop_fd() is readable
 * (poll it, or add it to an epoll set of your own: never epoll_wait on it
 * directly, that would take the events httpc_loop_run reads) or
 * httpc_loop_timeout_ms() passed (-1: no deadline pending), then
 * httpc_loop_run(), which never blocks. httpc_loop_free on the same
 * thread. httpd's worker threads each run one, so a handler's upstream call
 * and its answer stay on one thread. */
httpc_loop *httpc_loop_new(void);
int httpc_loop_fd(const httpc_loop *l);
long httpc_loop_timeout_ms(const httpc_loop *l);
void httpc_loop_run(httpc_loop *l);
/* For a caller whose own epoll set holds httpc_loop_fd(): when it did not
 * report the descriptor, httpc_loop_due() says whether a run has work all
 * the same (requests to start, a deadline passed) and httpc_loop_run_idle()
 * does it without reading events, a system call fewer than
 * httpc_loop_run. */
int httpc_loop_due(const httpc_loop *l);
void httpc_loop_run_idle(httpc_loop *l);
void httpc_loop_free(httpc_loop *l);

/* Queue a request (see Threads above). 0, or -1 when the URL is not
 * http://host[:port]/path, memory ran out or the loop is stopping: then
 * nothing was started and cb is never called. */
int httpc_loop_async(httpc_loop *l, const httpc_req *req, httpc_done_fn cb,
                     void *ctx);

#endif
