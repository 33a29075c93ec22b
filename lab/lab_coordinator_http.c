/* lab_coordinator_http: see lab_coordinator_http.h. */
#include "lab_coordinator_http.h"

#include "lab_coordinator.h"
#include "json_whole.h"
#include "kvhdr.h"
#include "kvhttp.h"
#include "log.h"
#include "metrics.h"
#include "num.h"
#include "quorum_pick.h"
#include "ui_static.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAB_COORDINATOR_HTTP_MAX_KEY 1024
#define LAB_COORDINATOR_HTTP_READ_TIMEOUT_MS 3000L
#define LAB_COORDINATOR_HTTP_WRITE_TIMEOUT_MS (LAB_COORDINATOR_QUORUM_TIMEOUT_MS + 3000L)
#define LAB_COORDINATOR_HTTP_MAX_READ 32

struct lab_coordinator_http {
    httpd_t *srv;
    lab_coordinator_t *L;
};

METRIC_COUNTER(lab_coordinator_http_requests, "kv_controller_http_requests_total",
               "HTTP requests served by the controller");

static const char *const lab_coordinator_http_allow_get[] = {"Allow: GET", NULL};
static const char *const lab_coordinator_http_allow_post[] = {"Allow: POST", NULL};

/* {"detail":{"error":msg}} with status. */
static void lab_coordinator_http_detail(httpd_req *r, unsigned status, const char *msg)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *d = cJSON_AddObjectToObject(j, "detail");
    cJSON_AddStringToObject(d, "error", msg);
    httpd_respond_json(r, status, j, NULL);
}

