#include "httpc_batch.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "subreq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

METRIC_COUNTER(m_batches, "kv_httpc_subreq_batches_total",
               "requests to another server that carried several (lib/subreq.h)");
METRIC_COUNTER(m_carried, "kv_httpc_subreq_requests_total",
               "requests that travelled in a batch");
METRIC_COUNTER(m_refused, "kv_httpc_subreq_refused_total",
               "batches the server refused: their requests were sent alone");

void httpc_batch_metrics_register(void)
{
    metrics_register(&m_batches);
    metrics_register(&m_carried);
    metrics_register(&m_refused);
}

/* A request held for a batch: what httpc_loop_async needs to send it alone. */
typedef struct httpc_batch_item {
    char *method, *url;
    const char *target;            /* the URL's path and query */
    char **headers;                /* NULL-terminated copies */
    const void *body;              /* borrowed until cb */
    size_t body_len;
    int64_t deadline_ms;
    httpc_done_fn cb;
    void *ctx;
} httpc_batch_item;

/* A host:port this loop sends to: what is out there now, and whether it
 * takes batches. Kept while it has something open or out, or refuses. */
typedef struct httpc_batch_peer {
    char host[256];
    uint16_t port;
    unsigned inflight;             /* our transfers out there now */
    uint64_t sent_us;              /* when the last one left */
    unsigned open;                 /* groups collecting for it */
    int64_t off_until_ms;          /* refused a batch: none until then */
    struct httpc_batch_peer *next;
} httpc_batch_peer;

/* The requests held for one peer, then the transfer in flight (a batch,
 * or one request alone). */
typedef struct httpc_batch_group {
    httpc_batch *b;
    httpc_batch_peer *peer;
    httpc_batch_item items[SUBREQ_MAX];
    size_t n, bytes;
    int full;                      /* no more fit: it goes at once */
    wire_buf body;                 /* the frames, while in flight */
    char *common[SUBREQ_MAX_HEADERS + 2]; /* the batch's own headers */
    struct httpc_batch_group *next;
} httpc_batch_group;

struct httpc_batch {
    httpc_loop *l;
    httpc_batch_group *open;       /* collecting until they may go */
    httpc_batch_peer *peers;
};

httpc_batch *httpc_batch_new(httpc_loop *l)
{
    httpc_batch *b = calloc(1, sizeof *b);
    if (b)
        b->l = l;
    return b;
}

static void httpc_batch_item_free(httpc_batch_item *it)
{
    for (size_t i = 0; it->headers && it->headers[i]; i++)
        free(it->headers[i]);
    free(it->headers);
    free(it->method);
    free(it->url);
    memset(it, 0, sizeof *it);
}

static void httpc_batch_group_free(httpc_batch_group *g)
{
    for (size_t i = 0; i < g->n; i++)
        httpc_batch_item_free(&g->items[i]);
    wire_buf_free(&g->body);
    free(g);
}

/* host:port's peer, made when it has none; NULL: out of memory. */
static httpc_batch_peer *httpc_batch_peer_get(httpc_batch *b, const char *host,
                                              size_t hlen, uint16_t port)
{
    httpc_batch_peer *p;

    for (p = b->peers; p; p = p->next)
        if (p->port == port && strlen(p->host) == hlen &&
            memcmp(p->host, host, hlen) == 0)
            return p;
    if ((p = calloc(1, sizeof *p)) == NULL)
        return NULL;
    memcpy(p->host, host, hlen);
    p->port = port;
    p->next = b->peers;
    b->peers = p;
    return p;
}

/* Forget the peers with nothing open or out that take batches again
 * (now_ms: clock_mono_ms). */
static void httpc_batch_peers_prune(httpc_batch *b, int64_t now_ms)
{
    for (httpc_batch_peer **pp = &b->peers; *pp;) {
        httpc_batch_peer *p = *pp;
        if (p->inflight || p->open || p->off_until_ms > now_ms) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        free(p);
    }
}

