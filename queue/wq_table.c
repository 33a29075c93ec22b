/* wq_table: the write queue's lookup structures: jobs by id, keys by name
 * (each key lists its queued ops, oldest first), and the per-shard FIFOs.
 * Lock held for all of them. */
#include "wq_internal.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

wq_job **wq_table_job_slot(wq_t *q, const jobid *id)
{
    wq_job **pp = &q->jobs[jobid_hash(id) % WQ_JOB_BUCKETS];
    while (*pp && !jobid_equal(&(*pp)->id, id))
        pp = &(*pp)->hnext;
    return pp;
}

wq_key **wq_table_key_slot(wq_t *q, const char *key, size_t klen)
{
    wq_key **pp = &q->keys[XXH3_64bits(key, klen) % WQ_KEY_BUCKETS];
    while (*pp && ((*pp)->klen != klen || memcmp((*pp)->key, key, klen) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

void wq_table_fifo_push(wq_fifo *f, wq_op *o)
{
    o->next = NULL;
    o->prev = f->tail;
    if (f->tail)
        f->tail->next = o;
    else
        f->head = o;
    f->tail = o;
}

void wq_table_fifo_push_front(wq_fifo *f, wq_op *o)
{
    o->prev = NULL;
    o->next = f->head;
    if (f->head)
        f->head->prev = o;
    else
        f->tail = o;
    f->head = o;
}

void wq_table_fifo_del(wq_fifo *f, wq_op *o)
{
    if (o->prev)
        o->prev->next = o->next;
    else
        f->head = o->next;
    if (o->next)
        o->next->prev = o->prev;
    else
        f->tail = o->prev;
    o->prev = o->next = NULL;
}

/* Move every queued op of a key to another FIFO, keeping their order. */
void wq_table_key_move(wq_t *q, wq_key *k, enum wq_class to)
{
    for (wq_op *o = k->first; o; o = o->knext) {
        wq_shard *s = &q->shards[o->shard];
        if (o->inflight || o->cls == to)
            continue;
        wq_table_fifo_del(&s->fifo[o->cls], o);
        q->jobs_in[o->cls] -= o->njobs;
        q->jobs_in[to] += o->njobs;
        o->cls = to;
        wq_table_fifo_push(&s->fifo[to], o);
    }
}

void wq_table_op_free(wq_t *q, wq_op *o)
{
    wq_key *k = o->k;
    if (o->kprev)
        o->kprev->knext = o->knext;
    else
        k->first = o->knext;
    if (o->knext)
        o->knext->kprev = o->kprev;
    else
        k->last = o->kprev;
    wq_table_key_release(q, k);
    free(o->val);
    free(o);
}

void wq_table_key_release(wq_t *q, wq_key *k)
{
    if (k->first != NULL)
        return;
    *wq_table_key_slot(q, k->key, k->klen) = k->hnext;
    free(k->key);
    free(k);
}

wq_key *wq_table_key_get(wq_t *q, const char *key, size_t klen)
{
    wq_key **pp = wq_table_key_slot(q, key, klen), *k = *pp;

    if (k)
        return k;
    k = calloc(1, sizeof *k);
    if (k == NULL || (k->key = malloc(klen + 1)) == NULL) {
        free(k);
        return NULL;
    }
    memcpy(k->key, key, klen);
    k->key[klen] = '\0';
    k->klen = klen;
    *pp = k;
    return k;
}

wq_job *wq_table_job_new(const wq_write *w, uint32_t shard)
{
    wq_job *j = calloc(1, sizeof *j);
    if (j == NULL || (j->key = malloc(w->klen + 1)) == NULL) {
        free(j);
        return NULL;
    }
    memcpy(j->key, w->key, w->klen);
    j->key[w->klen] = '\0';
    j->klen = w->klen;
    j->op = w->op;
    j->shard = shard;
    return j;
}

void wq_table_job_free(wq_job *j)
{
    if (j == NULL)
        return;
    free(j->key);
    free(j);
}

/* In order: reverse the list, then push each op to the front. */
void wq_table_requeue(wq_t *q, wq_shard *s, wq_op *first)
{
    wq_op *rev = NULL;

    for (wq_op *o = first, *nx; o; o = nx) {
        nx = o->next;
        o->next = rev;
        rev = o;
    }
    for (wq_op *o = rev, *nx; o; o = nx) {
        enum wq_class cls = o->cls;
        nx = o->next;
        /* The key may have moved on (to STALE, say) while this was away. */
        for (wq_op *later = o->knext; later; later = later->knext)
            if (!later->inflight) {
                cls = later->cls;
                break;
            }
        o->inflight = 0;
        o->cls = cls;
        q->jobs_in[cls] += o->njobs;
        wq_table_fifo_push_front(&s->fifo[cls], o);
        s->ops++;
    }
}
