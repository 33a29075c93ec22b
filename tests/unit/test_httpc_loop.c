/* Unit tests for the event-loop HTTP client (lib/httpc_loop.c, httpc_loop.h):
 * against a scripted peer on a loopback socket, the framings it must read
 * (Content-Length, chunked, end of connection), keep-alive reuse, the one
 * retry when the server closed a kept-alive connection, refused connections,
 * timeouts, malformed answers, requests submitted from another thread, and
 * connections closed while their events wait in the same epoll batch (issue
 * 11 finding 6: a use-after-free before, seen under ASan), and sub-request
 * batches (lib/httpc_batch.h): split back into each request's answer, sent
 * one by one when the server refuses them, one answer for all otherwise,
 * and held while their server has one of ours out (for its hold at most). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "httpc_batch.h"
#include "httpc_loop.h"
#include "subreq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#define PEER_MAX 8

/* A server that answers the n-th request it reads with answers[n]. */
typedef struct peer {
    int lfd;
    uint16_t port;
    pthread_t th;
    const char *answers[PEER_MAX];
    size_t answer_len[PEER_MAX]; /* bytes of answers[n] when not a string */
    int close_after[PEER_MAX];  /* close the connection after answer n */
    int trickle;                /* send answers in 3-byte pieces */
    int silent;                 /* read requests, never answer */
    _Atomic int stop;
    _Atomic int accepts;
    _Atomic int served;
    char req[PEER_MAX][2048];   /* what each request looked like */
} peer;

/* Read one request (headers, then Content-Length bytes); 0 or -1 at EOF. */
static int peer_read_request(peer *p, int fd, char *out, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    long clen = 0;

    while (!atomic_load(&p->stop)) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, out + len, cap - len - 1, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        out[len] = '\0';
        if (end == NULL && (end = strstr(out, "\r\n\r\n")) != NULL) {
            const char *cl = strcasestr(out, "Content-Length:");
            clen = cl && cl < end ? strtol(cl + 15, NULL, 10) : 0;
        }
        if (end && len >= (size_t)(end - out) + 4 + (size_t)clen)
            return 0;
    }
    return -1;
}

static void peer_send(peer *p, int fd, const char *s, size_t len)
{
    for (size_t off = 0; off < len;) {
        size_t n = p->trickle ? 3 : len - off;
        if (n > len - off)
            n = len - off;
        if (send(fd, s + off, n, MSG_NOSIGNAL) < 0)
            return;
        off += n;
        if (p->trickle)
            usleep(2000);
    }
}

static void *peer_main(void *arg)
{
    peer *p = arg;

    while (!atomic_load(&p->stop)) {
        struct pollfd pf = {.fd = p->lfd, .events = POLLIN};
        if (poll(&pf, 1, 50) <= 0)
            continue;
        int fd = accept(p->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&p->accepts, 1);
        for (;;) {
            int i = atomic_load(&p->served);
            if (i >= PEER_MAX ||
                peer_read_request(p, fd, p->req[i], sizeof p->req[i]) != 0)
                break;
            if (p->silent) {
                while (!atomic_load(&p->stop))
                    usleep(10000);
                break;
            }
            if (p->answers[i] == NULL)
                break;
            /* counted before it is sent: the client may look at the count
             * as soon as the answer reaches it */
            atomic_fetch_add(&p->served, 1);
            peer_send(p, fd, p->answers[i],
                      p->answer_len[i] ? p->answer_len[i] : strlen(p->answers[i]));
            if (p->close_after[i])
                break;
        }
        close(fd);
    }
    return NULL;
}

static peer *peer_start(void)
{
    peer *p = calloc(1, sizeof *p);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;

    assert_non_null(p);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->lfd >= 0);
    assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(p->lfd, 16), 0);
    getsockname(p->lfd, (struct sockaddr *)&sa, &sl);
    p->port = ntohs(sa.sin_port);
    return p;
}

