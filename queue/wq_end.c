/* wq_end: ending jobs. A job ends with its op; its waiters and journal
 * record are collected under the lock (wq_end_list) and acted on after it
 * (wq_end_flush), so no client callback or journal call runs locked. */
#include "wq_internal.h"

#include "clock.h"

#include <stdlib.h>

wq_outcome wq_end_outcome(const wq_job *j)
{
    wq_outcome o = {.job = j->id, .version = j->version, .state = j->state,
                    .status = j->status, .number = j->number,
                    .current = j->current,
                    .error = j->error, .message = j->message};
    return o;
}

static void wq_end_waiter_unlink(wq_t *q, wq_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
}

void wq_end_waiter_due(wq_t *q, wq_waiter *w, wq_job *j, wq_end_list *e)
{
    wq_waiter **pp = &j->waiters;

    while (*pp && *pp != w)
        pp = &(*pp)->jnext;
    if (*pp)
        *pp = w->jnext;
    wq_end_waiter_unlink(q, w);
    w->out = wq_end_outcome(j);
    w->jnext = e->due;
    e->due = w;
}

static void wq_end_list_version(wq_end_list *e, uint64_t version)
{
    if (e->nversions == e->capversions) {
        size_t cap = e->capversions ? 2 * e->capversions : 256;
        uint64_t *n = realloc(e->versions, cap * sizeof *n);
        if (n == NULL)
            return; /* replayed later: a no-op at the store */
        e->versions = n;
        e->capversions = cap;
    }
    e->versions[e->nversions++] = version;
}

/* With the lock held: every job of the op ends; the op is freed. */
void wq_end_op(wq_t *q, wq_op *o, enum wq_state st, uint16_t status,
               const wire_result *res, const char *error, const char *message,
               wq_end_list *e)
{
    uint64_t now = clock_mono_us();

    for (wq_job *j = o->jobs, *jn; j; j = jn) {
        jn = j->jnext;
        j->state = st;
        j->status = status;
        j->number = res ? res->number : 0;
        j->current = res ? res->version : 0;
        j->error = error;
        j->message = message;
        j->attempts = o->attempts + (st != WQ_FAILED);
        j->applied_as = o->version;
        j->op_of = NULL;
        q->charged[j->charged]--;
        metrics_add(st == WQ_APPLIED      ? &wq_m_applied
                    : st == WQ_SUPERSEDED ? &wq_m_superseded
                                          : &wq_m_failed,
                    1);
        metrics_hist_record(&wq_m_apply, now - j->admitted_us);
        wq_end_list_version(e, j->version);
        while (j->waiters)
            wq_end_waiter_due(q, j->waiters, j, e);
        j->next = NULL;
        if (q->fin_tail)
            q->fin_tail->next = j;
        else
            q->fin_head = j;
        q->fin_tail = j;
        /* Forget the oldest finished jobs past jobs_kept. */
        for (q->nfinished++; q->nfinished > (size_t)q->cfg.jobs_kept;
             q->nfinished--) {
            wq_job *old = q->fin_head;
            *wq_table_job_slot(q, &old->id) = old->hnext;
            q->fin_head = old->next;
            if (q->fin_head == NULL)
                q->fin_tail = NULL;
            wq_table_job_free(old);
        }
    }
    wq_table_op_free(q, o);
}

/* Without the lock: tell the waiters, forget the journal records. */
void wq_end_flush(wq_t *q, wq_end_list *e)
{
    for (wq_waiter *w = e->due, *n; w; w = n) {
        n = w->jnext;
        q->notify(w->who, &w->out);
        free(w);
    }
    if (e->nversions)
        journal_forget(q->jnl, e->versions, e->nversions);
    free(e->versions);
}
