#include "ui_state.h"

#include "cluster_publish.h"
#include "events.h"
#include "hlc.h"
#include "httpc.h"
#include "json_whole.h"
#include "kvhdr.h"
#include "ring.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define UI_STATE_PEERS 17 /* the queue and up to 16 apis */

/* The peers' /stats as last fetched: names, urls, parsed bodies. */
static pthread_mutex_t ui_state_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t ui_state_at_ms;          /* sup_now_ms() of the last fetch */
static size_t ui_state_n;
static char ui_state_names[UI_STATE_PEERS][SUP_NAME_MAX];
static char ui_state_urls[UI_STATE_PEERS][SUP_URL_MAX];
static cJSON *ui_state_stats[UI_STATE_PEERS];
static uint64_t ui_state_spilled[2];    /* the queue's excess, stale counts */

static uint64_t ui_state_u64(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

/* A spill is news: the queue's EXCESS or STALE counters moved. */
static void ui_state_note_spills(const cJSON *queue)
{
    static const char *const names[2] = {"spilled_excess", "spilled_stale"};
    static const char *const where[2] = {"EXCESS", "STALE"};

    for (int i = 0; i < 2; i++) {
        uint64_t now = ui_state_u64(queue, names[i]);
        if (now > ui_state_spilled[i] && ui_state_at_ms)
            events_add("spill", "queue: %llu more writes spilled to %s (%llu "
                       "in all)", (unsigned long long)(now - ui_state_spilled[i]),
                       where[i], (unsigned long long)now);
        ui_state_spilled[i] = now;
    }
}

/* Refetches the queue's and every api's /stats when they are older than
 * UI_STATE_KEEP_MS. ui_state_mu held. */
static void ui_state_fetch(cluster_t *cl)
{
    httpc_req reqs[UI_STATE_PEERS];
    httpc_resp resps[UI_STATE_PEERS];
    char urls[UI_STATE_PEERS][SUP_URL_MAX + 8], auth[KVHDR_AUTH_MAX];
    const char *hdrs[2] = {kvhdr_auth(auth, sizeof auth, cl->cfg.token), NULL};
    size_t n = 0, nnodes = atomic_load(&cl->nnodes);
    int64_t now = sup_now_ms();

    if (ui_state_at_ms && now - ui_state_at_ms < UI_STATE_KEEP_MS)
        return;
    for (size_t i = 0; i < nnodes && n < UI_STATE_PEERS; i++) {
        const cluster_node *nd = &cl->nodes[i];
        if (nd->kind != CLUSTER_QUEUE && nd->kind != CLUSTER_API)
            continue;
        snprintf(ui_state_names[n], sizeof ui_state_names[n], "%s", nd->name);
        snprintf(ui_state_urls[n], sizeof ui_state_urls[n], "%s", nd->url);
        snprintf(urls[n], sizeof urls[n], "%s/stats", nd->url);
        reqs[n] = (httpc_req){.url = urls[n], .headers = hdrs[0][0] ? hdrs : NULL,
                              .timeout_ms = UI_STATE_FETCH_MS};
        n++;
    }
    httpc_parallel(reqs, resps, n, UI_STATE_FETCH_MS);
    for (size_t i = 0; i < UI_STATE_PEERS; i++) {
        cJSON_Delete(ui_state_stats[i]);
        ui_state_stats[i] = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (resps[i].status == 200)
            ui_state_stats[i] = json_whole_parse(resps[i].body, resps[i].len, NULL);
        httpc_resp_free(&resps[i]);
        if (ui_state_stats[i] && strcmp(ui_state_names[i], "queue") == 0)
            ui_state_note_spills(ui_state_stats[i]);
    }
    ui_state_n = n;
    ui_state_at_ms = now;
}

/* Each shard's share of the ring (of the keys), the ring that owns keys
 * now. */
static cJSON *ui_state_ring(cluster_t *cl)
{
    uint32_t ids[CLUSTER_MAX_SHARDS];
    cJSON *a = cJSON_CreateArray();
    ring_t *ring;
    size_t n;

    pthread_mutex_lock(&cl->mu);
    n = cluster_ring_ids(cl, ids);
    pthread_mutex_unlock(&cl->mu);
    ring = ring_new_ids(ids, n, (uint32_t)cl->cfg.vnodes);
    for (size_t i = 0; ring && a && i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "shard", ids[i]);
        cJSON_AddNumberToObject(o, "share", ring_share(ring, ids[i]));
        cJSON_AddItemToArray(a, o);
    }
    ring_free(ring);
    return a;
}

cJSON *ui_state_cluster(cluster_t *cl, sup_t *sup, reshard_t *rs,
                        uint64_t events_after)
{
    cJSON *root = cJSON_CreateObject(), *apis;

    if (root == NULL)
        return NULL;
    cJSON_AddStringToObject(root, "mode", "cluster");
    cJSON_AddNumberToObject(root, "now_ms", (double)(hlc_wall_us() / 1000u));
    cJSON_AddItemToObject(root, "status", cluster_publish_status(cl, sup));
    cJSON_AddItemToObject(root, "ring", ui_state_ring(cl));
    apis = cJSON_AddArrayToObject(root, "apis");
    cJSON_AddNullToObject(root, "queue");
    pthread_mutex_lock(&ui_state_mu);
    ui_state_fetch(cl);
    for (size_t i = 0; i < ui_state_n; i++) {
        cJSON *st = ui_state_stats[i] ? cJSON_Duplicate(ui_state_stats[i], 1)
                                      : cJSON_CreateNull();
        if (strcmp(ui_state_names[i], "queue") == 0) {
            cJSON_ReplaceItemInObject(root, "queue", st);
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", ui_state_names[i]);
        cJSON_AddStringToObject(o, "url", ui_state_urls[i]);
        cJSON_AddItemToObject(o, "stats", st);
        cJSON_AddItemToArray(apis, o);
    }
    pthread_mutex_unlock(&ui_state_mu);
    if (rs)
        cJSON_AddItemToObject(root, "migration", reshard_rebalance(rs));
    else
        cJSON_AddNullToObject(root, "migration");
    cJSON_AddItemToObject(root, "events", events_json(events_after));
    cJSON_AddNumberToObject(root, "last_event", (double)events_last_id());
    return root;
}
