/* Unit tests for the api's quorum read helpers (api/quorum) and the
 * background read repair (api/repair): read-set order per policy, what
 * counts as an answer and its version, the epoch of a 409 stale_epoch, and
 * repairs reaching a fake replica as one wire op (PUT or DEL) with the
 * epoch and token, and being dropped when the queue is full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "../../api/quorum.h"
#include "../../api/repair.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "quorum_pick.h"
#include "wire.h"

static void test_order_ordered(void **state)
{
    (void)state;
    size_t order[5];
    uint64_t rng = 1;

    quorum_order(5, 1, &rng, order);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(order[i], 4 - i); /* the last R first */
}

static void test_order_any_is_a_varied_permutation(void **state)
{
    (void)state;
    uint64_t rng = 0x1234567ULL;
    unsigned first[4] = {0};

    for (int t = 0; t < 400; t++) {
        size_t order[4];
        int seen[4] = {0};
        quorum_order(4, 0, &rng, order);
        for (size_t i = 0; i < 4; i++) {
            assert_true(order[i] < 4);
            assert_int_equal(seen[order[i]], 0);
            seen[order[i]] = 1;
        }
        first[order[0]]++;
    }
    for (int i = 0; i < 4; i++)
        assert_true(first[i] > 50); /* every secondary leads sometimes */
}

static httpc_resp fake_resp(long status, const char *headers, const char *body)
{
    httpc_resp r;
    memset(&r, 0, sizeof r);
    r.status = status;
    r.headers = (char *)headers;
    r.body = (char *)body;
    r.len = body ? strlen(body) : 0;
    return r;
}

static void test_classify(void **state)
{
    (void)state;
    uint64_t v;
    int tomb;
    httpc_resp ok = fake_resp(200, "HTTP/1.1 200 OK\r\nX-KV-Version: 77\r\n\r\n",
                              "value");
    httpc_resp gone = fake_resp(404, "HTTP/1.1 404 Not Found\r\nx-kv-version: 80\r\n\r\n",
                                "{\"error\":\"deleted\"}");
    httpc_resp missing = fake_resp(404, "HTTP/1.1 404 Not Found\r\n\r\n",
                                   "{\"error\":\"not_found\"}");
    httpc_resp down = fake_resp(0, NULL, NULL);
    httpc_resp err = fake_resp(503, "HTTP/1.1 503 x\r\n\r\n", "{}");
    httpc_resp fenced = fake_resp(409, "HTTP/1.1 409 x\r\n\r\n",
                                  "{\"error\":\"stale_epoch\"}");

    assert_int_equal(quorum_classify(&ok, &v, &tomb), 1);
    assert_int_equal(v, 77);
    assert_int_equal(tomb, 0);
    assert_int_equal(quorum_classify(&gone, &v, &tomb), 1);
    assert_int_equal(v, 80);
    assert_int_equal(tomb, 1);
    assert_int_equal(quorum_classify(&missing, &v, &tomb), 1);
    assert_int_equal(v, 0);
    assert_int_equal(tomb, 0);
    assert_int_equal(quorum_classify(&down, &v, &tomb), 0);
    assert_int_equal(quorum_classify(&err, &v, &tomb), 0);
    assert_int_equal(quorum_classify(&fenced, &v, &tomb), 0);
}

static void test_stale_epoch(void **state)
{
    (void)state;
    httpc_resp hdr = fake_resp(409, "HTTP/1.1 409 x\r\nX-KV-Epoch: 5\r\n\r\n",
                               "{\"error\":\"stale_epoch\",\"message\":\"m\"}");
    httpc_resp body = fake_resp(409, "HTTP/1.1 409 x\r\n\r\n",
                                "{\"error\":\"stale_epoch\",\"epoch\":9}");
    httpc_resp other = fake_resp(409, "HTTP/1.1 409 x\r\nX-KV-Epoch: 5\r\n\r\n",
                                 "{\"error\":\"not_integer\"}");
    httpc_resp ok = fake_resp(200, "HTTP/1.1 200 OK\r\nX-KV-Epoch: 5\r\n\r\n", "v");

    assert_int_equal(quorum_stale_epoch(&hdr), 5);
    assert_int_equal(quorum_stale_epoch(&body), 9);
    assert_int_equal(quorum_stale_epoch(&other), 0);
    assert_int_equal(quorum_stale_epoch(&ok), 0);
}

