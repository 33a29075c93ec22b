/* store_fence: the refusals a kv-store request meets before anything is
 * applied (docs/PROTOCOL.md "Replication, quorums and failover"):
 *  - store_fence_epoch: X-KV-Epoch below ours is 409 stale_epoch, above
 *    ours re-reads the topology and is 503 epoch_pending (Retry-After: 1);
 *  - store_fence_lease: the lab's lease (store_http_opts.may_apply) is
 *    503 lease_expired while it is not held;
 *  - store_fence_primary: a client write on a secondary is 409 not_primary
 *    naming the primary, so that a queue with an old topology learns;
 *  - store_fence_quorum: W > 0 with fewer than W secondaries alive is 503
 *    quorum_unavailable;
 *  - store_fence_owner: a key this shard may not serve under the topology
 *    (store/store_owner.h) is 421 {"error":"moved","shard":S} with
 *    X-KV-Shard: S, or 503 {"error":"migrating"} with Retry-After: 1.
 * Each returns 0 = go on, -1 = answered (the caller just returns). */
#ifndef KV_STORE_FENCE_H
#define KV_STORE_FENCE_H

#include "httpd.h"
#include "store_owner.h"
#include "topo.h"

#include <stdint.h>

typedef struct store_http store_http;

/* *epoch (optional) gets the request's epoch (the store's when absent). */
int store_fence_epoch(store_http *h, httpd_req *r, uint64_t *epoch);
int store_fence_lease(store_http *h, httpd_req *r);
int store_fence_primary(store_http *h, httpd_req *r);
int store_fence_quorum(store_http *h, httpd_req *r);
/* t NULL (no topology): go on. */
int store_fence_owner(store_http *h, httpd_req *r, const topo_t *t,
                      const char *key, size_t len, enum store_owner_op op);

#endif
