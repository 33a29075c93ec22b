/* The queue's pure rules: coalescing, job ids, and the journal's group
 * numbering, replay (of its own format and of the old one), forgetting and
 * high-water mark (on a real LMDB in a temp dir). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "../../queue/coalesce.h"
#include "../../queue/jobid.h"
#include "../../queue/journal.h"
#include "../../queue/outcome.h"
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

/* A 208 is a resend or replay when the shard holds the op's own version,
 * and a superseded write when it holds a newer one (issue 12: such writes
 * used to be reported applied). */
static void test_outcome_rule(void **state)
{
    wire_result r = {.status = 200, .version = 7};
    (void)state;
    assert_int_equal(outcome_of(&r, 7), OUTCOME_APPLIED);
    r.status = 208;
    assert_int_equal(outcome_of(&r, 7), OUTCOME_APPLIED);
    r.version = 9;
    assert_int_equal(outcome_of(&r, 7), OUTCOME_SUPERSEDED);
    r.status = 412;
    assert_int_equal(outcome_of(&r, 7), OUTCOME_PRECONDITION);
    r.status = 421;
    assert_int_equal(outcome_of(&r, 7), OUTCOME_MOVED);
    r.status = 503;
    assert_int_equal(outcome_of(&r, 7), OUTCOME_MIGRATING);
    for (unsigned st = 400; st < 600; st += 7) {
        r.status = (uint16_t)st;
        if (st != 412 && st != 421 && st != 503)
            assert_int_equal(outcome_of(&r, 7), OUTCOME_FAILED);
    }
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
        s->ids[s->n++] = recs[i]->version;
}

/* The test's job id for the record of version v (the queue's are random). */
static jobid job_of(uint64_t v)
{
    jobid id;
    for (size_t i = 0; i < JOBID_BYTES; i++)
        id.b[i] = (uint8_t)(v * 31 + i);
    return id;
}

/* The test's condition and TTL flags for the record of version v: every
 * kind of condition and none, with and without an expiry. */
static uint8_t cond_of(uint64_t v)
{
    return (uint8_t)((v % 3 == 0 ? WIRE_F_IF_MATCH : v % 3 == 2 ? WIRE_F_IF_ABSENT : 0) |
                     (v % 2 == 0 ? WIRE_F_EXPIRES : 0));
}