/* Percent-encode a key for a URL path segment (caller frees). */
static char *lab_coordinator_http_encode(const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(3 * n + 1), *o = out;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

/* The JSON body of r as an object, or NULL (answered 400 when bad;
 * *empty set when there was no body at all). */
static cJSON *lab_coordinator_http_body(httpd_req *r, int *empty)
{
    size_t len = 0;
    const char *b = httpd_body(r, &len);
    cJSON *j;

    *empty = 0;
    while (len && (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t')) {
        b++;
        len--;
    }
    if (len == 0) {
        *empty = 1;
        return NULL;
    }
    j = json_whole_parse(b, len, NULL);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        lab_coordinator_http_detail(r, 400, "The body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- POST /write ------------------------------------------------------- */

typedef struct lab_coordinator_http_write {
    lab_coordinator_http_t *h;
    httpd_req *r;
    char *key;
    cJSON *value;            /* echoed as given */
    char *body;              /* the bytes stored */
    size_t len;
    char leader[64];
    char sync[LAB_COORDINATOR_HTTP_MAX_READ][32];
    size_t nsync;
    char url[64 + 3 * LAB_COORDINATOR_HTTP_MAX_KEY + 32];
} lab_coordinator_http_write;

static void lab_coordinator_http_write_free(lab_coordinator_http_write *w)
{
    free(w->key);
    free(w->body);
    cJSON_Delete(w->value);
    free(w);
}

static void lab_coordinator_http_write_done(httpc_resp *resp, void *ctx)
{
    lab_coordinator_http_write *w = ctx;
    lab_coordinator_t *L = w->h->L;
    const lab_config *c = lab_coordinator_cfg(L);
    cJSON *j = NULL, *out, *d;

    if (resp->status == 200 &&
        (j = json_whole_parse(resp->body, resp->len, NULL)) != NULL) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "seq");
        cJSON *set;
        if (cJSON_IsNumber(s) && s->valuedouble > 0)
            lab_coordinator_note_leader_seq(L, (uint64_t)s->valuedouble);
        out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "status", "success");
        cJSON_AddStringToObject(out, "key", w->key);
        cJSON_AddItemToObject(out, "value", w->value);
        w->value = NULL;
        cJSON_AddNumberToObject(out, "version",
                                cJSON_IsNumber(v) ? v->valuedouble : 0);
        if (cJSON_IsNumber(s))
            cJSON_AddNumberToObject(out, "seq", s->valuedouble);
        /* The leader answered once the sync set (the first W alive
         * followers) had applied it. */
        cJSON_AddNumberToObject(out, "sync_acks", (double)c->write_quorum);
        set = cJSON_AddArrayToObject(out, "sync_set");
        for (size_t i = 0; i < w->nsync; i++)
            cJSON_AddItemToArray(set, cJSON_CreateString(w->sync[i]));
        cJSON_AddItemToObject(out, "quorum", lab_coordinator_quorum_json(L));
        httpd_respond_json(w->r, 200, out, NULL);
    } else if (resp->status == 503 || resp->status == 504) {
        char code[64] = "";
        j = json_whole_parse(resp->body, resp->len, NULL);
        {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
            if (cJSON_IsString(e))
                snprintf(code, sizeof code, "%s", e->valuestring);
        }
        out = cJSON_CreateObject();
        d = cJSON_AddObjectToObject(out, "detail");
        cJSON_AddStringToObject(d, "error", "Write quorum not available");
        cJSON_AddNumberToObject(d, "alive", (double)lab_coordinator_alive(L));
        cJSON_AddNumberToObject(d, "required", (double)c->write_quorum);
        cJSON_AddStringToObject(d, "leader_error",
                                code[0] ? code : "unavailable");
        if (resp->status == 504)
            cJSON_AddStringToObject(d, "note",
                                    "applied on the leader but not "
                                    "acknowledged by the sync set in time");
        httpd_respond_json(w->r, 503, out, NULL);
    } else if (resp->status == 0) {
        out = cJSON_CreateObject();
        d = cJSON_AddObjectToObject(out, "detail");
        cJSON_AddStringToObject(d, "error", "Leader not available");
        cJSON_AddStringToObject(d, "reason", resp->error);
        httpd_respond_json(w->r, 503, out, NULL);
    } else {
        /* 413 and the like: the leader's reason, its status. */
        char msg[256] = "the leader refused the write";
        j = json_whole_parse(resp->body, resp->len, NULL);
        {
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
            if (cJSON_IsString(m))
                snprintf(msg, sizeof msg, "%s", m->valuestring);
        }
        lab_coordinator_http_detail(w->r, (unsigned)resp->status, msg);
    }
    cJSON_Delete(j);
    lab_coordinator_http_write_free(w);
}

static void lab_coordinator_http_write_route(lab_coordinator_http_t *h, httpd_req *r)
{
    static const char *const hdrs[] = {
        "Content-Type: application/octet-stream", NULL};
    int empty;
    cJSON *j = lab_coordinator_http_body(r, &empty), *d;
    const cJSON *k, *v;
    lab_coordinator_http_write *w;
    cJSON *err = NULL;
    char *enc;
    unsigned st;
    httpc_req req = {0};

    if (j == NULL) {
        if (empty)
            lab_coordinator_http_detail(r, 400, "POST /write needs {\"key\":...,\"value\":...}");
        return;
    }
    k = cJSON_GetObjectItemCaseSensitive(j, "key");
    v = cJSON_GetObjectItemCaseSensitive(j, "value");
    if (!cJSON_IsString(k) || k->valuestring[0] == '\0' || v == NULL) {
        cJSON_Delete(j);
        lab_coordinator_http_detail(r, 400, "POST /write needs a non-empty string \"key\" and "
                          "a \"value\"");
        return;
    }
    if (strlen(k->valuestring) > LAB_COORDINATOR_HTTP_MAX_KEY) {
        cJSON_Delete(j);
        lab_coordinator_http_detail(r, 414, "Keys are at most 1024 bytes");
        return;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL) {
        cJSON_Delete(j);
        lab_coordinator_http_detail(r, 500, "out of memory");
        return;
    }
    w->h = h;
    w->r = r;
    w->key = strdup(k->valuestring);
    w->value = cJSON_Duplicate(v, 1);
    w->body = cJSON_IsString(v) ? strdup(v->valuestring)
                                : cJSON_PrintUnformatted(v);
    cJSON_Delete(j);
    if (w->key == NULL || w->value == NULL || w->body == NULL) {
        lab_coordinator_http_write_free(w);
        lab_coordinator_http_detail(r, 500, "out of memory");
        return;
    }
    w->len = strlen(w->body);
    st = lab_coordinator_write_plan(h->L, w->leader, sizeof w->leader, w->sync,
                           LAB_COORDINATOR_HTTP_MAX_READ, &w->nsync, &err);
    if (st != 0) {
        lab_coordinator_http_write_free(w);
        httpd_respond_json(r, st, err, NULL);
        return;
    }
    enc = lab_coordinator_http_encode(w->key, strlen(w->key));
    if (enc == NULL) {
        lab_coordinator_http_write_free(w);
        lab_coordinator_http_detail(r, 500, "out of memory");
        return;
    }
    snprintf(w->url, sizeof w->url, "%s/internal/kv/%s", w->leader, enc);
    free(enc);
    req.method = "PUT";
    req.url = w->url;
    req.body = w->body;
    req.body_len = w->len;
    req.headers = hdrs;
    req.timeout_ms = LAB_COORDINATOR_HTTP_WRITE_TIMEOUT_MS;
    httpd_suspend(r);
    if (httpc_loop_async(lab_coordinator_loop(h->L), &req, lab_coordinator_http_write_done, w) != 0) {
        lab_coordinator_http_write_free(w);
        err = cJSON_CreateObject();
        d = cJSON_AddObjectToObject(err, "detail");
        cJSON_AddStringToObject(d, "error", "Controller busy");
        httpd_respond_json(r, 503, err, NULL);
    }
}

/* ---- GET /read/{key} --------------------------------------------------------- */

typedef struct lab_coordinator_http_reply {
    long status;
    int has_version;
    uint64_t version;
    int tombstone;
    char *body;
} lab_coordinator_http_reply;

typedef struct lab_coordinator_http_read {
    lab_coordinator_http_t *h;
    httpd_req *r;
    char *key;
    size_t n;
    size_t left;             /* answers still to come */
    pthread_mutex_t mu;
    char ids[LAB_COORDINATOR_HTTP_MAX_READ][32];
    char urls[LAB_COORDINATOR_HTTP_MAX_READ][64];
    char full[LAB_COORDINATOR_HTTP_MAX_READ][64 + 3 * LAB_COORDINATOR_HTTP_MAX_KEY + 32];
    lab_coordinator_http_reply rep[LAB_COORDINATOR_HTTP_MAX_READ];
} lab_coordinator_http_read;

typedef struct lab_coordinator_http_read_one {
    lab_coordinator_http_read *rd;
    size_t i;
} lab_coordinator_http_read_one;

static void lab_coordinator_http_read_free(lab_coordinator_http_read *rd)
{
    for (size_t i = 0; i < rd->n; i++)
        free(rd->rep[i].body);
    pthread_mutex_destroy(&rd->mu);
    free(rd->key);
    free(rd);
}

static void lab_coordinator_http_read_finish(lab_coordinator_http_read *rd)
{
    const lab_config *c = lab_coordinator_cfg(rd->h->L);
    quorum_pick_answer pick[LAB_COORDINATOR_HTTP_MAX_READ];
    size_t answered = 0;
    int best;
    cJSON *out, *d, *reps;

    /* The api's rule (quorum_pick.h); a version-less answer counts toward
     * the quorum but cannot win. */
    for (size_t i = 0; i < rd->n; i++) {
        const lab_coordinator_http_reply *p = &rd->rep[i];
        bool ok = p->status == 200 || p->status == 404;
        answered += ok;
        pick[i] = (quorum_pick_answer){.candidate = ok && p->has_version,
                                       .value = p->status == 200,
                                       .version = p->version};
    }
    best = quorum_pick_winner(pick, rd->n);
    if (answered < (c->read_quorum > 0 ? (size_t)c->read_quorum : 1)) {
        out = cJSON_CreateObject();
        d = cJSON_AddObjectToObject(out, "detail");
        cJSON_AddStringToObject(d, "error", "Read quorum not available");
        cJSON_AddNumberToObject(d, "responses", (double)answered);
        cJSON_AddNumberToObject(d, "required", (double)c->read_quorum);
        httpd_respond_json(rd->r, 503, out, NULL);
        lab_coordinator_http_read_free(rd);
        return;
    }
    if (best < 0 || rd->rep[best].tombstone ||
        rd->rep[best].status != 200) {
        out = cJSON_CreateObject();
        d = cJSON_AddObjectToObject(out, "detail");
        cJSON_AddStringToObject(d, "error", "Key not found");
        cJSON_AddStringToObject(d, "key", rd->key);
        cJSON_AddNumberToObject(d, "quorum_responses", (double)answered);
        httpd_respond_json(rd->r, 404, out, NULL);
        lab_coordinator_http_read_free(rd);
        return;
    }
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "key", rd->key);
    cJSON_AddStringToObject(out, "value",
                            rd->rep[best].body ? rd->rep[best].body : "");
    cJSON_AddNumberToObject(out, "version", (double)rd->rep[best].version);
    cJSON_AddStringToObject(out, "served_by", rd->ids[best]);
    cJSON_AddNumberToObject(out, "quorum_responses", (double)answered);
    reps = cJSON_AddArrayToObject(out, "read_set");
    for (size_t i = 0; i < rd->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "node_id", rd->ids[i]);
        if (rd->rep[i].has_version)
            cJSON_AddNumberToObject(o, "version", (double)rd->rep[i].version);
        else
            cJSON_AddNullToObject(o, "version");
        cJSON_AddNumberToObject(o, "status", (double)rd->rep[i].status);
        cJSON_AddItemToArray(reps, o);
    }
    httpd_respond_json(rd->r, 200, out, NULL);
    lab_coordinator_http_read_free(rd);
}

