/* Unit tests for lib/hlc: strictly increasing 53-bit versions under a clock
 * that stands still or goes backwards, observe(), and uniqueness across
 * threads. A fake clock drives every test but the threaded one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>

#include "hlc.h"

/* 2024-06-01T00:00:00Z in microseconds since the Unix epoch. */
#define T0 1717200000000000ULL
#define SEC 1000000ULL

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

static void test_physical_part(void **state)
{
    (void)state;
    hlc_t h;

    fake_now = T0;
    hlc_init(&h, fake_clock);
    /* a fresh clock hands out the physical time since 2020-01-01 */
    assert_int_equal(hlc_next(&h), T0 - HLC_EPOCH_UNIX_US);
    fake_now = T0 + 5;
    assert_int_equal(hlc_next(&h), T0 + 5 - HLC_EPOCH_UNIX_US);
}

static void test_clock_stands_still(void **state)
{
    (void)state;
    hlc_t h;
    uint64_t prev;

    fake_now = T0;
    hlc_init(&h, fake_clock);
    prev = hlc_next(&h);
    for (int i = 0; i < 100000; i++) {
        uint64_t v = hlc_next(&h);
        if (v <= prev)
            fail_msg("call %d: %llu after %llu", i, (unsigned long long)v,
                     (unsigned long long)prev);
        assert_true(v <= HLC_MAX);
        prev = v;
    }
    /* Once the wall clock passes the logical bumps, it takes over again. */
    fake_now = T0 + 10 * SEC;
    assert_int_equal(hlc_next(&h), T0 + 10 * SEC - HLC_EPOCH_UNIX_US);
}

static void test_clock_goes_backwards(void **state)
{
    (void)state;
    hlc_t h;
    uint64_t prev = 0, top;

    fake_now = T0;
    hlc_init(&h, fake_clock);
    for (int i = 0; i < 1000; i++) {
        fake_now += 3; /* normal progress */
        uint64_t v = hlc_next(&h);
        assert_true(v > prev);
        prev = v;
    }
    top = prev;
    /* NTP steps the clock back 5 s; it keeps crawling forward from there. */
    fake_now -= 5 * SEC;
    for (int i = 0; i < 1000; i++) {
        fake_now += 7;
        uint64_t v = hlc_next(&h);
        if (v <= prev)
            fail_msg("after the clock stepped back: %llu after %llu",
                     (unsigned long long)v, (unsigned long long)prev);
        prev = v;
    }
    /* logical bumps only: one per call past the top */
    assert_int_equal(prev, top + 1000);
    /* Another, bigger step back (an hour), then a step past everything. */
    fake_now -= 3600 * SEC;
    assert_true(hlc_next(&h) > prev);
    prev++;
    fake_now = T0 + 60 * SEC;
    uint64_t v = hlc_next(&h);
    assert_true(v > prev);
    assert_int_equal(v, T0 + 60 * SEC - HLC_EPOCH_UNIX_US);
}

static void test_clock_before_epoch(void **state)
{
    (void)state;
    hlc_t h;

    fake_now = 1000; /* 1970: a broken clock must still give versions > 0 */
    hlc_init(&h, fake_clock);
    uint64_t a = hlc_next(&h), b = hlc_next(&h);
    assert_true(a > 0);
    assert_true(b > a);
    assert_true(b <= HLC_MAX);
}

static void test_observe(void **state)
{
    (void)state;
    hlc_t h;

    fake_now = T0;
    hlc_init(&h, fake_clock);
    uint64_t mine = hlc_next(&h);
    /* a peer 30 s ahead of us */
    uint64_t theirs = T0 + 30 * SEC - HLC_EPOCH_UNIX_US;
    hlc_observe(&h, theirs);
    uint64_t v = hlc_next(&h);
    assert_true(v > theirs);
    assert_true(v > mine);
    assert_int_equal(v, theirs + 1);

    /* observing an older version changes nothing */
    hlc_observe(&h, mine);
    hlc_observe(&h, 0);
    uint64_t w = hlc_next(&h);
    assert_int_equal(w, v + 1);

    /* observing right below the ceiling still yields a valid version */
    hlc_init(&h, fake_clock);
    hlc_observe(&h, HLC_MAX - 1);
    v = hlc_next(&h);
    assert_true(v > HLC_MAX - 1);
    assert_true(v <= HLC_MAX);
}

