/* httpc_loop: the asynchronous half of httpc (httpc.h), written by hand.
 *
 * Why not libcurl here: these calls run on the hot paths between our own
 * processes (api -> store, api -> queue, lab controller -> nodes), inside a
 * server's event loop. libcurl's multi interface costs about 10 us of CPU per
 * transfer on the 2-core VM (two poll()s to check a reused connection, an
 * epoll_ctl pair as it unwatches and rewatches the idle socket, a dozen
 * mallocs), which made the api twice as expensive as an nginx proxy hop.
 * This client does one writev and one or two recvs per request on sockets
 * that stay in the epoll set (edge-triggered) for their whole life.
 *
 * What it speaks: HTTP/1.1 over plain TCP to http://host[:port]/path URLs,
 * persistent connections pooled per host:port, request bodies with
 * Content-Length, responses framed by Content-Length, chunked encoding, or
 * the end of the connection. No TLS, no proxies, no redirects, no
 * 100-continue: our servers need none of them. A request on a reused
 * connection that dies before any answer byte is sent once more on a new
 * connection (the server closed an idle connection as we wrote; libcurl
 * does the same). Host names come from lib/resolve, whose own thread does
 * the DNS: a job whose name has no address yet waits (parked, its deadline
 * running) without holding up the loop.
 *
 * Threads: a loop belongs to one thread (httpc_loop_new's caller, or
 * httpc_loop_start's own thread); other threads submit through an inbox and
 * an eventfd. */
#include "httpc.h"

#include "clock.h"
#include "log.h"
#include "resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HL_MAX_HEADER_BYTES (64 * 1024)
#define HL_IDLE_MAX 64             /* idle connections kept per host */

typedef struct hl_conn hl_conn;
typedef struct hl_host hl_host;

/* One request, from submission to callback. */
typedef struct hl_job {
    char hname[256];               /* host and port of the URL */
    uint16_t port;
    hl_host *host;                 /* resolved when the job starts */
    hl_conn *conn;
    char *head;                    /* request line and headers */
    size_t head_len;
    const char *body;              /* borrowed until the callback */
    size_t body_len;
    size_t sent;                   /* of head + body */
    int64_t deadline_ms;
    long timeout_ms;
    int retried;                   /* sent again after a dead reused conn */
    int head_only;                 /* a HEAD request: no body comes back */
    int parked;                    /* waiting for its host name's address */
    httpc_done_fn cb;
    void *ctx;
    struct hl_job *next, *prev;    /* inbox or pending, then active list */
} hl_job;

enum hl_rstate { HL_STATUS_HEAD, HL_BODY_LEN, HL_BODY_CHUNKED, HL_BODY_EOF };
enum hl_chunk { HL_CH_SIZE, HL_CH_DATA, HL_CH_DATA_END, HL_CH_TRAILER };

struct hl_conn {
    int fd;
    hl_host *host;
    hl_job *job;                   /* NULL while idle */
    int connecting;
    int reused;                    /* served a request before this one */
    int got_bytes;                 /* this request's answer has begun */
    /* response being read */
    char *buf;
    size_t len, cap;
    enum hl_rstate rstate;
    size_t head_end;               /* offset of the body in buf */
    long status;
    size_t body_want;              /* HL_BODY_LEN: bytes of body expected */
    enum hl_chunk chunk_state;     /* HL_BODY_CHUNKED: where in a chunk */
    size_t chunk_left;             /* HL_BODY_CHUNKED: bytes left in chunk */
    size_t scan;                   /* HL_BODY_CHUNKED: parse position */
    char *body;                    /* HL_BODY_CHUNKED: decoded body */
    size_t body_len, body_cap;
    int close_after;               /* Connection: close */
    hl_conn *next_idle;
};

struct hl_host {
    char name[256];
    uint16_t port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int literal;                   /* an IP address: addr never changes */
    hl_conn *idle;
    size_t nidle;
    hl_host *next;
};

struct httpc_loop {
    int epfd;                      /* every connection and wakefd */
    int wakefd;                    /* eventfd: inbox has work, or stop */
    pthread_t owner;
    _Atomic int owned;             /* owner is set (written before) */
    pthread_mutex_t mu;            /* guards the inbox and stopping */
    hl_job *in_head, *in_tail;     /* submitted by other threads */
    hl_job *pend_head, *pend_tail; /* to start at the next run; loop thread */
    hl_job *active;                /* loop thread only */
    hl_host *hosts;                /* loop thread only */
    size_t nparked;                /* active jobs waiting on a name */
    int stopping;
    pthread_t thread;              /* httpc_loop_start's */
    int threaded;
};