/* One replica has answered (or could not be asked): the last one answers
 * the client. */
static void lab_coordinator_http_read_count(lab_coordinator_http_read *rd)
{
    size_t left;

    pthread_mutex_lock(&rd->mu);
    left = --rd->left;
    pthread_mutex_unlock(&rd->mu);
    if (left == 0)
        lab_coordinator_http_read_finish(rd);
}

static void lab_coordinator_http_read_done(httpc_resp *resp, void *ctx)
{
    lab_coordinator_http_read_one *one = ctx;
    lab_coordinator_http_read *rd = one->rd;
    lab_coordinator_http_reply *p = &rd->rep[one->i];

    p->status = resp->status;
    if (kvhdr_u64(resp, "X-KV-Version", &p->version) == 0)
        p->has_version = 1;
    if (resp->status == 200) {
        p->body = resp->body;
        resp->body = NULL;
    } else if (resp->status == 404 && p->has_version) {
        p->tombstone = 1;
    }
    free(one);
    lab_coordinator_http_read_count(rd);
}

static void lab_coordinator_http_read_route(lab_coordinator_http_t *h, httpd_req *r)
{
    const char *path = httpd_path(r);
    size_t plen = strcspn(path, "?"), klen = 0;
    const char *raw = path + 6; /* after "/read/" */
    size_t rawlen = plen - 6;
    lab_coordinator_http_read *rd;
    cJSON *err = NULL;
    char *enc;
    unsigned st;

    rd = calloc(1, sizeof *rd);
    if (rd == NULL) {
        lab_coordinator_http_detail(r, 500, "out of memory");
        return;
    }
    pthread_mutex_init(&rd->mu, NULL);
    rd->h = h;
    rd->r = r;
    if (rawlen == 0 || rawlen > 3 * LAB_COORDINATOR_HTTP_MAX_KEY ||
        (rd->key = httpd_decode(raw, rawlen, &klen)) == NULL || klen == 0 ||
        klen > LAB_COORDINATOR_HTTP_MAX_KEY) {
        lab_coordinator_http_read_free(rd);
        lab_coordinator_http_detail(r, 400, "GET /read/{key}: a key of 1 to 1024 bytes");
        return;
    }
    st = lab_coordinator_read_plan(h->L, rd->ids, rd->urls, LAB_COORDINATOR_HTTP_MAX_READ, &rd->n, &err);
    if (st != 0) {
        lab_coordinator_http_read_free(rd);
        httpd_respond_json(r, st, err, NULL);
        return;
    }
    enc = lab_coordinator_http_encode(rd->key, klen);
    if (enc == NULL) {
        rd->n = 0;
        lab_coordinator_http_read_free(rd);
        lab_coordinator_http_detail(r, 500, "out of memory");
        return;
    }
    rd->left = rd->n;
    httpd_suspend(r);
    for (size_t i = 0, n = rd->n; i < n; i++) {
        lab_coordinator_http_read_one *one = malloc(sizeof *one);
        httpc_req req = {0};
        snprintf(rd->full[i], sizeof rd->full[i], "%s/internal/kv/%s",
                 rd->urls[i], enc);
        req.method = "GET";
        req.url = rd->full[i];
        req.timeout_ms = LAB_COORDINATOR_HTTP_READ_TIMEOUT_MS;
        if (one) {
            one->rd = rd;
            one->i = i;
        }
        if (one == NULL ||
            httpc_loop_async(lab_coordinator_loop(h->L), &req, lab_coordinator_http_read_done, one) != 0) {
            free(one);
            lab_coordinator_http_read_count(rd); /* as no answer */
        }
    }
    free(enc);
}

