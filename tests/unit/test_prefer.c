/* Unit tests for lib/prefer: the wait of a Prefer header, whole and decimal
 * seconds, the cap (even past 2^64 ms), other preferences around it, and
 * every malformed value (finding 8 of issue 11: wait=1e17 or inf was an
 * undefined float cast that ended in no wait). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "prefer.h"

#define MAX 30000u

static uint64_t ok(const char *h)
{
    uint64_t ms = 12345;

    assert_int_equal(prefer_wait_ms(h, MAX, &ms), 0);
    return ms;
}

static void bad(const char *h)
{
    uint64_t ms = 777;

    assert_int_equal(prefer_wait_ms(h, MAX, &ms), -1);
    assert_int_equal(ms, 777);
}

static void test_prefer_none(void **state)
{
    (void)state;
    assert_int_equal(ok(NULL), 0);
    assert_int_equal(ok(""), 0);
    assert_int_equal(ok("respond-async"), 0);
    assert_int_equal(ok("nowait=5"), 0);    /* not the wait preference */
}

static void test_prefer_seconds(void **state)
{
    (void)state;
    assert_int_equal(ok("wait=0"), 0);
    assert_int_equal(ok("wait=5"), 5000);
    assert_int_equal(ok("wait=0.5"), 500);
    assert_int_equal(ok("wait=1.25"), 1250);
    assert_int_equal(ok("wait=2.0019"), 2001); /* ms precision */
    assert_int_equal(ok("respond-async, wait=3"), 3000);
    assert_int_equal(ok("wait=4, handling=strict"), 4000);
    assert_int_equal(ok("wait=4;x=1"), 4000);
}

static void test_prefer_capped(void **state)
{
    (void)state;
    assert_int_equal(ok("wait=30"), MAX);
    assert_int_equal(ok("wait=31"), MAX);
    assert_int_equal(ok("wait=100000000000000000"), MAX); /* 1e17 s */
    assert_int_equal(ok("wait=18446744073709551615"), MAX);
    assert_int_equal(ok("wait=18446744073709551616"), MAX);
    assert_int_equal(ok("wait=99999999999999999999999999999.9"), MAX);
    uint64_t ms;
    assert_int_equal(prefer_wait_ms("wait=9", UINT64_MAX, &ms), 0);
    assert_int_equal(ms, 9000);
}

static void test_prefer_malformed(void **state)
{
    (void)state;
    bad("wait=");
    bad("wait=1e17");
    bad("wait=inf");
    bad("wait=INF");
    bad("wait=nan");
    bad("wait=-1");
    bad("wait=+1");
    bad("wait=0x10");
    bad("wait=.5");
    bad("wait=5.");
    bad("wait=5s");
    bad("wait=\"5\"");
    bad("wait= 5");
    bad("respond-async, wait=abc");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefer_none),
        cmocka_unit_test(test_prefer_seconds),
        cmocka_unit_test(test_prefer_capped),
        cmocka_unit_test(test_prefer_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
