/* Unit tests for lib/httpd_conns: the per-address and total limits close the
 * oldest idle connection (of the same address first), never a busy one; a
 * new connection is refused only when every counted one is busy; the sweep
 * closes connections that sent no head in time and spares those that did.
 * "Closed" is seen the way the server's loop sees it: the socket pair's
 * other end reads the end of the stream after shutdown(2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "httpd_conns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 8

typedef struct conn {
    int fd[2];                 /* [0] the server's end, [1] the client's */
    httpd_conns_slot *slot;
} conn;

static struct sockaddr_in from(const char *ip)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &sa.sin_addr);
    return sa;
}

static void conn_open(httpd_conns *t, conn *c, const char *ip)
{
    struct sockaddr_in sa = from(ip);

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c->fd), 0);
    fcntl(c->fd[1], F_SETFL, O_NONBLOCK);
    c->slot = httpd_conns_open(t, c->fd[0], (struct sockaddr *)&sa);
}

/* The server shut its end down: the client reads the end of the stream. */
static int conn_shut(const conn *c)
{
    char b;
    return read(c->fd[1], &b, 1) == 0;
}

static void conn_close(httpd_conns *t, conn *c)
{
    httpd_conns_close(t, c->slot);
    close(c->fd[0]);
    close(c->fd[1]);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_httpd_conns_per_address_evicts_own_oldest(void **state)
{
    httpd_conns *t = httpd_conns_new(100, 3, 0);
    conn a[4], other;
    httpd_conns_stats st;
    (void)state;

    conn_open(t, &other, "10.0.0.9");
    httpd_conns_busy(t, other.slot, 1);
    httpd_conns_busy(t, other.slot, 0); /* idle, and the oldest of all */
    for (int i = 0; i < 3; i++) {
        conn_open(t, &a[i], "10.0.0.1");
        assert_non_null(a[i].slot);
        sleep_ms(2); /* distinct ages */
    }
    conn_open(t, &a[3], "10.0.0.1");
    assert_non_null(a[3].slot);
    assert_true(conn_shut(&a[0]));   /* its own oldest */
    assert_false(conn_shut(&a[1]));
    assert_false(conn_shut(&other)); /* not another address's */
    httpd_conns_get_stats(t, &st);
    assert_int_equal(st.open, 4);
    assert_int_equal(st.evicted, 1);
    for (int i = 0; i < 4; i++)
        conn_close(t, &a[i]);
    conn_close(t, &other);
    httpd_conns_get_stats(t, &st);
    assert_int_equal(st.open, 0);
    httpd_conns_free(t);
}

static void test_httpd_conns_busy_ones_are_never_closed(void **state)
{
    httpd_conns *t = httpd_conns_new(N, N, 0);
    conn c[N + 1];
    httpd_conns_stats st;
    (void)state;

    for (int i = 0; i < N; i++) {
        conn_open(t, &c[i], i % 2 ? "10.0.0.1" : "10.0.0.2");
        httpd_conns_busy(t, c[i].slot, 1);
    }
    conn_open(t, &c[N], "10.0.0.3");
    assert_null(c[N].slot);          /* all busy: refused */
    assert_true(conn_shut(&c[N]));
    for (int i = 0; i < N; i++)
        assert_false(conn_shut(&c[i]));
    /* One answered: it is idle now, and goes for the next newcomer. */
    httpd_conns_busy(t, c[5].slot, 0);
    conn_close(t, &c[N]);
    conn_open(t, &c[N], "10.0.0.3");
    assert_non_null(c[N].slot);
    assert_true(conn_shut(&c[5]));
    httpd_conns_get_stats(t, &st);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.open, N);
    for (int i = 0; i <= N; i++)
        conn_close(t, &c[i]);
    httpd_conns_free(t);
}

static void test_httpd_conns_total_evicts_oldest_idle(void **state)
{
    httpd_conns *t = httpd_conns_new(4, 4, 0);
    conn c[5];
    (void)state;

    for (int i = 0; i < 4; i++) {
        conn_open(t, &c[i], "10.0.1.1");
        sleep_ms(2);
    }
    httpd_conns_busy(t, c[0].slot, 1); /* the oldest is busy: spared */
    conn_open(t, &c[4], "10.0.2.2");
    assert_non_null(c[4].slot);
    assert_false(conn_shut(&c[0]));
    assert_true(conn_shut(&c[1]));
    assert_false(conn_shut(&c[2]));
    for (int i = 0; i < 5; i++)
        conn_close(t, &c[i]);
    httpd_conns_free(t);
}

static void test_httpd_conns_sweep_cuts_late_heads(void **state)
{
    httpd_conns *t = httpd_conns_new(16, 16, 50);
    conn silent, asked, answered;
    httpd_conns_stats st;
    (void)state;

    conn_open(t, &silent, "10.0.0.1");
    conn_open(t, &asked, "10.0.0.1");
    conn_open(t, &answered, "10.0.0.1");
    httpd_conns_busy(t, asked.slot, 1);
    httpd_conns_busy(t, answered.slot, 1);
    httpd_conns_busy(t, answered.slot, 0);
    httpd_conns_sweep(t);
    assert_false(conn_shut(&silent)); /* not late yet */
    sleep_ms(160);                    /* past 50 ms, and past a sweep period */
    httpd_conns_sweep(t);
    assert_true(conn_shut(&silent));
    assert_false(conn_shut(&asked));
    assert_false(conn_shut(&answered));
    httpd_conns_get_stats(t, &st);
    assert_int_equal(st.head_timeouts, 1);
    assert_int_equal(st.open, 2);
    conn_close(t, &silent);
    conn_close(t, &asked);
    conn_close(t, &answered);
    httpd_conns_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_httpd_conns_per_address_evicts_own_oldest),
        cmocka_unit_test(test_httpd_conns_busy_ones_are_never_closed),
        cmocka_unit_test(test_httpd_conns_total_evicts_oldest_idle),
        cmocka_unit_test(test_httpd_conns_sweep_cuts_late_heads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
