/* lab_coordinator: kv-controller --lab FILE, the CloudCart lab
 * (docs/PROTOCOL.md "The CloudCart lab").
 *
 * One shard: the leader (a kv-store primary) on 127.0.0.1:7001 and N
 * followers (kv-store secondaries) follower-i on 7001 + i, W and R from the
 * student_config.json with the `ordered` policy, the gateway (kv-api --lab)
 * on 8000, this controller on 7000. The lab timing profile: heartbeats every
 * 500 ms, replication batches to the sync set (the first W live followers
 * by id) wait 0.5 s and to the others 5 s, a write waits up to 10 s for its
 * quorum.
 *
 * Nodes and incarnations. A node is a logical name ("leader", "follower-3");
 * each process started for it is an incarnation (1, 2, ...) with its own
 * port and its own data directory (followers; the leader keeps one). The
 * topology the stores follow (GET /topology) lists the leader and the
 * current incarnation of every follower that is not dead by kill or exit,
 * so the leader replicates to one incarnation per node, never two.
 *
 * Status of a node: "catching_up" from its start until it reported (by
 * heartbeat) an applied seq at or past the leader's seq when it was
 * spawned, as a secondary not in a resync; "alive" then; "dead" once killed
 * (/kill: at once), once its process exited, or once it was silent for
 * dead_after (auto_spawn_delay seconds with auto_spawn, else 5 s).
 *
 * Auto-spawn (followers only): a follower dead by silence is replaced at
 * once by a new incarnation (a new port: the silent process may still hold
 * the old one), a killed or exited one after auto_spawn_delay seconds. The
 * silent original, when it wakes, hears "retired" at its next heartbeat and
 * stops (fenced); its lease (lab_heartbeat.h, store.lease_ms =
 * dead_after) ran out before the replacement existed, so it applies
 * nothing meanwhile. Respawns and fenced incarnations are counted.
 *
 * Processes are children of the supervisor (controller/sup.h) registered
 * with once = 1: the supervisor never restarts a lab node, the lab does.
 * The gateway is an ordinary supervised child (restarted if it dies).
 *
 * Threads: the main thread runs the supervisor (forks, reaps, signals); a
 * monitor thread runs the lab's clock every 50 ms (silence, auto-spawn,
 * SIGCONT after a pause, SIGKILL after a SIGTERM ignored for 3 s, the
 * ready line); HTTP threads call the lab_coordinator_* functions below. One mutex
 * guards the lab's state; no network call is made under it.
 *
 * Ownership: lab_coordinator_main owns everything it creates and frees it before it
 * returns. */
#ifndef KV_CTL_LAB_H
#define KV_CTL_LAB_H

#include "lab_config.h"
#include "metrics.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define LAB_COORDINATOR_CTL_PORT 7000
#define LAB_COORDINATOR_LEADER_PORT 7001
#define LAB_COORDINATOR_GATEWAY_PORT 8000
#define LAB_COORDINATOR_HOST "127.0.0.1"
#define LAB_COORDINATOR_HEARTBEAT_MS 500
#define LAB_COORDINATOR_SYNC_DELAY_MS 500
#define LAB_COORDINATOR_ASYNC_DELAY_MS 5000
#define LAB_COORDINATOR_QUORUM_TIMEOUT_MS 10000
#define LAB_COORDINATOR_DEAD_AFTER_DEFAULT_MS 5000  /* silence, without auto_spawn */
#define LAB_COORDINATOR_START_GRACE_MS 10000        /* first heartbeat of a new process */
#define LAB_COORDINATOR_READY_TIMEOUT_MS 30000
#define LAB_COORDINATOR_KILL_GRACE_MS 3000          /* SIGTERM, then SIGKILL */
#define LAB_COORDINATOR_MAX_FOLLOWERS 31            /* TOPO_MAX_SECONDARIES - 1 */
#define LAB_COORDINATOR_MAX_NODES 64                /* >= LAB_COORDINATOR_MAX_FOLLOWERS + 1 */
#define LAB_COORDINATOR_MAX_PROCS 512               /* incarnations ever started */
#define LAB_COORDINATOR_MAX_PAUSE_MS 600000
#define LAB_COORDINATOR_FIRST_SPARE_PORT (LAB_COORDINATOR_LEADER_PORT + LAB_CONFIG_MAX_FOLLOWERS + 1)

typedef struct lab_coordinator lab_coordinator_t;

/* kv-controller --lab FILE: runs the lab until SIGINT/SIGTERM/SIGHUP.
 * bin_dir holds kv-store and kv-api; log_dir (NULL: <lab dir>/logs) gets
 * one log file per process. Returns the process exit status. */
int lab_coordinator_main(const char *config_path, const char *bin_dir,
                const char *log_dir);

/* ---- for the HTTP routes (lab_coordinator_http.c); all thread-safe ---- */

const lab_config *lab_coordinator_cfg(const lab_coordinator_t *L);
/* GET /status, /topology (new cJSON, caller deletes). */
cJSON *lab_coordinator_status_json(lab_coordinator_t *L);
cJSON *lab_coordinator_topology_json(lab_coordinator_t *L);
/* GET /ui/state, the dashboard's lab view (lab_coordinator_ui.c); events
 * newer than events_after. */
cJSON *lab_coordinator_ui_state(lab_coordinator_t *L, uint64_t events_after);
/* The lab's /metrics lines: a lib/metrics render callback, ctx = L. */
void lab_coordinator_metrics(metrics_text *t, void *ctx);

/* POST /heartbeat from (id, incarnation): 0 = ok, 1 = retired (*current
 * gets the incarnation that replaced it), -1 = unknown node. */
int lab_coordinator_heartbeat(lab_coordinator_t *L, const char *id, uint64_t incarnation,
                     uint64_t applied_seq, const char *state, uint64_t *current);

/* POST /kill/{id}, /spawn, /pause/{id}: the HTTP status, *out the JSON
 * body (caller deletes). spawn: id NULL = the first dead follower slot or
 * a new follower; port 0 = the lab picks. */
unsigned lab_coordinator_kill(lab_coordinator_t *L, const char *id, cJSON **out);
unsigned lab_coordinator_spawn(lab_coordinator_t *L, const char *id, unsigned port, cJSON **out);
unsigned lab_coordinator_pause(lab_coordinator_t *L, const char *id, long ms, cJSON **out);

/* Where a write goes: 0 with the leader's URL and the sync set (the first
 * W alive followers by id, names into sync[], at most max), or a 503 with
 * *out the error body. */
unsigned lab_coordinator_write_plan(lab_coordinator_t *L, char *leader, size_t leaderlen,
                           char (*sync)[32], size_t max, size_t *nsync,
                           cJSON **out);
/* Where a read goes: 0 with the read set (the last R alive followers by
 * id: names and URLs), or 503 with *out. R = 0 reads the leader. */
unsigned lab_coordinator_read_plan(lab_coordinator_t *L, char (*ids)[32], char (*urls)[64],
                          size_t max, size_t *n, cJSON **out);
/* The leader applied a write at seq (from its answer). */
void lab_coordinator_note_leader_seq(lab_coordinator_t *L, uint64_t seq);
/* {"W","R","policy","sync_set":[..]} for write answers (new cJSON). */
cJSON *lab_coordinator_quorum_json(lab_coordinator_t *L);
/* How many followers are alive now. */
size_t lab_coordinator_alive(lab_coordinator_t *L);

#endif