/* ---- the other routes ------------------------------------------------------ */

static void lab_coordinator_http_heartbeat(lab_coordinator_http_t *h, httpd_req *r)
{
    int empty;
    cJSON *j = lab_coordinator_http_body(r, &empty), *out;
    const cJSON *id, *inc, *seq, *st;
    uint64_t cur = 0;
    int rc;

    if (j == NULL) {
        if (empty)
            lab_coordinator_http_detail(r, 400, "POST /heartbeat needs {\"node_id\","
                              "\"incarnation\",\"applied_seq\"}");
        return;
    }
    id = cJSON_GetObjectItemCaseSensitive(j, "node_id");
    inc = cJSON_GetObjectItemCaseSensitive(j, "incarnation");
    seq = cJSON_GetObjectItemCaseSensitive(j, "applied_seq");
    st = cJSON_GetObjectItemCaseSensitive(j, "state");
    if (!cJSON_IsString(id) || !cJSON_IsNumber(inc) || inc->valuedouble < 1) {
        cJSON_Delete(j);
        lab_coordinator_http_detail(r, 400, "POST /heartbeat needs a string node_id and an "
                          "incarnation >= 1");
        return;
    }
    rc = lab_coordinator_heartbeat(h->L, id->valuestring, (uint64_t)inc->valuedouble,
                          cJSON_IsNumber(seq) && seq->valuedouble > 0
                              ? (uint64_t)seq->valuedouble
                              : 0,
                          cJSON_IsString(st) ? st->valuestring : NULL, &cur);
    if (rc < 0) {
        out = cJSON_CreateObject();
        cJSON *d = cJSON_AddObjectToObject(out, "detail");
        cJSON_AddStringToObject(d, "error", "Unknown node or incarnation");
        cJSON_AddStringToObject(d, "node_id", id->valuestring);
        cJSON_Delete(j);
        httpd_respond_json(r, 404, out, NULL);
        return;
    }
    cJSON_Delete(j);
    out = cJSON_CreateObject();
    if (rc == 1) {
        char msg[96];
        snprintf(msg, sizeof msg, "replaced by incarnation %" PRIu64, cur);
        cJSON_AddStringToObject(out, "status", "retired");
        cJSON_AddNumberToObject(out, "incarnation", (double)cur);
        cJSON_AddStringToObject(out, "message", msg);
    } else {
        cJSON_AddStringToObject(out, "status", "ok");
    }
    httpd_respond_json(r, 200, out, NULL);
}

