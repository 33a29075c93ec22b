/* probe: GET /health of the controller's nodes (see probe.h). */
#include "probe.h"

#include "httpc.h"
#include "json_whole.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Requests sent at once by one probe_health round. */
#define PROBE_CHUNK 32
#define PROBE_URL_MAX (SUP_URL_MAX + 16)

int probe_health_seq(const char *body, size_t len, uint64_t *seq,
                       uint64_t *epoch)
{
    cJSON *j = body ? json_whole_parse(body, len, NULL) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "applied_seq");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    int rc = -1;

    if (!cJSON_IsNumber(v))
        v = cJSON_GetObjectItemCaseSensitive(j, "seq");
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
        v->valuedouble < 18446744073709551616.0) {
        *seq = (uint64_t)v->valuedouble;
        rc = 0;
    }
    if (epoch)
        *epoch = cJSON_IsNumber(e) && e->valuedouble >= 0 &&
                         e->valuedouble < 18446744073709551616.0
                     ? (uint64_t)e->valuedouble
                     : 0;
    cJSON_Delete(j);
    return rc;
}

/* Record one probe's outcome on n. */
static int probe_result(cluster_node *n, const httpc_resp *resp)
{
    int ok;

    if (resp->status == 0) {
        snprintf(n->last_error, sizeof n->last_error, "%.100s",
                 resp->error[0] ? resp->error : "no answer");
        ok = 0;
    } else if (resp->status < 200 || resp->status >= 300) {
        snprintf(n->last_error, sizeof n->last_error, "HTTP %ld",
                 resp->status);
        ok = 0;
    } else {
        n->last_error[0] = '\0';
        ok = 1;
        atomic_store(&n->last_ok_ms, sup_now_ms());
        if (n->kind == CLUSTER_STORE) {
            uint64_t seq, epoch;
            if (probe_health_seq(resp->body, resp->len, &seq, &epoch) == 0)
                atomic_store(&n->seen_seq, seq);
            atomic_store(&n->seen_epoch, epoch);
        }
    }
    atomic_store(&n->healthy, ok);
    return ok;
}

static int probe_node(cluster_node *n)
{
    const char *base = n->url;
    httpc_resp resp;
    int ok;

    probe_health(&base, 1, 1000, &resp);
    ok = probe_result(n, &resp);
    httpc_resp_free(&resp);
    return ok;
}

void probe_health(const char *const *bases, size_t n, long timeout_ms,
                  httpc_resp *resps)
{
    char urls[PROBE_CHUNK][PROBE_URL_MAX];
    httpc_req reqs[PROBE_CHUNK];

    memset(resps, 0, n * sizeof *resps);
    for (size_t base = 0; base < n; base += PROBE_CHUNK) {
        size_t k = n - base < PROBE_CHUNK ? n - base : PROBE_CHUNK;

        memset(reqs, 0, sizeof reqs);
        for (size_t i = 0; i < k; i++) {
            snprintf(urls[i], sizeof urls[i], "%s/health", bases[base + i]);
            reqs[i].method = "GET";
            reqs[i].url = urls[i];
            reqs[i].timeout_ms = timeout_ms;
        }
        httpc_parallel(reqs, resps + base, k, timeout_ms);
    }
}

void probe_nodes(cluster_t *cl, long timeout_ms)
{
    const char *bases[PROBE_CHUNK];
    httpc_resp resps[PROBE_CHUNK];
    size_t total = cl->nnodes; /* a shard added meanwhile: next round */

    for (size_t base = 0; base < total; base += PROBE_CHUNK) {
        size_t n = total - base < PROBE_CHUNK ? total - base : PROBE_CHUNK;

        for (size_t i = 0; i < n; i++)
            bases[i] = cl->nodes[base + i].url;
        probe_health(bases, n, timeout_ms, resps);
        for (size_t i = 0; i < n; i++) {
            probe_result(&cl->nodes[base + i], &resps[i]);
            httpc_resp_free(&resps[i]);
        }
    }
}

int probe_wait_ready(cluster_t *cl, int64_t timeout_ms, const atomic_int *stop,
                       char *err, size_t errlen)
{
    int64_t deadline = sup_now_ms() + timeout_ms;

    for (;;) {
        size_t missing = 0;
        for (size_t i = 0; i < cl->nnodes; i++) {
            cluster_node *n = &cl->nodes[i];
            if (atomic_load(&n->healthy) || atomic_load(&n->gone))
                continue;
            /* nginx's /health goes through to an api: probe it last. */
            if (n->kind == CLUSTER_NGINX && missing > 0) {
                missing++;
                snprintf(n->last_error, sizeof n->last_error,
                         "waiting for the others");
                continue;
            }
            if (!probe_node(n))
                missing++;
        }
        if (missing == 0) {
            atomic_store(&cl->ready, 1);
            return 0;
        }
        if (stop && atomic_load(stop))
            return cluster_errf(err, errlen, "stopped before ready");
        if (sup_now_ms() >= deadline)
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    {
        size_t off = (size_t)snprintf(err, errlen,
                                      "not healthy after %lld ms:",
                                      (long long)timeout_ms);
        for (size_t i = 0; i < cl->nnodes && off < errlen; i++) {
            const cluster_node *n = &cl->nodes[i];
            if (!atomic_load(&n->healthy) && !atomic_load(&n->gone))
                off += (size_t)snprintf(err + off, errlen - off, " %s (%s)",
                                        n->name, n->last_error);
        }
    }
    return -1;
}

int probe_all_healthy(cluster_t *cl)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (!atomic_load(&cl->nodes[i].healthy) &&
            !atomic_load(&cl->nodes[i].gone))
            return 0;
    return 1;
}