/* ---- jobs ---- */

static void hl_active_add(httpc_loop *l, hl_job *j)
{
    j->prev = NULL;
    j->next = l->active;
    if (l->active)
        l->active->prev = j;
    l->active = j;
}

static void hl_active_del(httpc_loop *l, hl_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->active = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->next = j->prev = NULL;
}

static void hl_job_free(hl_job *j)
{
    free(j->head);
    free(j);
}

/* Call back (resp's buffers are freed after the callback unless taken). */
static void hl_job_end(hl_job *j, httpc_resp *resp)
{
    j->cb(resp, j->ctx);
    httpc_resp_free(resp);
    hl_job_free(j);
}

static void hl_job_fail(hl_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void hl_job_fail(hl_job *j, const char *fmt, ...)
{
    httpc_resp resp;
    va_list ap;

    memset(&resp, 0, sizeof resp);
    va_start(ap, fmt);
    vsnprintf(resp.error, sizeof resp.error, fmt, ap);
    va_end(ap);
    log_debug("httpc: request failed: %s", resp.error);
    hl_job_end(j, &resp);
}

/* ---- connections ---- */

static void hl_conn_close(httpc_loop *l, hl_conn *c)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->buf);
    free(c->body);
    free(c);
}

static void hl_conn_reset_read(hl_conn *c)
{
    c->len = 0;
    c->rstate = HL_STATUS_HEAD;
    c->head_end = 0;
    c->status = 0;
    c->body_want = 0;
    c->chunk_state = HL_CH_SIZE;
    c->chunk_left = 0;
    c->scan = 0;
    c->body = NULL;
    c->body_len = c->body_cap = 0;
    c->close_after = 0;
    c->got_bytes = 0;
}

static void hl_idle_remove(hl_host *h, hl_conn *c)
{
    for (hl_conn **p = &h->idle; *p; p = &(*p)->next_idle)
        if (*p == c) {
            *p = c->next_idle;
            h->nidle--;
            return;
        }
}

/* host:port's entry in this loop (made if new). */
static hl_host *hl_host_get(httpc_loop *l, const char *name, uint16_t port)
{
    hl_host *h;

    for (h = l->hosts; h; h = h->next)
        if (h->port == port && strcmp(h->name, name) == 0)
            return h;
    h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    snprintf(h->name, sizeof h->name, "%s", name);
    h->port = port;
    h->literal = resolve_literal(name, port, &h->addr, &h->addrlen);
    h->next = l->hosts;
    l->hosts = h;
    return h;
}

static void hl_wake(httpc_loop *l);

/* The resolver has an answer a parked job waits for: wake the loop. */
static void hl_resolved(void *arg)
{
    hl_wake(arg);
}

/* h's current address into h->addr (names: from lib/resolve's cache, which
 * a thread of its own keeps fresh, so this never waits on DNS).
 * RESOLVE_OK, RESOLVE_PENDING (hl_resolved wakes the loop when it has an
 * answer) or RESOLVE_FAILED (err). */
static int hl_host_address(httpc_loop *l, hl_host *h, char *err, size_t errlen)
{
    if (h->literal)
        return RESOLVE_OK;
    return resolve_lookup(h->name, h->port, &h->addr, &h->addrlen, hl_resolved, l,
                          err, errlen);
}

static hl_conn *hl_conn_open(httpc_loop *l, hl_host *h, char *err, size_t errlen)
{
    hl_conn *c = calloc(1, sizeof *c);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
    int one = 1;

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->host = h;
    c->fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        free(c);
        return NULL;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&h->addr, h->addrlen) != 0) {
        if (errno != EINPROGRESS) {
            snprintf(err, errlen, "connect to %.200s:%u: %s", h->name, h->port,
                     strerror(errno));
            close(c->fd);
            free(c);
            return NULL;
        }
        c->connecting = 1;
    }
    ev.data.ptr = c;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        snprintf(err, errlen, "epoll: %s", strerror(errno));
        close(c->fd);
        free(c);
        return NULL;
    }
    return c;
}

/* ---- sending ---- */

