/* Unit tests for lib/subreq: the frames of a sub-request batch. The
 * documented layout byte for byte, round trips of requests and answers,
 * header lookup, and the refusals (a CR or LF inside a part, a space in a
 * target, a head too big, truncated or malformed frames). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "subreq.h"

static void test_request_layout_and_round_trip(void **state)
{
    (void)state;
    wire_buf b = {0};
    const char *h[] = {"Authorization: Bearer t", "X-KV-Epoch:  7", NULL};
    const char head[] = "PUT /internal/kv/a?sync=1\r\nAuthorization: Bearer t\r\n"
                        "X-KV-Epoch:  7\r\n";
    subreq_frame f;
    subreq_line m, t;
    size_t off = 0, vlen;
    const char *v;

    assert_int_equal(subreq_put_request(&b, "PUT", "/internal/kv/a?sync=1", h,
                                        "abc", 3), 0);
    assert_int_equal(b.len, 8 + sizeof head - 1 + 3);
    assert_int_equal(b.data[0], sizeof head - 1);
    assert_int_equal(b.data[1], 0);
    assert_int_equal(b.data[4], 3);
    assert_memory_equal(b.data + 8, head, sizeof head - 1);
    assert_memory_equal(b.data + 8 + sizeof head - 1, "abc", 3);

    assert_int_equal(subreq_next(b.data, b.len, &off, &f), 1);
    assert_int_equal(off, b.len);
    assert_int_equal(subreq_next(b.data, b.len, &off, &f), 0);
    assert_int_equal(subreq_parse_request(&f, &m, &t), 0);
    assert_int_equal(m.len, 3);
    assert_memory_equal(m.p, "PUT", 3);
    assert_int_equal(t.len, strlen("/internal/kv/a?sync=1"));
    v = subreq_header(&f, "x-kv-epoch", &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, 1);
    assert_memory_equal(v, "7", 1);
    assert_null(subreq_header(&f, "X-KV", &vlen));
    assert_int_equal(f.body_len, 3);
    assert_int_equal(subreq_parse_response(&f, &(unsigned){0}), -1);
    wire_buf_free(&b);
}

static void test_response_round_trip(void **state)
{
    (void)state;
    wire_buf b = {0};
    const char *h[] = {"X-KV-Version: 12", NULL};
    subreq_frame f;
    size_t off = 0, vlen;
    unsigned st = 0;

    assert_int_equal(subreq_put_response(&b, 404, "application/json", h,
                                         "{}", 2), 0);
    assert_int_equal(subreq_put_response(&b, 200, NULL, NULL, "", 0), 0);
    assert_int_equal(subreq_next(b.data, b.len, &off, &f), 1);
    assert_int_equal(subreq_parse_response(&f, &st), 0);
    assert_int_equal(st, 404);
    const char *ct = subreq_header(&f, "Content-Type", &vlen);
    assert_non_null(ct);
    assert_int_equal(vlen, strlen("application/json"));
    assert_memory_equal(ct, "application/json", vlen);
    assert_int_equal(subreq_next(b.data, b.len, &off, &f), 1);
    assert_int_equal(subreq_parse_response(&f, &st), 0);
    assert_int_equal(st, 200);
    assert_int_equal(f.body_len, 0);
    assert_int_equal(subreq_next(b.data, b.len, &off, &f), 0);
    assert_int_equal(subreq_put_response(&b, 99, NULL, NULL, "", 0), -1);
    assert_int_equal(subreq_put_response(&b, 600, NULL, NULL, "", 0), -1);
    wire_buf_free(&b);
}

static void test_refusals(void **state)
{
    (void)state;
    wire_buf b = {0};
    const char *crlf[] = {"X-A: 1\r\nX-B: 2", NULL};
    const char *nocolon[] = {"X-A 1", NULL};
    char *big = malloc(SUBREQ_HEAD_MAX + 2);

    assert_int_equal(subreq_put_request(&b, "GET", "/a b", NULL, NULL, 0), -1);
    assert_int_equal(subreq_put_request(&b, "G T", "/a", NULL, NULL, 0), -1);
    assert_int_equal(subreq_put_request(&b, "GET", "/a\n", NULL, NULL, 0), -1);
    assert_int_equal(subreq_put_request(&b, "GET", "", NULL, NULL, 0), -1);
    assert_int_equal(subreq_put_request(&b, "GET", "/a", crlf, NULL, 0), -1);
    assert_int_equal(subreq_put_request(&b, "GET", "/a", nocolon, NULL, 0), -1);
    memset(big, 'a', SUBREQ_HEAD_MAX + 1);
    big[0] = '/';
    big[SUBREQ_HEAD_MAX + 1] = '\0';
    assert_int_equal(subreq_put_request(&b, "GET", big, NULL, NULL, 0), -1);
    assert_int_equal(b.len, 0); /* nothing half-written */
    free(big);
    wire_buf_free(&b);
}

/* A frame built by hand: head_len, body_len, head, body. */
static size_t raw_frame(uint8_t *out, const char *head, uint32_t body_len)
{
    uint32_t hl = (uint32_t)strlen(head);
    memcpy(out, &hl, 4);       /* the tests run little-endian */
    memcpy(out + 4, &body_len, 4);
    memcpy(out + 8, head, hl);
    return 8 + hl;
}

static void test_malformed_frames(void **state)
{
    (void)state;
    uint8_t buf[256] = {0};
    subreq_frame f;
    subreq_line m, t;
    size_t n, off;

    off = 0; /* shorter than a frame's lengths */
    assert_int_equal(subreq_next(buf, 5, &off, &f), -1);
    n = raw_frame(buf, "GET /a\r\n", 10); /* the body is not there */
    off = 0;
    assert_int_equal(subreq_next(buf, n, &off, &f), -1);
    n = raw_frame(buf, "GET /a", 0); /* a head that is not whole lines */
    off = 0;
    assert_int_equal(subreq_next(buf, n, &off, &f), -1);
    n = raw_frame(buf, "GET /a\r\nX: 1\r\n", 0); /* a NUL inside the head */
    buf[8 + 9] = '\0';
    off = 0;
    assert_int_equal(subreq_next(buf, n, &off, &f), -1);
    const char *bad_heads[] = {"GET  /a\r\n", "GET\r\n", " /a\r\n", "GET /a \r\n",
                               "GET /a\r\nnocolon\r\n", "GET /a\r\n: v\r\n",
                               "GET /a\nX: 1\r\n", "GET /a\r\nX: 1\rY\r\n"};
    for (size_t i = 0; i < sizeof bad_heads / sizeof bad_heads[0]; i++) {
        n = raw_frame(buf, bad_heads[i], 0);
        off = 0;
        if (subreq_next(buf, n, &off, &f) == 1)
            assert_int_equal(subreq_parse_request(&f, &m, &t), -1);
    }
    const char *bad_status[] = {"20\r\n", "2000\r\n", "600\r\n", "0xx\r\n",
                                "200 OK\r\n"};
    for (size_t i = 0; i < sizeof bad_status / sizeof bad_status[0]; i++) {
        unsigned st;
        n = raw_frame(buf, bad_status[i], 0);
        off = 0;
        assert_int_equal(subreq_next(buf, n, &off, &f), 1);
        assert_int_equal(subreq_parse_response(&f, &st), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_layout_and_round_trip),
        cmocka_unit_test(test_response_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_malformed_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
