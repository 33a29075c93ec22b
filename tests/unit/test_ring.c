/* Unit tests for lib/ring: XXH3 hashing, placement, balance, minimal
 * movement when a shard is added, replica lists, wrap-around. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <math.h>
#include <xxhash.h>

#include "ring.h"

#define NKEYS 100000

static size_t key_text(char *buf, size_t cap, int i)
{
    return (size_t)snprintf(buf, cap, "key-%d", i);
}

/* XXH3-64 (seed 0) of fixed inputs, computed once outside this code base
 * with `printf '%s' TEXT | xxhsum -H3` (xxhsum 0.8.1, Debian package
 * "xxhash"). XXH3 has separate code paths for 0, 1-3, 4-8, 9-16, 17-128,
 * 129-240 and >240 bytes; the inputs cover each of them. */
static void test_hash_golden(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t want;
    } cases[] = {
        {"", 0x2d06800538d394c2ULL},
        {"a", 0xe6c632b61e964e1fULL},
        {"hello", 0x9555e8555c62dcfdULL},
        {"user:42", 0x9fc1e605fa7174aaULL},
        {"abcdefgh", 0x6f45a76842a96483ULL},
        {"shard-0", 0xcb6e75a9bf0c0560ULL},
        {"The quick brown fox jumps over the lazy dog", 0xce7d19a5418fb365ULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(ring_hash(cases[i].text, strlen(cases[i].text)),
                         cases[i].want);

    /* Binary input with a NUL in the middle: printf 'a\0b' | xxhsum -H3 */
    assert_int_equal(ring_hash("a\0b", 3), 0xd5a06cd078125351ULL);

    /* 200 x 'x' (129-240 byte path) and 1000 bytes "abc...zabc..." (>240). */
    char big[1000];
    memset(big, 'x', 200);
    assert_int_equal(ring_hash(big, 200), 0x50ef124fb1e4de53ULL);
    for (int i = 0; i < 1000; i++)
        big[i] = (char)('a' + i % 26);
    assert_int_equal(ring_hash(big, 1000), 0xe153425558d7da5dULL);
}

/* Golden placements on 2- and 4-shard rings with 128 vnodes, recorded from
 * the implementation when these tests were written. They pin the placement:
 * point naming ("shard-<s>" hashed with seed = vnode index), the tie order
 * and the "first point at or after the key's hash" rule. Any change to one
 * of those moves keys between shards, which on a live cluster means data is
 * looked up on the wrong shard, so it must be a deliberate, migrated change
 * that also updates these numbers. */
static void test_lookup_golden(void **state)
{
    (void)state;
    static const char *keys[] = {"a",     "hello", "user:42",  "key-0",
                                 "key-1", "key-2", "key-3",    "key-4",
                                 "key-5", "key-6", "key-7",    "cart:1001",
                                 "%2F/slash"};
    static const uint32_t want2[] = {0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 0};
    static const uint32_t want4[] = {0, 0, 3, 2, 1, 3, 2, 3, 3, 3, 3, 3, 0};
    ring_t *r2 = ring_new(2, RING_DEFAULT_VNODES);
    ring_t *r4 = ring_new(4, RING_DEFAULT_VNODES);

    assert_non_null(r2);
    assert_non_null(r4);
    assert_int_equal(RING_DEFAULT_VNODES, 128);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        size_t n = strlen(keys[i]);
        assert_int_equal(ring_lookup(r2, keys[i], n), want2[i]);
        assert_int_equal(ring_lookup(r4, keys[i], n), want4[i]);
    }
    uint32_t out[4];
    assert_int_equal(ring_replicas(r4, "user:42", 7, out, 4), 4);
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 0);
    assert_int_equal(out[2], 2);
    assert_int_equal(out[3], 1);
    ring_free(r2);
    ring_free(r4);
}

/* An independent model of the ring built from the documented rule in
 * ring.h: shard s owns points XXH3_64bits_withSeed("shard-<s>", i), and a key
 * belongs to the first point at or after its hash, wrapping around. */
struct model_point {
    uint64_t hash;
    uint32_t shard;
};

static int model_cmp(const void *a, const void *b)
{
    const struct model_point *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return (x->shard > y->shard) - (x->shard < y->shard);
}

