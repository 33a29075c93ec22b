/* Unit tests for controller/failover (and the topology state of
 * controller/cluster it drives): the choice of the replica to promote, the
 * /health parsing, and whole promotions against fake stores (lib/httpd
 * servers on the ports the cluster layout gives the replicas): highest
 * applied_seq wins, ties go to the lowest id, the epochs and handoff_seq
 * move, the old primary becomes a secondary, every store of the shard is
 * told (with the token), nothing changes without a live secondary, a tick
 * waits failover_after_ms and never fails over twice within it, and the
 * state survives a controller restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../controller/cluster.h"
#include "../../controller/cluster_publish.h"
#include "../../controller/cluster_state.h"
#include "../../controller/probe.h"
#include "../../controller/failover.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"

/* ---- fake stores ---- */

typedef struct fake_store {
    httpd_t *srv;
    _Atomic int healthy;          /* 0: /health answers 503 */
    _Atomic int only_seq;         /* report "seq" instead of "applied_seq" */
    _Atomic uint64_t seq;
    _Atomic int notified;         /* POST /internal/topology-changed seen */
    _Atomic int bad_auth;         /* ... without the expected token */
    const char *token;
} fake_store;

static void fake_handle(httpd_req *r, void *app)
{
    fake_store *f = app;
    const char *path = httpd_path(r);

    if (strcmp(path, "/health") == 0) {
        char body[160];
        if (!atomic_load(&f->healthy)) {
            httpd_error(r, 503, "down", "fake store is down");
            return;
        }
        snprintf(body, sizeof body,
                 "{\"status\":\"ok\",\"role\":\"secondary\",\"epoch\":1,"
                 "\"%s\":%llu}",
                 atomic_load(&f->only_seq) ? "seq" : "applied_seq",
                 (unsigned long long)atomic_load(&f->seq));
        httpd_respond(r, 200, "application/json", body, strlen(body), NULL);
        return;
    }
    if (strcmp(path, "/internal/topology-changed") == 0 &&
        httpd_method_is(r, "POST")) {
        const char *auth = httpd_header(r, "Authorization");
        char want[128];
        snprintf(want, sizeof want, "Bearer %s", f->token ? f->token : "");
        if (f->token && (auth == NULL || strcmp(auth, want) != 0))
            atomic_fetch_add(&f->bad_auth, 1);
        else
            atomic_fetch_add(&f->notified, 1);
        httpd_respond(r, 200, "application/json", "{}", 2, NULL);
        return;
    }
    httpd_error(r, 404, "not_found", "no route");
}

#define NREP 3

typedef struct fixture {
    cluster_t cl;
    kv_config cfg;
    fake_store stores[NREP];
    char dir[64];
} fixture;

/* A 1-shard, NREP-replica cluster whose store ports all have a fake store
 * (replica 0, the primary, included: it answers topology-changed). */
static int fixture_up(fixture *fx, const char *token)
{
    char err[256];

    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/kvtest-failover-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    for (int attempt = 0; attempt < 50; attempt++) {
        int base = 20000 + (int)((unsigned)rand() % 1000) * 10;
        int ok = 1;
        config_defaults(&fx->cfg);
        fx->cfg.shards = 1;
        fx->cfg.replicas = NREP;
        fx->cfg.base_port = base;
        fx->cfg.health_interval_ms = 100;
        fx->cfg.failover_after_ms = 300;
        snprintf(fx->cfg.bind, sizeof fx->cfg.bind, "127.0.0.1");
        snprintf(fx->cfg.data_dir, sizeof fx->cfg.data_dir, "%s", fx->dir);
        if (token)
            snprintf(fx->cfg.token, sizeof fx->cfg.token, "%s", token);
        for (int r = 0; r < NREP && ok; r++) {
            fake_store *f = &fx->stores[r];
            httpd_opts o = {.bind = "127.0.0.1",
                            .port = config_store_port(&fx->cfg, 0,
                                                      (unsigned)r),
                            .threads = 2};
            memset(f, 0, sizeof *f);
            f->token = token;
            atomic_store(&f->healthy, 1);
            f->srv = httpd_start(&o, fake_handle, f);
            ok = f->srv != NULL;
        }
        if (!ok) {
            for (int r = 0; r < NREP; r++)
                if (fx->stores[r].srv)
                    httpd_stop(fx->stores[r].srv);
            continue;
        }
        assert_int_equal(cluster_init(&fx->cl, &fx->cfg, NULL, ".", NULL, err,
                                      sizeof err),
                         0);
        return 0;
    }
    fail_msg("no free ports for the fake stores");
    return -1;
}

static void fixture_down(fixture *fx)
{
    char path[PATH_MAX];

    for (int r = 0; r < NREP; r++)
        httpd_stop(fx->stores[r].srv);
    cluster_free(&fx->cl);
    snprintf(path, sizeof path, "%s/controller-state.json", fx->dir);
    unlink(path);
    rmdir(fx->dir);
}

static const cJSON *topo_shard0(cJSON *topo)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(topo, "shards"), 0);
}

