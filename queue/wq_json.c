/* wq_json: the queue's JSON views, GET /jobs/{id} and /stats
 * (docs/PROTOCOL.md "Queue"). */
#include "wq_internal.h"

#include "clock.h"

#include <stdio.h>

cJSON *wq_json_job(wq_t *q, const jobid *id)
{
    static const char *const names[] = {"queued", "applied", "failed",
                                        "superseded"};
    cJSON *o = NULL;
    wq_job *j;
    char idtxt[JOBID_TEXT + 1];

    pthread_mutex_lock(&q->mu);
    j = *wq_table_job_slot(q, id);
    if (j) {
        jobid_format(&j->id, idtxt);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "job", idtxt);
        cJSON_AddStringToObject(o, "key", j->key);
        cJSON_AddStringToObject(o, "op", wq_op_name(j->op));
        cJSON_AddStringToObject(o, "status", names[j->state]);
        cJSON_AddNumberToObject(o, "version", (double)j->version);
        cJSON_AddNumberToObject(o, "shard", j->shard);
        if (j->state == WQ_QUEUED) {
            cJSON_AddStringToObject(o, "queue", wq_class_names[j->op_of->cls]);
            cJSON_AddNumberToObject(o, "attempts", j->op_of->attempts);
        } else {
            cJSON_AddNumberToObject(o, "attempts", j->attempts);
            /* Coalesced: it went out as part of a newer write of the key. */
            if (j->applied_as != j->version)
                cJSON_AddNumberToObject(o, "coalesced_into", (double)j->applied_as);
        }
        if (j->state == WQ_APPLIED && j->op == WIRE_INCR)
            cJSON_AddNumberToObject(o, "value", (double)j->number);
        if (j->state == WQ_SUPERSEDED)
            cJSON_AddNumberToObject(o, "current_version", (double)j->current);
        if (j->state == WQ_FAILED) {
            cJSON_AddStringToObject(o, "error", j->error);
            cJSON_AddStringToObject(o, "message", j->message);
            cJSON_AddNumberToObject(o, "code", j->status);
            if (j->status == 412)
                cJSON_AddNumberToObject(o, "current_version", (double)j->current);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return o;
}

void wq_json_stats(wq_t *q, cJSON *obj)
{
    cJSON *shards = cJSON_CreateArray(), *depth, *cap, *used;
    topo_t *t = topo_watch_get(q->topo); /* the shards it routes to now */

    pthread_mutex_lock(&q->mu);
    depth = cJSON_AddObjectToObject(obj, "depth");
    cap = cJSON_AddObjectToObject(obj, "capacity");
    used = cJSON_AddObjectToObject(obj, "held");
    for (int c = 0; c < WQ_NCLASS; c++) {
        cJSON_AddNumberToObject(depth, wq_class_names[c], (double)q->jobs_in[c]);
        cJSON_AddNumberToObject(cap, wq_class_names[c], (double)q->cap[c]);
    }
    cJSON_AddNumberToObject(used, "main", (double)q->charged[WQ_MAIN]);
    cJSON_AddNumberToObject(used, "excess", (double)q->charged[WQ_EXCESS]);
    for (size_t k = 0; t && k < t->nshards; k++) {
        uint32_t i = t->shards[k].id;
        cJSON *s = cJSON_CreateObject();
        cJSON_AddNumberToObject(s, "shard", (double)i);
        cJSON_AddNumberToObject(s, "backlog_ops", (double)q->shards[i].ops);
        cJSON_AddNumberToObject(s, "failures", q->shards[i].failures);
        cJSON_AddBoolToObject(s, "sending", q->shards[i].busy);
        cJSON_AddItemToArray(shards, s);
    }
    pthread_mutex_unlock(&q->mu);
    topo_put(t);
    cJSON_AddItemToObject(obj, "shards", shards);
    cJSON_AddNumberToObject(obj, "admitted", (double)metrics_get(&wq_m_admitted));
    cJSON_AddNumberToObject(obj, "applied", (double)metrics_get(&wq_m_applied));
    cJSON_AddNumberToObject(obj, "superseded", (double)metrics_get(&wq_m_superseded));
    cJSON_AddNumberToObject(obj, "failed", (double)metrics_get(&wq_m_failed));
    cJSON_AddNumberToObject(obj, "rejected", (double)metrics_get(&wq_m_rejected));
    cJSON_AddNumberToObject(obj, "coalesced", (double)metrics_get(&wq_m_coalesced));
    cJSON_AddNumberToObject(obj, "dispatched_ops", (double)metrics_get(&wq_m_dispatched));
    cJSON_AddNumberToObject(obj, "batches", (double)metrics_get(&wq_m_batches));
    cJSON_AddNumberToObject(obj, "retried_batches", (double)metrics_get(&wq_m_retries));
    cJSON_AddNumberToObject(obj, "spilled_excess", (double)metrics_get(&wq_m_spill_excess));
    cJSON_AddNumberToObject(obj, "spilled_stale", (double)metrics_get(&wq_m_spill_stale));
    cJSON_AddNumberToObject(obj, "replayed", (double)metrics_get(&wq_m_replayed));
    cJSON_AddNumberToObject(obj, "journal_records", (double)journal_count(q->jnl));
    cJSON_AddNumberToObject(obj, "apply_p50_ms", metrics_hist_percentile(&wq_m_apply, 0.5) / 1000.0);
    cJSON_AddNumberToObject(obj, "apply_p99_ms", metrics_hist_percentile(&wq_m_apply, 0.99) / 1000.0);
    {
        /* Since the previous /stats at least a second before (a live
         * view's number; the two above are the process lifetime's). */
        static metrics_recent recent = METRICS_RECENT_INIT;
        uint64_t p50, p99, n;
        metrics_recent_read(&wq_m_apply, &recent, clock_mono_ms(), 1000, &p50,
                            &p99, &n);
        cJSON_AddNumberToObject(obj, "apply_recent_p99_ms", p99 / 1000.0);
        cJSON_AddNumberToObject(obj, "apply_recent_count", (double)n);
    }
}
