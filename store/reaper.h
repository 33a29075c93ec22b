/* reaper: a primary's expiry reaper (docs/PROTOCOL.md "Reaping"), one
 * thread per store.
 *
 * An expired record already reads as absent everywhere (store/sdb.h
 * sdb_record_expired); the reaper turns it into a tombstone so that its
 * bytes go: the tombstone replicates through the changes feed and is
 * collected like a delete's. While this store leads its shard
 * (role_is_primary), the lab's lease allows writes and the topology has no
 * migration, the thread runs sdb_reap passes of at most REAPER_BATCH
 * records, each one write transaction inside the migration's write fence
 * (store/store_migrate.h), REAPER_PAUSE_MS apart while passes come full,
 * and checks again every REAPER_IDLE_MS otherwise. The short transactions
 * and the pause keep the foreground's writes and reads moving while a
 * million keys expire at once; the thread runs niced (REAPER_NICE).
 *
 * A migration stops it: the copier and the fence account for every write
 * to a moving key, and the target reaps what it received once the
 * migration is over. A secondary never reaps (its primary's tombstones
 * come by the stream); promoted, it reaps from its own expiry index.
 *
 * Counts kv_store_reaped_total (store/store_stats.h).
 *
 * Ownership: reaper_start allocates and starts the thread, reaper_stop
 * joins and frees. db, role and mig are borrowed and outlive it. */
#ifndef KV_STORE_REAPER_H
#define KV_STORE_REAPER_H

#include "role.h"
#include "sdb.h"
#include "store_migrate.h"

#define REAPER_BATCH 1000
#define REAPER_PAUSE_MS 2
#define REAPER_IDLE_MS 250
#define REAPER_NICE 10

typedef struct reaper reaper_t;

typedef struct reaper_opts {
    sdb *db;
    role_t *role;
    store_migrate *mig;
    /* Optional gate (the lab's lease): nothing is reaped while it
     * returns 0. */
    int (*may_apply)(void *arg);
    void *may_apply_arg;
} reaper_opts;

reaper_t *reaper_start(const reaper_opts *o);
void reaper_stop(reaper_t *r); /* NULL is a no-op */

#endif