static void peer_go(peer *p)
{
    assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_stop(peer *p)
{
    atomic_store(&p->stop, 1);
    pthread_join(p->th, NULL);
    close(p->lfd);
    free(p);
}

/* What a callback saw. */
typedef struct result {
    int done;
    long status;
    char body[256];
    size_t len;
    char version[32];
    char error[256];
} result;

static void on_done(httpc_resp *resp, void *ctx)
{
    result *r = ctx;
    r->done = 1;
    r->status = resp->status;
    r->len = resp->len;
    if (resp->body)
        snprintf(r->body, sizeof r->body, "%.*s", (int)resp->len, resp->body);
    if (!httpc_resp_header(resp, "X-KV-Version", r->version, sizeof r->version))
        r->version[0] = '\0';
    snprintf(r->error, sizeof r->error, "%s", resp->error);
}

/* Run the loop on this thread until r is done or ms pass. */
static void run_until(httpc_loop *l, result *r, long ms)
{
    int64_t end = (int64_t)clock_mono_ms() + ms;
    while (!r->done && (int64_t)clock_mono_ms() < end) {
        struct pollfd pf = {.fd = httpc_loop_fd(l), .events = POLLIN};
        long t = httpc_loop_timeout_ms(l);
        poll(&pf, 1, t < 0 || t > 50 ? 50 : (int)t);
        httpc_loop_run(l);
    }
}

static void request(httpc_loop *l, peer *p, const char *method, const char *path,
                    const char *body, long timeout_ms, result *r)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", p->port, path);
    httpc_req req = {.method = method, .url = url, .body = body,
                     .body_len = body ? strlen(body) : 0, .timeout_ms = timeout_ms};
    memset(r, 0, sizeof *r);
    assert_int_equal(httpc_loop_async(l, &req, on_done, r), 0);
    /* Never called back from within httpc_loop_async itself. */
    assert_false(r->done);
}