/* A version beyond 53 bits is not one this system hands out (a corrupt
 * record or a buggy peer). It must not make the clock hand out versions
 * above HLC_MAX, nor versions that go backwards (masking to 53 bits wraps
 * to tiny numbers that then lose every last-writer-wins comparison). */
static void test_observe_out_of_range(void **state)
{
    (void)state;
    hlc_t h;

    fake_now = T0;
    hlc_init(&h, fake_clock);
    uint64_t before = hlc_next(&h);
    hlc_observe(&h, 1ULL << 60);
    uint64_t after = hlc_next(&h);
    if (after <= before || after > HLC_MAX)
        fail_msg("after observe(2^60): next = %llu, previous %llu, max %llu",
                 (unsigned long long)after, (unsigned long long)before,
                 (unsigned long long)HLC_MAX);
}

static void test_real_clock(void **state)
{
    (void)state;
    hlc_t h;
    uint64_t prev = 0;

    hlc_init(&h, NULL);
    uint64_t wall = hlc_wall_us();
    assert_true(wall > HLC_EPOCH_UNIX_US);
    for (int i = 0; i < 10000; i++) {
        uint64_t v = hlc_next(&h);
        assert_true(v > prev);
        assert_true(v <= HLC_MAX);
        prev = v;
    }
    /* The first versions are the wall clock (to within a minute). */
    assert_true(prev + HLC_EPOCH_UNIX_US >= wall);
    assert_true(prev + HLC_EPOCH_UNIX_US < wall + 60 * SEC);
}

#define NTHREADS 4
#define PER_THREAD 100000

struct worker {
    hlc_t *h;
    uint64_t *out;
    int ordered; /* each thread's own sequence was strictly increasing */
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    w->ordered = 1;
    for (int i = 0; i < PER_THREAD; i++) {
        w->out[i] = hlc_next(w->h);
        if (i > 0 && w->out[i] <= w->out[i - 1])
            w->ordered = 0;
    }
    return NULL;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void run_threads(hlc_clock_fn clock)
{
    hlc_t h;
    pthread_t tid[NTHREADS];
    struct worker w[NTHREADS];
    uint64_t *all = calloc((size_t)NTHREADS * PER_THREAD, sizeof *all);

    assert_non_null(all);
    hlc_init(&h, clock);
    for (int t = 0; t < NTHREADS; t++) {
        w[t].h = &h;
        w[t].out = all + (size_t)t * PER_THREAD;
        if (pthread_create(&tid[t], NULL, worker_run, &w[t]) != 0) {
            for (int u = 0; u < t; u++)
                pthread_join(tid[u], NULL);
            fail_msg("pthread_create failed");
        }
    }
    /* join every thread before any assertion can jump out of this frame */
    int joined = 0, ordered = 1;
    for (int t = 0; t < NTHREADS; t++) {
        joined += pthread_join(tid[t], NULL) == 0;
        ordered &= w[t].ordered;
    }
    assert_int_equal(joined, NTHREADS);
    assert_true(ordered);
    qsort(all, (size_t)NTHREADS * PER_THREAD, sizeof *all, u64_cmp);
    for (size_t i = 1; i < (size_t)NTHREADS * PER_THREAD; i++)
        if (all[i] == all[i - 1])
            fail_msg("duplicate version %llu", (unsigned long long)all[i]);
    assert_true(all[0] > 0);
    assert_true(all[(size_t)NTHREADS * PER_THREAD - 1] <= HLC_MAX);
    free(all);
}

static void test_threads_real_clock(void **state)
{
    (void)state;
    run_threads(NULL);
}

/* Same with a clock frozen in time: every version is a logical bump, the
 * case where a racy read-modify-write would hand out duplicates. */
static void test_threads_frozen_clock(void **state)
{
    (void)state;
    fake_now = T0;
    run_threads(fake_clock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_physical_part),
        cmocka_unit_test(test_clock_stands_still),
        cmocka_unit_test(test_clock_goes_backwards),
        cmocka_unit_test(test_clock_before_epoch),
        cmocka_unit_test(test_observe),
        cmocka_unit_test(test_observe_out_of_range),
        cmocka_unit_test(test_real_clock),
        cmocka_unit_test(test_threads_real_clock),
        cmocka_unit_test(test_threads_frozen_clock),
    };
    return cmocka_run_group_tests_name("hlc", tests, NULL, NULL);
}
