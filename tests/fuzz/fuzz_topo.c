/* fuzz_topo: the topology JSON the controller publishes at GET /topology,
 * parsed by topo_parse (lib/topo.h) in every api, queue and store.
 *
 * Input: the JSON text (any bytes).
 *
 * Asserts, beyond no crash or sanitizer report, on every topology it
 * accepts, the contract of lib/topo.h:
 *  - epoch, handoff_seq and migration.id at most 2^53, vnodes 1..4096,
 *    1..256 shards with distinct ids below 256 and index[] naming each one
 *    (and -1 for every other id), at most 32 secondaries, URLs non-empty
 *    and at most TOPO_MAX_URL bytes;
 *  - a ring is always there; a migration (phase not none) has an id >= 1
 *    and both its rings, no migration has neither;
 *  - every key (a few slices of the input) maps to a shard of the topology,
 *    now, before and after the migration;
 *  - a refusal leaves a sentence in err. */
#include "topo.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_topo_url(const char *u, int may_be_null)
{
    if (u == NULL ? !may_be_null : (u[0] == '\0' || strlen(u) > TOPO_MAX_URL))
        abort();
}

static void fuzz_topo_check(const topo_t *t, const uint8_t *data, size_t size)
{
    int seen[TOPO_MAX_SHARD_IDS] = {0};

    if (t->epoch > TOPO_MAX_INT || t->vnodes < 1 || t->vnodes > TOPO_MAX_VNODES ||
        t->nshards < 1 || t->nshards > TOPO_MAX_SHARD_IDS || t->ring == NULL)
        abort();
    fuzz_topo_url(t->queue, 1);
    for (size_t i = 0; i < t->nshards; i++) {
        const topo_shard *s = &t->shards[i];
        if (s->id >= TOPO_MAX_SHARD_IDS || seen[s->id]++ ||
            t->index[s->id] != (int16_t)i || s->epoch > TOPO_MAX_INT ||
            s->handoff_seq > TOPO_MAX_INT || s->nsecondaries > TOPO_MAX_SECONDARIES)
            abort();
        fuzz_topo_url(s->primary, 1);
        for (size_t j = 0; j < s->nsecondaries; j++)
            fuzz_topo_url(s->secondaries[j], 0);
    }
    for (uint32_t id = 0; id < TOPO_MAX_SHARD_IDS; id++)
        if (!seen[id] && t->index[id] != -1)
            abort();
    if (t->phase == TOPO_PHASE_NONE
            ? (t->ring_from || t->ring_to || t->migration_id != 0)
            : (!t->ring_from || !t->ring_to || t->migration_id < 1 ||
               t->migration_id > TOPO_MAX_INT || t->phase > TOPO_PHASE_SWITCH))
        abort();
    if (strcmp(topo_phase_name(t->phase), "") == 0)
        abort();
    /* Keys: the whole input and a few slices of it (at least one byte). */
    for (size_t k = 0; k < 4; k++) {
        size_t len = size >> k;
        const char *key = (const char *)data + (size - len);
        if (len == 0) {
            key = "k";
            len = 1;
        }
        if (topo_shard_for(t, key, len) == NULL ||
            topo_shard_by_id(t, topo_owner_from(t, key, len)) == NULL ||
            topo_shard_by_id(t, topo_owner_to(t, key, len)) == NULL)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    topo_t *t = topo_parse((const char *)data, size, err, sizeof err);

    if (t == NULL) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    fuzz_topo_check(t, data, size);
    topo_get(t);
    topo_put(t);
    topo_put(t); /* the last reference frees it */
    return 0;
}
