/* Unit tests for lib/topo's parser: shard ids in any order and with gaps
 * (ids are never reused), the ring built from them, and the topologies it
 * refuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "topo.h"

static topo_t *parse(const char *json, char *err, size_t errlen)
{
    err[0] = '\0';
    return topo_parse(json, strlen(json), err, errlen);
}

static void test_sparse_ids(void **state)
{
    (void)state;
    const char *json =
        "{\"epoch\":7,\"vnodes\":128,\"queue\":\"http://q\",\"shards\":["
        "{\"id\":3,\"epoch\":2,\"primary\":\"http://s3\",\"secondaries\":[\"http://s3b\"]},"
        "{\"id\":1,\"epoch\":5,\"primary\":\"http://s1\",\"secondaries\":[]},"
        "{\"id\":4,\"epoch\":1,\"primary\":null}]}";
    const uint32_t ids[] = {1, 3, 4};
    char err[160], key[32];
    topo_t *t = parse(json, err, sizeof err);
    ring_t *r = ring_new_ids(ids, 3, 128);

    assert_non_null(t);
    assert_non_null(r);
    assert_int_equal(t->nshards, 3);
    assert_int_equal(t->epoch, 7);
    assert_null(topo_shard_by_id(t, 0));
    assert_null(topo_shard_by_id(t, 2));
    assert_null(topo_shard_by_id(t, TOPO_MAX_SHARD_IDS));
    assert_string_equal(topo_shard_by_id(t, 1)->primary, "http://s1");
    assert_int_equal(topo_shard_by_id(t, 1)->epoch, 5);
    assert_string_equal(topo_shard_by_id(t, 3)->secondaries[0], "http://s3b");
    assert_null(topo_shard_by_id(t, 4)->primary);
    /* Every key goes where the ring of the id list sends it. */
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "key-%d", i);
        const topo_shard *sh = topo_shard_for(t, key, (size_t)n);
        assert_non_null(sh);
        assert_int_equal(sh->id, ring_lookup(r, key, (size_t)n));
    }
    ring_free(r);
    topo_put(t);
}

/* ids 0..n-1 place keys exactly as the count-built ring always did. */
static void test_dense_ids_keep_todays_ring(void **state)
{
    (void)state;
    const char *json = "{\"epoch\":1,\"shards\":[{\"id\":0,\"epoch\":1},"
                       "{\"id\":1,\"epoch\":1}]}";
    char err[160], key[32];
    topo_t *t = parse(json, err, sizeof err);
    ring_t *r = ring_new(2, RING_DEFAULT_VNODES);

    assert_non_null(t);
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "cart:%d", i);
        assert_int_equal(topo_shard_for(t, key, (size_t)n)->id,
                         ring_lookup(r, key, (size_t)n));
    }
    ring_free(r);
    topo_put(t);
}

/* A migration adding shard 2 to {0, 1}: the ring is today's, ring_to the
 * one with 2; keys that move are exactly those the two rings disagree on. */
