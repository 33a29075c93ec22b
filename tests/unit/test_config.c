/* Unit tests for lib/config: defaults, JSON loading with errors that name
 * the field (or the file), environment overrides, config_set validation,
 * store.fsync choices, derived ports, JSON output and the help table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"

#include <cjson/cJSON.h>

/* Every environment name the module reads (lib/config.c). Cleared before
 * each test so neither the caller's environment nor an earlier test leaks
 * into a result. */
static const char *const env_names[] = {
    "KV_SHARDS", "KV_REPLICAS", "KV_VNODES", "KV_BASE_PORT", "KV_BIND",
    "KV_DATA_DIR", "KV_TOKEN", "MAX_KEY_BYTES", "MAX_VALUE_BYTES", "FSYNC",
    "STORE_MAP_SIZE_MB", "STORE_MAX_VERSION_SKEW_MS", "STORE_THREADS", "MAX_QUEUE_SIZE", "WORKER_COUNT",
    "QUEUE_BATCH_MAX", "QUEUE_RETRY_MAX", "QUEUE_RETRY_BACKOFF_MS",
    "QUEUE_WAIT_MAX_MS", "QUEUE_JOBS_KEPT", "API_COUNT", "API_THREADS",
    "RATE_LIMIT", "RATE_WINDOW_MS", "UPSTREAM_TIMEOUT_MS", "TOPOLOGY_POLL_MS",
    "RESTART_BACKOFF_MS", "RESTART_BACKOFF_MAX_MS", "KV_PORT", "NGINX_BIN",
    "NGINX_WORKERS", "REPL_DELAY_MS", "REPL_DELAY_RANDOM",
    "LAB_SYNC_DELAY_MS", "LAB_ASYNC_DELAY_MS", "HEARTBEAT_MS", "LEASE_MS",
    "WRITE_QUORUM", "READ_QUORUM",
};

static char tmpdir[64];
static int file_no;

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kv-test-config-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char path[128];
    for (int i = 0; i < file_no; i++) {
        snprintf(path, sizeof path, "%s/c%d.json", tmpdir, i);
        unlink(path);
    }
    rmdir(tmpdir);
    return 0;
}

/* Write text to a new file in the temporary directory; returns its path
 * (static storage, valid until the next call). */
