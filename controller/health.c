/* health: the health-check scheduler (health.h). */
#include "health.h"

#include "clock.h"
#include "cluster_publish.h"
#include "failover.h"
#include "httpc.h"
#include "log.h"
#include "probe.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct health {
    cluster_t *cl;
    sup_t *sup;
    reshard_t *rs;
    long ready_timeout_ms;
    atomic_int stop;
    pthread_mutex_t mu;        /* with wake: sleeps that stop can cut short */
    pthread_cond_t wake;
    pthread_t tid;
};

/* Wait for the first answers. 0: go on with the rounds; -1: stop here. */
static int health_wait_ready(health_t *h)
{
    char err[2048];

    if (h->ready_timeout_ms <= 0) {
        cluster_publish_summary(h->cl, h->sup, stdout);
        return 0;
    }
    if (probe_wait_ready(h->cl, h->ready_timeout_ms, &h->stop, err,
                         sizeof err) == 0) {
        cluster_publish_summary(h->cl, h->sup, stdout);
        log_info("cluster ready");
        return 0;
    }
    if (atomic_load(&h->stop))
        return -1;
    if (h->cl->supervise) {
        log_error("cluster did not come up: %s", err);
        sup_request_exit(h->sup, 1);
        return -1;
    }
    /* External nodes come and go with their containers: watch them and
     * fail over anyway. */
    log_warn("%s; health checks and failover start now", err);
    return 0;
}

/* Sleep until sup_now_ms() reaches at_ms or a stop is asked for. */
static void health_sleep_until(health_t *h, int64_t at_ms)
{
    int64_t now;

    pthread_mutex_lock(&h->mu);
    while (!atomic_load(&h->stop) && (now = sup_now_ms()) < at_ms)
        clock_cond_wait_ms(&h->wake, &h->mu, (uint64_t)(at_ms - now));
    pthread_mutex_unlock(&h->mu);
}

/* Health checks every controller.health_interval_ms keep the flags of
 * /status current and drive failover. */
static void health_rounds(health_t *h)
{
    failover_t *fo = failover_new(h->cl, h->sup, &h->stop);
    int64_t interval = h->cl->cfg.health_interval_ms;
    int64_t next = sup_now_ms() + interval;

    if (fo == NULL) {
        log_error("failover: out of memory; health checks stopped");
        return;
    }
    log_info("health checks every %lld ms, failover after %lld ms",
             (long long)interval, (long long)h->cl->cfg.failover_after_ms);
    for (;;) {
        health_sleep_until(h, next);
        if (atomic_load(&h->stop))
            break;
        int64_t now = sup_now_ms();
        next = now + interval;
        failover_tick(fo, now);
        /* After the probes: prepare reads the new stores' health flags. */
        if (h->rs && !atomic_load(&h->stop) && reshard_tick(h->rs, sup_now_ms()) &&
            interval > RESHARD_STEP_MS)
            next = now + RESHARD_STEP_MS;
        if (!atomic_load(&h->cl->ready) && probe_all_healthy(h->cl)) {
            atomic_store(&h->cl->ready, 1);
            cluster_publish_summary(h->cl, h->sup, stdout);
            log_info("cluster ready");
        }
    }
    failover_free(fo);
}

static void *health_thread(void *arg)
{
    health_t *h = arg;

    if (health_wait_ready(h) == 0)
        health_rounds(h);
    httpc_thread_done();
    return NULL;
}

health_t *health_start(cluster_t *cl, sup_t *sup, long ready_timeout_ms,
                       reshard_t *rs)
{
    health_t *h = calloc(1, sizeof *h);

    if (h == NULL)
        return NULL;
    h->cl = cl;
    h->sup = sup;
    h->rs = rs;
    h->ready_timeout_ms = ready_timeout_ms;
    atomic_init(&h->stop, 0);
    pthread_mutex_init(&h->mu, NULL);
    clock_cond_init(&h->wake);
    if (pthread_create(&h->tid, NULL, health_thread, h) != 0) {
        pthread_cond_destroy(&h->wake);
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    return h;
}

void health_request_stop(health_t *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    atomic_store(&h->stop, 1);
    pthread_cond_broadcast(&h->wake);
    pthread_mutex_unlock(&h->mu);
}

void health_stop(health_t *h)
{
    if (h == NULL)
        return;
    health_request_stop(h);
    pthread_join(h->tid, NULL);
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
