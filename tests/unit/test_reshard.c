/* Unit tests for the controller's side of shard migration: the state file
 * with shard ids, a gap, external URLs and a migration (round trip, the
 * shard count check, old files without ids), the runtime add and drop of
 * a shard in the model, the published topology's ring and migration, and
 * the driver's pure decisions over stores' /health bodies
 * (controller/reshard.h: may it move from copy to freeze, from freeze to
 * switch, from switch to open), and the driver itself stepping an add and a
 * remove through every phase against fake stores (lib/httpd servers whose
 * /health body the test sets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "../../controller/cluster.h"
#include "../../controller/cluster_publish.h"
#include "../../controller/cluster_state.h"
#include "../../controller/probe.h"
#include "../../controller/reshard.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "topo.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct fixture {
    char dir[64];
    kv_config cfg;
} fixture;

static void fixture_up(fixture *fx, int shards)
{
    snprintf(fx->dir, sizeof fx->dir, "/tmp/kv-test-reshard-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    config_defaults(&fx->cfg);
    fx->cfg.shards = shards;
    fx->cfg.replicas = 2;
    fx->cfg.base_port = 20000;
    snprintf(fx->cfg.bind, sizeof fx->cfg.bind, "127.0.0.1");
    snprintf(fx->cfg.data_dir, sizeof fx->cfg.data_dir, "%s", fx->dir);
}

static void fixture_down(fixture *fx)
{
    char path[128];

    snprintf(path, sizeof path, "%s/controller-state.json", fx->dir);
    unlink(path);
    rmdir(fx->dir);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void init(cluster_t *cl, const kv_config *c)
{
    char err[512];
    assert_int_equal(cluster_init(cl, c, NULL, ".", NULL, err, sizeof err), 0);
}

static size_t store_nodes(const cluster_t *cl, int shard)
{
    size_t n = 0;
    for (size_t i = 0; i < cl->nnodes; i++)
        n += cl->nodes[i].kind == CLUSTER_STORE && cl->nodes[i].shard == shard &&
             !atomic_load(&cl->nodes[i].gone);
    return n;
}

static void test_state_round_trip_with_ids_and_migration(void **state)
{
    (void)state;
    fixture fx;
    cluster_t cl, again;
    char err[512];
    const char *urls[] = {"http://10.0.0.9:7000", "http://10.0.0.10:7000"};

    fixture_up(&fx, 2);
    init(&cl, &fx.cfg);
    assert_int_equal(cluster_shard_count(&cl), 2);
    assert_int_equal(cl.next_shard_id, 2);
    /* add 2 (port layout), add 3 (external URLs), drop 1: ids 0, 2, 3 */
    assert_int_equal(cluster_shard_add(&cl, 2, NULL, 0, 5, err, sizeof err), 0);
    assert_int_equal(cluster_shard_add(&cl, 3, urls, 2, 5, err, sizeof err), 0);
    assert_int_equal(cluster_shard_add(&cl, 3, NULL, 0, 5, err, sizeof err), -1);
    cluster_shard_drop(&cl, 1);
    assert_int_equal(store_nodes(&cl, 1), 0);
    assert_int_equal(store_nodes(&cl, 2), 2);
    assert_string_equal(cluster_store_node(&cl, 3, 1)->url, urls[1]);
    assert_int_equal(cluster_store_node(&cl, 2, 1)->port, 20000 + 100 + 20 + 1);
    cl.shards[2].epoch = 7;
    cl.shards[2].primary = 1;
    cl.mig.id = 4;
    cl.mig.kind = CLUSTER_MIG_REMOVE;
    cl.mig.shard = 3;
    cl.mig.phase = CLUSTER_MIG_FREEZE;
    cl.mig.nfrom = 3;
    cl.mig.from[0] = 0, cl.mig.from[1] = 2, cl.mig.from[2] = 3;
    cl.mig.nto = 2;
    cl.mig.to[0] = 0, cl.mig.to[1] = 2;
    cl.mig.share = 0.25;
    cl.mig.started_unix_ms = 1000;
    cl.epoch = 9;
    snprintf(cl.state_path, sizeof cl.state_path, "%s/controller-state.json",
             fx.dir);
    assert_int_equal(cluster_state_save(&cl), 0);

    /* the config still says 2 (the created count): accepted, 3 run */
    init(&again, &fx.cfg);
    assert_int_equal(cluster_state_load(&again, err, sizeof err), 0);
    assert_int_equal(again.epoch, 9);
    assert_int_equal(cluster_shard_count(&again), 3);
    assert_true(again.shards[0].present && !again.shards[1].present &&
                again.shards[2].present && again.shards[3].present);
    assert_int_equal(again.next_shard_id, 4);
    assert_int_equal(again.created_shards, 2);
    assert_int_equal(again.shards[2].epoch, 7);
    assert_int_equal(again.shards[2].primary, 1);
    assert_int_equal(store_nodes(&again, 1), 0);
    assert_int_equal(store_nodes(&again, 2), 2);
    assert_string_equal(cluster_store_node(&again, 3, 0)->url, urls[0]);
    assert_int_equal(again.mig.id, 4);
    assert_int_equal(again.mig.kind, CLUSTER_MIG_REMOVE);
    assert_int_equal(again.mig.phase, CLUSTER_MIG_FREEZE);
    assert_int_equal(again.mig.nfrom, 3);
    assert_int_equal(again.mig.from[2], 3);
    assert_int_equal(again.mig.nto, 2);
    assert_true(again.mig.share > 0.24 && again.mig.share < 0.26);
    {
        /* during freeze the ring is from, and the topology says so */
        cJSON *t = cluster_publish_topology(&again);
        cJSON *ring = cJSON_GetObjectItem(t, "ring");
        cJSON *m = cJSON_GetObjectItem(t, "migration");
        assert_int_equal(cJSON_GetArraySize(ring), 3);
        assert_int_equal(cJSON_GetArrayItem(ring, 2)->valueint, 3);
        assert_string_equal(cJSON_GetObjectItem(m, "phase")->valuestring,
                            "freeze");
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "to")), 2);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "shards")),
                         3);
        cJSON_Delete(t);
    }
    cluster_free(&again);

    /* the stored count (3) is accepted too; 5 is neither: refused */
    {
        kv_config c3 = fx.cfg;
        c3.shards = 3;
        init(&again, &c3);
        assert_int_equal(cluster_state_load(&again, err, sizeof err), 0);
        cluster_free(&again);
        c3.shards = 5;
        init(&again, &c3);
        assert_int_equal(cluster_state_load(&again, err, sizeof err), -1);
        assert_non_null(strstr(err, "cluster.shards is 5"));
        assert_non_null(strstr(err, "has 3 shards (created with 2)"));
        assert_non_null(strstr(err, "`kvctl shard add`"));
        assert_non_null(strstr(err, "back to 3"));
        cluster_free(&again);
    }
    cluster_free(&cl);
    fixture_down(&fx);
}