static const char *write_file(const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/c%d.json", tmpdir, file_no++);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/* Load JSON text over the defaults; expect failure with err naming want. */
static void expect_load_error(const char *json, const char *want)
{
    kv_config c;
    char err[512] = "";
    config_defaults(&c);
    const char *path = write_file(json);
    if (config_load(&c, path, err, sizeof err) != -1)
        fail_msg("config %s was accepted", json);
    if (strstr(err, want) == NULL)
        fail_msg("config %s: error \"%s\" does not name \"%s\"", json, err,
                 want);
}

static void expect_load_ok(const char *json, kv_config *c)
{
    char err[512] = "";
    config_defaults(c);
    if (config_load(c, write_file(json), err, sizeof err) != 0)
        fail_msg("config %s rejected: %s", json, err);
}

static void test_defaults_validate(void **state)
{
    (void)state;
    kv_config c;
    char err[256] = "";

    config_defaults(&c);
    if (config_validate(&c, err, sizeof err) != 0)
        fail_msg("defaults do not validate: %s", err);
    if (config_load(&c, NULL, err, sizeof err) != 0)
        fail_msg("defaults with no file do not load: %s", err);
    /* a few documented defaults */
    assert_int_equal(c.vnodes, 128);
    assert_string_equal(c.fsync, "everysec");
    assert_true(c.shards >= 1);
    assert_true(c.replicas >= 1);
    assert_true(c.max_queue_size >= 1);
    assert_int_equal(c.max_key_bytes, 1024);
    assert_int_equal(c.max_value_bytes, 1024 * 1024);
    assert_true(c.data_dir[0] != '\0');
    /* an empty file section set is fine too */
    expect_load_ok("{}", &c);
    expect_load_ok("{\"queue\": {}}", &c);
}

static void test_file_values(void **state)
{
    (void)state;
    kv_config c;

    expect_load_ok("{\"cluster\": {\"shards\": 4, \"replicas\": 3, "
                   "\"bind\": \"0.0.0.0\"},"
                   " \"queue\": {\"max_queue_size\": 7, \"worker_count\": 3},"
                   " \"store\": {\"fsync\": \"always\"}}",
                   &c);
    assert_int_equal(c.shards, 4);
    assert_int_equal(c.replicas, 3);
    assert_string_equal(c.bind, "0.0.0.0");
    assert_int_equal(c.max_queue_size, 7);
    assert_int_equal(c.worker_count, 3);
    assert_string_equal(c.fsync, "always");
    /* fields the file does not mention keep their defaults */
    assert_int_equal(c.vnodes, 128);
    assert_int_equal(c.max_key_bytes, 1024);
}

static void test_bad_values_name_field(void **state)
{
    (void)state;
    expect_load_error("{\"queue\":{\"max_queue_size\":0}}",
                      "queue.max_queue_size");
    expect_load_error("{\"queue\":{\"max_queue_size\":-5}}",
                      "queue.max_queue_size");
    expect_load_error("{\"cluster\":{\"shards\":0}}", "cluster.shards");
    expect_load_error("{\"queue\":{\"worker_count\":100000}}",
                      "queue.worker_count");
    expect_load_error("{\"nginx\":{\"port\":70000}}", "nginx.port");
    expect_load_error("{\"store\":{\"fsync\":\"never\"}}", "store.fsync");
    /* too long for its buffer */
    char json[600];
    char big[CFG_STR_MAX + 20];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    snprintf(json, sizeof json, "{\"cluster\":{\"bind\":\"%s\"}}", big);
    expect_load_error(json, "cluster.bind");
}

static void test_wrong_type_names_field(void **state)
{
    (void)state;
    expect_load_error("{\"queue\":{\"max_queue_size\":\"10\"}}",
                      "queue.max_queue_size");
    expect_load_error("{\"queue\":{\"max_queue_size\":2.5}}",
                      "queue.max_queue_size");
    expect_load_error("{\"queue\":{\"max_queue_size\":true}}",
                      "queue.max_queue_size");
    expect_load_error("{\"queue\":{\"max_queue_size\":null}}",
                      "queue.max_queue_size");
    expect_load_error("{\"queue\":{\"max_queue_size\":[5]}}",
                      "queue.max_queue_size");
    expect_load_error("{\"queue\":{\"max_queue_size\":1e300}}",
                      "queue.max_queue_size");
    expect_load_error("{\"store\":{\"fsync\":1}}", "store.fsync");
    expect_load_error("{\"cluster\":{\"bind\":{\"a\":1}}}", "cluster.bind");
    /* a section that is not an object */
    expect_load_error("{\"queue\":5}", "queue");
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_load_error("{\"queue\":{\"max_queue_sise\":5}}",
                      "queue.max_queue_sise");
    expect_load_error("{\"queu\":{\"max_queue_size\":5}}", "queu");
    expect_load_error("{\"max_queue_size\":5}", "max_queue_size");
    /* an unknown section is a typo even when it is empty */
    expect_load_error("{\"bogus\":{}}", "bogus");
}

static void test_malformed_json_names_file(void **state)
{
    (void)state;
    static const char *const bad[] = {"{\"queue\": {", "not json", "",
                                      "{\"a\":1,}", "[1, 2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_config c;
        char err[512] = "";
        char path[128];
        config_defaults(&c);
        snprintf(path, sizeof path, "%s", write_file(bad[i]));
        if (config_load(&c, path, err, sizeof err) != -1)
            fail_msg("malformed \"%s\" was accepted", bad[i]);
        if (strstr(err, path) == NULL)
            fail_msg("malformed \"%s\": error \"%s\" does not name %s", bad[i],
                     err, path);
    }
    /* a top-level array or string is valid JSON but not a configuration */
    expect_load_error("[1, 2]", "");
    expect_load_error("\"x\"", "");

    /* a missing file names the file */
    kv_config c;
    char err[512] = "";
    char path[128];
    snprintf(path, sizeof path, "%s/does-not-exist.json", tmpdir);
    config_defaults(&c);
    assert_int_equal(config_load(&c, path, err, sizeof err), -1);
    if (strstr(err, path) == NULL)
        fail_msg("missing file: error \"%s\" does not name %s", err, path);
}

/* config_load_text: the JSON step alone, from a buffer of a given length;
 * no environment and no validation (config_load adds both). */
static void test_load_text(void **state)
{
    (void)state;
    static const char text[] = "{\"queue\":{\"worker_count\":3}}trailing";
    kv_config c, d;
    char err[512] = "";

    config_defaults(&d);
    config_defaults(&c);
    setenv("MAX_QUEUE_SIZE", "5", 1);
    assert_int_equal(config_load_text(&c, text, strlen(text) - 8, "buf", err,
                                      sizeof err), 0);
    unsetenv("MAX_QUEUE_SIZE");
    assert_int_equal(c.worker_count, 3);
    assert_int_equal(c.max_queue_size, d.max_queue_size); /* env not read */

    /* the bytes after len are not read: with them it is not JSON */
    assert_int_equal(config_load_text(&c, text, strlen(text), "buf", err,
                                      sizeof err), -1);
    assert_string_equal(err, "buf: not valid JSON");

    /* not validated: write_quorum over replicas - 1 passes here */
    config_defaults(&c);
    static const char wq[] = "{\"cluster\":{\"write_quorum\":9}}";
    assert_int_equal(config_load_text(&c, wq, strlen(wq), "buf", err,
                                      sizeof err), 0);
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
}

static void test_env_overrides(void **state)
{
    (void)state;
    kv_config c;
    char err[512] = "";
    const char *path =
        write_file("{\"queue\":{\"max_queue_size\":7,\"worker_count\":3},"
                   "\"store\":{\"fsync\":\"always\"}}");

    assert_int_equal(setenv("MAX_QUEUE_SIZE", "5", 1), 0);
    assert_int_equal(setenv("WORKER_COUNT", "9", 1), 0);
    assert_int_equal(setenv("FSYNC", "no", 1), 0);
    assert_int_equal(setenv("KV_SHARDS", "6", 1), 0);
    config_defaults(&c);
    if (config_load(&c, path, err, sizeof err) != 0)
        fail_msg("rejected: %s", err);
    assert_int_equal(c.max_queue_size, 5); /* env beats the file */
    assert_int_equal(c.worker_count, 9);
    assert_string_equal(c.fsync, "no");
    assert_int_equal(c.shards, 6); /* env beats the default */

    /* without a file too */
    config_defaults(&c);
    assert_int_equal(config_load(&c, NULL, err, sizeof err), 0);
    assert_int_equal(c.max_queue_size, 5);

    /* command line (config_set after load) beats the environment */
    assert_int_equal(config_set(&c, "queue.max_queue_size", "11", err,
                                sizeof err), 0);
    assert_int_equal(c.max_queue_size, 11);

    /* a bad environment value is an error naming the field */
    assert_int_equal(setenv("MAX_QUEUE_SIZE", "0", 1), 0);
    config_defaults(&c);
    assert_int_equal(config_load(&c, path, err, sizeof err), -1);
    if (strstr(err, "queue.max_queue_size") == NULL)
        fail_msg("MAX_QUEUE_SIZE=0: error \"%s\"", err);
    assert_int_equal(setenv("MAX_QUEUE_SIZE", "lots", 1), 0);
    config_defaults(&c);
    assert_int_equal(config_load(&c, NULL, err, sizeof err), -1);
    if (strstr(err, "queue.max_queue_size") == NULL)
        fail_msg("MAX_QUEUE_SIZE=lots: error \"%s\"", err);
    unsetenv("MAX_QUEUE_SIZE");
    assert_int_equal(setenv("FSYNC", "sometimes", 1), 0);
    config_defaults(&c);
    assert_int_equal(config_load(&c, NULL, err, sizeof err), -1);
    if (strstr(err, "store.fsync") == NULL)
        fail_msg("FSYNC=sometimes: error \"%s\"", err);
    unsetenv("FSYNC");

    /* unset again: the file's values come back */
    unsetenv("WORKER_COUNT");
    unsetenv("KV_SHARDS");
    config_defaults(&c);
    assert_int_equal(config_load(&c, path, err, sizeof err), 0);
    assert_int_equal(c.max_queue_size, 7);
    assert_int_equal(c.worker_count, 3);
}

static void test_config_set(void **state)
{
    (void)state;
    kv_config c;
    char err[256];

    config_defaults(&c);
    assert_int_equal(config_set(&c, "queue.max_queue_size", "42", err,
                                sizeof err), 0);
    assert_int_equal(c.max_queue_size, 42);
    assert_int_equal(config_set(&c, "cluster.bind", "10.1.2.3", err,
                                sizeof err), 0);
    assert_string_equal(c.bind, "10.1.2.3");

    static const struct {
        const char *path, *value;
    } bad[] = {
        {"queue.max_queue_size", "0"},
        {"queue.max_queue_size", "-1"},
        {"queue.max_queue_size", ""},
        {"queue.max_queue_size", "12abc"},
        {"queue.max_queue_size", "1.5"},
        {"queue.max_queue_size", "99999999999999999999999"},
        {"queue.worker_count", "0"},
        {"cluster.shards", "0"},
        {"nginx.port", "65536"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv_config before = c;
        err[0] = '\0';
        if (config_set(&c, bad[i].path, bad[i].value, err, sizeof err) != -1)
            fail_msg("config_set(%s, \"%s\") was accepted", bad[i].path,
                     bad[i].value);
        if (strstr(err, bad[i].path) == NULL)
            fail_msg("config_set(%s, \"%s\"): error \"%s\"", bad[i].path,
                     bad[i].value, err);
        /* a rejected value leaves the configuration as it was */
        assert_memory_equal(&c, &before, sizeof c);
    }
    err[0] = '\0';
    assert_int_equal(config_set(&c, "queue.nope", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "queue.nope"));
    assert_int_equal(config_set(&c, "nope", "1", err, sizeof err), -1);
    assert_non_null(strstr(err, "nope"));

    /* a short err buffer is filled, terminated, and not overrun */
    char small[16];
    memset(small, 'Z', sizeof small);
    assert_int_equal(config_set(&c, "queue.max_queue_size", "0", small, 8), -1);
    assert_true(memchr(small, '\0', 8) != NULL);
    for (size_t i = 8; i < sizeof small; i++)
        assert_int_equal(small[i], 'Z');
}

static void test_fsync_choices(void **state)
{
    (void)state;
    kv_config c;
    char err[256];
    static const char *const good[] = {"always", "everysec", "no"};
    static const char *const bad[] = {"",       "never",  "ALWAYS", "al",
                                      "always|no", "everysecond", "no ",
                                      "yes",    "1"};

    config_defaults(&c);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (config_set(&c, "store.fsync", good[i], err, sizeof err) != 0)
            fail_msg("fsync \"%s\" rejected: %s", good[i], err);
        assert_string_equal(c.fsync, good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (config_set(&c, "store.fsync", bad[i], err, sizeof err) != -1)
            fail_msg("fsync \"%s\" accepted", bad[i]);
        assert_non_null(strstr(err, "store.fsync"));
        assert_string_equal(c.fsync, "no"); /* unchanged */
    }
    kv_config d;
    expect_load_ok("{\"store\":{\"fsync\":\"everysec\"}}", &d);
    assert_string_equal(d.fsync, "everysec");
    expect_load_error("{\"store\":{\"fsync\":\"sometimes\"}}", "store.fsync");
}

static void test_cross_field_validation(void **state)
{
    (void)state;
    kv_config c;
    char err[256];

    config_defaults(&c);
    c.restart_backoff_ms = 5000;
    c.restart_backoff_max_ms = 100;
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "restart_backoff"));

    config_defaults(&c);
    c.data_dir[0] = '\0';
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "cluster.data_dir"));

    /* config_load runs the same checks */
    expect_load_error("{\"controller\":{\"restart_backoff_ms\":5000,"
                      "\"restart_backoff_max_ms\":100}}",
                      "restart_backoff");
}