static void replayed(const journal_rec *r, void *arg)
{
    seen *s = arg;
    char key[16];
    jobid want = job_of(r->version);
    snprintf(key, sizeof key, "k%llu", (unsigned long long)r->version);
    assert_int_equal(r->klen, strlen(key));
    assert_memory_equal(r->key, key, r->klen);
    assert_int_equal(r->op, WIRE_INCR);
    assert_int_equal(r->delta, -(int64_t)r->version);
    assert_true(r->has_job); /* the id survives the restart */
    assert_true(jobid_equal(&r->job, &want));
    assert_int_equal(r->flags, cond_of(r->version)); /* so is the condition */
    assert_int_equal(r->if_match, (cond_of(r->version) & WIRE_F_IF_MATCH)
                                      ? r->version * 1000 : 0);
    assert_int_equal(r->expires_at, (cond_of(r->version) & WIRE_F_EXPIRES)
                                        ? r->version * 7 : 0);
    s->ids[s->n++] = r->version;
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
                                .delta = -(int64_t)(base + 1 + i),
                                .job = job_of(base + 1 + i),
                                .flags = cond_of(base + 1 + i)};
            if (recs[i].flags & WIRE_F_IF_MATCH)
                recs[i].if_match = (base + 1 + i) * 1000;
            if (recs[i].flags & WIRE_F_EXPIRES)
                recs[i].expires_at = (base + 1 + i) * 7;
            rp[i] = &recs[i];
        }
        assert_int_equal(journal_append_many(j, rp, n, rcs), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(rcs[i], 0);
            assert_int_equal(recs[i].version, base + 1 + i); /* numbered in order */
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

static void test_jobid(void **state)
{
    jobid a, b, ids[64];
    char txt[JOBID_TEXT + 1], bad[JOBID_TEXT + 2];
    (void)state;

    assert_int_equal(jobid_new(ids, 64), 0);
    for (size_t i = 0; i < 64; i++)
        for (size_t k = i + 1; k < 64; k++)
            assert_false(jobid_equal(&ids[i], &ids[k]));
    a = ids[0];
    jobid_format(&a, txt);
    assert_int_equal(strlen(txt), JOBID_TEXT);
    for (size_t i = 0; i < JOBID_TEXT; i++)
        assert_non_null(strchr("0123456789abcdef", txt[i]));
    assert_int_equal(jobid_parse(txt, JOBID_TEXT, &b), 0);
    assert_true(jobid_equal(&a, &b));
    /* Only the exact shape: length, case, every byte. */
    assert_int_equal(jobid_parse(txt, JOBID_TEXT - 1, &b), -1);
    assert_int_equal(jobid_parse("", 0, &b), -1);
    assert_int_equal(jobid_parse(NULL, 0, &b), -1);
    assert_int_equal(jobid_parse("218313669081153", 15, &b), -1);
    memcpy(bad, txt, sizeof txt);
    bad[JOBID_TEXT] = '0';
    bad[JOBID_TEXT + 1] = '\0';
    assert_int_equal(jobid_parse(bad, JOBID_TEXT + 1, &b), -1);
    static const char others[] = {'A', 'F', 'g', ' ', '%', '\0', '\n', '-', '+'};
    for (size_t i = 0; i < sizeof others; i++) {
        memcpy(bad, txt, sizeof txt);
        bad[7] = others[i];
        assert_int_equal(jobid_parse(bad, JOBID_TEXT, &b), -1);
    }
    assert_int_equal(jobid_parse("00000000000000000000000000000000", JOBID_TEXT, &b), 0);
    assert_int_equal(jobid_parse("ffffffffffffffffffffffffffffffff", JOBID_TEXT, &b), 0);
}

/* Write records the way the journal did when the job id was the version
 * (value: op, delta, key length, key, value; record 0 the high mark). */
static void old_journal_write(const char *dir, uint64_t high)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    static const struct { uint64_t v; uint8_t op; int64_t delta; const char *k, *val; }
        recs[] = {{200, WIRE_PUT, 0, "old-put", "hello"},
                  {201, WIRE_INCR, 7, "old-incr", ""},
                  {202, WIRE_DEL, 0, "old-del", ""}};

    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 16u << 20), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS | MDB_WRITEMAP, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, MDB_INTEGERKEY, &dbi), 0);
    for (size_t i = 0; i < 3; i++) {
        size_t id = recs[i].v;
        uint32_t klen = (uint32_t)strlen(recs[i].k);
        size_t vlen = strlen(recs[i].val);
        uint8_t b[64];
        MDB_val k = {sizeof id, &id}, v = {13 + klen + vlen, b};
        b[0] = recs[i].op;
        memcpy(b + 1, &recs[i].delta, 8);
        memcpy(b + 9, &klen, 4);
        memcpy(b + 13, recs[i].k, klen);
        memcpy(b + 13 + klen, recs[i].val, vlen);
        assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    }
    size_t zero = 0;
    MDB_val k0 = {sizeof zero, &zero}, v0 = {sizeof high, &high};
    assert_int_equal(mdb_put(txn, dbi, &k0, &v0, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* A record as the journal wrote it before writes had conditions
 * (JOURNAL_FMT_JOB: format, op, delta, key length, job id, key, value). */
static void job_format_write(const char *dir, uint64_t version)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    size_t id = version;
    uint32_t klen = 3;
    int64_t delta = 0;
    jobid job = job_of(version);
    uint8_t b[64];
    MDB_val k = {sizeof id, &id}, v = {30 + 3 + 2, b};

    b[0] = JOURNAL_FMT_JOB;
    b[1] = WIRE_PUT;
    memcpy(b + 2, &delta, 8);
    memcpy(b + 10, &klen, 4);
    memcpy(b + 14, job.b, JOBID_BYTES);
    memcpy(b + 30, "jobok", 5);
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_mapsize(env, 16u << 20), 0);
    assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS | MDB_WRITEMAP, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, MDB_INTEGERKEY, &dbi), 0);
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

typedef struct old_seen {
    journal_rec recs[8];
    char keys[8][16], vals[8][16];
    size_t n;
} old_seen;

static void old_replayed(const journal_rec *r, void *arg)
{
    old_seen *s = arg;
    assert_true(s->n < 8 && r->klen < 16 && r->vlen < 16);
    memcpy(s->keys[s->n], r->key, r->klen);
    s->keys[s->n][r->klen] = '\0';
    memcpy(s->vals[s->n], r->val, r->vlen);
    s->vals[s->n][r->vlen] = '\0';
    s->recs[s->n++] = *r;
}

