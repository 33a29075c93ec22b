/* wq: the write queue's lifecycle (queue/wq.h; the pieces are listed in
 * queue/wq_internal.h), its metrics, gauges and spill log. */
#include "wq_internal.h"

#include "clock.h"
#include "log.h"

#include <stdlib.h>

const char *const wq_class_names[WQ_NCLASS] = {"main", "excess", "stale"};

#define WQ_COUNTER(var, nm, hp) metric var = {nm, hp, "counter", 0, NULL}
#define WQ_GAUGE(var, nm, hp) metric var = {nm, hp, "gauge", 0, NULL}
WQ_COUNTER(wq_m_admitted, "kv_queue_admitted_total", "jobs accepted");
WQ_COUNTER(wq_m_applied, "kv_queue_applied_total", "jobs applied by a shard");
WQ_COUNTER(wq_m_superseded, "kv_queue_superseded_total",
           "jobs the shard ignored: it held a newer version of the key");
WQ_COUNTER(wq_m_failed, "kv_queue_failed_total", "jobs that ended failed");
WQ_COUNTER(wq_m_rejected, "kv_queue_rejected_total", "writes refused with 429");
WQ_COUNTER(wq_m_coalesced, "kv_queue_coalesced_total",
           "jobs merged into a pending op of the same key");
WQ_COUNTER(wq_m_dispatched, "kv_queue_dispatched_total", "ops sent to shards");
WQ_COUNTER(wq_m_batches, "kv_queue_batches_total", "batches sent to primaries");
WQ_COUNTER(wq_m_retries, "kv_queue_retries_total", "batches retried after an error");
WQ_COUNTER(wq_m_spill_excess, "kv_queue_spilled_excess_total",
           "writes of keys over max_key_rate sent to EXCESS");
WQ_COUNTER(wq_m_spill_stale, "kv_queue_spilled_stale_total",
           "ops that waited past stale_after_ms moved to STALE");
WQ_COUNTER(wq_m_replayed, "kv_queue_replayed_total", "jobs replayed from the journal");
WQ_GAUGE(wq_m_depth_main, "kv_queue_depth_main", "jobs queued in MAIN");
WQ_GAUGE(wq_m_depth_excess, "kv_queue_depth_excess", "jobs queued in EXCESS");
WQ_GAUGE(wq_m_depth_stale, "kv_queue_depth_stale", "jobs queued in STALE");
metrics_hist wq_m_apply = {.name = "kv_queue_apply_seconds",
                           .help = "admission to apply latency"};

const char *wq_op_name(uint8_t op)
{
    return op == WIRE_PUT ? "put" : op == WIRE_DEL ? "delete" : "incr";
}

void wq_gauges(wq_t *q)
{
    metrics_set(&wq_m_depth_main, (int64_t)q->jobs_in[WQ_MAIN]);
    metrics_set(&wq_m_depth_excess, (int64_t)q->jobs_in[WQ_EXCESS]);
    metrics_set(&wq_m_depth_stale, (int64_t)q->jobs_in[WQ_STALE]);
}

/* One log line per spill, at most 10 a second (a hot key spills a lot). */
void wq_log_spill(wq_t *q, const char *fmt, const char *key, size_t klen,
                         uint32_t shard)
{
    uint64_t now = clock_mono_us();
    if (now - q->log_window_us > 1000000) {
        if (q->log_dropped)
            log_info("(%u more spills not logged)", q->log_dropped);
        q->log_window_us = now;
        q->log_count = q->log_dropped = 0;
    }
    if (q->log_count++ < 10)
        log_info(fmt, (int)(klen > 64 ? 64 : klen), key, shard);
    else
        q->log_dropped++;
}