/* The lab's settings: bounds, defaults, and the store port layout rule
 * that lets one lab shard have up to 31 secondaries. */
static void test_lab_settings(void **state)
{
    (void)state;
    kv_config c;
    char err[256];

    config_defaults(&c);
    assert_int_equal(c.heartbeat_ms, 500);
    assert_int_equal(c.lease_ms, 0);
    assert_int_equal(c.lab_sync_delay_ms, 0);
    assert_int_equal(c.lab_async_delay_ms, 0);
    assert_int_equal(c.repl_delay_random, 0);
    expect_load_ok("{\"store\":{\"lab_sync_delay_ms\":500,"
                   "\"lab_async_delay_ms\":5000,\"lease_ms\":1000,"
                   "\"repl_delay_random\":1}}", &c);
    assert_int_equal(c.lab_async_delay_ms, 5000);
    assert_int_equal(c.repl_delay_random, 1);
    expect_load_error("{\"store\":{\"repl_delay_random\":2}}",
                      "store.repl_delay_random");
    expect_load_error("{\"store\":{\"heartbeat_ms\":0}}",
                      "store.heartbeat_ms");

    /* One shard may have 20 followers (W up to 20); several may not. */
    expect_load_ok("{\"cluster\":{\"shards\":1,\"replicas\":21,"
                   "\"write_quorum\":20,\"read_quorum\":20}}", &c);
    assert_int_equal(c.write_quorum, 20);
    expect_load_error("{\"cluster\":{\"shards\":2,\"replicas\":11}}",
                      "cluster.replicas");
    config_defaults(&c);
    c.shards = 3;
    c.replicas = 12;
    assert_int_equal(config_validate(&c, err, sizeof err), -1);
    assert_non_null(strstr(err, "cluster.replicas"));

    /* config_clear_env: nothing of the caller's environment remains. */
    setenv("LAB_ASYNC_DELAY_MS", "7", 1);
    setenv("WRITE_QUORUM", "1", 1);
    config_clear_env();
    assert_null(getenv("LAB_ASYNC_DELAY_MS"));
    assert_null(getenv("WRITE_QUORUM"));
}

