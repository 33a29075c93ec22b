/* http1_parse: llhttp in response mode, with our bounds (http1_parse.h).
 *
 * llhttp reads each byte once and calls back; three callbacks pause it
 * (HPE_PAUSED) so that http1_parse_step learns where in the buffer it is:
 * at the end of the head (head_end, the status line check, no body for
 * HEAD/204/304), at the last chunk (where the trailers start, to bound
 * them) and at the end of the message. Body bytes are copied as they come
 * (the buffer may move between calls, so nothing points into it). */
#include "http1_parse.h"

#include "httpc.h"

#include <stdlib.h>
#include <string.h>

enum http1_parse_pause {
    HTTP1_PARSE_P_NONE,
    HTTP1_PARSE_P_HEAD,
    HTTP1_PARSE_P_TRAILERS,
    HTTP1_PARSE_P_END,
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
    p->body_len = p->body_cap = 0;
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

static int http1_parse_on_headers_complete(llhttp_t *ll)
{
    http1_parse *p = ll->data;
    int st = ll->status_code;

    if ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > HTTPC_MAX_RESP_BODY) {
        p->err = HTTP1_PARSE_TOO_LARGE;
        return HPE_USER;
    }
    /* No body, whatever the headers announce (llhttp would read a 304's
     * Content-Length worth); an interim answer has none either. */
    if (p->head_only || st == 204 || st == 304 || (st >= 100 && st < 200))
        ll->flags |= F_SKIPBODY;
    else if ((ll->flags & F_CONTENT_LENGTH) && !(ll->flags & F_CHUNKED) &&
             ll->content_length > 0 && p->body == NULL) {
        /* The exact size (the doubling from 4096 of http1_parse_reserve
         * would keep 4 KB for every small answer a caller holds on to). */
        p->body_cap = (size_t)ll->content_length + 1;
        if ((p->body = malloc(p->body_cap)) == NULL) {
            p->body_cap = 0;
            p->err = HTTP1_PARSE_TOO_LARGE; /* no memory for it */
            return HPE_USER;
        }
    }
    p->pause = HTTP1_PARSE_P_HEAD;
    return HPE_PAUSED;
}

static int http1_parse_on_body(llhttp_t *ll, const char *at, size_t n)
{
    http1_parse *p = ll->data;

    if (n > HTTPC_MAX_RESP_BODY - p->body_len ||
        http1_parse_reserve(&p->body, &p->body_cap, p->body_len + n + 1)) {
        p->err = HTTP1_PARSE_TOO_LARGE;
        return HPE_USER;
    }
    memcpy(p->body + p->body_len, at, n);
    p->body_len += n;
    return HPE_OK;
}

static int http1_parse_on_chunk_header(llhttp_t *ll)
{
    http1_parse *p = ll->data;

    if (ll->content_length > HTTPC_MAX_RESP_BODY - p->body_len) {
        p->err = HTTP1_PARSE_TOO_LARGE;
        return HPE_USER;
    }
    if (ll->content_length != 0)
        return HPE_OK;
    p->pause = HTTP1_PARSE_P_TRAILERS; /* the last chunk: trailers follow */
    return HPE_PAUSED;
}

static int http1_parse_on_message_complete(llhttp_t *ll)
{
    http1_parse *p = ll->data;

    /* Before llhttp clears the flags it decides this from. */
    p->close_after = !llhttp_should_keep_alive(ll);
    p->pause = HTTP1_PARSE_P_END;
    return HPE_PAUSED;
}

static const llhttp_settings_t http1_parse_settings = {
    .on_headers_complete = http1_parse_on_headers_complete,
    .on_body = http1_parse_on_body,
    .on_chunk_header = http1_parse_on_chunk_header,
    .on_message_complete = http1_parse_on_message_complete,
};

static void http1_parse_start(http1_parse *p)
{
    llhttp_init(&p->ll, HTTP_RESPONSE, &http1_parse_settings);
    p->started = 1;
}

/* The status line is "HTTP/1.0 " or "HTTP/1.1 ", three digits, then a
 * space or the line's end: llhttp 8.1 takes a missing code as 0 and any
 * number of digits. 101 too is refused: we never ask to switch. */
