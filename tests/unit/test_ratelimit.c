/* Unit tests for lib/ratelimit: sliding-window and fixed-window limiters.
 * Every check passes an explicit now_ms; nothing sleeps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>

#include "ratelimit.h"
#include "clock.h"

#define W 1000 /* window, ms */

/* Requests of one client at one instant until the first denial; returns how
 * many were allowed (stops at cap). */
static unsigned burst(ratelimit_t *rl, const char *client, uint64_t now,
                      unsigned cap, ratelimit_verdict *last)
{
    unsigned n = 0;
    ratelimit_verdict v;
    while (n < cap) {
        v = ratelimit_check(rl, client, now);
        if (last)
            *last = v;
        if (!v.allowed)
            break;
        n++;
    }
    return n;
}

/* ---- sliding window ---------------------------------------------------- */

static void test_sliding_fresh_window(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(RATELIMIT_SLIDING, 10, W, 1000);
    ratelimit_verdict v;

    assert_non_null(rl);
    /* exactly `limit` pass, remaining counts down to 0 */
    for (unsigned i = 0; i < 10; i++) {
        v = ratelimit_check(rl, "alice", 10000 + i);
        assert_true(v.allowed);
        assert_int_equal(v.limit, 10);
        assert_int_equal(v.remaining, 9 - i);
    }
    v = ratelimit_check(rl, "alice", 10010);
    assert_false(v.allowed);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.limit, 10);
    assert_true(v.retry_after_ms > 0);
    /* denials do not consume budget and keep being denied */
    v = ratelimit_check(rl, "alice", 10500);
    assert_false(v.allowed);

    /* a client first seen in the middle of a window gets the full budget */
    assert_int_equal(burst(rl, "bob", 10500, 100, &v), 10);
    assert_false(v.allowed);

    ratelimit_stats st;
    ratelimit_get_stats(rl, &st);
    assert_int_equal(st.allowed, 20);
    assert_int_equal(st.denied, 3);
    assert_int_equal(st.clients, 2);
    ratelimit_free(rl);
}

/* retry_after_ms is when a request would pass: it does at now + retry_after,
 * and it would not have well before. Each probe replays the history on a new
 * limiter, because an allowed probe changes the state. */
static ratelimit_t *sliding_exhausted(uint64_t at, ratelimit_verdict *denial)
{
    ratelimit_t *rl = ratelimit_new(RATELIMIT_SLIDING, 10, W, 1000);
    assert_non_null(rl);
    assert_int_equal(burst(rl, "c", at, 100, denial), 10);
    assert_false(denial->allowed);
    return rl;
}

static void test_sliding_retry_after(void **state)
{
    (void)state;
    static const uint64_t starts[] = {10000, 10400, 10999};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        ratelimit_verdict d;
        ratelimit_t *rl = sliding_exhausted(starts[i], &d);
        uint64_t when = starts[i] + d.retry_after_ms;
        ratelimit_free(rl);

        rl = sliding_exhausted(starts[i], &d);
        ratelimit_verdict v = ratelimit_check(rl, "c", when);
        if (!v.allowed)
            fail_msg("exhausted at %llu, retry_after %llu: still denied at %llu",
                     (unsigned long long)starts[i],
                     (unsigned long long)d.retry_after_ms,
                     (unsigned long long)when);
        ratelimit_free(rl);

        /* 5 % of a window before the promised time it is still denied */
        rl = sliding_exhausted(starts[i], &d);
        v = ratelimit_check(rl, "c", when - W / 20);
        if (v.allowed)
            fail_msg("exhausted at %llu: retry_after %llu is too long, allowed "
                     "at %llu",
                     (unsigned long long)starts[i],
                     (unsigned long long)d.retry_after_ms,
                     (unsigned long long)(when - W / 20));
        ratelimit_free(rl);
    }
    /* The worked case: 10 at the start of window [10000, 11000). In the next
     * window the estimate is 10 * (1000 - t) / 1000 + 1 <= 10 from t = 100,
     * so the first pass is at 11100 (+/- rounding). */
    ratelimit_verdict d;
    ratelimit_t *rl = sliding_exhausted(10000, &d);
    assert_in_range(d.retry_after_ms, 1099, 1102);
    assert_false(ratelimit_check(rl, "c", 11098).allowed);
    ratelimit_free(rl);
}