static void test_old_state_file_without_ids(void **state)
{
    (void)state;
    fixture fx;
    cluster_t cl;
    char err[512], path[128];

    fixture_up(&fx, 2);
    snprintf(path, sizeof path, "%s/controller-state.json", fx.dir);
    write_file(path, "{\"shards\":[{\"epoch\":3,\"primary\":1},"
                     "{\"epoch\":1,\"primary\":0}],\"epoch\":4}\n");
    init(&cl, &fx.cfg);
    assert_int_equal(cluster_state_load(&cl, err, sizeof err), 0);
    assert_int_equal(cl.shards[0].epoch, 3);
    assert_int_equal(cl.shards[0].primary, 1);
    assert_int_equal(cl.next_shard_id, 2);
    assert_int_equal(cl.created_shards, 2);
    assert_int_equal(cl.mig.id, 0);
    {
        cJSON *t = cluster_publish_topology(&cl);
        assert_null(cJSON_GetObjectItem(t, "ring"));
        assert_null(cJSON_GetObjectItem(t, "migration"));
        cJSON_Delete(t);
    }
    cluster_free(&cl);
    /* a repeated id is not a state file of ours */
    write_file(path, "{\"shards\":[{\"id\":1,\"epoch\":1,\"primary\":0},"
                     "{\"id\":1,\"epoch\":1,\"primary\":0}],\"epoch\":4}\n");
    init(&cl, &fx.cfg);
    assert_int_equal(cluster_state_load(&cl, err, sizeof err), -1);
    assert_non_null(strstr(err, "repeated"));
    cluster_free(&cl);
    fixture_down(&fx);
}

