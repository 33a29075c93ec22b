#include "ratelimit.h"

#include "clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define RATELIMIT_STRIPES 64
#define RATELIMIT_BUCKETS 256 /* per stripe */

typedef struct ratelimit_entry {
    struct ratelimit_entry *next;
    uint64_t win_start;   /* sliding: aligned window; fixed: first request */
    uint64_t last_ms;
    uint32_t cur, prev;
    char key[];
} ratelimit_entry;

typedef struct ratelimit_stripe {
    pthread_mutex_t mu;
    ratelimit_entry *buckets[RATELIMIT_BUCKETS];
    size_t n;
    ratelimit_entry overflow;    /* shared by clients past the cap */
} ratelimit_stripe;

struct ratelimit {
    ratelimit_kind kind;
    uint32_t limit;
    uint64_t window;
    size_t cap;           /* entries per stripe */
    _Atomic uint64_t allowed, denied;
    ratelimit_stripe stripes[RATELIMIT_STRIPES];
};

ratelimit_t *ratelimit_new(ratelimit_kind kind, uint32_t limit, uint64_t window_ms,
             size_t max_clients)
{
    ratelimit_t *rl = calloc(1, sizeof *rl);

    if (rl == NULL || window_ms == 0) {
        free(rl);
        return NULL;
    }
    rl->kind = kind;
    rl->limit = limit;
    rl->window = window_ms;
    rl->cap = max_clients > RATELIMIT_STRIPES ? max_clients / RATELIMIT_STRIPES : 1;
    for (int i = 0; i < RATELIMIT_STRIPES; i++)
        pthread_mutex_init(&rl->stripes[i].mu, NULL);
    return rl;
}

void ratelimit_free(ratelimit_t *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < RATELIMIT_STRIPES; i++) {
        for (int b = 0; b < RATELIMIT_BUCKETS; b++)
            for (ratelimit_entry *e = rl->stripes[i].buckets[b], *n; e; e = n) {
                n = e->next;
                free(e);
            }
        pthread_mutex_destroy(&rl->stripes[i].mu);
    }
    free(rl);
}

