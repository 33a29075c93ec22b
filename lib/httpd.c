#include "httpd.h"

#include "clock.h"
#include "httpd_conns.h"
#include "httpd_internal.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTPD_DEFAULT_BODY ((size_t)1024 * 1024 + 64 * 1024)
/* Per-connection buffer for headers and upload chunks; MHD clears it
 * between requests, so bigger is slower for small requests. */
#ifndef HTTPD_CONN_MEMORY
#define HTTPD_CONN_MEMORY ((size_t)16 * 1024)
#endif

/* Keep the raw %-encoded path and query values: we decode ourselves so that
 * %2F inside a key is not taken for a path separator. */
static size_t httpd_no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void httpd_free(httpd_t *d);

static void httpd_req_free(httpd_req *r)
{
    for (size_t i = 0; i < r->nsubs; i++)
        if (r->subs[i])
            httpd_req_free(r->subs[i]);
    free(r->subs);
    httpd_subreq_free(r);
    if (r->resp)
        MHD_destroy_response(r->resp);
    if (r->user_free)
        r->user_free(r->user);
    for (size_t i = 0; i < r->nallocs; i++)
        free(r->allocs[i]);
    free(r->allocs);
    free(r->body);
    free(r);
}

static void httpd_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    httpd_req *r = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (r && r->async)
        atomic_fetch_sub(&r->srv->pending, 1);
    if (r) {
        httpd_conns_busy(r->srv->conns, r->slot, 0);
        httpd_req_free(r);
    }
    *con_cls = NULL;
}

static httpd_req *httpd_req_new(httpd_worker *w, struct MHD_Connection *conn)
{
    httpd_req *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->srv = w->srv;
    r->worker = w;
    r->conn = conn;
    if (w->srv->latency)
        r->t0_us = clock_mono_us();
    return r;
}

/* libmicrohttpd's first look at a request: the raw target, before it
 * splits off the query. Its answer becomes the request's context. */
static void *httpd_uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
    httpd_req *r = httpd_req_new(cls, c);

    if (r == NULL)
        return NULL;
    r->uri_len = strlen(uri);
    for (const unsigned char *p = (const unsigned char *)uri; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            r->bad_uri = 1;
    return r;
}

static enum MHD_Result httpd_queue(httpd_req *r)
{
    struct MHD_Response *resp = r->resp;
    enum MHD_Result ret;

    r->resp = NULL;
    ret = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result httpd_count_header(void *cls, enum MHD_ValueKind kind,
                                          const char *key, const char *value)
{
    unsigned *n = cls;
    (void)kind;
    (void)value;
    n[0] += strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0;
    n[1] += strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0;
    return MHD_YES;
}

/* The head is in and no body byte has been read: refuse what we can from
 * it alone. Answers (r->resp set) or leaves the request to go on. */
static void httpd_check_head(httpd_req *r, const char *url, const char *version)
{
    httpd_t *d = r->srv;
    unsigned n[2] = {0, 0};
    const char *cl;

    /* A raw NUL ends the target libmicrohttpd hands us (the key would be
     * cut short there): the version follows the whole target in its
     * buffer, so a length short of that gap means a NUL inside. */
    if (r->bad_uri || (uintptr_t)version < (uintptr_t)url ||
        (uintptr_t)version - (uintptr_t)url != r->uri_len + 1) {
        httpd_error(r, 400, "bad_request",
                    "the request target holds a space, a control byte or a "
                    "NUL: percent-encode them");
        return;
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, httpd_count_header, n);
    if (n[0] > 1 || (n[0] && n[1])) {
        httpd_error(r, 400, "bad_request",
                    n[0] > 1 ? "more than one Content-Length"
                             : "both Content-Length and Transfer-Encoding");
        return;
    }
    if (d->admit) { /* a stranger learns nothing more, not even the limit */
        d->admit(r, d->app);
        if (r->resp)
            return;
    }
    cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        /* libmicrohttpd has refused one that is not a number already. */
        unsigned long long want = strtoull(cl, NULL, 10);
        if (want > d->max_body)
            httpd_error(r, 413, "too_large",
                        "request body is over the %zu byte limit", d->max_body);
        else
            r->want = (size_t)want;
    }
}