static struct model_point *model_new(uint32_t nshards, uint32_t vnodes,
                                     size_t *npoints)
{
    size_t n = (size_t)nshards * vnodes, k = 0;
    struct model_point *p = calloc(n, sizeof *p);
    assert_non_null(p);
    for (uint32_t s = 0; s < nshards; s++) {
        char name[32];
        int len = snprintf(name, sizeof name, "shard-%u", s);
        for (uint32_t i = 0; i < vnodes; i++) {
            p[k].hash = XXH3_64bits_withSeed(name, (size_t)len, i);
            p[k].shard = s;
            k++;
        }
    }
    qsort(p, n, sizeof *p, model_cmp);
    *npoints = n;
    return p;
}

static size_t model_index(const struct model_point *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].hash >= h)
            return i;
    return 0;
}

static void test_lookup_matches_model(void **state)
{
    (void)state;
    const uint32_t shards = 3, vnodes = 16; /* small: the model is linear */
    size_t np;
    struct model_point *p = model_new(shards, vnodes, &np);
    ring_t *r = ring_new(shards, vnodes);
    char key[32];

    assert_non_null(r);
    for (int i = 0; i < 2000; i++) {
        size_t n = key_text(key, sizeof key, i);
        size_t idx = model_index(p, np, XXH3_64bits(key, n));
        assert_int_equal(ring_lookup(r, key, n), p[idx].shard);

        /* replicas: distinct shards in clockwise order from the owner */
        uint32_t want[3], got[3];
        size_t found = 0;
        for (size_t step = 0; step < np && found < shards; step++) {
            uint32_t s = p[(idx + step) % np].shard;
            int seen = 0;
            for (size_t j = 0; j < found; j++)
                seen |= want[j] == s;
            if (!seen)
                want[found++] = s;
        }
        assert_int_equal(found, shards);
        assert_int_equal(ring_replicas(r, key, n, got, 3), 3);
        assert_memory_equal(got, want, sizeof want);
    }
    ring_free(r);
    free(p);
}

static void check_balance(uint32_t shards)
{
    ring_t *r = ring_new(shards, RING_DEFAULT_VNODES);
    size_t count[8] = {0};
    char key[32];

    assert_non_null(r);
    assert_int_equal(ring_shards(r), shards);
    for (int i = 0; i < NKEYS; i++) {
        size_t n = key_text(key, sizeof key, i);
        uint32_t s = ring_lookup(r, key, n);
        assert_true(s < shards);
        count[s]++;
    }
    double even = (double)NKEYS / shards;
    for (uint32_t s = 0; s < shards; s++) {
        double dev = ((double)count[s] - even) / even;
        if (dev > 0.10 || dev < -0.10)
            fail_msg("%u shards: shard %u has %zu keys (%.1f%% from even %.0f)",
                     shards, s, count[s], dev * 100, even);
    }
    ring_free(r);
}

static void test_balance_2(void **state)
{
    (void)state;
    check_balance(2);
}

static void test_balance_4(void **state)
{
    (void)state;
    check_balance(4);
}

/* Going from S to S+1 shards moves only the keys the new shard takes over. */
static void check_growth(uint32_t s)
{
    ring_t *a = ring_new(s, RING_DEFAULT_VNODES);
    ring_t *b = ring_new(s + 1, RING_DEFAULT_VNODES);
    size_t moved = 0;
    char key[32];

    assert_non_null(a);
    assert_non_null(b);
    for (int i = 0; i < NKEYS; i++) {
        size_t n = key_text(key, sizeof key, i);
        uint32_t from = ring_lookup(a, key, n), to = ring_lookup(b, key, n);
        if (from != to) {
            moved++;
            if (to != s)
                fail_msg("%s moved %u -> %u growing %u -> %u shards (not "
                         "onto the new shard)",
                         key, from, to, s, s + 1);
        }
    }
    double frac = (double)moved / NKEYS, bound = 1.0 / (s + 1) + 0.03;
    if (frac > bound)
        fail_msg("%u -> %u shards moved %.4f of the keys (bound %.4f)", s,
                 s + 1, frac, bound);
    /* The new shard must take a real share, or nothing was tested. */
    assert_true(moved > 0);
    ring_free(a);
    ring_free(b);
}

static void test_growth_2_to_3(void **state)
{
    (void)state;
    check_growth(2);
}

