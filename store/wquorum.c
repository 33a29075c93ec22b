#include "wquorum.h"

#include "clock.h"
#include "log.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WQUORUM_MAX_HDRS 4
#define WQUORUM_MAX_PEERS 64
#define WQUORUM_HDR_LEN 64

METRIC_COUNTER(wqm_waits, "kv_store_quorum_waits_total",
               "writes that waited for W secondaries");
METRIC_COUNTER(wqm_acked, "kv_store_quorum_acked_total",
               "waiting writes acknowledged once W secondaries had them");
METRIC_COUNTER(wqm_timeouts, "kv_store_quorum_timeouts_total",
               "waiting writes answered 504 quorum_timeout");
static metrics_hist wqm_wait_lat = {.name = "kv_store_quorum_wait_seconds",
                                .help = "time a write waited for its W acks"};
static pthread_once_t wqm_once = PTHREAD_ONCE_INIT;

static void wquorum_metrics_register(void)
{
    metrics_register(&wqm_waits);
    metrics_register(&wqm_acked);
    metrics_register(&wqm_timeouts);
    metrics_register_hist(&wqm_wait_lat);
}

typedef struct wquorum_waiter {
    struct wquorum_waiter *next;
    httpd_req *r;
    uint64_t seq;
    uint64_t start_us, deadline_us;
    unsigned status;
    const char *ctype;
    char *body;
    size_t len;
    char hdrs[WQUORUM_MAX_HDRS][WQUORUM_HDR_LEN];
    int nhdrs;
} wquorum_waiter;

struct wquorum {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t timer;
    int stopping;
    uint64_t timeout_us;
    _Atomic uint64_t qseq;      /* the last quorum seq released */
    wquorum_waiter *head, *tail; /* FIFO = deadline order */
    size_t n;
};

/* ---- the policy, pure ------------------------------------------------- */

int wquorum_policy_parse(const char *s, enum wquorum_policy *out)
{
    if (strcmp(s, "any") == 0)
        *out = WQUORUM_ANY;
    else if (strcmp(s, "ordered") == 0)
        *out = WQUORUM_ORDERED;
    else
        return -1;
    return 0;
}

size_t wquorum_alive(const wquorum_peer *peers, size_t n)
{
    size_t a = 0;
    for (size_t i = 0; i < n; i++)
        a += peers[i].alive != 0;
    return a;
}

uint64_t wquorum_seq(const wquorum_peer *peers, size_t n, unsigned w,
                     enum wquorum_policy policy)
{
    if (w == 0 || n < w)
        return 0;
    if (policy == WQUORUM_ORDERED) {
        uint64_t q = UINT64_MAX;
        unsigned got = 0;
        for (size_t i = 0; i < n && got < w; i++) {
            if (!peers[i].alive)
                continue;
            if (peers[i].acked < q)
                q = peers[i].acked;
            got++;
        }
        return got == w ? q : 0;
    }
    /* any: the w-th highest ack (n is small: insertion into a top-w list). */
    {
        uint64_t top[WQUORUM_MAX_PEERS];
        size_t k = 0;
        if (w > WQUORUM_MAX_PEERS)
            return 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t a = peers[i].acked;
            size_t j;
            if (k < w)
                j = k++;
            else if (a <= top[w - 1])
                continue;
            else
                j = w - 1;
            while (j > 0 && top[j - 1] < a) {
                top[j] = top[j - 1];
                j--;
            }
            top[j] = a;
        }
        return k >= w ? top[w - 1] : 0;
    }
}

/* ---- answering ---------------------------------------------------------- */

static void wquorum_answer(wquorum_waiter *w)
{
    const char *hp[WQUORUM_MAX_HDRS + 1];

    for (int i = 0; i < w->nhdrs; i++)
        hp[i] = w->hdrs[i];
    hp[w->nhdrs] = NULL;
    httpd_respond(w->r, w->status, w->ctype, w->body ? w->body : "", w->len,
                  hp);
    free(w->body);
    free(w);
}

static void wquorum_answer_error(wquorum_waiter *w, unsigned status,
                                 const char *code, const char *msg,
                                 uint64_t qseq)
{
    cJSON *j = cJSON_CreateObject();
    char num[24];

    cJSON_AddStringToObject(j, "error", code);
    cJSON_AddStringToObject(j, "message", msg);
    snprintf(num, sizeof num, "%" PRIu64, w->seq);
    cJSON_AddRawToObject(j, "seq", num);
    snprintf(num, sizeof num, "%" PRIu64, qseq);
    cJSON_AddRawToObject(j, "quorum_seq", num);
    httpd_respond_json(w->r, status, j, NULL);
    free(w->body);
    free(w);
}

/* ---- timer ---------------------------------------------------------------- */

