/* Unit tests for the HTTP/1.1 response parser (lib/http1_parse.c) on its
 * own: each framing fed whole, one byte at a time and split in two at every
 * byte, interim answers, HEAD, and the malformed and oversized answers it
 * must refuse (the regressions of issue 11 finding 5 among them: each of
 * those failed on the hand-written parser). The same parser against a
 * socket: test_httpc_loop.c. */
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

/* p, done over buf[0..len), is the answer status/body; frees p. */
static void expect_parsed(http1_parse *p, const char *buf, size_t len,
                          long status, const char *body, int close_after)
{
    size_t blen;
    const char *b;

    assert_int_equal(p->status, status);
    assert_int_equal(p->close_after, close_after);
    b = http1_parse_body(p, buf, len, &blen);
    assert_int_equal(blen, strlen(body));
    assert_memory_equal(b, body, blen);
    http1_parse_free(p);
}

static void expect_body(const char *text, int eof, long status,
                        const char *body, int close_after)
{
    for (size_t step = 0; step <= 1; step++) {
        char buf[4096];
        size_t len;
        http1_parse p;
        memset(&p, 0, sizeof p);
        http1_parse_reset(&p, 0);
        assert_int_equal(feed(&p, buf, &len, text, step, eof), HTTP1_PARSE_DONE);
        expect_parsed(&p, buf, len, status, body, close_after);
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

/* Feed text[0..k) then the rest (then EOF if eof): every split point must
 * give the same answer as the whole. */
static http1_parse_rc feed_split(http1_parse *p, char *buf, size_t *len,
                                 const char *text, size_t k, int eof)
{
    size_t n = strlen(text);
    http1_parse_rc rc;

    *len = 0;
    memcpy(buf, text, k);
    *len = k;
    rc = http1_parse_step(p, buf, len, 0);
    if (rc == HTTP1_PARSE_MORE && k < n) {
        memcpy(buf + *len, text + k, n - k); /* after what a 1xx left */
        *len += n - k;
        rc = http1_parse_step(p, buf, len, 0);
    }
    if (rc == HTTP1_PARSE_MORE && eof)
        rc = http1_parse_step(p, buf, len, 1);
    return rc;
}

/* text, split in two at every byte, is the answer status/head/body. */
static void expect_split(const char *text, int head_only, int eof, long status,
                         const char *head, const char *body, int close_after)
{
    size_t n = strlen(text);

    for (size_t k = 0; k <= n; k++) {
        char buf[4096];
        size_t len;
        http1_parse p;
        http1_parse_rc rc;
        memset(&p, 0, sizeof p);
        http1_parse_reset(&p, head_only);
        rc = feed_split(&p, buf, &len, text, k, eof);
        if (rc != HTTP1_PARSE_DONE)
            fail_msg("%.40s...: split at %zu: got %d", text, k, rc);
        assert_int_equal(p.head_end, strlen(head));
        assert_memory_equal(buf, head, p.head_end);
        expect_parsed(&p, buf, len, status, body, close_after);
    }
}

static void test_split_at_every_byte(void **state)
{
    (void)state;
    expect_split("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 0, 0, 200,
                 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello", 0);
    expect_split("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n"
                 "X-Other: two\r\n\r\n", 0, 0, 200,
                 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                 "hello world", 0);
    expect_split("HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end", 0, 1, 200,
                 "HTTP/1.0 200 OK\r\nServer: x\r\n\r\n", "until the end", 1);
    expect_split("HTTP/1.1 200 OK\r\n\r\nuntil the end", 0, 1, 200,
                 "HTTP/1.1 200 OK\r\n\r\n", "until the end", 1);
    expect_split("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                 "Link: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
                 "\r\nok", 0, 0, 201,
                 "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n", "ok", 0);
    expect_split("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 1, 0, 200,
                 "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", "", 0);
    expect_split("HTTP/1.1 204 No Content\r\nX: y\r\n\r\n", 0, 0, 204,
                 "HTTP/1.1 204 No Content\r\nX: y\r\n\r\n", "", 0);
    expect_split("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 0, 0,
                 304, "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                 "", 0);
    expect_split("HTTP/1.1 503 Busy\r\nContent-Length: 3\r\nConnection: close\r\n"
                 "\r\nbye", 0, 0, 503,
                 "HTTP/1.1 503 Busy\r\nContent-Length: 3\r\nConnection: close\r\n"
                 "\r\n", "bye", 1);
}

/* Feed text as it would arrive, in an allocation of exactly its size (so
 * ASan sees a read past the bytes received), whole and split at every
 * byte; every way must end in rc. */
static void expect_refused(const char *text, size_t n, http1_parse_rc rc_want)
{
    for (size_t k = 1; k <= n; k++) {
        char *buf = malloc(n);
        size_t len = k;
        http1_parse p;
        http1_parse_rc rc;
        assert_non_null(buf);
        memcpy(buf, text, n);
        memset(&p, 0, sizeof p);
        http1_parse_reset(&p, 0);
        rc = http1_parse_step(&p, buf, &len, 0);
        if (rc == HTTP1_PARSE_MORE && k < n) {
            len = n;
            rc = http1_parse_step(&p, buf, &len, 0);
        }
        if (rc != rc_want)
            fail_msg("%.40s...: split at %zu: got %d, want %d", text, k, rc,
                     rc_want);
        http1_parse_free(&p);
        free(buf);
    }
}
#define EXPECT_REFUSED(lit, rc) expect_refused(lit, sizeof lit - 1, rc)

/* Issue 11 finding 5, each input of the finding. */
static void test_regress_status_line_without_code(void **state)
{
    (void)state;
    /* strtol skipped the CR/LF and read the status from the body, past
     * the end of the bytes received (heap-buffer-overflow under ASan). */
    EXPECT_REFUSED("HTTP/1.1 \r\n\r\n2", HTTP1_PARSE_BAD_HEAD);
    EXPECT_REFUSED("HTTP/1.1 \r\n\r\n200 OK", HTTP1_PARSE_BAD_HEAD);
    EXPECT_REFUSED("HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
                   HTTP1_PARSE_BAD_HEAD);
    EXPECT_REFUSED("HTTP/1.1 0200 OK\r\nContent-Length: 0\r\n\r\n",
                   HTTP1_PARSE_BAD_HEAD);
}

static void test_regress_empty_content_length(void **state)
{
    (void)state;
    /* strtoull took the length from the body ("12345"). */
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n12345",
                   HTTP1_PARSE_BAD_HEAD);
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n12345",
                   HTTP1_PARSE_BAD_HEAD);
}

static void test_regress_empty_chunk_size(void **state)
{
    (void)state;
    /* The empty size line took its size (1) from the next line. */
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "\r\n1\r\n0\r\n\r\n", HTTP1_PARSE_BAD_CHUNK);
}

static void test_regress_trailers_are_bounded(void **state)
{
    static const char head[] =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n";
    static const char line[] = "X-Trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    size_t cap = 4 * HTTP1_MAX_HEADER_BYTES, len = 0;
    char *buf = malloc(cap);
    http1_parse p;
    http1_parse_rc rc = HTTP1_PARSE_MORE;
    (void)state;

    assert_non_null(buf);
    memset(&p, 0, sizeof p);
    http1_parse_reset(&p, 0);
    memcpy(buf, head, sizeof head - 1);
    len = sizeof head - 1;
    /* Trailer lines that never end, a line at a time, as a server may. */
    while (rc == HTTP1_PARSE_MORE && len + sizeof line < cap) {
        memcpy(buf + len, line, sizeof line - 1);
        len += sizeof line - 1;
        rc = http1_parse_step(&p, buf, &len, 0);
    }
    assert_int_equal(rc, HTTP1_PARSE_TOO_LARGE);
    assert_true(len <= HTTP1_MAX_HEADER_BYTES + sizeof head + sizeof line);
    http1_parse_free(&p);
    free(buf);
}

/* Strict framing beyond the finding's inputs: each was accepted before. */
static void test_regress_strict_framing(void **state)
{
    (void)state;
    /* Duplicate or conflicting Content-Length: the last one won. */
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n"
                   "\r\nhello", HTTP1_PARSE_BAD_HEAD);
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n"
                   "\r\nhello", HTTP1_PARSE_BAD_HEAD);
    /* Content-Length beside chunked: smuggling material. */
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   HTTP1_PARSE_BAD_HEAD);
    /* Content-Length with junk after the digits (strtoull stopped there). */
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello",
                   HTTP1_PARSE_BAD_HEAD);
    /* Bare LF line ends. */
    EXPECT_REFUSED("HTTP/1.1 200 OK\nContent-Length: 2\n\nhi",
                   HTTP1_PARSE_BAD_HEAD);
    /* A NUL in a header value. */
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n",
                   HTTP1_PARSE_BAD_HEAD);
    /* Chunk data not followed by CRLF, a chunk size with junk. */
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "1\r\nxy\r\n0\r\n\r\n", HTTP1_PARSE_BAD_CHUNK);
    EXPECT_REFUSED("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "1 x\r\nx\r\n0\r\n\r\n", HTTP1_PARSE_BAD_CHUNK);
    /* Not HTTP/1.x. */
    EXPECT_REFUSED("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
                   HTTP1_PARSE_BAD_HEAD);
}

