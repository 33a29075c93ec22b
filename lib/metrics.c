#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX 256

static pthread_mutex_t metrics_mu = PTHREAD_MUTEX_INITIALIZER;
static metric *metrics_list[METRICS_MAX];
static size_t metrics_n;
static metrics_hist *hists_list[METRICS_MAX];
static size_t hists_n;

void metrics_register(metric *m)
{
    pthread_mutex_lock(&metrics_mu);
    if (metrics_n < METRICS_MAX)
        metrics_list[metrics_n++] = m;
    pthread_mutex_unlock(&metrics_mu);
}

void metrics_register_hist(metrics_hist *h)
{
    pthread_mutex_lock(&metrics_mu);
    if (hists_n < METRICS_MAX)
        hists_list[hists_n++] = h;
    pthread_mutex_unlock(&metrics_mu);
}

/* Values below 4 us get a bucket each; above, 4 buckets per power of two. */
static unsigned lat_bucket(uint64_t us)
{
    unsigned p, idx;

    if (us < 4)
        return (unsigned)us;
    p = 63u - (unsigned)__builtin_clzll(us);
    idx = p * 4 + (unsigned)((us >> (p - 2)) & 3);
    return idx < METRICS_HIST_BUCKETS ? idx : METRICS_HIST_BUCKETS - 1;
}

static uint64_t lat_bucket_upper(unsigned idx)
{
    unsigned p = idx / 4, s = idx % 4;

    if (idx < 4)
        return idx;
    return (1ULL << p) + ((uint64_t)(s + 1) << (p - 2)) - 1;
}

void metrics_hist_record(metrics_hist *h, uint64_t us)
{
    atomic_fetch_add(&h->buckets[lat_bucket(us)], 1);
    atomic_fetch_add(&h->count, 1);
    atomic_fetch_add(&h->sum_us, us);
}

uint64_t metrics_hist_percentile(metrics_hist *h, double p)
{
    uint64_t total = 0, seen = 0, rank;
    uint64_t counts[METRICS_HIST_BUCKETS];

    for (unsigned i = 0; i < METRICS_HIST_BUCKETS; i++)
        total += counts[i] = atomic_load(&h->buckets[i]);
    if (total == 0)
        return 0;
    rank = (uint64_t)(p * (double)total + 0.5);
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < METRICS_HIST_BUCKETS; i++) {
        seen += counts[i];
        if (seen >= rank)
            return lat_bucket_upper(i);
    }
    return lat_bucket_upper(METRICS_HIST_BUCKETS - 1);
}

typedef struct mbuf {
    char *s;
    size_t len, cap;
} mbuf;

static void mbuf_printf(mbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void mbuf_printf(mbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t left = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? left : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->s && (size_t)n < left) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (s == NULL)
            return;
        b->s = s;
        b->cap = cap;
    }
}

char *metrics_render(size_t *len)
{
    mbuf b = {0};
    static const double qs[] = {0.5, 0.9, 0.99};

    pthread_mutex_lock(&metrics_mu);
    for (size_t i = 0; i < metrics_n; i++) {
        metric *m = metrics_list[i];
        mbuf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", m->name,
                    m->help, m->name, m->type, m->name,
                    (long long)metrics_get(m));
    }
    for (size_t i = 0; i < hists_n; i++) {
        metrics_hist *h = hists_list[i];
        mbuf_printf(&b, "# HELP %s %s\n# TYPE %s summary\n", h->name, h->help,
                    h->name);
        for (size_t q = 0; q < sizeof qs / sizeof qs[0]; q++)
            mbuf_printf(&b, "%s{quantile=\"%g\"} %.6f\n", h->name, qs[q],
                        (double)metrics_hist_percentile(h, qs[q]) / 1e6);
        mbuf_printf(&b, "%s_sum %.6f\n%s_count %llu\n", h->name,
                    (double)atomic_load(&h->sum_us) / 1e6, h->name,
                    (unsigned long long)atomic_load(&h->count));
    }
    pthread_mutex_unlock(&metrics_mu);
    if (b.s == NULL)
        b.s = calloc(1, 1);
    *len = b.len;
    return b.s;
}
