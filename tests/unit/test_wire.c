/* Unit tests for lib/wire: the binary batch framing between queue and store.
 * Round trips of ops and results, the exact little-endian layout the header
 * documents, and rejection of truncated or malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "wire.h"

/* The 8-byte little-endian delta of an increment, built independently of
 * the module so the test pins the documented format. */
static void le64(char out[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (char)(uint8_t)(v >> (8 * i));
}

static int64_t get_le64(const char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | (uint8_t)p[i];
    return (int64_t)v;
}

static void expect_op(const wire_op *got, const wire_op *want)
{
    assert_int_equal(got->op, want->op);
    assert_int_equal(got->flags, want->flags);
    assert_int_equal(got->version, want->version);
    assert_int_equal(got->seq, want->seq);
    assert_int_equal(got->if_match, want->if_match);
    assert_int_equal(got->expires_at, want->expires_at);
    assert_int_equal(got->key_len, want->key_len);
    assert_memory_equal(got->key, want->key, want->key_len);
    assert_int_equal(got->val_len, want->val_len);
    if (want->val_len)
        assert_memory_equal(got->val, want->val, want->val_len);
}

static void test_ops_round_trip(void **state)
{
    (void)state;
    static const char bin[] = {'v', 0, 1, 0, (char)0xff, 0, 'z'};
    char minus[8], plus[8];
    le64(minus, (uint64_t)(int64_t)-42);
    le64(plus, (uint64_t)INT64_MAX);

    char longval[70000];
    for (size_t i = 0; i < sizeof longval; i++)
        longval[i] = (char)(i * 7);

    const wire_op ops[] = {
        /* binary value with NULs, and a binary key */
        {WIRE_PUT, 0, 1234567890123ULL, 1, "k\0ey", 4, bin, sizeof bin, 0, 0},
        {WIRE_DEL, 0, 9007199254740991ULL, 2, "gone", 4, NULL, 0, 0, 0},
        {WIRE_INCR, 0, 77, 3, "counter", 7, minus, 8, 0, 0},
        {WIRE_PUT, WIRE_F_IF_ABSENT, 5, 4, "empty", 5, "", 0, 0, 0}, /* empty value */
        {WIRE_INCR, WIRE_F_IF_MATCH | WIRE_F_EXPIRES, UINT64_MAX, UINT64_MAX,
         "c2", 2, plus, 8, UINT64_MAX - 1, 1796083200123ULL},
        {WIRE_PUT, WIRE_F_EXPIRES, 10, 11, "ttl", 3, "v", 1, 0, 7},
        {WIRE_DEL, WIRE_F_IF_EXISTS, 8, 9, "d", 1, NULL, 0, 0, 0},
        {WIRE_PUT, 0, 6, 5, "big", 3, longval, sizeof longval, 0, 0},
    };
    const size_t nops = sizeof ops / sizeof ops[0];
    wire_buf b = {0};
    size_t want_len = 0;

    for (size_t i = 0; i < nops; i++) {
        assert_int_equal(wire_put_op(&b, &ops[i]), 0);
        want_len += WIRE_OP_HDR + ops[i].key_len + ops[i].val_len +
                    ((ops[i].flags & WIRE_F_IF_MATCH) ? 8 : 0) +
                    ((ops[i].flags & WIRE_F_EXPIRES) ? 8 : 0);
    }
    assert_int_equal(b.len, want_len);

    size_t off = 0;
    wire_op got;
    for (size_t i = 0; i < nops; i++) {
        memset(&got, 0, sizeof got);
        assert_int_equal(wire_next_op(b.data, b.len, &off, &got), 1);
        expect_op(&got, &ops[i]);
    }
    assert_int_equal(off, b.len);
    assert_int_equal(wire_next_op(b.data, b.len, &off, &got), 0);

    /* The decoded increment carries the negative delta. */
    off = 0;
    for (int i = 0; i < 3; i++)
        assert_int_equal(wire_next_op(b.data, b.len, &off, &got), 1);
    assert_int_equal(got.op, WIRE_INCR);
    assert_int_equal(get_le64(got.val), -42);

    /* Decoded ops point into the input buffer (no copy). */
    off = 0;
    assert_int_equal(wire_next_op(b.data, b.len, &off, &got), 1);
    assert_ptr_equal(got.key, (const char *)b.data + WIRE_OP_HDR);

    /* reset keeps the memory and starts over */
    wire_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(wire_put_op(&b, &ops[1]), 0);
    assert_int_equal(b.len, WIRE_OP_HDR + 4);
    wire_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

/* The layout documented in wire.h, byte for byte. */
static void test_op_layout(void **state)
{
    (void)state;
    wire_buf b = {0};
    const wire_op op = {WIRE_PUT, WIRE_F_IF_MATCH | WIRE_F_EXPIRES,
                        0x0102030405060708ULL, 0x1112131415161718ULL, "ab", 2,
                        "XYZ", 3, 0x2122232425262728ULL, 0x3132333435363738ULL};
    static const uint8_t want[] = {
        1, 0x09, 0, 0,                                  /* op, flags, rsv */
        2, 0, 0, 0,                                     /* key_len */
        3, 0, 0, 0,                                     /* val_len */
        0, 0, 0, 0,                                     /* reserved */
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* version */
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, /* seq */
        0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21, /* if_match */
        0x38, 0x37, 0x36, 0x35, 0x34, 0x33, 0x32, 0x31, /* expires_at */
        'a', 'b', 'X', 'Y', 'Z'};

    assert_int_equal(WIRE_OP_HDR, 32);
    assert_int_equal(wire_put_op(&b, &op), 0);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    wire_buf_free(&b);
}

/* Unknown flag bits, or two conditions at once, make an op malformed, on
 * the way out and on the way in; an op cut inside its if_match too. */
static void test_bad_flags(void **state)
{
    (void)state;
    wire_buf b = {0};
    wire_op op = {WIRE_PUT, 0x20, 1, 0, "k", 1, "v", 1, 0, 0};
    wire_op got;
    size_t off;

    assert_int_equal(wire_put_op(&b, &op), -1);
    op.flags = WIRE_F_IF_MATCH | WIRE_F_IF_ABSENT;
    assert_int_equal(wire_put_op(&b, &op), -1);
    assert_int_equal(b.len, 0);
    op.flags = 0;
    for (unsigned f = 0; f < 256; f++) {
        unsigned c = f & WIRE_F_CONDITIONS;
        int ok = !(f & ~(WIRE_F_CONDITIONS | WIRE_F_EXPIRES | WIRE_F_REAPED)) &&
                 !(c & (c - 1));
        wire_buf_reset(&b);
        assert_int_equal(wire_put_op(&b, &op), 0);
        b.data[1] = (uint8_t)f;
        off = 0;
        /* with if_match or expires_at, the 8 bytes they take are cut from
         * the key */
        assert_int_equal(wire_next_op(b.data, b.len, &off, &got),
                         ok && !(f & (WIRE_F_IF_MATCH | WIRE_F_EXPIRES)) ? 1 : -1);
    }
    wire_buf_free(&b);
}

static void test_results_round_trip(void **state)
{
    (void)state;
    const wire_result res[] = {
        {200, 1234567, 0},
        {208, 99, 0},
        {200, 5, -17},
        {409, 0, INT64_MIN},
        {500, UINT64_MAX, INT64_MAX},
    };
    const size_t n = sizeof res / sizeof res[0];
    wire_buf b = {0};

    for (size_t i = 0; i < n; i++)
        assert_int_equal(wire_put_result(&b, &res[i]), 0);
    assert_int_equal(b.len, n * WIRE_RESULT_LEN);

    /* layout: u16 status, u16 rsv, u32 rsv, u64 version, i64 number */
    static const uint8_t first[WIRE_RESULT_LEN] = {
        200, 0, 0, 0, 0, 0, 0, 0, 0x87, 0xd6, 0x12, 0, 0, 0, 0, 0,
        0,   0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(b.data, first, sizeof first);

    size_t off = 0;
    wire_result got;
    for (size_t i = 0; i < n; i++) {
        memset(&got, 0, sizeof got);
        assert_int_equal(wire_next_result(b.data, b.len, &off, &got), 1);
        assert_int_equal(got.status, res[i].status);
        assert_int_equal(got.version, res[i].version);
        assert_int_equal(got.number, res[i].number);
    }
    assert_int_equal(wire_next_result(b.data, b.len, &off, &got), 0);
    wire_buf_free(&b);
}

static void test_empty_buffer(void **state)
{
    (void)state;
    wire_op op;
    wire_result res;
    size_t off = 0;
    static const uint8_t none[1] = {0};

    assert_int_equal(wire_next_op(none, 0, &off, &op), 0);
    assert_int_equal(off, 0);
    assert_int_equal(wire_next_result(none, 0, &off, &res), 0);
    assert_int_equal(off, 0);
}

/* Every strict prefix of a valid one-op body is malformed, except the
 * empty one (a clean end). */
static void test_truncated_op(void **state)
{
    (void)state;
    wire_buf b = {0};
    const wire_op op = {WIRE_PUT, 0, 10, 20, "key", 3, "value", 5, 0, 0};
    wire_op got;

    assert_int_equal(wire_put_op(&b, &op), 0);
    for (size_t cut = 1; cut < b.len; cut++) {
        size_t off = 0;
        int rc = wire_next_op(b.data, cut, &off, &got);
        if (rc != -1)
            fail_msg("a body cut to %zu of %zu bytes gave %d", cut, b.len, rc);
    }
    /* a second op truncated after a good first one */
    assert_int_equal(wire_put_op(&b, &op), 0);
    size_t off = 0;
    assert_int_equal(wire_next_op(b.data, b.len - 1, &off, &got), 1);
    assert_int_equal(wire_next_op(b.data, b.len - 1, &off, &got), -1);
    wire_buf_free(&b);
}

static void test_truncated_result(void **state)
{
    (void)state;
    wire_buf b = {0};
    const wire_result r = {200, 1, 2};
    wire_result got;

    assert_int_equal(wire_put_result(&b, &r), 0);
    for (size_t cut = 1; cut < WIRE_RESULT_LEN; cut++) {
        size_t off = 0;
        assert_int_equal(wire_next_result(b.data, cut, &off, &got), -1);
    }
    wire_buf_free(&b);
}

static void test_malformed_op(void **state)
{
    (void)state;
    wire_buf b = {0};
    char d[8];
    le64(d, 1);
    const wire_op incr = {WIRE_INCR, 0, 1, 1, "c", 1, d, 8, 0, 0};
    wire_op got;
    size_t off;

    assert_int_equal(wire_put_op(&b, &incr), 0);
    /* unknown op kinds */
    b.data[0] = 0;
    off = 0;
    assert_int_equal(wire_next_op(b.data, b.len, &off, &got), -1);
    b.data[0] = 4;
    off = 0;
    assert_int_equal(wire_next_op(b.data, b.len, &off, &got), -1);
    b.data[0] = WIRE_INCR;

    /* lengths that run past the end, including ones that would overflow a
     * 32-bit sum */
    b.data[4] = 0xff, b.data[5] = 0xff, b.data[6] = 0xff, b.data[7] = 0xff;
    off = 0;
    assert_int_equal(wire_next_op(b.data, b.len, &off, &got), -1);
    b.data[4] = 1, b.data[5] = b.data[6] = b.data[7] = 0;
    b.data[8] = 0xff, b.data[9] = 0xff, b.data[10] = 0xff, b.data[11] = 0xff;
    off = 0;
    assert_int_equal(wire_next_op(b.data, b.len, &off, &got), -1);
    wire_buf_free(&b);

    /* an increment whose delta is not 8 bytes */
    const wire_op bad = {WIRE_INCR, 0, 1, 1, "c", 1, "1234", 4, 0, 0};
    assert_int_equal(wire_put_op(&b, &bad), 0);
    off = 0;
    assert_int_equal(wire_next_op(b.data, b.len, &off, &got), -1);
    wire_buf_free(&b);
}

static void test_delta_codec(void **state)
{
    (void)state;
    static const int64_t deltas[] = {0, 1, -1, -42, 1000000, INT64_MAX,
                                     INT64_MIN};
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        char got[8], want[8];
        wire_encode_delta(deltas[i], got);
        le64(want, (uint64_t)deltas[i]);
        assert_memory_equal(got, want, 8); /* little-endian two's complement */
        assert_int_equal(wire_decode_delta(got), deltas[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_round_trip),
        cmocka_unit_test(test_op_layout),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_results_round_trip),
        cmocka_unit_test(test_empty_buffer),
        cmocka_unit_test(test_truncated_op),
        cmocka_unit_test(test_truncated_result),
        cmocka_unit_test(test_malformed_op),
        cmocka_unit_test(test_delta_codec),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}
