/* topo: the cluster topology the controller publishes at GET /topology,
 *   {"epoch":E,"vnodes":V,"queue":"http://...",
 *    "shards":[{"id":0,"epoch":e,"primary":"http://...",
 *               "secondaries":["http://...",...],"handoff_seq":S}, ...]}
 * and a watcher that polls it. Shard ids are distinct and below
 * TOPO_MAX_SHARD_IDS, in any order; they need not be 0..n-1 (an id that was
 * removed is never given again), and the ring is built from them
 * (lib/ring.h). During a shard migration (docs/PROTOCOL.md "Growing and
 * shrinking") two more fields:
 *   "ring":[ids]   the shards that own keys now (absent: every shard)
 *   "migration":{"id":M,"phase":"copy|freeze|switch","from":[ids],"to":[ids]}
 * from and to are the rings before and after it (ring is from until the
 * switch, to from then on); a key moves when they name different owners.
 * handoff_seq (optional, default 0) is the
 * promoted replica's applied seq at the shard's last failover: a returning
 * old primary hands the new one its records above it (docs/PROTOCOL.md).
 * A topology is immutable once parsed and reference counted: readers take
 * one with topo_watch_get and put it back with topo_put; the watcher swaps
 * in new ones. When the controller is unreachable the last topology stays
 * in use (the controller is never on the data path). */
#ifndef KV_TOPO_H
#define KV_TOPO_H

#include "ring.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TOPO_MAX_SECONDARIES 32
#define TOPO_MAX_SHARD_IDS 256         /* shard ids are 0 .. 255 */
#define TOPO_MAX_VNODES 4096           /* as cluster.vnodes allows */
#define TOPO_MAX_URL 2048              /* bytes of a queue/store URL */
#define TOPO_MAX_INT (UINT64_C(1) << 53) /* epochs, seqs, ids: 2^53 */

typedef struct topo_shard {
    uint32_t id;
    uint64_t epoch;
    uint64_t handoff_seq;          /* promoted replica's applied seq at the
                                      last failover (0: none yet) */
    char *primary;                 /* NULL while the shard has no primary */
    char *secondaries[TOPO_MAX_SECONDARIES];
    size_t nsecondaries;
} topo_shard;

enum topo_phase {
    TOPO_PHASE_NONE = 0,           /* no migration */
    TOPO_PHASE_COPY,               /* sources copy; they own the keys */
    TOPO_PHASE_FREEZE,             /* sources refuse writes to moving keys */
    TOPO_PHASE_SWITCH              /* targets own them; refuse writes still */
};

typedef struct topo {
    uint64_t epoch;
    uint32_t vnodes;
    char *queue;
    topo_shard *shards;
    size_t nshards;
    int16_t index[TOPO_MAX_SHARD_IDS]; /* shard id -> shards[] index, -1 */
    ring_t *ring;                  /* who owns each key now */
    uint64_t migration_id;         /* 0 when phase is NONE */
    enum topo_phase phase;
    ring_t *ring_from, *ring_to;   /* before and after it, or NULL */
    _Atomic int refs;
} topo_t;

/* Every field is checked, nothing is cast unchecked: epoch, handoff_seq and
 * migration.id integers 0..2^53 (absent: 0), vnodes 1..TOPO_MAX_VNODES
 * (absent: the default), URLs non-empty strings of at most TOPO_MAX_URL
 * bytes (primary and queue may be null), at most TOPO_MAX_SECONDARIES
 * secondaries, ids as above. A bad topology, or no memory, is NULL with a
 * sentence in err; the watcher then keeps the last good one. */
topo_t *topo_parse(const char *json, size_t len, char *err, size_t errlen);
void topo_get(topo_t *t);
void topo_put(topo_t *t);          /* frees at zero */
/* The shard owning key. */
const topo_shard *topo_shard_for(const topo_t *t, const char *key, size_t len);
/* The shard with this id, or NULL when the topology has none. */
const topo_shard *topo_shard_by_id(const topo_t *t, uint32_t id);
/* The ids of key's owner before and after the migration (both its owner
 * now when there is none); it moves when they differ. */
uint32_t topo_owner_from(const topo_t *t, const char *key, size_t len);
uint32_t topo_owner_to(const topo_t *t, const char *key, size_t len);
/* "none", "copy", "freeze", "switch". */
const char *topo_phase_name(enum topo_phase p);

typedef struct topo_watch topo_watch;
/* Starts a thread polling controller_url/topology every poll_ms. */
topo_watch *topo_watch_start(const char *controller_url, long poll_ms);
void topo_watch_stop(topo_watch *w);
/* Poll now (a hint that the topology changed) instead of at the next tick. */
void topo_watch_poke(topo_watch *w);
/* Current topology (a reference: topo_put it) or NULL before the first. */
topo_t *topo_watch_get(topo_watch *w);
/* Block up to timeout_ms for the first topology. 0 or -1. */
int topo_watch_wait(topo_watch *w, long timeout_ms);

#endif
