/* kvctl assess: see lab_assess.h. The scenarios, in the order they run:
 *
 *  INC-0   write and read through the gateway; the controller's /status.
 *  INC-1   from one client address: a burst of rate_limit_max + 5 requests,
 *          a 2.5 s pause, a second burst of 5: both must be limited.
 *  INC-3   through the controller: write then read at once, 8 rounds on
 *          one key and 5 fresh keys; a read older than the write is stale.
 *  INC-4   kill max(1, floor(N/2)) followers; writes, reads and /status
 *          must still work; then the followers are spawned back.
 *  INC-2/5 pause a follower 2 s: no replacement may appear within
 *          auto_spawn_delay + 3 s; kill a follower and POST /spawn: the new
 *          one must show alive and hold a key written before; the cost.
 *
 * Gateway requests come from their own loopback address per scenario
 * (127.A.B.x, A and B picked per run) so the per-client limiter's windows do
 * not mix; everything not about the gateway goes to the controller, which
 * has no rate limit. Keys carry a per-run tag, so runs against one cluster
 * (--no-start-cluster) do not see each other's data. */
#include "lab_assess.h"

#include "kvctl.h"

#include "clock.h"
#include "lab_assess_score.h"
#include "lab_cli.h"
#include "lab_config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LAB_ASSESS_TIMEOUT_MS 5000L        /* one controller or gateway call */
#define LAB_ASSESS_WRITE_TIMEOUT_MS 10000L /* a quorum write (sync-set delay 0.5 s) */
#define LAB_ASSESS_SPAWN_TIMEOUT_MS 20000L /* POST /spawn may wait for the catch-up */
#define LAB_ASSESS_HEAL_DEADLINE_S 30.0    /* wait for every follower alive again */
#define LAB_ASSESS_JOIN_DEADLINE_S 20.0    /* a spawned follower shows alive */
#define LAB_ASSESS_STALE_ROUNDS 8
#define LAB_ASSESS_STALE_KEYS 5
#define LAB_ASSESS_OUTAGE_WRITES 3
#define LAB_ASSESS_OUTAGE_READS 2

/* Source address octets (127.A.B.<octet>) per use. */
enum {
    LAB_ASSESS_IP_RATE = 2,          /* INC-1 bursts */
    LAB_ASSESS_IP_BASIC = 3,         /* INC-0 */
    LAB_ASSESS_IP_STATS = 4,         /* INC-1 /stats */
    LAB_ASSESS_IP_BASIC_RETRY = 10,  /* INC-0 read retries: 10.. */
};

typedef struct lab_assess_ctx {
    lab_config cfg;
    const char *ctl, *gw;
    char ipbase[32];         /* "127.A.B." */
    char tag[48];            /* key prefix of this run */
    int verbose;
    lab_assess_score_report rep;
    char k0[96], v0[96];     /* the INC-0 key, when it was written */
    bool k0_ok;
    bool nobind;             /* a bind to ipbase failed: stop binding */
} lab_assess_ctx;

/* ---- small helpers ---- */