static void test_ring_ids_by_phase(void **state)
{
    (void)state;
    fixture fx;
    cluster_t cl;
    uint32_t ids[CLUSTER_MAX_SHARDS];
    char err[256];

    fixture_up(&fx, 2);
    init(&cl, &fx.cfg);
    assert_int_equal(cluster_shard_add(&cl, 2, NULL, 0, 1, err, sizeof err), 0);
    assert_int_equal(cluster_ring_ids(&cl, ids), 3); /* no migration: all */
    cl.mig.id = 1;
    cl.mig.phase = CLUSTER_MIG_PREPARE;
    cl.mig.nfrom = 2, cl.mig.from[0] = 0, cl.mig.from[1] = 1;
    cl.mig.nto = 3, cl.mig.to[0] = 0, cl.mig.to[1] = 1, cl.mig.to[2] = 2;
    assert_int_equal(cluster_ring_ids(&cl, ids), 2);
    cl.mig.phase = CLUSTER_MIG_COPY;
    assert_int_equal(cluster_ring_ids(&cl, ids), 2);
    cl.mig.phase = CLUSTER_MIG_SWITCH;
    assert_int_equal(cluster_ring_ids(&cl, ids), 3);
    assert_int_equal(ids[2], 2);
    {
        /* prepare: the new shard is in shards, a ring, no migration */
        cJSON *t;
        cl.mig.phase = CLUSTER_MIG_PREPARE;
        t = cluster_publish_topology(&cl);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "shards")),
                         3);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "ring")), 2);
        assert_null(cJSON_GetObjectItem(t, "migration"));
        cJSON_Delete(t);
    }
    cl.mig.phase = CLUSTER_MIG_DONE;
    assert_int_equal(cluster_ring_ids(&cl, ids), 3);
    assert_false(cluster_mig_active(&cl.mig));
    /* ports past 65535 and ids past 255 are refused */
    assert_int_equal(cluster_shard_add(&cl, 256, NULL, 0, 1, err, sizeof err),
                     -1);
    cl.cfg.base_port = 63000;
    assert_int_equal(cluster_shard_add(&cl, 250, NULL, 0, 1, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "65535"));
    cluster_free(&cl);
    fixture_down(&fx);
}

static reshard_src src_of(const char *body)
{
    reshard_src s;
    memset(&s, 0, sizeof s);
    assert_int_equal(reshard_decide_parse_health(body, strlen(body), &s), 0);
    return s;
}