static void test_suspect_marks(void **state)
{
    (void)state;
    const char *a = "http://127.0.0.1:1/", *b = "http://127.0.0.1:2/";
    quorum_state *s = quorum_state_new();

    assert_false(quorum_suspect(s, a));
    quorum_mark(s, a, 0);
    assert_true(quorum_suspect(s, a));
    assert_false(quorum_suspect(s, b));
    quorum_mark(s, b, 1); /* an answer from another replica changes nothing */
    assert_true(quorum_suspect(s, a));
    quorum_mark(s, a, 1);
    assert_false(quorum_suspect(s, a));
    quorum_state_free(s);
}

/* ---- repair against a fake replica ---- */

typedef struct fake_replica {
    _Atomic int got;
    _Atomic int bad;            /* wrong epoch, token, route or framing */
    _Atomic int slow_ms;        /* sleep this long in each answer */
    wire_op last;
    char last_key[64], last_val[64];
} fake_replica;

static void replica_handle(httpd_req *r, void *app)
{
    fake_replica *f = app;
    size_t len, off = 0;
    const void *body = httpd_body(r, &len);
    const char *epoch = httpd_header(r, "X-KV-Epoch");
    const char *auth = httpd_header(r, "Authorization");
    wire_op op;
    wire_buf out = {0};
    wire_result res = {.status = 200};
    int ms = atomic_load(&f->slow_ms);

    if (ms > 0) {
        struct timespec ts = {0, ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (strcmp(httpd_path(r), "/internal/repair") != 0 ||
        !httpd_method_is(r, "POST") || epoch == NULL ||
        strcmp(epoch, "7") != 0 || auth == NULL ||
        strcmp(auth, "Bearer tok") != 0 ||
        wire_next_op(body, len, &off, &op) != 1 || off != len) {
        atomic_fetch_add(&f->bad, 1);
        httpd_error(r, 400, "bad", "bad repair");
        return;
    }
    f->last = op;
    snprintf(f->last_key, sizeof f->last_key, "%.*s", (int)op.key_len, op.key);
    snprintf(f->last_val, sizeof f->last_val, "%.*s", (int)op.val_len,
             op.val_len ? op.val : "");
    f->last.key = f->last.val = NULL;
    res.version = op.version;
    wire_put_result(&out, &res);
    atomic_fetch_add(&f->got, 1);
    httpd_respond(r, 200, "application/octet-stream", out.data, out.len, NULL);
    wire_buf_free(&out);
}

static void test_repair_sends_wire_ops(void **state)
{
    (void)state;
    fake_replica f;
    httpd_opts o = {.bind = "127.0.0.1", .port = 0, .threads = 2};
    httpd_t *srv;
    char url[64];
    repair_opts ro = {.max_items = 16, .timeout_ms = 2000,
                      .auth = "Authorization: Bearer tok"};
    repair_t *q;

    memset(&f, 0, sizeof f);
    srv = httpd_start(&o, replica_handle, &f);
    assert_non_null(srv);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", httpd_port(srv));
    q = repair_start(&ro);
    assert_non_null(q);

    assert_int_equal(repair_push(q, url, 7, 0, "k1", 2, "newest", 6, 1000,
                                 1796083200123ULL), 0);
    assert_int_equal(repair_flush(q, 5000), 0);
    assert_int_equal(atomic_load(&f.got), 1);
    assert_int_equal(f.last.op, WIRE_PUT);
    assert_int_equal(f.last.version, 1000);
    /* the winner's TTL goes with the repair */
    assert_int_equal(f.last.flags, WIRE_F_EXPIRES);
    assert_int_equal(f.last.expires_at, 1796083200123ULL);
    assert_string_equal(f.last_key, "k1");
    assert_string_equal(f.last_val, "newest");

    assert_int_equal(repair_push(q, url, 7, 1, "k2", 2, "ignored", 7, 2000,
                                 1796083200123ULL), 0);
    assert_int_equal(repair_flush(q, 5000), 0);
    assert_int_equal(atomic_load(&f.got), 2);
    assert_int_equal(f.last.op, WIRE_DEL);
    assert_int_equal(f.last.version, 2000);
    assert_int_equal(f.last.val_len, 0);
    assert_int_equal(f.last.flags, 0); /* a tombstone has no expiry */
    assert_string_equal(f.last_key, "k2");
    assert_int_equal(atomic_load(&f.bad), 0);

    repair_stop(q);
    httpd_stop(srv);
}

static void test_repair_drops_when_full(void **state)
{
    (void)state;
    fake_replica f;
    httpd_opts o = {.bind = "127.0.0.1", .port = 0, .threads = 2};
    httpd_t *srv;
    char url[64];
    repair_opts ro = {.max_items = 2, .timeout_ms = 2000,
                      .auth = "Authorization: Bearer tok"};
    repair_t *q;
    int dropped = 0;

    memset(&f, 0, sizeof f);
    atomic_store(&f.slow_ms, 300);
    srv = httpd_start(&o, replica_handle, &f);
    assert_non_null(srv);
    snprintf(url, sizeof url, "http://127.0.0.1:%u", httpd_port(srv));
    q = repair_start(&ro);
    for (int i = 0; i < 6; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        if (repair_push(q, url, 7, 0, key, strlen(key), "v", 1,
                        (uint64_t)(100 + i), 0) < 0)
            dropped++;
    }
    /* at most 2 wait plus (maybe) one in flight */
    assert_true(dropped >= 3 && dropped <= 4);
    assert_int_equal(repair_flush(q, 10000), 0);
    assert_int_equal(atomic_load(&f.got), 6 - dropped);
    assert_int_equal(atomic_load(&f.bad), 0);
    repair_stop(q);
    httpd_stop(srv);
}

/* The one "newest version wins" rule (lib/quorum_pick.h) that both the
 * api and the lab coordinator read with. */
static void test_pick_newest_wins(void **state)
{
    (void)state;
    quorum_pick_answer a[4] = {
        {.candidate = true, .value = true, .version = 3},
        {.candidate = false, .value = true, .version = 9}, /* did not answer */
        {.candidate = true, .value = false, .version = 5}, /* a tombstone */
        {.candidate = true, .value = true, .version = 5},
    };

    assert_int_equal(quorum_pick_winner(a, 4), 3); /* a value beats a tie */
    assert_true(quorum_pick_is_stale(&a[0], &a[3]));
    assert_false(quorum_pick_is_stale(&a[1], &a[3]));
    assert_false(quorum_pick_is_stale(&a[2], &a[3]));
    assert_int_equal(quorum_pick_winner(a, 3), 2);
    assert_int_equal(quorum_pick_winner(&a[1], 1), -1);
    /* No version anywhere: a value still beats a miss; nobody is stale. */
    quorum_pick_answer z[2] = {{.candidate = true}, {.candidate = true, .value = true}};
    assert_int_equal(quorum_pick_winner(z, 2), 1);
    assert_false(quorum_pick_is_stale(&z[0], &z[1]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_ordered),
        cmocka_unit_test(test_order_any_is_a_varied_permutation),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_stale_epoch),
        cmocka_unit_test(test_suspect_marks),
        cmocka_unit_test(test_pick_newest_wins),
        cmocka_unit_test(test_repair_sends_wire_ops),
        cmocka_unit_test(test_repair_drops_when_full),
    };
    int rc;

    log_init("test_quorum", LOG_WARN);
    httpc_global_init();
    repair_metrics_register();
    rc = cmocka_run_group_tests_name("quorum", tests, NULL, NULL);
    httpc_thread_done();
    return rc;
}
