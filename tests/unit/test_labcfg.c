/* Unit tests for lab/lab_config: the CloudCart student_config.json. Defaults,
 * every validation error naming its field, type errors, warnings for
 * unknown keys, the shipped incident file and a solved file, cost and
 * budget, W + R > N, the justification rule, the path rule and the
 * summary text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "lab_config.h"

static char tmpdir[64];
static char err[4096], warn[4096];

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kv-test-labcfg-XXXXXX");
    unsetenv("KV_LAB_DIR");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static int parse(lab_config *c, const char *text)
{
    return lab_config_parse(c, text, strlen(text), err, sizeof err, warn,
                        sizeof warn);
}

/* Parse text that must fail, with exactly one error line equal to want. */
static void expect_one_error(const char *text, const char *want)
{
    lab_config c;
    assert_int_equal(parse(&c, text), -1);
    assert_string_equal(err, want);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_defaults(void **state)
{
    lab_config c;
    (void)state;

    lab_config_defaults(&c);
    assert_int_equal(c.followers, 3);
    assert_int_equal(c.write_quorum, 2);
    assert_int_equal(c.read_quorum, 2);
    assert_false(c.auto_spawn);
    assert_true(c.auto_spawn_delay == 5.0);
    assert_true(c.rate_limit_enabled);
    assert_int_equal(c.rate_limit_max, 10);
    assert_true(c.rate_limit_window == 60.0);
    for (int i = 0; i < LAB_CONFIG_NJUST; i++) {
        assert_string_equal(c.just[i], "");
        assert_false(c.just_filled[i]);
    }
    /* An empty object and empty sections are the defaults too. */
    assert_int_equal(parse(&c, "{}"), 0);
    assert_int_equal(c.followers, 3);
    assert_int_equal(c.rate_limit_max, 10);
    assert_string_equal(err, "");
    assert_string_equal(warn, "");
    assert_int_equal(parse(&c, "{\"deployment\":{},\"gateway\":{},"
                               "\"justifications\":{}}"), 0);
    assert_int_equal(c.write_quorum, 2);
    assert_true(c.rate_limit_window == 60.0);
}

static void test_partial_keys_keep_defaults(void **state)
{
    lab_config c;
    (void)state;

    assert_int_equal(parse(&c, "{\"deployment\":{\"followers\":4},"
                               "\"gateway\":{\"rate_limit_max\":7}}"), 0);
    assert_int_equal(c.followers, 4);
    assert_int_equal(c.write_quorum, 2);
    assert_int_equal(c.read_quorum, 2);
    assert_false(c.auto_spawn);
    assert_true(c.auto_spawn_delay == 5.0);
    assert_true(c.rate_limit_enabled);
    assert_int_equal(c.rate_limit_max, 7);
    assert_true(c.rate_limit_window == 60.0);
    /* Whole numbers written as 3.0 are fine; seconds may be fractions. */
    assert_int_equal(parse(&c, "{\"deployment\":{\"followers\":3.0,"
                               "\"auto_spawn_delay\":2.5},"
                               "\"gateway\":{\"rate_limit_window\":0.5}}"), 0);
    assert_int_equal(c.followers, 3);
    assert_true(c.auto_spawn_delay == 2.5);
    assert_true(c.rate_limit_window == 0.5);
}

static void test_quorum_above_followers(void **state)
{
    (void)state;
    expect_one_error("{\"deployment\":{\"followers\":3,\"write_quorum\":4}}",
                     "deployment.write_quorum: 4 is more than the 3 followers");
    expect_one_error("{\"deployment\":{\"followers\":3,\"read_quorum\":5}}",
                     "deployment.read_quorum: 5 is more than the 3 followers");
    expect_one_error("{\"deployment\":{\"followers\":1,\"write_quorum\":2,"
                     "\"read_quorum\":1}}",
                     "deployment.write_quorum: 2 is more than the 1 follower");
    /* W = R = N is allowed. */
    {
        lab_config c;
        assert_int_equal(parse(&c, "{\"deployment\":{\"followers\":2,"
                                   "\"write_quorum\":2,\"read_quorum\":2}}"), 0);
    }
}

static void test_ranges_name_the_field(void **state)
{
    (void)state;
    expect_one_error("{\"deployment\":{\"followers\":0,\"write_quorum\":1,"
                     "\"read_quorum\":1}}",
                     "deployment.followers: must be at least 1, not 0");
    expect_one_error("{\"deployment\":{\"followers\":21,\"write_quorum\":1,"
                     "\"read_quorum\":1}}",
                     "deployment.followers: 21 is more than the lab's limit of 20");
    expect_one_error("{\"deployment\":{\"write_quorum\":0}}",
                     "deployment.write_quorum: must be at least 1, not 0");
    expect_one_error("{\"deployment\":{\"read_quorum\":-1}}",
                     "deployment.read_quorum: must be at least 1, not -1");
    expect_one_error("{\"deployment\":{\"auto_spawn_delay\":0}}",
                     "deployment.auto_spawn_delay: must be more than 0 seconds, not 0");
    expect_one_error("{\"deployment\":{\"auto_spawn_delay\":-2}}",
                     "deployment.auto_spawn_delay: must be more than 0 seconds, not -2");
    expect_one_error("{\"deployment\":{\"auto_spawn_delay\":7200}}",
                     "deployment.auto_spawn_delay: 7200 seconds is more than the 3600 allowed");
    expect_one_error("{\"gateway\":{\"rate_limit_max\":0}}",
                     "gateway.rate_limit_max: must be at least 1, not 0");
    expect_one_error("{\"gateway\":{\"rate_limit_window\":-1}}",
                     "gateway.rate_limit_window: must be more than 0 seconds, not -1");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_one_error("{\"deployment\":{\"followers\":\"3\"}}",
                     "deployment.followers: must be a whole number, not a string");
    expect_one_error("{\"deployment\":{\"write_quorum\":1.5}}",
                     "deployment.write_quorum: must be a whole number, not 1.5");
    expect_one_error("{\"deployment\":{\"auto_spawn\":\"yes\"}}",
                     "deployment.auto_spawn: must be true or false, not a string");
    expect_one_error("{\"gateway\":{\"rate_limit_enabled\":1}}",
                     "gateway.rate_limit_enabled: must be true or false, not a number");
    expect_one_error("{\"gateway\":{\"rate_limit_window\":\"60s\"}}",
                     "gateway.rate_limit_window: must be a number of seconds, not a string");
    expect_one_error("{\"gateway\":{\"rate_limit_max\":null}}",
                     "gateway.rate_limit_max: must be a whole number, not null");
    expect_one_error("{\"justifications\":{\"quorum_choice\":42}}",
                     "justifications.quorum_choice: must be a string, not a number");
    expect_one_error("{\"deployment\":[5,4,1]}",
                     "deployment: must be an object, not a list");
    expect_one_error("[1,2]", "the file must hold a JSON object, not a list");
    /* A bad followers value skips the W/R comparison (it would compare with
     * the default and mislead). */
    expect_one_error("{\"deployment\":{\"followers\":\"5\",\"write_quorum\":4}}",
                     "deployment.followers: must be a whole number, not a string");
}

static void test_invalid_json_position(void **state)
{
    lab_config c;
    (void)state;

    /* A byte order mark from an editor is skipped. */
    assert_int_equal(parse(&c, "\xEF\xBB\xBF{\"deployment\":{\"followers\":4}}"), 0);
    assert_int_equal(c.followers, 4);

    assert_int_equal(parse(&c, "{\n  \"deployment\": {\n    \"followers\": 5,\n  }\n}"), -1);
    assert_non_null(strstr(err, "not valid JSON near line 4"));
    assert_int_equal(parse(&c, ""), -1);
    assert_non_null(strstr(err, "not valid JSON"));

    /* One JSON value only: a second object was silently ignored. */
    assert_int_equal(parse(&c, "{\"deployment\":{}}\n{\"deployment\":{\"followers\":99}}"), -1);
    assert_non_null(strstr(err, "not valid JSON near line 2"));
    assert_int_equal(parse(&c, "{\"deployment\":{\"followers\":4}}\n \t\r\n"), 0);
    assert_int_equal(c.followers, 4);
}

static void test_all_errors_at_once(void **state)
{
    lab_config c;
    (void)state;

    assert_int_equal(parse(&c, "{\"deployment\":{\"followers\":3,"
                               "\"write_quorum\":4,\"read_quorum\":0},"
                               "\"gateway\":{\"rate_limit_max\":\"many\"}}"), -1);
    assert_non_null(strstr(err, "deployment.write_quorum: 4 is more than the 3 followers"));
    assert_non_null(strstr(err, "deployment.read_quorum: must be at least 1, not 0"));
    assert_non_null(strstr(err, "gateway.rate_limit_max: must be a whole number, not a string"));
    assert_int_equal(lab_config_validate(&c, err, sizeof err), -1);
}

static void test_unknown_keys_warn(void **state)
{
    lab_config c;
    (void)state;

    assert_int_equal(parse(&c, "{\"_comment\":\"hi\",\"deployment\":"
                               "{\"folowers\":2,\"_note\":1},\"extra\":{}}"), 0);
    assert_int_equal(c.followers, 3);
    assert_non_null(strstr(warn, "deployment.folowers: unknown key, ignored"));
    assert_non_null(strstr(warn, "extra: unknown section, ignored"));
    assert_null(strstr(warn, "_comment"));
    assert_null(strstr(warn, "_note"));
}

static void test_incident_file(void **state)
{
    lab_config c;
    char path[LAB_CONFIG_PATH_MAX];
    (void)state;

    /* Found through the lab folder next to the build (three levels above
     * build/<variant>/tests/), whatever the working directory. */
    assert_int_equal(lab_config_resolve("student_config.json", path, sizeof path,
                                    err, sizeof err), 0);
    assert_non_null(strstr(path, "/lab/cloudcart/student_config.json"));
    assert_int_equal(lab_config_load_resolved(&c, "lab/cloudcart/student_config.json",
                                          err, sizeof err, warn, sizeof warn), 0);
    assert_string_equal(c.path, path);
    assert_string_equal(warn, "");
    assert_int_equal(c.followers, 5);
    assert_int_equal(c.write_quorum, 4);
    assert_int_equal(c.read_quorum, 1);
    assert_true(c.auto_spawn);
    assert_true(c.auto_spawn_delay == 1.0);
    assert_true(c.rate_limit_enabled);
    assert_int_equal(c.rate_limit_max, 20);
    assert_true(c.rate_limit_window == 2.0);
    assert_int_equal(lab_config_just_count(&c), 0);
    for (int i = 0; i < LAB_CONFIG_NJUST; i++)
        assert_non_null(strstr(c.just[i], "TODO"));
    assert_int_equal(lab_config_cost_per_hour(&c), 60);
    assert_false(lab_config_within_budget(&c));
    assert_false(lab_config_strong(&c));
    assert_int_equal(lab_config_write_tolerance(&c), 1);
    assert_int_equal(lab_config_read_tolerance(&c), 4);
}

static const char solved[] =
    "{\"deployment\":{\"followers\":3,\"write_quorum\":2,\"read_quorum\":2,"
    "\"auto_spawn\":true,\"auto_spawn_delay\":5},"
    "\"gateway\":{\"rate_limit_enabled\":true,\"rate_limit_max\":10,"
    "\"rate_limit_window\":60},"
    "\"justifications\":{\"quorum_choice\":\"W + R = 4 > 3 so reads overlap writes\","
    "\"follower_count\":\"three survive one failure for $40/h\","
    "\"rate_limiting\":\"a minute covers a scraper's pauses\","
    "\"auto_spawn\":\"five seconds rides out a network blip\"}}";

static void test_solved_file(void **state)
{
    lab_config c;
    char path[256];
    (void)state;

    snprintf(path, sizeof path, "%s/solved.json", tmpdir);
    write_file(path, solved);
    assert_int_equal(lab_config_load_resolved(&c, path, err, sizeof err, warn,
                                          sizeof warn), 0);
    assert_int_equal(c.followers, 3);
    assert_int_equal(c.write_quorum, 2);
    assert_int_equal(c.read_quorum, 2);
    assert_true(c.auto_spawn);
    assert_true(c.auto_spawn_delay == 5.0);
    assert_int_equal(c.rate_limit_max, 10);
    assert_true(c.rate_limit_window == 60.0);
    assert_int_equal(lab_config_just_count(&c), LAB_CONFIG_NJUST);
    assert_string_equal(c.just[LAB_CONFIG_J_FOLLOWER_COUNT],
                        "three survive one failure for $40/h");
    assert_int_equal(lab_config_cost_per_hour(&c), 40);
    assert_true(lab_config_within_budget(&c));
    assert_true(lab_config_strong(&c));
}

static void test_errors_name_the_file(void **state)
{
    lab_config c;
    char path[256];
    (void)state;

    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    write_file(path, "{\"deployment\":{\"followers\":3,\"write_quorum\":4}}");
    assert_int_equal(lab_config_load(&c, path, err, sizeof err, NULL, 0), -1);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, ": deployment.write_quorum: 4 is more than the 3 followers"));
    snprintf(path, sizeof path, "%s/missing.json", tmpdir);
    assert_int_equal(lab_config_load(&c, path, err, sizeof err, NULL, 0), -1);
    assert_non_null(strstr(err, "missing.json"));
}