static void test_derived_ports(void **state)
{
    (void)state;
    kv_config c;

    config_defaults(&c);
    c.base_port = 7000;
    assert_int_equal(config_queue_port(&c), 7001);
    assert_int_equal(config_api_port(&c, 0), 7010);
    assert_int_equal(config_api_port(&c, 3), 7013);
    assert_int_equal(config_store_port(&c, 0, 0), 7100);
    assert_int_equal(config_store_port(&c, 0, 2), 7102);
    assert_int_equal(config_store_port(&c, 2, 1), 7121);
    assert_int_equal(config_store_port(&c, 11, 9), 7219);

    c.base_port = 20000;
    assert_int_equal(config_queue_port(&c), 20001);
    assert_int_equal(config_api_port(&c, 1), 20011);
    assert_int_equal(config_store_port(&c, 3, 0), 20130);

    /* through a loaded file */
    expect_load_ok("{\"cluster\":{\"base_port\":9000}}", &c);
    assert_int_equal(config_store_port(&c, 1, 1), 9111);
}

static void test_to_json_round_trip(void **state)
{
    (void)state;
    kv_config c, d;
    char err[512];

    config_defaults(&c);
    assert_int_equal(config_set(&c, "queue.max_queue_size", "4321", err,
                                sizeof err), 0);
    assert_int_equal(config_set(&c, "store.fsync", "always", err, sizeof err),
                     0);
    assert_int_equal(config_set(&c, "cluster.token", "s3cret \"q\"", err,
                                sizeof err), 0);
    char *json = config_to_json(&c);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"max_queue_size\""));
    assert_non_null(strstr(json, "4321"));

    /* what it prints loads back to the same configuration */
    config_defaults(&d);
    if (config_load(&d, write_file(json), err, sizeof err) != 0)
        fail_msg("config_to_json output rejected: %s\n%s", err, json);
    assert_int_equal(d.max_queue_size, 4321);
    assert_string_equal(d.fsync, "always");
    assert_string_equal(d.token, "s3cret \"q\"");
    char *again = config_to_json(&d);
    assert_string_equal(again, json);
    free(again);
    free(json);
}