static void test_parse_health(void **state)
{
    (void)state;
    reshard_src s = src_of(
        "{\"status\":\"ok\",\"keys\":42,\"migration\":{\"id\":3,\"phase\":"
        "\"copy\",\"source\":true,\"position\":90,\"last_seq\":100,"
        "\"caught_up\":true,\"fence_seq\":0,\"scanned\":50,\"sent\":20,"
        "\"sent_bytes\":2000,\"drained\":false}}");
    assert_true(s.answered && s.has_mig && s.source && s.caught_up);
    assert_false(s.drained);
    assert_int_equal(s.id, 3);
    assert_string_equal(s.phase, "copy");
    assert_int_equal(s.position, 90);
    assert_int_equal(s.last_seq, 100);
    assert_int_equal(s.sent, 20);
    assert_int_equal(s.sent_bytes, 2000);
    assert_int_equal(s.keys, 42);
    s = src_of("{\"status\":\"ok\"}");
    assert_true(s.answered);
    assert_false(s.has_mig);
    memset(&s, 0, sizeof s);
    assert_int_equal(reshard_decide_parse_health("nope", 4, &s), -1);
    assert_false(s.answered);
}

static void test_may_freeze(void **state)
{
    (void)state;
    reshard_src s[2];
    const char *ok = "{\"migration\":{\"id\":3,\"phase\":\"copy\","
                     "\"position\":9000,\"last_seq\":10000,\"caught_up\":true}}";

    s[0] = src_of(ok);
    s[1] = src_of(ok);
    assert_true(reshard_decide_may_freeze(s, 2, 3, 2000));
    assert_false(reshard_decide_may_freeze(s, 2, 4, 2000));   /* another migration */
    assert_false(reshard_decide_may_freeze(s, 0, 3, 2000));   /* no sources */
    s[1] = src_of("{\"migration\":{\"id\":3,\"position\":7000,"
                  "\"last_seq\":10000,\"caught_up\":true}}");
    assert_false(reshard_decide_may_freeze(s, 2, 3, 2000));   /* 3000 behind */
    s[1] = src_of("{\"migration\":{\"id\":3,\"position\":9999,"
                  "\"last_seq\":10000,\"caught_up\":false}}");
    assert_false(reshard_decide_may_freeze(s, 2, 3, 2000));   /* not caught up */
    s[1] = src_of("{\"status\":\"ok\"}");
    assert_false(reshard_decide_may_freeze(s, 2, 3, 2000));   /* not seen it yet */
    memset(&s[1], 0, sizeof s[1]);
    assert_false(reshard_decide_may_freeze(s, 2, 3, 2000));   /* did not answer */
}

static void test_may_switch_and_open(void **state)
{
    (void)state;
    reshard_src s[3];

    s[0] = src_of("{\"migration\":{\"id\":3,\"phase\":\"freeze\","
                  "\"drained\":true}}");
    s[1] = src_of("{\"migration\":{\"id\":3,\"phase\":\"freeze\","
                  "\"drained\":false}}");
    assert_false(reshard_decide_may_switch(s, 2, 3));
    s[1].drained = 1;
    assert_true(reshard_decide_may_switch(s, 2, 3));
    assert_false(reshard_decide_may_switch(s, 2, 2));

    s[0] = src_of("{\"migration\":{\"id\":3,\"phase\":\"switch\"}}");
    s[1] = src_of("{\"migration\":{\"id\":3,\"phase\":\"freeze\"}}");
    memset(&s[2], 0, sizeof s[2]); /* down: skipped */
    assert_false(reshard_decide_may_open(s, 3, 3));
    s[1] = src_of("{\"migration\":{\"id\":3,\"phase\":\"switch\"}}");
    assert_true(reshard_decide_may_open(s, 3, 3));
    s[1] = src_of("{\"status\":\"ok\"}"); /* answers, has not seen it */
    assert_false(reshard_decide_may_open(s, 3, 3));
    memset(s, 0, sizeof s);
    assert_false(reshard_decide_may_open(s, 3, 3)); /* none answered */
}

/* ---- the driver against fake stores ---- */

typedef struct fake_store {
    httpd_t *srv;
    pthread_mutex_t mu;
    char health[512];             /* the /health body */
    _Atomic int notified;         /* POST /internal/topology-changed seen */
} fake_store;

