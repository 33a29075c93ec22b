/* store_snapcache: the read snapshots a primary keeps open for full
 * resyncs served in pages (docs/PROTOCOL.md "Replication, quorums and
 * failover": GET /internal/changes?since=0 cut short names a snapshot in
 * X-KV-Snapshot, the next pages pass it back). At most STORE_SNAPCACHE_SLOTS
 * stay open; one idle for STORE_SNAPCACHE_IDLE_US is closed, and when all
 * are taken the least recently used idle one goes. A snapshot serves one
 * page at a time.
 *
 * Threads: every function may be called from any httpd thread.
 * Ownership: store_snapcache_add takes the snapshot (it closes it when it
 * cannot keep it); store_snapcache_free closes every snapshot held. */
#ifndef KV_STORE_SNAPCACHE_H
#define KV_STORE_SNAPCACHE_H

#include "sdb.h"
#include "wire.h"

#include <stddef.h>
#include <stdint.h>

#define STORE_SNAPCACHE_SLOTS 8
#define STORE_SNAPCACHE_IDLE_US (30u * 1000000u)

typedef struct store_snapcache store_snapcache;

enum store_snapcache_rc {
    STORE_SNAPCACHE_OK = 0,
    STORE_SNAPCACHE_GONE,   /* no such id, expired or serving a page now */
    STORE_SNAPCACHE_FAILED, /* the read failed; the snapshot is closed */
};

store_snapcache *store_snapcache_new(void);
void store_snapcache_free(store_snapcache *c); /* NULL is a no-op */
/* Keeps snap under a new id (returned), or closes it and returns 0 when
 * every slot is serving a page: the resync then goes on from fresh
 * snapshots, still correct since a key's seq only grows. */
uint64_t store_snapcache_add(store_snapcache *c, sdb_snap *snap);
/* One page of snapshot id (sdb_snap_changes). The snapshot is closed after
 * its last page (*more = 0) or a failed read. */
enum store_snapcache_rc store_snapcache_changes(store_snapcache *c,
                                                uint64_t id, uint64_t since,
                                                size_t limit,
                                                size_t max_bytes,
                                                wire_buf *out,
                                                uint64_t *next_since,
                                                int *more);

#endif