/* snprintf for messages, where cutting a long one short is fine. */
static void lab_assess_set(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lab_assess_set(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
}

static double lab_assess_now(void)
{
    return (double)clock_mono_us() / 1e6;
}

static void lab_assess_sleep(double s)
{
    struct timespec ts;
    if (s <= 0)
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void lab_assess_log(lab_assess_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void lab_assess_log(lab_assess_ctx *x, const char *fmt, ...)
{
    va_list ap;
    if (!x->verbose)
        return;
    fputs("  .. ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* "follower-10" after "follower-9": same prefix, numeric suffix. */
static int lab_assess_id_cmp(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), da = la, db = lb;

    while (da > 0 && a[da - 1] >= '0' && a[da - 1] <= '9')
        da--;
    while (db > 0 && b[db - 1] >= '0' && b[db - 1] <= '9')
        db--;
    if (da == db && strncmp(a, b, da) == 0 && da < la && db < lb) {
        long na = strtol(a + da, NULL, 10), nb = strtol(b + db, NULL, 10);
        if (na != nb)
            return na < nb ? -1 : 1;
    }
    return strcmp(a, b);
}

static int lab_assess_node_cmp(const void *pa, const void *pb)
{
    return lab_assess_id_cmp(((const lab_assess_score_node *)pa)->id, ((const lab_assess_score_node *)pb)->id);
}

/* A short one-line excerpt of a body for messages. */
static void lab_assess_snippet(const httpc_resp *r, char *out, size_t outlen)
{
    size_t n = 0;

    for (size_t i = 0; r->body && i < r->len && n + 1 < outlen && n < 100; i++) {
        char ch = r->body[i];
        out[n++] = (ch == '\n' || ch == '\r' || ch == '\t') ? ' ' : ch;
    }
    out[n] = '\0';
}

/* The error text of a failed answer: detail.error, detail, error or
 * message of a JSON body, else an excerpt; the transport error when there
 * was no answer. */
static void lab_assess_err_text(const httpc_resp *r, char *out, size_t outlen)
{
    cJSON *j;
    const cJSON *d, *v;

    out[0] = '\0';
    if (r->status == 0) {
        lab_assess_set(out, outlen, "%s", r->error[0] ? r->error : "no answer");
        return;
    }
    j = r->body ? cJSON_ParseWithLength(r->body, r->len) : NULL;
    if (cJSON_IsObject(j)) {
        d = cJSON_GetObjectItemCaseSensitive(j, "detail");
        v = cJSON_GetObjectItemCaseSensitive(d, "error");
        if (!cJSON_IsString(v))
            v = cJSON_IsString(d) ? d : NULL;
        if (v == NULL)
            v = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (!cJSON_IsString(v))
            v = cJSON_GetObjectItemCaseSensitive(j, "message");
        if (cJSON_IsString(v))
            lab_assess_set(out, outlen, "%s", v->valuestring);
    }
    cJSON_Delete(j);
    if (out[0] == '\0')
        lab_assess_snippet(r, out, outlen);
}

/* One call: method base+path, an optional JSON body, from source address
 * octet (0 = unbound). 0 with out filled (status 0 on a transport error).
 *
 * From an octet, the client socket is bound to ipbase<octet> (a loopback
 * address such as 127.31.7.2) and the request carries "X-Real-IP:" that
 * address too, so the gateway's per-client limiter sees it whether it keys
 * on the peer address (the lab gateway, no nginx in front) or on X-Real-IP
 * (behind nginx). When the bind fails (no such local address) the request
 * goes out again unbound with the header only, and later calls stop
 * binding. */
static void lab_assess_call(lab_assess_ctx *x, const char *method, const char *base,
                    const char *path, const char *json, int octet,
                    long timeout_ms, httpc_resp *out)
{
    char url[1024], ip[48], realip[80];
    const char *hdrs[3] = {NULL, NULL, NULL};
    size_t nh = 0;
    httpc_req req = {0};
    int rc;

    lab_assess_set(url, sizeof url, "%s%s", base, path);
    req.method = method;
    req.url = url;
    req.body = json;
    req.body_len = json ? strlen(json) : 0;
    req.timeout_ms = timeout_ms;
    if (json)
        hdrs[nh++] = "Content-Type: application/json";
    if (octet > 0) {
        lab_assess_set(ip, sizeof ip, "%s%d", x->ipbase, octet);
        lab_assess_set(realip, sizeof realip, "X-Real-IP: %s", ip);
        hdrs[nh++] = realip;
        req.src_addr = x->nobind ? NULL : ip;
    }
    req.headers = nh ? hdrs : NULL;
    rc = httpc_do(&req, out);
    if (rc != 0 && out->bind_failed) {
        x->nobind = true;
        httpc_resp_free(out);
        req.src_addr = NULL;
        rc = httpc_do(&req, out);
    }
    if (rc != 0)
        out->status = 0;
}

static cJSON *lab_assess_json(const httpc_resp *r)
{
    return r->body && r->status ? cJSON_ParseWithLength(r->body, r->len) : NULL;
}

/* {"key":k,"value":v} (both plain: the grader's own keys and values). */
static void lab_assess_kv_body(char *out, size_t outlen, const char *k, const char *v)
{
    lab_assess_set(out, outlen, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
}

static int lab_assess_status(lab_assess_ctx *x, lab_assess_score_status *s, char *err, size_t errlen)
{
    httpc_resp r;
    cJSON *j;
    int rc;

    lab_assess_call(x, "GET", x->ctl, "/status", NULL, 0, LAB_ASSESS_TIMEOUT_MS, &r);
    if (r.status != 200) {
        char t[160];
        lab_assess_err_text(&r, t, sizeof t);
        if (r.status == 0)
            lab_assess_set(err, errlen, "GET %s/status: %s", x->ctl, t);
        else
            lab_assess_set(err, errlen, "GET %s/status answered %ld: %s", x->ctl,
                     r.status, t);
        httpc_resp_free(&r);
        memset(s, 0, sizeof *s);
        return -1;
    }
    j = lab_assess_json(&r);
    rc = lab_assess_score_status_parse(j, s, err, errlen);
    cJSON_Delete(j);
    httpc_resp_free(&r);
    return rc;
}

/* Leader alive and at least N followers alive (all_listed: and every
 * follower listed alive, the state right after start). */
static bool lab_assess_healthy(lab_assess_ctx *x, const lab_assess_score_status *s, bool all_listed)
{
    size_t alive = lab_assess_score_status_alive(s);
    return s->leader.alive && alive >= (size_t)x->cfg.followers &&
           (!all_listed || alive == s->nfollowers);
}

static int lab_assess_wait_healthy(lab_assess_ctx *x, double deadline_s, bool all_listed,
                           pid_t child, lab_assess_score_status *s, char *err,
                           size_t errlen)
{
    double end = lab_assess_now() + deadline_s;

    for (;;) {
        int st;
        if (lab_assess_status(x, s, err, errlen) == 0) {
            if (lab_assess_healthy(x, s, all_listed))
                return 0;
            lab_assess_set(err, errlen, "leader %s, %zu of %lld followers alive",
                     s->leader.status, lab_assess_score_status_alive(s),
                     (long long)x->cfg.followers);
        }
        if (child > 0 && waitpid(child, &st, WNOHANG) == child) {
            lab_assess_set(err, errlen, "kv-controller exited (%s %d)",
                     WIFEXITED(st) ? "status" : "signal",
                     WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            return -2;
        }
        if (lab_assess_now() >= end)
            return -1;
        lab_assess_sleep(0.25);
    }
}

static void lab_assess_print_test(const lab_assess_score_test *t)
{
    char line[2 * LAB_ASSESS_SCORE_TEXT + 64];
    lab_assess_score_format_test(t, line, sizeof line);
    printf("%s\n", line);
}

/* Print the tests of the report from index `from` on. */
static void lab_assess_flush(lab_assess_ctx *x, size_t from)
{
    for (size_t i = from; i < x->rep.n; i++)
        lab_assess_print_test(&x->rep.tests[i]);
    fflush(stdout);
}

static void lab_assess_header(int scen)
{
    printf("\n%s: %s (%d points)\n", lab_assess_score_scen_label(scen),
           lab_assess_score_scen_title(scen), lab_assess_score_scen_max(scen));
    fflush(stdout);
}

/* ---- INC-0 ---- */

static void lab_assess_basic(lab_assess_ctx *x)
{
    char body[256], path[160], err[LAB_ASSESS_SCORE_TEXT], t[160];
    httpc_resp r;
    cJSON *j;
    int rc;
    lab_assess_score_status s;

    lab_assess_set(x->k0, sizeof x->k0, "%s-basic", x->tag);
    lab_assess_set(x->v0, sizeof x->v0, "hello-%s", x->tag);
    lab_assess_kv_body(body, sizeof body, x->k0, x->v0);

    /* The write. */
    lab_assess_call(x, "POST", x->gw, "/write", body, LAB_ASSESS_IP_BASIC, LAB_ASSESS_WRITE_TIMEOUT_MS, &r);
    j = lab_assess_json(&r);
    if (r.status == 200 &&
        lab_assess_score_check_write(j, x->k0, x->v0, x->cfg.write_quorum, NULL, err,
                           sizeof err) == 0) {
        lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "POST /write through the gateway",
                   LAB_ASSESS_SCORE_PTS_BASIC_WRITE, LAB_ASSESS_SCORE_PTS_BASIC_WRITE, NULL);
        x->k0_ok = true;
    } else if (r.status == 200) {
        lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "POST /write through the gateway",
                   0, LAB_ASSESS_SCORE_PTS_BASIC_WRITE, "INC-0: gateway POST /write: %s", err);
        x->k0_ok = true;
    } else {
        lab_assess_err_text(&r, t, sizeof t);
        lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "POST /write through the gateway",
                   0, LAB_ASSESS_SCORE_PTS_BASIC_WRITE,
                   "INC-0: gateway POST /write answered %ld: %s", r.status, t);
    }
    cJSON_Delete(j);
    httpc_resp_free(&r);
    if (!x->k0_ok) {
        /* So that the read test still tests reads: write via the controller. */
        lab_assess_call(x, "POST", x->ctl, "/write", body, 0, LAB_ASSESS_WRITE_TIMEOUT_MS, &r);
        x->k0_ok = r.status == 200;
        httpc_resp_free(&r);
    }

    /* The read: replication lag is not this scenario's business (INC-3 is),
     * so a missing or older value is read again for up to 7 s, each retry
     * from its own address so the rate limit cannot interfere. */
    lab_assess_set(path, sizeof path, "/read/%s", x->k0);
    {
        double t0 = lab_assess_now();
        int tries = 0;
        bool ok = false;
        char value[256], served[96];
        int64_t version;
        long last = 0;

        err[0] = '\0';
        for (;;) {
            int octet = tries == 0 ? LAB_ASSESS_IP_BASIC : LAB_ASSESS_IP_BASIC_RETRY + tries;
            lab_assess_call(x, "GET", x->gw, path, NULL, octet, LAB_ASSESS_TIMEOUT_MS, &r);
            last = r.status;
            j = lab_assess_json(&r);
            if (r.status == 200) {
                rc = lab_assess_score_check_read(j, x->k0, value, sizeof value, &version,
                                       served, sizeof served, err, sizeof err);
                if (rc == 0 && strcmp(value, x->v0) == 0)
                    ok = true;
                else if (rc == 0)
                    lab_assess_set(err, sizeof err, "read \"%s\", wrote \"%s\"", value, x->v0);
            } else {
                lab_assess_err_text(&r, t, sizeof t);
                lab_assess_set(err, sizeof err, "answered %ld: %s", r.status, t);
            }
            cJSON_Delete(j);
            httpc_resp_free(&r);
            tries++;
            if (ok || (last != 200 && last != 404) || lab_assess_now() - t0 > 7.0 || tries > 7)
                break;
            lab_assess_sleep(1.2);
        }
        if (ok) {
            lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "GET /read/{key} through the "
                       "gateway returns the value", LAB_ASSESS_SCORE_PTS_BASIC_READ,
                       LAB_ASSESS_SCORE_PTS_BASIC_READ, NULL);
            if (tries > 1)
                lab_assess_log(x, "INC-0 read needed %d tries (%.1f s of replication lag)",
                       tries, lab_assess_now() - t0);
        } else {
            lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "GET /read/{key} through the "
                       "gateway returns the value", 0, LAB_ASSESS_SCORE_PTS_BASIC_READ,
                       "INC-0: gateway GET %s: %s", path, err);
        }
    }

    /* The controller's /status. */
    if (lab_assess_status(x, &s, err, sizeof err) != 0)
        lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "controller /status", 0,
                   LAB_ASSESS_SCORE_PTS_BASIC_STATUS, "INC-0: %s", err);
    else if (s.W != x->cfg.write_quorum || s.R != x->cfg.read_quorum)
        lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "controller /status", 0,
                   LAB_ASSESS_SCORE_PTS_BASIC_STATUS, "INC-0: /status says W=%lld R=%lld, "
                   "the config W=%lld R=%lld", (long long)s.W, (long long)s.R,
                   (long long)x->cfg.write_quorum, (long long)x->cfg.read_quorum);
    else if (!lab_assess_healthy(x, &s, false) || s.total_alive < x->cfg.followers)
        lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "controller /status", 0,
                   LAB_ASSESS_SCORE_PTS_BASIC_STATUS, "INC-0: /status shows leader %s and "
                   "%zu of %lld followers alive (total_alive %lld)",
                   s.leader.status, lab_assess_score_status_alive(&s),
                   (long long)x->cfg.followers, (long long)s.total_alive);
    else if (!s.can_write || !s.can_read)
        lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "controller /status", 0,
                   LAB_ASSESS_SCORE_PTS_BASIC_STATUS, "INC-0: /status says can_write %s, "
                   "can_read %s with every follower alive",
                   s.can_write ? "true" : "false", s.can_read ? "true" : "false");
    else
        lab_assess_score_add(&x->rep, LAB_ASSESS_SCORE_S_BASIC, "controller /status", LAB_ASSESS_SCORE_PTS_BASIC_STATUS,
                   LAB_ASSESS_SCORE_PTS_BASIC_STATUS, NULL);
}