static void hl_conn_fail(httpc_loop *l, hl_conn *c, const char *what);
static void hl_dispatch(httpc_loop *l, hl_job *j);

/* Write what is left of the request; 0 (done or would block), -1 (dead). */
static int hl_send(hl_conn *c)
{
    hl_job *j = c->job;

    while (j->sent < j->head_len + j->body_len) {
        struct iovec iov[2];
        int n = 0;
        ssize_t w;
        if (j->sent < j->head_len) {
            iov[n].iov_base = j->head + j->sent;
            iov[n++].iov_len = j->head_len - j->sent;
        }
        if (j->body_len) {
            size_t off = j->sent > j->head_len ? j->sent - j->head_len : 0;
            iov[n].iov_base = (char *)j->body + off;
            iov[n++].iov_len = j->body_len - off;
        }
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        j->sent += (size_t)w;
    }
    return 0;
}

/* ---- reading ---- */

static int hl_buf_reserve(char **b, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 4096;
    while (nc < need)
        nc *= 2;
    char *p = realloc(*b, nc);
    if (p == NULL)
        return -1;
    *b = p;
    *cap = nc;
    return 0;
}

/* Does p[0..n) contain word (any case)? */
static int hl_has_word(const char *p, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++)
        if (strncasecmp(p + i, word, w) == 0)
            return 1;
    return 0;
}

/* Parse the status line and headers once "\r\n\r\n" is in; 1 parsed, 0 need
 * more, -1 malformed. */
static int hl_parse_head(hl_conn *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    const char *p;
    int chunked = 0, have_len = 0;

    if (end == NULL)
        return c->len > HL_MAX_HEADER_BYTES ? -1 : 0;
    c->head_end = (size_t)(end - c->buf) + 4;
    if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0)
        return -1;
    c->status = strtol(c->buf + 9, NULL, 10);
    if (c->status < 100 || c->status > 999)
        return -1;
    for (p = memchr(c->buf, '\n', c->head_end); p && p < end; ) {
        const char *line = p + 1;
        const char *eol = memchr(line, '\n', (size_t)(c->buf + c->head_end - line));
        size_t ll = eol ? (size_t)(eol - line) : 0;
        if (ll > 15 && strncasecmp(line, "Content-Length:", 15) == 0) {
            c->body_want = strtoull(line + 15, NULL, 10);
            have_len = 1;
        } else if (ll > 18 && strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
            chunked = hl_has_word(line + 18, ll - 18, "chunked");
        } else if (ll > 11 && strncasecmp(line, "Connection:", 11) == 0) {
            c->close_after = hl_has_word(line + 11, ll - 11, "close");
        }
        p = eol;
    }
    if (c->status >= 100 && c->status < 200) {
        /* An interim answer (100 Continue): drop it, read on. */
        memmove(c->buf, c->buf + c->head_end, c->len - c->head_end);
        c->len -= c->head_end;
        c->head_end = 0;
        c->body_want = 0;
        c->close_after = 0;
        return hl_parse_head(c);
    }
    if (c->job->head_only) {
        c->rstate = HL_BODY_LEN; /* the answer to HEAD has no body */
        c->body_want = 0;
    } else if (chunked) {
        c->rstate = HL_BODY_CHUNKED;
        c->scan = c->head_end;
    } else if (have_len || c->status == 204 || c->status == 304) {
        c->rstate = HL_BODY_LEN;
    } else {
        c->rstate = HL_BODY_EOF;
        c->close_after = 1;
    }
    if (c->body_want > HTTPC_MAX_RESP_BODY)
        return -1;
    return 1;
}

