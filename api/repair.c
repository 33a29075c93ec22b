#include "repair.h"

#include "clock.h"
#include "httpc.h"
#include "kvhdr.h"
#include "log.h"
#include "metrics.h"
#include "wire.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

METRIC_COUNTER(m_rep_queued, "kv_api_read_repairs_queued_total",
               "read repairs queued for a stale replica");
METRIC_COUNTER(m_rep_sent, "kv_api_read_repairs_sent_total",
               "read repairs a replica answered 200 to");
METRIC_COUNTER(m_rep_applied, "kv_api_read_repairs_applied_total",
               "read repairs that changed the replica (it was stale)");
METRIC_COUNTER(m_rep_failed, "kv_api_read_repairs_failed_total",
               "read repairs the replica did not take (error or no answer)");
METRIC_COUNTER(m_rep_dropped, "kv_api_read_repairs_dropped_total",
               "read repairs dropped because the repair queue was full");

void repair_metrics_register(void)
{
    metrics_register(&m_rep_queued);
    metrics_register(&m_rep_sent);
    metrics_register(&m_rep_applied);
    metrics_register(&m_rep_failed);
    metrics_register(&m_rep_dropped);
}

typedef struct repair_item {
    struct repair_item *next;
    char *url;               /* <replica>/internal/repair */
    uint64_t epoch;
    size_t bytes;            /* what it counts against max_bytes */
    wire_buf op;             /* the encoded op */
} repair_item;

struct repair {
    pthread_mutex_t mu;
    pthread_cond_t cond;     /* work arrived, or stopping */
    pthread_cond_t idle;     /* queue empty and nothing in flight */
    repair_item *head, *tail;
    size_t items, bytes;
    int busy;
    int stopping;
    pthread_t thread;
    repair_opts o;
    char auth[KVHDR_AUTH_MAX];
};

static void repair_item_free(repair_item *it)
{
    if (it == NULL)
        return;
    free(it->url);
    wire_buf_free(&it->op);
    free(it);
}

static void repair_send(repair_t *q, repair_item *it)
{
    char eh[KVHDR_EPOCH_MAX];
    const char *hdrs[4];
    size_t nh = 0, off = 0;
    httpc_resp resp;
    wire_result res;

    if (q->auth[0])
        hdrs[nh++] = q->auth;
    kvhdr_epoch(eh, sizeof eh, it->epoch);
    hdrs[nh++] = eh;
    hdrs[nh++] = "Content-Type: application/octet-stream";
    hdrs[nh] = NULL;
    httpc_req req = {.method = "POST", .url = it->url, .body = it->op.data,
                     .body_len = it->op.len, .headers = hdrs,
                     .timeout_ms = q->o.timeout_ms};
    httpc_do(&req, &resp);
    if (resp.status == 200) {
        metrics_add(&m_rep_sent, 1);
        /* The answer is one wire_result per op (as /internal/batch); 200
         * means the replica changed, 208 that it had that version already. */
        if (wire_next_result(resp.body, resp.len, &off, &res) == 1 &&
            res.status == 200)
            metrics_add(&m_rep_applied, 1);
    } else {
        metrics_add(&m_rep_failed, 1);
        log_debug("read repair %s: %s", it->url,
                  resp.status ? "HTTP error" : resp.error);
        if (resp.status)
            log_debug("read repair %s: HTTP %ld", it->url, resp.status);
    }
    httpc_resp_free(&resp);
}

static void *repair_main(void *arg)
{
    repair_t *q = arg;

    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->head == NULL && !q->stopping)
            pthread_cond_wait(&q->cond, &q->mu);
        if (q->stopping)
            break;
        repair_item *it = q->head;
        q->head = it->next;
        if (q->head == NULL)
            q->tail = NULL;
        q->items--;
        q->bytes -= it->bytes;
        q->busy = 1;
        pthread_mutex_unlock(&q->mu);
        repair_send(q, it);
        repair_item_free(it);
        pthread_mutex_lock(&q->mu);
        q->busy = 0;
        if (q->head == NULL)
            pthread_cond_broadcast(&q->idle);
    }
    pthread_mutex_unlock(&q->mu);
    httpc_thread_done();
    return NULL;
}

