/* Unit tests of store/store_owner.c: which ops a shard serves on a key
 * under a topology, before, during (copy, freeze, switch) and after a
 * migration that adds a shard, and one that removes it. The expected
 * owners come from rings built here, not from the function under test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../store/store_owner.h"
#include "ring.h"
#include "topo.h"

#define NKEYS 3000

static topo_t *parse(const char *json)
{
    char err[160];
    topo_t *t = topo_parse(json, strlen(json), err, sizeof err);
    if (t == NULL)
        fail_msg("topo_parse: %s", err);
    return t;
}

/* A topology over shards {0,1,2} with ring `ring` and, when phase is not
 * NULL, a migration from `from` to `to`. */
static topo_t *topo_of(const char *ring, const char *phase, const char *from,
                       const char *to)
{
    char json[512];
    if (phase)
        snprintf(json, sizeof json,
                 "{\"epoch\":3,\"ring\":%s,\"migration\":{\"id\":7,"
                 "\"phase\":\"%s\",\"from\":%s,\"to\":%s},\"shards\":["
                 "{\"id\":0,\"epoch\":1},{\"id\":1,\"epoch\":1},"
                 "{\"id\":2,\"epoch\":1}]}", ring, phase, from, to);
    else
        snprintf(json, sizeof json,
                 "{\"epoch\":3,\"ring\":%s,\"shards\":[{\"id\":0,\"epoch\":1},"
                 "{\"id\":1,\"epoch\":1},{\"id\":2,\"epoch\":1}]}", ring);
    return parse(json);
}

static int key_of(int i, char *buf, size_t n)
{
    return snprintf(buf, n, "user:%d", i);
}

static enum store_owner_rc check(const topo_t *t, uint32_t shard, int i,
                                 enum store_owner_op op, uint32_t *owner)
{
    char key[32];
    int n = key_of(i, key, sizeof key);
    return store_owner_check(t, shard, key, (size_t)n, op, owner);
}

/* No topology: every op is served, and the owner reported is us. */
static void test_no_topology(void **state)
{
    uint32_t owner = 99;
    (void)state;
    assert_int_equal(store_owner_check(NULL, 4, "k", 1, STORE_OWNER_WRITE,
                                       &owner), STORE_OWNER_OK);
    assert_int_equal(owner, 4);
    assert_int_equal(store_owner_check(NULL, 4, "k", 1, STORE_OWNER_READ,
                                       NULL), STORE_OWNER_OK);
}

/* Adding shard 2 to {0,1}: every phase, every shard, every kind of op,
 * against the rings before (a) and after (b). */
static void test_grow(void **state)
{
    const uint32_t ids_a[] = {0, 1}, ids_b[] = {0, 1, 2};
    ring_t *a = ring_new_ids(ids_a, 2, RING_DEFAULT_VNODES);
    ring_t *b = ring_new_ids(ids_b, 3, RING_DEFAULT_VNODES);
    topo_t *before = topo_of("[0,1]", NULL, NULL, NULL);
    topo_t *copy = topo_of("[0,1]", "copy", "[0,1]", "[0,1,2]");
    topo_t *freeze = topo_of("[0,1]", "freeze", "[0,1]", "[0,1,2]");
    topo_t *sw = topo_of("[0,1,2]", "switch", "[0,1]", "[0,1,2]");
    topo_t *after = topo_of("[0,1,2]", NULL, NULL, NULL);
    size_t moving = 0, frozen = 0, fenced_in = 0;
    char key[32];
    (void)state;

    for (int i = 0; i < NKEYS; i++) {
        int n = key_of(i, key, sizeof key);
        uint32_t src = ring_lookup(a, key, (size_t)n);
        uint32_t dst = ring_lookup(b, key, (size_t)n);
        int moves = src != dst;
        moving += moves;
        for (uint32_t s = 0; s <= 2; s++) {
            uint32_t owner = 99;
            /* Before and during copy: the owner before serves all. */
            for (int p = 0; p < 2; p++) {
                const topo_t *t = p ? copy : before;
                assert_int_equal(check(t, s, i, STORE_OWNER_READ, &owner),
                                 s == src ? STORE_OWNER_OK : STORE_OWNER_MOVED);
                assert_int_equal(owner, src);
                assert_int_equal(check(t, s, i, STORE_OWNER_WRITE, NULL),
                                 s == src ? STORE_OWNER_OK : STORE_OWNER_MOVED);
            }
            /* Copy: the target takes the copier's repairs. */
            assert_int_equal(check(copy, s, i, STORE_OWNER_REPAIR, NULL),
                             s == src || s == dst ? STORE_OWNER_OK
                                                  : STORE_OWNER_MOVED);
            assert_int_equal(check(before, s, i, STORE_OWNER_REPAIR, NULL),
                             s == src ? STORE_OWNER_OK : STORE_OWNER_MOVED);
            /* Freeze: reads still at the source, its writes to moving
             * keys refused. */
            assert_int_equal(check(freeze, s, i, STORE_OWNER_READ, &owner),
                             s == src ? STORE_OWNER_OK : STORE_OWNER_MOVED);
            assert_int_equal(owner, src);
            assert_int_equal(check(freeze, s, i, STORE_OWNER_WRITE, NULL),
                             s != src ? STORE_OWNER_MOVED
                             : moves  ? STORE_OWNER_MIGRATING
                                      : STORE_OWNER_OK);
            frozen += s == src && moves;
            /* ... and its repairs of them: its copier is past the fence. */
            assert_int_equal(check(freeze, s, i, STORE_OWNER_REPAIR, NULL),
                             s == src && moves      ? STORE_OWNER_MIGRATING
                             : s == src || s == dst ? STORE_OWNER_OK
                                                    : STORE_OWNER_MOVED);
            /* Switch: the target serves reads, refuses writes to keys
             * that moved in; the source sent everything on. */
            assert_int_equal(check(sw, s, i, STORE_OWNER_READ, &owner),
                             s == dst ? STORE_OWNER_OK : STORE_OWNER_MOVED);
            assert_int_equal(owner, dst);
            assert_int_equal(check(sw, s, i, STORE_OWNER_WRITE, &owner),
                             s != dst ? STORE_OWNER_MOVED
                             : moves  ? STORE_OWNER_MIGRATING
                                      : STORE_OWNER_OK);
            fenced_in += s == dst && moves;
            assert_int_equal(check(sw, s, i, STORE_OWNER_REPAIR, NULL),
                             s == src && moves      ? STORE_OWNER_MIGRATING
                             : s == src || s == dst ? STORE_OWNER_OK
                                                    : STORE_OWNER_MOVED);
            /* After: the new owner alone. */
            assert_int_equal(check(after, s, i, STORE_OWNER_WRITE, &owner),
                             s == dst ? STORE_OWNER_OK : STORE_OWNER_MOVED);
            assert_int_equal(owner, dst);
            assert_int_equal(check(after, s, i, STORE_OWNER_REPAIR, NULL),
                             s == dst ? STORE_OWNER_OK : STORE_OWNER_MOVED);
        }
    }
    /* About a third of the keys move, all of them to shard 2. */
    assert_true(moving > NKEYS / 5 && moving < NKEYS / 2);
    assert_int_equal(frozen, moving);
    assert_int_equal(fenced_in, moving);
    topo_put(before);
    topo_put(copy);
    topo_put(freeze);
    topo_put(sw);
    topo_put(after);
    ring_free(a);
    ring_free(b);
}

