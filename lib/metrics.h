/* metrics: the process's metrics registry, rendered in the Prometheus text
 * format (GET /metrics through kvhttp_metrics).
 *
 * One registry, one way in: metrics_register_fn adds a render callback that
 * writes lines into the text being built; metrics_render runs every
 * callback in registration order. Modules with labelled lines (one per
 * peer, per node, ...) register a callback of their own and write them with
 * metrics_text_family and metrics_text_sample. The common cases have
 * built-in callbacks: metrics_register(m) for a counter or gauge (a
 * lock-free atomic, usually declared statically with METRIC_COUNTER), and
 * metrics_register_hist(h) for a latency summary.
 *
 * Ownership: the registry keeps the pointers it is given (metric, hist,
 * ctx); they must outlive their registration. A callback whose ctx dies
 * (an object freed before exit) is removed with metrics_unregister_fn,
 * which returns only when no render is running it. Callbacks run under the
 * registry's lock: they must not register or unregister. */
#ifndef KV_METRICS_H
#define KV_METRICS_H

#include <pthread.h>
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

/* A counter or gauge: its family line and its value (shorthand for a
 * metrics_register_fn with the built-in renderer). */
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

/* A latency summary (shorthand, as metrics_register). */
void metrics_register_hist(metrics_hist *h);
void metrics_hist_record(metrics_hist *h, uint64_t us);
/* p in [0,1]; microseconds (upper bound of the bucket). 0 when empty. */
uint64_t metrics_hist_percentile(metrics_hist *h, double p);

/* What a histogram recorded lately, for a live view: a read compares the
 * counts with those it kept at the last read that was at least min_ms
 * before, so a page polled every second sees the last second's p99 rather
 * than the process lifetime's; reads closer together give the same answer.
 * The state is the caller's (zeroed, with the mutex initialised). */
typedef struct metrics_recent {
    pthread_mutex_t mu;
    uint64_t base[METRICS_HIST_BUCKETS];
    uint64_t at_ms;              /* of the kept counts, 0: none yet */
    uint64_t p50_us, p99_us, count;
} metrics_recent;
#define METRICS_RECENT_INIT {.mu = PTHREAD_MUTEX_INITIALIZER}
void metrics_recent_read(metrics_hist *h, metrics_recent *w, uint64_t now_ms,
                         uint64_t min_ms, uint64_t *p50_us, uint64_t *p99_us,
                         uint64_t *count);

/* The text being rendered, as a callback sees it. */
typedef struct metrics_text metrics_text;
typedef void (*metrics_render_fn)(metrics_text *t, void *ctx);

/* Add fn(t, ctx) to the registry. 0, or -1 when it is full. */
int metrics_register_fn(metrics_render_fn fn, void *ctx);
/* Remove the registration of fn with ctx (a no-op when there is none). */
void metrics_unregister_fn(metrics_render_fn fn, void *ctx);

/* "# HELP name help" and "# TYPE name type" ("counter", "gauge", ...). */
void metrics_text_family(metrics_text *t, const char *name, const char *help,
                         const char *type);
/* One sample line: name{label="value"} v, or name v when label is NULL; the
 * label's value is escaped as the format requires (\\, \", \n). */
void metrics_text_sample(metrics_text *t, const char *name, const char *label,
                         const char *value, int64_t v);
/* Anything else (floating-point values, several labels). */
void metrics_text_printf(metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The whole registry in Prometheus text format (caller frees). */
char *metrics_render(size_t *len);

#endif