/* Decode what arrived of a chunked body; 1 complete, 0 more, -1 malformed. */
static int hl_parse_chunks(hl_conn *c)
{
    for (;;) {
        char *eol;
        switch (c->chunk_state) {
        case HL_CH_SIZE: {
            char *endp;
            unsigned long long sz;
            eol = memmem(c->buf + c->scan, c->len - c->scan, "\r\n", 2);
            if (eol == NULL)
                return c->len - c->scan > 64 ? -1 : 0;
            sz = strtoull(c->buf + c->scan, &endp, 16); /* ";ext" ignored */
            if (endp == c->buf + c->scan || sz > HTTPC_MAX_RESP_BODY)
                return -1;
            c->scan = (size_t)(eol - c->buf) + 2;
            c->chunk_left = (size_t)sz;
            c->chunk_state = sz ? HL_CH_DATA : HL_CH_TRAILER;
            break;
        }
        case HL_CH_DATA: {
            size_t avail = c->len - c->scan;
            size_t n = avail < c->chunk_left ? avail : c->chunk_left;
            if (n == 0)
                return 0;
            if (c->body_len + n > HTTPC_MAX_RESP_BODY ||
                hl_buf_reserve(&c->body, &c->body_cap, c->body_len + n + 1))
                return -1;
            memcpy(c->body + c->body_len, c->buf + c->scan, n);
            c->body_len += n;
            c->scan += n;
            c->chunk_left -= n;
            if (c->chunk_left == 0)
                c->chunk_state = HL_CH_DATA_END;
            break;
        }
        case HL_CH_DATA_END:
            if (c->len - c->scan < 2)
                return 0;
            if (memcmp(c->buf + c->scan, "\r\n", 2) != 0)
                return -1;
            c->scan += 2;
            c->chunk_state = HL_CH_SIZE;
            break;
        case HL_CH_TRAILER:
            /* Trailer lines, if any, then an empty line. */
            eol = memmem(c->buf + c->scan, c->len - c->scan, "\r\n", 2);
            if (eol == NULL)
                return 0;
            if (eol == c->buf + c->scan)
                return 1;
            c->scan = (size_t)(eol - c->buf) + 2;
            break;
        }
    }
}

/* Hand the finished answer to the job, and the connection back to the pool
 * (or close it). */
static void hl_complete(httpc_loop *l, hl_conn *c, size_t body_off, size_t body_len)
{
    hl_job *j = c->job;
    hl_host *h = c->host;
    httpc_resp resp;

    memset(&resp, 0, sizeof resp);
    resp.status = c->status;
    resp.headers = malloc(c->head_end + 1);
    if (c->rstate == HL_BODY_CHUNKED) {
        resp.body = c->body ? c->body : malloc(1);
        resp.len = c->body_len;
        c->body = NULL;
    } else {
        resp.body = malloc(body_len + 1);
        resp.len = body_len;
        if (resp.body)
            memcpy(resp.body, c->buf + body_off, body_len);
    }
    if (resp.headers == NULL || resp.body == NULL) {
        httpc_resp_free(&resp);
        hl_conn_fail(l, c, "out of memory");
        return;
    }
    memcpy(resp.headers, c->buf, c->head_end);
    resp.headers[c->head_end] = '\0';
    resp.body[resp.len] = '\0';
    c->job = NULL;
    hl_active_del(l, j);
    if (c->close_after || c->rstate == HL_BODY_EOF || h->nidle >= HL_IDLE_MAX) {
        hl_conn_close(l, c);
    } else {
        hl_conn_reset_read(c);
        c->reused = 1;
        c->next_idle = h->idle;
        h->idle = c;
        h->nidle++;
    }
    hl_job_end(j, &resp);
}

/* Read what the socket has; completes the job when the answer is whole. */
static void hl_recv(httpc_loop *l, hl_conn *c)
{
    for (;;) {
        ssize_t n;
        if (hl_buf_reserve(&c->buf, &c->cap, c->len + 16384)) {
            hl_conn_fail(l, c, "out of memory");
            return;
        }
        n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            hl_conn_fail(l, c, strerror(errno));
            return;
        }
        if (n == 0) {
            if (c->job && c->rstate == HL_BODY_EOF) {
                hl_complete(l, c, c->head_end, c->len - c->head_end);
                return;
            }
            hl_conn_fail(l, c, "connection closed by the server");
            return;
        }
        if (c->job == NULL) {
            /* Bytes on an idle connection: nothing asked for them. */
            hl_idle_remove(c->host, c);
            hl_conn_close(l, c);
            return;
        }
        c->len += (size_t)n;
        c->got_bytes = 1;
        if (c->rstate == HL_STATUS_HEAD) {
            int rc = hl_parse_head(c);
            if (rc < 0) {
                hl_conn_fail(l, c, "malformed answer");
                return;
            }
            if (rc == 0)
                continue;
        }
        if (c->rstate == HL_BODY_LEN && c->len - c->head_end >= c->body_want) {
            hl_complete(l, c, c->head_end, c->body_want);
            return;
        }
        if (c->rstate == HL_BODY_CHUNKED) {
            int rc = hl_parse_chunks(c);
            if (rc < 0) {
                hl_conn_fail(l, c, "malformed chunked answer");
                return;
            }
            if (rc == 1) {
                hl_complete(l, c, 0, 0);
                return;
            }
        }
        if (c->rstate == HL_BODY_EOF && c->len - c->head_end > HTTPC_MAX_RESP_BODY) {
            hl_conn_fail(l, c, "answer too large");
            return;
        }
    }
}