/* Removing shard 2 from {0,1,2}: its keys go to 0 and 1, nothing else
 * moves; shard 2 is the only one whose writes freeze. */
static void test_shrink(void **state)
{
    const uint32_t ids_b[] = {0, 1};
    ring_t *b = ring_new_ids(ids_b, 2, RING_DEFAULT_VNODES);
    topo_t *freeze = topo_of("[0,1,2]", "freeze", "[0,1,2]", "[0,1]");
    topo_t *sw = topo_of("[0,1]", "switch", "[0,1,2]", "[0,1]");
    size_t from2 = 0;
    char key[32];
    (void)state;

    for (int i = 0; i < NKEYS; i++) {
        int n = key_of(i, key, sizeof key);
        uint32_t src = topo_owner_from(freeze, key, (size_t)n);
        uint32_t dst = ring_lookup(b, key, (size_t)n);
        if (src != 2)
            assert_int_equal(src, dst);
        from2 += src == 2;
        assert_int_equal(check(freeze, 2, i, STORE_OWNER_WRITE, NULL),
                         src == 2 ? STORE_OWNER_MIGRATING : STORE_OWNER_MOVED);
        assert_int_equal(check(freeze, dst, i, STORE_OWNER_WRITE, NULL),
                         src == 2 ? STORE_OWNER_MOVED : STORE_OWNER_OK);
        assert_int_equal(check(freeze, dst, i, STORE_OWNER_REPAIR, NULL),
                         STORE_OWNER_OK);
        assert_int_equal(check(freeze, 2, i, STORE_OWNER_REPAIR, NULL),
                         src == 2 ? STORE_OWNER_MIGRATING : STORE_OWNER_MOVED);
        assert_int_equal(check(sw, 2, i, STORE_OWNER_READ, NULL),
                         STORE_OWNER_MOVED);
        assert_int_equal(check(sw, dst, i, STORE_OWNER_WRITE, NULL),
                         src == 2 ? STORE_OWNER_MIGRATING : STORE_OWNER_OK);
        assert_int_equal(check(sw, dst, i, STORE_OWNER_READ, NULL),
                         STORE_OWNER_OK);
    }
    assert_true(from2 > NKEYS / 5 && from2 < NKEYS / 2);
    assert_true(store_owner_in_ring(freeze->ring, 2));
    assert_false(store_owner_in_ring(sw->ring, 2));
    assert_true(store_owner_in_ring(sw->ring_from, 2));
    assert_false(store_owner_in_ring(NULL, 0));
    topo_put(freeze);
    topo_put(sw);
    ring_free(b);
}

/* A read a source redirected (421 moved) to the target whose topology is
 * still at freeze: served there for the keys moving in, and only those. */
static void test_read_moved(void **state)
{
    (void)state;
    topo_t *freeze = topo_of("[0,1]", "freeze", "[0,1]", "[0,1,2]");
    const uint32_t after[] = {0, 1, 2};
    ring_t *b = ring_new_ids(after, 3, RING_DEFAULT_VNODES);
    char key[32];
    int served = 0;

    for (int i = 0; i < NKEYS; i++) {
        int n = key_of(i, key, sizeof key);
        uint32_t to = ring_lookup(b, key, (size_t)n);
        enum store_owner_rc rc = check(freeze, 2, i, STORE_OWNER_READ_MOVED, NULL);

        assert_int_equal(rc, to == 2 ? STORE_OWNER_OK : STORE_OWNER_MOVED);
        /* a plain read there is still refused: shard 2 owns nothing yet */
        assert_int_equal(check(freeze, 2, i, STORE_OWNER_READ, NULL), STORE_OWNER_MOVED);
        served += rc == STORE_OWNER_OK;
    }
    assert_true(served > NKEYS / 5);
    ring_free(b);
    topo_put(freeze);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_topology),
        cmocka_unit_test(test_grow),
        cmocka_unit_test(test_shrink),
        cmocka_unit_test(test_read_moved),
    };
    return cmocka_run_group_tests_name("store_owner", tests, NULL, NULL);
}