static void test_sliding_decay(void **state)
{
    (void)state;
    ratelimit_t *rl;

    /* 100 in window [10000, 11000); at the start of the next window the
     * previous one still counts fully */
    rl = ratelimit_new(RATELIMIT_SLIDING, 100, W, 1000);
    assert_int_equal(burst(rl, "c", 10000, 1000, NULL), 100);
    assert_int_equal(burst(rl, "c", 11000, 1000, NULL), 0);
    ratelimit_free(rl);

    /* half-way through the next window, half of it still counts */
    rl = ratelimit_new(RATELIMIT_SLIDING, 100, W, 1000);
    assert_int_equal(burst(rl, "c", 10000, 1000, NULL), 100);
    unsigned half = burst(rl, "c", 11500, 1000, NULL);
    if (half < 45 || half > 55)
        fail_msg("half-way into the next window %u of 100 passed", half);
    ratelimit_free(rl);

    /* a quarter of the way: about a quarter of the budget */
    rl = ratelimit_new(RATELIMIT_SLIDING, 100, W, 1000);
    assert_int_equal(burst(rl, "c", 10000, 1000, NULL), 100);
    unsigned quarter = burst(rl, "c", 11250, 1000, NULL);
    if (quarter < 20 || quarter > 30)
        fail_msg("a quarter into the next window %u of 100 passed", quarter);
    ratelimit_free(rl);

    /* nearly the whole window later: nearly the whole budget */
    rl = ratelimit_new(RATELIMIT_SLIDING, 100, W, 1000);
    assert_int_equal(burst(rl, "c", 10000, 1000, NULL), 100);
    assert_in_range(burst(rl, "c", 11990, 1000, NULL), 98, 99);
    ratelimit_free(rl);

    /* a window with no traffic in between: the old one no longer counts */
    rl = ratelimit_new(RATELIMIT_SLIDING, 100, W, 1000);
    assert_int_equal(burst(rl, "c", 10000, 1000, NULL), 100);
    assert_int_equal(burst(rl, "c", 12000, 1000, NULL), 100);
    assert_int_equal(burst(rl, "c", 14500, 1000, NULL), 100);
    ratelimit_free(rl);

    /* a steady rate below the limit is never denied (8 per second against a
     * limit of 10; exactly at the limit the estimate's assumption that the
     * previous window's requests were spread evenly may deny one) */
    rl = ratelimit_new(RATELIMIT_SLIDING, 10, W, 1000);
    for (uint64_t t = 20000; t < 30000; t += 125) {
        ratelimit_verdict v = ratelimit_check(rl, "steady", t);
        if (!v.allowed)
            fail_msg("steady 8/s denied at %llu", (unsigned long long)t);
    }
    ratelimit_free(rl);

    /* twice the limit, steadily, for 10 s: about limit x 10 s pass */
    rl = ratelimit_new(RATELIMIT_SLIDING, 10, W, 1000);
    unsigned passed = 0;
    for (uint64_t t = 20000; t < 30000; t += 50)
        passed += ratelimit_check(rl, "flood", t).allowed ? 1 : 0;
    if (passed < 90 || passed > 110)
        fail_msg("20/s for 10 s against 10/s: %u passed", passed);
    ratelimit_free(rl);
}

static void test_sliding_clients_independent(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(RATELIMIT_SLIDING, 5, W, 1000);
    char name[32];

    assert_int_equal(burst(rl, "10.0.0.1", 10000, 100, NULL), 5);
    assert_false(ratelimit_check(rl, "10.0.0.1", 10001).allowed);
    for (int i = 2; i < 50; i++) {
        snprintf(name, sizeof name, "10.0.0.%d", i);
        assert_int_equal(burst(rl, name, 10002, 100, NULL), 5);
    }
    /* a client's name is its whole string, not a prefix */
    assert_int_equal(burst(rl, "10.0.0.1 ", 10003, 100, NULL), 5);
    assert_int_equal(burst(rl, "10.0.0.", 10003, 100, NULL), 5);
    ratelimit_free(rl);
}

/* ---- fixed window (CloudCart gateway) ---------------------------------- */

static void test_fixed_window(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(RATELIMIT_FIXED, 5, W, 1000);
    ratelimit_verdict v;

    assert_non_null(rl);
    /* the window starts at the first request, 10900, not at a multiple of
     * the window */
    for (unsigned i = 0; i < 5; i++) {
        v = ratelimit_check(rl, "c", 10900 + i);
        assert_true(v.allowed);
        assert_int_equal(v.remaining, 4 - i);
        assert_int_equal(v.reset_ms, 1000 - i);
    }
    v = ratelimit_check(rl, "c", 10905);
    assert_false(v.allowed);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.retry_after_ms, 995);
    assert_int_equal(v.reset_ms, 995);
    /* an aligned boundary (11000) changes nothing */
    assert_false(ratelimit_check(rl, "c", 11000).allowed);
    /* one millisecond before first + window: still denied */
    v = ratelimit_check(rl, "c", 11899);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_ms, 1);
    /* exactly at first + window the counter resets */
    v = ratelimit_check(rl, "c", 11900);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 4);
    assert_int_equal(v.reset_ms, 1000);
    /* and that request opened the new window [11900, 12900) */
    assert_int_equal(burst(rl, "c", 12000, 100, NULL), 4);
    assert_false(ratelimit_check(rl, "c", 12899).allowed);
    assert_int_equal(burst(rl, "c", 12900, 100, NULL), 5);

    /* a new burst long after the window passed is allowed again */
    assert_int_equal(burst(rl, "c", 50000, 100, &v), 5);
    assert_false(v.allowed);
    assert_int_equal(v.retry_after_ms, 1000);
    assert_int_equal(ratelimit_retry_after_s(&v), 1);

    /* another client's window starts at its own first request */
    assert_int_equal(burst(rl, "d", 50500, 100, NULL), 5);
    assert_true(ratelimit_check(rl, "c", 51000).allowed);
    assert_false(ratelimit_check(rl, "d", 51000).allowed);
    assert_true(ratelimit_check(rl, "d", 51500).allowed);
    ratelimit_free(rl);
}

