#include "queue_http.h"

#include "hlc.h"
#include "kvhttp.h"
#include "num.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *queue_http_job_reply(const char *key, const char *status,
                                   const jobid *job, uint64_t version)
{
    char id[JOBID_TEXT + 1];
    cJSON *o = cJSON_CreateObject();

    jobid_format(job, id);
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddStringToObject(o, "job", id);
    cJSON_AddNumberToObject(o, "version", (double)version);
    return o;
}

/* The key of a waiting request, kept with it until it is answered. */
void queue_http_notify(void *waiter, const wq_outcome *o)
{
    httpd_req *r = waiter;
    const char *key = httpd_user(r);
    cJSON *j;

    if (o->state == WQ_FAILED) {
        char id[JOBID_TEXT + 1];
        jobid_format(&o->job, id);
        j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "error", o->error);
        cJSON_AddStringToObject(j, "message", o->message);
        cJSON_AddStringToObject(j, "job", id);
        if (o->status == 412)
            cJSON_AddNumberToObject(j, "current_version", (double)o->current);
        httpd_respond_json(r, o->status, j, NULL);
        return;
    }
    j = queue_http_job_reply(key,
                             o->state == WQ_APPLIED      ? "applied"
                             : o->state == WQ_SUPERSEDED ? "superseded"
                                                         : "queued",
                             &o->job, o->version);
    if (o->state == WQ_APPLIED && httpd_method_is(r, "POST"))
        cJSON_AddNumberToObject(j, "value", (double)o->number);
    if (o->state == WQ_SUPERSEDED)
        cJSON_AddNumberToObject(j, "current_version", (double)o->current);
    httpd_respond_json(r, o->state == WQ_QUEUED ? 202 : 200, j, NULL);
}

/* The admissions of this worker's current pass. They are journaled
 * together when the pass ends (queue_http_flush, httpd's on_pass): one
 * commit for all of them, and no thread blocked waiting for its own. */
#define QUEUE_HTTP_PASS_MAX 256
static __thread httpd_req *queue_http_pass_req[QUEUE_HTTP_PASS_MAX];
static __thread wq_admission queue_http_pass[QUEUE_HTTP_PASS_MAX];
static __thread size_t queue_http_npass;

static void queue_http_answer(httpd_req *r, const wq_admission *ad)
{
    const char *key = httpd_user(r);

    if (ad->rc == WQ_OK) {
        if (ad->waiter == NULL)
            httpd_respond_json(r, 202,
                               queue_http_job_reply(key, "queued", &ad->job,
                                                    ad->version),
                               NULL);
        return; /* a waiter hears from queue_http_notify */
    }
    if (ad->rc == WQ_FULL) {
        static const char *const h[] = {"Retry-After: 1", NULL};
        httpd_error_h(r, 429, h, "queue_full",
                      "the %s queue is full; retry shortly", ad->full);
    } else if (ad->rc == WQ_JOURNAL) {
        httpd_error(r, 507, "journal_full",
                    "the queue could not journal the write (disk or map full)");
    } else {
        static const char *const h[] = {"Retry-After: 1", NULL};
        httpd_error_h(r, 503, h, "unavailable", "%s",
                      ad->rc == WQ_NO_TOPOLOGY ? "the queue has no topology yet"
                      : ad->rc == WQ_STOPPING  ? "the queue is shutting down"
                      : ad->rc == WQ_NO_RANDOM ? "no random bytes for a job id"
                                               : "out of memory");
    }
}

void queue_http_flush(void *app)
{
    queue_http_app *a = app;
    size_t n = queue_http_npass;

    if (n == 0)
        return;
    queue_http_npass = 0;
    wq_admit_many(a->wq, queue_http_pass, n);
    for (size_t i = 0; i < n; i++)
        queue_http_answer(queue_http_pass_req[i], &queue_http_pass[i]);
}

