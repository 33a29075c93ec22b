/* Unit tests of the replication side of store/sdb.c (replicated batches
 * under the primary's seqs, gaps, epochs, repairs and re-stamping, wipe and
 * full resync, promotion, read snapshots, the tombstone horizon) and of the
 * write quorum policy of store/wquorum.c. Each test works in mkdtemp
 * directories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../store/sdb.h"
#include "../../store/wquorum.h"
#include "hlc.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct pair {
    char pdir[64], sdir[64];
    sdb *p, *s; /* a primary and its secondary */
} pair;

static sdb *open_db(const char *dir)
{
    sdb_opts o = {0};
    char err[256];
    sdb *db;

    o.map_size_mb = 64;
    o.fsync = SDB_FSYNC_NO;
    db = sdb_open(dir, &o, err, sizeof err);
    if (db == NULL)
        fail_msg("sdb_open: %s", err);
    return db;
}

static void rm_dir(const char *dir)
{
    char p[128];
    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

static int setup(void **state)
{
    pair *t = calloc(1, sizeof *t);
    strcpy(t->pdir, "/tmp/test_store_repl.XXXXXX");
    strcpy(t->sdir, "/tmp/test_store_repl.XXXXXX");
    assert_non_null(mkdtemp(t->pdir));
    assert_non_null(mkdtemp(t->sdir));
    t->p = open_db(t->pdir);
    t->s = open_db(t->sdir);
    assert_int_equal(sdb_set_role(t->p, SDB_ROLE_PRIMARY), 0);
    assert_int_equal(sdb_set_epoch(t->p, 1), 0);
    assert_int_equal(sdb_follow(t->s, 1, 0), 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    pair *t = *state;
    sdb_close(t->p);
    sdb_close(t->s);
    rm_dir(t->pdir);
    rm_dir(t->sdir);
    free(t);
    return 0;
}

static wire_result write1(sdb *db, enum sdb_apply_mode mode, uint8_t kind,
                          const char *k, const char *v, uint64_t ver,
                          uint64_t seq)
{
    wire_op op = {0};
    wire_result res;

    op.op = kind;
    op.key = k;
    op.key_len = strlen(k);
    op.val = v;
    op.val_len = v ? strlen(v) : 0;
    op.version = ver;
    op.seq = seq;
    assert_int_equal(sdb_apply_as(db, mode, &op, 1, &res, NULL), 0);
    return res;
}

static size_t decode(const wire_buf *b, wire_op *ops, size_t max)
{
    size_t off = 0, n = 0;
    while (n < max && wire_next_op(b->data, b->len, &off, &ops[n]) == 1)
        n++;
    return n;
}

/* Streams p's changes since `since` to s in pages of `page` ops, as the
 * primary's sender does. Returns the last sdb_replicate code. */
static int stream(pair *t, uint64_t since, size_t page)
{
    wire_buf b = {0};
    wire_op ops[64];
    wire_result res[64];
    int more = 1, rc = 0;

    while (more) {
        uint64_t next;
        size_t n;
        sdb_repl_args a = {0};
        wire_buf_reset(&b);
        assert_int_equal(sdb_changes_since(t->p, since, page, 0, &b, &next,
                                           &more), 0);
        n = decode(&b, ops, 64);
        a.epoch = sdb_get_epoch(t->s);
        a.since = since;
        a.upto = next;
        rc = sdb_replicate(t->s, ops, n, &a, res, NULL);
        if (rc != 0)
            break;
        since = next;
    }
    wire_buf_free(&b);
    return rc;
}

/* Every changes entry of a and b, as (seq, key, version) lines. */
static void changes_text(sdb *db, char *out, size_t n)
{
    wire_buf b = {0};
    wire_op ops[64];
    uint64_t next;
    int more;
    size_t k, len = 0;

    assert_int_equal(sdb_changes_since(db, 0, 0, 0, &b, &next, &more), 0);
    k = decode(&b, ops, 64);
    out[0] = '\0';
    for (size_t i = 0; i < k; i++)
        len += (size_t)snprintf(out + len, n - len, "%llu %.*s %llu %d\n",
                                (unsigned long long)ops[i].seq,
                                (int)ops[i].key_len, ops[i].key,
                                (unsigned long long)ops[i].version, ops[i].op);
    wire_buf_free(&b);
}

static uint64_t seq_of(sdb *db, const char *k)
{
    sdb_record rec;
    uint64_t s;
    assert_int_equal(sdb_get(db, k, strlen(k), &rec), 0);
    s = rec.seq;
    sdb_record_free(&rec);
    return s;
}

/* ---- replicated batches ------------------------------------------------- */

static void test_replica_keeps_primary_seqs(void **state)
{
    pair *t = *state;
    char a[4096], b[4096];
    sdb_stats st;

    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "a", "1", 0, 0);
    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "b", "2", 0, 0);
    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "a", "3", 0, 0); /* a: 1 -> 3 */
    write1(t->p, SDB_APPLY_WRITE, WIRE_DEL, "b", NULL, 0, 0);
    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "c", "5", 0, 0);
    assert_int_equal(stream(t, 0, 2), 0);
    changes_text(t->p, a, sizeof a);
    changes_text(t->s, b, sizeof b);
    assert_string_equal(a, b);
    assert_int_equal(sdb_applied_seq(t->s), 5);
    assert_int_equal(sdb_last_seq(t->s), 5);
    assert_int_equal(sdb_stats_get(t->s, &st), 0);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.tombstones, 1);

    /* More writes, then an incremental stream from the position. */
    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "a", "6", 0, 0);
    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "d", "7", 0, 0);
    assert_int_equal(stream(t, sdb_applied_seq(t->s), 1), 0);
    changes_text(t->p, a, sizeof a);
    changes_text(t->s, b, sizeof b);
    assert_string_equal(a, b);
    assert_int_equal(sdb_applied_seq(t->s), 7);
    /* A replay is harmless. */
    assert_int_equal(stream(t, 0, 64), 0);
    changes_text(t->s, b, sizeof b);
    assert_string_equal(a, b);
}

