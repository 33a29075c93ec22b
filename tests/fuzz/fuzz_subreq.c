/* fuzz_subreq: the sub-request decoders of lib/subreq.h on arbitrary bytes,
 * as a store or the queue reads a POST /internal/subreq body (subreq_next,
 * subreq_parse_request) and as the api reads its answer
 * (subreq_parse_response).
 *
 * Asserts, beyond no crash or sanitizer report:
 *  - decoding only moves forward and never past the input; a frame's head
 *    and body lie inside it, and a head is whole CRLF-ended lines;
 *  - a head parse_request accepts has a method and a target without a
 *    space, CR or LF, and re-encoding it with subreq_put_request (its
 *    header lines as they are) gives the frame back byte for byte; the
 *    same for parse_response and subreq_put_response;
 *  - subreq_header finds every accepted header line by its name. */
#include "subreq.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The header lines of an accepted head, as NUL-terminated strings. */
static size_t fuzz_subreq_lines(const subreq_frame *f, char *copy,
                                const char **lines)
{
    size_t n = 0, at = subreq_headers_at(f);

    memcpy(copy, f->head, f->head_len);
    while (at < f->head_len) {
        char *eol = memchr(copy + at, '\n', f->head_len - at);
        if (eol == NULL || eol[-1] != '\r' || n >= SUBREQ_MAX_HEADERS)
            abort();
        eol[-1] = '\0';
        lines[n++] = copy + at;
        at = (size_t)(eol - copy) + 1;
    }
    lines[n] = NULL;
    return n;
}

static void fuzz_subreq_same(const subreq_frame *f, const wire_buf *b)
{
    if (b->len != 8 + f->head_len + f->body_len ||
        memcmp(b->data + 8, f->head, f->head_len) != 0 ||
        memcmp(b->data + 8 + f->head_len, f->body, f->body_len) != 0)
        abort();
}

static void fuzz_subreq_frame(const subreq_frame *f)
{
    static char copy[SUBREQ_HEAD_MAX + 1];
    const char *lines[SUBREQ_MAX_HEADERS + 1];
    subreq_line m, t;
    unsigned status;
    size_t n;
    wire_buf b = {0};

    if (subreq_parse_request(f, &m, &t) == 0) {
        char method[SUBREQ_HEAD_MAX], target[SUBREQ_HEAD_MAX];
        if (memchr(m.p, ' ', m.len) || memchr(t.p, ' ', t.len) ||
            memchr(t.p, '\r', t.len) || memchr(t.p, '\n', t.len) ||
            m.len == 0 || t.len == 0)
            abort();
        memcpy(method, m.p, m.len);
        method[m.len] = '\0';
        memcpy(target, t.p, t.len);
        target[t.len] = '\0';
        n = fuzz_subreq_lines(f, copy, lines);
        if (subreq_put_request(&b, method, target, lines, f->body,
                               f->body_len) != 0)
            abort();
        fuzz_subreq_same(f, &b);
        for (size_t i = 0; i < n; i++) {
            char name[SUBREQ_HEAD_MAX];
            size_t nl = (size_t)(strchr(lines[i], ':') - lines[i]), vl;
            memcpy(name, lines[i], nl);
            name[nl] = '\0';
            if (subreq_header(f, name, &vl) == NULL)
                abort();
        }
    }
    wire_buf_reset(&b);
    if (subreq_parse_response(f, &status) == 0) {
        if (status < 100 || status > 599)
            abort();
        fuzz_subreq_lines(f, copy, lines);
        if (subreq_put_response(&b, status, NULL, lines, f->body,
                                f->body_len) != 0)
            abort();
        fuzz_subreq_same(f, &b);
    }
    wire_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, prev = 0;
    subreq_frame f;
    int rc;

    while ((rc = subreq_next(data, size, &off, &f)) == 1) {
        const char *lo = (const char *)data, *hi = lo + size;
        if (off <= prev || off > size || f.head < lo ||
            f.body + f.body_len > hi || f.body != f.head + f.head_len ||
            f.head_len < 2 || f.head[f.head_len - 1] != '\n')
            abort();
        fuzz_subreq_frame(&f);
        prev = off;
    }
    if (rc == 0 && off != size)
        abort();
    return 0;
}
