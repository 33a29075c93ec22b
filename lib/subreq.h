/* subreq: several HTTP requests carried in one request body, and their
 * answers in one response body, between our own servers (docs/PROTOCOL.md
 * "Sub-requests"). The api sends the reads for one store, or the writes for
 * the queue, that wait in the same pass of its loop as one POST to the
 * server's SUBREQ_PATH (lib/httpc_loop.h, httpc_req.subreq); the server runs
 * each as if it had come alone (lib/httpd.h, httpd_opts.subreq) and answers
 * them all together, in order. One round trip and one request's worth of
 * syscalls on each side then carries many.
 *
 * A body is a sequence of frames, each
 *   u32 head_len, u32 body_len (little-endian), head bytes, body bytes
 * where a request's head is "METHOD TARGET\r\n" and a response's
 * "STATUS\r\n" (three digits), each followed by its headers, one
 * "Name: value\r\n" line each. No line may hold a NUL, a CR or an LF
 * inside; a request's target is what a request line would hold (path and
 * query, percent-encoded).
 *
 * Ownership: encoders append to a caller-owned wire_buf; decoded frames
 * point into the caller's buffer (not NUL-terminated). */
#ifndef KV_SUBREQ_H
#define KV_SUBREQ_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

#define SUBREQ_PATH "/internal/subreq"
#define SUBREQ_CONTENT_TYPE "application/x-kv-subreq"
#define SUBREQ_MAX 32                 /* requests in one body */
#define SUBREQ_HEAD_MAX 16384         /* bytes of one head */
#define SUBREQ_MAX_HEADERS 32         /* header lines of one head */

typedef struct subreq_frame {
    const char *head;          /* first line, then header lines */
    size_t head_len;
    const char *body;
    size_t body_len;
} subreq_frame;

/* Append a request: method and target, the headers ("Name: value",
 * NULL-terminated; may be NULL) and the body. 0, or -1 when out of memory
 * or a part does not fit the format (a CR, LF or NUL, a head over
 * SUBREQ_HEAD_MAX). */
int subreq_put_request(wire_buf *b, const char *method, const char *target,
                       const char *const *headers, const void *body,
                       size_t len);
/* Append a response: status, content type (NULL: none), headers, body. */
int subreq_put_response(wire_buf *b, unsigned status, const char *content_type,
                        const char *const *headers, const void *body,
                        size_t len);
/* The frame at *off, advancing it. 1 = got one, 0 = the end, -1 = malformed
 * (a length past the end, a head over SUBREQ_HEAD_MAX). */
int subreq_next(const void *buf, size_t len, size_t *off, subreq_frame *out);

/* The first line of a head and the offset of its headers. */
typedef struct subreq_line {
    const char *p;
    size_t len;
} subreq_line;

/* A request head: method and target (0), or -1 when its first line is not
 * "METHOD TARGET" with one space, or a header line has no colon. Header
 * lines are what follows: subreq_header finds one by name. */
int subreq_parse_request(const subreq_frame *f, subreq_line *method,
                         subreq_line *target);
/* A response head: its status (100-599), or -1. */
int subreq_parse_response(const subreq_frame *f, unsigned *status);
/* The value of header name in the head's header lines (case-insensitive,
 * leading blanks skipped), or NULL; *vlen its length. */
const char *subreq_header(const subreq_frame *f, const char *name,
                          size_t *vlen);
/* Where the header lines start in the head (after the first CRLF). */
size_t subreq_headers_at(const subreq_frame *f);

#endif
