/* Unit tests for lib/precond.c: If-Match / If-None-Match on writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hlc.h"
#include "precond.h"
#include "wire.h"

static void expect(const char *im, const char *inm, uint8_t flags, uint64_t v)
{
    uint8_t f = 0xff;
    uint64_t got = 1234;

    if (precond_parse(im, inm, &f, &got, NULL) != 0)
        fail_msg("If-Match %s / If-None-Match %s refused", im ? im : "-",
                 inm ? inm : "-");
    assert_int_equal(f, flags);
    assert_int_equal(got, v);
}

static void refused(const char *im, const char *inm)
{
    uint8_t f = 0x5a;
    uint64_t v = 77;
    const char *why = NULL;

    if (precond_parse(im, inm, &f, &v, &why) != -1)
        fail_msg("If-Match %s / If-None-Match %s accepted", im ? im : "-",
                 inm ? inm : "-");
    assert_non_null(why);
    assert_int_equal(f, 0x5a); /* untouched */
    assert_int_equal(v, 77);
}

static void test_accepted(void **state)
{
    (void)state;
    expect(NULL, NULL, 0, 0);
    expect("\"218313669081153\"", NULL, WIRE_F_IF_MATCH, 218313669081153ULL);
    expect("  \"1\"\t", NULL, WIRE_F_IF_MATCH, 1);
    expect("\"9007199254740991\"", NULL, WIRE_F_IF_MATCH, HLC_MAX);
    expect("*", NULL, WIRE_F_IF_EXISTS, 0);
    expect(" * ", NULL, WIRE_F_IF_EXISTS, 0);
    expect(NULL, "*", WIRE_F_IF_ABSENT, 0);
}

static void test_refused(void **state)
{
    (void)state;
    refused("\"1\"", "*");                 /* both */
    refused("\"1\", \"2\"", NULL);         /* a list */
    refused("W/\"1\"", NULL);              /* weak */
    refused("1", NULL);                    /* unquoted */
    refused("\"\"", NULL);
    refused("\"0\"", NULL);
    refused("\"9007199254740992\"", NULL); /* past 2^53 - 1 */
    refused("\"99999999999999999999999\"", NULL);
    refused("\"-1\"", NULL);
    refused("\"1x\"", NULL);
    refused("\"1", NULL);
    refused("", NULL);
    refused("**", NULL);
    refused(NULL, "\"1\"");                /* If-None-Match takes only * */
    refused(NULL, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