static const char *store_url(fixture *fx, int r)
{
    return cluster_store_node(&fx->cl, 0, r)->url;
}

/* ---- pure functions ---- */

static void test_pick(void **state)
{
    (void)state;
    failover_cand none[1] = {{0, 0}};
    assert_int_equal(failover_pick(none, 0), -1);

    failover_cand a[] = {{1, 5}, {2, 9}, {3, 7}};
    assert_int_equal(failover_pick(a, 3), 1);

    failover_cand tie[] = {{3, 9}, {1, 9}, {2, 9}};
    assert_int_equal(tie[failover_pick(tie, 3)].replica, 1);

    failover_cand zero[] = {{2, 0}, {1, 0}};
    assert_int_equal(zero[failover_pick(zero, 2)].replica, 1);
}

static void test_health_seq(void **state)
{
    (void)state;
    uint64_t seq = 0, epoch = 0;
    const char *both = "{\"applied_seq\":42,\"seq\":50,\"epoch\":3}";
    const char *old = "{\"status\":\"ok\",\"seq\":17,\"epoch\":2}";
    const char *none = "{\"status\":\"ok\"}";

    assert_int_equal(probe_health_seq(both, strlen(both), &seq, &epoch), 0);
    assert_int_equal(seq, 42);
    assert_int_equal(epoch, 3);
    assert_int_equal(probe_health_seq(old, strlen(old), &seq, &epoch), 0);
    assert_int_equal(seq, 17);
    assert_int_equal(epoch, 2);
    assert_int_equal(probe_health_seq(none, strlen(none), &seq, NULL), -1);
    assert_int_equal(probe_health_seq("not json", 8, &seq, NULL), -1);
    assert_int_equal(probe_health_seq(NULL, 0, &seq, NULL), -1);
}

static void test_probe_timeout(void **state)
{
    (void)state;
    assert_int_equal(failover_probe_timeout_ms(10), 200);
    assert_int_equal(failover_probe_timeout_ms(500), 500);
    assert_int_equal(failover_probe_timeout_ms(5000), 1000);
}

/* ---- promotions against fake stores ---- */

static void test_promotes_highest_seq(void **state)
{
    (void)state;
    fixture fx;
    failover_t *f;
    cJSON *topo;
    const cJSON *sh, *secs;
    char err[256];

    fixture_up(&fx, NULL);
    atomic_store(&fx.stores[1].seq, 10);
    atomic_store(&fx.stores[2].seq, 12);
    f = failover_new(&fx.cl, NULL, NULL);
    assert_non_null(f);
    assert_int_equal(failover_shard(f, 0, sup_now_ms()), 1);

    topo = cluster_publish_topology(&fx.cl);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(topo, "epoch")), 2);
    sh = topo_shard0(topo);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(sh, "epoch")), 2);
    assert_int_equal(cJSON_GetNumberValue(cJSON_GetObjectItem(sh, "handoff_seq")),
                     12);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(sh, "primary")),
                        store_url(&fx, 2));
    /* the old primary is a secondary now, in replica id order */
    secs = cJSON_GetObjectItem(sh, "secondaries");
    assert_int_equal(cJSON_GetArraySize(secs), 2);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(secs, 0)),
                        store_url(&fx, 0));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(secs, 1)),
                        store_url(&fx, 1));
    cJSON_Delete(topo);
    assert_string_equal(cluster_node_role(&fx.cl, cluster_store_node(&fx.cl, 0, 0)),
                        "secondary");
    assert_string_equal(cluster_node_role(&fx.cl, cluster_store_node(&fx.cl, 0, 2)),
                        "primary");
    assert_int_equal(atomic_load(&fx.cl.failovers), 1);
    /* every store of the shard was told */
    for (int r = 0; r < NREP; r++)
        assert_int_equal(atomic_load(&fx.stores[r].notified), 1);

    /* a restarted controller starts from the saved state */
    {
        cluster_t again;
        assert_int_equal(cluster_init(&again, &fx.cfg, NULL, ".", NULL, err,
                                      sizeof err),
                         0);
        assert_int_equal(cluster_state_load(&again, err, sizeof err), 0);
        assert_int_equal(again.epoch, 2);
        assert_int_equal(again.shards[0].epoch, 2);
        assert_int_equal(again.shards[0].primary, 2);
        assert_int_equal(again.shards[0].handoff_seq, 12);
        assert_int_equal(again.shards[0].failovers, 1);
        cluster_free(&again);
    }
    /* a state file for another shard count is refused */
    {
        cluster_t other;
        kv_config c2 = fx.cfg;
        c2.shards = 2;
        assert_int_equal(cluster_init(&other, &c2, NULL, ".", NULL, err,
                                      sizeof err),
                         0);
        assert_int_equal(cluster_state_load(&other, err, sizeof err), -1);
        assert_non_null(strstr(err, "shards"));
        cluster_free(&other);
    }
    failover_free(f);
    fixture_down(&fx);
}

