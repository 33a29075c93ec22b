/* Unit tests for lib/token: the controller makes a 0600 file of 64 hex
 * digits once and every later resolve reads the same token back; a given
 * cluster.token wins; a server without either fails with a message that
 * says where the file should be; malformed files are refused; auth off
 * needs a loopback bind; token_equal compares whole strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/kv-token-test-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void cfg_in(kv_config *c, const char *sub)
{
    config_defaults(c);
    snprintf(c->data_dir, sizeof c->data_dir, "%s/%s", dir, sub);
    mkdir(c->data_dir, 0700);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_token_made_once_then_read(void **state)
{
    kv_config a, b;
    char err[512], path[512];
    struct stat st;
    (void)state;

    cfg_in(&a, "made");
    assert_int_equal(token_resolve(&a, 1, err, sizeof err), 0);
    assert_int_equal(strlen(a.token), 64);
    assert_int_equal(strspn(a.token, "0123456789abcdef"), 64);
    assert_int_equal(token_path(&a, path, sizeof path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* A server, and a second controller start: the same token. */
    cfg_in(&b, "made");
    assert_int_equal(token_resolve(&b, 0, err, sizeof err), 0);
    assert_string_equal(a.token, b.token);
    cfg_in(&b, "made");
    assert_int_equal(token_resolve(&b, 1, err, sizeof err), 0);
    assert_string_equal(a.token, b.token);
}

static void test_token_given_wins_and_missing_fails(void **state)
{
    kv_config c;
    char err[512];
    (void)state;

    cfg_in(&c, "given");
    snprintf(c.token, sizeof c.token, "a-token-from-the-config");
    assert_int_equal(token_resolve(&c, 1, err, sizeof err), 0);
    assert_string_equal(c.token, "a-token-from-the-config");
    cfg_in(&c, "given"); /* the file was not made for a given token */
    assert_int_equal(token_resolve(&c, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "no cluster token"));
    assert_non_null(strstr(err, "/given/run/token"));
}

static void test_token_file_setting_and_bad_files(void **state)
{
    kv_config c;
    char err[512], path[256];
    (void)state;

    cfg_in(&c, "files");
    snprintf(path, sizeof path, "%s/files/secret", dir);
    snprintf(c.token_file, sizeof c.token_file, "%s", path);
    write_file(path, "0123456789abcdef-mine\n");
    assert_int_equal(token_resolve(&c, 0, err, sizeof err), 0);
    assert_string_equal(c.token, "0123456789abcdef-mine");
    const char *bad[] = {"", "short\n", "two words in it, oh no\n",
                         "0123456789abcdef\x01\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.token[0] = '\0';
        write_file(path, bad[i]);
        assert_int_equal(token_resolve(&c, 1, err, sizeof err), -1);
        assert_non_null(strstr(err, "does not hold one token"));
    }
}

static void test_token_auth_off_loopback_only(void **state)
{
    kv_config c;
    char err[512];
    (void)state;

    cfg_in(&c, "off");
    snprintf(c.auth, sizeof c.auth, "off");
    snprintf(c.token, sizeof c.token, "ignored-when-off-0000");
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
    assert_int_equal(token_resolve(&c, 1, err, sizeof err), 0);
    assert_string_equal(c.token, "");
    snprintf(c.bind, sizeof c.bind, "0.0.0.0");
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "cluster.auth"));
}

static void test_token_equal(void **state)
{
    (void)state;
    assert_true(token_equal("abc", 3, "abc", 3));
    assert_false(token_equal("abc", 3, "abd", 3));
    assert_false(token_equal("abc", 3, "abcd", 4));
    assert_false(token_equal("", 0, "a", 1));
    assert_true(token_equal("", 0, "", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_made_once_then_read),
        cmocka_unit_test(test_token_given_wins_and_missing_fails),
        cmocka_unit_test(test_token_file_setting_and_bad_files),
        cmocka_unit_test(test_token_auth_off_loopback_only),
        cmocka_unit_test(test_token_equal),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