/* The decoded segment i as a node id (caller frees), or NULL (answered). */
static char *lab_coordinator_http_node_id(httpd_req *r, unsigned i)
{
    size_t len = 0, out = 0;
    const char *seg = httpd_path_seg(r, i, &len);
    char *id;

    if (seg)
        len = strcspn(seg, "?") < len ? strcspn(seg, "?") : len;
    if (seg == NULL || len == 0 || len > 90 ||
        (id = httpd_decode(seg, len, &out)) == NULL) {
        lab_coordinator_http_detail(r, 400, "a node_id is needed, such as follower-1");
        return NULL;
    }
    return id;
}

static void lab_coordinator_http_spawn(lab_coordinator_http_t *h, httpd_req *r)
{
    int empty;
    cJSON *j = lab_coordinator_http_body(r, &empty), *out = NULL;
    const cJSON *id = NULL, *port = NULL;
    unsigned st;

    if (j == NULL && !empty)
        return;
    if (j) {
        id = cJSON_GetObjectItemCaseSensitive(j, "node_id");
        port = cJSON_GetObjectItemCaseSensitive(j, "port");
        if ((id && !cJSON_IsNull(id) && !cJSON_IsString(id)) ||
            (port && !cJSON_IsNull(port) &&
             (!cJSON_IsNumber(port) || port->valuedouble < 0 ||
              port->valuedouble > 65535))) {
            cJSON_Delete(j);
            lab_coordinator_http_detail(r, 400, "POST /spawn takes an optional {\"node_id\": "
                              "string, \"port\": number}");
            return;
        }
    }
    st = lab_coordinator_spawn(h->L, cJSON_IsString(id) ? id->valuestring : NULL,
                      cJSON_IsNumber(port) ? (unsigned)port->valuedouble : 0,
                      &out);
    cJSON_Delete(j);
    httpd_respond_json(r, st, out, NULL);
}