static void fake_handle(httpd_req *r, void *app)
{
    fake_store *f = app;
    const char *path = httpd_path(r);

    if (strcmp(path, "/health") == 0) {
        char body[512];
        pthread_mutex_lock(&f->mu);
        snprintf(body, sizeof body, "%s", f->health);
        pthread_mutex_unlock(&f->mu);
        httpd_respond(r, 200, "application/json", body, strlen(body), NULL);
        return;
    }
    if (strcmp(path, "/internal/topology-changed") == 0) {
        atomic_fetch_add(&f->notified, 1);
        httpd_respond(r, 200, "application/json", "{}", 2, NULL);
        return;
    }
    httpd_error(r, 404, "not_found", "no route");
}

static void fake_set(fake_store *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fake_set(fake_store *f, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&f->mu);
    va_start(ap, fmt);
    vsnprintf(f->health, sizeof f->health, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&f->mu);
}

#define NFAKE 3 /* shards 0, 1 and the one added (2), one replica each */

typedef struct drive {
    fixture fx;
    cluster_t cl;
    fake_store st[NFAKE];
    reshard_t *rs;
} drive;

/* A 2-shard, 1-replica external cluster (controller.supervise=0) with fake
 * stores on the ports of shards 0, 1 and 2. */
static void drive_up(drive *d)
{
    memset(d, 0, sizeof *d);
    for (int attempt = 0; attempt < 50; attempt++) {
        int ok = 1;
        fixture_up(&d->fx, 2);
        d->fx.cfg.replicas = 1;
        d->fx.cfg.supervise = 0;
        d->fx.cfg.health_interval_ms = 100;
        d->fx.cfg.base_port = 21000 + (int)((unsigned)rand() % 1000) * 10;
        for (int s = 0; s < NFAKE && ok; s++) {
            httpd_opts o = {.bind = "127.0.0.1",
                            .port = config_store_port(&d->fx.cfg,
                                                      (unsigned)s, 0),
                            .threads = 2};
            pthread_mutex_init(&d->st[s].mu, NULL);
            fake_set(&d->st[s], "{\"status\":\"ok\",\"keys\":1000}");
            d->st[s].srv = httpd_start(&o, fake_handle, &d->st[s]);
            ok = d->st[s].srv != NULL;
        }
        if (ok) {
            init(&d->cl, &d->fx.cfg);
            d->rs = reshard_new(&d->cl, NULL);
            assert_non_null(d->rs);
            return;
        }
        for (int s = 0; s < NFAKE; s++)
            if (d->st[s].srv)
                httpd_stop(d->st[s].srv);
        fixture_down(&d->fx);
        memset(d, 0, sizeof *d);
    }
    fail_msg("no free ports for the fake stores");
}

static void drive_down(drive *d)
{
    reshard_free(d->rs);
    for (int s = 0; s < NFAKE; s++)
        httpd_stop(d->st[s].srv);
    cluster_free(&d->cl);
    fixture_down(&d->fx);
}

/* One health round: probe every node, then one driver step. */
static enum cluster_mig_phase drive_tick(drive *d)
{
    enum cluster_mig_phase p;

    probe_nodes(&d->cl, 500);
    reshard_tick(d->rs, sup_now_ms());
    pthread_mutex_lock(&d->cl.mu);
    p = d->cl.mig.phase;
    pthread_mutex_unlock(&d->cl.mu);
    return p;
}

static void drive_mig(drive *d, int s, unsigned id, const char *phase,
                      int caught_up, unsigned lag, int drained)
{
    fake_set(&d->st[s],
             "{\"status\":\"ok\",\"keys\":1000,\"migration\":{\"id\":%u,"
             "\"phase\":\"%s\",\"source\":true,\"position\":%u,"
             "\"last_seq\":10000,\"caught_up\":%s,\"scanned\":500,"
             "\"sent\":300,\"sent_bytes\":30000,\"drained\":%s}}",
             id, phase, 10000 - lag, caught_up ? "true" : "false",
             drained ? "true" : "false");
}