static enum MHD_Result httpd_access(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version,
                                    const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    httpd_worker *w = cls;
    httpd_t *d = w->srv;
    httpd_req *r = *con_cls;

    if (r == NULL) { /* httpd_uri_log ran out of memory */
        r = httpd_req_new(w, conn);
        if (r == NULL)
            return MHD_NO;
        r->uri_len = strlen(url);
        *con_cls = r;
    }
    if (r->state == REQ_HEAD) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        r->method = method;
        r->path = url;
        r->slot = ci ? ci->socket_context : NULL;
        httpd_conns_busy(d->conns, r->slot, 1);
        httpd_check_head(r, url, version);
        if (r->resp) { /* refused from its head: the body stays unread */
            r->state = REQ_HANDLED;
            return httpd_queue(r);
        }
        r->state = REQ_READING;
        return MHD_YES;
    }
    if (r->state == REQ_READING) {
        if (*upload_data_size) {
            size_t n = *upload_data_size;
            *upload_data_size = 0;
            if (r->too_big || r->len + n > d->max_body) {
                /* Chunked, so not refused from the head: drop the rest
                 * and answer 413 at its end. */
                r->too_big = 1;
                return MHD_YES;
            }
            if (r->len + n + 1 > r->cap) {
                /* The announced length, exactly: most bodies are small. */
                size_t cap = r->cap ? r->cap : r->want >= n ? r->want + 1 : 4096;
                while (cap < r->len + n + 1)
                    cap *= 2;
                char *b = realloc(r->body, cap);
                if (b == NULL)
                    return MHD_NO;
                r->body = b;
                r->cap = cap;
            }
            memcpy(r->body + r->len, upload_data, n);
            r->len += n;
            r->body[r->len] = '\0';
            return MHD_YES;
        }
        r->state = REQ_HANDLED;
        if (r->too_big)
            httpd_error(r, 413, "too_large",
                        "request body is over the %zu byte limit", d->max_body);
        else if (d->subreq && strcmp(r->path, SUBREQ_PATH) == 0)
            httpd_subreq_run(r);
        else
            d->handler(r, d->app);
        /* Suspended: another thread may be answering right now; MHD calls
         * us again once it resumed the connection, and we queue it then. */
        if (r->async)
            return MHD_YES;
    }
    if (r->resp)
        return httpd_queue(r);
    return MHD_YES;
}

/* A connection opened or closed: its slot in the server's table. */
static void httpd_conn_notify(void *cls, struct MHD_Connection *c,
                              void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    httpd_t *d = cls;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *sa =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context = fd == NULL ? NULL
                          : httpd_conns_open(d->conns, fd->connect_fd,
                                             sa ? sa->client_addr : NULL);
    } else {
        httpd_conns_close(d->conns, *socket_context);
        *socket_context = NULL;
    }
}

/* The socket every worker's daemon accepts on: whichever worker is free
 * takes the next connection (as MHD's own thread pool does). */