static void test_cost_and_budget(void **state)
{
    lab_config c;
    (void)state;

    lab_config_defaults(&c);
    c.followers = 3;
    assert_int_equal(lab_config_cost_per_hour(&c), 40);
    assert_true(lab_config_within_budget(&c));
    c.followers = 4;
    assert_int_equal(lab_config_cost_per_hour(&c), 50);
    assert_true(lab_config_within_budget(&c));   /* the cap itself is within */
    c.followers = 5;
    assert_int_equal(lab_config_cost_per_hour(&c), 60);
    assert_false(lab_config_within_budget(&c));
    c.followers = 1;
    assert_int_equal(lab_config_cost_per_hour(&c), 20);
}

static void test_strong_rule(void **state)
{
    lab_config c;
    (void)state;

    lab_config_defaults(&c);
    c.followers = 3, c.write_quorum = 2, c.read_quorum = 2;
    assert_true(lab_config_strong(&c));
    c.read_quorum = 1;
    assert_false(lab_config_strong(&c));          /* 3 is not more than 3 */
    c.followers = 5, c.write_quorum = 4, c.read_quorum = 1;
    assert_false(lab_config_strong(&c));
    c.read_quorum = 2;
    assert_true(lab_config_strong(&c));
}

static void test_justification_rule(void **state)
{
    lab_config c;
    (void)state;

    assert_false(lab_config_text_filled(NULL));
    assert_false(lab_config_text_filled(""));
    assert_false(lab_config_text_filled("  \t\n "));
    assert_false(lab_config_text_filled("TODO"));
    assert_false(lab_config_text_filled("TODO: explain"));
    assert_false(lab_config_text_filled("todo later"));
    assert_false(lab_config_text_filled("I chose 3 followers (ToDo: check cost)"));
    assert_true(lab_config_text_filled("W + R > N"));
    assert_true(lab_config_text_filled(" x "));
    assert_true(lab_config_text_filled("TOD O"));

    assert_int_equal(parse(&c, "{\"justifications\":{\"quorum_choice\":\"because\","
                               "\"follower_count\":\"  \",\"rate_limiting\":null,"
                               "\"auto_spawn\":\"Todo\"}}"), 0);
    assert_true(c.just_filled[LAB_CONFIG_J_QUORUM_CHOICE]);
    assert_false(c.just_filled[LAB_CONFIG_J_FOLLOWER_COUNT]);
    assert_false(c.just_filled[LAB_CONFIG_J_RATE_LIMITING]);
    assert_false(c.just_filled[LAB_CONFIG_J_AUTO_SPAWN]);
    assert_int_equal(lab_config_just_count(&c), 1);
    assert_string_equal(lab_config_just_name(LAB_CONFIG_J_RATE_LIMITING), "rate_limiting");
    assert_null(lab_config_just_name(LAB_CONFIG_NJUST));
}