static void test_tie_goes_to_lowest_id_and_seq_fallback(void **state)
{
    (void)state;
    fixture fx;
    failover_t *f;

    fixture_up(&fx, NULL);
    atomic_store(&fx.stores[1].seq, 7);
    atomic_store(&fx.stores[2].seq, 7);
    atomic_store(&fx.stores[1].only_seq, 1); /* a store without applied_seq */
    f = failover_new(&fx.cl, NULL, NULL);
    assert_int_equal(failover_shard(f, 0, sup_now_ms()), 1);
    assert_int_equal(fx.cl.shards[0].primary, 1);
    assert_int_equal(fx.cl.shards[0].handoff_seq, 7);
    failover_free(f);
    fixture_down(&fx);
}

static void test_no_live_secondary_changes_nothing(void **state)
{
    (void)state;
    fixture fx;
    failover_t *f;

    fixture_up(&fx, NULL);
    atomic_store(&fx.stores[1].healthy, 0);
    atomic_store(&fx.stores[2].healthy, 0);
    f = failover_new(&fx.cl, NULL, NULL);
    assert_int_equal(failover_shard(f, 0, sup_now_ms()), 0);
    assert_int_equal(fx.cl.epoch, 1);
    assert_int_equal(fx.cl.shards[0].epoch, 1);
    assert_int_equal(fx.cl.shards[0].primary, 0);
    assert_int_equal(atomic_load(&fx.cl.failovers), 0);
    assert_int_equal(atomic_load(&fx.cl.failovers_skipped), 1);
    for (int r = 0; r < NREP; r++)
        assert_int_equal(atomic_load(&fx.stores[r].notified), 0);
    failover_free(f);
    fixture_down(&fx);
}

static void test_notify_carries_token(void **state)
{
    (void)state;
    fixture fx;
    failover_t *f;

    fixture_up(&fx, "s3cret");
    atomic_store(&fx.stores[1].seq, 3);
    f = failover_new(&fx.cl, NULL, NULL);
    assert_int_equal(failover_shard(f, 0, sup_now_ms()), 1);
    for (int r = 0; r < NREP; r++) {
        assert_int_equal(atomic_load(&fx.stores[r].notified), 1);
        assert_int_equal(atomic_load(&fx.stores[r].bad_auth), 0);
    }
    failover_free(f);
    fixture_down(&fx);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_tick_waits_and_never_twice(void **state)
{
    (void)state;
    fixture fx;
    failover_t *f;

    fixture_up(&fx, NULL);
    atomic_store(&fx.stores[1].seq, 5);
    atomic_store(&fx.stores[2].seq, 4);
    f = failover_new(&fx.cl, NULL, NULL);
    /* all healthy: nothing happens */
    assert_int_equal(failover_tick(f, sup_now_ms()), 0);
    assert_true(atomic_load(&cluster_store_node(&fx.cl, 0, 0)->healthy));
    assert_int_equal(atomic_load(&cluster_store_node(&fx.cl, 0, 1)->seen_seq), 5);

    /* the primary goes down: not before failover_after_ms (300) */
    atomic_store(&fx.stores[0].healthy, 0);
    assert_int_equal(failover_tick(f, sup_now_ms()), 0);
    assert_int_equal(fx.cl.shards[0].primary, 0);
    sleep_ms(150);
    assert_int_equal(failover_tick(f, sup_now_ms()), 0);
    sleep_ms(250);
    assert_int_equal(failover_tick(f, sup_now_ms()), 1);
    assert_int_equal(fx.cl.shards[0].primary, 1);
    assert_int_equal(fx.cl.shards[0].epoch, 2);

    /* the new primary goes down at once: not again within 300 ms */
    atomic_store(&fx.stores[1].healthy, 0);
    atomic_store(&fx.stores[0].healthy, 1);
    assert_int_equal(failover_tick(f, sup_now_ms()), 0);
    sleep_ms(100);
    assert_int_equal(failover_tick(f, sup_now_ms()), 0);
    assert_int_equal(fx.cl.shards[0].primary, 1);
    sleep_ms(300);
    assert_int_equal(failover_tick(f, sup_now_ms()), 1);
    /* replica 2 (seq 4) beats the old primary 0 (seq 0) */
    assert_int_equal(fx.cl.shards[0].primary, 2);
    assert_int_equal(fx.cl.shards[0].epoch, 3);
    assert_int_equal(fx.cl.epoch, 3);
    assert_int_equal(atomic_load(&fx.cl.failovers), 2);
    failover_free(f);
    fixture_down(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick),
        cmocka_unit_test(test_health_seq),
        cmocka_unit_test(test_probe_timeout),
        cmocka_unit_test(test_promotes_highest_seq),
        cmocka_unit_test(test_tie_goes_to_lowest_id_and_seq_fallback),
        cmocka_unit_test(test_no_live_secondary_changes_nothing),
        cmocka_unit_test(test_notify_carries_token),
        cmocka_unit_test(test_tick_waits_and_never_twice),
    };
    int rc;

    log_init("test_failover", LOG_WARN);
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    httpc_global_init();
    rc = cmocka_run_group_tests_name("failover", tests, NULL, NULL);
    httpc_thread_done();
    return rc;
}
