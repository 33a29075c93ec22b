/* ui_state: GET /ui/state, the one JSON the dashboard polls (ui/; the
 * fields in docs/PROTOCOL.md "Dashboard"):
 *   {"mode":"cluster","now_ms", "status":<GET /status>, "ring":[{"shard",
 *    "share"}], "queue":<the queue's /stats> | null, "apis":[{"name","url",
 *    "stats":<its /stats> | null}], "migration":<GET /rebalance> | null,
 *    "events":[{"id","t_ms","kind","text"}], "last_event"}
 * ?after=ID gives only the events newer than ID (the page keeps the rest).
 *
 * The queue's and the apis' /stats are fetched in parallel (500 ms at most)
 * and kept 1 s, so any number of open pages cost those processes one
 * request a second, and nobody watching costs nothing. A fetch that sees
 * the queue's spill counters move adds a "spill" event.
 *
 * Threads: any HTTP thread; one fetch at a time (a mutex). */
#ifndef KV_CONTROLLER_UI_STATE_H
#define KV_CONTROLLER_UI_STATE_H

#include "cluster.h"
#include "reshard.h"
#include "sup.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#define UI_STATE_FETCH_MS 500
#define UI_STATE_KEEP_MS 1000

cJSON *ui_state_cluster(cluster_t *cl, sup_t *sup, reshard_t *rs,
                        uint64_t events_after);

#endif