static void test_growth_3_to_4(void **state)
{
    (void)state;
    check_growth(3);
}

static void test_growth_4_to_5(void **state)
{
    (void)state;
    check_growth(4);
}

static void test_replicas(void **state)
{
    (void)state;
    char key[32];

    for (uint32_t shards = 1; shards <= 5; shards++) {
        ring_t *r = ring_new(shards, RING_DEFAULT_VNODES);
        assert_non_null(r);
        for (int i = 0; i < 500; i++) {
            size_t kn = key_text(key, sizeof key, i);
            for (size_t n = 0; n <= 7; n++) {
                uint32_t out[8];
                memset(out, 0xff, sizeof out);
                size_t want = n < shards ? n : shards;
                size_t got = ring_replicas(r, key, kn, out, n);
                assert_int_equal(got, want);
                if (got > 0)
                    assert_int_equal(out[0], ring_lookup(r, key, kn));
                for (size_t x = 0; x < got; x++) {
                    assert_true(out[x] < shards);
                    for (size_t y = x + 1; y < got; y++)
                        assert_int_not_equal(out[x], out[y]);
                }
                /* nothing written past what it returned */
                for (size_t x = got; x < 8; x++)
                    assert_int_equal(out[x], 0xffffffffu);
            }
        }
        ring_free(r);
    }
}

/* A key whose hash is past the last point belongs to the first point. */
static void test_wrap_around(void **state)
{
    (void)state;
    const uint32_t shards = 4;
    size_t np;
    struct model_point *p = model_new(shards, RING_DEFAULT_VNODES, &np);
    ring_t *r = ring_new(shards, RING_DEFAULT_VNODES);
    uint64_t last = p[np - 1].hash;
    uint32_t first_shard = p[0].shard, last_shard = p[np - 1].shard;
    char key[32];
    int found = 0;

    assert_non_null(r);
    /* The test only means something if the first and last points belong to
     * different shards; true for this ring (checked, not assumed). */
    assert_int_not_equal(first_shard, last_shard);
    for (int i = 0; i < 50000000 && found < 3; i++) {
        int n = snprintf(key, sizeof key, "wrap-%d", i);
        if (ring_hash(key, (size_t)n) > last) {
            assert_int_equal(ring_lookup(r, key, (size_t)n), first_shard);
            uint32_t out[4];
            assert_int_equal(ring_replicas(r, key, (size_t)n, out, 4), 4);
            assert_int_equal(out[0], first_shard);
            found++;
        }
    }
    if (found == 0)
        fail_msg("no key hashing past the last point (%016llx) found",
                 (unsigned long long)last);
    ring_free(r);
    free(p);
}

/* A ring of an id list: {0..n-1} is exactly ring_new(n) (the rings of
 * clusters written before shard ids existed stay where they are), the order
 * of the list does not matter, and repeated ids are refused. */
static void test_ids_same_as_count(void **state)
{
    (void)state;
    const uint32_t ids[] = {0, 1, 2, 3}, rev[] = {3, 2, 1, 0}, dup[] = {0, 1, 1};
    ring_t *a = ring_new(4, RING_DEFAULT_VNODES);
    ring_t *b = ring_new_ids(ids, 4, RING_DEFAULT_VNODES);
    ring_t *c = ring_new_ids(rev, 4, RING_DEFAULT_VNODES);
    char key[32];

    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    for (int i = 0; i < NKEYS; i++) {
        size_t n = key_text(key, sizeof key, i);
        uint32_t want = ring_lookup(a, key, n);
        assert_int_equal(ring_lookup(b, key, n), want);
        assert_int_equal(ring_lookup(c, key, n), want);
    }
    assert_null(ring_new_ids(dup, 3, RING_DEFAULT_VNODES));
    assert_null(ring_new_ids(ids, 0, RING_DEFAULT_VNODES));
    assert_null(ring_new_ids(ids, 4, 0));
    ring_free(a);
    ring_free(b);
    ring_free(c);
}

/* from -> to moves exactly the keys whose owner differs, each onto a shard
 * of `to` that `from` lacked (added) or off a shard of `from` that `to`
 * lacks (removed), and about the share the ring predicts. */
