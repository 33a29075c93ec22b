/* ring: consistent hashing of keys onto shards (XXH3-64, virtual nodes).
 * A ring is built from a list of shard ids; shard s owns `vnodes` points:
 * point i is XXH3-64 of the text "shard-<s>" with seed i. A shard's points
 * depend on its id alone, so adding shard k moves only the keys k takes and
 * removing k moves only k's keys (shard ids are never reused). Points are random, so a shard's share of the keys varies by
 * about 1/sqrt(vnodes) (9 % at 128); raise vnodes for wide clusters.
 * A key belongs to the first point at or after XXH3(key), wrapping around.
 * Immutable after ring_new, so lookups from many threads need no lock.
 * Ownership: ring_new allocates, ring_free frees. */
#ifndef KV_RING_H
#define KV_RING_H

#include <stddef.h>
#include <stdint.h>

#define RING_DEFAULT_VNODES 128

typedef struct ring ring_t;

/* The ring of shard ids 0 .. nshards-1. */
ring_t *ring_new(uint32_t nshards, uint32_t vnodes);
/* The ring of the given shard ids (distinct; any order). NULL when n is 0,
 * vnodes is 0, an id repeats, or out of memory. */
ring_t *ring_new_ids(const uint32_t *ids, size_t n, uint32_t vnodes);
void ring_free(ring_t *r);
uint64_t ring_hash(const void *key, size_t len);
/* The id of the shard owning the key. */
uint32_t ring_lookup(const ring_t *r, const void *key, size_t len);
/* Up to n distinct shard ids for the key, walking clockwise from its point,
 * owner first. Returns how many were written (min(n, shards)). */
size_t ring_replicas(const ring_t *r, const void *key, size_t len,
                     uint32_t *out, size_t n);
/* The share of the hash space shard id owns (0 when it is not in the
 * ring): what a migration that adds or removes it is predicted to move. */
double ring_share(const ring_t *r, uint32_t id);
/* How many shards the ring holds. */
uint32_t ring_shards(const ring_t *r);

#endif
