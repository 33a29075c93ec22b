/* lab_assess_traffic: the scenarios of `kvctl assess` that only send
 * requests: INC-0 (basic), INC-1 (sustained rate limit), INC-3 (stale
 * reads); see lab_assess.c for the whole run. */
#include "lab_assess_internal.h"

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

/* ---- INC-0 ---- */

void lab_assess_basic(lab_assess_ctx *x)
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

void lab_assess_rate(lab_assess_ctx *x)
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

void lab_assess_stale(lab_assess_ctx *x)
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