static void test_content_length_and_request_shape(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    p->answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-KV-Version: 7\r\n\r\nhello";
    peer_go(p);
    request(l, p, "PUT", "/internal/kv/a%2Fb", "abc", 2000, &r);
    run_until(l, &r, 3000);
    assert_true(r.done);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_string_equal(r.version, "7");
    assert_non_null(strstr(p->req[0], "PUT /internal/kv/a%2Fb HTTP/1.1\r\n"));
    assert_non_null(strstr(p->req[0], "Content-Length: 3\r\n"));
    assert_non_null(strstr(p->req[0], "\r\n\r\nabc"));
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_host_name_waits_for_its_address(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    char url[128];
    p->answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nname";
    peer_go(p);
    /* Not a literal: the job parks until lib/resolve's thread answers. */
    snprintf(url, sizeof url, "http://localhost:%u/x", p->port);
    httpc_req req = {.url = url, .timeout_ms = 3000};
    memset(&r, 0, sizeof r);
    assert_int_equal(httpc_loop_async(l, &req, on_done, &r), 0);
    run_until(l, &r, 4000);
    assert_true(r.done);
    if (r.status != 200)
        fail_msg("status %ld: %s", r.status, r.error);
    assert_string_equal(r.body, "name");
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_chunked_in_pieces(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    p->answers[0] = "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    p->trickle = 1;
    peer_go(p);
    request(l, p, "GET", "/x", NULL, 5000, &r);
    run_until(l, &r, 6000);
    assert_true(r.done);
    if (r.status != 404)
        fail_msg("status %ld: %s", r.status, r.error);
    assert_string_equal(r.body, "hello world");
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_head_has_no_body(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    p->answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    p->answers[1] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    peer_go(p);
    request(l, p, "HEAD", "/x", NULL, 2000, &r);
    run_until(l, &r, 3000);
    assert_true(r.done);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    /* and the connection is still good for the next request */
    request(l, p, "GET", "/x", NULL, 2000, &r);
    run_until(l, &r, 3000);
    assert_string_equal(r.body, "ok");
    assert_int_equal(atomic_load(&p->accepts), 1);
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_body_until_close(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    p->answers[0] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it";
    p->close_after[0] = 1;
    peer_go(p);
    request(l, p, "GET", "/x", NULL, 2000, &r);
    run_until(l, &r, 3000);
    assert_true(r.done);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "all of it");
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_keepalive_reuses_one_connection(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    p->answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1";
    p->answers[1] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2";
    peer_go(p);
    request(l, p, "GET", "/1", NULL, 2000, &r);
    run_until(l, &r, 3000);
    assert_string_equal(r.body, "1");
    request(l, p, "GET", "/2", NULL, 2000, &r);
    run_until(l, &r, 3000);
    assert_string_equal(r.body, "2");
    assert_int_equal(atomic_load(&p->accepts), 1);
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_retry_once_when_server_closed_kept_connection(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    /* The server drops the connection after the first answer without
     * saying so; the second request goes out on it, dies unanswered, and
     * is sent again on a new connection. */
    p->answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1";
    p->close_after[0] = 1;
    p->answers[1] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2";
    peer_go(p);
    request(l, p, "POST", "/1", "x", 2000, &r);
    run_until(l, &r, 3000);
    assert_string_equal(r.body, "1");
    request(l, p, "POST", "/2", "y", 2000, &r);
    run_until(l, &r, 3000);
    assert_true(r.done);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "2");
    assert_int_equal(atomic_load(&p->accepts), 2);
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_refused_fails_from_the_loop(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    close(p->lfd); /* nobody listens on the port now */
    p->lfd = socket(AF_INET, SOCK_STREAM, 0);
    request(l, p, "GET", "/x", NULL, 2000, &r);
    run_until(l, &r, 3000);
    assert_true(r.done);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.error, "refused"));
    httpc_loop_free(l);
    close(p->lfd);
    free(p);
}

static void test_timeout(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    p->silent = 1;
    peer_go(p);
    int64_t t0 = (int64_t)clock_mono_ms();
    request(l, p, "GET", "/x", NULL, 200, &r);
    run_until(l, &r, 3000);
    int64_t took = (int64_t)clock_mono_ms() - t0;
    assert_true(r.done);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.error, "timed out"));
    assert_true(took >= 190 && took < 1500);
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_malformed_answer(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result r;
    p->answers[0] = "SMTP ready\r\n\r\n";
    peer_go(p);
    request(l, p, "GET", "/x", NULL, 2000, &r);
    run_until(l, &r, 3000);
    assert_true(r.done);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr(r.error, "malformed"));
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_bad_url_is_refused_at_once(void **state)
{
    (void)state;
    httpc_loop *l = httpc_loop_new();
    result r = {0};
    httpc_req req = {.url = "https://127.0.0.1/x"};
    assert_int_equal(httpc_loop_async(l, &req, on_done, &r), -1);
    req.url = "http://:80/x";
    assert_int_equal(httpc_loop_async(l, &req, on_done, &r), -1);
    assert_false(r.done);
    httpc_loop_free(l);
}

/* A loop with its own thread, fed from this one. */
typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    result r;
} waiter;

static void on_done_signal(httpc_resp *resp, void *ctx)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    on_done(resp, &w->r);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static void test_threaded_loop_from_another_thread(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_start();
    waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER};
    char url[128];
    uint64_t end = clock_mono_ms() + 3000;

    assert_int_equal(clock_cond_init(&w.cv), 0);

    p->answers[0] = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
    peer_go(p);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x", p->port);
    httpc_req req = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    pthread_mutex_lock(&w.mu);
    assert_int_equal(httpc_loop_async(l, &req, on_done_signal, &w), 0);
    for (uint64_t now; !w.r.done && (now = clock_mono_ms()) < end;)
        clock_cond_wait_ms(&w.cv, &w.mu, end - now);
    pthread_mutex_unlock(&w.mu);
    assert_true(w.r.done);
    assert_int_equal(w.r.status, 201);
    assert_string_equal(w.r.body, "ok");
    httpc_loop_stop(l);
    pthread_cond_destroy(&w.cv);
    peer_stop(p);
}

/* ---- connections reset while their events wait in one epoll batch ----
 * A server of our own, driven from the test's thread between loop runs, so
 * the test decides what each of two kept-alive connections sees and when. */

typedef struct duo {
    int lfd;
    uint16_t port;
    int sfd[2];                 /* the server's ends */
    int cfd[2];                 /* the client's ends (the loop's sockets) */
    result r[2];
} duo;

/* The socket of this process whose local address is the peer of sfd. */
static int duo_client_fd(int sfd)
{
    struct sockaddr_in peer_sa, sa;
    socklen_t sl = sizeof peer_sa;

    assert_int_equal(getpeername(sfd, (struct sockaddr *)&peer_sa, &sl), 0);
    for (int fd = 3; fd < 4096; fd++) {
        sl = sizeof sa;
        if (fd != sfd && getsockname(fd, (struct sockaddr *)&sa, &sl) == 0 &&
            sa.sin_family == AF_INET && sa.sin_port == peer_sa.sin_port &&
            sa.sin_addr.s_addr == peer_sa.sin_addr.s_addr)
            return fd;
    }
    fail_msg("no client socket for the server's connection");
    return -1;
}