/* ---- common -------------------------------------------------------------- */

static void test_retry_after_seconds(void **state)
{
    (void)state;
    ratelimit_verdict v = {0};
    static const struct {
        uint64_t ms;
        unsigned s;
    } cases[] = {{0, 1}, {1, 1}, {999, 1}, {1000, 1}, {1001, 2}, {59500, 60}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        v.retry_after_ms = cases[i].ms;
        assert_int_equal(ratelimit_retry_after_s(&v), cases[i].s);
    }
}

static void test_bad_args(void **state)
{
    (void)state;
    assert_null(ratelimit_new(RATELIMIT_SLIDING, 10, 0, 100));
    ratelimit_free(NULL);
    uint64_t a = clock_mono_ms(), b = clock_mono_ms();
    assert_true(b >= a);
}

/* More distinct clients than max_clients, all active in one window: no
 * crash, the table stays at the cap, and the extra clients are limited
 * (they share an overflow verdict) rather than unlimited. */
static void test_max_clients_cap(void **state)
{
    (void)state;
    const size_t cap = 1000;
    ratelimit_t *rl = ratelimit_new(RATELIMIT_SLIDING, 2, W, cap);
    char name[32];
    ratelimit_stats st;

    for (int i = 0; i < 100000; i++) {
        snprintf(name, sizeof name, "client-%d", i);
        ratelimit_check(rl, name, 10000);
    }
    ratelimit_get_stats(rl, &st);
    ratelimit_free(rl); /* before any assertion, so a failure leaks nothing */
    if (st.clients > cap)
        fail_msg("%zu clients tracked, max_clients is %zu", st.clients, cap);
    /* 100 000 clients, limit 2 each: unlimited would allow all of them */
    assert_true(st.denied > 50000);
}

/* Clients coming and going over many windows: idle entries are recycled,
 * so the table stays bounded and new clients keep being tracked. */
static void test_max_clients_churn(void **state)
{
    (void)state;
    const size_t cap = 640;
    ratelimit_t *rl = ratelimit_new(RATELIMIT_FIXED, 3, W, cap);
    char name[32];
    ratelimit_stats st;
    uint64_t now = 10000;

    for (int i = 0; i < 200000; i++) {
        if (i % 100 == 0)
            now += 100; /* 100 new clients every 100 ms: 1000 per window */
        snprintf(name, sizeof name, "c%d", i);
        ratelimit_check(rl, name, now);
    }
    ratelimit_get_stats(rl, &st);
    assert_true(st.clients <= cap + cap / 10);
    /* after the churn, a new client three windows later is tracked alone:
     * it gets its own full budget */
    now += 3 * W;
    assert_int_equal(burst(rl, "late", now, 100, NULL), 3);
    ratelimit_free(rl);
}

/* Many threads on one client at one instant: exactly `limit` pass. */
#define NT 4
struct thr {
    ratelimit_t *rl;
    unsigned allowed;
};

static void *thr_run(void *arg)
{
    struct thr *t = arg;
    for (int i = 0; i < 5000; i++)
        t->allowed += ratelimit_check(t->rl, "shared", 10000).allowed ? 1 : 0;
    return NULL;
}

static void test_threads_one_client(void **state)
{
    (void)state;
    ratelimit_t *rl = ratelimit_new(RATELIMIT_SLIDING, 1000, W, 1000);
    pthread_t tid[NT];
    struct thr t[NT];
    int started = 0;
    unsigned total = 0;

    for (int i = 0; i < NT; i++) {
        t[i].rl = rl;
        t[i].allowed = 0;
        started += pthread_create(&tid[i], NULL, thr_run, &t[i]) == 0;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        total += t[i].allowed;
    }
    assert_int_equal(started, NT);
    assert_int_equal(total, 1000);
    ratelimit_stats st;
    ratelimit_get_stats(rl, &st);
    assert_int_equal(st.allowed, 1000);
    assert_int_equal(st.denied, NT * 5000 - 1000);
    ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sliding_fresh_window),
        cmocka_unit_test(test_sliding_retry_after),
        cmocka_unit_test(test_sliding_decay),
        cmocka_unit_test(test_sliding_clients_independent),
        cmocka_unit_test(test_fixed_window),
        cmocka_unit_test(test_retry_after_seconds),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_max_clients_cap),
        cmocka_unit_test(test_max_clients_churn),
        cmocka_unit_test(test_threads_one_client),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