static void check_move(const uint32_t *from, size_t nf, const uint32_t *to,
                       size_t nt, uint32_t changed)
{
    ring_t *a = ring_new_ids(from, nf, RING_DEFAULT_VNODES);
    ring_t *b = ring_new_ids(to, nt, RING_DEFAULT_VNODES);
    size_t moved = 0;
    double predicted;
    char key[32];

    assert_non_null(a);
    assert_non_null(b);
    for (int i = 0; i < NKEYS; i++) {
        size_t n = key_text(key, sizeof key, i);
        uint32_t x = ring_lookup(a, key, n), y = ring_lookup(b, key, n);
        int x_kept = 0, y_old = 0;

        if (x == y)
            continue;
        moved++;
        for (size_t k = 0; k < nt; k++)
            x_kept |= to[k] == x;
        for (size_t k = 0; k < nf; k++)
            y_old |= from[k] == y;
        /* A key may only leave a removed shard or join an added one. */
        if (x_kept && y_old)
            fail_msg("%s moved %u -> %u between two shards that stay", key, x, y);
    }
    /* The ring predicts the share the added shard takes, or the removed
     * one had. */
    predicted = nt > nf ? ring_share(b, changed) : ring_share(a, changed);
    assert_true(moved > 0);
    if (fabs((double)moved / NKEYS - predicted) > 0.03)
        fail_msg("moved %.4f of the keys, the ring predicts %.4f",
                 (double)moved / NKEYS, predicted);
    ring_free(a);
    ring_free(b);
}

static void test_ids_add_and_remove_move_only_their_keys(void **state)
{
    (void)state;
    const uint32_t two[] = {0, 1}, three[] = {0, 1, 2}, four[] = {0, 1, 2, 3};
    const uint32_t later[] = {1, 2, 3}, gap[] = {1, 3}, back[] = {1, 3, 4};

    check_move(two, 2, three, 3, 2);   /* add 2 */
    check_move(three, 3, four, 4, 3);  /* add 3 */
    check_move(four, 4, later, 3, 0);  /* remove 0 */
    check_move(later, 3, gap, 2, 2);   /* remove 2 */
    check_move(gap, 2, back, 3, 4);    /* add 4: ids are never reused */
}

/* Shares add up to 1 and match the keys each shard gets. */
static void test_share(void **state)
{
    (void)state;
    const uint32_t ids[] = {1, 3, 4};
    ring_t *r = ring_new_ids(ids, 3, RING_DEFAULT_VNODES);
    size_t got[5] = {0};
    double sum = 0;
    char key[32];

    assert_non_null(r);
    for (int i = 0; i < NKEYS; i++) {
        size_t n = key_text(key, sizeof key, i);
        got[ring_lookup(r, key, n)]++;
    }
    for (uint32_t id = 0; id < 5; id++) {
        double share = ring_share(r, id);
        sum += share;
        if (fabs(share - (double)got[id] / NKEYS) > 0.01)
            fail_msg("shard %u: share %.4f, keys %.4f", id, share,
                     (double)got[id] / NKEYS);
    }
    assert_true(fabs(sum - 1.0) < 1e-9);
    assert_true(ring_share(r, 0) == 0);
    ring_free(r);
}

static void test_single_shard_and_bad_args(void **state)
{
    (void)state;
    ring_t *r = ring_new(1, 8);
    uint32_t out[3];

    assert_non_null(r);
    assert_int_equal(ring_shards(r), 1);
    assert_int_equal(ring_lookup(r, "anything", 8), 0);
    assert_int_equal(ring_replicas(r, "anything", 8, out, 3), 1);
    assert_int_equal(out[0], 0);
    ring_free(r);
    ring_free(NULL);
    assert_null(ring_new(0, 128));
    assert_null(ring_new(3, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_golden),
        cmocka_unit_test(test_lookup_golden),
        cmocka_unit_test(test_lookup_matches_model),
        cmocka_unit_test(test_balance_2),
        cmocka_unit_test(test_balance_4),
        cmocka_unit_test(test_growth_2_to_3),
        cmocka_unit_test(test_growth_3_to_4),
        cmocka_unit_test(test_growth_4_to_5),
        cmocka_unit_test(test_replicas),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_ids_same_as_count),
        cmocka_unit_test(test_ids_add_and_remove_move_only_their_keys),
        cmocka_unit_test(test_share),
        cmocka_unit_test(test_single_shard_and_bad_args),
    };
    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