static int httpd_listen(const httpd_opts *o, uint16_t *port)
{
    struct sockaddr_in sa;
    socklen_t salen = sizeof sa;
    int one = 1, fd;
    const char *bind_addr = o->bind ? o->bind : "127.0.0.1";

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(o->port);
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
        log_error("httpd: bad bind address %s", bind_addr);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(fd, 1024) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &salen) != 0) {
        log_error("httpd: cannot listen on %s:%u: %s", bind_addr, o->port,
                  strerror(errno));
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static int httpd_watch(int epfd, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Set up this worker on its own thread (its httpc loop belongs to it). */
static int httpd_worker_init(httpd_worker *w)
{
    httpd_t *d = w->srv;
    const httpd_opts *o = d->opts;
    const union MHD_DaemonInfo *info;

    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->hc = httpc_loop_new();
    if (w->epfd < 0 || w->wakefd < 0 || w->hc == NULL)
        return -1;
    w->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, httpd_access, w,
        MHD_OPTION_LISTEN_SOCKET, d->listen_fd,
        MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s ? o->timeout_s : 120u,
        /* The shared table (d->conns) keeps the real count. */
        MHD_OPTION_CONNECTION_LIMIT, d->max_conns_mhd,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_CONN_MEMORY,
        MHD_OPTION_UNESCAPE_CALLBACK, httpd_no_unescape, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, httpd_completed, NULL,
        MHD_OPTION_NOTIFY_CONNECTION, httpd_conn_notify, d,
        MHD_OPTION_URI_LOG_CALLBACK, httpd_uri_log, w,
        MHD_OPTION_END);
    if (w->mhd == NULL)
        return -1;
    info = MHD_get_daemon_info(w->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL ||
        httpd_watch(w->epfd, info->epoll_fd, w->mhd) != 0 ||
        httpd_watch(w->epfd, httpc_loop_fd(w->hc), w->hc) != 0 ||
        httpd_watch(w->epfd, w->wakefd, &w->wakefd) != 0 ||
        httpd_watch(w->epfd, d->stopfd, d) != 0)
        return -1;
    return 0;
}

static void httpd_worker_fini(httpd_worker *w)
{
    if (w->mhd) {
        /* The listening socket is shared: not this daemon's to close. */
        MHD_quiesce_daemon(w->mhd);
        MHD_stop_daemon(w->mhd);
    }
    httpc_loop_free(w->hc);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->wakefd >= 0)
        close(w->wakefd);
}

/* How long the worker may sleep: until MHD's next connection timeout or
 * the httpc loop's next deadline, whichever comes first (1 s at most). */
static int httpd_worker_timeout(httpd_worker *w)
{
    MHD_UNSIGNED_LONG_LONG mt;
    long ct = httpc_loop_timeout_ms(w->hc);
    long t = 1000;

    if (MHD_get_timeout(w->mhd, &mt) == MHD_YES && mt < (MHD_UNSIGNED_LONG_LONG)t)
        t = (long)mt;
    if (ct >= 0 && ct < t)
        t = ct;
    return (int)t;
}

/* MHD has work without an event: a timeout, or resumed connections it
 * has yet to put back in its epoll set (its timeout is 0 then). */
static int httpd_worker_mhd_due(httpd_worker *w)
{
    MHD_UNSIGNED_LONG_LONG mt;
    return MHD_get_timeout(w->mhd, &mt) == MHD_YES && mt == 0;
}

static void *httpd_worker_main(void *arg)
{
    httpd_worker *w = arg;
    httpd_t *d = w->srv;
    int rc = httpd_worker_init(w);

    pthread_setname_np(pthread_self(), "httpd"); /* top -H, perf */
    pthread_mutex_lock(&d->start_mu);
    if (rc == 0)
        d->nready++;
    else
        d->nfailed++;
    pthread_cond_broadcast(&d->start_cv);
    pthread_mutex_unlock(&d->start_mu);
    while (rc == 0 && !atomic_load(&d->stopping)) {
        struct epoll_event ev[4];
        int n = epoll_wait(w->epfd, ev, 4, w->resumed ? 0 : httpd_worker_timeout(w));
        int mhd_ready = w->resumed, hc_ready = 0;

        w->resumed = 0;
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &w->wakefd) {
                uint64_t v;
                if (read(w->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
                    log_warn("httpd: wake read: %s", strerror(errno));
                /* A request answered on another thread: this pass's MHD_run
                 * resumes it, the next (at once) sends the answer. */
                mhd_ready = w->resumed = 1;
            } else if (ev[i].data.ptr == w->mhd) {
                mhd_ready = 1;
            } else if (ev[i].data.ptr == w->hc) {
                hc_ready = 1;
            }
        }
        /* Requests in and handlers run (they may start upstream calls),
         * upstream answers in (their callbacks answer and resume requests),
         * then the server's batched work for the requests of this pass
         * (on_pass). Answers given on this thread leave with the next
         * MHD_run, in a pass that starts at once (resumed). Each side runs
         * only when it has something to do: under load a pass is often
         * for one of them, and each run costs an epoll_wait of its own. */
        if (mhd_ready || httpd_worker_mhd_due(w))
            MHD_run(w->mhd);
        if (hc_ready)
            httpc_loop_run(w->hc);
        else if (httpc_loop_due(w->hc))
            httpc_loop_run_idle(w->hc);
        httpd_conns_sweep(d->conns);
        if (d->on_pass)
            d->on_pass(d->app);
    }
    httpd_worker_fini(w);
    return NULL;
}