static void test_migration(void **state)
{
    (void)state;
    const char *json =
        "{\"epoch\":9,\"ring\":[0,1],"
        "\"migration\":{\"id\":4,\"phase\":\"freeze\",\"from\":[0,1],\"to\":[0,1,2]},"
        "\"shards\":[{\"id\":0,\"epoch\":1},{\"id\":1,\"epoch\":1},"
        "{\"id\":2,\"epoch\":1}]}";
    const uint32_t now[] = {0, 1}, after[] = {0, 1, 2};
    char err[160], key[32];
    topo_t *t = parse(json, err, sizeof err);
    ring_t *a = ring_new_ids(now, 2, RING_DEFAULT_VNODES);
    ring_t *b = ring_new_ids(after, 3, RING_DEFAULT_VNODES);
    size_t moved = 0;

    if (t == NULL)
        fail_msg("%s", err);
    assert_int_equal(t->phase, TOPO_PHASE_FREEZE);
    assert_int_equal(t->migration_id, 4);
    assert_string_equal(topo_phase_name(t->phase), "freeze");
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "key-%d", i);
        uint32_t owner = topo_shard_for(t, key, (size_t)n)->id;
        uint32_t to = topo_owner_to(t, key, (size_t)n);
        assert_int_equal(owner, ring_lookup(a, key, (size_t)n));
        assert_int_equal(topo_owner_from(t, key, (size_t)n), owner);
        assert_int_equal(to, ring_lookup(b, key, (size_t)n));
        moved += owner != to;
        if (owner != to)
            assert_int_equal(to, 2);
    }
    assert_true(moved > 1000 && moved < 2400);
    ring_free(a);
    ring_free(b);
    topo_put(t);

    /* Without a migration the owner after it is the owner now. */
    t = parse("{\"shards\":[{\"id\":5},{\"id\":7}]}", err, sizeof err);
    assert_non_null(t);
    assert_int_equal(t->phase, TOPO_PHASE_NONE);
    assert_null(t->ring_to);
    assert_null(t->ring_from);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(topo_owner_to(t, key, (size_t)n),
                         topo_shard_for(t, key, (size_t)n)->id);
        assert_int_equal(topo_owner_from(t, key, (size_t)n),
                         topo_shard_for(t, key, (size_t)n)->id);
    }
    topo_put(t);
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *json, *why;
    } cases[] = {
        {"{\"shards\":[]}", "array of 1"},
        {"{\"shards\":[{\"id\":0},{\"id\":0}]}", "appears twice"},
        {"{\"shards\":[{\"id\":256}]}", "integer 0..255"},
        {"{\"shards\":[{\"id\":-1}]}", "integer 0..255"},
        {"{\"shards\":[{\"id\":1.5}]}", "integer 0..255"},
        {"{\"shards\":[{\"epoch\":1}]}", "integer 0..255"},
        {"not json", "not valid JSON"},
        {"{\"ring\":[3],\"shards\":[{\"id\":0}]}", "not in \"shards\""},
        {"{\"ring\":[],\"shards\":[{\"id\":0}]}", "must list 1 to 1"},
        {"{\"ring\":[0,0],\"shards\":[{\"id\":0},{\"id\":1}]}", "repeats"},
        {"{\"migration\":{\"id\":1,\"phase\":\"later\",\"to\":[0]},"
         "\"shards\":[{\"id\":0}]}", "needs an id and a phase"},
        {"{\"migration\":{\"phase\":\"copy\",\"to\":[0]},"
         "\"shards\":[{\"id\":0}]}", "needs an id and a phase"},
        {"{\"migration\":{\"id\":1,\"phase\":\"copy\",\"from\":[0],\"to\":[1]},"
         "\"shards\":[{\"id\":0}]}", "not in \"shards\""},
        {"{\"migration\":{\"id\":1,\"phase\":\"copy\",\"to\":[0]},"
         "\"shards\":[{\"id\":0}]}", "migration.from"},
        /* issue 11, finding 7: every field checked, nothing cast blindly */
        {"{\"epoch\":-1,\"shards\":[{\"id\":0}]}", "\"epoch\" must be"},
        {"{\"epoch\":1.5,\"shards\":[{\"id\":0}]}", "\"epoch\" must be"},
        {"{\"epoch\":\"7\",\"shards\":[{\"id\":0}]}", "\"epoch\" must be"},
        {"{\"epoch\":1e300,\"shards\":[{\"id\":0}]}", "\"epoch\" must be"},
        {"{\"epoch\":9007199254740994,\"shards\":[{\"id\":0}]}", "\"epoch\" must be"},
        {"{\"vnodes\":-2,\"shards\":[{\"id\":0}]}", "\"vnodes\" must be"},
        {"{\"vnodes\":0,\"shards\":[{\"id\":0}]}", "\"vnodes\" must be"},
        {"{\"vnodes\":4097,\"shards\":[{\"id\":0}]}", "\"vnodes\" must be"},
        {"{\"vnodes\":1e12,\"shards\":[{\"id\":0}]}", "\"vnodes\" must be"},
        {"{\"queue\":\"\",\"shards\":[{\"id\":0}]}", "\"queue\" must be"},
        {"{\"queue\":5,\"shards\":[{\"id\":0}]}", "\"queue\" must be"},
        {"{\"shards\":[{\"id\":0,\"epoch\":-3}]}", "shards[0].epoch"},
        {"{\"shards\":[{\"id\":0,\"epoch\":\"x\"}]}", "shards[0].epoch"},
        {"{\"shards\":[{\"id\":0,\"handoff_seq\":-1}]}", "handoff_seq"},
        {"{\"shards\":[{\"id\":0,\"handoff_seq\":0.5}]}", "handoff_seq"},
        {"{\"shards\":[{\"id\":0,\"primary\":7}]}", "shards[0].primary"},
        {"{\"shards\":[{\"id\":0,\"primary\":\"\"}]}", "shards[0].primary"},
        {"{\"shards\":[{\"id\":0,\"secondaries\":\"http://a\"}]}", "secondaries must be an array"},
        {"{\"shards\":[{\"id\":0,\"secondaries\":[1]}]}", "secondaries must be URLs"},
        {"{\"shards\":[{\"id\":0,\"secondaries\":[\"\"]}]}", "secondaries must be URLs"},
        {"{\"ring\":[0.5],\"shards\":[{\"id\":0}]}", "not in \"shards\""},
        {"{\"migration\":{\"id\":-4,\"phase\":\"copy\",\"from\":[0],\"to\":[0]},"
         "\"shards\":[{\"id\":0}]}", "needs an id and a phase"},
        /* one JSON value only: nothing but whitespace after it */
        {"{\"shards\":[{\"id\":0}]} {\"epoch\":9}", "not valid JSON"},
        {"{\"shards\":[{\"id\":0}]}}", "not valid JSON"},
        {"{\"migration\":{\"id\":1.5,\"phase\":\"copy\",\"from\":[0],\"to\":[0]},"
         "\"shards\":[{\"id\":0}]}", "needs an id and a phase"},
    };
    char err[160];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        topo_t *t = parse(cases[i].json, err, sizeof err);
        if (t != NULL || strstr(err, cases[i].why) == NULL)
            fail_msg("%s: parsed=%d err=\"%s\", wanted \"%s\"", cases[i].json,
                     t != NULL, err, cases[i].why);
    }
}