static void test_replicate_refusals(void **state)
{
    pair *t = *state;
    wire_op op = {.op = WIRE_PUT, .key = "k", .key_len = 1, .val = "v",
                  .val_len = 1, .version = 100, .seq = 10};
    wire_result res;
    uint64_t applied = 99;
    sdb_repl_args a = {.epoch = 1, .since = 9, .upto = 10};
    sdb_record rec;

    /* A gap: the stream continues from 9, we are at 0. */
    assert_int_equal(sdb_replicate(t->s, &op, 1, &a, &res, &applied),
                     SDB_REPL_GAP);
    assert_int_equal(applied, 0);
    assert_int_equal(sdb_get(t->s, "k", 1, &rec), 1);
    /* Another epoch. */
    a.since = 0;
    a.epoch = 2;
    assert_int_equal(sdb_replicate(t->s, &op, 1, &a, &res, &applied),
                     SDB_REPL_EPOCH);
    assert_int_equal(sdb_get(t->s, "k", 1, &rec), 1);
    /* Accepted; upto moves the position past the last op. */
    a.epoch = 1;
    a.upto = 12;
    assert_int_equal(sdb_replicate(t->s, &op, 1, &a, &res, &applied), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(applied, 12);
    assert_int_equal(seq_of(t->s, "k"), 10);
    /* An empty batch can move it too (entries gone by tombstone GC). */
    a.since = 12;
    a.upto = 15;
    assert_int_equal(sdb_replicate(t->s, NULL, 0, &a, NULL, &applied), 0);
    assert_int_equal(applied, 15);
    /* A stream carries no increments and always has version and seq. */
    op.op = WIRE_PUT;
    op.seq = 0;
    a.since = 15;
    a.upto = 15;
    assert_int_equal(sdb_replicate(t->s, &op, 1, &a, &res, &applied), 0);
    assert_int_equal(res.status, 400);
    /* During a full resync only the resync's own pages are taken. */
    assert_int_equal(sdb_wipe(t->s, 1), 0);
    op.seq = 3;
    a.since = 0;
    a.upto = 3;
    assert_int_equal(sdb_replicate(t->s, &op, 1, &a, &res, &applied),
                     SDB_REPL_RESYNC);
    a.resync = 1;
    assert_int_equal(sdb_replicate(t->s, &op, 1, &a, &res, &applied), 0);
    assert_int_equal(applied, 3);
}

/* ---- repairs ------------------------------------------------------------ */

static void test_repair_on_secondary_is_unstamped_until_the_stream(void **state)
{
    pair *t = *state;
    sdb_stats st;
    char a[4096], b[4096];
    uint64_t ver;

    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "x", "old", 0, 0);
    assert_int_equal(stream(t, 0, 64), 0);
    assert_int_equal(sdb_applied_seq(t->s), 1);
    /* The primary writes a newer x; a read repair brings it to the
     * secondary before the stream does. */
    ver = write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "x", "new", 0, 0).version;
    assert_int_equal(write1(t->s, SDB_APPLY_REPAIR, WIRE_PUT, "x", "new", ver,
                            77).status, 200);
    assert_int_equal(sdb_applied_seq(t->s), 1); /* the position stays */
    assert_int_equal(seq_of(t->s, "x"), 0);     /* no seq of its own */
    assert_int_equal(sdb_stats_get(t->s, &st), 0);
    assert_int_equal(st.unstamped, 1);
    /* The stream brings the same version: a no-op that stamps it. */
    assert_int_equal(stream(t, 1, 64), 0);
    assert_int_equal(seq_of(t->s, "x"), 2);
    assert_int_equal(sdb_stats_get(t->s, &st), 0);
    assert_int_equal(st.unstamped, 0);
    changes_text(t->p, a, sizeof a);
    changes_text(t->s, b, sizeof b);
    assert_string_equal(a, b);
    /* An older repair is a no-op on any role. */
    assert_int_equal(write1(t->s, SDB_APPLY_REPAIR, WIRE_PUT, "x", "older",
                            ver - 1, 0).status, 208);
    assert_int_equal(write1(t->p, SDB_APPLY_REPAIR, WIRE_PUT, "x", "older",
                            ver - 1, 0).status, 208);
    /* A repair on a primary is one of its writes (next seq, streamed). */
    assert_int_equal(write1(t->p, SDB_APPLY_REPAIR, WIRE_DEL, "y", NULL,
                            ver + 5, 40).status, 200);
    assert_int_equal(seq_of(t->p, "y"), 3);
    /* ... and never an increment. */
    {
        char d[8];
        wire_op op = {.op = WIRE_INCR, .key = "n", .key_len = 1, .val = d,
                      .val_len = 8};
        wire_result res;
        wire_encode_delta(1, d);
        assert_int_equal(sdb_apply_as(t->s, SDB_APPLY_REPAIR, &op, 1, &res,
                                      NULL), 0);
        assert_int_equal(res.status, 400);
    }
}

