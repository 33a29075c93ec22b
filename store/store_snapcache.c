#include "store_snapcache.h"

#include "clock.h"
#include "log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct store_snapcache_slot {
    uint64_t id;          /* 0 = free */
    sdb_snap *snap;
    uint64_t used_us;
    int busy;
} store_snapcache_slot;

struct store_snapcache {
    pthread_mutex_t mu;
    store_snapcache_slot slots[STORE_SNAPCACHE_SLOTS];
    uint64_t next_id;
};

store_snapcache *store_snapcache_new(void)
{
    store_snapcache *c = calloc(1, sizeof *c);

    if (c)
        pthread_mutex_init(&c->mu, NULL);
    return c;
}

void store_snapcache_free(store_snapcache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < STORE_SNAPCACHE_SLOTS; i++)
        sdb_snap_close(c->slots[i].snap);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static void store_snapcache_drop(store_snapcache_slot *s)
{
    sdb_snap_close(s->snap);
    memset(s, 0, sizeof *s);
}

/* Closes snapshots idle for too long. mu held. */
static void store_snapcache_expire(store_snapcache *c, uint64_t now)
{
    for (size_t i = 0; i < STORE_SNAPCACHE_SLOTS; i++) {
        store_snapcache_slot *s = &c->slots[i];
        if (s->id && !s->busy && now - s->used_us > STORE_SNAPCACHE_IDLE_US) {
            log_info("changes: resync snapshot %" PRIu64 " expired", s->id);
            store_snapcache_drop(s);
        }
    }
}

/* A free slot, else the least recently used idle one emptied, else NULL.
 * mu held. */
static store_snapcache_slot *store_snapcache_slot_for_new(store_snapcache *c)
{
    store_snapcache_slot *lru = NULL;

    for (size_t i = 0; i < STORE_SNAPCACHE_SLOTS; i++)
        if (c->slots[i].id == 0)
            return &c->slots[i];
    for (size_t i = 0; i < STORE_SNAPCACHE_SLOTS; i++)
        if (!c->slots[i].busy &&
            (lru == NULL || c->slots[i].used_us < lru->used_us))
            lru = &c->slots[i];
    if (lru)
        store_snapcache_drop(lru);
    return lru;
}

uint64_t store_snapcache_add(store_snapcache *c, sdb_snap *snap)
{
    uint64_t now = clock_mono_us(), id = 0;
    store_snapcache_slot *slot;

    pthread_mutex_lock(&c->mu);
    store_snapcache_expire(c, now);
    slot = store_snapcache_slot_for_new(c);
    if (slot) {
        id = ++c->next_id;
        slot->id = id;
        slot->snap = snap;
        slot->used_us = now;
    }
    pthread_mutex_unlock(&c->mu);
    if (slot == NULL)
        sdb_snap_close(snap);
    return id;
}

enum store_snapcache_rc store_snapcache_changes(store_snapcache *c,
                                                uint64_t id, uint64_t since,
                                                size_t limit,
                                                size_t max_bytes,
                                                wire_buf *out,
                                                uint64_t *next_since,
                                                int *more)
{
    store_snapcache_slot *slot = NULL;
    int rc;

    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < STORE_SNAPCACHE_SLOTS; i++)
        if (c->slots[i].id == id && !c->slots[i].busy) {
            slot = &c->slots[i];
            slot->busy = 1;
        }
    pthread_mutex_unlock(&c->mu);
    if (slot == NULL)
        return STORE_SNAPCACHE_GONE;
    /* Read outside the lock: a page can take a while. */
    rc = sdb_snap_changes(slot->snap, since, limit, max_bytes, out,
                          next_since, more);
    pthread_mutex_lock(&c->mu);
    slot->busy = 0;
    slot->used_us = clock_mono_us();
    if (rc != 0 || !*more)
        store_snapcache_drop(slot);
    pthread_mutex_unlock(&c->mu);
    return rc != 0 ? STORE_SNAPCACHE_FAILED : STORE_SNAPCACHE_OK;
}