static void queue_http_write(httpd_req *r, queue_http_app *a, uint8_t op)
{
    char *key;
    size_t klen, vlen = 0;
    const void *val = NULL;
    int64_t delta = 0;
    uint64_t wait_ms, if_match, ttl_s = 0, expires_at;
    uint8_t cond;

    if (kvhttp_condition(r, &cond, &if_match) != 0 ||
        (op != WIRE_DEL && kvhttp_ttl(r, &ttl_s) != 0))
        return;
    /* A TTL counts from admission: its expiry is absolute from here on. */
    expires_at = ttl_s ? hlc_wall_us() / 1000u + ttl_s * 1000u : 0;
    if (kvhttp_key(r, 2, (size_t)a->cfg->max_key_bytes, &key, &klen))
        return;
    if (op == WIRE_PUT) {
        val = httpd_body(r, &vlen);
        if (vlen > (size_t)a->cfg->max_value_bytes) {
            free(key);
            httpd_error(r, 413, "value_too_large", "values are at most %lld bytes",
                        (long long)a->cfg->max_value_bytes);
            return;
        }
    } else if (op == WIRE_INCR) {
        const char *by = httpd_query(r, "by");
        if (by == NULL)
            delta = 1;
        else if (num_parse_i64(by, &delta)) {
            free(key);
            httpd_error(r, 400, "bad_increment", "by must be an integer");
            return;
        }
    }
    if (kvhttp_wait_ms(r, (uint64_t)a->cfg->wait_max_ms, &wait_ms) != 0) {
        free(key);
        return;
    }
    /* The key lives with the request: the answer names it. The request is
     * answered when the pass ends (or, waiting, when its job does). */
    httpd_set_user(r, key, free);
    httpd_suspend(r);
    queue_http_pass_req[queue_http_npass] = r;
    queue_http_pass[queue_http_npass++] = (wq_admission){
        .w = {.op = op, .key = key, .klen = klen, .val = val, .vlen = vlen,
              .delta = delta, .cond = cond, .if_match = if_match,
              .expires_at = expires_at},
        .waiter = wait_ms ? r : NULL,
        .wait_ms = wait_ms};
    if (queue_http_npass == QUEUE_HTTP_PASS_MAX)
        queue_http_flush(a);
}

/* GET /jobs/{id}: the raw (still %-encoded) segment must be a job id as
 * the queue writes them (queue/jobid.h), so nothing else, escapes
 * included, is looked up or echoed. */
static void queue_http_job(httpd_req *r, queue_http_app *a)
{
    size_t len;
    const char *seg = httpd_path_seg(r, 1, &len);
    char txt[JOBID_TEXT + 1];
    jobid id;
    cJSON *j;

    if (jobid_parse(seg, len, &id) != 0) {
        httpd_error(r, 400, "bad_job_id",
                    "a job id is %d lowercase hex digits", JOBID_TEXT);
        return;
    }
    j = wq_json_job(a->wq, &id);
    if (j == NULL) {
        jobid_format(&id, txt);
        httpd_error(r, 404, "no_such_job", "no job %s (unknown, or forgotten)",
                    txt);
    } else {
        httpd_respond_json(r, 200, j, NULL);
    }
}

void queue_http_admit(httpd_req *r, void *app)
{
    queue_http_app *a = app;
    kvhttp_admit_internal(r, a->cfg->token);
}

void queue_http_handle(httpd_req *r, void *app)
{
    queue_http_app *a = app;
    const char *path = httpd_path(r);
    unsigned nseg = httpd_path_nsegs(r);

    if (strcmp(path, "/internal/topology-changed") == 0) {
        /* The controller after a failover: read the topology now. */
        if (!httpd_method_is(r, "POST")) {
            kvhttp_bad_method(r, "POST");
            return;
        }
        topo_watch_poke(a->topo);
        kvhttp_ok(r, NULL);
    } else if (strncmp(path, "/internal/kv/", 13) == 0 && (nseg == 3 || nseg == 4)) {
        size_t l;
        const char *last = httpd_path_seg(r, 3, &l);
        if (nseg == 4) {
            if (l != 4 || memcmp(last, "incr", 4) != 0)
                kvhttp_not_found(r);
            else if (!httpd_method_is(r, "POST"))
                kvhttp_bad_method(r, "POST");
            else
                queue_http_write(r, a, WIRE_INCR);
        } else if (httpd_method_is(r, "PUT")) {
            queue_http_write(r, a, WIRE_PUT);
        } else if (httpd_method_is(r, "DELETE")) {
            queue_http_write(r, a, WIRE_DEL);
        } else {
            kvhttp_bad_method(r, "PUT, DELETE");
        }
    } else if (strncmp(path, "/jobs/", 6) == 0 && nseg == 2) {
        if (httpd_method_is(r, "GET"))
            queue_http_job(r, a);
        else
            kvhttp_bad_method(r, "GET");
    } else if (strcmp(path, "/health") == 0) {
        kvhttp_ok(r, NULL);
    } else if (strcmp(path, "/stats") == 0) {
        cJSON *o = cJSON_CreateObject();
        wq_json_stats(a->wq, o);
        httpd_respond_json(r, 200, o, NULL);
    } else if (strcmp(path, "/metrics") == 0) {
        kvhttp_metrics(r);
    } else {
        kvhttp_not_found(r);
    }
}
