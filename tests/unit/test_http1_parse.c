/* Unit tests for the HTTP/1.1 response parser (lib/http1_parse.c) on its
 * own: each framing fed whole and one byte at a time, interim answers,
 * HEAD, and the malformed and oversized answers it must refuse. The same
 * parser against a socket: test_httpc_loop.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "http1_parse.h"

#include <stdlib.h>
#include <string.h>

/* Feed text to p, whole or in pieces of `step` bytes, then EOF if eof. */
static http1_parse_rc feed(http1_parse *p, char *buf, size_t *len,
                           const char *text, size_t step, int eof)
{
    size_t n = strlen(text), off = 0;
    http1_parse_rc rc = HTTP1_PARSE_MORE;

    *len = 0;
    while (off < n && rc == HTTP1_PARSE_MORE) {
        size_t k = step && n - off > step ? step : n - off;
        memcpy(buf + *len, text + off, k);
        *len += k;
        off += k;
        rc = http1_parse_step(p, buf, len, 0);
    }
    if (rc == HTTP1_PARSE_MORE && eof)
        rc = http1_parse_step(p, buf, len, 1);
    return rc;
}

static void expect_body(const char *text, int eof, long status,
                        const char *body, int close_after)
{
    for (size_t step = 0; step <= 1; step++) {
        char buf[4096];
        size_t len, blen;
        http1_parse p;
        memset(&p, 0, sizeof p);
        http1_parse_reset(&p, 0);
        assert_int_equal(feed(&p, buf, &len, text, step, eof), HTTP1_PARSE_DONE);
        assert_int_equal(p.status, status);
        assert_int_equal(p.close_after, close_after);
        const char *b = http1_parse_body(&p, buf, len, &blen);
        assert_int_equal(blen, strlen(body));
        assert_memory_equal(b, body, blen);
        http1_parse_free(&p);
    }
}

static void test_content_length(void **state)
{
    (void)state;
    expect_body("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, 200,
                "hello", 0);
    expect_body("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n"
                "Connection: close\r\n\r\n", 0, 404, "", 1);
}

static void test_chunked(void **state)
{
    (void)state;
    expect_body("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n",
                0, 200, "hello world", 0);
}

static void test_close_delimited(void **state)
{
    (void)state;
    expect_body("HTTP/1.0 200 OK\r\n\r\nuntil the end", 1, 200,
                "until the end", 1);
}

static void test_interim_and_no_body(void **state)
{
    (void)state;
    expect_body("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n"
                "Content-Length: 2\r\n\r\nok", 0, 201, "ok", 0);
    expect_body("HTTP/1.1 204 No Content\r\n\r\n", 0, 204, "", 0);

    char buf[256];
    size_t len, blen;
    http1_parse p;
    memset(&p, 0, sizeof p);
    http1_parse_reset(&p, 1); /* HEAD: Content-Length names no body here */
    assert_int_equal(feed(&p, buf, &len,
                          "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 0, 0),
                     HTTP1_PARSE_DONE);
    http1_parse_body(&p, buf, len, &blen);
    assert_int_equal(blen, 0);
}

static void test_incomplete_and_bad(void **state)
{
    static const struct { const char *text; int eof; http1_parse_rc rc; } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", 1, HTTP1_PARSE_MORE},
        {"HTTP/1.1 200 OK\r\nContent-Le", 0, HTTP1_PARSE_MORE},
        {"SMTP ready\r\n\r\n", 0, HTTP1_PARSE_BAD_HEAD},
        {"HTTP/1.1 abc\r\n\r\n", 0, HTTP1_PARSE_BAD_HEAD},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0,
         HTTP1_PARSE_BAD_CHUNK},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", 0,
         HTTP1_PARSE_BAD_CHUNK},
        {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", 0,
         HTTP1_PARSE_TOO_LARGE},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n", 0,
         HTTP1_PARSE_TOO_LARGE},
    };
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[256];
        size_t len;
        http1_parse p;
        memset(&p, 0, sizeof p);
        http1_parse_reset(&p, 0);
        http1_parse_rc rc = feed(&p, buf, &len, cases[i].text, 0, cases[i].eof);
        if (rc != cases[i].rc)
            fail_msg("case %zu: got %d, want %d", i, rc, cases[i].rc);
        http1_parse_free(&p);
    }
}

static void test_take_chunked_body(void **state)
{
    char buf[256];
    size_t len;
    http1_parse p;
    (void)state;
    memset(&p, 0, sizeof p);
    http1_parse_reset(&p, 0);
    assert_int_equal(feed(&p, buf, &len,
                          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n0\r\n\r\n", 0, 0),
                     HTTP1_PARSE_DONE);
    char *b = http1_parse_take_body(&p);
    assert_non_null(b);
    assert_memory_equal(b, "abc", 3);
    free(b);
    http1_parse_reset(&p, 0); /* nothing left to free */
    http1_parse_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_close_delimited),
        cmocka_unit_test(test_interim_and_no_body),
        cmocka_unit_test(test_incomplete_and_bad),
        cmocka_unit_test(test_take_chunked_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