static void test_long_justification(void **state)
{
    size_t n = LAB_CONFIG_TEXT_MAX + 100;
    char *text = malloc(n + 64);
    lab_config c;
    (void)state;

    assert_non_null(text);
    /* A TODO past what is kept still counts: the rule sees the full text. */
    strcpy(text, "{\"justifications\":{\"auto_spawn\":\"");
    memset(text + strlen(text), 'a', LAB_CONFIG_TEXT_MAX);
    text[34 + LAB_CONFIG_TEXT_MAX] = '\0';
    strcat(text, " TODO\"}}");
    assert_int_equal(parse(&c, text), 0);
    assert_int_equal(strlen(c.just[LAB_CONFIG_J_AUTO_SPAWN]), LAB_CONFIG_TEXT_MAX - 1);
    assert_false(c.just_filled[LAB_CONFIG_J_AUTO_SPAWN]);
    free(text);
}

static void test_resolve_rule(void **state)
{
    char cwd[LAB_CONFIG_PATH_MAX], path[LAB_CONFIG_PATH_MAX], want[512];
    (void)state;

    assert_non_null(getcwd(cwd, sizeof cwd));
    /* The working directory comes first. */
    assert_int_equal(chdir(tmpdir), 0);
    write_file("student_config.json", "{}");
    assert_int_equal(lab_config_resolve("student_config.json", path, sizeof path,
                                    err, sizeof err), 0);
    snprintf(want, sizeof want, "%s/student_config.json", tmpdir);
    {
        char real[LAB_CONFIG_PATH_MAX];
        assert_non_null(realpath(want, real));
        assert_string_equal(path, real);
    }
    unlink("student_config.json");
    /* Then the lab folder. */
    assert_int_equal(lab_config_resolve("student_config.json", path, sizeof path,
                                    err, sizeof err), 0);
    assert_non_null(strstr(path, "/lab/cloudcart/student_config.json"));
    /* KV_LAB_DIR names another lab folder. */
    setenv("KV_LAB_DIR", tmpdir, 1);
    write_file("mine.json", "{}");
    assert_int_equal(chdir("/"), 0);
    assert_int_equal(lab_config_resolve("mine.json", path, sizeof path, err,
                                    sizeof err), 0);
    assert_non_null(strstr(path, "/mine.json"));
    unsetenv("KV_LAB_DIR");
    /* Absolute paths as they are; a missing file names itself. */
    assert_int_equal(lab_config_resolve(want, path, sizeof path, err, sizeof err), -1);
    assert_non_null(strstr(err, want));
    assert_int_equal(lab_config_resolve("nope/none.json", path, sizeof path, err,
                                    sizeof err), -1);
    assert_non_null(strstr(err, "nope/none.json: no such file"));
    assert_int_equal(lab_config_resolve("", path, sizeof path, err, sizeof err), -1);
    assert_int_equal(chdir(cwd), 0);
}