/* The connection table, its limits kept below the descriptors this process
 * may open (each connection is one, and 512 are left for LMDB, logs and
 * the server's own calls out): the soft limit is raised as far as the hard
 * one lets it (a shell's default soft limit is often 1024). */
static int httpd_limits(httpd_t *d, const httpd_opts *o)
{
    unsigned total = o->max_conns ? o->max_conns : 4096u;
    unsigned per_ip = o->max_conns_per_ip ? o->max_conns_per_ip : total / 4;
    rlim_t want = (rlim_t)httpd_conns_capacity(total) + 512;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        unsigned fit = rl.rlim_cur > 1024 ? (unsigned)(rl.rlim_cur - 512) * 8 / 9 : 256;
        log_warn("httpd: %u connections at most, not %u: the open-file limit "
                 "is %llu", fit, total, (unsigned long long)rl.rlim_cur);
        total = fit;
    }
    if (per_ip > total)
        per_ip = total;
    d->conns = httpd_conns_new(total, per_ip,
                               o->head_timeout_ms ? o->head_timeout_ms : 10000u);
    d->max_conns_mhd = httpd_conns_capacity(total);
    return d->conns ? 0 : -1;
}

httpd_t *httpd_start(const httpd_opts *o, httpd_handler h, void *app)
{
    httpd_t *d = calloc(1, sizeof *d);
    unsigned threads = o->threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (d == NULL)
        return NULL;
    if (threads == 0)
        threads = cores > 0 ? (unsigned)cores : 2;
    d->handler = h;
    d->app = app;
    d->on_pass = o->on_pass;
    d->subreq = o->subreq;
    d->latency = o->latency;
    d->admit = o->admit;
    d->opts = o;
    d->max_body = o->max_body ? o->max_body : HTTPD_DEFAULT_BODY;
    d->nworkers = threads;
    pthread_mutex_init(&d->start_mu, NULL);
    pthread_cond_init(&d->start_cv, NULL);
    d->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    d->workers = calloc(threads, sizeof *d->workers);
    d->listen_fd = d->stopfd < 0 ? -1 : httpd_listen(o, &d->port);
    if (httpd_limits(d, o) != 0 || d->workers == NULL || d->listen_fd < 0) {
        httpd_free(d);
        return NULL;
    }
    for (unsigned i = 0; i < threads; i++) {
        httpd_worker *w = &d->workers[i];
        w->srv = d;
        w->epfd = w->wakefd = -1;
        if (pthread_create(&w->thread, NULL, httpd_worker_main, w) != 0) {
            pthread_mutex_lock(&d->start_mu);
            d->nfailed++;
            pthread_mutex_unlock(&d->start_mu);
            continue;
        }
        w->started = 1;
    }
    pthread_mutex_lock(&d->start_mu);
    while (d->nready + d->nfailed < threads)
        pthread_cond_wait(&d->start_cv, &d->start_mu);
    pthread_mutex_unlock(&d->start_mu);
    d->opts = NULL;
    if (d->nfailed) {
        log_error("httpd: %u of %u workers did not start on port %u",
                  d->nfailed, threads, d->port);
        httpd_free(d);
        return NULL;
    }
    return d;
}

