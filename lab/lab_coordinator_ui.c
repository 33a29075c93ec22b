/* lab_coordinator_ui: GET /ui/state of the lab (the dashboard's lab view,
 * ui/ui.js; docs/PROTOCOL.md "Dashboard"):
 *   {"mode":"lab","now_ms","lab":<GET /status>,"cost":{"per_hour",
 *    "budget_per_hour","within_budget"},"gateway":<the gateway's GET
 *    /internal/limiter: its /stats with rate_limiter.windows, each client's
 *    current window> | null,"events":[...],"last_event"}
 * The gateway is asked at most once a second (500 ms at most), outside the
 * lab's lock, on a route it neither limits nor counts: an open page costs
 * it one request a second, spends no client's window, and a hung gateway
 * never holds the coordinator. */
#include "lab_coordinator.h"

#include "events.h"
#include "hlc.h"
#include "httpc.h"
#include "json_whole.h"
#include "clock.h"

#include <pthread.h>
#include <stdio.h>

#define LAB_UI_FETCH_MS 500
#define LAB_UI_KEEP_MS 1000

static pthread_mutex_t lab_ui_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t lab_ui_at_ms;
static cJSON *lab_ui_gateway;

/* The gateway's /stats, refetched when older than LAB_UI_KEEP_MS; a copy. */
static cJSON *lab_ui_gateway_stats(void)
{
    char url[64];
    httpc_req req = {.url = url, .timeout_ms = LAB_UI_FETCH_MS};
    httpc_resp resp;
    uint64_t now = clock_mono_ms();
    cJSON *copy;

    pthread_mutex_lock(&lab_ui_mu);
    if (lab_ui_at_ms == 0 || now - lab_ui_at_ms >= LAB_UI_KEEP_MS) {
        snprintf(url, sizeof url, "http://%s:%d/internal/limiter",
                 LAB_COORDINATOR_HOST, LAB_COORDINATOR_GATEWAY_PORT);
        cJSON_Delete(lab_ui_gateway);
        lab_ui_gateway = NULL;
        if (httpc_do(&req, &resp) == 0 && resp.status == 200)
            lab_ui_gateway = json_whole_parse(resp.body, resp.len, NULL);
        httpc_resp_free(&resp);
        lab_ui_at_ms = now;
    }
    copy = lab_ui_gateway ? cJSON_Duplicate(lab_ui_gateway, 1) : cJSON_CreateNull();
    pthread_mutex_unlock(&lab_ui_mu);
    return copy;
}

cJSON *lab_coordinator_ui_state(lab_coordinator_t *L, uint64_t events_after)
{
    const lab_config *cfg = lab_coordinator_cfg(L);
    cJSON *root = cJSON_CreateObject(), *cost;

    if (root == NULL)
        return NULL;
    cJSON_AddStringToObject(root, "mode", "lab");
    cJSON_AddNumberToObject(root, "now_ms", (double)(hlc_wall_us() / 1000u));
    cJSON_AddItemToObject(root, "lab", lab_coordinator_status_json(L));
    cost = cJSON_AddObjectToObject(root, "cost");
    cJSON_AddNumberToObject(cost, "per_hour", (double)lab_config_cost_per_hour(cfg));
    cJSON_AddNumberToObject(cost, "budget_per_hour", LAB_CONFIG_BUDGET_USD);
    cJSON_AddBoolToObject(cost, "within_budget", lab_config_within_budget(cfg));
    cJSON_AddItemToObject(root, "gateway", lab_ui_gateway_stats());
    cJSON_AddItemToObject(root, "events", events_json(events_after));
    cJSON_AddNumberToObject(root, "last_event", (double)events_last_id());
    return root;
}
