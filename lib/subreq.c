#include "subreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void subreq_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t subreq_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* A head part: no CR, LF or NUL inside. */
static int subreq_clean(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* Append s and CRLF at p; the end. */
static char *subreq_line_put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    memcpy(p + n, "\r\n", 2);
    return p + n + 2;
}

/* Append one frame whose head is first (a line) plus the header lines. */
static int subreq_put(wire_buf *b, const char *first, const char *ctype,
                      const char *const *headers, const void *body, size_t len)
{
    static const char ct[] = "Content-Type: ";
    size_t head = strlen(first) + 2;
    uint8_t *f;
    char *p;

    if (ctype) {
        if (!subreq_clean(ctype))
            return -1;
        head += sizeof ct - 1 + strlen(ctype) + 2;
    }
    for (size_t i = 0; headers && headers[i]; i++) {
        if (!subreq_clean(headers[i]) || strchr(headers[i], ':') == NULL)
            return -1;
        head += strlen(headers[i]) + 2;
    }
    if (head > SUBREQ_HEAD_MAX || len > UINT32_MAX ||
        (f = wire_buf_grow(b, 8 + head + len)) == NULL)
        return -1;
    subreq_u32(f, (uint32_t)head);
    subreq_u32(f + 4, (uint32_t)len);
    p = subreq_line_put((char *)f + 8, first);
    if (ctype) {
        memcpy(p, ct, sizeof ct - 1);
        p = subreq_line_put(p + sizeof ct - 1, ctype);
    }
    for (size_t i = 0; headers && headers[i]; i++)
        p = subreq_line_put(p, headers[i]);
    if (len)
        memcpy(p, body, len);
    return 0;
}

int subreq_put_request(wire_buf *b, const char *method, const char *target,
                       const char *const *headers, const void *body,
                       size_t len)
{
    char first[SUBREQ_HEAD_MAX];

    if (!subreq_clean(method) || !subreq_clean(target) || strchr(method, ' ') ||
        strchr(target, ' ') || !*method || !*target ||
        snprintf(first, sizeof first, "%s %s", method, target) >= (int)sizeof first)
        return -1;
    return subreq_put(b, first, NULL, headers, body, len);
}

int subreq_put_response(wire_buf *b, unsigned status, const char *content_type,
                        const char *const *headers, const void *body,
                        size_t len)
{
    char first[8];

    if (status < 100 || status > 599)
        return -1;
    snprintf(first, sizeof first, "%u", status);
    return subreq_put(b, first, content_type, headers, body, len);
}

int subreq_next(const void *buf, size_t len, size_t *off, subreq_frame *out)
{
    const uint8_t *p = (const uint8_t *)buf + *off;
    size_t left = len - *off;
    uint32_t hl, bl;

    if (*off >= len)
        return 0;
    if (left < 8)
        return -1;
    hl = subreq_get_u32(p);
    bl = subreq_get_u32(p + 4);
    if (hl < 2 || hl > SUBREQ_HEAD_MAX || (size_t)hl + bl > left - 8)
        return -1;
    out->head = (const char *)p + 8;
    out->head_len = hl;
    out->body = out->head + hl;
    out->body_len = bl;
    /* a head is whole lines, with no NUL in them */
    if (memchr(out->head, '\0', hl) || out->head[hl - 2] != '\r' ||
        out->head[hl - 1] != '\n')
        return -1;
    *off += 8 + (size_t)hl + bl;
    return 1;
}

size_t subreq_headers_at(const subreq_frame *f)
{
    const char *eol = memchr(f->head, '\n', f->head_len);
    return eol ? (size_t)(eol - f->head) + 1 : f->head_len;
}

/* Every header line "Name: value" with a name before its colon, at most
 * SUBREQ_MAX_HEADERS of them. */
static int subreq_check_headers(const subreq_frame *f)
{
    size_t at = subreq_headers_at(f), n = 0;

    while (at < f->head_len) {
        const char *line = f->head + at;
        const char *eol = memchr(line, '\n', f->head_len - at);
        size_t llen = (size_t)(eol - line); /* heads end in CRLF: eol found */
        const char *colon = memchr(line, ':', llen);
        if (colon == NULL || colon == line || eol[-1] != '\r' ||
            memchr(line, '\r', llen - 1) || ++n > SUBREQ_MAX_HEADERS)
            return -1;
        at += llen + 1;
    }
    return 0;
}

/* The length of the head's first line without its CRLF, or -1. */
static long subreq_first_len(const subreq_frame *f)
{
    size_t at = subreq_headers_at(f);
    return at >= 2 && f->head[at - 2] == '\r' ? (long)(at - 2) : -1;
}

int subreq_parse_request(const subreq_frame *f, subreq_line *method,
                         subreq_line *target)
{
    long fl = subreq_first_len(f);
    size_t first = fl < 0 ? 0 : (size_t)fl;
    const char *sp = memchr(f->head, ' ', first);

    if (fl < 0 || sp == NULL || sp == f->head ||
        sp + 1 == f->head + first ||
        memchr(sp + 1, ' ', (size_t)(f->head + first - sp - 1)) ||
        memchr(f->head, '\r', first))
        return -1;
    method->p = f->head;
    method->len = (size_t)(sp - f->head);
    target->p = sp + 1;
    target->len = (size_t)(f->head + first - sp - 1);
    return subreq_check_headers(f);
}

int subreq_parse_response(const subreq_frame *f, unsigned *status)
{
    const char *h = f->head;

    if (subreq_first_len(f) != 3 || h[0] < '1' || h[0] > '5' ||
        h[1] < '0' || h[1] > '9' || h[2] < '0' || h[2] > '9')
        return -1;
    *status = (unsigned)((h[0] - '0') * 100 + (h[1] - '0') * 10 + (h[2] - '0'));
    return subreq_check_headers(f);
}

const char *subreq_header(const subreq_frame *f, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name), at = subreq_headers_at(f);

    while (at < f->head_len) {
        const char *line = f->head + at;
        const char *eol = memchr(line, '\n', f->head_len - at);
        size_t llen;
        if (eol == NULL)
            return NULL;
        llen = (size_t)(eol - line);
        if (llen > nlen && line[nlen] == ':' && strncasecmp(line, name, nlen) == 0) {
            const char *v = line + nlen + 1;
            const char *end = eol - (eol[-1] == '\r');
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            *vlen = (size_t)(end - v);
            return v;
        }
        at += llen + 1;
    }
    return NULL;
}
