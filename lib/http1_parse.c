#include "http1_parse.h"

#include "httpc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum http1_parse_chunk {
    HTTP1_PARSE_CH_SIZE,
    HTTP1_PARSE_CH_DATA,
    HTTP1_PARSE_CH_DATA_END,
    HTTP1_PARSE_CH_TRAILER,
};

void http1_parse_reset(http1_parse *p, int head_only)
{
    free(p->body);
    memset(p, 0, sizeof *p);
    p->head_only = head_only;
}

void http1_parse_free(http1_parse *p)
{
    free(p->body);
    p->body = NULL;
}

int http1_parse_reserve(char **b, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    char *q = realloc(*b, nc);
    if (q == NULL)
        return -1;
    *b = q;
    *cap = nc;
    return 0;
}

/* Does s[0..n) contain word (any case)? */
static int http1_parse_has_word(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++)
        if (strncasecmp(s + i, word, w) == 0)
            return 1;
    return 0;
}

/* The status line and headers once "\r\n\r\n" is in. */
static http1_parse_rc http1_parse_head(http1_parse *p, char *buf, size_t *len)
{
    char *end = memmem(buf, *len, "\r\n\r\n", 4);
    const char *s;
    int chunked = 0, have_len = 0;

    if (end == NULL)
        return *len > HTTP1_MAX_HEADER_BYTES ? HTTP1_PARSE_BAD_HEAD
                                             : HTTP1_PARSE_MORE;
    p->head_end = (size_t)(end - buf) + 4;
    if (*len < 12 || strncmp(buf, "HTTP/1.", 7) != 0)
        return HTTP1_PARSE_BAD_HEAD;
    p->status = strtol(buf + 9, NULL, 10);
    if (p->status < 100 || p->status > 999)
        return HTTP1_PARSE_BAD_HEAD;
    for (s = memchr(buf, '\n', p->head_end); s && s < end; ) {
        const char *line = s + 1;
        const char *eol = memchr(line, '\n', (size_t)(buf + p->head_end - line));
        size_t ll = eol ? (size_t)(eol - line) : 0;
        if (ll > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
            p->body_want = strtoull(line + 15, NULL, 10);
            have_len = 1;
        } else if (ll > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
            chunked = http1_parse_has_word(line + 18, ll - 18, "chunked");
        } else if (ll > 11 && strncasecmp(line, "Connection:", 11) == 0) {
            p->close_after = http1_parse_has_word(line + 11, ll - 11, "close");
        }
        s = eol;
    }
    if (p->status < 200) {
        /* An interim answer (100 Continue): drop it, read on. */
        memmove(buf, buf + p->head_end, *len - p->head_end);
        *len -= p->head_end;
        http1_parse_reset(p, p->head_only);
        return http1_parse_head(p, buf, len);
    }
    if (p->head_only) {
        p->state = HTTP1_PARSE_BODY_LEN; /* the answer to HEAD has no body */
        p->body_want = 0;
    } else if (chunked) {
        p->state = HTTP1_PARSE_BODY_CHUNKED;
        p->scan = p->head_end;
    } else if (have_len || p->status == 204 || p->status == 304) {
        p->state = HTTP1_PARSE_BODY_LEN;
    } else {
        p->state = HTTP1_PARSE_BODY_EOF;
        p->close_after = 1;
    }
    return p->body_want > HTTPC_MAX_RESP_BODY ? HTTP1_PARSE_TOO_LARGE
                                              : HTTP1_PARSE_DONE;
}