static void *wquorum_timer_main(void *arg)
{
    wquorum *q = arg;

    pthread_setname_np(pthread_self(), "wquorum"); /* top -H, perf */
    pthread_mutex_lock(&q->mu);
    while (!q->stopping) {
        uint64_t now = clock_mono_us();
        wquorum_waiter *late = NULL, **lt = &late;
        uint64_t wake;

        while (q->head && q->head->deadline_us <= now) {
            wquorum_waiter *w = q->head;
            q->head = w->next;
            if (q->head == NULL)
                q->tail = NULL;
            q->n--;
            w->next = NULL;
            *lt = w;
            lt = &w->next;
        }
        if (late) {
            uint64_t qs = atomic_load(&q->qseq);
            pthread_mutex_unlock(&q->mu);
            for (wquorum_waiter *w = late, *nx; w; w = nx) {
                nx = w->next;
                metrics_add(&wqm_timeouts, 1);
                wquorum_answer_error(w, 504, "quorum_timeout",
                                     "the write was applied on the primary "
                                     "but W secondaries did not ack it in "
                                     "time; it is not acknowledged", qs);
            }
            pthread_mutex_lock(&q->mu);
            continue;
        }
        wake = q->head ? q->head->deadline_us : now + 1000000u;
        clock_cond_wait_us(&q->cv, &q->mu, wake - now);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

wquorum *wquorum_new(long timeout_ms)
{
    wquorum *q = calloc(1, sizeof *q);
    sigset_t all, old;
    int rc;

    if (q == NULL)
        return NULL;
    pthread_once(&wqm_once, wquorum_metrics_register);
    q->timeout_us = (uint64_t)(timeout_ms > 0 ? timeout_ms : 1) * 1000u;
    pthread_mutex_init(&q->mu, NULL);
    clock_cond_init(&q->cv);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&q->timer, NULL, wquorum_timer_main, q);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&q->cv);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    return q;
}

static wquorum_waiter *wquorum_take_all(wquorum *q)
{
    wquorum_waiter *all;

    pthread_mutex_lock(&q->mu);
    all = q->head;
    q->head = q->tail = NULL;
    q->n = 0;
    pthread_mutex_unlock(&q->mu);
    return all;
}

void wquorum_fail_all(wquorum *q, const char *why)
{
    uint64_t qs = atomic_load(&q->qseq);

    for (wquorum_waiter *w = wquorum_take_all(q), *nx; w; w = nx) {
        nx = w->next;
        metrics_add(&wqm_timeouts, 1);
        wquorum_answer_error(w, 504, "quorum_timeout", why, qs);
    }
}

void wquorum_close(wquorum *q)
{
    wquorum_waiter *all;

    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    all = q->head;
    q->head = q->tail = NULL;
    q->n = 0;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (wquorum_waiter *w = all, *nx; w; w = nx) {
        nx = w->next;
        wquorum_answer_error(w, 503, "shutting_down",
                             "the store is stopping; the write was applied "
                             "here but is not acknowledged", 0);
    }
}

void wquorum_free(wquorum *q)
{
    if (q == NULL)
        return;
    wquorum_close(q);
    pthread_join(q->timer, NULL);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

void wquorum_wait(wquorum *q, httpd_req *r, uint64_t seq, unsigned status,
                  const char *ctype, char *body, size_t len,
                  const char *const *headers)
{
    wquorum_waiter *w = calloc(1, sizeof *w);
    int now_ok = 0, stopping;

    if (w == NULL) {
        free(body);
        httpd_error(r, 500, "internal", "out of memory");
        return;
    }
    w->r = r;
    w->seq = seq;
    w->status = status;
    w->ctype = ctype;
    w->body = body;
    w->len = len;
    for (int i = 0; headers && headers[i] && i < WQUORUM_MAX_HDRS; i++) {
        snprintf(w->hdrs[i], sizeof w->hdrs[i], "%s", headers[i]);
        w->nhdrs = i + 1;
    }
    metrics_add(&wqm_waits, 1);
    w->start_us = clock_mono_us();
    if (atomic_load(&q->qseq) >= seq) {
        /* Already there (a fast secondary): no suspension at all. */
        metrics_add(&wqm_acked, 1);
        metrics_hist_record(&wqm_wait_lat, 0);
        wquorum_answer(w);
        return;
    }
    /* Suspend before anyone else can answer it; no httpd call under mu. */
    httpd_suspend(r);
    w->deadline_us = w->start_us + q->timeout_us;
    pthread_mutex_lock(&q->mu);
    stopping = q->stopping;
    if (!stopping && atomic_load(&q->qseq) >= seq) {
        now_ok = 1;
    } else if (!stopping) {
        if (q->tail)
            q->tail->next = w;
        else
            q->head = w;
        q->tail = w;
        q->n++;
        if (q->head == w)
            pthread_cond_signal(&q->cv); /* a new earliest deadline */
    }
    pthread_mutex_unlock(&q->mu);
    if (stopping) {
        wquorum_answer_error(w, 503, "shutting_down",
                             "the store is stopping; the write was applied "
                             "here but is not acknowledged", 0);
    } else if (now_ok) {
        metrics_add(&wqm_acked, 1);
        metrics_hist_record(&wqm_wait_lat, clock_mono_us() - w->start_us);
        wquorum_answer(w);
    }
}

void wquorum_release(wquorum *q, uint64_t qseq)
{
    wquorum_waiter *done = NULL, **dt = &done;
    uint64_t now;

    atomic_store(&q->qseq, qseq);
    pthread_mutex_lock(&q->mu);
    if (q->head == NULL) {
        pthread_mutex_unlock(&q->mu);
        return;
    }
    {
        wquorum_waiter **pp = &q->head, *prev = NULL;
        while (*pp) {
            wquorum_waiter *w = *pp;
            if (w->seq <= qseq) {
                *pp = w->next;
                q->n--;
                w->next = NULL;
                *dt = w;
                dt = &w->next;
            } else {
                prev = w;
                pp = &w->next;
            }
        }
        q->tail = prev;
    }
    pthread_mutex_unlock(&q->mu);
    now = clock_mono_us();
    for (wquorum_waiter *w = done, *nx; w; w = nx) {
        nx = w->next;
        metrics_add(&wqm_acked, 1);
        metrics_hist_record(&wqm_wait_lat, now - w->start_us);
        wquorum_answer(w);
    }
}

size_t wquorum_waiting(wquorum *q)
{
    size_t n;
    pthread_mutex_lock(&q->mu);
    n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}