/* Read from fd (nonblocking): 1 when a whole request, its head and its
 * Content-Length body, is in. */
static int duo_read_request(int fd, char *buf, size_t cap, size_t *len)
{
    ssize_t n = recv(fd, buf + *len, cap - *len - 1, MSG_DONTWAIT);
    const char *end, *cl;

    if (n > 0) {
        *len += (size_t)n;
        buf[*len] = '\0';
    }
    if ((end = strstr(buf, "\r\n\r\n")) == NULL)
        return 0;
    cl = strcasestr(buf, "Content-Length:");
    return *len >= (size_t)(end - buf) + 4 +
                       (size_t)(cl && cl < end ? strtol(cl + 15, NULL, 10) : 0);
}

/* Two requests at once on l: two connections, both answered with
 * keep-alive, so both end idle in the pool (and reused next time). */
static void duo_open(duo *d, httpc_loop *l)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof sa;
    char url[128], req[2][2048] = {{0}};
    size_t rlen[2] = {0, 0};
    int have = 0, heads = 0;
    int64_t end = (int64_t)clock_mono_ms() + 3000;

    memset(d, 0, sizeof *d);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(d->lfd >= 0);
    assert_int_equal(bind(d->lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(d->lfd, 16), 0);
    getsockname(d->lfd, (struct sockaddr *)&sa, &sl);
    d->port = ntohs(sa.sin_port);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x", d->port);
    for (int i = 0; i < 2; i++) {
        httpc_req hr = {.url = url, .timeout_ms = 3000};
        assert_int_equal(httpc_loop_async(l, &hr, on_done, &d->r[i]), 0);
    }
    while (heads < 2 && (int64_t)clock_mono_ms() < end) {
        struct pollfd pf = {.fd = httpc_loop_fd(l), .events = POLLIN};
        poll(&pf, 1, 10);
        httpc_loop_run(l);
        if (have < 2) {
            int fd = accept(d->lfd, NULL, NULL);
            if (fd >= 0)
                d->sfd[have++] = fd;
        }
        heads = 0;
        for (int i = 0; i < have; i++)
            heads += duo_read_request(d->sfd[i], req[i], sizeof req[i], &rlen[i]);
    }
    assert_int_equal(heads, 2);
    for (int i = 0; i < 2; i++) {
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_int_equal(send(d->sfd[i], ok, sizeof ok - 1, MSG_NOSIGNAL),
                         (ssize_t)(sizeof ok - 1));
        d->cfd[i] = duo_client_fd(d->sfd[i]);
    }
    run_until(l, &d->r[0], 3000);
    run_until(l, &d->r[1], 3000);
    assert_int_equal(d->r[0].status, 200);
    assert_int_equal(d->r[1].status, 200);
}

/* The server resets its end i (RST, not FIN: the client's next send then
 * fails at once), and the client's socket has seen it. */