/* The connection is dead (or unusable): close it, and retry or fail its job. */
static void hl_conn_fail(httpc_loop *l, hl_conn *c, const char *what)
{
    hl_job *j = c->job;
    hl_host *h = c->host;
    int may_retry = j && c->reused && !c->got_bytes && !j->retried;

    if (j == NULL)
        hl_idle_remove(h, c);
    hl_conn_close(l, c);
    if (j == NULL)
        return;
    j->conn = NULL;
    if (may_retry) {
        /* A kept-alive connection the server had closed: once more, new. */
        j->retried = 1;
        j->sent = 0;
        hl_dispatch(l, j);
        return;
    }
    hl_active_del(l, j);
    hl_job_fail(j, "%s:%u: %s", h->name, h->port, what);
}

static void hl_conn_event(httpc_loop *l, hl_conn *c, uint32_t events)
{
    if (c->connecting) {
        int err = 0;
        socklen_t el = sizeof err;
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "connect: %s", strerror(err));
            hl_conn_fail(l, c, msg);
            return;
        }
        c->connecting = 0;
    }
    if (c->job && (events & EPOLLOUT) && hl_send(c) != 0) {
        hl_conn_fail(l, c, strerror(errno));
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        hl_recv(l, c);
}

/* Put j on a connection (idle or new) and start writing. */
static void hl_dispatch(httpc_loop *l, hl_job *j)
{
    hl_host *h = j->host;
    hl_conn *c = h->idle;
    char err[256];

    if (c) {
        h->idle = c->next_idle;
        h->nidle--;
    } else if ((c = hl_conn_open(l, h, err, sizeof err)) == NULL) {
        hl_active_del(l, j);
        hl_job_fail(j, "%s", err);
        return;
    }
    c->job = j;
    j->conn = c;
    if (c->connecting)
        return; /* EPOLLOUT when connected; the job's deadline bounds it */
    if (hl_send(c) != 0)
        hl_conn_fail(l, c, strerror(errno));
}

/* ---- the loop ---- */

httpc_loop *httpc_loop_new(void)
{
    httpc_loop *l = calloc(1, sizeof *l);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    if (l == NULL)
        return NULL;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epfd < 0 || l->wakefd < 0 ||
        epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) != 0) {
        if (l->epfd >= 0)
            close(l->epfd);
        if (l->wakefd >= 0)
            close(l->wakefd);
        free(l);
        return NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    l->owner = pthread_self();
    atomic_store(&l->owned, 1);
    return l;
}

int httpc_loop_fd(const httpc_loop *l)
{
    return l->epfd;
}

long httpc_loop_timeout_ms(const httpc_loop *l)
{
    int64_t first = -1, now;

    if (l->pend_head)
        return 0;
    for (const hl_job *j = l->active; j; j = j->next)
        if (first < 0 || j->deadline_ms < first)
            first = j->deadline_ms;
    if (first < 0)
        return -1;
    now = (int64_t)clock_mono_ms();
    return first <= now ? 0 : (long)(first - now);
}

/* End an active job with an error, closing its connection (an answer may
 * still be on its way on it). */