static void test_help(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    config_print_help(f);
    fclose(f);
    assert_non_null(text);
    assert_non_null(strstr(text, "queue.max_queue_size"));
    assert_non_null(strstr(text, "MAX_QUEUE_SIZE"));
    assert_non_null(strstr(text, "WORKER_COUNT"));
    assert_non_null(strstr(text, "store.fsync"));
    assert_non_null(strstr(text, "everysec"));
    free(text);
}

/* config/local.json says it lists every setting with its default: hold it
 * to that (the file is found from this source file's path, so the test
 * runs from the repository root like make does). */
static void test_example_file_lists_every_default(void **state)
{
    (void)state;
    kv_config d;
    char path[512], *want_s;
    FILE *f;
    char buf[16384];
    size_t n;

    snprintf(path, sizeof path, "%.*sconfig/local.json",
             (int)(strlen(__FILE__) - strlen("tests/unit/test_config.c")), __FILE__);
    f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    config_defaults(&d);
    want_s = config_to_json(&d);
    cJSON *have = cJSON_Parse(buf), *want = cJSON_Parse(want_s);
    assert_non_null(have);
    assert_non_null(want);
    if (!cJSON_Compare(have, want, 1)) {
        char *h = cJSON_PrintUnformatted(have);
        fail_msg("%s differs from the built-in defaults:\n have %s\n want %s",
                 path, h, want_s);
    }
    cJSON_Delete(have);
    cJSON_Delete(want);
    free(want_s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_validate, setup),
        cmocka_unit_test_setup(test_file_values, setup),
        cmocka_unit_test_setup(test_bad_values_name_field, setup),
        cmocka_unit_test_setup(test_wrong_type_names_field, setup),
        cmocka_unit_test_setup(test_unknown_keys, setup),
        cmocka_unit_test_setup(test_malformed_json_names_file, setup),
        cmocka_unit_test_setup(test_load_text, setup),
        cmocka_unit_test_setup(test_env_overrides, setup),
        cmocka_unit_test_setup(test_config_set, setup),
        cmocka_unit_test_setup(test_fsync_choices, setup),
        cmocka_unit_test_setup(test_cross_field_validation, setup),
        cmocka_unit_test_setup(test_lab_settings, setup),
        cmocka_unit_test_setup(test_derived_ports, setup),
        cmocka_unit_test_setup(test_to_json_round_trip, setup),
        cmocka_unit_test_setup(test_help, setup),
        cmocka_unit_test_setup(test_example_file_lists_every_default, setup),
    };
    return cmocka_run_group_tests_name("config", tests, group_setup,
                                       group_teardown);
}