/* ---- promotion, wipe, resync ------------------------------------------- */

static void test_promote_continues_and_stamps(void **state)
{
    pair *t = *state;
    sdb_stats st;
    uint64_t stamped = 0;

    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, k, "v", 0, 0);
    }
    assert_int_equal(stream(t, 0, 64), 0);
    assert_int_equal(write1(t->s, SDB_APPLY_REPAIR, WIRE_PUT, "r", "rep",
                            hlc_wall_us() - HLC_EPOCH_UNIX_US, 0).status, 200);
    assert_int_equal(sdb_promote(t->s, 2, &stamped), 0);
    assert_int_equal(stamped, 1);
    assert_int_equal(sdb_get_role(t->s), SDB_ROLE_PRIMARY);
    assert_int_equal(sdb_get_epoch(t->s), 2);
    assert_int_equal(seq_of(t->s, "r"), 6);
    assert_int_equal(sdb_stats_get(t->s, &st), 0);
    assert_int_equal(st.unstamped, 0);
    /* New writes continue the numbering. */
    write1(t->s, SDB_APPLY_WRITE, WIRE_PUT, "n", "1", 0, 0);
    assert_int_equal(seq_of(t->s, "n"), 7);
    /* A primary is never wiped. */
    assert_int_equal(sdb_wipe(t->s, 3), -1);
    assert_int_equal(sdb_last_seq(t->s), 7);
}

static void test_wipe_and_resync_survive_restart(void **state)
{
    pair *t = *state;
    sdb_stats st;
    sdb_record rec;

    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "a", "1", 0, 0);
    assert_int_equal(stream(t, 0, 64), 0);
    assert_int_equal(sdb_set_epoch(t->s, 4), 0);
    assert_int_equal(sdb_wipe(t->s, 3), -1); /* below our epoch */
    assert_int_equal(sdb_wipe(t->s, 5), 0);
    assert_int_equal(sdb_get(t->s, "a", 1, &rec), 1);
    assert_int_equal(sdb_stats_get(t->s, &st), 0);
    assert_true(st.resyncing);
    assert_int_equal(st.keys + st.tombstones + st.last_seq + st.applied_seq, 0);
    assert_int_equal(st.epoch, 5);
    /* A crash in the middle of the resync is remembered. */
    sdb_close(t->s);
    t->s = open_db(t->sdir);
    assert_true(sdb_resyncing(t->s));
    assert_int_equal(sdb_get_role(t->s), SDB_ROLE_SECONDARY);
    assert_int_equal(sdb_resync_done(t->s, 9), 0);
    sdb_close(t->s);
    t->s = open_db(t->sdir);
    assert_false(sdb_resyncing(t->s));
    assert_int_equal(sdb_applied_seq(t->s), 9);
    assert_int_equal(sdb_get_epoch(t->s), 5);
}

/* ---- snapshots ----------------------------------------------------------- */