static void lab_coordinator_http_pause(lab_coordinator_http_t *h, httpd_req *r)
{
    char *id = lab_coordinator_http_node_id(r, 1);
    const char *q;
    uint64_t ms = 2000;
    cJSON *out = NULL;
    unsigned st;

    if (id == NULL)
        return;
    q = httpd_query(r, "ms");
    if (q && (num_parse_u64(q, &ms) != 0 || ms < 1 || ms > LAB_COORDINATOR_MAX_PAUSE_MS)) {
        free(id);
        lab_coordinator_http_detail(r, 400, "ms must be a whole number of milliseconds, 1 to "
                          "600000");
        return;
    }
    st = lab_coordinator_pause(h->L, id, (long)ms, &out);
    free(id);
    httpd_respond_json(r, st, out, NULL);
}

static void lab_coordinator_http_kill(lab_coordinator_http_t *h, httpd_req *r)
{
    char *id = lab_coordinator_http_node_id(r, 1);
    cJSON *out = NULL;
    unsigned st;

    if (id == NULL)
        return;
    st = lab_coordinator_kill(h->L, id, &out);
    free(id);
    httpd_respond_json(r, st, out, NULL);
}

/* 405 for a known path asked with another method than the one allowed. */
static void lab_coordinator_http_only(httpd_req *r, const char *path, size_t plen,
                                      const char *const *allow, const char *method)
{
    httpd_error_h(r, 405, allow, "method_not_allowed",
                  "%s %.*s: only %s is allowed", httpd_method(r),
                  (int)(plen > 100 ? 100 : plen), path, method);
}

/* Does the path (without its query) equal route, or start with route + "/"
 * when prefix is set? */
static int lab_coordinator_http_is(const char *path, size_t plen, const char *route, int prefix)
{
    size_t n = strlen(route);
    if (prefix)
        return plen > n + 1 && memcmp(path, route, n) == 0 && path[n] == '/';
    return plen == n && memcmp(path, route, n) == 0;
}

static void lab_coordinator_http_status(lab_coordinator_http_t *h, httpd_req *r)
{
    httpd_respond_json(r, 200, lab_coordinator_status_json(h->L), NULL);
}

static void lab_coordinator_http_topology(lab_coordinator_http_t *h,
                                          httpd_req *r)
{
    httpd_respond_json(r, 200, lab_coordinator_topology_json(h->L), NULL);
}

static void lab_coordinator_http_health(lab_coordinator_http_t *h, httpd_req *r)
{
    cJSON *j = cJSON_CreateObject();

    (void)h;
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddStringToObject(j, "mode", "lab");
    httpd_respond_json(r, 200, j, NULL);
}

static void lab_coordinator_http_metrics(lab_coordinator_http_t *h,
                                         httpd_req *r)
{
    (void)h; /* the lab's lines are a render callback (lab_coordinator_metrics) */
    kvhttp_metrics(r);
}

/* GET /ui/state[?after=ID] (lab_coordinator_ui.c). */
static void lab_coordinator_http_ui_state(lab_coordinator_http_t *h, httpd_req *r)
{
    uint64_t id;

    if (ui_static_after(r, &id) == 0)
        httpd_respond_json(r, 200, lab_coordinator_ui_state(h->L, id), NULL);
}