/* A journal written before conditions replays: its records keep their job
 * ids and carry no condition. */
static void test_journal_job_format(void **state)
{
    char dir[] = "/tmp/kvtest-journal-job-XXXXXX";
    seen s = {.next = 400};
    old_seen r = {0};
    journal_hooks hooks = {.next_id = next_id, .committed = committed, .arg = &s};
    journal_t *j;
    jobid want = job_of(400);
    char cmd[128];
    (void)state;

    assert_non_null(mkdtemp(dir));
    job_format_write(dir, 400);
    j = journal_open(dir, 16, "no", &hooks);
    assert_non_null(j);
    assert_int_equal(journal_replay(j, old_replayed, &r), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.recs[0].version, 400);
    assert_true(r.recs[0].has_job);
    assert_true(jobid_equal(&r.recs[0].job, &want));
    assert_int_equal(r.recs[0].flags, 0);
    assert_string_equal(r.keys[0], "job");
    assert_string_equal(r.vals[0], "ok");
    journal_close(j);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A journal of the old format (before job ids were random) replays: same
 * versions, ops, keys, deltas and values, flagged as having no job id; it
 * can be forgotten by version and takes new records next to the old. */
static void test_journal_old_format(void **state)
{
    char dir[] = "/tmp/kvtest-journal-old-XXXXXX";
    seen s = {.next = 300};
    old_seen r = {0};
    journal_hooks hooks = {.next_id = next_id, .committed = committed, .arg = &s};
    journal_t *j;
    (void)state;

    assert_non_null(mkdtemp(dir));
    old_journal_write(dir, 202);
    j = journal_open(dir, 16, "no", &hooks);
    assert_non_null(j);
    assert_int_equal(journal_count(j), 3);
    assert_int_equal(journal_high(j), 202);
    assert_int_equal(journal_replay(j, old_replayed, &r), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.recs[0].version, 200);
    assert_int_equal(r.recs[0].op, WIRE_PUT);
    assert_string_equal(r.keys[0], "old-put");
    assert_string_equal(r.vals[0], "hello");
    assert_int_equal(r.recs[1].version, 201);
    assert_int_equal(r.recs[1].op, WIRE_INCR);
    assert_int_equal(r.recs[1].delta, 7);
    assert_string_equal(r.keys[1], "old-incr");
    assert_int_equal(r.recs[2].version, 202);
    assert_int_equal(r.recs[2].op, WIRE_DEL);
    assert_string_equal(r.keys[2], "old-del");
    for (size_t i = 0; i < 3; i++)
        assert_false(r.recs[i].has_job);
    /* Forget one old record, add one of the new format. */
    uint64_t gone = 201;
    journal_forget(j, &gone, 1);
    journal_rec nr = {.op = WIRE_PUT, .key = "new", .klen = 3, .val = "v",
                      .vlen = 1, .job = job_of(301)};
    journal_rec *np = &nr;
    int rc = -1;
    assert_int_equal(journal_append_many(j, &np, 1, &rc), 0);
    assert_int_equal(rc, 0);
    assert_int_equal(nr.version, 301);
    journal_close(j);

    j = journal_open(dir, 16, "no", &hooks);
    assert_non_null(j);
    memset(&r, 0, sizeof r);
    assert_int_equal(journal_replay(j, old_replayed, &r), 0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.recs[0].version, 200);
    assert_false(r.recs[0].has_job);
    assert_int_equal(r.recs[1].version, 202);
    assert_false(r.recs[1].has_job);
    assert_int_equal(r.recs[2].version, 301);
    assert_true(r.recs[2].has_job);
    jobid want = job_of(301);
    assert_true(jobid_equal(&r.recs[2].job, &want));
    assert_string_equal(r.keys[2], "new");
    assert_string_equal(r.vals[2], "v");
    assert_int_equal(journal_high(j), 301);
    journal_close(j);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coalesce_rule),
        cmocka_unit_test(test_outcome_rule),
        cmocka_unit_test(test_journal_job_format),
        cmocka_unit_test(test_jobid),
        cmocka_unit_test(test_journal),
        cmocka_unit_test(test_journal_old_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