repair_t *repair_start(const repair_opts *o)
{
    repair_t *q = calloc(1, sizeof *q);

    if (q == NULL)
        return NULL;
    q->o = *o;
    if (q->o.max_items == 0)
        q->o.max_items = 1024;
    if (q->o.max_bytes == 0)
        q->o.max_bytes = (size_t)16 << 20;
    if (q->o.timeout_ms <= 0)
        q->o.timeout_ms = 1000;
    if (o->auth && o->auth[0])
        snprintf(q->auth, sizeof q->auth, "%s", o->auth);
    q->o.auth = NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cond, NULL);
    clock_cond_init(&q->idle);
    if (pthread_create(&q->thread, NULL, repair_main, q) != 0) {
        pthread_cond_destroy(&q->idle);
        pthread_cond_destroy(&q->cond);
        pthread_mutex_destroy(&q->mu);
        free(q);
        return NULL;
    }
    return q;
}

void repair_stop(repair_t *q)
{
    if (q == NULL)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    while (q->head) {
        repair_item *it = q->head;
        q->head = it->next;
        metrics_add(&m_rep_dropped, 1);
        repair_item_free(it);
    }
    pthread_cond_destroy(&q->idle);
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

int repair_push(repair_t *q, const char *replica, uint64_t epoch,
                int tombstone, const char *key, size_t klen, const void *val,
                size_t vlen, uint64_t version, uint64_t expires_at)
{
    size_t bytes = klen + (tombstone ? 0 : vlen) + WIRE_OP_HDR +
                   (!tombstone && expires_at ? 8 : 0);
    repair_item *it;
    wire_op op;

    if (q == NULL)
        return -1;
    /* Cheap early check without the copy (the count is rechecked below). */
    pthread_mutex_lock(&q->mu);
    int full = q->items >= q->o.max_items || q->bytes + bytes > q->o.max_bytes;
    pthread_mutex_unlock(&q->mu);
    if (full) {
        metrics_add(&m_rep_dropped, 1);
        return -1;
    }
    it = calloc(1, sizeof *it);
    if (it == NULL || asprintf(&it->url, "%s/internal/repair", replica) < 0) {
        if (it)
            it->url = NULL;
        repair_item_free(it);
        metrics_add(&m_rep_dropped, 1);
        return -1;
    }
    memset(&op, 0, sizeof op);
    op.op = tombstone ? WIRE_DEL : WIRE_PUT;
    op.version = version;
    op.key = key;
    op.key_len = klen;
    op.val = tombstone ? NULL : val;
    op.val_len = tombstone ? 0 : vlen;
    if (!tombstone && expires_at) {
        op.flags = WIRE_F_EXPIRES;
        op.expires_at = expires_at;
    }
    if (wire_put_op(&it->op, &op) < 0) {
        repair_item_free(it);
        metrics_add(&m_rep_dropped, 1);
        return -1;
    }
    it->epoch = epoch;
    it->bytes = bytes;
    pthread_mutex_lock(&q->mu);
    if (q->stopping || q->items >= q->o.max_items ||
        q->bytes + bytes > q->o.max_bytes) {
        pthread_mutex_unlock(&q->mu);
        repair_item_free(it);
        metrics_add(&m_rep_dropped, 1);
        return -1;
    }
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->items++;
    q->bytes += bytes;
    pthread_cond_signal(&q->cond);
    pthread_mutex_unlock(&q->mu);
    metrics_add(&m_rep_queued, 1);
    return 0;
}

int repair_flush(repair_t *q, long timeout_ms)
{
    uint64_t end = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    uint64_t now;
    int rc;

    pthread_mutex_lock(&q->mu);
    while ((q->head || q->busy) && (now = clock_mono_ms()) < end)
        clock_cond_wait_ms(&q->idle, &q->mu, end - now);
    rc = q->head || q->busy ? -1 : 0;
    pthread_mutex_unlock(&q->mu);
    return rc;
}