/* ---- INC-1 ---- */

typedef struct lab_assess_burst {
    int sent, ok, limited, other;
    long other_status;
    bool have_429;
    httpc_resp first_429;    /* kept for the shape check */
} lab_assess_burst;

static void lab_assess_send_burst(lab_assess_ctx *x, const char *path, int n, lab_assess_burst *b)
{
    for (int i = 0; i < n; i++) {
        httpc_resp r;
        lab_assess_call(x, "GET", x->gw, path, NULL, LAB_ASSESS_IP_RATE, 3000L, &r);
        b->sent++;
        if (r.status == 429) {
            b->limited++;
            if (!b->have_429) {
                b->have_429 = true;
                b->first_429 = r;
                continue;
            }
        } else if ((r.status >= 200 && r.status < 300) || r.status == 404) {
            b->ok++;
        } else {
            b->other++;
            b->other_status = r.status;
        }
        httpc_resp_free(&r);
    }
}

static void lab_assess_rate(lab_assess_ctx *x)
{
    lab_assess_score_rate_obs o;
    lab_assess_burst a = {0}, b = {0};
    char path[160];
    int n = (int)(x->cfg.rate_limit_max + 5 < LAB_ASSESS_SCORE_FIRST_BURST_CAP
                      ? x->cfg.rate_limit_max + 5 : LAB_ASSESS_SCORE_FIRST_BURST_CAP);
    double t0, t1, t2;

    memset(&o, 0, sizeof o);
    lab_assess_set(path, sizeof path, "/read/%s", x->k0);
    t0 = lab_assess_now();
    lab_assess_send_burst(x, path, n, &a);
    t1 = lab_assess_now();
    lab_assess_log(x, "INC-1 first burst: %d sent in %.2f s, %d through, %d limited",
           a.sent, t1 - t0, a.ok, a.limited);
    lab_assess_sleep(LAB_ASSESS_SCORE_SCRAPER_PAUSE_S);
    t2 = lab_assess_now();
    lab_assess_send_burst(x, path, LAB_ASSESS_SCORE_SECOND_BURST, &b);
    lab_assess_log(x, "INC-1 second burst %.2f s later: %d through, %d limited",
           t2 - t1, b.ok, b.limited);

    o.a_sent = a.sent, o.a_ok = a.ok, o.a_limited = a.limited, o.a_other = a.other;
    o.a_secs = t1 - t0;
    o.b_sent = b.sent, o.b_ok = b.ok, o.b_limited = b.limited, o.b_other = b.other;
    o.other_status = a.other ? a.other_status : b.other_status;
    o.gap_secs = t2 - t1;
    o.have_429 = a.have_429 || b.have_429;
    if (o.have_429) {
        const httpc_resp *r = a.have_429 ? &a.first_429 : &b.first_429;
        char ra[64], lim[64], rem[64];
        if (lab_assess_score_check_429(r->body, r->len,
                             httpc_resp_header(r, "Retry-After", ra, sizeof ra),
                             httpc_resp_header(r, "X-RateLimit-Limit", lim, sizeof lim),
                             httpc_resp_header(r, "X-RateLimit-Remaining", rem, sizeof rem),
                             x->cfg.rate_limit_max, o.shape_err,
                             sizeof o.shape_err) == 0) {
            httpc_resp sr;
            cJSON *j;
            lab_assess_call(x, "GET", x->gw, "/stats", NULL, LAB_ASSESS_IP_STATS, LAB_ASSESS_TIMEOUT_MS, &sr);
            j = lab_assess_json(&sr);
            if (sr.status != 200)
                lab_assess_set(o.shape_err, sizeof o.shape_err,
                         "gateway GET /stats answered %ld", sr.status);
            else
                lab_assess_score_check_stats(j, &x->cfg, o.shape_err, sizeof o.shape_err);
            cJSON_Delete(j);
            httpc_resp_free(&sr);
        }
    }
    if (a.have_429)
        httpc_resp_free(&a.first_429);
    if (b.have_429)
        httpc_resp_free(&b.first_429);
    lab_assess_score_judge_rate(&x->rep, &x->cfg, &o);
}

/* ---- INC-3 ---- */

enum { LAB_ASSESS_FRESH, LAB_ASSESS_STALE, LAB_ASSESS_MISSING, LAB_ASSESS_ERROR };

/* Write value under key through the controller, then read it at once.
 * Returns LAB_ASSESS_*; what describes anything but fresh. */
