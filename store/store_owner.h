/* store_owner: whether this shard may serve an op on a key under a
 * topology, during a shard migration or not (docs/PROTOCOL.md "Growing and
 * shrinking: shard migration"). A pure decision: no I/O, no locks; the
 * HTTP answers are store_fence_owner's (store/store_fence.h).
 *
 * With the owner now (t->ring), before (ring_from) and after (ring_to):
 *  - read or client write of a key another shard owns now: MOVED (owner);
 *  - client write, phase freeze, this shard owns the key and it moves
 *    away: MIGRATING (the source fences its moving keys);
 *  - client write, phase switch, this shard owns the key and it moved in
 *    (owner before is another shard): MIGRATING (until the controller ends
 *    the migration, some source replica could still serve a read);
 *  - a read a source sent here with 421 moved (the api says so with
 *    X-KV-Moved: 1): served when this shard owns the key now or after the
 *    migration. The source saw the switch, which the controller publishes
 *    only once every source drained into its targets: this shard has the
 *    key even if its own topology has not reached the switch yet;
 *  - repair: accepted when this shard is the owner now, before or after
 *    (the copier's batches land on the target before it owns them),
 *    else MOVED; but a source refuses repairs of its moving keys from the
 *    freeze on, as it does writes: MIGRATING (its copier stopped looking
 *    for them at the fence; the repairer tries again and, once the
 *    migration is over, is told where the key went);
 *  - no topology: OK (a standalone store, or before the first poll).
 * Ownership: nothing is kept; t is borrowed. */
#ifndef KV_STORE_OWNER_H
#define KV_STORE_OWNER_H

#include "topo.h"

#include <stddef.h>
#include <stdint.h>

enum store_owner_op {
    STORE_OWNER_READ = 0,   /* GET /internal/kv */
    STORE_OWNER_WRITE,      /* PUT, DELETE, incr, every batch op */
    STORE_OWNER_REPAIR,     /* POST /internal/repair ops */
    STORE_OWNER_READ_MOVED, /* a GET another store sent here (421 moved) */
};

enum store_owner_rc {
    STORE_OWNER_OK = 0,
    STORE_OWNER_MOVED,      /* 421 moved, *owner = the owner now */
    STORE_OWNER_MIGRATING,  /* 503 migrating, Retry-After: 1 */
};

/* The decision for key on shard under t (NULL: no topology). *owner
 * (optional) gets the id of the key's owner now (shard when t is NULL). */
enum store_owner_rc store_owner_check(const topo_t *t, uint32_t shard,
                                      const char *key, size_t len,
                                      enum store_owner_op op,
                                      uint32_t *owner);

/* Whether this shard owns any key under ring r (it is one of its ids). */
int store_owner_in_ring(const ring_t *r, uint32_t shard);

#endif
