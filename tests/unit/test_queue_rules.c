/* The queue's pure rules: coalescing, and the journal's group numbering,
 * replay, forgetting and high-water mark (on a real LMDB in a temp dir). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../queue/coalesce.h"
#include "../../queue/journal.h"
#include "wire.h"

static void test_coalesce_rule(void **state)
{
    (void)state;
    assert_int_equal(coalesce_rule(WIRE_PUT, WIRE_PUT), COALESCE_REPLACE);
    assert_int_equal(coalesce_rule(WIRE_INCR, WIRE_PUT), COALESCE_REPLACE);
    assert_int_equal(coalesce_rule(WIRE_PUT, WIRE_DEL), COALESCE_REPLACE);
    assert_int_equal(coalesce_rule(WIRE_INCR, WIRE_DEL), COALESCE_REPLACE);
    assert_int_equal(coalesce_rule(WIRE_INCR, WIRE_INCR), COALESCE_ADD);
    assert_int_equal(coalesce_rule(WIRE_PUT, WIRE_INCR), COALESCE_NONE);
    assert_int_equal(coalesce_rule(WIRE_DEL, WIRE_INCR), COALESCE_NONE);
}

typedef struct seen {
    uint64_t next;
    uint64_t ids[64];
    size_t n;
} seen;

static uint64_t next_id(void *arg)
{
    return ++((seen *)arg)->next;
}

static void committed(void *arg, journal_rec *const *recs, size_t n)
{
    seen *s = arg;
    for (size_t i = 0; i < n; i++)
        s->ids[s->n++] = recs[i]->id;
}

static void replayed(const journal_rec *r, void *arg)
{
    seen *s = arg;
    char key[16];
    snprintf(key, sizeof key, "k%llu", (unsigned long long)r->id);
    assert_int_equal(r->klen, strlen(key));
    assert_memory_equal(r->key, key, r->klen);
    assert_int_equal(r->op, WIRE_INCR);
    assert_int_equal(r->delta, -(int64_t)r->id);
    s->ids[s->n++] = r->id;
}

static void test_journal(void **state)
{
    char dir[] = "/tmp/kvtest-journal-XXXXXX";
    seen s = {.next = 100}, r = {0};
    journal_hooks hooks = {.next_id = next_id, .committed = committed, .arg = &s};
    journal_t *j;
    (void)state;

    assert_non_null(mkdtemp(dir));
    j = journal_open(dir, 16, "no", &hooks);
    assert_non_null(j);
    assert_int_equal(journal_high(j), 0);
    /* Two records one at a time, then three handed in together (one
     * server pass's worth). The id is known only once committed: keys are
     * named after the ids the leader will hand out. */
    static const size_t batches[] = {1, 1, 3};
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
        size_t n = batches[b];
        char keys[3][16];
        journal_rec recs[3], *rp[3];
        int rcs[3] = {-1, -1, -1};
        uint64_t base = s.next;
        for (size_t i = 0; i < n; i++) {
            snprintf(keys[i], sizeof keys[i], "k%llu",
                     (unsigned long long)(base + 1 + i));
            recs[i] = (journal_rec){.op = WIRE_INCR, .key = keys[i],
                                .klen = strlen(keys[i]),
                                .delta = -(int64_t)(base + 1 + i)};
            rp[i] = &recs[i];
        }
        assert_int_equal(journal_append_many(j, rp, n, rcs), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(rcs[i], 0);
            assert_int_equal(recs[i].id, base + 1 + i); /* numbered in order */
        }
    }
    assert_int_equal(s.n, 5);
    for (size_t i = 1; i < s.n; i++)
        assert_true(s.ids[i] > s.ids[i - 1]); /* committed in id order */
    uint64_t gone[2] = {s.ids[0], s.ids[3]};
    journal_forget(j, gone, 2);
    journal_close(j); /* flushes the forgetting */

    j = journal_open(dir, 16, "no", &hooks);
    assert_non_null(j);
    assert_int_equal(journal_count(j), 3);
    assert_int_equal(journal_high(j), 105); /* survives even when all is gone */
    assert_int_equal(journal_replay(j, replayed, &r), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.ids[0], 102);
    assert_int_equal(r.ids[1], 103);
    assert_int_equal(r.ids[2], 105);
    journal_close(j);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coalesce_rule),
        cmocka_unit_test(test_journal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