static int http1_parse_status_ok(const http1_parse *p, const char *buf)
{
    const char *s = buf;

    if (p->head_end < 16 || memcmp(s, "HTTP/1.", 7) != 0 ||
        (s[7] != '0' && s[7] != '1') || s[8] != ' ')
        return 0;
    for (int i = 9; i < 12; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return (s[12] == ' ' || s[12] == '\r') && p->status >= 100 &&
           p->status != 101;
}

/* An llhttp error: which of ours it is. */
static http1_parse_rc http1_parse_refusal(const http1_parse *p)
{
    if (p->err != HTTP1_PARSE_MORE)
        return p->err;
    if (p->head_end == 0)
        return HTTP1_PARSE_BAD_HEAD;
    return (p->ll.flags & F_CHUNKED) ? HTTP1_PARSE_BAD_CHUNK
                                     : HTTP1_PARSE_BAD_HEAD;
}

/* Where ll paused: act on it. MORE to go on, DONE, or a refusal. */
static http1_parse_rc http1_parse_paused(http1_parse *p, char *buf, size_t *len)
{
    int what = p->pause;

    p->pause = HTTP1_PARSE_P_NONE;
    llhttp_resume(&p->ll);
    switch (what) {
    case HTTP1_PARSE_P_HEAD:
        p->head_end = p->fed;
        p->status = p->ll.status_code;
        if (p->head_end > HTTP1_MAX_HEADER_BYTES || !http1_parse_status_ok(p, buf))
            return HTTP1_PARSE_BAD_HEAD;
        return HTTP1_PARSE_MORE;
    case HTTP1_PARSE_P_TRAILERS:
        p->trailer_start = p->fed;
        return HTTP1_PARSE_MORE;
    case HTTP1_PARSE_P_END:
        if (p->status < 200) {
            /* An interim answer (100 Continue): drop it, read on. */
            int head_only = p->head_only;
            size_t fed = p->fed;
            memmove(buf, buf + fed, *len - fed);
            *len -= fed;
            http1_parse_reset(p, head_only);
            http1_parse_start(p);
            p->ll.data = p;
            return HTTP1_PARSE_MORE;
        }
        p->done = 1;
        if (p->fed < *len)
            p->close_after = 1; /* bytes nothing asked for */
        return HTTP1_PARSE_DONE;
    }
    return HTTP1_PARSE_BAD_HEAD; /* paused by nothing of ours */
}

http1_parse_rc http1_parse_step(http1_parse *p, char *buf, size_t *len, int eof)
{
    http1_parse_rc rc;

    if (!p->started)
        http1_parse_start(p);
    p->ll.data = p; /* p may have moved since */
    if (p->done)
        return HTTP1_PARSE_DONE;
    /* After a pause, run ll again even with no byte left: the end of a
     * message without a body needs no byte after the head. */
    for (int resumed = 0; p->fed < *len || resumed; ) {
        const char *at = buf + p->fed;
        llhttp_errno_t e = llhttp_execute(&p->ll, at, *len - p->fed);
        if (e == HPE_OK) {
            p->fed = *len;
            break;
        }
        if (e != HPE_PAUSED)
            return http1_parse_refusal(p);
        p->fed += (size_t)(llhttp_get_error_pos(&p->ll) - at);
        rc = http1_parse_paused(p, buf, len);
        if (rc != HTTP1_PARSE_MORE)
            return rc;
        resumed = 1;
    }
    /* All read and the answer goes on: is what is buffered within bounds? */
    if (p->head_end == 0 && *len > HTTP1_MAX_HEADER_BYTES)
        return HTTP1_PARSE_BAD_HEAD;
    if (p->trailer_start && *len - p->trailer_start > HTTP1_MAX_HEADER_BYTES)
        return HTTP1_PARSE_TOO_LARGE;
    if (!eof)
        return HTTP1_PARSE_MORE;
    /* The server closed: whole if the body was close-delimited. */
    if (p->head_end == 0)
        return HTTP1_PARSE_MORE;
    llhttp_errno_t e = llhttp_finish(&p->ll);
    if (e == HPE_PAUSED && p->pause == HTTP1_PARSE_P_END) {
        p->pause = HTTP1_PARSE_P_NONE;
        llhttp_resume(&p->ll);
        p->done = 1;
        p->close_after = 1;
        return HTTP1_PARSE_DONE;
    }
    return HTTP1_PARSE_MORE; /* cut short: the caller says so */
}

const char *http1_parse_body(const http1_parse *p, const char *buf, size_t len,
                             size_t *body_len)
{
    (void)buf;
    (void)len;
    *body_len = p->body_len;
    return p->body ? p->body : "";
}

char *http1_parse_take_body(http1_parse *p)
{
    char *b = p->body;

    if (b)
        b[p->body_len] = '\0';
    if (b && p->body_len == 0) {
        free(b);
        b = NULL;
    }
    p->body = NULL;
    p->body_len = p->body_cap = 0;
    return b;
}
