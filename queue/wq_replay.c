/* wq_replay: at start, every job the journal still holds is queued again
 * in MAIN with its version and id; the store's version rule makes those
 * already applied no-ops. A record of the old journal format has no id
 * (the version was the id then): it gets a new random one, as its old
 * numeric id is not a job id any more. */
#include "wq_internal.h"

#include "clock.h"
#include "log.h"

/* Journal replay at start: every job left is queued again in MAIN with its
 * version; the store's version rule makes those already applied no-ops. */
static void wq_replay_one(const journal_rec *r, void *ctx)
{
    wq_t *q = ctx;
    topo_t *t = topo_watch_get(q->topo);
    wq_write w = {.op = r->op, .key = r->key, .klen = r->klen, .val = r->val,
                  .vlen = r->vlen, .delta = r->delta,
                  .cond = r->flags & WIRE_F_CONDITIONS, .if_match = r->if_match,
                  .expires_at = r->expires_at};
    uint32_t shard = wq_route_owner(t, r->key, r->klen);
    wq_job *j = wq_table_job_new(&w, shard);
    wq_key *k;

    topo_put(t);
    hlc_observe(&q->hlc, r->version);
    if (j == NULL) {
        log_error("replay: out of memory at version %llu",
                  (unsigned long long)r->version);
        return;
    }
    j->version = r->version;
    j->admitted_us = clock_mono_us();
    if (r->has_job) {
        j->id = r->job;
    } else if (jobid_new(&j->id, 1) != 0) {
        /* Still applied: the journal keeps it for the next start. */
        log_error("replay: no random bytes for a job id (version %llu)",
                  (unsigned long long)r->version);
        wq_table_job_free(j);
        return;
    }
    if ((k = wq_table_key_get(q, r->key, r->klen)) == NULL ||
        wq_admit_enqueue(q, j, &w, WQ_MAIN, k) != 0) {
        log_error("replay: out of memory at version %llu",
                  (unsigned long long)r->version);
        wq_table_job_free(j);
        return;
    }
    *wq_table_job_slot(q, &j->id) = j;
    q->charged[WQ_MAIN]++; /* over capacity if it must: nothing is dropped */
    metrics_add(&wq_m_replayed, 1);
}

int wq_replay_journal(wq_t *q, const char *journal_dir)
{
    if (journal_count(q->jnl) == 0)
        return 0;
    /* Replay needs the ring: wait for the first topology. */
    if (topo_watch_wait(q->topo, 30000) != 0) {
        log_error("no topology within 30 s: cannot replay the journal");
        return -1;
    }
    journal_replay(q->jnl, wq_replay_one, q);
    log_info("replayed %lld jobs from the journal in %s",
             (long long)metrics_get(&wq_m_replayed), journal_dir);
    return 0;
}
