/* role: a store following the topology (docs/PROTOCOL.md "Who is what").
 *
 * A role thread watches the controller's /topology (lib/topo.h, polled
 * every api.topology_poll_ms, at once after role_poke) and finds this store
 * in its shard by URL (http://<cluster.bind>:<port>):
 *  - primary: promotes itself if it was a secondary (sdb_promote: epoch,
 *    seq continues from its applied seq), runs one replication sender per
 *    secondary (store/repl_send.h) and collects tombstones every second up
 *    to the lowest seq every secondary of the topology acked (none while
 *    the topology has a migration, primary or secondary);
 *  - secondary: steps down if it was primary (senders stopped, waiting
 *    writes answered 504), follows the shard's primary: a reconcile round
 *    on start and every store.reconcile_interval_ms (store/recon.h),
 *    and collects its tombstones up to the primary's horizon;
 *  - not in the topology: refuses writes, follows nobody ("detached").
 * Epoch and role are persisted (store/sdb.h) in the same transaction as the
 * positions they go with.
 *
 * Rejoin. When the store was primary (or, after a restart, does not know
 * whom it followed) and the shard is now at a newer epoch with another
 * primary, its own position (max of last_seq and applied_seq) is compared
 * with shards[i].handoff_seq, the promoted replica's seq: at or below it,
 * the store simply continues from that position; above it, the store first
 * hands its tail (records with seq > handoff_seq, from its own changes
 * index) to the new primary with POST /internal/repair (applied there by
 * version), then wipes and does a full resync, then follows. The epoch is
 * persisted only with the wipe, so a crash in between redoes the handoff
 * (idempotent by version). A secondary whose position is past its
 * primary's last seq (409 seq_ahead) does the same with that seq. Every
 * step is logged.
 *
 * Starting. With a controller, the store is "starting" until the first
 * topology is applied: no client writes, no reads for the primary (a
 * primary killed and started again may have been replaced meanwhile). A
 * topology that does not place it leaves it what its data says.
 *
 * Without a controller (standalone) the role stays what the store had and
 * no thread runs.
 *
 * Ownership: role_start allocates (and owns the topology watcher, the
 * senders and the reconciler), role_stop joins and frees everything. db and
 * wqm are borrowed and outlive it. */
#ifndef KV_STORE_ROLE_H
#define KV_STORE_ROLE_H

#include "config.h"
#include "sdb.h"
#include "recon.h"
#include "repl_send.h"
#include "topo.h"
#include "wquorum.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct role role_t;

typedef struct role_opts {
    sdb *db;
    wquorum *wqm;             /* NULL when W = 0 */
    const kv_config *cfg;    /* copied */
    unsigned shard, replica;
    const char *self_url;    /* http://<bind>:<port> */
    const char *controller;  /* NULL: standalone */
    /* Optional gate (the lab's lease, store/heartbeat.h): reconciliation
     * applies and wipes nothing while it returns 0. */
    int (*may_apply)(void *arg);
    void *may_apply_arg;
} role_opts;

role_t *role_start(const role_opts *o);
void role_stop(role_t *r);

/* Re-read the topology now (POST /internal/topology-changed, or a request
 * or answer carrying a newer epoch). Cheap; any thread. */
void role_poke(role_t *r);
/* The primary this store knows (itself when primary) into buf: 0, or -1
 * when it knows none. */
int role_primary(role_t *r, char *buf, size_t n);
/* "primary", "secondary", "rejoining", "resyncing" or "detached". */
const char *role_state(role_t *r);
/* 1 when this store leads its shard now: the role thread made it primary
 * and its copy says so too. What the background writers (the migration's
 * copier, the reaper) check before they act. */
int role_is_primary(role_t *r);
repl_send_t *role_repl(role_t *r);
/* The latest topology the store knows (a reference: topo_put it), or NULL
 * before the first poll and without a controller. What the request paths
 * check ownership against (store/store_owner.h). */
topo_t *role_topo(role_t *r);
/* Returns once a tombstone collection under way has ended. None starts
 * while the topology has a migration (docs/PROTOCOL.md), so a migration's
 * copier that calls this after it saw the migration copies from a store
 * no collection touches any more. */
void role_gc_barrier(role_t *r);
recon_t *role_recon(role_t *r);
/* role, primary, state and the reconcile counters into obj. */
void role_stats_json(role_t *r, cJSON *obj);

#endif