static void test_snapshot_pages_see_one_state(void **state)
{
    pair *t = *state;
    wire_buf b = {0};
    wire_op ops[64];
    uint64_t next, since = 0;
    int more = 1, pages = 0;
    size_t total = 0;
    sdb_snap *snap;

    for (int i = 0; i < 10; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, k, "before", 0, 0);
    }
    snap = sdb_snap_open(t->p);
    assert_non_null(snap);
    /* Writes after the snapshot: rewrites move keys past it, new keys. */
    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "k0", "after", 0, 0);
    write1(t->p, SDB_APPLY_WRITE, WIRE_DEL, "k5", NULL, 0, 0);
    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "z", "new", 0, 0);
    while (more) {
        size_t n;
        wire_buf_reset(&b);
        assert_int_equal(sdb_snap_changes(snap, since, 3, 0, &b, &next, &more),
                         0);
        n = decode(&b, ops, 64);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(ops[i].op, WIRE_PUT);
            assert_int_equal(ops[i].val_len, 6);
            assert_memory_equal(ops[i].val, "before", 6);
        }
        total += n;
        since = next;
        pages++;
    }
    sdb_snap_close(snap);
    assert_int_equal(total, 10);
    assert_int_equal(pages, 4);
    assert_int_equal(since, 10); /* the snapshot's seq: resume from there */
    wire_buf_free(&b);
}

/* ---- the tombstone horizon ---------------------------------------------- */

static void test_gc_seq(void **state)
{
    pair *t = *state;
    uint64_t n = 0;
    sdb_stats st;

    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "a", "1", 0, 0);  /* 1 */
    write1(t->p, SDB_APPLY_WRITE, WIRE_DEL, "a", NULL, 0, 0); /* 2 */
    write1(t->p, SDB_APPLY_WRITE, WIRE_DEL, "b", NULL, 0, 0); /* 3 */
    write1(t->p, SDB_APPLY_WRITE, WIRE_PUT, "c", "1", 0, 0);  /* 4 */
    assert_int_equal(sdb_collect_tombstones(t->p, 2, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sdb_gc_seq(t->p), 2);
    assert_int_equal(sdb_collect_tombstones(t->p, 1, &n), 0); /* behind */
    assert_int_equal(n, 0);
    assert_int_equal(sdb_gc_seq(t->p), 2);
    sdb_close(t->p);
    t->p = open_db(t->pdir);
    assert_int_equal(sdb_gc_seq(t->p), 2);
    assert_int_equal(sdb_collect_tombstones(t->p, 4, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sdb_stats_get(t->p, &st), 0);
    assert_int_equal(st.tombstones, 0);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.gc_seq, 4);
}

/* ---- the write quorum policy ---------------------------------------------- */

static void test_wquorum_seq(void **state)
{
    wquorum_peer p[4] = {{50, 1}, {80, 1}, {70, 0}, {90, 1}};
    enum wquorum_policy pol;
    (void)state;

    /* any: the w-th highest ack, dead or alive */
    assert_int_equal(wquorum_seq(p, 4, 1, WQUORUM_ANY), 90);
    assert_int_equal(wquorum_seq(p, 4, 2, WQUORUM_ANY), 80);
    assert_int_equal(wquorum_seq(p, 4, 3, WQUORUM_ANY), 70);
    assert_int_equal(wquorum_seq(p, 4, 4, WQUORUM_ANY), 50);
    assert_int_equal(wquorum_seq(p, 4, 5, WQUORUM_ANY), 0);
    /* ordered: the lowest ack of the first w live in replica order */
    assert_int_equal(wquorum_seq(p, 4, 1, WQUORUM_ORDERED), 50);
    assert_int_equal(wquorum_seq(p, 4, 2, WQUORUM_ORDERED), 50);
    p[0].acked = 85;
    assert_int_equal(wquorum_seq(p, 4, 2, WQUORUM_ORDERED), 80);
    assert_int_equal(wquorum_seq(p, 4, 3, WQUORUM_ORDERED), 80);
    assert_int_equal(wquorum_seq(p, 4, 4, WQUORUM_ORDERED), 0); /* 3 live */
    assert_int_equal(wquorum_alive(p, 4), 3);
    assert_int_equal(wquorum_seq(p, 0, 1, WQUORUM_ANY), 0);
    assert_int_equal(wquorum_policy_parse("ordered", &pol), 0);
    assert_int_equal(pol, WQUORUM_ORDERED);
    assert_int_equal(wquorum_policy_parse("any", &pol), 0);
    assert_int_equal(pol, WQUORUM_ANY);
    assert_int_equal(wquorum_policy_parse("first", &pol), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replica_keeps_primary_seqs, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_replicate_refusals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_repair_on_secondary_is_unstamped_until_the_stream, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_promote_continues_and_stamps,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_wipe_and_resync_survive_restart,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_pages_see_one_state,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_seq, setup, teardown),
        cmocka_unit_test(test_wquorum_seq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
