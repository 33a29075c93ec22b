/* Unit tests for lib/metrics: Prometheus text rendering of counters, gauges,
 * latency summaries and labelled lines from a render callback (with label
 * escaping and unregistering), and histogram percentiles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <pthread.h>

#include "metrics.h"

METRIC_COUNTER(m_puts, "kv_test_puts_total", "Puts applied.");
METRIC_COUNTER(m_race, "kv_test_race_total", "Bumped from many threads.");
METRIC_GAUGE(m_depth, "kv_test_queue_depth", "Ops waiting in the queue.");

static int64_t computed_value(void)
{
    return 1234;
}

static metric m_computed = {"kv_test_computed", "A gauge read on demand.",
                            "gauge", 0, computed_value};

static void expect_in(const char *text, const char *want)
{
    if (strstr(text, want) == NULL)
        fail_msg("rendered metrics lack \"%s\":\n%s", want, text);
}

static void test_render_counters(void **state)
{
    (void)state;
    size_t len = 0;

    metrics_register(&m_puts);
    metrics_register(&m_depth);
    metrics_register(&m_computed);
    metrics_add(&m_puts, 40);
    metrics_add(&m_puts, 2);
    metrics_set(&m_depth, 7);
    metrics_set(&m_depth, -3);
    assert_int_equal(metrics_get(&m_puts), 42);
    assert_int_equal(metrics_get(&m_depth), -3);
    assert_int_equal(metrics_get(&m_computed), 1234);

    char *text = metrics_render(&len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    expect_in(text, "# HELP kv_test_puts_total Puts applied.\n"
                    "# TYPE kv_test_puts_total counter\n"
                    "kv_test_puts_total 42\n");
    expect_in(text, "# HELP kv_test_queue_depth Ops waiting in the queue.\n"
                    "# TYPE kv_test_queue_depth gauge\n"
                    "kv_test_queue_depth -3\n");
    expect_in(text, "# TYPE kv_test_computed gauge\nkv_test_computed 1234\n");
    /* the stored value of a computed gauge is not what is shown */
    assert_null(strstr(text, "kv_test_computed 0\n"));
    assert_true(len > 0 && text[len - 1] == '\n');
    free(text);

    /* values are read at render time */
    metrics_add(&m_puts, 1);
    text = metrics_render(&len);
    expect_in(text, "\nkv_test_puts_total 43\n");
    free(text);
}

/* Every line of the exposition is a comment (# HELP / # TYPE) or
 * `name[{labels}] value` with a name made of [a-zA-Z0-9_:]. */
static void test_render_syntax(void **state)
{
    (void)state;
    size_t len;
    char *text = metrics_render(&len);
    char *save = NULL;
    int lines = 0;

    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        lines++;
        if (line[0] == '#') {
            if (strncmp(line, "# HELP ", 7) && strncmp(line, "# TYPE ", 7))
                fail_msg("bad comment line: %s", line);
            continue;
        }
        size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyz"
                                "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:");
        if (n == 0)
            fail_msg("line without a metric name: %s", line);
        if (line[n] == '{') {
            char *close = strchr(line + n, '}');
            if (close == NULL)
                fail_msg("unclosed labels: %s", line);
            n = (size_t)(close - line) + 1;
        }
        if (line[n] != ' ')
            fail_msg("no value after the name: %s", line);
        char *end;
        strtod(line + n + 1, &end);
        if (end == line + n + 1 || *end != '\0')
            fail_msg("value is not a number: %s", line);
    }
    assert_true(lines >= 6);
    free(text);
}

static metrics_hist h_steps = {.name = "kv_test_steps_seconds",
                           .help = "Samples 1..1000 us."};

