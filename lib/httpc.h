/* httpc: the blocking HTTP client, over libcurl.
 *  - httpc_do: one request, on a keep-alive handle cached per thread.
 *  - httpc_parallel: n requests at once (curl_multi), returning when all
 *    have ended or deadline_ms passed (at most 64; more are dropped).
 * For the CLI, the lab, health checks and tests: calls where the caller may
 * wait, and where libcurl's generality is worth its CPU (about 10 us a
 * transfer). Servers that must not block a thread while they wait on another
 * server use the event-loop client instead (lib/httpc_loop.h), which shares
 * httpc_req, httpc_resp and the helpers below; include httpc_loop.h for it.
 *
 * Timeouts: timeout_ms bounds the whole call (default
 * HTTPC_DEFAULT_TIMEOUT_MS); the connect within it is bounded by 1000 ms.
 * httpc_req.src_addr binds the client socket to a local address. Host names
 * are looked up through lib/resolve (a cache one thread keeps fresh), never
 * by libcurl's own resolver.
 *
 * Ownership: the caller owns httpc_req and what it points to. A response's
 * buffers are allocated by httpc and freed with httpc_resp_free. */
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
                                      address (httpc_do and
                                      httpc_parallel; NULL: any) */
    int subreq;                    /* httpc_loop_async on the loop's own
                                      thread: may travel with others to
                                      the same server in one request
                                      (lib/httpc_batch.h) */
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

#endif
