/* store_owner: the ownership decision of store/store_owner.h. */
#include "store_owner.h"

#include "ring.h"

enum store_owner_rc store_owner_check(const topo_t *t, uint32_t shard,
                                      const char *key, size_t len,
                                      enum store_owner_op op,
                                      uint32_t *owner)
{
    uint32_t now, from, to;

    if (owner)
        *owner = shard;
    if (t == NULL || t->ring == NULL)
        return STORE_OWNER_OK;
    now = ring_lookup(t->ring, key, len);
    if (owner)
        *owner = now;
    if (op == STORE_OWNER_REPAIR) {
        if (t->phase == TOPO_PHASE_NONE)
            return now == shard ? STORE_OWNER_OK : STORE_OWNER_MOVED;
        from = topo_owner_from(t, key, len);
        to = topo_owner_to(t, key, len);
        if (from == shard && to != shard && t->phase != TOPO_PHASE_COPY)
            return STORE_OWNER_MIGRATING;
        return from == shard || to == shard ? STORE_OWNER_OK
                                            : STORE_OWNER_MOVED;
    }
    if (op == STORE_OWNER_READ_MOVED && now != shard)
        return topo_owner_to(t, key, len) == shard ? STORE_OWNER_OK
                                                   : STORE_OWNER_MOVED;
    if (now != shard)
        return STORE_OWNER_MOVED;
    if (op != STORE_OWNER_WRITE || t->phase == TOPO_PHASE_NONE ||
        t->phase == TOPO_PHASE_COPY)
        return STORE_OWNER_OK;
    from = topo_owner_from(t, key, len);
    to = topo_owner_to(t, key, len);
    if (t->phase == TOPO_PHASE_FREEZE && to != shard)
        return STORE_OWNER_MIGRATING;
    if (t->phase == TOPO_PHASE_SWITCH && from != shard)
        return STORE_OWNER_MIGRATING;
    return STORE_OWNER_OK;
}

int store_owner_in_ring(const ring_t *r, uint32_t shard)
{
    return r != NULL && ring_share(r, shard) > 0;
}