static void test_bytes_after_the_answer_close_it(void **state)
{
    char buf[256];
    size_t len;
    http1_parse p;
    (void)state;
    memset(&p, 0, sizeof p);
    http1_parse_reset(&p, 0);
    /* Nothing was asked for what follows: the connection is not reused. */
    assert_int_equal(feed(&p, buf, &len, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                          "\r\nokHTTP/1.1 200 OK\r\n", 0, 0), HTTP1_PARSE_DONE);
    assert_int_equal(p.close_after, 1);
    http1_parse_free(&p);
}

static void test_head_too_large(void **state)
{
    size_t cap = 2 * HTTP1_MAX_HEADER_BYTES, len;
    char *buf = malloc(cap);
    http1_parse p;
    (void)state;
    assert_non_null(buf);
    memset(buf, 'a', cap);
    memcpy(buf, "HTTP/1.1 200 OK\r\nX: ", 20);
    len = cap;
    memset(&p, 0, sizeof p);
    http1_parse_reset(&p, 0);
    assert_int_equal(http1_parse_step(&p, buf, &len, 0), HTTP1_PARSE_BAD_HEAD);
    http1_parse_free(&p);
    free(buf);
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
        cmocka_unit_test(test_split_at_every_byte),
        cmocka_unit_test(test_regress_status_line_without_code),
        cmocka_unit_test(test_regress_empty_content_length),
        cmocka_unit_test(test_regress_empty_chunk_size),
        cmocka_unit_test(test_regress_trailers_are_bounded),
        cmocka_unit_test(test_regress_strict_framing),
        cmocka_unit_test(test_bytes_after_the_answer_close_it),
        cmocka_unit_test(test_head_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