static int lab_assess_write_read(lab_assess_ctx *x, const char *key, const char *value,
                         char *what, size_t whatlen)
{
    char body[256], path[160], err[LAB_ASSESS_SCORE_TEXT], t[160], got[256], served[96];
    int64_t wv = 0, rv = 0;
    httpc_resp r;
    cJSON *j;
    int rc;

    lab_assess_kv_body(body, sizeof body, key, value);
    lab_assess_call(x, "POST", x->ctl, "/write", body, 0, LAB_ASSESS_WRITE_TIMEOUT_MS, &r);
    j = lab_assess_json(&r);
    if (r.status != 200) {
        lab_assess_err_text(&r, t, sizeof t);
        lab_assess_set(what, whatlen, "write of %s answered %ld: %s", value, r.status, t);
        rc = LAB_ASSESS_ERROR;
    } else if (lab_assess_score_check_write(j, key, value, x->cfg.write_quorum, &wv, err,
                                  sizeof err) != 0) {
        lab_assess_set(what, whatlen, "write of %s: %s", value, err);
        rc = LAB_ASSESS_ERROR;
    } else {
        rc = LAB_ASSESS_FRESH;
    }
    cJSON_Delete(j);
    httpc_resp_free(&r);
    if (rc != LAB_ASSESS_FRESH)
        return rc;

    lab_assess_set(path, sizeof path, "/read/%s", key);
    lab_assess_call(x, "GET", x->ctl, path, NULL, 0, LAB_ASSESS_TIMEOUT_MS, &r);
    j = lab_assess_json(&r);
    if (r.status == 200) {
        if (lab_assess_score_check_read(j, key, got, sizeof got, &rv, served,
                              sizeof served, err, sizeof err) != 0) {
            lab_assess_set(what, whatlen, "read after writing %s: %s", value, err);
            rc = LAB_ASSESS_ERROR;
        } else if (rv >= wv) {
            rc = LAB_ASSESS_FRESH;
        } else {
            lab_assess_set(what, whatlen, "stale read: wrote %s, read %s from %s",
                     value, got, served);
            rc = LAB_ASSESS_STALE;
        }
    } else if (r.status == 404) {
        lab_assess_set(what, whatlen, "missing read: wrote %s, the read set answered "
                 "404 at once", value);
        rc = LAB_ASSESS_MISSING;
    } else {
        lab_assess_err_text(&r, t, sizeof t);
        lab_assess_set(what, whatlen, "read after writing %s answered %ld: %s", value,
                 r.status, t);
        rc = LAB_ASSESS_ERROR;
    }
    cJSON_Delete(j);
    httpc_resp_free(&r);
    return rc;
}

/* The cart exists before the checkout: write v0 and wait (8 s at most)
 * until a read returns it, so that a lagging replica later answers with an
 * older cart rather than with none. */
static void lab_assess_stale_prepare(lab_assess_ctx *x, const char *key)
{
    char what[LAB_ASSESS_SCORE_TEXT], path[160], err[LAB_ASSESS_SCORE_TEXT], got[64], served[96];
    int64_t version;
    double end = lab_assess_now() + 8.0;
    int rc = lab_assess_write_read(x, key, "v0", what, sizeof what);

    if (rc != LAB_ASSESS_STALE && rc != LAB_ASSESS_MISSING)
        return;
    lab_assess_set(path, sizeof path, "/read/%s", key);
    while (lab_assess_now() < end) {
        httpc_resp r;
        cJSON *j;
        bool seen;

        lab_assess_sleep(0.5);
        lab_assess_call(x, "GET", x->ctl, path, NULL, 0, LAB_ASSESS_TIMEOUT_MS, &r);
        j = lab_assess_json(&r);
        seen = r.status == 200 &&
               lab_assess_score_check_read(j, key, got, sizeof got, &version, served,
                                 sizeof served, err, sizeof err) == 0 &&
               strcmp(got, "v0") == 0;
        cJSON_Delete(j);
        httpc_resp_free(&r);
        if (seen)
            break;
    }
}

static void lab_assess_stale(lab_assess_ctx *x)
{
    lab_assess_score_stale_obs o;
    char key[128], value[64], what[LAB_ASSESS_SCORE_TEXT];

    memset(&o, 0, sizeof o);
    lab_assess_set(key, sizeof key, "%s-cart", x->tag);
    lab_assess_stale_prepare(x, key);
    for (int i = 1; i <= LAB_ASSESS_STALE_ROUNDS; i++) {
        int rc;
        lab_assess_set(value, sizeof value, "v%d", i);
        rc = lab_assess_write_read(x, key, value, what, sizeof what);
        o.rounds++;
        o.fresh += rc == LAB_ASSESS_FRESH;
        o.stale += rc == LAB_ASSESS_STALE;
        o.missing += rc == LAB_ASSESS_MISSING;
        o.errors += rc == LAB_ASSESS_ERROR;
        if (rc != LAB_ASSESS_FRESH && o.first_bad[0] == '\0')
            lab_assess_set(o.first_bad, sizeof o.first_bad, "%s", what);
        /* Prefer a stale example over a missing one: it shows the lag. */
        if (rc == LAB_ASSESS_STALE && o.stale == 1)
            lab_assess_set(o.first_bad, sizeof o.first_bad, "%s", what);
    }
    lab_assess_log(x, "INC-3 rounds: %d fresh, %d stale, %d missing, %d failed",
           o.fresh, o.stale, o.missing, o.errors);
    for (int i = 1; i <= LAB_ASSESS_STALE_KEYS; i++) {
        int rc;
        lab_assess_set(key, sizeof key, "%s-item-%d", x->tag, i);
        lab_assess_set(value, sizeof value, "item-%d", i);
        rc = lab_assess_write_read(x, key, value, what, sizeof what);
        o.keys++;
        o.keys_fresh += rc == LAB_ASSESS_FRESH;
        o.keys_stale += rc == LAB_ASSESS_STALE;
        o.keys_missing += rc == LAB_ASSESS_MISSING;
        o.keys_errors += rc == LAB_ASSESS_ERROR;
        if (rc != LAB_ASSESS_FRESH && o.first_bad_key[0] == '\0')
            lab_assess_set(o.first_bad_key, sizeof o.first_bad_key, "%s", what);
    }
    lab_assess_score_judge_stale(&x->rep, &x->cfg, &o);
}

/* ---- INC-4 ---- */

/* The alive followers sorted by id into out (returns how many). */
static size_t lab_assess_alive_sorted(const lab_assess_score_status *s, lab_assess_score_node *out)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfollowers; i++)
        if (s->followers[i].alive)
            out[n++] = s->followers[i];
    qsort(out, n, sizeof *out, lab_assess_node_cmp);
    return n;
}

/* POST /kill/{id}: 0, or -1 with err. */
static int lab_assess_kill(lab_assess_ctx *x, const char *id, char *err, size_t errlen)
{
    char path[160], t[160];
    httpc_resp r;
    cJSON *j;
    const cJSON *st;
    int rc = 0;

    lab_assess_set(path, sizeof path, "/kill/%s", id);
    lab_assess_call(x, "POST", x->ctl, path, NULL, 0, LAB_ASSESS_TIMEOUT_MS, &r);
    j = lab_assess_json(&r);
    st = cJSON_GetObjectItemCaseSensitive(j, "status");
    if (r.status != 200) {
        lab_assess_err_text(&r, t, sizeof t);
        lab_assess_set(err, errlen, "POST /kill/%s answered %ld: %s", id, r.status, t);
        rc = -1;
    } else if (!cJSON_IsString(st) || strcmp(st->valuestring, "stopped") != 0) {
        lab_assess_set(err, errlen, "POST /kill/%s: \"status\" is not \"stopped\"", id);
        rc = -1;
    }
    cJSON_Delete(j);
    httpc_resp_free(&r);
    return rc;
}

