/* Unit tests for controller/addr (node URLs from cluster.advertise_host)
 * and the node list cluster_init builds from it: the local default
 * (127.0.0.1 for 0.0.0.0), the compose template {name} (store-0-1, queue),
 * every placeholder, the errors that name the field, and the external mode
 * (controller.supervise=0: stores and queue only, shown "external" in
 * /status, published by service name in /topology). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../controller/addr.h"
#include "../../controller/cluster.h"
#include "../../controller/cluster_preflight.h"
#include "../../controller/cluster_publish.h"
#include "../../controller/probe.h"
#include "config.h"
#include "log.h"

static const addr_node store_0_1 = {"store-0-1", "store", 0, 1};
static const addr_node queue_node = {"queue", "queue", -1, -1};

static void test_default_host_is_bind_address(void **state)
{
    char out[128], err[256];

    (void)state;
    assert_int_equal(addr_host("", "0.0.0.0", &store_0_1, out, sizeof out,
                               err, sizeof err), 0);
    assert_string_equal(out, "127.0.0.1");
    assert_int_equal(addr_host(NULL, "", &queue_node, out, sizeof out, err,
                               sizeof err), 0);
    assert_string_equal(out, "127.0.0.1");
    assert_int_equal(addr_host("", "10.1.2.3", &queue_node, out, sizeof out,
                               err, sizeof err), 0);
    assert_string_equal(out, "10.1.2.3");
    assert_int_equal(addr_url("", "127.0.0.1", &store_0_1, 7101, out,
                              sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "http://127.0.0.1:7101");
}

static void test_templates(void **state)
{
    char out[128], err[256];

    (void)state;
    assert_int_equal(addr_url("{name}", "0.0.0.0", &store_0_1, 7101, out,
                              sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "http://store-0-1:7101");
    assert_int_equal(addr_url("{name}", "0.0.0.0", &queue_node, 7001, out,
                              sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "http://queue:7001");
    assert_int_equal(addr_host("kv-{kind}-{shard}-{replica}.svc.local",
                               "0.0.0.0", &store_0_1, out, sizeof out, err,
                               sizeof err), 0);
    assert_string_equal(out, "kv-store-0-1.svc.local");
    assert_int_equal(addr_host("{kind}.internal", "0.0.0.0", &queue_node, out,
                               sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "queue.internal");
    /* A fixed host: every node on it (one machine, several names). */
    assert_int_equal(addr_host("kvhost", "0.0.0.0", &queue_node, out,
                               sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "kvhost");
}