typedef struct lab_coordinator_http_route {
    const char *path;
    int prefix;        /* path + "/" + something: /read/{key}, /kill/{id} */
    int post;          /* POST, else GET (and HEAD) */
    void (*fn)(lab_coordinator_http_t *h, httpd_req *r);
} lab_coordinator_http_route;

static const lab_coordinator_http_route lab_coordinator_http_routes[] = {
    {"/status", 0, 0, lab_coordinator_http_status},
    {"/topology", 0, 0, lab_coordinator_http_topology},
    {"/health", 0, 0, lab_coordinator_http_health},
    {"/metrics", 0, 0, lab_coordinator_http_metrics},
    {"/read", 1, 0, lab_coordinator_http_read_route},
    {"/write", 0, 1, lab_coordinator_http_write_route},
    {"/spawn", 0, 1, lab_coordinator_http_spawn},
    {"/heartbeat", 0, 1, lab_coordinator_http_heartbeat},
    {"/kill", 1, 1, lab_coordinator_http_kill},
    {"/pause", 1, 1, lab_coordinator_http_pause},
    {"/ui/state", 0, 0, lab_coordinator_http_ui_state},
};

/* 404 in the shape of the briefs' FastAPI controller: {"error","detail"}. */
static void lab_coordinator_http_no_route(httpd_req *r, const char *path,
                                          size_t plen)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *d = cJSON_AddObjectToObject(j, "detail");
    char msg[160];

    snprintf(msg, sizeof msg, "No route %.*s on the lab controller",
             (int)(plen > 100 ? 100 : plen), path);
    cJSON_AddStringToObject(d, "error", msg);
    cJSON_AddStringToObject(j, "error", "not_found");
    httpd_respond_json(r, 404, j, NULL);
}

void lab_coordinator_http_handle(httpd_req *r, void *app)
{
    lab_coordinator_http_t *h = app;
    const char *path = httpd_path(r);
    size_t plen = strcspn(path, "?");
    size_t nroutes = sizeof lab_coordinator_http_routes /
                     sizeof lab_coordinator_http_routes[0];
    int get = httpd_method_is(r, "GET") || httpd_method_is(r, "HEAD");
    int post = httpd_method_is(r, "POST");

    metrics_add(&lab_coordinator_http_requests, 1);
    for (size_t i = 0; i < nroutes; i++) {
        const lab_coordinator_http_route *rt = &lab_coordinator_http_routes[i];

        if (!lab_coordinator_http_is(path, plen, rt->path, rt->prefix))
            continue;
        if (rt->post ? !post : !get)
            lab_coordinator_http_only(
                r, path, plen,
                rt->post ? lab_coordinator_http_allow_post
                         : lab_coordinator_http_allow_get,
                rt->post ? "POST" : "GET");
        else
            rt->fn(h, r);
        return;
    }
    /* The dashboard (lib/ui_static.h): the lab runs on this machine only. */
    if (ui_static_serve(r, path, plen))
        return;
    lab_coordinator_http_no_route(r, path, plen);
}

lab_coordinator_http_t *lab_coordinator_http_start(lab_coordinator_t *L, const char *bind, uint16_t port)
{
    lab_coordinator_http_t *h = calloc(1, sizeof *h);
    httpd_opts o;

    if (h == NULL)
        return NULL;
    metrics_register(&lab_coordinator_http_requests);
    if (metrics_register_fn(lab_coordinator_metrics, L) != 0) {
        free(h);
        return NULL;
    }
    h->L = L;
    memset(&o, 0, sizeof o);
    o.bind = bind;
    o.port = port;
    o.threads = 4;
    o.max_body = 2 * 1024 * 1024;
    h->srv = httpd_start(&o, lab_coordinator_http_handle, h);
    if (h->srv == NULL) {
        metrics_unregister_fn(lab_coordinator_metrics, L);
        free(h);
        return NULL;
    }
    return h;
}

void lab_coordinator_http_stop(lab_coordinator_http_t *h)
{
    if (h == NULL)
        return;
    httpd_stop(h->srv);
    metrics_unregister_fn(lab_coordinator_metrics, h->L);
    free(h);
}
