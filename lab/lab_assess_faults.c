/* lab_assess_faults: the scenarios of `kvctl assess` that kill and pause
 * followers: INC-4 (write outage after floor(N/2) kills) and INC-2/5
 * (recovery without duplicates, right-sizing); see lab_assess.c. */
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

void lab_assess_outage(lab_assess_ctx *x)
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

void lab_assess_recovery(lab_assess_ctx *x)
{
    lab_assess_score_recovery_obs o;

    memset(&o, 0, sizeof o);
    lab_assess_pause_test(x, &o);
    lab_assess_spawn_test(x, &o);
    lab_assess_score_judge_recovery(&x->rep, &x->cfg, &o);
}
