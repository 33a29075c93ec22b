/* httpd: a small HTTP server over libmicrohttpd.
 *
 * A pool of worker threads (sized to the cores unless told otherwise) accept
 * on one listening socket. Each runs its own event loop: a libmicrohttpd
 * daemon in external-epoll mode and an httpc_loop (httpd_loop), so that a
 * handler can call another server without blocking its thread and without
 * handing the request to another thread: the upstream answer arrives on the
 * same thread, which answers the client in the same pass. Under load one
 * wakeup then serves many connections, where a blocking call costs two
 * context switches per request.
 *
 * Before any body byte is read, a request's head is checked: a request
 * target with a space, a control byte or a NUL, a duplicate Content-Length
 * or one beside Transfer-Encoding get 400, an announced body over max_body
 * 413, and the server's admit hook may refuse it too (401 without the
 * token); such an answer goes out at once and the body is never read (the
 * connection closes after it). libmicrohttpd answers some malformed
 * requests itself, before we see them, with its own HTML page (docs/
 * PROTOCOL.md lists them).
 *
 * Connections are kept by the rules of lib/httpd_conns.h (per-address and
 * total limits, a deadline for the first request head).
 *
 * The handler is called once per request, after the whole body has arrived
 * (a chunked body that grows past max_body gets 413 JSON at its end,
 * without reaching the handler and without being kept). It
 * answers with one httpd_respond* call, or calls httpd_suspend() and answers
 * later, from any thread, with the same httpd_respond* calls (the connection
 * is then resumed). Every request gets exactly one answer. A handler that
 * blocks holds its worker's other connections: block only on fast calls.
 *
 * Paths are kept percent-encoded: split them with httpd_path_* and decode a
 * segment with httpd_decode(), so that a key may contain '/' as %2F.
 *
 * Ownership: the server owns httpd_req; it is valid from the handler call
 * until the request is answered. Strings returned by accessors live as long
 * as the request. */
#ifndef KV_HTTPD_H
#define KV_HTTPD_H

#include "httpc_loop.h"
#include "metrics.h"

#include <cjson/cJSON.h>

#include <stddef.h>
#include <stdint.h>

typedef struct httpd httpd_t;
typedef struct httpd_req httpd_req;
typedef void (*httpd_handler)(httpd_req *r, void *app);

typedef struct httpd_opts {
    const char *bind;       /* address, default "127.0.0.1" */
    uint16_t port;          /* 0 picks a free port: see httpd_port() */
    unsigned threads;       /* 0 = number of cores */
    unsigned timeout_s;     /* idle connection timeout, default 120 s: longer
                               than nginx's upstream keepalive_timeout (60 s) */
    size_t max_body;        /* default 1 MiB + 64 KiB */
    unsigned max_conns;     /* default 4096 */
    unsigned max_conns_per_ip; /* default max_conns / 4 */
    unsigned head_timeout_ms;  /* a new connection's first request head
                                  must be in by then; default 10 000 */
    /* Called once a request's head is in, before its body is read (may be
     * NULL): answering here (httpd_error) refuses the request without
     * reading its body; not answering lets it go on to the handler. */
    void (*admit)(httpd_req *r, void *app);
    /* Called by each worker after every pass of its loop (may be NULL):
     * where a server finishes work it batched over the pass. */
    void (*on_pass)(void *app);
    /* When set, each answer's time from its request's arrival to the
     * response is recorded here (a suspended request's too). */
    metrics_hist *latency;
    /* Serve POST SUBREQ_PATH (lib/subreq.h): each request in its body goes
     * through admit and the handler as if it had come alone, and the
     * answers go back together. For servers our own servers call. */
    int subreq;
} httpd_opts;

httpd_t *httpd_start(const httpd_opts *o, httpd_handler h, void *app);
/* Wait until every suspended request has been answered and sent; 0, or -1
 * when timeout_ms passed first. */
int httpd_drain(httpd_t *d, long timeout_ms);
/* From now on every answer carries "Connection: close": a server about to
 * stop tells its clients (nginx) to stop reusing connections to it. */
void httpd_set_closing(httpd_t *d);
/* Drains (up to 5 s), stops, joins the threads, frees. */
void httpd_stop(httpd_t *d);
uint16_t httpd_port(const httpd_t *d);

/* The httpc loop of the worker running this request's handler: calls
 * started on it from the handler call back on this thread. */
httpc_loop *httpd_loop(const httpd_req *r);

/* Request accessors. */
const char *httpd_method(const httpd_req *r);
const char *httpd_path(const httpd_req *r);      /* raw, still %-encoded */
const char *httpd_header(httpd_req *r, const char *name);
const char *httpd_query(httpd_req *r, const char *name); /* decoded */
const void *httpd_body(const httpd_req *r, size_t *len);
/* The client's address: X-Real-IP when present (nginx sets it), else the peer. */
const char *httpd_client_ip(httpd_req *r);
/* The TCP peer's address only (no header trusted): for servers no proxy
 * stands in front of, like the lab gateway (kv-api --lab). */
const char *httpd_peer_ip(httpd_req *r);
int httpd_method_is(const httpd_req *r, const char *m);

/* Path helpers. httpd_path_seg returns the i-th '/'-separated segment of the
 * raw path (without the query) and its length, or NULL past the end. */
const char *httpd_path_seg(const httpd_req *r, unsigned i, size_t *len);
unsigned httpd_path_nsegs(const httpd_req *r);
/* Percent-decode in[0..n) into a new NUL-terminated buffer (caller frees).
 * Returns NULL on a bad escape or a NUL byte, decoded (%00) or raw: the
 * result never holds one (paths reach it as C strings, but it takes a
 * length and does not rely on that). */
char *httpd_decode(const char *in, size_t n, size_t *out_len);

/* Per-request user data, freed with free_fn when the request ends. */
void httpd_set_user(httpd_req *r, void *user, void (*free_fn)(void *));
void *httpd_user(const httpd_req *r);

/* Answering. Headers are "Name: value" strings, terminated by NULL. */
void httpd_respond(httpd_req *r, unsigned status, const char *content_type,
                   const void *body, size_t len, const char *const *headers);
/* Takes ownership of json (deleted after printing). */
void httpd_respond_json(httpd_req *r, unsigned status, cJSON *json,
                        const char *const *headers);
/* {"error":code,"message":...} with the given status. */
void httpd_error(httpd_req *r, unsigned status, const char *code,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Same with extra headers (Retry-After and the like). */
void httpd_error_h(httpd_req *r, unsigned status, const char *const *headers,
                   const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Answer later: call before handing the request to another thread.
 * The request counts as pending (httpd_drain) from here until it is sent. */
void httpd_suspend(httpd_req *r);

#endif
