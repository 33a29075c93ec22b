/* Unit tests for lib/flags (the servers' command line), lib/num (strict
 * integers) and lib/clock's monotonic timed waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"
#include "flags.h"
#include "num.h"

#include <errno.h>
#include <string.h>

typedef struct parsed {
    const char *config;
    uint64_t port;
    int have_port, lab;
    flags_list sets;
} parsed;

static int parse(parsed *p, int argc, char **argv, char *err, size_t errlen)
{
    const flag_spec specs[] = {
        {"config", FLAG_STR, &p->config, 0, NULL},
        {"port", FLAG_UINT, &p->port, 65535, &p->have_port},
        {"lab", FLAG_BOOL, &p->lab, 0, NULL},
        {"set", FLAG_LIST, &p->sets, 0, NULL},
    };
    memset(p, 0, sizeof *p);
    p->port = 7;
    return flags_parse(argc, argv, specs, sizeof specs / sizeof specs[0], err,
                       errlen);
}

static void test_flags_forms_and_defaults(void **state)
{
    (void)state;
    char *argv[] = {"prog", "--config", "a.json", "--set", "x=1", "--lab",
                    "--set=y=2", "--port=8080"};
    char err[128] = "";
    parsed p;

    assert_int_equal(parse(&p, 8, argv, err, sizeof err), 0);
    assert_string_equal(p.config, "a.json");
    assert_int_equal(p.port, 8080);
    assert_int_equal(p.have_port, 1);
    assert_int_equal(p.lab, 1);
    assert_int_equal(p.sets.n, 2);
    assert_string_equal(p.sets.v[0], "x=1");
    assert_string_equal(p.sets.v[1], "y=2");

    char *none[] = {"prog"};
    assert_int_equal(parse(&p, 1, none, err, sizeof err), 0);
    assert_int_equal(p.port, 7); /* left as it was */
    assert_int_equal(p.have_port, 0);
}

static void test_flags_errors_name_the_argument(void **state)
{
    (void)state;
    char err[128];
    parsed p;
    char *bad_port[] = {"prog", "--port", "65536"};
    char *neg_port[] = {"prog", "--port", "-1"};
    char *unknown[] = {"prog", "--nope", "1"};
    char *missing[] = {"prog", "--config"};
    char *positional[] = {"prog", "extra"};
    char *bool_value[] = {"prog", "--lab=1"};
    char *help[] = {"prog", "--port", "1", "-h"};

    assert_int_equal(parse(&p, 3, bad_port, err, sizeof err), -1);
    assert_non_null(strstr(err, "--port"));
    assert_int_equal(parse(&p, 3, neg_port, err, sizeof err), -1);
    assert_int_equal(parse(&p, 3, unknown, err, sizeof err), -1);
    assert_non_null(strstr(err, "--nope"));
    assert_int_equal(parse(&p, 2, missing, err, sizeof err), -1);
    assert_non_null(strstr(err, "needs a value"));
    assert_int_equal(parse(&p, 2, positional, err, sizeof err), -1);
    assert_non_null(strstr(err, "extra"));
    assert_int_equal(parse(&p, 2, bool_value, err, sizeof err), -1);
    assert_int_equal(parse(&p, 4, help, err, sizeof err), FLAGS_HELP);
}

static void test_flags_list_is_bounded(void **state)
{
    (void)state;
    char *argv[2 * FLAGS_LIST_MAX + 3];
    char err[128];
    parsed p;
    int n = 1;

    argv[0] = "prog";
    for (int i = 0; i <= FLAGS_LIST_MAX; i++) {
        argv[n++] = "--set";
        argv[n++] = "a=1";
    }
    assert_int_equal(parse(&p, n, argv, err, sizeof err), -1);
    assert_int_equal(parse(&p, n - 2, argv, err, sizeof err), 0);
    assert_int_equal(p.sets.n, FLAGS_LIST_MAX);
}

static void test_num_is_strict(void **state)
{
    (void)state;
    int64_t i;
    uint64_t u;

    assert_int_equal(num_parse_i64("-12", &i), 0);
    assert_int_equal(i, -12);
    assert_int_equal(num_parse_i64("9223372036854775807", &i), 0);
    assert_int_equal(num_parse_i64("9223372036854775808", &i), -1);
    assert_int_equal(num_parse_i64("", &i), -1);
    assert_int_equal(num_parse_i64(NULL, &i), -1);
    assert_int_equal(num_parse_i64(" 1", &i), -1);
    assert_int_equal(num_parse_i64("1 ", &i), -1);
    assert_int_equal(num_parse_i64("12abc", &i), -1);
    assert_int_equal(num_parse_u64("18446744073709551615", &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(num_parse_u64("18446744073709551616", &u), -1);
    assert_int_equal(num_parse_u64("-1", &u), -1);
    assert_int_equal(num_parse_u64("+1", &u), -1);
    assert_int_equal(num_parse_max("10", 10, &u), 0);
    assert_int_equal(num_parse_max("11", 10, &u), -1);
}

static void test_clock_cond_wait_times_out_on_the_monotonic_clock(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    uint64_t t0, waited;

    assert_int_equal(clock_cond_init(&cv), 0);
    pthread_mutex_lock(&mu);
    t0 = clock_mono_ms();
    while (clock_cond_wait_ms(&cv, &mu, 50) != ETIMEDOUT)
        ;
    waited = clock_mono_ms() - t0;
    pthread_mutex_unlock(&mu);
    pthread_cond_destroy(&cv);
    assert_true(waited >= 50);
    assert_true(waited < 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags_forms_and_defaults),
        cmocka_unit_test(test_flags_errors_name_the_argument),
        cmocka_unit_test(test_flags_list_is_bounded),
        cmocka_unit_test(test_num_is_strict),
        cmocka_unit_test(test_clock_cond_wait_times_out_on_the_monotonic_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
