/* http1_parse: the HTTP/1.1 response parser of the event-loop client
 * (lib/httpc_loop.c), on its own so it can be tested without sockets.
 *
 * It reads one response at a time from a buffer the caller fills: the status
 * line and headers (up to HTTP1_MAX_HEADER_BYTES), dropping interim 1xx
 * answers, then a body framed by Content-Length, by chunked encoding (chunk
 * extensions and trailers are skipped), or by the end of the connection (no
 * length and not chunked). A HEAD answer, 204 and 304 have no body. Bodies
 * over HTTPC_MAX_RESP_BODY are refused.
 *
 * Why by hand and not llhttp: the client only reads answers from our own
 * servers and needs just the three framings and three headers
 * (Content-Length, Transfer-Encoding, Connection); this is about 200 lines,
 * where llhttp would add a generated parser, a callback layer and build
 * plumbing for no case we meet.
 *
 * Ownership: the caller owns the buffer; the parser keeps offsets into it
 * and, for a chunked body only, a decoded copy it allocates (take it with
 * http1_parse_take_body, or http1_parse_free frees it). */
#ifndef KV_HTTP1_PARSE_H
#define KV_HTTP1_PARSE_H

#include <stddef.h>

#define HTTP1_MAX_HEADER_BYTES (64 * 1024)

typedef enum http1_parse_state {
    HTTP1_PARSE_HEAD,          /* status line and headers not yet whole */
    HTTP1_PARSE_BODY_LEN,      /* Content-Length (or no body) */
    HTTP1_PARSE_BODY_CHUNKED,
    HTTP1_PARSE_BODY_EOF,      /* until the server closes */
} http1_parse_state;

/* What http1_parse_step found. */
typedef enum http1_parse_rc {
    HTTP1_PARSE_MORE,          /* the answer is not whole yet */
    HTTP1_PARSE_DONE,          /* whole: see status, head_end, the body */
    HTTP1_PARSE_BAD_HEAD,      /* malformed status line or headers */
    HTTP1_PARSE_BAD_CHUNK,     /* malformed chunked body */
    HTTP1_PARSE_TOO_LARGE,     /* body over HTTPC_MAX_RESP_BODY */
} http1_parse_rc;

typedef struct http1_parse {
    int head_only;             /* the request was HEAD: no body follows */
    http1_parse_state state;
    size_t head_end;           /* offset of the body in the buffer */
    long status;
    int close_after;           /* Connection: close, or close-delimited */
    size_t body_want;          /* BODY_LEN: bytes of body expected */
    /* BODY_CHUNKED: where in which chunk, and the decoded body */
    int chunk_state;
    size_t chunk_left;
    size_t scan;
    char *body;
    size_t body_len, body_cap;
} http1_parse;

/* Ready for a new response (frees a chunked body not taken). */
void http1_parse_reset(http1_parse *p, int head_only);
void http1_parse_free(http1_parse *p);
/* Grow *b to hold need bytes (doubling from 4096): 0, or -1 out of memory. */
int http1_parse_reserve(char **b, size_t *cap, size_t need);

/* Look at buf[0..*len), all the bytes of this answer received so far; eof:
 * the server closed the connection after them. An interim 1xx answer is
 * removed from the front of buf (*len shrinks). Call again as more bytes
 * arrive; after HTTP1_PARSE_DONE, call http1_parse_reset before the next
 * answer. */
http1_parse_rc http1_parse_step(http1_parse *p, char *buf, size_t *len, int eof);

/* After HTTP1_PARSE_DONE: the body. For Content-Length and close-delimited
 * bodies it points into buf; for chunked ones into the parser's copy. */
const char *http1_parse_body(const http1_parse *p, const char *buf, size_t len,
                             size_t *body_len);
/* After HTTP1_PARSE_DONE of a chunked body: its decoded copy (caller frees;
 * NULL for an empty body); other framings: NULL. */
char *http1_parse_take_body(http1_parse *p);

#endif