/* The open group for the peer with room for len more body bytes. */
static httpc_batch_group *httpc_batch_group_for(httpc_batch *b, httpc_batch_peer *p,
                                                size_t len)
{
    httpc_batch_group *g;

    for (g = b->open; g; g = g->next) {
        if (g->peer != p || g->full)
            continue;
        if (g->n < SUBREQ_MAX && g->bytes + len <= HTTPC_BATCH_BYTES)
            return g;
        g->full = 1;
    }
    if ((g = calloc(1, sizeof *g)) == NULL)
        return NULL;
    g->b = b;
    g->peer = p;
    p->open++;
    g->next = b->open;
    b->open = g;
    return g;
}

int httpc_batch_add(httpc_batch *b, const httpc_req *req, const char *host,
                    size_t hlen, uint16_t port, const char *path,
                    httpc_done_fn cb, void *ctx)
{
    size_t len = req->body ? req->body_len : 0, nh = 0;
    httpc_batch_peer *p;
    httpc_batch_group *g;
    httpc_batch_item *it;

    if (len > HTTPC_BATCH_BYTES / 4 || hlen >= sizeof p->host ||
        (p = httpc_batch_peer_get(b, host, hlen, port)) == NULL ||
        p->off_until_ms > (int64_t)clock_mono_ms() ||
        (g = httpc_batch_group_for(b, p, len)) == NULL)
        return -1;
    while (req->headers && req->headers[nh])
        nh++;
    it = &g->items[g->n];
    it->method = strdup(req->method ? req->method : "GET");
    it->url = strdup(req->url);
    it->headers = calloc(nh + 1, sizeof *it->headers);
    for (size_t i = 0; it->headers && i < nh; i++)
        if ((it->headers[i] = strdup(req->headers[i])) == NULL)
            break;
    if (it->method == NULL || it->url == NULL || it->headers == NULL ||
        (nh && it->headers[nh - 1] == NULL)) {
        httpc_batch_item_free(it);
        return -1;
    }
    /* the path within our copy (a URL without one asks for "/") */
    it->target = *path == '/' && path >= req->url ? it->url + (path - req->url)
                                                  : "/";
    it->body = req->body;
    it->body_len = len;
    it->deadline_ms = (int64_t)clock_mono_ms() +
                      (req->timeout_ms > 0 ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS);
    it->cb = cb;
    it->ctx = ctx;
    g->n++;
    g->bytes += len + strlen(path) + 64;
    return 0;
}

static long httpc_batch_left_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - (int64_t)clock_mono_ms();
    return left > 0 ? (long)left : 1;
}

/* Send an item on its own (it keeps its callback). Its copies are freed:
 * httpc_loop_async has made its own. */
static void httpc_batch_send_alone(httpc_batch *b, httpc_batch_item *it)
{
    httpc_req req = {.method = it->method, .url = it->url, .body = it->body,
                     .body_len = it->body_len,
                     .headers = (const char *const *)it->headers,
                     .timeout_ms = httpc_batch_left_ms(it->deadline_ms)};

    if (httpc_loop_async(b->l, &req, it->cb, it->ctx) != 0) {
        httpc_resp r = {0};
        snprintf(r.error, sizeof r.error, "could not start the request");
        it->cb(&r, it->ctx);
        httpc_resp_free(&r);
    }
    httpc_batch_item_free(it);
}

/* An answer to one request from its frame (copies of its parts). */
static int httpc_batch_resp(const subreq_frame *f, httpc_resp *r)
{
    unsigned status;
    size_t at = subreq_headers_at(f);

    memset(r, 0, sizeof *r);
    if (subreq_parse_response(f, &status) != 0)
        return -1;
    r->status = status;
    r->headers = malloc(f->head_len - at + 1);
    r->body = malloc(f->body_len + 1);
    if (r->headers == NULL || r->body == NULL) {
        httpc_resp_free(r);
        return -1;
    }
    memcpy(r->headers, f->head + at, f->head_len - at);
    r->headers[f->head_len - at] = '\0';
    memcpy(r->body, f->body, f->body_len);
    r->body[f->body_len] = '\0';
    r->len = f->body_len;
    return 0;
}