/* POST /spawn with an optional {"node_id"}; fills the new node's id and
 * url. Returns the HTTP status (0 = no answer); err on anything but 200. */
static long lab_assess_spawn(lab_assess_ctx *x, const char *id, char *new_id,
                     size_t idlen, char *url, size_t urllen, char *err,
                     size_t errlen)
{
    char body[160], t[160];
    httpc_resp r;
    cJSON *j;
    const cJSON *st, *nid, *nurl;
    long status;

    if (id)
        lab_assess_set(body, sizeof body, "{\"node_id\":\"%s\"}", id);
    lab_assess_call(x, "POST", x->ctl, "/spawn", id ? body : NULL, 0,
            LAB_ASSESS_SPAWN_TIMEOUT_MS, &r);
    status = r.status;
    j = lab_assess_json(&r);
    st = cJSON_GetObjectItemCaseSensitive(j, "status");
    nid = cJSON_GetObjectItemCaseSensitive(j, "node_id");
    nurl = cJSON_GetObjectItemCaseSensitive(j, "url");
    if (status != 200) {
        lab_assess_err_text(&r, t, sizeof t);
        lab_assess_set(err, errlen, "POST /spawn answered %ld: %s", status, t);
    } else if (!cJSON_IsString(st) || strcmp(st->valuestring, "spawned") != 0 ||
               !cJSON_IsString(nid) || !cJSON_IsString(nurl)) {
        lab_assess_set(err, errlen, "POST /spawn: the answer is not {\"status\":"
                 "\"spawned\",\"node_id\",\"url\"}");
        status = -1;
    } else {
        lab_assess_set(new_id, idlen, "%s", nid->valuestring);
        lab_assess_set(url, urllen, "%s", nurl->valuestring);
    }
    cJSON_Delete(j);
    httpc_resp_free(&r);
    return status;
}

/* Spawn back every killed follower that is not alive, then wait for N
 * alive. Prints a note when the cluster does not heal. */
static void lab_assess_restore(lab_assess_ctx *x, lab_assess_score_node *killed, size_t n)
{
    lab_assess_score_status s;
    char err[LAB_ASSESS_SCORE_TEXT], id[64], url[128];

    for (size_t i = 0; i < n; i++) {
        const lab_assess_score_node *now;
        long st;
        if (lab_assess_status(x, &s, err, sizeof err) == 0 &&
            (now = lab_assess_score_status_find(&s, killed[i].id)) != NULL && now->alive)
            continue;   /* auto-spawn was first */
        st = lab_assess_spawn(x, killed[i].id, id, sizeof id, url, sizeof url, err,
                      sizeof err);
        if (st != 200 && st != 409)
            printf("NOTE: spawning %s back: %s\n", killed[i].id, err);
        else
            lab_assess_log(x, "spawned %s back (%ld)", killed[i].id, st);
    }
    if (lab_assess_wait_healthy(x, LAB_ASSESS_HEAL_DEADLINE_S, false, 0, &s, err, sizeof err) != 0)
        printf("NOTE: the cluster did not heal within %.0f s (%s); the next "
               "scenario may suffer\n", LAB_ASSESS_HEAL_DEADLINE_S, err);
}

static void lab_assess_outage(lab_assess_ctx *x)
{
    lab_assess_score_outage_obs o;
    lab_assess_score_status s;
    lab_assess_score_node alive[LAB_ASSESS_SCORE_MAX_NODES], killed[LAB_ASSESS_SCORE_MAX_NODES];
    size_t nalive, nkilled = 0;
    int k = lab_assess_score_kill_count(x->cfg.followers);
    char err[LAB_ASSESS_SCORE_TEXT];

    memset(&o, 0, sizeof o);
    if (lab_assess_wait_healthy(x, LAB_ASSESS_HEAL_DEADLINE_S, false, 0, &s, err, sizeof err) != 0) {
        lab_assess_set(o.kill_err, sizeof o.kill_err, "the cluster was not healthy "
                 "before the test: %s", err);
        lab_assess_score_judge_outage(&x->rep, &x->cfg, &o);
        return;
    }
    nalive = lab_assess_alive_sorted(&s, alive);
    for (int i = 0; i < k && (size_t)i < nalive; i++) {
        if (lab_assess_kill(x, alive[i].id, err, sizeof err) != 0) {
            lab_assess_set(o.kill_err, sizeof o.kill_err, "%s", err);
            break;
        }
        killed[nkilled++] = alive[i];
    }
    o.killed = (int)nkilled;
    lab_assess_log(x, "INC-4 killed %zu followers, first %s", nkilled,
           nkilled ? killed[0].id : "-");

    if (o.kill_err[0] == '\0') {
        /* /status must show them dead before the writes count. */
        double end = lab_assess_now() + 3.0;
        do {
            bool all_dead = true;
            if (lab_assess_status(x, &s, err, sizeof err) == 0) {
                for (size_t i = 0; i < nkilled; i++) {
                    const lab_assess_score_node *nd = lab_assess_score_status_find(&s, killed[i].id);
                    if (nd && nd->alive && strcmp(nd->url, killed[i].url) == 0)
                        all_dead = false;
                }
                if (all_dead) {
                    o.status_seen = true;
                    o.can_write = s.can_write;
                    o.can_read = s.can_read;
                    o.alive = (int64_t)lab_assess_score_status_alive(&s);
                    break;
                }
            }
            lab_assess_sleep(0.05);
        } while (lab_assess_now() < end);

        for (int i = 1; i <= LAB_ASSESS_OUTAGE_WRITES; i++) {
            char key[128], value[64], body[256];
            httpc_resp r;
            lab_assess_set(key, sizeof key, "%s-outage-%d", x->tag, i);
            lab_assess_set(value, sizeof value, "during-outage-%d", i);
            lab_assess_kv_body(body, sizeof body, key, value);
            lab_assess_call(x, "POST", x->ctl, "/write", body, 0, LAB_ASSESS_WRITE_TIMEOUT_MS, &r);
            o.writes++;
            if (r.status == 200) {
                o.writes_ok++;
            } else if (o.writes - 1 == o.writes_ok) {   /* the first failure */
                o.write_fail_status = r.status;
                lab_assess_err_text(&r, o.write_fail, sizeof o.write_fail);
            }
            httpc_resp_free(&r);
        }
        for (int i = 1; i <= LAB_ASSESS_OUTAGE_READS; i++) {
            char path[160], value[256], served[96];
            int64_t version;
            httpc_resp r;
            cJSON *j;
            bool ok;
            lab_assess_set(path, sizeof path, "/read/%s", x->k0);
            lab_assess_call(x, "GET", x->ctl, path, NULL, 0, LAB_ASSESS_TIMEOUT_MS, &r);
            j = lab_assess_json(&r);
            if (r.status == 200)
                ok = lab_assess_score_check_read(j, x->k0, value, sizeof value, &version,
                                       served, sizeof served, err, sizeof err) == 0 &&
                     (!x->k0_ok || strcmp(value, x->v0) == 0);
            else
                ok = r.status == 404 && !x->k0_ok;
            o.reads++;
            if (ok) {
                o.reads_ok++;
            } else if (o.reads - 1 == o.reads_ok) {
                o.read_fail_status = r.status;
                if (r.status == 200)
                    lab_assess_set(o.read_fail, sizeof o.read_fail,
                             "the answer is not the value written in INC-0");
                else
                    lab_assess_err_text(&r, o.read_fail, sizeof o.read_fail);
            }
            cJSON_Delete(j);
            httpc_resp_free(&r);
        }
        lab_assess_log(x, "INC-4 with %zu down: %d of %d writes, %d of %d reads ok",
               nkilled, o.writes_ok, o.writes, o.reads_ok, o.reads);
    }
    lab_assess_score_judge_outage(&x->rep, &x->cfg, &o);
    lab_assess_restore(x, killed, nkilled);
}