static void test_summary(void **state)
{
    lab_config c;
    char *buf = NULL;
    size_t len = 0;
    FILE *f;
    (void)state;

    assert_int_equal(parse(&c, "{\"deployment\":{\"followers\":5,\"write_quorum\":4,"
                               "\"read_quorum\":1,\"auto_spawn\":true,"
                               "\"auto_spawn_delay\":1},\"gateway\":"
                               "{\"rate_limit_max\":20,\"rate_limit_window\":2},"
                               "\"justifications\":{\"quorum_choice\":\"ok\"}}"), 0);
    f = open_memstream(&buf, &len);
    assert_non_null(f);
    lab_config_print_summary(f, &c);
    fclose(f);
    assert_non_null(strstr(buf, "followers N = 5, write quorum W = 4, read quorum R = 1"));
    assert_non_null(strstr(buf, "W + R = 5 <= N = 5"));
    assert_non_null(strstr(buf, "$60/h, over the $50/h budget"));
    assert_non_null(strstr(buf, "after 1 s"));
    assert_non_null(strstr(buf, "20 requests per 2 s"));
    assert_non_null(strstr(buf, "1 of 4 filled (still empty or TODO: "
                                "follower_count, rate_limiting, auto_spawn)"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_partial_keys_keep_defaults),
        cmocka_unit_test(test_quorum_above_followers),
        cmocka_unit_test(test_ranges_name_the_field),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_invalid_json_position),
        cmocka_unit_test(test_all_errors_at_once),
        cmocka_unit_test(test_unknown_keys_warn),
        cmocka_unit_test(test_incident_file),
        cmocka_unit_test(test_solved_file),
        cmocka_unit_test(test_errors_name_the_file),
        cmocka_unit_test(test_cost_and_budget),
        cmocka_unit_test(test_strong_rule),
        cmocka_unit_test(test_justification_rule),
        cmocka_unit_test(test_long_justification),
        cmocka_unit_test(test_resolve_rule),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