int httpd_drain(httpd_t *d, long timeout_ms)
{
    struct timespec tick = {0, 10 * 1000000L};
    for (long waited = 0; atomic_load(&d->pending) > 0; waited += 10) {
        if (waited >= timeout_ms)
            return -1;
        nanosleep(&tick, NULL);
    }
    return 0;
}

/* Stop the workers (each frees its own daemon and loop), then the rest. */
static void httpd_free(httpd_t *d)
{
    uint64_t one = 1;

    atomic_store(&d->stopping, 1);
    if (d->stopfd >= 0 && write(d->stopfd, &one, sizeof one) < 0)
        log_warn("httpd: stop signal: %s", strerror(errno));
    for (unsigned i = 0; d->workers && i < d->nworkers; i++) {
        httpd_worker *w = &d->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
    }
    if (d->listen_fd >= 0)
        close(d->listen_fd);
    if (d->stopfd >= 0)
        close(d->stopfd);
    httpd_conns_free(d->conns);
    pthread_mutex_destroy(&d->start_mu);
    pthread_cond_destroy(&d->start_cv);
    free(d->workers);
    free(d);
}

void httpd_stop(httpd_t *d)
{
    if (d == NULL)
        return;
    /* libmicrohttpd must not stop with suspended connections. */
    if (httpd_drain(d, 5000))
        log_error("httpd: %d requests still waiting at shutdown",
                  atomic_load(&d->pending));
    httpd_free(d);
}

void httpd_set_closing(httpd_t *d)
{
    atomic_store(&d->closing, 1);
}

httpc_loop *httpd_loop(const httpd_req *r)
{
    return r->worker->hc;
}

uint16_t httpd_port(const httpd_t *d)
{
    return d->port;
}

const char *httpd_method(const httpd_req *r)
{
    return r->method;
}

const char *httpd_path(const httpd_req *r)
{
    return r->path;
}

int httpd_method_is(const httpd_req *r, const char *m)
{
    return strcmp(r->method, m) == 0;
}

const char *httpd_header(httpd_req *r, const char *name)
{
    if (r->parent)
        return httpd_subreq_header(r, name);
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void httpd_keep(httpd_req *r, char *s)
{
    char **a = realloc(r->allocs, (r->nallocs + 1) * sizeof *a);
    if (a == NULL) {
        free(s);
        return;
    }
    r->allocs = a;
    r->allocs[r->nallocs++] = s;
}

const char *httpd_query(httpd_req *r, const char *name)
{
    const char *raw;
    char *dec;

    if (r->parent)
        return httpd_subreq_query(r, name);
    raw = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (raw == NULL)
        return NULL;
    dec = httpd_decode(raw, strlen(raw), NULL);
    if (dec == NULL)
        return NULL;
    httpd_keep(r, dec);
    return dec;
}

const void *httpd_body(const httpd_req *r, size_t *len)
{
    *len = r->len;
    return r->body ? r->body : "";
}

const char *httpd_client_ip(httpd_req *r)
{
    const char *real = httpd_header(r, "X-Real-IP");

    if (real && *real)
        return real;
    return httpd_peer_ip(r);
}

const char *httpd_peer_ip(httpd_req *r)
{
    const union MHD_ConnectionInfo *ci;

    if (r->parent)
        return httpd_peer_ip(r->parent);
    if (r->ip[0])
        return r->ip;
    ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
                      r->ip, sizeof r->ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                      r->ip, sizeof r->ip);
    }
    if (!r->ip[0])
        strcpy(r->ip, "unknown");
    return r->ip;
}

const char *httpd_path_seg(const httpd_req *r, unsigned i, size_t *len)
{
    const char *p = r->path + (r->path[0] == '/');

    for (unsigned k = 0; k < i; k++) {
        p = strchr(p, '/');
        if (p == NULL)
            return NULL;
        p++;
    }
    *len = strcspn(p, "/");
    return p;
}

unsigned httpd_path_nsegs(const httpd_req *r)
{
    const char *p = r->path + (r->path[0] == '/');
    unsigned n = 1;

    for (; *p; p++)
        n += *p == '/';
    return n;
}

