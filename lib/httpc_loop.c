/* httpc_loop: the event-loop HTTP client; what it does and why it is not
 * libcurl: httpc_loop.h. Here: the loop (jobs from submission to callback,
 * the inbox other threads submit through, deadlines), and the connection
 * pool with the sending and receiving on each connection; the response
 * parsing is lib/http1_parse.c. */
#include "httpc_loop.h"

#include "clock.h"
#include "http1_parse.h"
#include "httpc_batch.h"
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

#define HTTPC_LOOP_IDLE_MAX 64             /* idle connections kept per host */

typedef struct httpc_loop_conn httpc_loop_conn;
typedef struct httpc_loop_host httpc_loop_host;

/* One request, from submission to callback. */
typedef struct httpc_loop_job {
    char hname[256];               /* host and port of the URL */
    uint16_t port;
    httpc_loop_host *host;                 /* resolved when the job starts */
    httpc_loop_conn *conn;
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
    struct httpc_loop_job *next, *prev;    /* inbox or pending, then active list */
} httpc_loop_job;

struct httpc_loop_conn {
    int fd;
    httpc_loop_host *host;
    httpc_loop_job *job;                   /* NULL while idle */
    int connecting;
    int reused;                    /* served a request before this one */
    int got_bytes;                 /* this request's answer has begun */
    /* response being read */
    char *buf;
    size_t len, cap;
    http1_parse parse;
    httpc_loop_conn *next_idle;
    int closed;                    /* in l->dead: closed, freed after the run */
    httpc_loop_conn *next_dead;
};

struct httpc_loop_host {
    char name[256];
    uint16_t port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int literal;                   /* an IP address: addr never changes */
    httpc_loop_conn *idle;
    size_t nidle;
    httpc_loop_host *next;
};

struct httpc_loop {
    int epfd;                      /* every connection and wakefd */
    int wakefd;                    /* eventfd: inbox has work, or stop */
    pthread_t owner;
    _Atomic int owned;             /* owner is set (written before) */
    pthread_mutex_t mu;            /* guards the inbox and stopping */
    httpc_loop_job *in_head, *in_tail;     /* submitted by other threads */
    httpc_loop_job *pend_head, *pend_tail; /* to start at the next run; loop thread */
    httpc_loop_job *active;                /* loop thread only */
    httpc_loop_host *hosts;                /* loop thread only */
    httpc_loop_conn *dead;                 /* closed this run; loop thread only */
    size_t nparked;                /* active jobs waiting on a name */
    int stopping;
    pthread_t thread;              /* httpc_loop_start's */
    int threaded;
    httpc_batch *batch;            /* requests held for a batch; loop thread */
    int batch_closed;              /* freeing: no more are held */
};

/* ---- jobs ---- */

static void httpc_loop_active_add(httpc_loop *l, httpc_loop_job *j)
{
    j->prev = NULL;
    j->next = l->active;
    if (l->active)
        l->active->prev = j;
    l->active = j;
}

static void httpc_loop_active_del(httpc_loop *l, httpc_loop_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->active = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->next = j->prev = NULL;
}

static void httpc_loop_job_free(httpc_loop_job *j)
{
    free(j->head);
    free(j);
}

/* Call back (resp's buffers are freed after the callback unless taken). */
static void httpc_loop_job_end(httpc_loop_job *j, httpc_resp *resp)
{
    j->cb(resp, j->ctx);
    httpc_resp_free(resp);
    httpc_loop_job_free(j);
}

