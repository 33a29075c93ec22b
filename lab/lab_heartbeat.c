/* lab_heartbeat: see lab_heartbeat.h. */
#include "lab_heartbeat.h"

#include "clock.h"
#include "httpc.h"
#include "json_whole.h"
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

#define LAB_HEARTBEAT_TIMEOUT_MS 1000L

struct lab_heartbeat {
    char url[512];            /* <controller>/heartbeat */
    char node_id[64];
    char self_url[256];
    char auth[KVHDR_AUTH_MAX];
    uint64_t incarnation;
    uint64_t interval_us, lease_us;
    lab_heartbeat_position_fn position;
    void *position_arg;
    _Atomic(lab_heartbeat_state_fn) state;
    _Atomic(void *) state_arg;    /* set after state: non-NULL = both set */
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

static uint64_t lab_heartbeat_position(lab_heartbeat_t *h)
{
    return h->position ? h->position(h->position_arg) : 0;
}

static const char *lab_heartbeat_state(lab_heartbeat_t *h)
{
    void *arg = atomic_load(&h->state_arg);
    return arg ? atomic_load(&h->state)(arg) : "starting";
}

static void lab_heartbeat_retire(lab_heartbeat_t *h, uint64_t by)
{
    if (atomic_exchange(&h->retired, 1))
        return;
    atomic_store(&h->replaced_by, by);
    log_warn("fenced: replaced by incarnation %" PRIu64 " (this is %s "
             "incarnation %" PRIu64 " at %s, applied seq %" PRIu64 "); "
             "stopping", by, h->node_id, h->incarnation, h->self_url,
             lab_heartbeat_position(h));
    /* The normal shutdown path: main's signal wait returns, exit 0. */
    kill(getpid(), SIGTERM);
}

/* One heartbeat. 0 when the controller answered. */
static int lab_heartbeat_send(lab_heartbeat_t *h)
{
    char body[768];
    const char *hdrs[3] = {"Content-Type: application/json", NULL, NULL};
    httpc_req req = {0};
    httpc_resp resp = {0};
    uint64_t sent = clock_mono_us();
    int n, rc = -1;

    n = snprintf(body, sizeof body,
                 "{\"node_id\":\"%s\",\"incarnation\":%" PRIu64
                 ",\"applied_seq\":%" PRIu64 ",\"state\":\"%s\","
                 "\"url\":\"%s\",\"pid\":%ld}",
                 h->node_id, h->incarnation, lab_heartbeat_position(h),
                 lab_heartbeat_state(h), h->self_url,
                 (long)getpid());
    if (h->auth[0])
        hdrs[1] = h->auth;
    req.method = "POST";
    req.url = h->url;
    req.body = body;
    req.body_len = (size_t)n;
    req.headers = hdrs;
    req.timeout_ms = LAB_HEARTBEAT_TIMEOUT_MS;
    if (httpc_do(&req, &resp) == 0 && resp.status == 200) {
        cJSON *j = json_whole_parse(resp.body, resp.len, NULL);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
        if (cJSON_IsString(st) && strcmp(st->valuestring, "retired") == 0) {
            const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "incarnation");
            lab_heartbeat_retire(h, cJSON_IsNumber(k) && k->valuedouble > 0
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

static void *lab_heartbeat_main(void *arg)
{
    lab_heartbeat_t *h = arg;
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
        lab_heartbeat_send(h);
        pthread_mutex_lock(&h->mu);
    }
    pthread_mutex_unlock(&h->mu);
    httpc_thread_done();
    return NULL;
}

lab_heartbeat_t *lab_heartbeat_start(const lab_heartbeat_opts *o)
{
    lab_heartbeat_t *h = calloc(1, sizeof *h);

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
    h->position = o->position;
    h->position_arg = o->position_arg;
    atomic_init(&h->state, NULL);
    atomic_init(&h->state_arg, NULL);
    atomic_init(&h->lease_from_us, 0);
    atomic_init(&h->retired, 0);
    atomic_init(&h->replaced_by, 0);
    pthread_mutex_init(&h->mu, NULL);
    clock_cond_init(&h->cv);
    log_info("heartbeat: %s incarnation %" PRIu64 " reports to %s every %ld "
             "ms, lease %ld ms", h->node_id, h->incarnation, h->url,
             (long)(h->interval_us / 1000u), (long)(h->lease_us / 1000u));
    if (lab_heartbeat_send(h) != 0)
        log_warn("heartbeat: the first one got no answer from %s; the lease "
                 "waits for the next", h->url);
    if (pthread_create(&h->thr, NULL, lab_heartbeat_main, h) != 0) {
        log_error("heartbeat: cannot start the thread");
        lab_heartbeat_stop(h);
        return NULL;
    }
    h->started = 1;
    return h;
}

void lab_heartbeat_set_state(lab_heartbeat_t *h, lab_heartbeat_state_fn state,
                             void *state_arg)
{
    if (h) {
        atomic_store(&h->state, state);
        atomic_store(&h->state_arg, state_arg);
    }
}

void lab_heartbeat_stop(lab_heartbeat_t *h)
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

int lab_heartbeat_retired(const lab_heartbeat_t *h)
{
    return h && atomic_load(&h->retired);
}

int lab_heartbeat_may_apply(void *arg)
{
    lab_heartbeat_t *h = arg;
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

const char *lab_heartbeat_lease_state(lab_heartbeat_t *h)
{
    if (h == NULL)
        return "none";
    if (atomic_load(&h->retired))
        return "retired";
    if (h->lease_us == 0)
        return "none";
    return lab_heartbeat_may_apply(h) ? "held" : "expired";
}