/* ---- INC-2/5 ---- */

static void lab_assess_pause_test(lab_assess_ctx *x, lab_assess_score_recovery_obs *o)
{
    lab_assess_score_status s0, s1, s;
    char err[LAB_ASSESS_SCORE_TEXT], path[160], t[160];
    const lab_assess_score_node *target = NULL;
    lab_assess_score_node tgt;
    httpc_resp r;
    double window, end, t_pause;

    if (lab_assess_wait_healthy(x, LAB_ASSESS_HEAL_DEADLINE_S, false, 0, &s0, err, sizeof err) != 0) {
        lab_assess_set(o->pause_err, sizeof o->pause_err, "the cluster was not "
                 "healthy before the test: %s", err);
        return;
    }
    /* A baseline that holds still for half a second. */
    for (int i = 0; i < 6; i++) {
        char why[LAB_ASSESS_SCORE_TEXT];
        lab_assess_sleep(0.5);
        if (lab_assess_status(x, &s1, err, sizeof err) != 0)
            continue;
        if (!lab_assess_score_status_replaced(&s0, &s1, why, sizeof why) &&
            lab_assess_healthy(x, &s1, false))
            break;
        s0 = s1;
    }
    target = lab_assess_score_status_find(&s0, "follower-2");
    if (target == NULL || !target->alive) {
        lab_assess_score_node alive[LAB_ASSESS_SCORE_MAX_NODES];
        size_t n = lab_assess_alive_sorted(&s0, alive);
        if (n == 0) {
            lab_assess_set(o->pause_err, sizeof o->pause_err, "no follower alive to pause");
            return;
        }
        target = lab_assess_score_status_find(&s0, alive[n > 1 ? 1 : 0].id);
    }
    tgt = *target;
    lab_assess_set(o->pause_target, sizeof o->pause_target, "%s", tgt.id);

    lab_assess_set(path, sizeof path, "/pause/%s?ms=%d", tgt.id, LAB_ASSESS_SCORE_PAUSE_MS);
    t_pause = lab_assess_now();   /* the call may return before or after the pause */
    lab_assess_call(x, "POST", x->ctl, path, NULL, 0, LAB_ASSESS_TIMEOUT_MS, &r);
    if (r.status < 200 || r.status >= 300) {
        lab_assess_err_text(&r, t, sizeof t);
        lab_assess_set(o->pause_err, sizeof o->pause_err, "POST %s answered %ld: %s",
                 path, r.status, t);
        httpc_resp_free(&r);
        return;
    }
    httpc_resp_free(&r);

    window = (x->cfg.auto_spawn && x->cfg.auto_spawn_delay > LAB_ASSESS_SCORE_PAUSE_MS / 1000.0
                  ? x->cfg.auto_spawn_delay : LAB_ASSESS_SCORE_PAUSE_MS / 1000.0) + 3.0;
    o->pause_window_s = window;
    end = t_pause + window;
    lab_assess_log(x, "INC-2 paused %s for %d ms; watching /status for %.1f s", tgt.id,
           LAB_ASSESS_SCORE_PAUSE_MS, window);
    while (lab_assess_now() < end) {
        if (lab_assess_status(x, &s, err, sizeof err) == 0 &&
            lab_assess_score_status_replaced(&s0, &s, o->ghost_why, sizeof o->ghost_why)) {
            o->ghost = true;
            break;
        }
        lab_assess_sleep(0.25);
    }
    if (o->ghost) {
        lab_assess_log(x, "INC-2 ghost: %s", o->ghost_why);
        /* Let the replacement settle before the next test. */
        lab_assess_wait_healthy(x, LAB_ASSESS_HEAL_DEADLINE_S, false, 0, &s, err, sizeof err);
        return;
    }
    end = lab_assess_now() + 5.0;
    do {
        const lab_assess_score_node *nd;
        if (lab_assess_status(x, &s, err, sizeof err) == 0 &&
            (nd = lab_assess_score_status_find(&s, tgt.id)) != NULL && nd->alive &&
            strcmp(nd->url, tgt.url) == 0) {
            o->back_alive = true;
            break;
        }
        lab_assess_sleep(0.25);
    } while (lab_assess_now() < end);
}

static void lab_assess_spawn_test(lab_assess_ctx *x, lab_assess_score_recovery_obs *o)
{
    lab_assess_score_status s;
    lab_assess_score_node alive[LAB_ASSESS_SCORE_MAX_NODES];
    char err[LAB_ASSESS_SCORE_TEXT], key[128], value[96], body[256], url[128], t[160];
    httpc_resp r;
    size_t n;
    long st;
    double end;

    o->join_deadline_s = LAB_ASSESS_JOIN_DEADLINE_S;
    if (lab_assess_wait_healthy(x, LAB_ASSESS_HEAL_DEADLINE_S, false, 0, &s, err, sizeof err) != 0) {
        lab_assess_set(o->spawn_err, sizeof o->spawn_err, "the cluster was not "
                 "healthy before the test: %s", err);
        return;
    }
    lab_assess_set(key, sizeof key, "%s-recovery", x->tag);
    lab_assess_set(value, sizeof value, "before-the-spawn-%s", x->tag);
    lab_assess_kv_body(body, sizeof body, key, value);
    lab_assess_call(x, "POST", x->ctl, "/write", body, 0, LAB_ASSESS_WRITE_TIMEOUT_MS, &r);
    if (r.status != 200) {
        lab_assess_err_text(&r, t, sizeof t);
        lab_assess_set(o->spawn_err, sizeof o->spawn_err, "could not write a key "
                 "before the kill: %ld %s", r.status, t);
        httpc_resp_free(&r);
        return;
    }
    httpc_resp_free(&r);

    n = lab_assess_alive_sorted(&s, alive);
    if (n == 0) {
        lab_assess_set(o->spawn_err, sizeof o->spawn_err, "no follower alive to kill");
        return;
    }
    if (lab_assess_kill(x, alive[n - 1].id, err, sizeof err) != 0) {
        lab_assess_set(o->spawn_err, sizeof o->spawn_err, "%s", err);
        return;
    }
    st = lab_assess_spawn(x, NULL, o->spawned_id, sizeof o->spawned_id, url, sizeof url,
                  err, sizeof err);
    if (st != 200) {
        lab_assess_set(o->spawn_err, sizeof o->spawn_err, "%s", err);
        return;
    }
    lab_assess_log(x, "INC-2 killed %s, spawned %s at %s", alive[n - 1].id,
           o->spawned_id, url);

    end = lab_assess_now() + LAB_ASSESS_JOIN_DEADLINE_S;
    do {
        const lab_assess_score_node *nd;
        if (lab_assess_status(x, &s, err, sizeof err) == 0 &&
            (nd = lab_assess_score_status_find(&s, o->spawned_id)) != NULL && nd->alive &&
            strcmp(nd->url, url) == 0) {
            o->spawned_alive = true;
            break;
        }
        lab_assess_sleep(0.2);
    } while (lab_assess_now() < end);

    /* It joined after its catch-up, so it should hold the key now; give it
     * a few seconds in case /status runs a little ahead. */
    end = lab_assess_now() + 5.0;
    {
        char path[192], hp[160];
        lab_assess_set(path, sizeof path, "/internal/kv/%s", key);
        do {
            lab_assess_call(x, "GET", url, path, NULL, 0, LAB_ASSESS_TIMEOUT_MS, &r);
            if (r.status == 200 && r.len == strlen(value) &&
                memcmp(r.body, value, r.len) == 0) {
                o->caught_up = true;
                httpc_resp_free(&r);
                break;
            }
            lab_assess_err_text(&r, hp, sizeof hp);
            lab_assess_set(o->catchup_err, sizeof o->catchup_err,
                     "spawned %s does not hold %s written before it started "
                     "(GET %s%s: %ld %s)", o->spawned_id, key, url, path,
                     r.status, r.status == 200 ? "another value" : hp);
            httpc_resp_free(&r);
            lab_assess_sleep(0.25);
        } while (lab_assess_now() < end);
    }
}