static void test_template_errors_name_the_field(void **state)
{
    char out[128], err[256];

    (void)state;
    assert_int_equal(addr_host("{nmae}", "0.0.0.0", &store_0_1, out,
                               sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "cluster.advertise_host"));
    assert_non_null(strstr(err, "{nmae}"));
    assert_int_equal(addr_host("store-{shard", "0.0.0.0", &store_0_1, out,
                               sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "unterminated"));
    /* {shard} means nothing for the queue */
    assert_int_equal(addr_host("store-{shard}", "0.0.0.0", &queue_node, out,
                               sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a store"));
    assert_int_equal(addr_host("a b", "0.0.0.0", &queue_node, out, sizeof out,
                               err, sizeof err), -1);
    assert_non_null(strstr(err, "' '"));
    assert_int_equal(addr_host("http://x", "0.0.0.0", &queue_node, out,
                               sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "'/'"));
    /* too long for the caller's buffer */
    assert_int_equal(addr_host("{name}{name}{name}", "0.0.0.0", &store_0_1,
                               out, 16, err, sizeof err), -1);
    assert_non_null(strstr(err, "over 15 bytes"));
    assert_int_equal(addr_check_template("{name}", err, sizeof err), 0);
    assert_int_equal(addr_check_template("", err, sizeof err), 0);
    assert_int_equal(addr_check_template("{replica}", err, sizeof err), -1);
}

static void test_config_fields_and_env(void **state)
{
    kv_config c;
    char err[256];

    (void)state;
    config_defaults(&c);
    assert_int_equal(c.supervise, 1);
    assert_string_equal(c.advertise_host, "");
    setenv("KV_SUPERVISE", "0", 1);
    setenv("KV_ADVERTISE_HOST", "{name}", 1);
    assert_int_equal(config_load(&c, NULL, err, sizeof err), 0);
    assert_int_equal(c.supervise, 0);
    assert_string_equal(c.advertise_host, "{name}");
    setenv("KV_SUPERVISE", "2", 1);
    config_defaults(&c);
    assert_int_equal(config_load(&c, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "controller.supervise"));
    assert_non_null(strstr(err, "KV_SUPERVISE"));
    unsetenv("KV_SUPERVISE");
    unsetenv("KV_ADVERTISE_HOST");
}

/* The node of cl named name, or NULL. */
static const cluster_node *find_node(const cluster_t *cl, const char *name)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (strcmp(cl->nodes[i].name, name) == 0)
            return &cl->nodes[i];
    return NULL;
}

static void test_cluster_supervised_keeps_local_layout(void **state)
{
    kv_config c;
    cluster_t cl;
    char err[256];

    (void)state;
    config_defaults(&c);
    snprintf(c.data_dir, sizeof c.data_dir, "/tmp/kv-test-addr");
    assert_int_equal(cluster_init(&cl, &c, NULL, ".", NULL, err, sizeof err),
                     0);
    assert_int_equal(cl.supervise, 1);
    /* 4 stores, queue, 2 api, nginx */
    assert_int_equal(cl.nnodes, 8);
    assert_string_equal(find_node(&cl, "store-1-1")->url,
                        "http://127.0.0.1:7111");
    assert_string_equal(find_node(&cl, "api-1")->url, "http://127.0.0.1:7011");
    assert_string_equal(find_node(&cl, "nginx")->url, "http://127.0.0.1:8000");
    cluster_free(&cl);
}

static void test_cluster_external_by_service_name(void **state)
{
    kv_config c;
    cluster_t cl;
    char err[256], *text;
    cJSON *topo, *status;
    const cJSON *sh, *kids, *k;

    (void)state;
    config_defaults(&c);
    snprintf(c.data_dir, sizeof c.data_dir, "/tmp/kv-test-addr");
    snprintf(c.bind, sizeof c.bind, "0.0.0.0");
    snprintf(c.advertise_host, sizeof c.advertise_host, "{name}");
    c.supervise = 0;
    assert_int_equal(cluster_init(&cl, &c, NULL, ".", NULL, err, sizeof err),
                     0);
    assert_int_equal(cl.supervise, 0);
    /* the stores and the queue; no api, no nginx */
    assert_int_equal(cl.nnodes, 5);
    assert_null(find_node(&cl, "api-0"));
    assert_null(find_node(&cl, "nginx"));
    assert_string_equal(find_node(&cl, "store-0-0")->url,
                        "http://store-0-0:7100");
    assert_string_equal(find_node(&cl, "store-1-1")->url,
                        "http://store-1-1:7111");
    assert_string_equal(find_node(&cl, "queue")->url, "http://queue:7001");
    /* nothing to spawn: no binary or port of the nodes is checked here */
    assert_int_equal(cluster_preflight_check_binaries(&cl, err, sizeof err), 0);

    topo = cluster_publish_topology(&cl);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(topo, "queue")->valuestring,
        "http://queue:7001");
    sh = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(topo, "shards"),
                            1);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(sh, "primary")->valuestring,
        "http://store-1-0:7110");
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(sh, "secondaries"),
                           0)->valuestring,
        "http://store-1-1:7111");
    cJSON_Delete(topo);

    /* a promotion publishes the other service name */
    assert_int_equal(cluster_promote(&cl, 1, 1, 5, 1), 0);
    topo = cluster_publish_topology(&cl);
    sh = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(topo, "shards"),
                            1);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(sh, "primary")->valuestring,
        "http://store-1-1:7111");
    cJSON_Delete(topo);

    atomic_store(&find_node(&cl, "queue")->healthy, 1);
    assert_int_equal(probe_all_healthy(&cl), 0);
    for (size_t i = 0; i < cl.nnodes; i++)
        atomic_store(&cl.nodes[i].healthy, 1);
    assert_int_equal(probe_all_healthy(&cl), 1);
    atomic_store(&find_node(&cl, "store-0-1")->healthy, 0);

    status = cluster_publish_status(&cl, NULL);
    assert_string_equal(
        cJSON_GetObjectItemCaseSensitive(status, "mode")->valuestring,
        "external");
    kids = cJSON_GetObjectItemCaseSensitive(status, "children");
    assert_int_equal(cJSON_GetArraySize(kids), 5);
    cJSON_ArrayForEach(k, kids) {
        const char *name =
            cJSON_GetObjectItemCaseSensitive(k, "name")->valuestring;
        assert_string_equal(
            cJSON_GetObjectItemCaseSensitive(k, "state")->valuestring,
            "external");
        assert_int_equal(
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(k, "healthy")),
            strcmp(name, "store-0-1") != 0);
    }
    text = cJSON_PrintUnformatted(status);
    assert_non_null(strstr(text, "\"url\":\"http://store-0-1:7101\""));
    free(text);
    cJSON_Delete(status);
    cluster_free(&cl);
}

static void test_cluster_bad_template_stops_init(void **state)
{
    kv_config c;
    cluster_t cl;
    char err[256];

    (void)state;
    config_defaults(&c);
    snprintf(c.data_dir, sizeof c.data_dir, "/tmp/kv-test-addr");
    snprintf(c.advertise_host, sizeof c.advertise_host, "{host}");
    assert_int_equal(cluster_init(&cl, &c, NULL, ".", NULL, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "cluster.advertise_host"));
    /* {shard} fits the stores and the queue check fails first */
    snprintf(c.advertise_host, sizeof c.advertise_host, "s{shard}");
    assert_int_equal(cluster_init(&cl, &c, NULL, ".", NULL, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "not a store"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_host_is_bind_address),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_template_errors_name_the_field),
        cmocka_unit_test(test_config_fields_and_env),
        cmocka_unit_test(test_cluster_supervised_keeps_local_layout),
        cmocka_unit_test(test_cluster_external_by_service_name),
        cmocka_unit_test(test_cluster_bad_template_stops_init),
    };

    log_init("test_addr", LOG_WARN);
    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
