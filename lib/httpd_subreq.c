/* httpd_subreq: the server side of lib/subreq.h. A POST to SUBREQ_PATH
 * carries up to SUBREQ_MAX requests; each becomes an httpd_req of its own
 * (parent set), goes through the server's admit hook and handler exactly as
 * a request that came alone would, and answers into its own frame. When the
 * last one has answered, the frames go back in order as the batch's answer.
 * A sub-request sees only its own head and body: its headers, its query,
 * and the batch's peer address. */
#include "httpd_internal.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct httpd_sub {
    char *head;              /* the frame's head, split in place by NULs */
    const char *name[SUBREQ_MAX_HEADERS], *value[SUBREQ_MAX_HEADERS];
    size_t nh;
    char *query;             /* after the target's '?', or NULL */
    wire_buf out;            /* its answer's frame */
    int answered;
} httpd_sub;

void httpd_subreq_free(httpd_req *r)
{
    if (r->sub == NULL)
        return;
    free(r->sub->head);
    wire_buf_free(&r->sub->out);
    free(r->sub);
    r->sub = NULL;
}

const char *httpd_subreq_header(const httpd_req *r, const char *name)
{
    for (size_t i = 0; i < r->sub->nh; i++)
        if (strcasecmp(r->sub->name[i], name) == 0)
            return r->sub->value[i];
    return NULL;
}

