#include "ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <xxhash.h>

struct ring_point {
    uint64_t hash;
    uint32_t shard;
};

struct ring {
    uint32_t nshards;
    size_t npoints;
    struct ring_point *points; /* sorted by hash, then shard */
};

uint64_t ring_hash(const void *key, size_t len)
{
    return XXH3_64bits(key, len);
}

static int ring_point_cmp(const void *a, const void *b)
{
    const struct ring_point *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return (x->shard > y->shard) - (x->shard < y->shard);
}

ring_t *ring_new_ids(const uint32_t *ids, size_t n, uint32_t vnodes)
{
    ring_t *r;
    char name[32];

    if (n == 0 || vnodes == 0 || n > UINT32_MAX / vnodes)
        return NULL;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (ids[i] == ids[j])
                return NULL;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->nshards = (uint32_t)n;
    r->npoints = n * vnodes;
    r->points = calloc(r->npoints, sizeof *r->points);
    if (r->points == NULL) {
        free(r);
        return NULL;
    }
    for (size_t s = 0; s < n; s++) {
        int len = snprintf(name, sizeof name, "shard-%u", ids[s]);
        for (uint32_t i = 0; i < vnodes; i++) {
            struct ring_point *p = &r->points[s * vnodes + i];
            p->hash = XXH3_64bits_withSeed(name, (size_t)len, i);
            p->shard = ids[s];
        }
    }
    qsort(r->points, r->npoints, sizeof *r->points, ring_point_cmp);
    return r;
}

ring_t *ring_new(uint32_t nshards, uint32_t vnodes)
{
    uint32_t *ids = nshards ? malloc(nshards * sizeof *ids) : NULL;
    ring_t *r;

    if (ids == NULL)
        return NULL;
    for (uint32_t s = 0; s < nshards; s++)
        ids[s] = s;
    r = ring_new_ids(ids, nshards, vnodes);
    free(ids);
    return r;
}

void ring_free(ring_t *r)
{
    if (r == NULL)
        return;
    free(r->points);
    free(r);
}

uint32_t ring_shards(const ring_t *r)
{
    return r->nshards;
}

double ring_share(const ring_t *r, uint32_t id)
{
    /* Point i owns the arc (point i-1, point i]; the first point also owns
     * the wrap past the last one. Arcs are summed as fractions of 2^64. */
    double share = 0;

    for (size_t i = 0; i < r->npoints; i++) {
        uint64_t prev = r->points[i == 0 ? r->npoints - 1 : i - 1].hash;

        if (r->points[i].shard == id)
            share += (double)(uint64_t)(r->points[i].hash - prev) / 18446744073709551616.0;
    }
    return r->npoints == 1 ? (r->points[0].shard == id) : share;
}

/* Index of the first point with hash >= h, wrapping to 0 past the end. */
static size_t ring_lower_bound(const ring_t *r, uint64_t h)
{
    size_t lo = 0, hi = r->npoints;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->points[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == r->npoints ? 0 : lo;
}

uint32_t ring_lookup(const ring_t *r, const void *key, size_t len)
{
    return r->points[ring_lower_bound(r, ring_hash(key, len))].shard;
}

size_t ring_replicas(const ring_t *r, const void *key, size_t len,
                     uint32_t *out, size_t n)
{
    size_t found = 0;
    size_t i = ring_lower_bound(r, ring_hash(key, len));

    if (n > r->nshards)
        n = r->nshards;
    for (size_t step = 0; step < r->npoints && found < n; step++) {
        uint32_t s = r->points[(i + step) % r->npoints].shard;
        size_t j = 0;
        while (j < found && out[j] != s)
            j++;
        if (j == found)
            out[found++] = s;
    }
    return found;
}
