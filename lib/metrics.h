/* metrics: counters and gauges exposed in the Prometheus text format, plus
 * a latency histogram with percentiles. Counters are lock-free atomics that a
 * module declares statically and registers once; metrics_render walks them.
 * Ownership: the registry keeps pointers; registered objects must outlive it. */
#ifndef KV_METRICS_H
#define KV_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct metric {
    const char *name;       /* kv_store_puts_total */
    const char *help;
    const char *type;       /* "counter" or "gauge" */
    _Atomic int64_t value;
    int64_t (*read)(void);  /* gauges computed on demand (optional) */
} metric;

#define METRIC_COUNTER(var, nm, hp) static metric var = {nm, hp, "counter", 0, NULL}
#define METRIC_GAUGE(var, nm, hp) static metric var = {nm, hp, "gauge", 0, NULL}

void metrics_register(metric *m);
static inline void metrics_add(metric *m, int64_t n) { atomic_fetch_add(&m->value, n); }
static inline void metrics_set(metric *m, int64_t n) { atomic_store(&m->value, n); }
static inline int64_t metrics_get(metric *m) { return m->read ? m->read() : atomic_load(&m->value); }

/* Latency histogram: log-linear buckets (4 per power of two) from 1 us to
 * about 4 minutes; rendered as a Prometheus summary (p50, p90, p99). */
#define METRICS_HIST_BUCKETS 112
typedef struct metrics_hist {
    const char *name;       /* kv_queue_apply_seconds */
    const char *help;
    _Atomic uint64_t buckets[METRICS_HIST_BUCKETS];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
} metrics_hist;

void metrics_register_hist(metrics_hist *h);
void metrics_hist_record(metrics_hist *h, uint64_t us);
/* p in [0,1]; microseconds (upper bound of the bucket). 0 when empty. */
uint64_t metrics_hist_percentile(metrics_hist *h, double p);

/* The whole registry in Prometheus text format (caller frees). */
char *metrics_render(size_t *len);

#endif
