/* Unit tests for httpd_decode (lib/httpd.h): percent-decoding of one path
 * segment, so that a key may hold '/' as %2F but never a NUL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "httpd.h"

/* Decode the C string `in`; check the result equals want[0..want_len). */
static void expect_decode(const char *in, const char *want, size_t want_len)
{
    size_t len = (size_t)-1;
    char *out = httpd_decode(in, strlen(in), &len);

    if (out == NULL)
        fail_msg("httpd_decode(\"%s\") returned NULL", in);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(out[want_len], '\0'); /* NUL-terminated */
    free(out);
}

static void expect_reject(const char *in, size_t n)
{
    size_t len = 12345;
    char *out = httpd_decode(in, n, &len);
    if (out != NULL) {
        free(out);
        fail_msg("httpd_decode(\"%.*s\") was accepted", (int)n, in);
    }
}

static void test_escapes(void **state)
{
    (void)state;
    expect_decode("%2F", "/", 1);
    expect_decode("%2f", "/", 1); /* hex digits in either case */
    expect_decode("a%2Fb%2Fc", "a/b/c", 5);
    expect_decode("%41%42%43", "ABC", 3);
    expect_decode("%25", "%", 1);        /* an escaped percent sign */
    expect_decode("%2525", "%25", 3);    /* decoded once, not twice */
    expect_decode("%20x%20", " x ", 3);
    expect_decode("%C3%A9t%C3%A9", "\xC3\xA9t\xC3\xA9", 5); /* UTF-8 */
    expect_decode("%FF%01", "\xFF\x01", 2);
}

static void test_plain_unchanged(void **state)
{
    (void)state;
    expect_decode("hello", "hello", 5);
    expect_decode("user:42", "user:42", 7);
    /* path semantics: '+' is a literal plus, not a space */
    expect_decode("a+b", "a+b", 3);
    expect_decode("", "", 0);
    char long_in[2048];
    memset(long_in, 'k', sizeof long_in - 1);
    long_in[sizeof long_in - 1] = '\0';
    expect_decode(long_in, long_in, sizeof long_in - 1);
}

static void test_rejects(void **state)
{
    (void)state;
    expect_reject("%00", 3);       /* a decoded NUL */
    expect_reject("ab%00cd", 7);
    expect_reject("%zz", 3);       /* not hex */
    expect_reject("%g0", 3);
    expect_reject("%0g", 3);
    expect_reject("%2", 2);        /* truncated */
    expect_reject("x%2", 3);
    expect_reject("%", 1);
    expect_reject("abc%", 4);
    expect_reject("% 2F", 4);
    /* A raw NUL inside in[0..n) (tests/fuzz/corpus/key_decode/raw_nul). */
    expect_reject("a\0b", 3);
    expect_reject("\0", 1);
    expect_reject("%41\0", 4);
}

/* Only in[0..n) is read: an escape cut by n is truncated even though the
 * bytes after n would complete it, and bytes after n never appear. */
static void test_length_bound(void **state)
{
    (void)state;
    size_t len = 0;
    char *out = httpd_decode("ab%2Fcd", 5, &len);
    assert_non_null(out);
    assert_int_equal(len, 3);
    assert_string_equal(out, "ab/");
    free(out);

    expect_reject("ab%2Fcd", 4); /* "ab%2" */

    out = httpd_decode("abcdef", 3, &len);
    assert_non_null(out);
    assert_int_equal(len, 3);
    assert_string_equal(out, "abc");
    free(out);

    /* out_len may be NULL */
    out = httpd_decode("%2F", 3, NULL);
    assert_non_null(out);
    assert_string_equal(out, "/");
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_plain_unchanged),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_length_bound),
    };
    return cmocka_run_group_tests_name("httpd_decode", tests, NULL, NULL);
}
