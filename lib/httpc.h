/* httpc: HTTP client over libcurl, three ways to call.
 *  - httpc_do: blocking, on a keep-alive handle cached per thread.
 *  - httpc_parallel: blocking fan-out of n requests with curl_multi.
 *  - httpc_loop_async: start a request on an event loop (curl_multi) and get a
 *    callback on the loop's thread when it ends; for servers that suspend a
 *    request while they wait on another server. A loop either has a thread
 *    of its own (httpc_loop_start) or is run by the thread that made it
 *    (httpc_loop_new), inside that thread's own event loop: httpd's worker
 *    threads each run one, so a handler's upstream call and its answer stay
 *    on one thread.
 * Every call has a timeout (timeout_ms, default 2000 ms; connect 1000 ms).
 * Host names are looked up through lib/resolve (a cache one thread keeps
 * fresh), never by the calling thread itself.
 *
 * Ownership: the caller owns httpc_req and what it points to; httpc_loop_async
 * copies url and headers but borrows body until the callback runs. A
 * response's buffers are allocated by httpc and freed with httpc_resp_free;
 * the response an async callback gets is valid during the callback only
 * (take resp->body and set it to NULL to keep it). */
#ifndef KV_HTTPC_H
#define KV_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#define HTTPC_DEFAULT_TIMEOUT_MS 2000L
#define HTTPC_MAX_RESP_BODY ((size_t)64 * 1024 * 1024)

typedef struct httpc_req {
    const char *method;            /* default GET */
    const char *url;
    const void *body;
    size_t body_len;
    const char *const *headers;    /* "Name: value", NULL-terminated */
    long timeout_ms;               /* 0 = HTTPC_DEFAULT_TIMEOUT_MS */
    const char *src_addr;          /* bind the client socket to this local
                                      address (httpc_do only; NULL: any) */
} httpc_req;

typedef struct httpc_resp {
    long status;                   /* 0 when the transport failed */
    char *body;                    /* NUL-terminated, may hold NULs */
    size_t len;
    char *headers;                 /* raw header block */
    char error[256];               /* transport error text when status == 0 */
    int bind_failed;               /* src_addr could not be bound */
} httpc_resp;

void httpc_global_init(void);      /* once, before any thread starts */
/* Split "http://host[:port]/path" (port 80 by default); host is not
 * NUL-terminated (hlen). 0, or -1 when url is not of that form. */
int httpc_url_split(const char *url, const char **host, size_t *hlen,
                    uint16_t *port, const char **path);
int httpc_do(const httpc_req *req, httpc_resp *out); /* 0, -1 on transport error */
void httpc_parallel(const httpc_req *reqs, httpc_resp *resps, size_t n,
                    long deadline_ms);
void httpc_resp_free(httpc_resp *r);
/* Free this thread's cached handles now (threads that end free them anyway;
 * the main thread calls this before exit so leak checkers stay quiet). */
void httpc_thread_done(void);
/* Value of a response header (case-insensitive) into buf; NULL when absent. */
const char *httpc_resp_header(const httpc_resp *r, const char *name, char *buf,
                              size_t bufsz);

typedef struct httpc_loop httpc_loop;
typedef void (*httpc_done_fn)(httpc_resp *resp, void *ctx);

/* A loop with its own thread. */
httpc_loop *httpc_loop_start(void);
void httpc_loop_stop(httpc_loop *l);   /* fails pending requests, joins */

/* A loop run by the calling thread: wait until httpc_loop_fd() is readable
 * (poll it, or add it to an epoll set of your own: never epoll_wait on it
 * directly) or httpc_loop_timeout_ms() passed (-1: no timer), then
 * httpc_loop_run()
 * (never blocks; callbacks run inside it). httpc_loop_free fails what is
 * still pending (callbacks run) and frees; call it on the same thread. */
httpc_loop *httpc_loop_new(void);
int httpc_loop_fd(const httpc_loop *l);
long httpc_loop_timeout_ms(const httpc_loop *l);
void httpc_loop_run(httpc_loop *l);
void httpc_loop_free(httpc_loop *l);

/* From any thread; on the loop's own thread the transfer starts at once.
 * 0, or -1 (nothing started, cb never called). */
int httpc_loop_async(httpc_loop *l, const httpc_req *req, httpc_done_fn cb,
                void *ctx);

#endif