/* The published topology; lib/topo parses it (what stores, queue and api
 * do) with the controller's phase. */
static cJSON *drive_topo(drive *d)
{
    cJSON *t = cluster_publish_topology(&d->cl);
    char *text = cJSON_PrintUnformatted(t), err[256];
    topo_t *parsed = topo_parse(text, strlen(text), err, sizeof err);
    enum cluster_mig_phase p = d->cl.mig.phase;

    if (parsed == NULL)
        fail_msg("topo_parse: %s: %s", err, text);
    assert_int_equal(parsed->phase,
                     p == CLUSTER_MIG_COPY     ? TOPO_PHASE_COPY
                     : p == CLUSTER_MIG_FREEZE ? TOPO_PHASE_FREEZE
                     : p == CLUSTER_MIG_SWITCH ? TOPO_PHASE_SWITCH
                                               : TOPO_PHASE_NONE);
    assert_int_equal(parsed->migration_id,
                     parsed->phase == TOPO_PHASE_NONE ? 0 : d->cl.mig.id);
    topo_put(parsed);
    free(text);
    return t;
}

static int ids_equal(const cJSON *a, const uint32_t *ids, size_t n)
{
    if (cJSON_GetArraySize(a) != (int)n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (cJSON_GetArrayItem(a, (int)i)->valueint != (int)ids[i])
            return 0;
    return 1;
}

static void test_driver_add_then_remove(void **state)
{
    (void)state;
    drive d;
    char body[256];
    int status = 0;
    cJSON *out, *t;
    uint64_t epoch;

    drive_up(&d);
    snprintf(body, sizeof body, "{\"primary\":\"http://127.0.0.1:%u\"}",
             (unsigned)config_store_port(&d.fx.cfg, 2, 0));
    /* external: an empty body is refused, as is a URL the cluster has */
    out = reshard_add(d.rs, "", 0, &status);
    assert_int_equal(status, 400);
    cJSON_Delete(out);
    out = reshard_add(d.rs, "{\"primary\":\"http://127.0.0.1:1\","
                            "\"secondaries\":[\"http://127.0.0.1:2\"]}",
                      58, &status);
    assert_int_equal(status, 400); /* 2 stores, cluster.replicas is 1 */
    cJSON_Delete(out);

    epoch = d.cl.epoch;
    out = reshard_add(d.rs, body, strlen(body), &status);
    assert_int_equal(status, 202);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(out,
                                                                "migration"),
                                            "phase")->valuestring,
                        "prepare");
    cJSON_Delete(out);
    assert_true(d.cl.epoch > epoch);
    assert_int_equal(atomic_load(&d.st[0].notified), 1);
    t = drive_topo(&d); /* prepare: shard 2 listed, not in the ring */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "shards")), 3);
    assert_true(ids_equal(cJSON_GetObjectItem(t, "ring"), (uint32_t[]){0, 1}, 2));
    cJSON_Delete(t);
    out = reshard_add(d.rs, body, strlen(body), &status);
    assert_int_equal(status, 409);
    cJSON_Delete(out);

    /* prepare -> copy: the new store answers */
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_COPY);
    t = drive_topo(&d);
    assert_true(ids_equal(cJSON_GetObjectItem(t, "ring"), (uint32_t[]){0, 1}, 2));
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(t, "migration"),
                                            "phase")->valuestring, "copy");
    cJSON_Delete(t);
    /* copy: one source not caught up, then 3000 behind: no freeze */
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_COPY);
    drive_mig(&d, 0, 1, "copy", 1, 10, 0);
    drive_mig(&d, 1, 1, "copy", 0, 10, 0);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_COPY);
    drive_mig(&d, 1, 1, "copy", 1, 3000, 0);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_COPY);
    drive_mig(&d, 1, 1, "copy", 1, 1500, 0);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_FREEZE);
    /* the progress of the sources is in GET /rebalance */
    drive_tick(&d);
    out = reshard_rebalance(d.rs);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(out, "sources")), 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(out, "totals"),
                                         "sent")->valueint, 600);
    assert_int_equal(cJSON_GetObjectItem(out, "predicted_keys")->valueint,
                     (int)(2000 * d.cl.mig.share));
    cJSON_Delete(out);
    /* freeze -> switch once both drained */
    drive_mig(&d, 0, 1, "freeze", 1, 0, 1);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_FREEZE);
    drive_mig(&d, 1, 1, "freeze", 1, 0, 1);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_SWITCH);
    t = drive_topo(&d);
    assert_true(ids_equal(cJSON_GetObjectItem(t, "ring"),
                          (uint32_t[]){0, 1, 2}, 3));
    cJSON_Delete(t);
    /* switch -> open once every replica of the sources shows it */
    drive_mig(&d, 0, 1, "switch", 1, 0, 1);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_SWITCH);
    drive_mig(&d, 1, 1, "switch", 1, 0, 1);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_DONE);
    t = drive_topo(&d);
    assert_null(cJSON_GetObjectItem(t, "ring"));
    assert_null(cJSON_GetObjectItem(t, "migration"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "shards")), 3);
    cJSON_Delete(t);
    /* one notice a phase: prepare, copy, freeze, switch, open */
    assert_int_equal(atomic_load(&d.st[2].notified), 5);

    /* remove shard 0: the only source is shard 0 */
    out = reshard_remove(d.rs, 0, &status);
    assert_int_equal(status, 202);
    cJSON_Delete(out);
    out = reshard_remove(d.rs, 1, &status);
    assert_int_equal(status, 409);
    cJSON_Delete(out);
    drive_mig(&d, 1, 1, "copy", 0, 9000, 0); /* not a source: ignored */
    drive_mig(&d, 0, 2, "copy", 1, 0, 0);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_FREEZE);
    drive_mig(&d, 0, 2, "freeze", 1, 0, 1);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_SWITCH);
    t = drive_topo(&d);
    assert_true(ids_equal(cJSON_GetObjectItem(t, "ring"), (uint32_t[]){1, 2}, 2));
    cJSON_Delete(t);
    drive_mig(&d, 0, 2, "switch", 1, 0, 1);
    assert_int_equal(drive_tick(&d), CLUSTER_MIG_DONE);
    t = drive_topo(&d);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(t, "shards")), 2);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(t, "shards"), 0)
                         ->child->valueint, 1); /* "id" of the first: 1 */
    cJSON_Delete(t);
    assert_int_equal(cluster_shard_count(&d.cl), 2);
    /* gone for good: 404, and the state file agrees */
    out = reshard_remove(d.rs, 0, &status);
    assert_int_equal(status, 404);
    cJSON_Delete(out);
    {
        cluster_t again;
        char err[512];
        init(&again, &d.fx.cfg);
        assert_int_equal(cluster_state_load(&again, err, sizeof err), 0);
        assert_false(again.shards[0].present);
        assert_true(again.shards[1].present && again.shards[2].present);
        assert_int_equal(again.shards[2].nurls, 1);
        assert_int_equal(again.mig.id, 2);
        assert_int_equal(again.mig.phase, CLUSTER_MIG_DONE);
        assert_int_equal(again.next_shard_id, 3);
        cluster_free(&again);
    }
    drive_down(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_round_trip_with_ids_and_migration),
        cmocka_unit_test(test_old_state_file_without_ids),
        cmocka_unit_test(test_ring_ids_by_phase),
        cmocka_unit_test(test_parse_health),
        cmocka_unit_test(test_may_freeze),
        cmocka_unit_test(test_may_switch_and_open),
        cmocka_unit_test(test_driver_add_then_remove),
    };
    httpc_global_init();
    log_init("test_reshard", LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
