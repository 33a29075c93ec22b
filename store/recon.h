/* recon: a secondary's side of replication that it drives itself
 * (docs/PROTOCOL.md "Replication, quorums and failover"):
 *  - recon_round: every store.reconcile_interval_ms, and on start, GET
 *    <primary>/internal/changes?since=<applied_seq> in pages until
 *    X-KV-More is 0, applied by version under the primary's seqs (an
 *    incremental "catch-up"). A store without a position (applied_seq 0),
 *    one whose full resync was cut short, or one whose position is below
 *    the primary's tombstone horizon (X-KV-Gc-Seq: deletes it never saw
 *    are gone) does a full resync instead.
 *  - recon_full_resync: wipe, then since=0 pages from one read snapshot of
 *    the primary (X-KV-Snapshot; 410 when it expired: start over), then
 *    continue from the snapshot's seq.
 *  - recon_handoff: a rejoining old primary (or a secondary that applied
 *    past the fork) sends its records above the fork seq, from its own
 *    changes index, to the new primary with POST /internal/repair. Every
 *    op's answer counts: one its shard answers 421 moved (a migration gave
 *    the key to another shard meanwhile) goes on to that shard's primary
 *    under the topology t; one answered 503 migrating (its shard fences
 *    the key during a migration's freeze) fails the handoff, which is tried
 *    again later, as a whole (repairs are idempotent by version).
 * All of it runs on the role thread (store/role.h), one call at a time.
 *
 * Counters (recon_stats_json, /stats "reconcile"): full_resyncs, catchups
 * (incremental rounds completed from a position > 0), catchup_ops,
 * resync_ops, handoffs, handoff_ops, rounds, failures, resumed_from (the
 * applied_seq the process started with).
 *
 * Ownership: recon_new allocates, recon_free frees; db is borrowed. */
#ifndef KV_STORE_RECON_H
#define KV_STORE_RECON_H

#include "sdb.h"
#include "topo.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

enum recon_rc {
    RECON_OK = 0,
    RECON_FAILED = -1,    /* transport or server error: retry later */
    RECON_STALE = -2,     /* the primary is at a newer epoch: re-read the
                             topology */
    RECON_DIVERGED = -3,  /* our position is past the primary's last seq:
                             *fork is its last seq (hand off, resync) */
    RECON_CANCELLED = -4, /* cancelled() said stop, or the epoch moved */
};

typedef struct recon recon_t;

typedef struct recon_opts {
    sdb *db;
    const char *token;     /* cluster token or NULL */
    size_t page_max;       /* ops per page (default 5000) */
    long timeout_ms;       /* per request (default 5000) */
    int (*cancelled)(void *arg); /* polled between pages (optional) */
    void *arg;
    /* Optional: asked right before every page is applied and before a
     * wipe; 0 refuses (the round fails and is retried later). The lab's
     * lease uses it: a store that may have been replaced applies nothing. */
    int (*may_apply)(void *arg);
    void *may_apply_arg;
} recon_opts;

recon_t *recon_new(const recon_opts *o);
void recon_free(recon_t *r);

int recon_round(recon_t *r, const char *primary, uint64_t epoch,
                uint64_t *fork);
int recon_full_resync(recon_t *r, const char *primary, uint64_t epoch);
/* *sent (optional) gets the number of records handed off; t (borrowed,
 * may be NULL) names the primaries of the shards moved records go to. */
int recon_handoff(recon_t *r, const char *primary, uint64_t epoch,
                  uint64_t from, const topo_t *t, uint64_t *sent);

/* The primary's tombstone horizon as last seen (changes answers and
 * replication pushes both report it). */
void recon_note_gc(recon_t *r, uint64_t gc_seq);
uint64_t recon_primary_gc(recon_t *r);

void recon_stats_json(recon_t *r, cJSON *obj);
uint64_t recon_full_resyncs(recon_t *r);
uint64_t recon_catchups(recon_t *r);

#endif