/* Decode what arrived of a chunked body. */
static http1_parse_rc http1_parse_chunks(http1_parse *p, const char *buf,
                                         size_t len)
{
    for (;;) {
        const char *eol;
        switch (p->chunk_state) {
        case HTTP1_PARSE_CH_SIZE: {
            char *endp;
            unsigned long long sz;
            eol = memmem(buf + p->scan, len - p->scan, "\r\n", 2);
            if (eol == NULL)
                return len - p->scan > 64 ? HTTP1_PARSE_BAD_CHUNK
                                          : HTTP1_PARSE_MORE;
            sz = strtoull(buf + p->scan, &endp, 16); /* ";ext" ignored */
            if (endp == buf + p->scan)
                return HTTP1_PARSE_BAD_CHUNK;
            if (sz > HTTPC_MAX_RESP_BODY)
                return HTTP1_PARSE_TOO_LARGE;
            p->scan = (size_t)(eol - buf) + 2;
            p->chunk_left = (size_t)sz;
            p->chunk_state = sz ? HTTP1_PARSE_CH_DATA : HTTP1_PARSE_CH_TRAILER;
            break;
        }
        case HTTP1_PARSE_CH_DATA: {
            size_t avail = len - p->scan;
            size_t n = avail < p->chunk_left ? avail : p->chunk_left;
            if (n == 0)
                return HTTP1_PARSE_MORE;
            if (p->body_len + n > HTTPC_MAX_RESP_BODY)
                return HTTP1_PARSE_TOO_LARGE;
            if (http1_parse_reserve(&p->body, &p->body_cap, p->body_len + n + 1))
                return HTTP1_PARSE_BAD_CHUNK;
            memcpy(p->body + p->body_len, buf + p->scan, n);
            p->body_len += n;
            p->scan += n;
            p->chunk_left -= n;
            if (p->chunk_left == 0)
                p->chunk_state = HTTP1_PARSE_CH_DATA_END;
            break;
        }
        case HTTP1_PARSE_CH_DATA_END:
            if (len - p->scan < 2)
                return HTTP1_PARSE_MORE;
            if (memcmp(buf + p->scan, "\r\n", 2) != 0)
                return HTTP1_PARSE_BAD_CHUNK;
            p->scan += 2;
            p->chunk_state = HTTP1_PARSE_CH_SIZE;
            break;
        case HTTP1_PARSE_CH_TRAILER:
            /* Trailer lines, if any, then an empty line. */
            eol = memmem(buf + p->scan, len - p->scan, "\r\n", 2);
            if (eol == NULL)
                return HTTP1_PARSE_MORE;
            if (eol == buf + p->scan)
                return HTTP1_PARSE_DONE;
            p->scan = (size_t)(eol - buf) + 2;
            break;
        }
    }
}

http1_parse_rc http1_parse_step(http1_parse *p, char *buf, size_t *len, int eof)
{
    if (p->state == HTTP1_PARSE_HEAD) {
        http1_parse_rc rc = http1_parse_head(p, buf, len);
        if (rc != HTTP1_PARSE_DONE)
            return rc;
    }
    switch (p->state) {
    case HTTP1_PARSE_BODY_LEN:
        return *len - p->head_end >= p->body_want ? HTTP1_PARSE_DONE
                                                  : HTTP1_PARSE_MORE;
    case HTTP1_PARSE_BODY_CHUNKED:
        return http1_parse_chunks(p, buf, *len);
    case HTTP1_PARSE_BODY_EOF:
        if (*len - p->head_end > HTTPC_MAX_RESP_BODY)
            return HTTP1_PARSE_TOO_LARGE;
        return eof ? HTTP1_PARSE_DONE : HTTP1_PARSE_MORE;
    case HTTP1_PARSE_HEAD:
        break;
    }
    return HTTP1_PARSE_MORE;
}

const char *http1_parse_body(const http1_parse *p, const char *buf, size_t len,
                             size_t *body_len)
{
    switch (p->state) {
    case HTTP1_PARSE_BODY_CHUNKED:
        *body_len = p->body_len;
        return p->body ? p->body : "";
    case HTTP1_PARSE_BODY_LEN:
        *body_len = p->body_want;
        return buf + p->head_end;
    default:
        *body_len = len - p->head_end;
        return buf + p->head_end;
    }
}

char *http1_parse_take_body(http1_parse *p)
{
    char *b = p->state == HTTP1_PARSE_BODY_CHUNKED ? p->body : NULL;

    if (b)
        p->body = NULL;
    return b;
}