/* Everything wq_start made, threads joined already (or never started). */
static void wq_free(wq_t *q)
{
    for (size_t i = 0; i < WQ_MAX_SHARDS; i++)
        for (int c = 0; c < WQ_NCLASS; c++)
            while (q->shards[i].fifo[c].head) {
                wq_op *o = q->shards[i].fifo[c].head;
                wq_table_fifo_del(&q->shards[i].fifo[c], o);
                wq_table_op_free(q, o);
            }
    for (size_t b = 0; b < WQ_JOB_BUCKETS; b++)
        for (wq_job *j = q->jobs[b], *n; j; j = n) {
            n = j->hnext;
            wq_table_job_free(j);
        }
    if (q->jnl)
        journal_close(q->jnl);
    ratelimit_free(q->key_rate);
    ratelimit_free(q->drain_rate);
    free(q->workers);
    pthread_cond_destroy(&q->work);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

wq_t *wq_start(const kv_config *cfg, topo_watch *topo, const char *journal_dir,
               wq_notify_fn notify)
{
    wq_t *q = calloc(1, sizeof *q);
    static metric *const ms[] = {
        &wq_m_admitted, &wq_m_applied, &wq_m_superseded, &wq_m_failed,
        &wq_m_rejected, &wq_m_coalesced,
        &wq_m_dispatched, &wq_m_batches, &wq_m_retries, &wq_m_spill_excess,
        &wq_m_spill_stale, &wq_m_replayed, &wq_m_depth_main, &wq_m_depth_excess,
        &wq_m_depth_stale};

    if (q == NULL)
        return NULL;
    q->cfg = *cfg;
    q->topo = topo;
    q->notify = notify;
    q->cap[WQ_MAIN] = (size_t)cfg->max_queue_size;
    q->cap[WQ_EXCESS] = (size_t)cfg->spillover_queue_size;
    q->cap[WQ_STALE] = (size_t)cfg->stale_queue_size;
    q->tokens_at_us = clock_mono_us();
    hlc_init(&q->hlc, NULL);
    pthread_mutex_init(&q->mu, NULL);
    clock_cond_init(&q->work);
    if (cfg->max_key_rate > 0) {
        q->key_rate = ratelimit_new(RATELIMIT_SLIDING, (uint32_t)cfg->max_key_rate,
                             (uint64_t)cfg->key_window_s * 1000, 1000000);
        q->drain_rate = ratelimit_new(RATELIMIT_SLIDING, (uint32_t)cfg->max_key_rate,
                               (uint64_t)cfg->key_window_s * 1000, 1000000);
    }
    journal_hooks hooks = {.next_id = wq_admit_next_id, .committed = wq_admit_committed, .arg = q};
    q->jnl = journal_open(journal_dir, (size_t)cfg->journal_map_mb, cfg->fsync, &hooks);
    if (q->jnl == NULL)
        goto fail;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        metrics_register(ms[i]);
    metrics_register_hist(&wq_m_apply);
    /* Never number below what an earlier run handed out. */
    hlc_observe(&q->hlc, journal_high(q->jnl));
    if (wq_replay_journal(q, journal_dir) != 0)
        goto fail;
    wq_gauges(q);
    q->workers = calloc((size_t)cfg->worker_count, sizeof *q->workers);
    for (int64_t i = 0; i < cfg->worker_count; i++)
        pthread_create(&q->workers[i], NULL, wq_dispatch_worker, q);
    pthread_create(&q->reaper, NULL, wq_age_reaper, q);
    return q;
fail:
    wq_free(q);
    return NULL;
}

void wq_stop(wq_t *q)
{
    size_t left;

    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_broadcast(&q->work);
    pthread_mutex_unlock(&q->mu);
    for (int64_t i = 0; i < q->cfg.worker_count; i++)
        pthread_join(q->workers[i], NULL);
    pthread_join(q->reaper, NULL);
    left = q->jobs_in[WQ_MAIN] + q->jobs_in[WQ_EXCESS] + q->jobs_in[WQ_STALE];
    if (left)
        log_info("stopping with %zu jobs queued: they stay in the journal", left);
    wq_free(q);
}
