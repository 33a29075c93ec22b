#include "heartbeat.h"

#include "clock.h"
#include "httpc.h"
#include "kvhdr.h"
#include "log.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HB_TIMEOUT_MS 1000L

struct hb {
    char url[512];            /* <controller>/heartbeat */
    char node_id[64];
    char self_url[256];
    char auth[KVHDR_AUTH_MAX];
    uint64_t incarnation;
    uint64_t interval_us, lease_us;
    sdb *db;
    _Atomic(role_t *) role;
    _Atomic uint64_t lease_from_us;  /* send time of the last "ok", 0 none */
    _Atomic int retired;
    _Atomic uint64_t replaced_by;
    unsigned fails;

    pthread_t thr;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
};

/* The store's position, as /health reports it. */
static uint64_t hb_position(hb_t *h)
{
    if (sdb_resyncing(h->db))
        return 0;
    if (sdb_get_role(h->db) == SDB_ROLE_PRIMARY)
        return sdb_last_seq(h->db);
    return sdb_applied_seq(h->db);
}

static void hb_retire(hb_t *h, uint64_t by)
{
    if (atomic_exchange(&h->retired, 1))
        return;
    atomic_store(&h->replaced_by, by);
    log_warn("fenced: replaced by incarnation %" PRIu64 " (this is %s "
             "incarnation %" PRIu64 " at %s, applied seq %" PRIu64 "); "
             "stopping", by, h->node_id, h->incarnation, h->self_url,
             hb_position(h));
    /* The normal shutdown path: main's signal wait returns, exit 0. */
    kill(getpid(), SIGTERM);
}

/* One heartbeat. 0 when the controller answered. */
static int hb_send(hb_t *h)
{
    char body[768];
    const char *hdrs[3] = {"Content-Type: application/json", NULL, NULL};
    role_t *role = atomic_load(&h->role);
    httpc_req req = {0};
    httpc_resp resp = {0};
    uint64_t sent = clock_mono_us();
    int n, rc = -1;

    n = snprintf(body, sizeof body,
                 "{\"node_id\":\"%s\",\"incarnation\":%" PRIu64
                 ",\"applied_seq\":%" PRIu64 ",\"state\":\"%s\","
                 "\"url\":\"%s\",\"pid\":%ld}",
                 h->node_id, h->incarnation, hb_position(h),
                 role ? role_state(role) : "starting", h->self_url,
                 (long)getpid());
    if (h->auth[0])
        hdrs[1] = h->auth;
    req.method = "POST";
    req.url = h->url;
    req.body = body;
    req.body_len = (size_t)n;
    req.headers = hdrs;
    req.timeout_ms = HB_TIMEOUT_MS;
    if (httpc_do(&req, &resp) == 0 && resp.status == 200) {
        cJSON *j = cJSON_ParseWithLength(resp.body, resp.len);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
        if (cJSON_IsString(st) && strcmp(st->valuestring, "retired") == 0) {
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "incarnation");
            hb_retire(h, cJSON_IsNumber(k) && k->valuedouble > 0
                             ? (uint64_t)k->valuedouble
                             : 0);
            rc = 0;
        } else if (cJSON_IsString(st) && strcmp(st->valuestring, "ok") == 0) {
            if (!atomic_load(&h->retired))
                atomic_store(&h->lease_from_us, sent);
            rc = 0;
        }
        cJSON_Delete(j);
    }
    if (rc == 0) {
        if (h->fails >= 4)
            log_info("heartbeat: the controller answers again");
        h->fails = 0;
    } else if (h->fails++ % 20 == 3) {
        log_warn("heartbeat: %s: %s", h->url,
                 resp.status ? "unexpected answer" : resp.error);
    }
    httpc_resp_free(&resp);
    return rc;
}

static void *hb_main(void *arg)
{
    hb_t *h = arg;
    uint64_t next = clock_mono_us() + h->interval_us;

    pthread_mutex_lock(&h->mu);
    while (!h->stopping && !atomic_load(&h->retired)) {
        uint64_t now = clock_mono_us();
        if (now < next) {
            clock_cond_wait_us(&h->cv, &h->mu, next - now);
            continue;
        }
        /* A fixed rate; after a stall (SIGSTOP) the next one goes at once. */
        next += h->interval_us;
        if (next < now)
            next = now + h->interval_us;
        pthread_mutex_unlock(&h->mu);
        hb_send(h);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    httpc_thread_done();
    return NULL;
}

hb_t *hb_start(const hb_opts *o)
{
    hb_t *h = calloc(1, sizeof *h);

    if (h == NULL)
        return NULL;
    snprintf(h->url, sizeof h->url, "%s/heartbeat", o->controller);
    snprintf(h->node_id, sizeof h->node_id, "%s", o->node_id);
    snprintf(h->self_url, sizeof h->self_url, "%s", o->self_url);
    kvhdr_auth(h->auth, sizeof h->auth, o->token);
    h->incarnation = o->incarnation;
    h->interval_us = (uint64_t)(o->interval_ms > 0 ? o->interval_ms : 500) *
                     1000u;
    h->lease_us = (uint64_t)(o->lease_ms > 0 ? o->lease_ms : 0) * 1000u;
    h->db = o->db;
    atomic_init(&h->role, NULL);
    atomic_init(&h->lease_from_us, 0);
    atomic_init(&h->retired, 0);
    atomic_init(&h->replaced_by, 0);
    pthread_mutex_init(&h->mu, NULL);
    clock_cond_init(&h->cv);
    log_info("heartbeat: %s incarnation %" PRIu64 " reports to %s every %ld "
             "ms, lease %ld ms", h->node_id, h->incarnation, h->url,
             (long)(h->interval_us / 1000u), (long)(h->lease_us / 1000u));
    if (hb_send(h) != 0)
        log_warn("heartbeat: the first one got no answer from %s; the lease "
                 "waits for the next", h->url);
    if (pthread_create(&h->thr, NULL, hb_main, h) != 0) {
        log_error("heartbeat: cannot start the thread");
        hb_stop(h);
        return NULL;
    }
    h->started = 1;
    return h;
}

void hb_set_role(hb_t *h, role_t *role)
{
    if (h)
        atomic_store(&h->role, role);
}

void hb_stop(hb_t *h)
{
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    h->stopping = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
    if (h->started)
        pthread_join(h->thr, NULL);
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int hb_retired(const hb_t *h)
{
    return h && atomic_load(&h->retired);
}

int hb_may_apply(void *arg)
{
    hb_t *h = arg;
    uint64_t from;

    if (h == NULL)
        return 1;
    if (atomic_load(&h->retired))
        return 0;
    if (h->lease_us == 0)
        return 1;
    from = atomic_load(&h->lease_from_us);
    return from != 0 && clock_mono_us() - from < h->lease_us;
}

const char *hb_lease_state(hb_t *h)
{
    if (h == NULL)
        return "none";
    if (atomic_load(&h->retired))
        return "retired";
    if (h->lease_us == 0)
        return "none";
    return hb_may_apply(h) ? "held" : "expired";
}