/* A copy of the batch's own answer, for one of its requests. */
static void httpc_batch_copy(const httpc_resp *from, httpc_resp *to)
{
    *to = *from;
    to->headers = from->headers ? strdup(from->headers) : NULL;
    to->body = NULL;
    if (from->body && (to->body = malloc(from->len + 1)) != NULL) {
        memcpy(to->body, from->body, from->len);
        to->body[from->len] = '\0';
    }
    if (from->body && to->body == NULL)
        to->len = 0;
}

static void httpc_batch_done(httpc_resp *resp, void *ctx)
{
    httpc_batch_group *g = ctx;
    char ct[64];
    subreq_frame f[SUBREQ_MAX];
    size_t off = 0, n = 0;
    int rc = 0;

    g->peer->inflight--;
    if (resp->status == 400 || resp->status == 404 || resp->status == 405 ||
        resp->status == 413) {
        log_warn("httpc: %s:%u answered a batch of %zu with %ld: sending them "
                 "one by one, and no batch there for %d s", g->peer->host,
                 g->peer->port, g->n, resp->status, HTTPC_BATCH_OFF_MS / 1000);
        metrics_add(&m_refused, 1);
        g->peer->off_until_ms = (int64_t)clock_mono_ms() + HTTPC_BATCH_OFF_MS;
        for (size_t i = 0; i < g->n; i++)
            httpc_batch_send_alone(g->b, &g->items[i]);
        g->n = 0;
        httpc_batch_group_free(g);
        return;
    }
    if (resp->status == 200) {
        if (httpc_resp_header(resp, "Content-Type", ct, sizeof ct) == NULL ||
            strcasecmp(ct, SUBREQ_CONTENT_TYPE) != 0)
            rc = -1;
        while (rc == 0 && n < g->n &&
               (rc = subreq_next(resp->body, resp->len, &off, &f[n])) == 1) {
            n++;
            rc = 0;
        }
        if (rc == 0 && (n != g->n || off != resp->len))
            rc = -1;
        if (rc != 0) {
            resp->status = 0;
            snprintf(resp->error, sizeof resp->error,
                     "%.200s:%u: a malformed batch answer", g->peer->host,
                     g->peer->port);
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        httpc_resp r;
        if (resp->status != 200) {
            httpc_batch_copy(resp, &r);
        } else if (httpc_batch_resp(&f[i], &r) != 0) {
            memset(&r, 0, sizeof r);
            snprintf(r.error, sizeof r.error, "%.200s:%u: a malformed answer "
                     "in a batch", g->peer->host, g->peer->port);
        }
        g->items[i].cb(&r, g->items[i].ctx);
        httpc_resp_free(&r);
    }
    httpc_batch_group_free(g);
}

/* The headers every item has (the token, an epoch): the batch's own, so
 * that the server admits it as it admits each. */
static void httpc_batch_common(httpc_batch_group *g)
{
    size_t n = 0;

    for (size_t k = 0; g->items[0].headers[k] && n < SUBREQ_MAX_HEADERS; k++) {
        const char *h = g->items[0].headers[k];
        size_t i;
        for (i = 1; i < g->n; i++) {
            size_t j;
            for (j = 0; g->items[i].headers[j]; j++)
                if (strcmp(g->items[i].headers[j], h) == 0)
                    break;
            if (g->items[i].headers[j] == NULL)
                break;
        }
        if (i == g->n && strncasecmp(h, "Content-Type:", 13) != 0)
            g->common[n++] = (char *)h;
    }
    g->common[n++] = "Content-Type: " SUBREQ_CONTENT_TYPE;
    g->common[n] = NULL;
}

/* A transfer to g's peer left now. */
static void httpc_batch_sent(httpc_batch_group *g)
{
    g->peer->inflight++;
    g->peer->sent_us = clock_mono_us();
}

/* The answer to a group of one, which went as it is. */
static void httpc_batch_one_done(httpc_resp *resp, void *ctx)
{
    httpc_batch_group *g = ctx;

    g->peer->inflight--;
    g->items[0].cb(resp, g->items[0].ctx);
    httpc_batch_group_free(g);
}

static void httpc_batch_send_one(httpc_batch *b, httpc_batch_group *g)
{
    httpc_batch_item *it = &g->items[0];
    httpc_req req = {.method = it->method, .url = it->url, .body = it->body,
                     .body_len = it->body_len,
                     .headers = (const char *const *)it->headers,
                     .timeout_ms = httpc_batch_left_ms(it->deadline_ms)};

    if (httpc_loop_async(b->l, &req, httpc_batch_one_done, g) == 0) {
        httpc_batch_sent(g);
        return;
    }
    httpc_batch_send_alone(b, it); /* it fails there, from its callback */
    g->n = 0;
    httpc_batch_group_free(g);
}

static void httpc_batch_send(httpc_batch *b, httpc_batch_group *g)
{
    char url[sizeof g->peer->host + 48];
    int64_t deadline = g->items[0].deadline_ms;
    httpc_req req = {.method = "POST", .url = url};

    for (size_t i = 0; i < g->n; i++) {
        httpc_batch_item *it = &g->items[i];
        if (it->deadline_ms < deadline)
            deadline = it->deadline_ms;
        if (subreq_put_request(&g->body, it->method, it->target,
                               (const char *const *)it->headers, it->body,
                               it->body_len) != 0)
            goto alone;
    }
    httpc_batch_common(g);
    snprintf(url, sizeof url, "http://%s:%u%s", g->peer->host,
             (unsigned)g->peer->port, SUBREQ_PATH);
    req.body = g->body.data;
    req.body_len = g->body.len;
    req.headers = (const char *const *)g->common;
    req.timeout_ms = httpc_batch_left_ms(deadline);
    if (httpc_loop_async(b->l, &req, httpc_batch_done, g) == 0) {
        httpc_batch_sent(g);
        metrics_add(&m_batches, 1);
        metrics_add(&m_carried, g->n);
        return;
    }
alone:
    for (size_t i = 0; i < g->n; i++)
        httpc_batch_send_alone(b, &g->items[i]);
    g->n = 0;
    httpc_batch_group_free(g);
}

/* When g may go (clock_mono_us; 0: now). While its peer has a transfer of
 * ours out, g waits for that answer, or HTTPC_BATCH_HOLD_US after the
 * transfer left, whichever comes first; a full group goes at once. */
static uint64_t httpc_batch_ready_us(const httpc_batch_group *g)
{
    const httpc_batch_peer *p = g->peer;

    return g->full || p->inflight == 0 ? 0 : p->sent_us + HTTPC_BATCH_HOLD_US;
}

/* Send the open groups that may go now (all: every one). Which go is
 * decided before any leaves: groups waiting together go together. */
static void httpc_batch_send_ready(httpc_batch *b, int all)
{
    uint64_t now = clock_mono_us();
    httpc_batch_group *go = NULL;

    for (httpc_batch_group **pg = &b->open; *pg;) {
        httpc_batch_group *g = *pg;
        if (!all && httpc_batch_ready_us(g) > now) {
            pg = &g->next;
            continue;
        }
        *pg = g->next;
        g->next = go;
        go = g;
    }
    while (go) {
        httpc_batch_group *g = go;
        go = g->next;
        g->next = NULL;
        g->peer->open--;
        if (g->n >= 2)
            httpc_batch_send(b, g);
        else if (g->n == 1)
            httpc_batch_send_one(b, g);
        else
            httpc_batch_group_free(g);
    }
    httpc_batch_peers_prune(b, (int64_t)(now / 1000));
}

void httpc_batch_flush(httpc_batch *b)
{
    httpc_batch_send_ready(b, 0);
}

void httpc_batch_flush_all(httpc_batch *b)
{
    httpc_batch_send_ready(b, 1);
}

long httpc_batch_timeout_ms(const httpc_batch *b)
{
    uint64_t first = UINT64_MAX, now;

    if (b == NULL || b->open == NULL)
        return -1;
    for (const httpc_batch_group *g = b->open; g; g = g->next) {
        uint64_t at = httpc_batch_ready_us(g);
        if (at < first)
            first = at;
    }
    now = clock_mono_us();
    return first <= now ? 0 : (long)((first - now + 999) / 1000);
}

void httpc_batch_free(httpc_batch *b)
{
    if (b == NULL)
        return;
    httpc_batch_flush_all(b);
    while (b->peers) {
        httpc_batch_peer *p = b->peers;
        b->peers = p->next;
        free(p);
    }
    free(b);
}
