/* Unit tests for lib/resolve: literals bypass the cache, a name's first
 * answer comes from the resolver thread (notify, then an answer from the
 * cache), a name that does not resolve fails within the wait, and a
 * cancelled notify is never called. Names used: "localhost" and "vm" from
 * /etc/hosts where present, and a .invalid name (RFC 2606: never exists). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "resolve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static void test_literals(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    socklen_t len;
    char ip[64], err[128];

    assert_true(resolve_literal("10.1.2.3", 7001, &a, &len));
    assert_int_equal(a.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&a)->sin_port), 7001);
    resolve_ntop(&a, ip, sizeof ip);
    assert_string_equal(ip, "10.1.2.3");
    assert_true(resolve_literal("::1", 80, &a, &len));
    assert_int_equal(a.ss_family, AF_INET6);
    assert_false(resolve_literal("store-0-0", 80, &a, &len));
    /* and lookups of literals answer at once */
    assert_int_equal(resolve_lookup("127.0.0.1", 9, &a, &len, NULL, NULL, err,
                                    sizeof err), RESOLVE_OK);
}

static _Atomic int notified;

static void on_resolved(void *arg)
{
    (void)arg;
    atomic_fetch_add(&notified, 1);
}

static void test_first_answer_notifies_then_comes_from_cache(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    socklen_t len;
    char err[200];
    int rc = resolve_lookup("localhost", 8123, &a, &len, on_resolved, NULL, err,
                            sizeof err);
    int64_t end = (int64_t)clock_mono_ms() + 5000;

    /* Nothing has looked localhost up in this process yet. */
    assert_int_equal(rc, RESOLVE_PENDING);
    while (atomic_load(&notified) == 0 && (int64_t)clock_mono_ms() < end)
        usleep(5000);
    assert_int_equal(atomic_load(&notified), 1);
    rc = resolve_lookup("localhost", 8123, &a, &len, on_resolved, NULL, err,
                        sizeof err);
    assert_int_equal(rc, RESOLVE_OK);
    assert_true(a.ss_family == AF_INET || a.ss_family == AF_INET6);
    if (a.ss_family == AF_INET)
        assert_int_equal(ntohs(((struct sockaddr_in *)&a)->sin_port), 8123);
}

static void test_unknown_name_fails_within_the_wait(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    socklen_t len;
    char err[200] = "";
    int64_t t0 = (int64_t)clock_mono_ms();
    int rc = resolve_wait("no-such-host.invalid", 80, &a, &len, 800, err, sizeof err);
    int64_t took = (int64_t)clock_mono_ms() - t0;

    assert_int_equal(rc, RESOLVE_FAILED);
    assert_true(strlen(err) > 0);
    assert_true(took < 1500);
}

static void test_cancelled_notify_is_not_called(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    socklen_t len;
    char err[200];
    /* The thread may answer before the cancel; never after it returned. */
    resolve_lookup("vm", 80, &a, &len, on_resolved, (void *)1, err, sizeof err);
    resolve_cancel(on_resolved, (void *)1);
    int after_cancel = atomic_load(&notified);
    usleep(300 * 1000);
    assert_int_equal(atomic_load(&notified), after_cancel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literals),
        cmocka_unit_test(test_first_answer_notifies_then_comes_from_cache),
        cmocka_unit_test(test_unknown_name_fails_within_the_wait),
        cmocka_unit_test(test_cancelled_notify_is_not_called),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