/* Drop the entries of a stripe idle for two windows (they carry no state). */
static void ratelimit_sweep(ratelimit_t *rl, ratelimit_stripe *s, uint64_t now)
{
    for (int b = 0; b < RATELIMIT_BUCKETS; b++) {
        ratelimit_entry **pp = &s->buckets[b];
        while (*pp) {
            ratelimit_entry *e = *pp;
            if (now - e->last_ms > 2 * rl->window) {
                *pp = e->next;
                free(e);
                s->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static ratelimit_entry *ratelimit_find(ratelimit_t *rl, ratelimit_stripe *s, uint64_t h, const char *client,
                         uint64_t now)
{
    ratelimit_entry **head = &s->buckets[(h >> 8) % RATELIMIT_BUCKETS];
    size_t len;
    ratelimit_entry *e;

    for (e = *head; e; e = e->next)
        if (strcmp(e->key, client) == 0)
            return e;
    if (s->n >= rl->cap)
        ratelimit_sweep(rl, s, now);
    len = strlen(client);
    if (s->n >= rl->cap || (e = calloc(1, sizeof *e + len + 1)) == NULL)
        return &s->overflow;
    memcpy(e->key, client, len + 1);
    e->win_start = now;
    e->next = *head;
    *head = e;
    s->n++;
    return e;
}

static void ratelimit_sliding(ratelimit_t *rl, ratelimit_entry *e, uint64_t now, ratelimit_verdict *v)
{
    uint64_t w = rl->window, start = now - now % w, elapsed = now - start;
    double weight, est;

    if (e->win_start != start) {
        e->prev = start - e->win_start == w ? e->cur : 0;
        e->cur = 0;
        e->win_start = start;
    }
    weight = (double)(w - elapsed) / (double)w;
    est = e->prev * weight + e->cur;
    v->reset_ms = w - elapsed;
    if (est + 1.0 <= (double)rl->limit + 1e-9) {
        e->cur++;
        v->allowed = 1;
        v->remaining = (uint32_t)((double)rl->limit - est - 1.0 + 1e-9);
        return;
    }
    v->remaining = 0;
    if (e->cur + 1 > rl->limit) {
        /* Next window: the estimate is cur * (w - t) / w; wait until it
         * leaves room for one. */
        double t = (double)w * (1.0 - (double)(rl->limit - 1) / e->cur);
        v->retry_after_ms = (w - elapsed) + (uint64_t)(t > 0 ? t : 0) + 1;
    } else {
        /* The previous window's share must decay: solve prev * (w - elapsed
         * - d) / w + cur <= limit - 1 for d. */
        double room = (double)(rl->limit - 1 - e->cur);
        double d = (double)(w - elapsed) - (double)w * room / e->prev;
        v->retry_after_ms = (uint64_t)(d > 1 ? d : 1);
    }
}

static void ratelimit_fixed(ratelimit_t *rl, ratelimit_entry *e, uint64_t now, ratelimit_verdict *v)
{
    if (e->cur == 0 || now >= e->win_start + rl->window) {
        e->win_start = now;
        e->cur = 0;
    }
    v->reset_ms = e->win_start + rl->window - now;
    if (e->cur < rl->limit) {
        e->cur++;
        v->allowed = 1;
        v->remaining = rl->limit - e->cur;
    } else {
        v->remaining = 0;
        v->retry_after_ms = v->reset_ms;
    }
}

ratelimit_verdict ratelimit_check(ratelimit_t *rl, const char *client, uint64_t now_ms)
{
    uint64_t h = XXH3_64bits(client, strlen(client));
    ratelimit_stripe *s = &rl->stripes[h % RATELIMIT_STRIPES];
    ratelimit_verdict v = {.limit = rl->limit};
    ratelimit_entry *e;

    pthread_mutex_lock(&s->mu);
    e = ratelimit_find(rl, s, h, client, now_ms);
    e->last_ms = now_ms;
    if (rl->kind == RATELIMIT_SLIDING)
        ratelimit_sliding(rl, e, now_ms, &v);
    else
        ratelimit_fixed(rl, e, now_ms, &v);
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(v.allowed ? &rl->allowed : &rl->denied, 1);
    return v;
}

void ratelimit_get_stats(ratelimit_t *rl, ratelimit_stats *out)
{
    out->allowed = atomic_load(&rl->allowed);
    out->denied = atomic_load(&rl->denied);
    out->clients = 0;
    for (int i = 0; i < RATELIMIT_STRIPES; i++) {
        pthread_mutex_lock(&rl->stripes[i].mu);
        out->clients += rl->stripes[i].n;
        pthread_mutex_unlock(&rl->stripes[i].mu);
    }
}

/* e's count and window end at now, as a check would see them; 0 when its
 * windows are over. */
static uint32_t ratelimit_count_now(const ratelimit_t *rl, const ratelimit_entry *e,
                                    uint64_t now, uint64_t *reset_ms)
{
    uint64_t w = rl->window;

    if (rl->kind == RATELIMIT_FIXED) {
        if (e->cur == 0 || now >= e->win_start + w)
            return 0;
        *reset_ms = e->win_start + w - now;
        return e->cur;
    }
    uint64_t start = now - now % w, elapsed = now - start;
    double cur = e->win_start == start ? e->cur : 0;
    double prev = e->win_start == start ? e->prev : start - e->win_start == w ? e->cur : 0;
    double est = prev * (double)(w - elapsed) / (double)w + cur;
    *reset_ms = w - elapsed;
    return (uint32_t)(est + 0.999);
}

size_t ratelimit_clients(ratelimit_t *rl, uint64_t now_ms, ratelimit_client *out,
                         size_t max)
{
    size_t n = 0;

    for (int i = 0; i < RATELIMIT_STRIPES && n < max; i++) {
        ratelimit_stripe *s = &rl->stripes[i];
        pthread_mutex_lock(&s->mu);
        for (int b = 0; b < RATELIMIT_BUCKETS && n < max; b++)
            for (const ratelimit_entry *e = s->buckets[b]; e && n < max; e = e->next) {
                uint64_t reset = 0;
                uint32_t c = ratelimit_count_now(rl, e, now_ms, &reset);
                if (c == 0)
                    continue;
                snprintf(out[n].client, sizeof out[n].client, "%s", e->key);
                out[n].count = c;
                out[n].reset_ms = reset;
                n++;
            }
        pthread_mutex_unlock(&s->mu);
    }
    return n;
}

unsigned ratelimit_retry_after_s(const ratelimit_verdict *v)
{
    uint64_t s = (v->retry_after_ms + 999) / 1000;
    return s ? (unsigned)s : 1;
}