static void hl_job_abort(httpc_loop *l, hl_job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void hl_job_abort(httpc_loop *l, hl_job *j, const char *fmt, ...)
{
    char why[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (j->conn)
        hl_conn_close(l, j->conn);
    if (j->parked)
        l->nparked--;
    hl_active_del(l, j);
    hl_job_fail(j, "%s:%u: %s", j->host->name, j->host->port, why);
}

/* Fail the jobs whose deadline passed. */
static void hl_expire(httpc_loop *l)
{
    int64_t now = (int64_t)clock_mono_ms();

    for (hl_job *j = l->active, *next; j; j = next) {
        next = j->next;
        if (j->deadline_ms > now)
            continue;
        hl_job_abort(l, j, "timed out after %ld ms", j->timeout_ms);
    }
}

static void hl_pend(httpc_loop *l, hl_job *j)
{
    j->next = NULL;
    if (l->pend_tail)
        l->pend_tail->next = j;
    else
        l->pend_head = j;
    l->pend_tail = j;
}

/* The jobs other threads submitted since the last look. */
static hl_job *hl_inbox_take(httpc_loop *l)
{
    hl_job *in;

    pthread_mutex_lock(&l->mu);
    in = l->in_head;
    l->in_head = l->in_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    return in;
}

static void hl_take_inbox(httpc_loop *l)
{
    uint64_t v;

    if (read(l->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warn("httpc: wake read: %s", strerror(errno));
    for (hl_job *j = hl_inbox_take(l), *next; j; j = next) {
        next = j->next;
        hl_pend(l, j);
    }
}

/* Start what was submitted since the last run. Starting here, not inside
 * httpc_loop_async, means a failure to connect reaches its callback from the
 * loop, never from within the submitter's call. A callback may submit more:
 * those start in this same pass. */
static void hl_start_pending(httpc_loop *l)
{
    while (l->pend_head) {
        hl_job *j = l->pend_head;
        char err[256];
        int rc;
        l->pend_head = j->next;
        if (l->pend_head == NULL)
            l->pend_tail = NULL;
        j->host = hl_host_get(l, j->hname, j->port);
        if (j->host == NULL) {
            hl_job_fail(j, "out of memory");
            continue;
        }
        hl_active_add(l, j);
        rc = hl_host_address(l, j->host, err, sizeof err);
        if (rc == RESOLVE_PENDING) {
            j->parked = 1; /* in the active list: its deadline still runs */
            l->nparked++;
        } else if (rc == RESOLVE_FAILED) {
            hl_active_del(l, j);
            hl_job_fail(j, "%s", err);
        } else {
            hl_dispatch(l, j);
        }
    }
}

/* Jobs parked on a name without an answer: start or fail those whose name
 * now has one. */
static void hl_unpark(httpc_loop *l)
{
    for (hl_job *j = l->active, *next; j && l->nparked; j = next) {
        char err[256];
        int rc;
        next = j->next;
        if (!j->parked)
            continue;
        rc = hl_host_address(l, j->host, err, sizeof err);
        if (rc == RESOLVE_PENDING)
            continue;
        j->parked = 0;
        l->nparked--;
        if (rc == RESOLVE_FAILED) {
            hl_active_del(l, j);
            hl_job_fail(j, "%s", err);
        } else {
            hl_dispatch(l, j);
        }
    }
}

void httpc_loop_run(httpc_loop *l)
{
    struct epoll_event ev[64];
    int n = epoll_wait(l->epfd, ev, 64, 0);

    hl_start_pending(l);
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr == NULL)
            hl_take_inbox(l);
        else
            hl_conn_event(l, ev[i].data.ptr, ev[i].events);
    }
    hl_start_pending(l);
    if (l->nparked)
        hl_unpark(l);
    if (l->active)
        hl_expire(l);
}

/* Fail everything in flight or waiting, close every connection. */
static void hl_abandon(httpc_loop *l)
{
    for (hl_job *j = hl_inbox_take(l), *next; j; j = next) {
        next = j->next;
        hl_job_fail(j, "the client loop is stopping");
    }
    while (l->pend_head) {
        hl_job *j = l->pend_head;
        l->pend_head = j->next;
        hl_job_fail(j, "the client loop is stopping");
    }
    l->pend_tail = NULL;
    while (l->active)
        hl_job_abort(l, l->active, "the client loop is stopping");
    for (hl_host *h = l->hosts, *hn; h; h = hn) {
        hn = h->next;
        for (hl_conn *c = h->idle, *cn; c; c = cn) {
            cn = c->next_idle;
            hl_conn_close(l, c);
        }
        free(h);
    }
    l->hosts = NULL;
}

void httpc_loop_free(httpc_loop *l)
{
    if (l == NULL)
        return;
    resolve_cancel(hl_resolved, l);
    hl_abandon(l);
    close(l->epfd);
    close(l->wakefd);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static void *hl_thread_main(void *arg)
{
    httpc_loop *l = arg;

    l->owner = pthread_self();
    atomic_store(&l->owned, 1);
    for (;;) {
        /* poll, not epoll_wait: waiting must not take the (edge-triggered)
         * events that httpc_loop_run reads. */
        struct pollfd pfd = {.fd = l->epfd, .events = POLLIN};
        long t = httpc_loop_timeout_ms(l);
        int stopping;

        pthread_mutex_lock(&l->mu);
        stopping = l->stopping;
        pthread_mutex_unlock(&l->mu);
        if (stopping)
            break;
        poll(&pfd, 1, t < 0 || t > 1000 ? 1000 : (int)t);
        httpc_loop_run(l);
    }
    hl_abandon(l);
    return NULL;
}

httpc_loop *httpc_loop_start(void)
{
    httpc_loop *l = httpc_loop_new();

    if (l == NULL)
        return NULL;
    l->threaded = 1;
    atomic_store(&l->owned, 0); /* until its thread runs: use the inbox */
    if (pthread_create(&l->thread, NULL, hl_thread_main, l) != 0) {
        l->threaded = 0;
        atomic_store(&l->owned, 1);
        httpc_loop_free(l);
        return NULL;
    }
    return l;
}

static void hl_wake(httpc_loop *l)
{
    uint64_t one = 1;
    if (write(l->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("httpc: wake write: %s", strerror(errno));
}

void httpc_loop_stop(httpc_loop *l)
{
    if (l == NULL)
        return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->stopping = 1;
        pthread_mutex_unlock(&l->mu);
        hl_wake(l);
        pthread_join(l->thread, NULL);
    }
    httpc_loop_free(l);
}

/* The request line and headers. */
static char *hl_build_head(const httpc_req *req, const char *host, size_t hlen,
                           uint16_t port, const char *path, size_t *len)
{
    const char *m = req->method ? req->method : "GET";
    size_t cap = strlen(m) + strlen(path) + hlen + 128;
    int has_ctype = 0;
    char *b, *p;

    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        cap += strlen(req->headers[i]) + 2;
        has_ctype |= strncasecmp(req->headers[i], "Content-Type:", 13) == 0;
    }
    b = malloc(cap);
    if (b == NULL)
        return NULL;
    p = b + sprintf(b, "%s %s HTTP/1.1\r\nHost: %.*s:%u\r\n", m, path, (int)hlen,
                    host, (unsigned)port);
    for (size_t i = 0; req->headers && req->headers[i]; i++)
        p += sprintf(p, "%s\r\n", req->headers[i]);
    if (req->body || (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0)) {
        if (!has_ctype && req->body)
            p += sprintf(p, "Content-Type: application/octet-stream\r\n");
        p += sprintf(p, "Content-Length: %zu\r\n", req->body ? req->body_len : 0);
    }
    p += sprintf(p, "\r\n");
    *len = (size_t)(p - b);
    return b;
}

int httpc_loop_async(httpc_loop *l, const httpc_req *req, httpc_done_fn cb, void *ctx)
{
    int here = atomic_load(&l->owned) && pthread_equal(l->owner, pthread_self());
    const char *host, *path;
    size_t hlen;
    uint16_t port;
    hl_job *j;

    if (httpc_url_split(req->url, &host, &hlen, &port, &path) != 0 ||
        hlen >= sizeof j->hname) {
        log_warn("httpc: not an http://host[:port]/path URL: %s", req->url);
        return -1;
    }
    j = calloc(1, sizeof *j);
    if (j == NULL)
        return -1;
    j->head_only = req->method && strcmp(req->method, "HEAD") == 0;
    memcpy(j->hname, host, hlen);
    j->port = port;
    j->head = hl_build_head(req, host, hlen, port, path, &j->head_len);
    j->body = req->body;
    j->body_len = req->body ? req->body_len : 0;
    j->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
    j->deadline_ms = (int64_t)clock_mono_ms() + j->timeout_ms;
    j->cb = cb;
    j->ctx = ctx;
    if (j->head == NULL) {
        free(j);
        return -1;
    }
    if (here) {
        hl_pend(l, j); /* the next httpc_loop_run starts it */
        return 0;
    }
    pthread_mutex_lock(&l->mu);
    if (l->stopping) {
        pthread_mutex_unlock(&l->mu);
        hl_job_free(j);
        return -1;
    }
    if (l->in_tail)
        l->in_tail->next = j;
    else
        l->in_head = j;
    l->in_tail = j;
    pthread_mutex_unlock(&l->mu);
    hl_wake(l);
    return 0;
}