static void duo_reset(duo *d, int i)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    struct pollfd pf = {.fd = d->cfd[i], .events = POLLIN};

    assert_int_equal(setsockopt(d->sfd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(d->sfd[i]);
    d->sfd[i] = -1;
    /* poll, not epoll: the loop's edge-triggered event stays pending. */
    assert_int_equal(poll(&pf, 1, 2000), 1);
    assert_true(pf.revents & (POLLERR | POLLHUP));
}

static void duo_close(duo *d)
{
    for (int i = 0; i < 2; i++)
        if (d->sfd[i] >= 0)
            close(d->sfd[i]);
    close(d->lfd);
}

/* Both idle connections reset; a request submitted before the next run
 * starts on one of them in that run (httpc_loop_start_pending), its send
 * fails, the retry takes the other and fails too: both connections are
 * closed while the run's epoll batch still holds an event for each. */
static void test_reset_idle_connections_then_request_same_run(void **state)
{
    duo d;
    result r = {0};
    char url[128];
    httpc_loop *l = httpc_loop_new();
    (void)state;

    duo_open(&d, l);
    duo_reset(&d, 0);
    duo_reset(&d, 1);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/y", d.port);
    httpc_req hr = {.url = url, .timeout_ms = 2000};
    assert_int_equal(httpc_loop_async(l, &hr, on_done, &r), 0);
    httpc_loop_run(l); /* a use-after-free here, before */
    run_until(l, &r, 3000);
    assert_true(r.done);
    assert_int_equal(r.status, 0); /* both tries died: one retry only */
    assert_non_null(strstr(r.error, "127.0.0.1"));
    httpc_loop_free(l);
    duo_close(&d);
}

/* The path of the finding: a request in flight on kept-alive connection A
 * and an idle B; the server resets A, then B. In one batch: A's event fails
 * the request, the retry goes to B, B's send fails and B is closed, then
 * B's own event in the same batch is handled. */
static void test_retry_closes_connection_with_event_in_same_batch(void **state)
{
    duo d;
    result r = {0};
    char url[128], req[2][2048] = {{0}};
    size_t rlen[2] = {0, 0};
    int got = -1;
    int64_t end;
    httpc_loop *l = httpc_loop_new();
    (void)state;

    duo_open(&d, l);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/y", d.port);
    httpc_req hr = {.url = url, .timeout_ms = 2000};
    assert_int_equal(httpc_loop_async(l, &hr, on_done, &r), 0);
    end = (int64_t)clock_mono_ms() + 3000;
    while (got < 0 && (int64_t)clock_mono_ms() < end) {
        httpc_loop_run(l);
        for (int i = 0; i < 2 && got < 0; i++)
            if (duo_read_request(d.sfd[i], req[i], sizeof req[i], &rlen[i]))
                got = i;
        if (got < 0) {
            struct pollfd pf[2] = {{.fd = d.sfd[0], .events = POLLIN},
                                   {.fd = d.sfd[1], .events = POLLIN}};
            poll(pf, 2, 10);
        }
    }
    assert_true(got >= 0);
    assert_false(r.done);
    duo_reset(&d, got);     /* A: the request's connection, first */
    duo_reset(&d, 1 - got); /* B: idle */
    httpc_loop_run(l); /* a use-after-free here, before */
    run_until(l, &r, 3000);
    assert_true(r.done);
    assert_int_equal(r.status, 0);
    httpc_loop_free(l);
    duo_close(&d);
}

/* ---- sub-request batches ---- */

/* Two GETs with subreq, submitted in one go: they wait for the same run. */
static void batch_pair(httpc_loop *l, peer *p, const char *a, const char *b,
                       result *ra, result *rb)
{
    const char *hdrs[] = {"Authorization: Bearer t", NULL};
    char ua[128], ub[128];
    snprintf(ua, sizeof ua, "http://127.0.0.1:%u%s", p->port, a);
    snprintf(ub, sizeof ub, "http://127.0.0.1:%u%s", p->port, b);
    httpc_req qa = {.url = ua, .headers = hdrs, .timeout_ms = 2000, .subreq = 1};
    httpc_req qb = {.url = ub, .headers = hdrs, .timeout_ms = 2000, .subreq = 1};
    memset(ra, 0, sizeof *ra);
    memset(rb, 0, sizeof *rb);
    assert_int_equal(httpc_loop_async(l, &qa, on_done, ra), 0);
    assert_int_equal(httpc_loop_async(l, &qb, on_done, rb), 0);
    assert_false(ra->done || rb->done);
    run_until(l, ra, 3000);
    run_until(l, rb, 3000);
    assert_true(ra->done && rb->done);
}

static void test_batch_answer_is_split(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    const char *vh[] = {"X-KV-Version: 9", NULL};
    wire_buf frames = {0};
    char *answer;
    size_t n;
    result ra, rb;

    assert_int_equal(subreq_put_response(&frames, 200, "application/octet-stream",
                                         vh, "apples", 6), 0);
    assert_int_equal(subreq_put_response(&frames, 404, "application/json", NULL,
                                         "{}", 2), 0);
    answer = malloc(256 + frames.len);
    n = (size_t)sprintf(answer, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                        "Content-Length: %zu\r\n\r\n", SUBREQ_CONTENT_TYPE,
                        frames.len);
    memcpy(answer + n, frames.data, frames.len);
    p->answers[0] = answer;
    p->answer_len[0] = n + frames.len;
    peer_go(p);
    batch_pair(l, p, "/internal/kv/a", "/internal/kv/b", &ra, &rb);
    /* one request went, carrying both, with the headers they share */
    assert_int_equal(atomic_load(&p->served), 1);
    assert_non_null(strstr(p->req[0], "POST " SUBREQ_PATH " HTTP/1.1\r\n"));
    assert_non_null(strstr(p->req[0], "\r\nAuthorization: Bearer t\r\n"));
    /* the frames (binary lengths: past the first NUL; the rest of req[0]
     * is zeroes) */
    assert_non_null(memmem(p->req[0], sizeof p->req[0], "GET /internal/kv/a\r\n"
                           "Authorization: Bearer t\r\n", 45));
    assert_non_null(memmem(p->req[0], sizeof p->req[0], "GET /internal/kv/b\r\n", 20));
    assert_int_equal(ra.status, 200);
    assert_string_equal(ra.body, "apples");
    assert_string_equal(ra.version, "9");
    assert_int_equal(rb.status, 404);
    assert_string_equal(rb.body, "{}");
    assert_string_equal(rb.version, "");
    httpc_loop_free(l);
    peer_stop(p);
    wire_buf_free(&frames);
    free(answer);
}

static void test_refused_batch_goes_one_by_one(void **state)
{
    (void)state;
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    result ra, rb;

    /* 404 to the batch; then each request alone, and for HTTPC_BATCH_OFF_MS
     * no batch to that server: two more go one by one too. One connection
     * at a time (the peer serves them in turn): each closes after one. */
    p->answers[0] = "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}";
    for (int i = 1; i <= 4; i++) {
        p->answers[i] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        p->close_after[i] = 1;
    }
    peer_go(p);
    batch_pair(l, p, "/internal/kv/a", "/internal/kv/b", &ra, &rb);
    assert_non_null(strstr(p->req[0], "POST " SUBREQ_PATH " "));
    assert_int_equal(ra.status, 200);
    assert_int_equal(rb.status, 200);
    assert_int_equal(atomic_load(&p->served), 3);
    for (int i = 1; i <= 2; i++)
        assert_true(strncmp(p->req[i], "GET /internal/kv/", 17) == 0);
    batch_pair(l, p, "/internal/kv/c", "/internal/kv/d", &ra, &rb);
    assert_int_equal(ra.status, 200);
    assert_int_equal(rb.status, 200);
    assert_int_equal(atomic_load(&p->served), 5);
    for (int i = 3; i <= 4; i++)
        assert_true(strncmp(p->req[i], "GET /internal/kv/", 17) == 0);
    httpc_loop_free(l);
    peer_stop(p);
}

static void test_batch_failure_is_every_answer(void **state)
{
    (void)state;
    result ra, rb;

    /* a 503 to the batch: each request's answer */
    peer *p = peer_start();
    httpc_loop *l = httpc_loop_new();
    p->answers[0] = "HTTP/1.1 503 Unavailable\r\nContent-Length: 4\r\n\r\nbusy";
    peer_go(p);
    batch_pair(l, p, "/x", "/y", &ra, &rb);
    assert_int_equal(ra.status, 503);
    assert_string_equal(ra.body, "busy");
    assert_int_equal(rb.status, 503);
    assert_string_equal(rb.body, "busy");
    assert_int_equal(atomic_load(&p->served), 1);
    httpc_loop_free(l);
    peer_stop(p);

    /* a 200 that is not a batch answer: every request failed */
    p = peer_start();
    l = httpc_loop_new();
    p->answers[0] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    "Content-Length: 2\r\n\r\nok";
    peer_go(p);
    batch_pair(l, p, "/x", "/y", &ra, &rb);
    assert_int_equal(ra.status, 0);
    assert_int_equal(rb.status, 0);
    assert_non_null(strstr(ra.error, "a malformed batch answer"));
    httpc_loop_free(l);
    peer_stop(p);
}

/* Submit a subreq GET for path on d's server (no run). */
static void duo_subreq(httpc_loop *l, duo *d, const char *path, result *r)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", d->port, path);
    httpc_req hr = {.url = url, .timeout_ms = 3000, .subreq = 1};
    memset(r, 0, sizeof *r);
    assert_int_equal(httpc_loop_async(l, &hr, on_done, r), 0);
}