static void lab_assess_recovery(lab_assess_ctx *x)
{
    lab_assess_score_recovery_obs o;

    memset(&o, 0, sizeof o);
    lab_assess_pause_test(x, &o);
    lab_assess_spawn_test(x, &o);
    lab_assess_score_judge_recovery(&x->rep, &x->cfg, &o);
}

/* ---- the cluster ---- */

/* Does anything answer at base+path? */
static bool lab_assess_answers(const char *base, const char *path)
{
    char url[512];
    httpc_req req = {0};
    httpc_resp r;
    bool yes;

    lab_assess_set(url, sizeof url, "%s%s", base, path);
    req.url = url;
    req.timeout_ms = 800;
    yes = httpc_do(&req, &r) == 0 && r.status != 0;
    httpc_resp_free(&r);
    return yes;
}

static pid_t lab_assess_start(const char *bin, const char *cfg, const char *dir,
                      const char *log)
{
    pid_t parent = getpid();
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid != 0)
        return pid;
    /* The child: dies with kvctl; output to the log; data under dir. */
    {
        char data[LAB_CONFIG_PATH_MAX + 8];
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int nul = open("/dev/null", O_RDONLY);

        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        lab_assess_set(data, sizeof data, "%s/data", dir);
        setenv("KV_DATA_DIR", data, 1);
        if (chdir(dir) != 0)
            _exit(127);
        execl(bin, LAB_CLI_CONTROLLER_BIN, "--lab", cfg, (char *)NULL);
        fprintf(stderr, "kvctl assess: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
}

static void lab_assess_stop(pid_t pid)
{
    double end;
    int st;

    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    end = lab_assess_now() + LAB_ASSESS_STOP_GRACE_S;
    while (lab_assess_now() < end) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD))
            return;
        lab_assess_sleep(0.1);
    }
    fprintf(stderr, "kvctl assess: kv-controller did not stop within %.0f s; "
            "killing it\n", LAB_ASSESS_STOP_GRACE_S);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

/* Strip trailing slashes into out. */
static void lab_assess_base(const char *in, char *out, size_t outlen)
{
    size_t n;
    lab_assess_set(out, outlen, "%s", in);
    n = strlen(out);
    while (n > 0 && out[n - 1] == '/')
        out[--n] = '\0';
}

static void lab_assess_summary(lab_assess_ctx *x)
{
    const lab_config *c = &x->cfg;
    int total = lab_assess_score_total(&x->rep);
    int filled = lab_config_just_count(c);

    printf("\n");
    for (int s = 0; s < LAB_ASSESS_SCORE_NSCEN; s++)
        printf("%-8s %-32s %2d/%d\n", lab_assess_score_scen_label(s), lab_assess_score_scen_title(s),
               lab_assess_score_scen_points(&x->rep, s), lab_assess_score_scen_max(s));
    printf("\nScore: %d/100, grade %c\n", total, lab_assess_score_grade(total));
    printf("W + R vs N: %lld + %lld = %lld, %s N = %lld%s\n",
           (long long)c->write_quorum, (long long)c->read_quorum,
           (long long)(c->write_quorum + c->read_quorum),
           lab_config_strong(c) ? "more than" : "not more than",
           (long long)c->followers,
           lab_config_strong(c) ? "" : " (reads can miss the latest write: INC-3)");
    printf("Cost: %lld nodes x $%d/h = $%lld/h, %s the $%d/h budget%s\n",
           (long long)(1 + c->followers), LAB_CONFIG_NODE_COST_USD,
           (long long)lab_config_cost_per_hour(c),
           lab_config_within_budget(c) ? "within" : "over", LAB_CONFIG_BUDGET_USD,
           lab_config_within_budget(c) ? "" : " (INC-5)");
    printf("Justifications: %d of %d filled", filled, LAB_CONFIG_NJUST);
    if (filled < LAB_CONFIG_NJUST) {
        const char *sep = "; still empty or TODO: ";
        for (int i = 0; i < LAB_CONFIG_NJUST; i++) {
            if (c->just_filled[i])
                continue;
            printf("%sjustifications.%s", sep, lab_config_just_name(i));
            sep = ", ";
        }
    }
    printf("\n");
    if (total == 100 && filled < LAB_CONFIG_NJUST)
        printf("Every scenario passes; the assessment is complete once the "
               "justifications are written.\n");
    fflush(stdout);
}

static int lab_assess_usage(void)
{
    fprintf(stderr, "usage: kvctl assess --config FILE [--no-start-cluster] "
            "[--controller URL] [--gateway URL] [--verbose]\n");
    return KVCTL_USAGE;
}

/* The command line of kvctl assess. */
typedef struct lab_assess_args {
    const char *config, *ctl, *gw;
    bool start;
    int verbose;
} lab_assess_args;

/* 0, or the exit status of a usage error (already printed). */
static int lab_assess_parse_args(int argc, char **argv, lab_assess_args *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = NULL;
        const char *val = NULL;
        if (strcmp(a, "--no-start-cluster") == 0) {
            o->start = false;
            continue;
        }
        if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o->verbose = 1;
            continue;
        }
        if (strncmp(a, "--config", 8) == 0 && (a[8] == '\0' || a[8] == '='))
            dst = &o->config;
        else if (strncmp(a, "--controller", 12) == 0 && (a[12] == '\0' || a[12] == '='))
            dst = &o->ctl;
        else if (strncmp(a, "--gateway", 9) == 0 && (a[9] == '\0' || a[9] == '='))
            dst = &o->gw;
        if (dst == NULL) {
            fprintf(stderr, "kvctl assess: unknown argument %s\n", a);
            return lab_assess_usage();
        }
        val = strchr(a, '=');
        if (val)
            val++;
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(stderr, "kvctl assess: %s needs a value\n", a);
            return KVCTL_USAGE;
        }
        *dst = val;
    }
    return o->config == NULL ? lab_assess_usage() : 0;
}

/* Start the lab cluster in a fresh directory dir (its log at log) and wait
 * until it is healthy. 0 with *child and *s, or KVCTL_CONNECT (printed). */
