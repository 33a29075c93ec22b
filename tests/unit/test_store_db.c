/* Unit tests of store/sdb.c: last-writer-wins apply, tombstones, INCR,
 * seq and the changes feed, version assignment, persistence. Each test
 * works in its own mkdtemp directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../store/sdb.h"
#include "hlc.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct tctx {
    char dir[64];
    sdb *db;
} tctx;

/* A clock the tests move by hand (microseconds since the Unix epoch). */
static uint64_t fake_now = HLC_EPOCH_UNIX_US + 1000000;
static uint64_t fake_clock(void)
{
    return fake_now;
}

/* skew_ms 0: the store's default (5 s). */
static sdb *open_db_skew(const char *dir, uint64_t skew_ms)
{
    sdb_opts o = {0};
    char err[256];
    sdb *db;

    o.map_size_mb = 64;
    o.fsync = SDB_FSYNC_NO;
    o.max_key_bytes = 2048;
    o.max_value_bytes = 4096;
    o.clock = fake_clock;
    o.max_version_skew_ms = skew_ms;
    db = sdb_open(dir, &o, err, sizeof err);
    if (db == NULL)
        fail_msg("sdb_open: %s", err);
    return db;
}

/* Most tests hand the store versions hours past the fake clock (a peer's
 * clock pulling ours forward): a skew of a day lets them. */
static sdb *open_db(const char *dir)
{
    return open_db_skew(dir, 86400000);
}

static int setup(void **state)
{
    tctx *t = calloc(1, sizeof *t);
    strcpy(t->dir, "/tmp/test_store_db.XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    fake_now = HLC_EPOCH_UNIX_US + 1000000;
    t->db = open_db(t->dir);
    *state = t;
    return 0;
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

static int teardown(void **state)
{
    tctx *t = *state;
    sdb_close(t->db);
    rm_dir(t->dir);
    free(t);
    return 0;
}

/* Applies op alone, its key and value given as C strings (key_len and
 * val_len filled here; an INCR adds 1): the result, optionally its seq and
 * error. */
static wire_result apply1(sdb *db, wire_op op, uint64_t *seq, enum sdb_err *err)
{
    char d[8];
    wire_result res;
    sdb_opinfo info;

    op.key_len = strlen(op.key);
    op.val_len = op.val ? strlen(op.val) : 0;
    if (op.op == WIRE_INCR) {
        wire_encode_delta(1, d);
        op.val = d;
        op.val_len = 8;
    }
    assert_int_equal(sdb_apply_batch(db, &op, 1, &res, &info), 0);
    if (seq)
        *seq = info.seq;
    if (err)
        *err = info.err;
    return res;
}

/* One op with a condition (lib/wire.h WIRE_F_IF_*, 0: none). */
static wire_result cond_op(sdb *db, uint8_t kind, const char *key,
                           const char *val, uint64_t version, uint8_t flags,
                           uint64_t if_match, uint64_t *seq, enum sdb_err *err)
{
    wire_op op = {.op = kind, .flags = flags, .version = version, .key = key,
                  .val = val, .if_match = if_match};
    return apply1(db, op, seq, err);
}

/* One op helpers: return the result, optionally the seq. */
static wire_result op1(sdb *db, uint8_t kind, const char *key, const char *val,
                       uint64_t version, uint64_t *seq)
{
    return cond_op(db, kind, key, val, version, 0, 0, seq, NULL);
}

static wire_result put(sdb *db, const char *k, const char *v, uint64_t ver)
{
    return op1(db, WIRE_PUT, k, v, ver, NULL);
}

static wire_result del(sdb *db, const char *k, uint64_t ver)
{
    return op1(db, WIRE_DEL, k, NULL, ver, NULL);
}

static wire_result incr(sdb *db, const char *k, int64_t by, uint64_t ver,
                        enum sdb_err *err)
{
    char d[8];
    wire_op op = {0};
    wire_result res;
    sdb_opinfo info;

    wire_encode_delta(by, d);
    op.op = WIRE_INCR;
    op.key = k;
    op.key_len = strlen(k);
    op.val = d;
    op.val_len = 8;
    op.version = ver;
    assert_int_equal(sdb_apply_batch(db, &op, 1, &res, &info), 0);
    if (err)
        *err = info.err;
    return res;
}

/* Asserts key holds val (live) at version ver. */
static void check_value(sdb *db, const char *k, const char *val, uint64_t ver)
{
    sdb_record rec;
    assert_int_equal(sdb_get(db, k, strlen(k), &rec), 0);
    assert_int_equal(rec.flags & SDB_F_TOMBSTONE, 0);
    assert_int_equal(rec.val_len, strlen(val));
    assert_memory_equal(rec.val, val, rec.val_len);
    assert_int_equal(rec.val[rec.val_len], '\0');
    if (ver)
        assert_int_equal(rec.version, ver);
    sdb_record_free(&rec);
}

static void test_lww(void **state)
{
    tctx *t = *state;
    wire_result r;
    sdb_record rec;

    assert_int_equal(sdb_get(t->db, "k", 1, &rec), 1);
    r = put(t->db, "k", "v100", 100);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.version, 100);
    /* Older and equal versions are no-ops reporting the stored version. */
    r = put(t->db, "k", "v50", 50);
    assert_int_equal(r.status, 208);
    assert_int_equal(r.version, 100);
    r = put(t->db, "k", "v100b", 100);
    assert_int_equal(r.status, 208);
    assert_int_equal(r.version, 100);
    check_value(t->db, "k", "v100", 100);
    assert_int_equal(sdb_last_seq(t->db), 1);
    /* Newer wins. */
    r = put(t->db, "k", "v200", 200);
    assert_int_equal(r.status, 200);
    check_value(t->db, "k", "v200", 200);
    assert_int_equal(sdb_last_seq(t->db), 2);
    /* Empty values are values. */
    r = put(t->db, "e", "", 10);
    assert_int_equal(r.status, 200);
    check_value(t->db, "e", "", 10);
}

static void test_tombstones(void **state)
{
    tctx *t = *state;
    sdb_record rec;
    sdb_stats st;

    assert_int_equal(put(t->db, "k", "v", 100).status, 200);
    assert_int_equal(del(t->db, "k", 90).status, 208);
    assert_int_equal(del(t->db, "k", 300).status, 200);
    assert_int_equal(sdb_get(t->db, "k", 1, &rec), 0);
    assert_true(rec.flags & SDB_F_TOMBSTONE);
    assert_int_equal(rec.version, 300);
    assert_int_equal(rec.val_len, 0);
    sdb_record_free(&rec);
    /* The tombstone keeps its version: an older put cannot resurrect. */
    assert_int_equal(put(t->db, "k", "old", 250).status, 208);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.keys, 0);
    assert_int_equal(st.tombstones, 1);
    /* A newer put does. */
    assert_int_equal(put(t->db, "k", "new", 400).status, 200);
    check_value(t->db, "k", "new", 400);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.keys, 1);
    assert_int_equal(st.tombstones, 0);
    /* Deleting a key never written still records the delete's version. */
    assert_int_equal(del(t->db, "ghost", 500).status, 200);
    assert_int_equal(put(t->db, "ghost", "late", 450).status, 208);
}