/* Until one of d's connections has a whole request (3 s at most),
 * running l when run is set: its index, the head in out. */
static int duo_next_head(duo *d, httpc_loop *l, int run, char *out, size_t cap)
{
    size_t len[2] = {0, 0};
    char buf[2][4096] = {{0}};
    int64_t end = (int64_t)clock_mono_ms() + 3000;

    while ((int64_t)clock_mono_ms() < end) {
        struct pollfd pf[2] = {{.fd = d->sfd[0], .events = POLLIN},
                               {.fd = d->sfd[1], .events = POLLIN}};
        if (run)
            httpc_loop_run(l);
        for (int i = 0; i < 2; i++)
            if (duo_read_request(d->sfd[i], buf[i], sizeof buf[i], &len[i])) {
                memcpy(out, buf[i], len[i] < cap ? len[i] : cap);
                return i;
            }
        poll(pf, 2, 10);
    }
    fail_msg("no request reached the server");
    return -1;
}

/* Nagle's rule with a bound (lib/httpc_batch.h): a request that finds
 * nothing out to its server goes at once, alone; what comes while it is
 * out waits for its answer and then goes together; and once
 * HTTPC_BATCH_HOLD_US passed, a slow answer holds nothing up. */
static void test_batch_waits_for_the_answer_out(void **state)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    duo d;
    result ra, rb, rc;
    char head[4096];
    int i, held;
    uint64_t t0;
    httpc_loop *l = httpc_loop_new();
    (void)state;

    duo_open(&d, l);
    duo_subreq(l, &d, "/a", &ra);
    t0 = clock_mono_us();
    httpc_loop_run(l);           /* a leaves */
    duo_subreq(l, &d, "/b", &rb);
    httpc_loop_run(l);           /* b waits for a's answer */
    duo_subreq(l, &d, "/c", &rc);
    httpc_loop_run(l);
    held = clock_mono_us() - t0 < HTTPC_BATCH_HOLD_US;
    memset(head, 0, sizeof head);
    i = duo_next_head(&d, l, 0, head, sizeof head - 1); /* a, sent in its run */
    assert_true(strncmp(head, "GET /a HTTP/1.1\r\n", 17) == 0);
    assert_false(rb.done || rc.done);
    assert_int_equal(send(d.sfd[i], ok, sizeof ok - 1, MSG_NOSIGNAL),
                     (ssize_t)(sizeof ok - 1));
    run_until(l, &ra, 3000);
    assert_int_equal(ra.status, 200);
    memset(head, 0, sizeof head);
    duo_next_head(&d, l, 1, head, sizeof head - 1);
    if (held) { /* the runs above took less than the hold (not under a debugger) */
        assert_true(strncmp(head, "POST " SUBREQ_PATH " ", 6 + strlen(SUBREQ_PATH)) == 0);
        assert_non_null(memmem(head, sizeof head, "GET /b\r\n", 8));
        assert_non_null(memmem(head, sizeof head, "GET /c\r\n", 8));
    } else {
        print_message("the runs took longer than the hold: not checked\n");
    }
    httpc_loop_free(l); /* b and c fail: the loop is stopping */
    assert_true(rb.done && rc.done);
    duo_close(&d);

    /* a is not answered: past the hold, d goes on the other connection */
    l = httpc_loop_new();
    duo_open(&d, l);
    duo_subreq(l, &d, "/a", &ra);
    memset(head, 0, sizeof head);
    i = duo_next_head(&d, l, 1, head, sizeof head - 1);
    assert_true(strncmp(head, "GET /a ", 7) == 0);
    usleep(3 * HTTPC_BATCH_HOLD_US);
    duo_subreq(l, &d, "/d", &rb);
    memset(head, 0, sizeof head);
    assert_int_equal(duo_next_head(&d, l, 1, head, sizeof head - 1), 1 - i);
    assert_true(strncmp(head, "GET /d ", 7) == 0);
    assert_false(ra.done);
    httpc_loop_free(l);
    duo_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length_and_request_shape),
        cmocka_unit_test(test_host_name_waits_for_its_address),
        cmocka_unit_test(test_chunked_in_pieces),
        cmocka_unit_test(test_head_has_no_body),
        cmocka_unit_test(test_body_until_close),
        cmocka_unit_test(test_keepalive_reuses_one_connection),
        cmocka_unit_test(test_retry_once_when_server_closed_kept_connection),
        cmocka_unit_test(test_refused_fails_from_the_loop),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_malformed_answer),
        cmocka_unit_test(test_bad_url_is_refused_at_once),
        cmocka_unit_test(test_threaded_loop_from_another_thread),
        cmocka_unit_test(test_reset_idle_connections_then_request_same_run),
        cmocka_unit_test(test_retry_closes_connection_with_event_in_same_batch),
        cmocka_unit_test(test_batch_answer_is_split),
        cmocka_unit_test(test_refused_batch_goes_one_by_one),
        cmocka_unit_test(test_batch_failure_is_every_answer),
        cmocka_unit_test(test_batch_waits_for_the_answer_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