/* A URL over TOPO_MAX_URL bytes, and more secondaries than fit. */
static void test_refused_sizes(void **state)
{
    (void)state;
    static char json[TOPO_MAX_URL + 4096];
    char err[160];
    int n;

    n = snprintf(json, sizeof json, "{\"shards\":[{\"id\":0,\"primary\":\"");
    memset(json + n, 'a', TOPO_MAX_URL + 1);
    snprintf(json + n + TOPO_MAX_URL + 1, sizeof json - (size_t)n - TOPO_MAX_URL - 1,
             "\"}]}");
    assert_null(parse(json, err, sizeof err));
    assert_non_null(strstr(err, "shards[0].primary"));
    n = snprintf(json, sizeof json, "{\"shards\":[{\"id\":0,\"secondaries\":[");
    for (int i = 0; i <= TOPO_MAX_SECONDARIES; i++)
        n += snprintf(json + n, sizeof json - (size_t)n, "%s\"http://s%d\"",
                      i ? "," : "", i);
    snprintf(json + n, sizeof json - (size_t)n, "]}]}");
    assert_null(parse(json, err, sizeof err));
    assert_non_null(strstr(err, "secondaries must be an array"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sparse_ids),
        cmocka_unit_test(test_dense_ids_keep_todays_ring),
        cmocka_unit_test(test_migration),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_refused_sizes),
    };
    return cmocka_run_group_tests_name("topo", tests, NULL, NULL);
}