static void test_percentiles(void **state)
{
    (void)state;
    assert_int_equal(metrics_hist_percentile(&h_steps, 0.5), 0); /* empty */

    for (uint64_t us = 1; us <= 1000; us++)
        metrics_hist_record(&h_steps, us);
    assert_int_equal(atomic_load(&h_steps.count), 1000);
    assert_int_equal(atomic_load(&h_steps.sum_us), 500500);

    /* The answer is the upper bound of the sample's bucket: never below the
     * true percentile, and above it by less than a bucket (buckets are at
     * most a quarter of their lower bound wide). */
    uint64_t p50 = metrics_hist_percentile(&h_steps, 0.50);
    uint64_t p90 = metrics_hist_percentile(&h_steps, 0.90);
    uint64_t p99 = metrics_hist_percentile(&h_steps, 0.99);
    uint64_t p100 = metrics_hist_percentile(&h_steps, 1.0);
    if (p50 < 500 || p50 > 500 + 500 / 4)
        fail_msg("p50 = %llu, true 500", (unsigned long long)p50);
    if (p90 < 900 || p90 > 900 + 900 / 4)
        fail_msg("p90 = %llu, true 900", (unsigned long long)p90);
    if (p99 < 990 || p99 > 990 + 990 / 4)
        fail_msg("p99 = %llu, true 990", (unsigned long long)p99);
    assert_true(p100 >= 1000 && p100 <= 1250);
    assert_true(p50 <= p90 && p90 <= p99 && p99 <= p100);
    assert_true(metrics_hist_percentile(&h_steps, 0.0) <= 1);

    metrics_register_hist(&h_steps);
    size_t len;
    char *text = metrics_render(&len);
    expect_in(text, "# TYPE kv_test_steps_seconds summary\n");
    expect_in(text, "# HELP kv_test_steps_seconds Samples 1..1000 us.\n");
    expect_in(text, "kv_test_steps_seconds{quantile=\"0.5\"} ");
    expect_in(text, "kv_test_steps_seconds{quantile=\"0.99\"} ");
    expect_in(text, "kv_test_steps_seconds_count 1000\n");
    expect_in(text, "kv_test_steps_seconds_sum 0.5005");
    /* quantiles in seconds */
    char want[96];
    snprintf(want, sizeof want, "kv_test_steps_seconds{quantile=\"0.5\"} %.6f\n",
             (double)p50 / 1e6);
    expect_in(text, want);
    free(text);
}

/* A single sample anywhere in the documented range (1 us .. ~60 s) is
 * reported as at least itself and at most a bucket (25 %) above. */
static void test_percentile_range(void **state)
{
    (void)state;
    static const uint64_t samples[] = {
        0, 1, 2, 3, 4, 5, 7, 8, 9, 100, 1000, 1023, 1024, 1025, 65536,
        999999, 1000000, 5000000, 16000000, 17000000, 30000000, 59000000};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        metrics_hist h = {.name = "x", .help = "x"};
        uint64_t v = samples[i];
        metrics_hist_record(&h, v);
        uint64_t got = metrics_hist_percentile(&h, 0.5);
        if (got < v || got > v + v / 4)
            fail_msg("one sample of %llu us: percentile %llu",
                     (unsigned long long)v, (unsigned long long)got);
    }
}

static void *bump(void *arg)
{
    metrics_hist *h = arg;
    for (int i = 0; i < 100000; i++) {
        metrics_add(&m_race, 1);
        metrics_hist_record(h, 10);
    }
    return NULL;
}

static void test_concurrent_updates(void **state)
{
    (void)state;
    metrics_hist h = {.name = "y", .help = "y"};
    pthread_t t[4];
    int started = 0;

    for (int i = 0; i < 4; i++)
        started += pthread_create(&t[i], NULL, bump, &h) == 0;
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(started, 4);
    assert_int_equal(metrics_get(&m_race), 400000);
    assert_int_equal(atomic_load(&h.count), 400000);
    assert_int_equal(atomic_load(&h.sum_us), 4000000);
}

/* A module with one labelled line per peer, as a replication sender has. */
typedef struct peers {
    const char *urls[3];
    int64_t lag[3];
} peers;

static void render_peers(metrics_text *t, void *ctx)
{
    const peers *p = ctx;

    metrics_text_family(t, "kv_test_peer_lag", "Seqs a peer is behind.", "gauge");
    for (int i = 0; i < 3 && p->urls[i]; i++)
        metrics_text_sample(t, "kv_test_peer_lag", "peer", p->urls[i], p->lag[i]);
}

static void test_render_callback(void **state)
{
    (void)state;
    peers p = {{"http://a:1", "we\"ird\\\n", NULL}, {7, 0, 0}};
    size_t len = 0;
    char *text;

    assert_int_equal(metrics_register_fn(render_peers, &p), 0);
    text = metrics_render(&len);
    expect_in(text, "# HELP kv_test_peer_lag Seqs a peer is behind.\n"
                    "# TYPE kv_test_peer_lag gauge\n"
                    "kv_test_peer_lag{peer=\"http://a:1\"} 7\n"
                    "kv_test_peer_lag{peer=\"we\\\"ird\\\\\\n\"} 0\n");
    free(text);
    p.lag[0] = 9;
    text = metrics_render(&len);
    expect_in(text, "kv_test_peer_lag{peer=\"http://a:1\"} 9\n");
    free(text);

    metrics_unregister_fn(render_peers, &p);
    text = metrics_render(&len);
    assert_null(strstr(text, "kv_test_peer_lag"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_counters),
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_render_syntax),
        cmocka_unit_test(test_percentile_range),
        cmocka_unit_test(test_concurrent_updates),
        cmocka_unit_test(test_render_callback),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