static void test_incr(void **state)
{
    tctx *t = *state;
    enum sdb_err e;
    wire_result r;

    r = incr(t->db, "c", 5, 0, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.number, 5);
    check_value(t->db, "c", "5", 0);
    r = incr(t->db, "c", -7, 0, NULL);
    assert_int_equal(r.number, -2);
    check_value(t->db, "c", "-2", 0);
    /* Overflow: nothing changes. */
    r = incr(t->db, "c", INT64_MIN, 0, &e);
    assert_int_equal(r.status, 409);
    assert_int_equal(e, SDB_E_OVERFLOW);
    check_value(t->db, "c", "-2", 0);
    r = incr(t->db, "c", INT64_MAX, 0, NULL);
    assert_int_equal(r.number, INT64_MAX - 2);
    r = incr(t->db, "c", 3, 0, &e);
    assert_int_equal(r.status, 409);
    assert_int_equal(e, SDB_E_OVERFLOW);
    r = incr(t->db, "c", 2, 0, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.number, INT64_MAX);
    check_value(t->db, "c", "9223372036854775807", 0);
    /* Not an integer. */
    assert_int_equal(put(t->db, "s", "abc", 0).status, 200);
    r = incr(t->db, "s", 1, 0, &e);
    assert_int_equal(r.status, 409);
    assert_int_equal(e, SDB_E_NOT_INTEGER);
    check_value(t->db, "s", "abc", 0);
    assert_int_equal(put(t->db, "s", " 1", 0).status, 200);
    assert_int_equal(incr(t->db, "s", 1, 0, NULL).status, 409);
    /* A tombstone counts as 0. */
    assert_int_equal(del(t->db, "s", 0).status, 200);
    r = incr(t->db, "s", 4, 0, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.number, 4);
    /* A retried increment (same version) is a no-op reporting the value. */
    r = incr(t->db, "r", 10, 1000, NULL);
    assert_int_equal(r.status, 200);
    r = incr(t->db, "r", 10, 1000, NULL);
    assert_int_equal(r.status, 208);
    assert_int_equal(r.number, 10);
    assert_int_equal(r.version, 1000);
    check_value(t->db, "r", "10", 1000);
}

/* If-Match / If-None-Match at the engine: judged on the live record in the
 * write's transaction; 412 names the live version; a tombstone is no
 * record; a resend of an applied conditional write is 208, not 412. */
static void test_conditions(void **state)
{
    tctx *t = *state;
    enum sdb_err e;
    wire_result r;

    r = cond_op(t->db, WIRE_PUT, "c", "one", 100, WIRE_F_IF_ABSENT, 0, NULL, NULL);
    assert_int_equal(r.status, 200);
    r = cond_op(t->db, WIRE_PUT, "c", "two", 110, WIRE_F_IF_ABSENT, 0, NULL, &e);
    assert_int_equal(r.status, 412);
    assert_int_equal(e, SDB_E_PRECONDITION);
    assert_int_equal(r.version, 100);
    r = cond_op(t->db, WIRE_PUT, "c", "two", 120, WIRE_F_IF_MATCH, 99, NULL, NULL);
    assert_int_equal(r.status, 412);
    assert_int_equal(r.version, 100);
    check_value(t->db, "c", "one", 100);
    r = cond_op(t->db, WIRE_PUT, "c", "two", 130, WIRE_F_IF_MATCH, 100, NULL, NULL);
    assert_int_equal(r.status, 200);
    check_value(t->db, "c", "two", 130);
    /* the same write again (a queue resend): 208, though 100 is gone */
    r = cond_op(t->db, WIRE_PUT, "c", "two", 130, WIRE_F_IF_MATCH, 100, NULL, NULL);
    assert_int_equal(r.status, 208);
    assert_int_equal(r.version, 130);
    r = cond_op(t->db, WIRE_INCR, "n", NULL, 140, WIRE_F_IF_EXISTS, 0, NULL, NULL);
    assert_int_equal(r.status, 412);
    assert_int_equal(r.version, 0);
    r = cond_op(t->db, WIRE_DEL, "c", NULL, 150, WIRE_F_IF_EXISTS, 0, NULL, NULL);
    assert_int_equal(r.status, 200);
    /* a tombstone: If-Match on its version fails, If-None-Match holds */
    r = cond_op(t->db, WIRE_PUT, "c", "x", 160, WIRE_F_IF_MATCH, 150, NULL, NULL);
    assert_int_equal(r.status, 412);
    assert_int_equal(r.version, 0);
    r = cond_op(t->db, WIRE_INCR, "c", NULL, 170, WIRE_F_IF_ABSENT, 0, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.number, 1);
    /* the condition holds but a newer version is stored: last writer wins */
    r = cond_op(t->db, WIRE_PUT, "c", "old", 165, WIRE_F_IF_EXISTS, 0, NULL, NULL);
    assert_int_equal(r.status, 208);
    assert_int_equal(r.version, 170);
    check_value(t->db, "c", "1", 170);
}

/* One op with an expiry (lib/wire.h WIRE_F_EXPIRES; 0: none). */
static wire_result ttl_op(sdb *db, uint8_t kind, const char *key,
                          const char *val, uint64_t expires_at)
{
    wire_op op = {.op = kind, .flags = expires_at ? WIRE_F_EXPIRES : 0,
                  .key = key, .val = val, .expires_at = expires_at};
    return apply1(db, op, NULL, NULL);
}