static void httpc_loop_job_fail(httpc_loop_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void httpc_loop_job_fail(httpc_loop_job *j, const char *fmt, ...)
{
    httpc_resp resp;
    va_list ap;

    memset(&resp, 0, sizeof resp);
    va_start(ap, fmt);
    vsnprintf(resp.error, sizeof resp.error, fmt, ap);
    va_end(ap);
    log_debug("httpc: request failed: %s", resp.error);
    httpc_loop_job_end(j, &resp);
}

/* ---- connections ---- */

/* Close c now but free it only at the end of the run (httpc_loop_bury):
 * the run's batch of epoll events may still name it. Handling one event
 * can close another connection: a request failed on A is retried on idle
 * B, whose send fails (the server reset it), and B's own event comes later
 * in the same batch; or start_pending puts a request on a reset idle
 * connection whose event epoll_wait has just returned. Freeing at once
 * was a use-after-free (issue 11 finding 6; test_httpc_loop.c has both). */
static void httpc_loop_conn_close(httpc_loop *l, httpc_loop_conn *c)
{
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    http1_parse_free(&c->parse);
    c->closed = 1;
    c->next_dead = l->dead;
    l->dead = c;
}

/* Free the connections closed since the last time. */
static void httpc_loop_bury(httpc_loop *l)
{
    for (httpc_loop_conn *c = l->dead, *next; c; c = next) {
        next = c->next_dead;
        free(c);
    }
    l->dead = NULL;
}

static void httpc_loop_conn_reset_read(httpc_loop_conn *c)
{
    c->len = 0;
    c->got_bytes = 0;
    http1_parse_reset(&c->parse, 0);
}

static void httpc_loop_idle_remove(httpc_loop_host *h, httpc_loop_conn *c)
{
    for (httpc_loop_conn **p = &h->idle; *p; p = &(*p)->next_idle)
        if (*p == c) {
            *p = c->next_idle;
            h->nidle--;
            return;
        }
}

/* host:port's entry in this loop (made if new). */
static httpc_loop_host *httpc_loop_host_get(httpc_loop *l, const char *name,
                                            uint16_t port)
{
    httpc_loop_host *h;

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

static void httpc_loop_wake(httpc_loop *l);

/* The resolver has an answer a parked job waits for: wake the loop. */
static void httpc_loop_resolved(void *arg)
{
    httpc_loop_wake(arg);
}

/* h's current address into h->addr (names: from lib/resolve's cache, which
 * a thread of its own keeps fresh, so this never waits on DNS).
 * RESOLVE_OK, RESOLVE_PENDING (httpc_loop_resolved wakes the loop when it has an
 * answer) or RESOLVE_FAILED (err). */
static int httpc_loop_host_address(httpc_loop *l, httpc_loop_host *h, char *err,
                                   size_t errlen)
{
    if (h->literal)
        return RESOLVE_OK;
    return resolve_lookup(h->name, h->port, &h->addr, &h->addrlen, httpc_loop_resolved, l,
                          err, errlen);
}

static httpc_loop_conn *httpc_loop_conn_open(httpc_loop *l, httpc_loop_host *h,
                                             char *err, size_t errlen)
{
    httpc_loop_conn *c = calloc(1, sizeof *c);
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

static void httpc_loop_conn_fail(httpc_loop *l, httpc_loop_conn *c, const char *what);
static void httpc_loop_dispatch(httpc_loop *l, httpc_loop_job *j);

/* Write what is left of the request; 0 (done or would block), -1 (dead). */
static int httpc_loop_send(httpc_loop_conn *c)
{
    httpc_loop_job *j = c->job;

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

/* Hand the finished answer to the job, and the connection back to the pool
 * (or close it). */
static void httpc_loop_complete(httpc_loop *l, httpc_loop_conn *c)
{
    httpc_loop_job *j = c->job;
    httpc_loop_host *h = c->host;
    http1_parse *p = &c->parse;
    httpc_resp resp;
    const char *body;

    memset(&resp, 0, sizeof resp);
    resp.status = p->status;
    resp.headers = malloc(p->head_end + 1);
    body = http1_parse_body(p, c->buf, c->len, &resp.len);
    resp.body = http1_parse_take_body(p);
    if (resp.body == NULL && (resp.body = malloc(resp.len + 1)) != NULL)
        memcpy(resp.body, body, resp.len);
    if (resp.headers == NULL || resp.body == NULL) {
        httpc_resp_free(&resp);
        httpc_loop_conn_fail(l, c, "out of memory");
        return;
    }
    memcpy(resp.headers, c->buf, p->head_end);
    resp.headers[p->head_end] = '\0';
    resp.body[resp.len] = '\0';
    c->job = NULL;
    httpc_loop_active_del(l, j);
    if (p->close_after || h->nidle >= HTTPC_LOOP_IDLE_MAX) {
        httpc_loop_conn_close(l, c);
    } else {
        httpc_loop_conn_reset_read(c);
        c->reused = 1;
        c->next_idle = h->idle;
        h->idle = c;
        h->nidle++;
    }
    httpc_loop_job_end(j, &resp);
}

/* Read what the socket has; completes the job when the answer is whole. */
static void httpc_loop_recv(httpc_loop *l, httpc_loop_conn *c)
{
    static const char *const why[] = {
        [HTTP1_PARSE_BAD_HEAD] = "malformed answer",
        [HTTP1_PARSE_BAD_CHUNK] = "malformed chunked answer",
        [HTTP1_PARSE_TOO_LARGE] = "answer too large",
    };

    for (;;) {
        http1_parse_rc rc;
        ssize_t n;
        if (http1_parse_reserve(&c->buf, &c->cap, c->len + 16384)) {
            httpc_loop_conn_fail(l, c, "out of memory");
            return;
        }
        n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            httpc_loop_conn_fail(l, c, strerror(errno));
            return;
        }
        if (c->job == NULL) {
            /* EOF or bytes on an idle connection: nothing asked for them. */
            httpc_loop_idle_remove(c->host, c);
            httpc_loop_conn_close(l, c);
            return;
        }
        c->len += (size_t)n;
        c->got_bytes |= n > 0;
        rc = http1_parse_step(&c->parse, c->buf, &c->len, n == 0);
        if (rc == HTTP1_PARSE_DONE) {
            httpc_loop_complete(l, c);
            return;
        }
        if (rc != HTTP1_PARSE_MORE) {
            httpc_loop_conn_fail(l, c, why[rc]);
            return;
        }
        if (n == 0) {
            httpc_loop_conn_fail(l, c, "connection closed by the server");
            return;
        }
    }
}

/* The connection is dead (or unusable): close it, and retry or fail its job. */
static void httpc_loop_conn_fail(httpc_loop *l, httpc_loop_conn *c, const char *what)
{
    httpc_loop_job *j = c->job;
    httpc_loop_host *h = c->host;
    int may_retry = j && c->reused && !c->got_bytes && !j->retried;

    if (j == NULL)
        httpc_loop_idle_remove(h, c);
    httpc_loop_conn_close(l, c);
    if (j == NULL)
        return;
    j->conn = NULL;
    if (may_retry) {
        /* A kept-alive connection the server had closed: once more, new. */
        j->retried = 1;
        j->sent = 0;
        httpc_loop_dispatch(l, j);
        return;
    }
    httpc_loop_active_del(l, j);
    httpc_loop_job_fail(j, "%s:%u: %s", h->name, h->port, what);
}

static void httpc_loop_conn_event(httpc_loop *l, httpc_loop_conn *c, uint32_t events)
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
            httpc_loop_conn_fail(l, c, msg);
            return;
        }
        c->connecting = 0;
    }
    if (c->job && (events & EPOLLOUT) && httpc_loop_send(c) != 0) {
        httpc_loop_conn_fail(l, c, strerror(errno));
        return;
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        httpc_loop_recv(l, c);
}

/* Put j on a connection (idle or new) and start writing. */
static void httpc_loop_dispatch(httpc_loop *l, httpc_loop_job *j)
{
    httpc_loop_host *h = j->host;
    httpc_loop_conn *c = h->idle;
    char err[256];

    if (c) {
        h->idle = c->next_idle;
        h->nidle--;
    } else if ((c = httpc_loop_conn_open(l, h, err, sizeof err)) == NULL) {
        httpc_loop_active_del(l, j);
        httpc_loop_job_fail(j, "%s", err);
        return;
    }
    c->job = j;
    j->conn = c;
    c->parse.head_only = j->head_only;
    if (c->connecting)
        return; /* EPOLLOUT when connected; the job's deadline bounds it */
    if (httpc_loop_send(c) != 0)
        httpc_loop_conn_fail(l, c, strerror(errno));
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
    long held = httpc_batch_timeout_ms(l->batch), t;

    if (l->pend_head || held == 0)
        return 0;
    for (const httpc_loop_job *j = l->active; j; j = j->next)
        if (first < 0 || j->deadline_ms < first)
            first = j->deadline_ms;
    if (first < 0)
        return held;
    now = (int64_t)clock_mono_ms();
    t = first <= now ? 0 : (long)(first - now);
    return held >= 0 && held < t ? held : t;
}

/* End an active job with an error, closing its connection (an answer may
 * still be on its way on it). */
static void httpc_loop_job_abort(httpc_loop *l, httpc_loop_job *j, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void httpc_loop_job_abort(httpc_loop *l, httpc_loop_job *j, const char *fmt, ...)
{
    char why[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (j->conn)
        httpc_loop_conn_close(l, j->conn);
    if (j->parked)
        l->nparked--;
    httpc_loop_active_del(l, j);
    httpc_loop_job_fail(j, "%s:%u: %s", j->host->name, j->host->port, why);
}

/* Fail the jobs whose deadline passed. */
static void httpc_loop_expire(httpc_loop *l)
{
    int64_t now = (int64_t)clock_mono_ms();

    for (httpc_loop_job *j = l->active, *next; j; j = next) {
        next = j->next;
        if (j->deadline_ms > now)
            continue;
        httpc_loop_job_abort(l, j, "timed out after %ld ms", j->timeout_ms);
    }
}

static void httpc_loop_pend(httpc_loop *l, httpc_loop_job *j)
{
    j->next = NULL;
    if (l->pend_tail)
        l->pend_tail->next = j;
    else
        l->pend_head = j;
    l->pend_tail = j;
}

/* The jobs other threads submitted since the last look. */
static httpc_loop_job *httpc_loop_inbox_take(httpc_loop *l)
{
    httpc_loop_job *in;

    pthread_mutex_lock(&l->mu);
    in = l->in_head;
    l->in_head = l->in_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    return in;
}

static void httpc_loop_take_inbox(httpc_loop *l)
{
    uint64_t v;

    if (read(l->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
        log_warn("httpc: wake read: %s", strerror(errno));
    for (httpc_loop_job *j = httpc_loop_inbox_take(l), *next; j; j = next) {
        next = j->next;
        httpc_loop_pend(l, j);
    }
}

/* Start what was submitted since the last run. Starting here, not inside
 * httpc_loop_async, means a failure to connect reaches its callback from the
 * loop, never from within the submitter's call. A callback may submit more:
 * those start in this same pass. */
static void httpc_loop_start_pending(httpc_loop *l)
{
    if (l->batch)
        httpc_batch_flush(l->batch); /* into pend, through httpc_loop_async */
    while (l->pend_head) {
        httpc_loop_job *j = l->pend_head;
        char err[256];
        int rc;
        l->pend_head = j->next;
        if (l->pend_head == NULL)
            l->pend_tail = NULL;
        j->host = httpc_loop_host_get(l, j->hname, j->port);
        if (j->host == NULL) {
            httpc_loop_job_fail(j, "out of memory");
            continue;
        }
        httpc_loop_active_add(l, j);
        rc = httpc_loop_host_address(l, j->host, err, sizeof err);
        if (rc == RESOLVE_PENDING) {
            j->parked = 1; /* in the active list: its deadline still runs */
            l->nparked++;
        } else if (rc == RESOLVE_FAILED) {
            httpc_loop_active_del(l, j);
            httpc_loop_job_fail(j, "%s", err);
        } else {
            httpc_loop_dispatch(l, j);
        }
    }
}

/* Jobs parked on a name without an answer: start or fail those whose name
 * now has one. */
static void httpc_loop_unpark(httpc_loop *l)
{
    for (httpc_loop_job *j = l->active, *next; j && l->nparked; j = next) {
        char err[256];
        int rc;
        next = j->next;
        if (!j->parked)
            continue;
        rc = httpc_loop_host_address(l, j->host, err, sizeof err);
        if (rc == RESOLVE_PENDING)
            continue;
        j->parked = 0;
        l->nparked--;
        if (rc == RESOLVE_FAILED) {
            httpc_loop_active_del(l, j);
            httpc_loop_job_fail(j, "%s", err);
        } else {
            httpc_loop_dispatch(l, j);
        }
    }
}

/* One run over the n events of ev (none: httpc_loop_run_idle). */
static void httpc_loop_run_events(httpc_loop *l, const struct epoll_event *ev, int n)
{
    httpc_loop_start_pending(l);
    for (int i = 0; i < n; i++) {
        httpc_loop_conn *c = ev[i].data.ptr;
        if (c == NULL)
            httpc_loop_take_inbox(l);
        else if (!c->closed) /* closed earlier in this run: see conn_close */
            httpc_loop_conn_event(l, c, ev[i].events);
    }
    httpc_loop_start_pending(l);
    if (l->nparked)
        httpc_loop_unpark(l);
    if (l->active)
        httpc_loop_expire(l);
    httpc_loop_bury(l);
}

void httpc_loop_run(httpc_loop *l)
{
    struct epoll_event ev[64];
    int n = epoll_wait(l->epfd, ev, 64, 0);

    httpc_loop_run_events(l, ev, n);
}

int httpc_loop_due(const httpc_loop *l)
{
    return l->nparked || httpc_loop_timeout_ms(l) == 0;
}

void httpc_loop_run_idle(httpc_loop *l)
{
    httpc_loop_run_events(l, NULL, 0);
}

/* Fail everything in flight or waiting, close every connection. */
static void httpc_loop_abandon(httpc_loop *l)
{
    for (httpc_loop_job *j = httpc_loop_inbox_take(l), *next; j; j = next) {
        next = j->next;
        httpc_loop_job_fail(j, "the client loop is stopping");
    }
    while (l->pend_head) {
        httpc_loop_job *j = l->pend_head;
        l->pend_head = j->next;
        httpc_loop_job_fail(j, "the client loop is stopping");
    }
    l->pend_tail = NULL;
    while (l->active)
        httpc_loop_job_abort(l, l->active, "the client loop is stopping");
    for (httpc_loop_host *h = l->hosts, *hn; h; h = hn) {
        hn = h->next;
        for (httpc_loop_conn *c = h->idle, *cn; c; c = cn) {
            cn = c->next_idle;
            httpc_loop_conn_close(l, c);
        }
        free(h);
    }
    l->hosts = NULL;
    httpc_loop_bury(l);
}

void httpc_loop_free(httpc_loop *l)
{
    if (l == NULL)
        return;
    resolve_cancel(httpc_loop_resolved, l);
    l->batch_closed = 1;
    if (l->batch)
        httpc_batch_flush_all(l->batch);
    httpc_loop_abandon(l);
    httpc_batch_free(l->batch);
    close(l->epfd);
    close(l->wakefd);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static void *httpc_loop_thread_main(void *arg)
{
    httpc_loop *l = arg;

    pthread_setname_np(pthread_self(), "httpc-loop"); /* top -H, perf */
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
    httpc_loop_abandon(l);
    return NULL;
}

httpc_loop *httpc_loop_start(void)
{
    httpc_loop *l = httpc_loop_new();

    if (l == NULL)
        return NULL;
    l->threaded = 1;
    atomic_store(&l->owned, 0); /* until its thread runs: use the inbox */
    if (pthread_create(&l->thread, NULL, httpc_loop_thread_main, l) != 0) {
        l->threaded = 0;
        atomic_store(&l->owned, 1);
        httpc_loop_free(l);
        return NULL;
    }
    return l;
}

static void httpc_loop_wake(httpc_loop *l)
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
        httpc_loop_wake(l);
        pthread_join(l->thread, NULL);
    }
    httpc_loop_free(l);
}

/* The request line and headers. */
static char *httpc_loop_build_head(const httpc_req *req, const char *host, size_t hlen,
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
    httpc_loop_job *j;

    if (httpc_url_split(req->url, &host, &hlen, &port, &path) != 0 ||
        hlen >= sizeof j->hname) {
        log_warn("httpc: not an http://host[:port]/path URL: %s", req->url);
        return -1;
    }
    if (req->subreq && here && !l->batch_closed) {
        if (l->batch == NULL)
            l->batch = httpc_batch_new(l);
        if (l->batch && httpc_batch_add(l->batch, req, host, hlen, port, path, cb,
                                       ctx) == 0)
            return 0; /* the next httpc_loop_run sends it, alone or not */
    }
    j = calloc(1, sizeof *j);
    if (j == NULL)
        return -1;
    j->head_only = req->method && strcmp(req->method, "HEAD") == 0;
    memcpy(j->hname, host, hlen);
    j->port = port;
    j->head = httpc_loop_build_head(req, host, hlen, port, path, &j->head_len);
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
        httpc_loop_pend(l, j); /* the next httpc_loop_run starts it */
        return 0;
    }
    pthread_mutex_lock(&l->mu);
    if (l->stopping) {
        pthread_mutex_unlock(&l->mu);
        httpc_loop_job_free(j);
        return -1;
    }
    if (l->in_tail)
        l->in_tail->next = j;
    else
        l->in_head = j;
    l->in_tail = j;
    pthread_mutex_unlock(&l->mu);
    httpc_loop_wake(l);
    return 0;
}
