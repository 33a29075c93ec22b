/* reshard: the controller's side of a live shard migration
 * (docs/PROTOCOL.md "Growing and shrinking: shard migration").
 *
 * The API (controller_http.c routes them here):
 *   POST /shards          add a shard (supervised: empty body or {}; with
 *                         controller.supervise=0 {"primary":URL,
 *                         "secondaries":[URL,...]}) -> 202 {"migration":{..}}
 *   DELETE /shards/{id}   remove one -> 202 {"migration":{...}}
 *   GET /rebalance        the current or last migration and its progress
 * One migration at a time: another request while one runs is 409
 * migration_running (with the running one).
 *
 * The driver (reshard_tick, one step per health round on the health
 * thread, after failover_tick has probed every node):
 *   prepare  (add) the new shard is in the topology's "shards" but not in
 *            "ring"; its stores start (supervised) or are the given URLs.
 *            When all of them answer /health and its primary shows its
 *            secondaries alive: copy. Not within RESHARD_PREPARE_MS: failed,
 *            the shard is taken out again.
 *   copy     "ring" = from, migration {id, "copy", from, to}. When every
 *            source primary (add: every shard of from; remove: the removed
 *            one) shows migration id M, caught_up and last_seq - position
 *            <= RESHARD_MAX_LAG: freeze.
 *   freeze   when every source primary shows drained: switch.
 *   switch   "ring" = to. When every live replica of every source shard
 *            shows phase switch with id M (replicas that do not answer are
 *            skipped): open = no migration; a removed shard's stores stop
 *            and it leaves "shards".
 * Every phase change is a new cluster epoch, made and saved to the state
 * file under the cluster lock (so GET /topology never shows what is not on
 * disk); then every store, the queue and the apis are told
 * (POST /internal/topology-changed). A controller started with a migration
 * in its state file goes on from that phase.
 *
 * Threading: the API functions run on HTTP threads, reshard_tick on the
 * health thread; a change of the migration is made under one lock.
 * Ownership: reshard_new allocates, reshard_free frees; cl and sup are
 * borrowed. The API functions return new cJSON trees. */
#ifndef KV_CTL_RESHARD_H
#define KV_CTL_RESHARD_H

#include "cluster.h"
#include "metrics.h"
#include "sup.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define RESHARD_MAX_LAG 2000         /* copy -> freeze: records behind */
#define RESHARD_PREPARE_MS 60000     /* the new shard's stores come up */

typedef struct reshard reshard_t;

/* One store's "migration" object of its GET /health. */
typedef struct reshard_src {
    uint32_t shard;
    int answered;                /* /health answered 200 */
    int has_mig;                 /* ... with a "migration" object */
    uint64_t id;
    char phase[16];
    int source, caught_up, drained;
    uint64_t position, last_seq, fence_seq, scanned, sent, sent_bytes;
    uint64_t keys;               /* /health "keys" */
} reshard_src;

reshard_t *reshard_new(cluster_t *cl, sup_t *sup);
void reshard_free(reshard_t *r);

/* POST /shards: *status gets 202, 400 or 409; returns the body. */
cJSON *reshard_add(reshard_t *r, const char *body, size_t len, int *status);
/* DELETE /shards/{id}: 202, 400 (the last shard), 404 or 409. */
cJSON *reshard_remove(reshard_t *r, uint32_t id, int *status);
/* GET /rebalance body. */
cJSON *reshard_rebalance(reshard_t *r);
/* One step of the driver (health thread). now_ms is sup_now_ms(). 1 while
 * a migration runs: the next step comes after RESHARD_STEP_MS, not a whole
 * health interval (a freeze holds writes to moving keys until it ends). */
#define RESHARD_STEP_MS 50
int reshard_tick(reshard_t *r, int64_t now_ms);
/* Progress figures for /metrics: keys sent and bytes sent, summed over
 * the sources, as last seen. */
void reshard_progress(reshard_t *r, uint64_t *sent, uint64_t *sent_bytes);
/* The kv_controller_migration_* lines of /metrics. */
void reshard_metrics(metrics_text *t, reshard_t *r);

/* ---- pure decisions (reshard_decide.c, unit tested) ---- */

/* A store's /health body into out (shard untouched). 0, or -1 when it is
 * not JSON. */
int reshard_decide_parse_health(const char *body, size_t len, reshard_src *out);
/* copy -> freeze: every source answered with migration id, caught_up and
 * last_seq - position <= max_lag. */
int reshard_decide_may_freeze(const reshard_src *s, size_t n, uint64_t id,
                       uint64_t max_lag);
/* freeze -> switch: every source answered with migration id and drained. */
int reshard_decide_may_switch(const reshard_src *s, size_t n, uint64_t id);
/* switch -> open: every replica that answered shows migration id in phase
 * switch (the ones that did not answer are skipped), and one answered. */
int reshard_decide_may_open(const reshard_src *s, size_t n, uint64_t id);

#endif
