#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX 512

/* The registry: process-wide by nature (a module registers its statics once
 * and every /metrics of the process renders them). */
typedef struct metrics_entry {
    metrics_render_fn fn;
    void *ctx;
} metrics_entry;

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static metrics_entry metrics_list[METRICS_MAX];
static size_t metrics_n;

struct metrics_text {
    char *s;
    size_t len, cap;
};

int metrics_register_fn(metrics_render_fn fn, void *ctx)
{
    int rc = -1;

    pthread_mutex_lock(&metrics_mu);
    if (metrics_n < METRICS_MAX) {
        metrics_list[metrics_n++] = (metrics_entry){fn, ctx};
        rc = 0;
    }
    pthread_mutex_unlock(&metrics_mu);
    return rc;
}

void metrics_unregister_fn(metrics_render_fn fn, void *ctx)
{
    pthread_mutex_lock(&metrics_mu);
    for (size_t i = 0; i < metrics_n; i++)
        if (metrics_list[i].fn == fn && metrics_list[i].ctx == ctx) {
            memmove(&metrics_list[i], &metrics_list[i + 1],
                    (metrics_n - i - 1) * sizeof metrics_list[0]);
            metrics_n--;
            break;
        }
    pthread_mutex_unlock(&metrics_mu);
}

/* Values below 4 us get a bucket each; above, 4 buckets per power of two. */
static unsigned metrics_lat_bucket(uint64_t us)
{
    unsigned p, idx;

    if (us < 4)
        return (unsigned)us;
    p = 63u - (unsigned)__builtin_clzll(us);
    idx = p * 4 + (unsigned)((us >> (p - 2)) & 3);
    return idx < METRICS_HIST_BUCKETS ? idx : METRICS_HIST_BUCKETS - 1;
}

static uint64_t metrics_lat_bucket_upper(unsigned idx)
{
    unsigned p = idx / 4, s = idx % 4;

    if (idx < 4)
        return idx;
    return (1ULL << p) + ((uint64_t)(s + 1) << (p - 2)) - 1;
}

void metrics_hist_record(metrics_hist *h, uint64_t us)
{
    atomic_fetch_add(&h->buckets[metrics_lat_bucket(us)], 1);
    atomic_fetch_add(&h->count, 1);
    atomic_fetch_add(&h->sum_us, us);
}

/* The p-th percentile of counts (total of them): a bucket's upper bound. */
static uint64_t metrics_counts_percentile(const uint64_t *counts,
                                          uint64_t total, double p)
{
    uint64_t seen = 0, rank;

    if (total == 0)
        return 0;
    rank = (uint64_t)(p * (double)total + 0.5);
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < METRICS_HIST_BUCKETS; i++) {
        seen += counts[i];
        if (seen >= rank)
            return metrics_lat_bucket_upper(i);
    }
    return metrics_lat_bucket_upper(METRICS_HIST_BUCKETS - 1);
}

uint64_t metrics_hist_percentile(metrics_hist *h, double p)
{
    uint64_t total = 0;
    uint64_t counts[METRICS_HIST_BUCKETS];

    for (unsigned i = 0; i < METRICS_HIST_BUCKETS; i++)
        total += counts[i] = atomic_load(&h->buckets[i]);
    return metrics_counts_percentile(counts, total, p);
}

void metrics_recent_read(metrics_hist *h, metrics_recent *w, uint64_t now_ms,
                         uint64_t min_ms, uint64_t *p50_us, uint64_t *p99_us,
                         uint64_t *count)
{
    uint64_t cur[METRICS_HIST_BUCKETS], delta[METRICS_HIST_BUCKETS], total = 0;

    pthread_mutex_lock(&w->mu);
    if (w->at_ms == 0 || now_ms - w->at_ms >= min_ms) {
        for (unsigned i = 0; i < METRICS_HIST_BUCKETS; i++) {
            cur[i] = atomic_load(&h->buckets[i]);
            delta[i] = cur[i] - w->base[i];
            total += delta[i];
        }
        if (w->at_ms) {
            w->p50_us = metrics_counts_percentile(delta, total, 0.5);
            w->p99_us = metrics_counts_percentile(delta, total, 0.99);
            w->count = total;
        }
        memcpy(w->base, cur, sizeof cur);
        w->at_ms = now_ms;
    }
    *p50_us = w->p50_us;
    *p99_us = w->p99_us;
    *count = w->count;
    pthread_mutex_unlock(&w->mu);
}

void metrics_text_printf(metrics_text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t left = t->cap - t->len;
        va_start(ap, fmt);
        n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? left : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->s && (size_t)n < left) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(t->s, cap);
        if (s == NULL)
            return;
        t->s = s;
        t->cap = cap;
    }
}

void metrics_text_family(metrics_text *t, const char *name, const char *help,
                         const char *type)
{
    metrics_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

void metrics_text_sample(metrics_text *t, const char *name, const char *label,
                         const char *value, int64_t v)
{
    if (label == NULL) {
        metrics_text_printf(t, "%s %lld\n", name, (long long)v);
        return;
    }
    metrics_text_printf(t, "%s{%s=\"", name, label);
    for (const char *c = value; *c; c++) {
        if (*c == '\\' || *c == '"')
            metrics_text_printf(t, "\\%c", *c);
        else if (*c == '\n')
            metrics_text_printf(t, "\\n");
        else
            metrics_text_printf(t, "%c", *c);
    }
    metrics_text_printf(t, "\"} %lld\n", (long long)v);
}

static void metrics_render_metric(metrics_text *t, void *ctx)
{
    metric *m = ctx;

    metrics_text_family(t, m->name, m->help, m->type);
    metrics_text_sample(t, m->name, NULL, NULL, metrics_get(m));
}

static void metrics_render_hist(metrics_text *t, void *ctx)
{
    static const double qs[] = {0.5, 0.9, 0.99};
    metrics_hist *h = ctx;

    metrics_text_family(t, h->name, h->help, "summary");
    for (size_t q = 0; q < sizeof qs / sizeof qs[0]; q++)
        metrics_text_printf(t, "%s{quantile=\"%g\"} %.6f\n", h->name, qs[q],
                            (double)metrics_hist_percentile(h, qs[q]) / 1e6);
    metrics_text_printf(t, "%s_sum %.6f\n%s_count %llu\n", h->name,
                        (double)atomic_load(&h->sum_us) / 1e6, h->name,
                        (unsigned long long)atomic_load(&h->count));
}

void metrics_register(metric *m)
{
    metrics_register_fn(metrics_render_metric, m);
}

void metrics_register_hist(metrics_hist *h)
{
    metrics_register_fn(metrics_render_hist, h);
}

char *metrics_render(size_t *len)
{
    metrics_text t = {0};

    pthread_mutex_lock(&metrics_mu);
    for (size_t i = 0; i < metrics_n; i++)
        metrics_list[i].fn(&t, metrics_list[i].ctx);
    pthread_mutex_unlock(&metrics_mu);
    if (t.s == NULL)
        t.s = calloc(1, 1);
    *len = t.len;
    return t.s;
}
