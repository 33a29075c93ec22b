/* http1_parse: the HTTP/1.1 response parser of the event-loop client
 * (lib/httpc_loop.c), on its own so it can be tested without sockets.
 *
 * It reads one response at a time from a buffer the caller fills: the status
 * line and headers (up to HTTP1_MAX_HEADER_BYTES), dropping interim 1xx
 * answers, then a body framed by Content-Length, by chunked encoding (chunk
 * extensions and trailers are skipped; trailers are bounded like a head,
 * HTTP1_MAX_HEADER_BYTES), or by the end of the connection (no length and
 * not chunked). A HEAD answer, 204 and 304 have no body, whatever their
 * headers say. Bodies over HTTPC_MAX_RESP_BODY are refused.
 *
 * The parsing is llhttp's (the parser Node.js uses; Debian ships it as C
 * sources in node-llhttp, built into build/<variant>/llhttp/ by the Makefile
 * with LLHTTP_STRICT_MODE, no lenient flags). A hand-written parser was here
 * before: it read past the bytes received and took an empty Content-Length
 * or chunk size from the next line (issue 11 finding 5); a maintained,
 * fuzzed parser costs less than keeping one of our own strict. What this
 * module adds: the bounds above, the status line checked to be exactly
 * "HTTP/1.x DDD" (llhttp 8.1 takes "HTTP/1.1 \r\n" as status 0), no body
 * for HEAD/204/304, and 101 refused (we never ask to switch protocols).
 * Strict means refused (BAD_HEAD or BAD_CHUNK): an empty, duplicate or
 * non-numeric Content-Length, Content-Length beside Transfer-Encoding, an
 * empty or malformed chunk size, bare LF line ends, control bytes in header
 * values, HTTP versions other than 1.0 and 1.1. Bytes after a whole answer
 * (nothing asked for them) set close_after so the connection is not reused.
 *
 * Ownership: the caller owns the buffer, which may move between calls (the
 * parser keeps offsets into it, never pointers); the parser allocates a
 * decoded copy of the body (take it with http1_parse_take_body, or
 * http1_parse_free / http1_parse_reset frees it). */
#ifndef KV_HTTP1_PARSE_H
#define KV_HTTP1_PARSE_H

#include "llhttp.h"

#include <stddef.h>

#define HTTP1_MAX_HEADER_BYTES (64 * 1024)

/* What http1_parse_step found. */
typedef enum http1_parse_rc {
    HTTP1_PARSE_MORE,          /* the answer is not whole yet */
    HTTP1_PARSE_DONE,          /* whole: see status, head_end, the body */
    HTTP1_PARSE_BAD_HEAD,      /* malformed status line or headers */
    HTTP1_PARSE_BAD_CHUNK,     /* malformed chunked body or trailers */
    HTTP1_PARSE_TOO_LARGE,     /* body over HTTPC_MAX_RESP_BODY, or trailers
                                  over HTTP1_MAX_HEADER_BYTES */
} http1_parse_rc;

typedef struct http1_parse {
    int head_only;             /* the request was HEAD: no body follows */
    size_t head_end;           /* offset of the body in the buffer; 0 until
                                  the head is whole */
    long status;
    int close_after;           /* not to be reused: Connection: close,
                                  HTTP/1.0, close-delimited, bytes after */
    /* the rest is the parser's own */
    int started;               /* ll initialised (a zeroed struct is not) */
    int done;                  /* the answer is whole */
    int pause;                 /* which callback paused ll */
    http1_parse_rc err;        /* a bound a callback found crossed */
    size_t fed;                /* bytes of the buffer given to ll */
    size_t trailer_start;      /* offset of the trailers; 0: not there */
    llhttp_t ll;
    char *body;                /* decoded body */
    size_t body_len, body_cap;
} http1_parse;

/* Ready for a new response (frees a body not taken). */
void http1_parse_reset(http1_parse *p, int head_only);
void http1_parse_free(http1_parse *p);
/* Grow *b to hold need bytes (doubling from 4096): 0, or -1 out of memory. */
int http1_parse_reserve(char **b, size_t *cap, size_t need);

/* Look at buf[0..*len), all the bytes of this answer received so far (the
 * parser reads only those it has not seen); eof: the server closed the
 * connection after them. An interim 1xx answer is removed from the front
 * of buf (*len shrinks). Call again as more bytes arrive; after
 * HTTP1_PARSE_DONE, call http1_parse_reset before the next answer. A
 * refusal is final: the connection is to be dropped. */
http1_parse_rc http1_parse_step(http1_parse *p, char *buf, size_t *len, int eof);

/* After HTTP1_PARSE_DONE: the body, in the parser's decoded copy ("" when
 * empty); buf and len are not needed (kept for the callers). */
const char *http1_parse_body(const http1_parse *p, const char *buf, size_t len,
                             size_t *body_len);
/* After HTTP1_PARSE_DONE: the decoded body, NUL-terminated (caller frees;
 * NULL for an empty body). */
char *http1_parse_take_body(http1_parse *p);

#endif