const char *httpd_subreq_query(httpd_req *r, const char *name)
{
    size_t nlen = strlen(name);

    for (const char *p = r->sub->query; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len >= nlen && strncmp(p, name, nlen) == 0 &&
            (len == nlen || p[nlen] == '=')) {
            const char *v = len == nlen ? "" : p + nlen + 1;
            char *dec = httpd_decode(v, len == nlen ? 0 : len - nlen - 1, NULL);
            if (dec == NULL)
                return NULL;
            httpd_keep(r, dec);
            return dec;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* Split the frame's head (checked by subreq_parse_request) into the
 * request's method, path, query and headers. 0, or -1 out of memory. */
static int httpd_subreq_parts(httpd_req *r, const subreq_frame *f)
{
    httpd_sub *s = calloc(1, sizeof *s);
    char *h, *eol, *line;

    if (s == NULL || (s->head = malloc(f->head_len + 1)) == NULL) {
        free(s);
        return -1;
    }
    r->sub = s;
    h = s->head;
    memcpy(h, f->head, f->head_len);
    h[f->head_len] = '\0';
    eol = strstr(h, "\r\n");
    *eol = '\0';
    r->method = h;
    *strchr(h, ' ') = '\0';
    r->path = h + strlen(h) + 1;
    if ((s->query = strchr(r->path, '?')) != NULL)
        *s->query++ = '\0';
    for (line = eol + 2; *line; line = eol + 2) {
        char *colon = strchr(line, ':'), *v = colon + 1;
        eol = strstr(line, "\r\n");
        *eol = '\0';
        *colon = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        s->name[s->nh] = line;
        s->value[s->nh++] = v;
    }
    return 0;
}

/* The batch's answer: every frame, in order. */
static void httpd_subreq_finish(httpd_req *r)
{
    wire_buf all = {0};
    size_t total = 0;
    uint8_t *p;

    for (size_t i = 0; i < r->nsubs; i++)
        total += r->subs[i]->sub->out.len;
    if ((p = wire_buf_grow(&all, total)) == NULL && total) {
        httpd_error(r, 500, "internal", "out of memory answering a batch");
        return;
    }
    for (size_t i = 0; i < r->nsubs; i++) {
        const wire_buf *o = &r->subs[i]->sub->out;
        if (o->len)
            memcpy(p, o->data, o->len);
        p += o->len;
    }
    httpd_respond(r, 200, SUBREQ_CONTENT_TYPE, all.data, all.len, NULL);
    wire_buf_free(&all);
}

static void httpd_subreq_done(httpd_req *parent)
{
    if (atomic_fetch_sub(&parent->subs_left, 1) == 1)
        httpd_subreq_finish(parent);
}

void httpd_subreq_answer(httpd_req *r, unsigned status,
                         const char *content_type, const void *body,
                         size_t len, const char *const *headers)
{
    httpd_sub *s = r->sub;

    if (s->answered) {
        log_error("httpd: a sub-request answered twice (%s %s)", r->method,
                  r->path);
        return;
    }
    s->answered = 1;
    if (strcmp(r->method, "HEAD") == 0)
        len = 0; /* as on a connection: the headers only */
    if (subreq_put_response(&s->out, status, content_type, headers, body, len) != 0) {
        static const char oom[] = "{\"error\":\"internal\",\"message\":"
                                  "\"the answer does not fit a sub-request\"}";
        wire_buf_reset(&s->out);
        if (subreq_put_response(&s->out, 500, "application/json", NULL, oom,
                                sizeof oom - 1) != 0)
            s->out.len = 0; /* out of memory: the batch answers 500 */
    }
    httpd_subreq_done(r->parent);
}

/* One sub-request from frame f: a request of its own, or an answer of 400
 * when its head is not a request's. */
static httpd_req *httpd_subreq_new(httpd_req *parent, const subreq_frame *f)
{
    httpd_req *r = calloc(1, sizeof *r);
    subreq_line m, t;

    if (r == NULL)
        return NULL;
    r->srv = parent->srv;
    r->worker = parent->worker;
    r->parent = parent;
    r->state = REQ_HANDLED;
    if (subreq_parse_request(f, &m, &t) != 0 || t.p[0] != '/') {
        if ((r->sub = calloc(1, sizeof *r->sub)) == NULL) {
            free(r);
            return NULL;
        }
        r->method = r->path = "";
        return r; /* answered by httpd_subreq_run: 400 */
    }
    if (httpd_subreq_parts(r, f) != 0 ||
        (r->body = malloc(f->body_len + 1)) == NULL) {
        httpd_subreq_free(r);
        free(r);
        return NULL;
    }
    memcpy(r->body, f->body, f->body_len);
    r->body[f->body_len] = '\0';
    r->len = r->cap = f->body_len;
    return r;
}

void httpd_subreq_run(httpd_req *r)
{
    httpd_t *d = r->srv;
    subreq_frame f;
    size_t off = 0, n = 0;
    int rc;

    if (!httpd_method_is(r, "POST")) {
        static const char *const allow[] = {"Allow: POST", NULL};
        httpd_error_h(r, 405, allow, "method_not_allowed", "use POST");
        return;
    }
    while ((rc = subreq_next(r->body, r->len, &off, &f)) == 1)
        n++;
    if (rc < 0 || n == 0 || n > SUBREQ_MAX) {
        httpd_error(r, 400, "bad_request",
                    rc < 0 ? "the body is not a sequence of sub-request frames"
                           : "a batch holds 1 to %d sub-requests", SUBREQ_MAX);
        return;
    }
    if ((r->subs = calloc(n, sizeof *r->subs)) == NULL) {
        httpd_error(r, 500, "internal", "out of memory");
        return;
    }
    off = 0;
    for (size_t i = 0; i < n; i++) {
        subreq_next(r->body, r->len, &off, &f);
        if ((r->subs[i] = httpd_subreq_new(r, &f)) == NULL) {
            httpd_error(r, 500, "internal", "out of memory");
            return; /* r->subs are freed with r */
        }
        r->nsubs = i + 1;
    }
    atomic_store(&r->subs_left, n + 1); /* + 1: ours, until all have run */
    for (size_t i = 0; i < n; i++) {
        httpd_req *s = r->subs[i];
        if (s->path[0] != '/') {
            httpd_error(s, 400, "bad_request", "not a request head");
            continue;
        }
        if (d->admit)
            d->admit(s, d->app);
        if (!s->sub->answered)
            d->handler(s, d->app);
        if (!s->async && !s->sub->answered) {
            log_error("httpd: %s %s: the handler gave no answer", s->method,
                      s->path);
            httpd_error(s, 500, "internal", "no answer");
        }
    }
    if (atomic_load(&r->subs_left) > 1)
        httpd_suspend(r);
    httpd_subreq_done(r);
}