/* The stored record of key (it must be there), without its value. */
static sdb_record stored(sdb *db, const char *key)
{
    sdb_record rec;
    assert_int_equal(sdb_get(db, key, strlen(key), &rec), SDB_GET_FOUND);
    sdb_record_free(&rec);
    return rec;
}

static uint64_t expires_of(sdb *db, const char *key)
{
    return stored(db, key).expires_at;
}

static uint64_t version_of(sdb *db, const char *key)
{
    return stored(db, key).version;
}

/* A record's expiry (TTL): stored with it (a long key too), read back,
 * judged by the store's clock, kept by an increment, cleared by a put
 * without one; an expired record is absent for conditions and increments
 * and goes out in the changes feed with its expiry. */
static void test_expiry(void **state)
{
    tctx *t = *state;
    uint64_t now = sdb_now_ms(t->db), next;
    char longkey[700];
    sdb_record rec;
    wire_buf b = {0};
    wire_op op;
    size_t off = 0;
    int more, seen = 0;

    assert_int_equal(now, fake_now / 1000);
    assert_int_equal(ttl_op(t->db, WIRE_PUT, "s", "session", now + 2000).status, 200);
    assert_int_equal(expires_of(t->db, "s"), now + 2000);
    memset(longkey, 'L', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(ttl_op(t->db, WIRE_PUT, longkey, "long", now + 2000).status, 200);
    assert_int_equal(sdb_get(t->db, longkey, strlen(longkey), &rec), SDB_GET_FOUND);
    assert_int_equal(rec.expires_at, now + 2000);
    assert_int_equal(rec.val_len, 4);
    assert_memory_equal(rec.val, "long", 4);
    assert_false(sdb_record_expired(&rec, sdb_now_ms(t->db)));
    sdb_record_free(&rec);
    /* an increment keeps the expiry, or takes the one it carries */
    assert_int_equal(ttl_op(t->db, WIRE_PUT, "n", "5", now + 2000).status, 200);
    assert_int_equal(ttl_op(t->db, WIRE_INCR, "n", NULL, 0).number, 6);
    assert_int_equal(expires_of(t->db, "n"), now + 2000);
    assert_int_equal(ttl_op(t->db, WIRE_INCR, "n", NULL, now + 9000).number, 7);
    assert_int_equal(expires_of(t->db, "n"), now + 9000);
    /* a put without one clears it */
    assert_int_equal(ttl_op(t->db, WIRE_PUT, "n", "1", 0).status, 200);
    assert_int_equal(expires_of(t->db, "n"), 0);
    /* the changes feed carries it */
    assert_int_equal(sdb_changes_since(t->db, 0, 0, 0, &b, &next, &more), 0);
    while (wire_next_op(b.data, b.len, &off, &op) == 1)
        if (op.key_len == 1 && op.key[0] == 's') {
            assert_int_equal(op.flags, WIRE_F_EXPIRES);
            assert_int_equal(op.expires_at, now + 2000);
            seen = 1;
        } else if (op.key_len == 1 && op.key[0] == 'n') {
            assert_int_equal(op.flags, 0);
        }
    assert_true(seen);
    wire_buf_free(&b);
    /* time passes: expired, absent to conditions and increments */
    fake_now += 2000 * 1000;
    assert_int_equal(sdb_get(t->db, "s", 1, &rec), SDB_GET_FOUND);
    assert_true(sdb_record_expired(&rec, sdb_now_ms(t->db)));
    sdb_record_free(&rec);
    assert_int_equal(cond_op(t->db, WIRE_PUT, "s", "again", 0, WIRE_F_IF_EXISTS, 0,
                             NULL, NULL).status, 412);
    assert_int_equal(ttl_op(t->db, WIRE_PUT, longkey, "x", 0).status, 200);
    assert_int_equal(ttl_op(t->db, WIRE_PUT, "c", "41", now + 1000).status, 200);
    assert_int_equal(ttl_op(t->db, WIRE_INCR, "c", NULL, 0).number, 1);
    assert_int_equal(expires_of(t->db, "c"), 0); /* an expired TTL is not kept */
    assert_int_equal(cond_op(t->db, WIRE_PUT, "s", "new", 0, WIRE_F_IF_ABSENT, 0,
                             NULL, NULL).status, 200);
    assert_int_equal(expires_of(t->db, "s"), 0);
    /* a delete carries no expiry */
    {
        wire_op d = {0};
        wire_result res;
        sdb_opinfo info;
        d.op = WIRE_DEL;
        d.key = "s";
        d.key_len = 1;
        d.flags = WIRE_F_EXPIRES;
        d.expires_at = now + 5000;
        assert_int_equal(sdb_apply_batch(t->db, &d, 1, &res, &info), 0);
        assert_int_equal(res.status, 400);
    }
}

static void test_parse_i64(void **state)
{
    int64_t v;
    (void)state;
    assert_int_equal(sdb_parse_i64("0", 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(sdb_parse_i64("-9223372036854775808", 20, &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(sdb_parse_i64("9223372036854775807", 19, &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(sdb_parse_i64("9223372036854775808", 19, &v), -1);
    assert_int_equal(sdb_parse_i64("-9223372036854775809", 20, &v), -1);
    assert_int_equal(sdb_parse_i64("", 0, &v), -1);
    assert_int_equal(sdb_parse_i64("-", 1, &v), -1);
    assert_int_equal(sdb_parse_i64("+1", 2, &v), -1);
    assert_int_equal(sdb_parse_i64("1a", 2, &v), -1);
}

/* Decodes a changes answer into arrays; returns the op count. */
static size_t decode(const wire_buf *b, wire_op *ops, size_t max)
{
    size_t off = 0, n = 0;
    int rc;
    while ((rc = wire_next_op(b->data, b->len, &off, &ops[n])) == 1) {
        n++;
        assert_true(n <= max);
    }
    assert_int_equal(rc, 0);
    return n;
}

static void test_changes(void **state)
{
    tctx *t = *state;
    wire_buf b = {0};
    wire_op ops[16];
    uint64_t next, seq;
    int more;
    size_t n;

    op1(t->db, WIRE_PUT, "a", "1", 0, &seq);
    assert_int_equal(seq, 1);
    op1(t->db, WIRE_PUT, "b", "2", 0, &seq);
    assert_int_equal(seq, 2);
    op1(t->db, WIRE_PUT, "a", "3", 0, &seq);
    assert_int_equal(seq, 3);
    op1(t->db, WIRE_DEL, "c", NULL, 0, &seq);
    assert_int_equal(seq, 4);
    /* A no-op takes no seq. */
    op1(t->db, WIRE_PUT, "a", "old", 1, &seq);
    assert_int_equal(seq, 0);
    assert_int_equal(sdb_last_seq(t->db), 4);

    /* Each key once, at its latest seq, in seq order. */
    assert_int_equal(sdb_changes_since(t->db, 0, 0, 0, &b, &next, &more), 0);
    n = decode(&b, ops, 16);
    assert_int_equal(n, 3);
    assert_int_equal(more, 0);
    assert_int_equal(next, 4);
    assert_int_equal(ops[0].seq, 2);
    assert_memory_equal(ops[0].key, "b", 1);
    assert_int_equal(ops[0].op, WIRE_PUT);
    assert_memory_equal(ops[0].val, "2", 1);
    assert_int_equal(ops[1].seq, 3);
    assert_memory_equal(ops[1].key, "a", 1);
    assert_memory_equal(ops[1].val, "3", 1);
    assert_int_equal(ops[2].seq, 4);
    assert_int_equal(ops[2].op, WIRE_DEL);
    assert_int_equal(ops[2].val_len, 0);
    assert_true(ops[2].version > ops[1].version);

    /* Since 2: only what changed after it. */
    wire_buf_reset(&b);
    assert_int_equal(sdb_changes_since(t->db, 2, 0, 0, &b, &next, &more), 0);
    assert_int_equal(decode(&b, ops, 16), 2);
    assert_int_equal(ops[0].seq, 3);

    /* Paging: limit 1 resumes where it stopped. */
    wire_buf_reset(&b);
    assert_int_equal(sdb_changes_since(t->db, 0, 1, 0, &b, &next, &more), 0);
    assert_int_equal(decode(&b, ops, 16), 1);
    assert_int_equal(more, 1);
    assert_int_equal(next, 2);
    wire_buf_reset(&b);
    assert_int_equal(sdb_changes_since(t->db, next, 1, 0, &b, &next, &more), 0);
    assert_int_equal(decode(&b, ops, 16), 1);
    assert_int_equal(ops[0].seq, 3);
    assert_int_equal(more, 1);
    wire_buf_reset(&b);
    /* A byte cap still writes at least one op. */
    assert_int_equal(sdb_changes_since(t->db, next, 0, 1, &b, &next, &more), 0);
    assert_int_equal(decode(&b, ops, 16), 1);
    assert_int_equal(ops[0].seq, 4);
    assert_int_equal(more, 0);
    assert_int_equal(next, 4);

    /* Caught up: nothing, and the position stays. */
    wire_buf_reset(&b);
    assert_int_equal(sdb_changes_since(t->db, 4, 0, 0, &b, &next, &more), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(next, 4);

    /* The feed replays into another store as the same data. */
    {
        tctx t2;
        wire_result res[16];
        sdb_stats st;
        strcpy(t2.dir, "/tmp/test_store_db.XXXXXX");
        assert_non_null(mkdtemp(t2.dir));
        t2.db = open_db(t2.dir);
        wire_buf_reset(&b);
        assert_int_equal(sdb_changes_since(t->db, 0, 0, 0, &b, &next, &more), 0);
        n = decode(&b, ops, 16);
        assert_int_equal(sdb_apply_batch(t2.db, ops, n, res, NULL), 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(res[i].status, 200);
        check_value(t2.db, "a", "3", ops[1].version);
        assert_int_equal(sdb_stats_get(t2.db, &st), 0);
        assert_int_equal(st.applied_seq, 4);
        assert_int_equal(st.keys, 2);
        assert_int_equal(st.tombstones, 1);
        /* Replaying again changes nothing. */
        assert_int_equal(sdb_apply_batch(t2.db, ops, n, res, NULL), 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(res[i].status, 208);
        /* A replica keeps its primary's seqs (2, 3, 4: "a" moved to 3). */
        assert_int_equal(sdb_last_seq(t2.db), 4);
        wire_buf_reset(&b);
        assert_int_equal(sdb_changes_since(t2.db, 0, 0, 0, &b, &next, &more),
                         0);
        {
            wire_op ops2[16];
            size_t n2 = decode(&b, ops2, 16);
            assert_int_equal(n2, n);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(ops2[i].seq, ops[i].seq);
        }
        sdb_close(t2.db);
        rm_dir(t2.dir);
    }
    wire_buf_free(&b);
}

/* Keeps the keys that start with the letter in arg. */
static int keep_first(void *arg, const char *key, size_t len)
{
    return len > 0 && key[0] == *(const char *)arg;
}

static void test_changes_picked(void **state)
{
    tctx *t = *state;
    wire_buf b = {0};
    wire_op ops[16];
    uint64_t next, examined;
    int more;
    char want = 'x';

    put(t->db, "x1", "a", 0);  /* seq 1 */
    put(t->db, "y1", "b", 0);  /* 2 */
    put(t->db, "y2", "c", 0);  /* 3 */
    put(t->db, "x2", "d", 0);  /* 4 */
    del(t->db, "x3", 0);       /* 5 */
    put(t->db, "y3", "e", 0);  /* 6 */

    /* Only the kept keys, in seq order; every entry counted. */
    assert_int_equal(sdb_changes_picked(t->db, 0, 0, 0, keep_first, &want,
                                        &b, &next, &more, &examined), 0);
    assert_int_equal(decode(&b, ops, 16), 3);
    assert_memory_equal(ops[0].key, "x1", 2);
    assert_memory_equal(ops[1].key, "x2", 2);
    assert_memory_equal(ops[1].val, "d", 1);
    assert_int_equal(ops[2].op, WIRE_DEL);
    assert_int_equal(ops[2].seq, 5);
    assert_int_equal(examined, 6);
    assert_int_equal(more, 0);
    assert_int_equal(next, 6);

    /* The limit counts entries examined, and paging resumes after the last
     * one, kept or not: 3 entries (x1 y1 y2) hold one kept key. */
    wire_buf_reset(&b);
    assert_int_equal(sdb_changes_picked(t->db, 0, 3, 0, keep_first, &want,
                                        &b, &next, &more, &examined), 0);
    assert_int_equal(decode(&b, ops, 16), 1);
    assert_int_equal(examined, 3);
    assert_int_equal(more, 1);
    assert_int_equal(next, 3);
    wire_buf_reset(&b);
    assert_int_equal(sdb_changes_picked(t->db, next, 3, 0, keep_first, &want,
                                        &b, &next, &more, &examined), 0);
    assert_int_equal(decode(&b, ops, 16), 2);
    assert_int_equal(ops[0].seq, 4);
    assert_int_equal(more, 0);
    assert_int_equal(next, 6);

    /* Nothing kept: an empty answer that still moves the position. */
    want = 'z';
    wire_buf_reset(&b);
    assert_int_equal(sdb_changes_picked(t->db, 0, 0, 0, keep_first, &want,
                                        &b, &next, &more, &examined), 0);
    assert_int_equal(b.len, 0);
    assert_int_equal(next, 6);
    assert_int_equal(examined, 6);
    wire_buf_free(&b);
}

static void test_version_assignment(void **state)
{
    tctx *t = *state;
    wire_result r1, r2, r3;

    /* The clock stands still: versions still strictly increase. */
    r1 = put(t->db, "a", "1", 0);
    r2 = put(t->db, "a", "2", 0);
    assert_int_equal(r1.status, 200);
    assert_int_equal(r2.status, 200);
    assert_true(r2.version > r1.version);
    assert_true(r1.version >= 1000000);
    assert_true(r2.version <= HLC_MAX);
    /* A far-future version seen from a peer pulls the clock forward. */
    assert_int_equal(put(t->db, "b", "x", 5000000000ULL).status, 200);
    r3 = put(t->db, "a", "3", 0);
    assert_int_equal(r3.status, 200);
    assert_true(r3.version > 5000000000ULL);
    /* Versions above 2^53 are refused. */
    assert_int_equal(put(t->db, "a", "4", HLC_MAX + 1).status, 400);
    check_value(t->db, "a", "3", r3.version);
}

/* Issue 11, finding 2: a version far past the clock would shadow every later
 * write (last writer wins). Writes, replicated and repaired ops more than
 * the skew ahead are refused; within it they apply, and the key keeps
 * taking normal writes. */
static wire_result put_err(sdb *db, const char *k, const char *v,
                           uint64_t ver, enum sdb_err *err)
{
    wire_op op = {0};
    wire_result res;
    sdb_opinfo info = {0};

    op.op = WIRE_PUT;
    op.key = k;
    op.key_len = strlen(k);
    op.val = v;
    op.val_len = strlen(v);
    op.version = ver;
    assert_int_equal(sdb_apply_batch(db, &op, 1, &res, &info), 0);
    *err = info.err;
    return res;
}

static void test_version_in_future(void **state)
{
    tctx *t = *state;
    uint64_t now = fake_now - HLC_EPOCH_UNIX_US;
    wire_result r, res[2];
    sdb_opinfo info[2];
    wire_op op = {0};
    enum sdb_err err;

    sdb_close(t->db);
    t->db = open_db_skew(t->dir, 0); /* the default, 5 s */
    r = put_err(t->db, "k", "frozen", HLC_MAX, &err);
    assert_int_equal(r.status, 400);
    assert_int_equal(err, SDB_E_FUTURE_VERSION);
    r = put_err(t->db, "k", "frozen", now + 5000001, &err);
    assert_int_equal(r.status, 400);
    assert_int_equal(err, SDB_E_FUTURE_VERSION);
    /* Within the skew: a peer's clock a little ahead. */
    assert_int_equal(put(t->db, "k", "peer", now + 4000000).status, 200);
    /* Normal writes still land after it (the HLC moved past it). */
    r = put(t->db, "k", "later", 0);
    assert_int_equal(r.status, 200);
    check_value(t->db, "k", "later", r.version);
    /* Replication and repair apply the same rule, per op. */
    op.op = WIRE_PUT;
    op.key = "k";
    op.key_len = 1;
    op.val = "repl";
    op.val_len = 4;
    op.version = HLC_MAX - 1;
    op.seq = 1000;
    wire_op ops[2] = {op, op};
    ops[1].key = "r";
    ops[1].version = r.version + 1;
    ops[1].seq = 1001;
    memset(info, 0, sizeof info);
    assert_int_equal(sdb_apply_as(t->db, SDB_APPLY_REPLICATE, ops, 2, res, info), 0);
    assert_int_equal(res[0].status, 400);
    assert_int_equal(info[0].err, SDB_E_FUTURE_VERSION);
    assert_int_equal(res[1].status, 200);
    check_value(t->db, "r", "repl", r.version + 1);
    memset(info, 0, sizeof info);
    assert_int_equal(sdb_apply_as(t->db, SDB_APPLY_REPAIR, ops, 1, res, info), 0);
    assert_int_equal(res[0].status, 400);
    assert_int_equal(info[0].err, SDB_E_FUTURE_VERSION);
    check_value(t->db, "k", "later", r.version);
}

static void test_validation(void **state)
{
    tctx *t = *state;
    char big[5000];
    char key[2100];
    wire_op op = {0};
    wire_result res;

    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(put(t->db, "", "x", 0).status, 400);
    assert_int_equal(put(t->db, key, "x", 0).status, 414);
    assert_int_equal(put(t->db, "k", big, 0).status, 413);
    op.op = WIRE_PUT;
    op.key = "a\0b";
    op.key_len = 3;
    assert_int_equal(sdb_apply_batch(t->db, &op, 1, &res, NULL), 0);
    assert_int_equal(res.status, 400);
    op.op = 9;
    op.key_len = 1;
    assert_int_equal(sdb_apply_batch(t->db, &op, 1, &res, NULL), 0);
    assert_int_equal(res.status, 400);
    assert_int_equal(sdb_last_seq(t->db), 0);
}

static void test_long_keys(void **state)
{
    tctx *t = *state;
    char k1[1500], k2[1500];
    wire_buf b = {0};
    wire_op ops[4];
    uint64_t next;
    int more;
    sdb_record rec;

    /* Same 1000-byte prefix: the surrogate must still tell them apart. */
    memset(k1, 'p', sizeof k1 - 1);
    k1[sizeof k1 - 1] = '\0';
    memcpy(k2, k1, sizeof k1);
    k2[sizeof k2 - 2] = 'q';
    assert_int_equal(put(t->db, k1, "one", 0).status, 200);
    assert_int_equal(put(t->db, k2, "two", 0).status, 200);
    check_value(t->db, k1, "one", 0);
    check_value(t->db, k2, "two", 0);
    /* Exactly at LMDB's limit and one past it. */
    k1[511] = '\0';
    assert_int_equal(put(t->db, k1, "511", 0).status, 200);
    k1[511] = 'p';
    k1[512] = '\0';
    assert_int_equal(put(t->db, k1, "512", 0).status, 200);
    check_value(t->db, k1, "512", 0);
    k1[512] = 'p';
    assert_int_equal(del(t->db, k2, 0).status, 200);
    assert_int_equal(sdb_get(t->db, k2, strlen(k2), &rec), 0);
    assert_true(rec.flags & SDB_F_TOMBSTONE);
    sdb_record_free(&rec);
    assert_int_equal(sdb_changes_since(t->db, 0, 0, 0, &b, &next, &more), 0);
    assert_int_equal(decode(&b, ops, 4), 4);
    assert_int_equal(ops[0].key_len, strlen(k1));
    assert_memory_equal(ops[0].key, k1, ops[0].key_len);
    assert_memory_equal(ops[0].val, "one", 3);
    assert_int_equal(ops[3].op, WIRE_DEL);
    assert_int_equal(ops[3].key_len, strlen(k2));
    assert_memory_equal(ops[3].key, k2, ops[3].key_len);
    wire_buf_free(&b);
}

static void test_batch_one_txn(void **state)
{
    tctx *t = *state;
    wire_op ops[3] = {{0}};
    wire_result res[3];
    sdb_opinfo info[3];
    char d[8];

    wire_encode_delta(2, d);
    ops[0] = (wire_op){.op = WIRE_PUT, .key = "x", .key_len = 1, .val = "7",
                       .val_len = 1, .version = 10};
    ops[1] = (wire_op){.op = WIRE_INCR, .key = "x", .key_len = 1, .val = d,
                       .val_len = 8, .version = 11};
    ops[2] = (wire_op){.op = WIRE_PUT, .key = "", .key_len = 0};
    assert_int_equal(sdb_apply_batch(t->db, ops, 3, res, info), 0);
    /* Ops see the effects of earlier ops of the same batch. */
    assert_int_equal(res[0].status, 200);
    assert_int_equal(res[1].status, 200);
    assert_int_equal(res[1].number, 9);
    assert_int_equal(res[2].status, 400);
    assert_int_equal(info[2].err, SDB_E_BAD_OP);
    assert_int_equal(info[0].seq, 1);
    assert_int_equal(info[1].seq, 2);
    check_value(t->db, "x", "9", 11);
}

static void test_persistence(void **state)
{
    tctx *t = *state;
    wire_result r;
    sdb_stats st;
    uint64_t maxv;

    assert_int_equal(put(t->db, "a", "1", 0).status, 200);
    assert_int_equal(put(t->db, "b", "2", 7000000000ULL).status, 200);
    assert_int_equal(del(t->db, "c", 0).status, 200);
    assert_int_equal(sdb_set_epoch(t->db, 42), 0);
    assert_int_equal(sdb_set_role(t->db, SDB_ROLE_SECONDARY), 0);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    maxv = st.max_version;
    assert_true(maxv > 7000000000ULL);
    sdb_close(t->db);

    /* The clock went back a lot while we were down. */
    fake_now = HLC_EPOCH_UNIX_US + 10;
    t->db = open_db(t->dir);
    check_value(t->db, "a", "1", 0);
    check_value(t->db, "b", "2", 7000000000ULL);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.last_seq, 3);
    assert_int_equal(st.max_version, maxv);
    assert_int_equal(st.keys, 2);
    assert_int_equal(st.tombstones, 1);
    assert_int_equal(st.epoch, 42);
    assert_int_equal(st.role, SDB_ROLE_SECONDARY);
    assert_int_equal(sdb_get_epoch(t->db), 42);
    /* Versions stay monotonic across the restart. */
    r = put(t->db, "a", "again", 0);
    assert_int_equal(r.status, 200);
    assert_true(r.version > maxv);
    assert_int_equal(sdb_last_seq(t->db), 4);
}

static void test_collect_tombstones(void **state)
{
    tctx *t = *state;
    uint64_t n, next;
    wire_buf b = {0};
    wire_op ops[4];
    int more;
    sdb_stats st;

    del(t->db, "d1", 0);        /* seq 1 */
    put(t->db, "live", "v", 0); /* seq 2 */
    del(t->db, "d2", 0);        /* seq 3 */
    del(t->db, "d3", 0);        /* seq 4 */
    assert_int_equal(sdb_collect_tombstones(t->db, 3, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.tombstones, 1);
    assert_int_equal(st.keys, 1);
    assert_int_equal(sdb_changes_since(t->db, 0, 0, 0, &b, &next, &more), 0);
    assert_int_equal(decode(&b, ops, 4), 2);
    assert_int_equal(ops[0].seq, 2);
    assert_int_equal(ops[1].seq, 4);
    wire_buf_free(&b);
}

/* The purge's ownership: keys starting with "x" belong elsewhere. begin
 * counts its calls and, once stop_after is reached, stops the walk. */
typedef struct purge_arg {
    int begins, ends, stop_after;
} purge_arg;

static void *purge_begin(void *arg)
{
    purge_arg *a = arg;
    if (a->stop_after && a->begins >= a->stop_after)
        return NULL;
    a->begins++;
    return a;
}

static int purge_owned(void *ctx, const char *key, size_t len)
{
    (void)ctx;
    return !(len > 0 && key[0] == 'x');
}

static void purge_end(void *ctx)
{
    purge_arg *a = ctx;
    a->ends++;
}

/* Records other shards own go, values, tombstones, unstamped and long keys
 * alike, with no tombstone left behind and out of the changes index; the
 * others and the counters stay right; batches resume where they stopped. */
static void test_purge(void **state)
{
    tctx *t = *state;
    purge_arg a = {0};
    sdb_purge_fns f = {purge_begin, purge_owned, purge_end, &a};
    char longx[1200], key[32];
    wire_buf b = {0};
    wire_op ops[64], rop;
    wire_result res;
    uint64_t n = 0, next, last;
    int more, done = 0, kept = 0;
    sdb_record rec;
    sdb_stats st;

    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "%s%02d", i % 2 ? "x" : "k", i);
        assert_int_equal(put(t->db, key, "v", 0).status, 200);
    }
    assert_int_equal(del(t->db, "x-gone", 0).status, 200);
    assert_int_equal(del(t->db, "k-gone", 0).status, 200);
    memset(longx, 'x', sizeof longx - 1);
    longx[sizeof longx - 1] = '\0';
    assert_int_equal(put(t->db, longx, "long", 0).status, 200);
    /* A secondary's repaired record waits unstamped (no seq). */
    assert_int_equal(sdb_set_role(t->db, SDB_ROLE_SECONDARY), 0);
    rop = (wire_op){.op = WIRE_PUT, .key = "x-unstamped", .key_len = 11,
                    .val = "u", .val_len = 1, .version = 5000000000ULL};
    assert_int_equal(sdb_apply_as(t->db, SDB_APPLY_REPAIR, &rop, 1, &res,
                                  NULL), 0);
    assert_int_equal(res.status, 200);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.unstamped, 1);
    assert_int_equal(st.keys, 22);
    assert_int_equal(st.tombstones, 2);
    last = sdb_last_seq(t->db);

    /* Stopped after two batches of 3: only what they saw went. */
    a.stop_after = 2;
    assert_int_equal(sdb_purge(t->db, &f, 3, &n, &done), 0);
    assert_int_equal(done, 0);
    assert_int_equal(a.begins, 2);
    assert_int_equal(a.ends, 2);
    assert_true(n <= 6);
    /* Then the whole walk, in batches of 3. */
    a = (purge_arg){0};
    assert_int_equal(sdb_purge(t->db, &f, 3, &n, &done), 0);
    assert_int_equal(done, 1);
    assert_true(a.begins >= 8);
    assert_int_equal(a.ends, a.begins);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.keys, 10);
    assert_int_equal(st.tombstones, 1);
    assert_int_equal(st.unstamped, 0);
    assert_int_equal(st.last_seq, last); /* no new seq: no tombstones */
    assert_int_equal(sdb_get(t->db, "x01", 3, &rec), SDB_GET_ABSENT);
    assert_int_equal(sdb_get(t->db, "x-gone", 6, &rec), SDB_GET_ABSENT);
    assert_int_equal(sdb_get(t->db, "x-unstamped", 11, &rec), SDB_GET_ABSENT);
    assert_int_equal(sdb_get(t->db, longx, strlen(longx), &rec),
                     SDB_GET_ABSENT);
    check_value(t->db, "k00", "v", 0);
    assert_int_equal(sdb_get(t->db, "k-gone", 6, &rec), SDB_GET_FOUND);
    assert_true(rec.flags & SDB_F_TOMBSTONE);
    sdb_record_free(&rec);
    /* The changes index holds the kept keys only, in seq order. */
    assert_int_equal(sdb_changes_since(t->db, 0, 0, 0, &b, &next, &more), 0);
    assert_int_equal(decode(&b, ops, 64), 11);
    for (int i = 0; i < 11; i++) {
        assert_int_equal(ops[i].key[0], 'k');
        if (i)
            assert_true(ops[i].seq > ops[i - 1].seq);
        kept++;
    }
    assert_int_equal(kept, 11);
    wire_buf_free(&b);
    /* Nothing left to purge; counters survive a reopen. */
    assert_int_equal(sdb_purge(t->db, &f, 0, &n, &done), 0);
    assert_int_equal(n, 0);
    assert_int_equal(done, 1);
    sdb_close(t->db);
    t->db = open_db(t->dir);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.keys, 10);
    assert_int_equal(st.tombstones, 1);
    assert_int_equal(st.unstamped, 0);
}

/* The reaper's pass (sdb_reap): due records only, in bounded passes, become
 * tombstones at their own version flagged reaped, with new seqs; a write
 * that replaced a record first wins; the index follows every write, the
 * purge and a reopen; a replica replaces its same-version expired record
 * with a reaped tombstone (where a plain delete of that version is a
 * no-op); the tombstones are collected like deletes. */
static void test_reap(void **state)
{
    tctx *t = *state;
    uint64_t now = sdb_now_ms(t->db), n = 0, total = 0, v0, next;
    char key[32], longkey[700];
    int more = 1, passes = 0, reaped_seen = 0;
    sdb_record rec;
    sdb_stats st;
    wire_buf b = {0};
    wire_op op;
    wire_result res;
    size_t off = 0;

    for (int i = 0; i < 2500; i++) {
        snprintf(key, sizeof key, "k%04d", i);
        assert_int_equal(ttl_op(t->db, WIRE_PUT, key, "v", now + 1000).status, 200);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "later%d", i);
        assert_int_equal(ttl_op(t->db, WIRE_PUT, key, "v", now + 5000).status, 200);
        snprintf(key, sizeof key, "plain%d", i);
        assert_int_equal(put(t->db, key, "v", 0).status, 200);
    }
    memset(longkey, 'L', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(ttl_op(t->db, WIRE_PUT, longkey, "v", now + 1000).status, 200);
    v0 = version_of(t->db, "k0000");
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.expiring, 2511);
    /* Nothing is due yet. */
    assert_int_equal(sdb_reap(t->db, sdb_now_ms(t->db), 0, &n, &more), 0);
    assert_int_equal(n, 0);
    assert_int_equal(more, 0);
    /* Rewritten before it expires: without a TTL, and with a later one. */
    assert_int_equal(put(t->db, "k0005", "kept", 0).status, 200);
    assert_int_equal(ttl_op(t->db, WIRE_PUT, "k0006", "later", now + 9000).status, 200);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.expiring, 2510);

    fake_now += 1000 * 1000;
    more = 1;
    while (more) {
        assert_int_equal(sdb_reap(t->db, sdb_now_ms(t->db), 1000, &n, &more), 0);
        assert_true(n <= 1000);
        total += n;
        passes++;
    }
    assert_int_equal(total, 2499);
    assert_int_equal(passes, 3);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.expiring, 11);
    assert_int_equal(st.keys, 2521 - 2499);
    assert_int_equal(st.tombstones, 2499);
    assert_int_equal(sdb_get(t->db, "k0000", 5, &rec), SDB_GET_FOUND);
    assert_int_equal(rec.flags, SDB_F_TOMBSTONE | SDB_F_REAPED);
    assert_int_equal(rec.version, v0);
    assert_int_equal(rec.expires_at, 0);
    sdb_record_free(&rec);
    assert_int_equal(sdb_get(t->db, longkey, strlen(longkey), &rec), SDB_GET_FOUND);
    assert_true(rec.flags & SDB_F_REAPED);
    sdb_record_free(&rec);
    check_value(t->db, "k0005", "kept", 0);
    check_value(t->db, "k0006", "later", 0);
    check_value(t->db, "later3", "v", 0);

    /* The feed carries the reaped tombstones, at their versions. */
    assert_int_equal(sdb_changes_since(t->db, 0, 0, 0, &b, &next, &more), 0);
    while (wire_next_op(b.data, b.len, &off, &op) == 1)
        if (op.key_len == 5 && memcmp(op.key, "k0000", 5) == 0) {
            assert_int_equal(op.op, WIRE_DEL);
            assert_int_equal(op.flags, WIRE_F_REAPED);
            assert_int_equal(op.version, v0);
            reaped_seen = 1;
        }
    assert_true(reaped_seen);
    wire_buf_free(&b);

    /* A replica's view: the expired record of that version goes, a plain
     * delete of the same version would not replace it. */
    {
        wire_op rops[3] = {
            {.op = WIRE_PUT, .flags = WIRE_F_EXPIRES, .version = v0 + 10,
             .seq = 1, .key = "r", .key_len = 1, .val = "v", .val_len = 1,
             .expires_at = now + 1000},
            {.op = WIRE_DEL, .version = v0 + 10, .seq = 2, .key = "r",
             .key_len = 1},
            {.op = WIRE_DEL, .flags = WIRE_F_REAPED, .version = v0 + 10,
             .seq = 3, .key = "r", .key_len = 1},
        };
        wire_result rres[3];
        assert_int_equal(sdb_apply_as(t->db, SDB_APPLY_REPLICATE, rops, 3, rres,
                                      NULL), 0);
        assert_int_equal(rres[0].status, 200);
        assert_int_equal(rres[1].status, 208);
        assert_int_equal(rres[2].status, 200);
        assert_int_equal(sdb_get(t->db, "r", 1, &rec), SDB_GET_FOUND);
        assert_int_equal(rec.flags, SDB_F_TOMBSTONE | SDB_F_REAPED);
        assert_int_equal(rec.seq, 3);
        sdb_record_free(&rec);
    }
    /* The reaper's op for an entry that no longer matches the record
     * (another expiry) leaves the record and drops the entry. */
    op = (wire_op){.op = WIRE_DEL, .flags = WIRE_F_REAPED | WIRE_F_EXPIRES,
                   .version = version_of(t->db, "later3"), .key = "later3",
                   .key_len = 6, .expires_at = now + 4000};
    assert_int_equal(sdb_apply_batch(t->db, &op, 1, &res, NULL), 0);
    assert_int_equal(res.status, 208);
    check_value(t->db, "later3", "v", 0);
    /* ...and for a key with no record, writes nothing (no tombstone). */
    op.key = "never";
    op.key_len = 5;
    assert_int_equal(sdb_apply_batch(t->db, &op, 1, &res, NULL), 0);
    assert_int_equal(res.status, 404);
    assert_int_equal(sdb_get(t->db, "never", 5, &rec), SDB_GET_ABSENT);
    op.key = "later3";
    op.key_len = 6;
    /* Reaps are deletes of a given version, without conditions. */
    op.expires_at = 0;
    op.flags = WIRE_F_REAPED;
    op.op = WIRE_PUT;
    assert_int_equal(sdb_apply_batch(t->db, &op, 1, &res, NULL), 0);
    assert_int_equal(res.status, 400);
    op.op = WIRE_DEL;
    op.version = 0;
    assert_int_equal(sdb_apply_batch(t->db, &op, 1, &res, NULL), 0);
    assert_int_equal(res.status, 400);
    op.version = 7;
    op.flags = WIRE_F_REAPED | WIRE_F_IF_EXISTS;
    assert_int_equal(sdb_apply_batch(t->db, &op, 1, &res, NULL), 0);
    assert_int_equal(res.status, 400);

    /* The index survives a reopen; the tombstones are collected. */
    sdb_close(t->db);
    t->db = open_db(t->dir);
    assert_int_equal(sdb_stats_get(t->db, &st), 0);
    assert_int_equal(st.expiring, 11);
    assert_int_equal(sdb_collect_tombstones(t->db, sdb_last_seq(t->db), &n), 0);
    assert_int_equal(n, 2500); /* and "r" */
    assert_int_equal(sdb_get(t->db, "k0000", 5, &rec), SDB_GET_ABSENT);
    /* A purge takes the index entries of what it drops. */
    {
        purge_arg a = {0};
        sdb_purge_fns f = {purge_begin, purge_owned, purge_end, &a};
        int done = 0;
        assert_int_equal(ttl_op(t->db, WIRE_PUT, "xgone", "v", now + 9000).status, 200);
        assert_int_equal(sdb_stats_get(t->db, &st), 0);
        assert_int_equal(st.expiring, 12);
        assert_int_equal(sdb_purge(t->db, &f, 0, &n, &done), 0);
        assert_int_equal(sdb_stats_get(t->db, &st), 0);
        assert_int_equal(st.expiring, 11);
    }
}

static void test_everysec(void **state)
{
    sdb_opts o = {0};
    char dir[64] = "/tmp/test_store_db.XXXXXX";
    char err[256];
    sdb *db;
    (void)state;

    assert_non_null(mkdtemp(dir));
    o.map_size_mb = 16;
    o.fsync = SDB_FSYNC_EVERYSEC;
    db = sdb_open(dir, &o, err, sizeof err);
    assert_non_null(db);
    assert_int_equal(put(db, "k", "v", 0).status, 200);
    assert_int_equal(sdb_sync(db), 0);
    sdb_close(db);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lww, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstones, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
        cmocka_unit_test(test_parse_i64),
        cmocka_unit_test_setup_teardown(test_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_picked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_version_in_future, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_version_assignment, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_one_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collect_tombstones, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reap, setup, teardown),
        cmocka_unit_test(test_everysec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