static int lab_assess_start_cluster(lab_assess_ctx *x, char *dir, size_t dirlen,
                                    char *log, size_t loglen, pid_t *child,
                                    lab_assess_score_status *s)
{
    const char *tmp = getenv("TMPDIR");
    char bin[LAB_CONFIG_PATH_MAX], err[LAB_CONFIG_PATH_MAX + 256];
    double t0;
    int rc;

    if (lab_cli_controller_path(bin, sizeof bin, err, sizeof err) != 0) {
        fprintf(stderr, "kvctl assess: %s\n", err);
        return KVCTL_CONNECT;
    }
    if (lab_assess_answers(x->ctl, "/status") || lab_assess_answers(x->gw, "/health")) {
        fprintf(stderr, "kvctl assess: something already answers on %s or "
                "%s; stop it (a running `kvctl lab`?), or grade it with "
                "--no-start-cluster\n", x->ctl, x->gw);
        return KVCTL_CONNECT;
    }
    lab_assess_set(dir, dirlen, "%s/kv-assess-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "kvctl assess: mkdtemp %s: %s\n", dir, strerror(errno));
        return KVCTL_CONNECT;
    }
    lab_assess_set(log, loglen, "%s/controller.log", dir);
    printf("Starting the lab cluster: %s --lab %s\n  (log: %s)\n", bin,
           x->cfg.path, log);
    fflush(stdout);
    t0 = lab_assess_now();
    *child = lab_assess_start(bin, x->cfg.path, dir, log);
    if (*child < 0) {
        fprintf(stderr, "kvctl assess: fork: %s\n", strerror(errno));
        *child = 0;
        return KVCTL_CONNECT;
    }
    rc = lab_assess_wait_healthy(x, LAB_ASSESS_START_DEADLINE_S, true, *child, s, err,
                         sizeof err);
    if (rc != 0) {
        if (rc == -2)
            fprintf(stderr, "kvctl assess: %s before the lab cluster was "
                    "ready\n", err);
        else
            fprintf(stderr, "kvctl assess: the lab cluster was not ready "
                    "within %.0f s: %s\n", LAB_ASSESS_START_DEADLINE_S, err);
        lab_cli_tail_log(log);
        if (rc != -2)
            lab_assess_stop(*child);
        *child = 0;
        return KVCTL_CONNECT;
    }
    printf("Cluster ready in %.1f s: leader and %zu followers alive\n",
           lab_assess_now() - t0, lab_assess_score_status_alive(s));
    return 0;
}

/* --no-start-cluster: a lab cluster must already answer. 0 with *s (its W
 * and R may not match the config: the caller checks), or KVCTL_CONNECT. */
static int lab_assess_attach(lab_assess_ctx *x, lab_assess_score_status *s)
{
    char err[LAB_CONFIG_PATH_MAX + 256];
    httpc_resp r;
    long status;

    lab_assess_call(x, "GET", x->ctl, "/status", NULL, 0, LAB_ASSESS_TIMEOUT_MS, &r);
    status = r.status;
    httpc_resp_free(&r);
    if (status == 0) {
        fprintf(stderr, "kvctl assess: nothing answers at %s; start the lab "
                "with kvctl lab --config %s, or leave out "
                "--no-start-cluster\n", x->ctl, x->cfg.path);
        return KVCTL_CONNECT;
    }
    if (lab_assess_status(x, s, err, sizeof err) == 0 &&
        (s->W != x->cfg.write_quorum || s->R != x->cfg.read_quorum))
        return 0;
    if (lab_assess_wait_healthy(x, LAB_ASSESS_START_DEADLINE_S, false, 0, s, err,
                         sizeof err) != 0) {
        fprintf(stderr, "kvctl assess: no healthy lab cluster at %s: %s\n",
                x->ctl, err);
        return KVCTL_CONNECT;
    }
    return 0;
}

static void lab_assess_run_scenarios(lab_assess_ctx *x)
{
    void (*const scen[LAB_ASSESS_SCORE_NSCEN])(lab_assess_ctx *) = {
        lab_assess_basic, lab_assess_rate, lab_assess_stale, lab_assess_outage, lab_assess_recovery,
    };

    for (int i = 0; i < LAB_ASSESS_SCORE_NSCEN; i++) {
        size_t from = x->rep.n;
        lab_assess_header(i);
        scen[i](x);
        lab_assess_flush(x, from);
    }
    if (x->nobind)
        printf("NOTE: could not bind to %sN; gateway requests were told apart "
               "by X-Real-IP only\n", x->ipbase);
}

int lab_assess_cmd(const kvctl_opts *opts, int argc, char **argv)
{
    lab_assess_args a = {.ctl = LAB_ASSESS_DEFAULT_CONTROLLER,
                         .gw = LAB_ASSESS_DEFAULT_GATEWAY, .start = true};
    lab_assess_ctx *x = NULL;
    char ctlbuf[512], gwbuf[512], dir[LAB_CONFIG_PATH_MAX], log[LAB_CONFIG_PATH_MAX + 32];
    pid_t child = 0;
    lab_assess_score_status s;
    int rc, total;

    (void)opts;
    if ((rc = lab_assess_parse_args(argc, argv, &a)) != 0)
        return rc;
    x = calloc(1, sizeof *x);
    if (x == NULL)
        return KVCTL_FAIL;
    x->verbose = a.verbose;
    if (lab_cli_load_config("assess", a.config, &x->cfg) != 0) {
        rc = KVCTL_USAGE;
        goto out;
    }
    lab_assess_base(a.ctl, ctlbuf, sizeof ctlbuf);
    lab_assess_base(a.gw, gwbuf, sizeof gwbuf);
    x->ctl = ctlbuf;
    x->gw = gwbuf;
    {
        unsigned pid = (unsigned)getpid(), now = (unsigned)time(NULL);
        lab_assess_set(x->ipbase, sizeof x->ipbase, "127.%u.%u.", 1 + pid % 250,
                 1 + (now / 7) % 250);
        lab_assess_set(x->tag, sizeof x->tag, "assess-%u-%u", pid, now % 1000000);
    }

    printf("CloudCart lab assessment\n");
    lab_config_print_summary(stdout, &x->cfg);
    printf("\n");

    dir[0] = log[0] = '\0';
    rc = a.start ? lab_assess_start_cluster(x, dir, sizeof dir, log, sizeof log,
                                            &child, &s)
                 : lab_assess_attach(x, &s);
    if (rc != 0)
        goto out;
    if (s.W != x->cfg.write_quorum || s.R != x->cfg.read_quorum) {
        fprintf(stderr, "kvctl assess: the cluster at %s runs W=%lld R=%lld but "
                "%s says W=%lld R=%lld; restart it with kvctl lab --config %s\n",
                x->ctl, (long long)s.W, (long long)s.R, x->cfg.path,
                (long long)x->cfg.write_quorum, (long long)x->cfg.read_quorum,
                x->cfg.path);
        lab_assess_stop(child);
        rc = KVCTL_USAGE;
        goto out;
    }

    lab_assess_run_scenarios(x);
    lab_assess_stop(child);
    total = lab_assess_score_total(&x->rep);
    lab_assess_summary(x);
    if (a.start) {
        if (total == 100) {
            char cmd[LAB_CONFIG_PATH_MAX + 16];
            lab_assess_set(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (strchr(dir, '\'') == NULL && system(cmd) != 0)
                fprintf(stderr, "kvctl assess: could not remove %s\n", dir);
        } else {
            printf("Controller log: %s\n", log);
        }
    }
    rc = lab_assess_score_exit_status(total, lab_config_just_count(&x->cfg));
    httpc_thread_done();
out:
    free(x);
    return rc;
}