static int httpd_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *httpd_decode(const char *in, size_t n, size_t *out_len)
{
    char *out = malloc(n + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '%') {
            int h = i + 2 < n ? httpd_hex(in[i + 1]) : -1;
            int l = i + 2 < n ? httpd_hex(in[i + 2]) : -1;
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else if (in[i] == '\0') {
            /* A raw NUL is refused like %00: a key is a C string further
             * on (tests/fuzz/fuzz_key_decode.c found it passed through). */
            free(out);
            return NULL;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

void httpd_set_user(httpd_req *r, void *user, void (*free_fn)(void *))
{
    r->user = user;
    r->user_free = free_fn;
}

void *httpd_user(const httpd_req *r)
{
    return r->user;
}

void httpd_suspend(httpd_req *r)
{
    r->async = 1;
    if (r->parent) /* its batch is suspended while any is unanswered */
        return;
    atomic_fetch_add(&r->srv->pending, 1);
    MHD_suspend_connection(r->conn);
}

void httpd_respond(httpd_req *r, unsigned status, const char *content_type,
                   const void *body, size_t len, const char *const *headers)
{
    struct MHD_Response *resp;

    if (r->parent) {
        httpd_subreq_answer(r, status, content_type, body, len, headers);
        return;
    }
    resp = MHD_create_response_from_buffer(len, (void *)body,
                                           MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        log_error("httpd: out of memory building a response");
        resp = MHD_create_response_from_buffer(0, (void *)"",
                                               MHD_RESPMEM_PERSISTENT);
        status = 500;
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type);
    if (atomic_load_explicit(&r->srv->closing, memory_order_relaxed))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    for (size_t i = 0; headers && headers[i]; i++) {
        const char *colon = strchr(headers[i], ':');
        char name[128];
        size_t n;
        if (colon == NULL || (n = (size_t)(colon - headers[i])) >= sizeof name)
            continue;
        memcpy(name, headers[i], n);
        name[n] = '\0';
        colon++;
        while (*colon == ' ')
            colon++;
        MHD_add_response_header(resp, name, colon);
    }
    r->status = status;
    r->resp = resp;
    if (r->srv->latency)
        metrics_hist_record(r->srv->latency, clock_mono_us() - r->t0_us);
    if (r->async) {
        httpd_worker *w = r->worker;
        MHD_resume_connection(r->conn); /* its lock publishes r->resp */
        /* libmicrohttpd does not wake an external loop itself: on this
         * thread, have the next pass start at once; from another thread,
         * wake the worker. */
        if (pthread_equal(pthread_self(), w->thread)) {
            w->resumed = 1;
        } else {
            uint64_t one = 1;
            if (write(w->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
                log_warn("httpd: wake write: %s", strerror(errno));
        }
    }
}

void httpd_respond_json(httpd_req *r, unsigned status, cJSON *json,
                        const char *const *headers)
{
    char *s = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    if (s == NULL) {
        httpd_respond(r, 500, "application/json",
                      "{\"error\":\"internal\"}", 20, NULL);
        return;
    }
    httpd_respond(r, status, "application/json", s, strlen(s), headers);
    free(s);
}

static void httpd_verror(httpd_req *r, unsigned status,
                         const char *const *headers, const char *code,
                         const char *fmt, va_list ap)
{
    char msg[512];
    cJSON *j = cJSON_CreateObject();

    vsnprintf(msg, sizeof msg, fmt, ap);
    cJSON_AddStringToObject(j, "error", code);
    cJSON_AddStringToObject(j, "message", msg);
    httpd_respond_json(r, status, j, headers);
}

void httpd_error(httpd_req *r, unsigned status, const char *code,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    httpd_verror(r, status, NULL, code, fmt, ap);
    va_end(ap);
}

void httpd_error_h(httpd_req *r, unsigned status, const char *const *headers,
                   const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    httpd_verror(r, status, headers, code, fmt, ap);
    va_end(ap);
}
