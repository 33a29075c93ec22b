/* lab_assess_score: see lab_assess_score.h. */
#include "lab_assess_score.h"

#include "json_whole.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const lab_assess_score_labels[LAB_ASSESS_SCORE_NSCEN] = {
    "INC-0", "INC-1", "INC-3", "INC-4", "INC-2/5",
};
static const char *const lab_assess_score_titles[LAB_ASSESS_SCORE_NSCEN] = {
    "Basic Operations", "Gateway Flood (Rate Limiting)",
    "Stale Cart Data (Consistency)", "Write Outage (Fault Tolerance)",
    "Recovery & Right-Sizing",
};
static const int lab_assess_score_maxes[LAB_ASSESS_SCORE_NSCEN] = {15, 15, 25, 25, 20};

const char *lab_assess_score_scen_label(int s)
{
    return s >= 0 && s < LAB_ASSESS_SCORE_NSCEN ? lab_assess_score_labels[s] : "?";
}

const char *lab_assess_score_scen_title(int s)
{
    return s >= 0 && s < LAB_ASSESS_SCORE_NSCEN ? lab_assess_score_titles[s] : "?";
}

int lab_assess_score_scen_max(int s)
{
    return s >= 0 && s < LAB_ASSESS_SCORE_NSCEN ? lab_assess_score_maxes[s] : 0;
}

/* ---- report ---- */

void lab_assess_score_add(lab_assess_score_report *r, int scen, const char *what, int points,
                int max, const char *reason_fmt, ...)
{
    lab_assess_score_test *t;

    if (r->n >= LAB_ASSESS_SCORE_MAX_TESTS)
        return;
    t = &r->tests[r->n++];
    memset(t, 0, sizeof *t);
    t->scen = scen;
    snprintf(t->what, sizeof t->what, "%s", what);
    t->points = points < 0 ? 0 : points > max ? max : points;
    t->max = max;
    if (t->points < max && reason_fmt) {
        va_list ap;
        va_start(ap, reason_fmt);
        vsnprintf(t->reason, sizeof t->reason, reason_fmt, ap);
        va_end(ap);
    }
}

int lab_assess_score_scen_points(const lab_assess_score_report *r, int scen)
{
    int sum = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->tests[i].scen == scen)
            sum += r->tests[i].points;
    return sum;
}

int lab_assess_score_total(const lab_assess_score_report *r)
{
    int sum = 0;
    for (size_t i = 0; i < r->n; i++)
        sum += r->tests[i].points;
    return sum;
}

void lab_assess_score_format_test(const lab_assess_score_test *t, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s %s: %s (%d/%d)%s%s",
             t->points == t->max ? "PASS" : "FAIL", lab_assess_score_scen_label(t->scen),
             t->what, t->points, t->max, t->reason[0] ? ": " : "", t->reason);
}

char lab_assess_score_grade(int score)
{
    if (score >= 90)
        return 'A';
    if (score >= 80)
        return 'B';
    if (score >= 70)
        return 'C';
    if (score >= 60)
        return 'D';
    return 'F';
}

int lab_assess_score_prorate(int max, int good, int total)
{
    if (total <= 0 || good <= 0)
        return 0;
    if (good >= total)
        return max;
    return (int)((int64_t)max * good / total);
}

int lab_assess_score_kill_count(int64_t followers)
{
    int64_t k = followers / 2;
    return k < 1 ? 1 : (int)k;
}

int lab_assess_score_exit_status(int score, int justifications_filled)
{
    return score >= 100 && justifications_filled >= LAB_CONFIG_NJUST ? 0 : 1;
}

/* ---- judges ---- */

void lab_assess_score_judge_rate(lab_assess_score_report *r, const lab_config *c,
                       const lab_assess_score_rate_obs *o)
{
    char what[LAB_ASSESS_SCORE_TEXT];
    double gap = o->gap_secs > 0 ? o->gap_secs : LAB_ASSESS_SCORE_SCRAPER_PAUSE_S;

    snprintf(what, sizeof what, "a burst of %d requests is limited", o->a_sent);
    if (o->a_sent == 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, 0, LAB_ASSESS_SCORE_PTS_RATE_FIRST,
                   "INC-1: the first burst could not be sent");
    else if (o->a_other > 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, 0, LAB_ASSESS_SCORE_PTS_RATE_FIRST,
                   "INC-1: %d of %d requests of the first burst got %ld, "
                   "neither an answer nor 429", o->a_other, o->a_sent,
                   o->other_status);
    else if (o->a_limited == 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, 0, LAB_ASSESS_SCORE_PTS_RATE_FIRST,
                   "INC-1: a burst of %d requests in %.1f s was never limited%s",
                   o->a_sent, o->a_secs,
                   !c->rate_limit_enabled ? " (gateway.rate_limit_enabled is false)"
                   : c->rate_limit_max >= o->a_sent ? " (the limit is above the burst)"
                   : "");
    else if (o->a_ok > c->rate_limit_max)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, 0, LAB_ASSESS_SCORE_PTS_RATE_FIRST,
                   "INC-1: %d of %d requests got through a limit of %lld",
                   o->a_ok, o->a_sent, (long long)c->rate_limit_max);
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, LAB_ASSESS_SCORE_PTS_RATE_FIRST,
                   LAB_ASSESS_SCORE_PTS_RATE_FIRST, NULL);

    snprintf(what, sizeof what, "a second burst %.1f s later is limited too", gap);
    if (o->b_sent == 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, 0, LAB_ASSESS_SCORE_PTS_RATE_SECOND,
                   "INC-1: the second burst could not be sent");
    else if (o->b_limited == o->b_sent)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, LAB_ASSESS_SCORE_PTS_RATE_SECOND,
                   LAB_ASSESS_SCORE_PTS_RATE_SECOND, NULL);
    else if (o->a_limited == 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, 0, LAB_ASSESS_SCORE_PTS_RATE_SECOND,
                   "INC-1: second burst not limited either: %d of %d requests "
                   "got through", o->b_sent - o->b_limited, o->b_sent);
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, 0, LAB_ASSESS_SCORE_PTS_RATE_SECOND,
                   "INC-1: second burst not limited after the window reset: "
                   "%d of %d requests got through %.1f s after the first burst "
                   "(window %g s)", o->b_sent - o->b_limited, o->b_sent, gap,
                   c->rate_limit_window);

    snprintf(what, sizeof what, "the 429 answer and /stats match the config");
    if (!o->have_429)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, 0, LAB_ASSESS_SCORE_PTS_RATE_SHAPE,
                   "INC-1: no 429 answer to check");
    else if (o->shape_err[0])
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, 0, LAB_ASSESS_SCORE_PTS_RATE_SHAPE,
                   "INC-1: %s", o->shape_err);
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RATE, what, LAB_ASSESS_SCORE_PTS_RATE_SHAPE,
                   LAB_ASSESS_SCORE_PTS_RATE_SHAPE, NULL);
}

/* ", W + R = 5 is not more than N = 5" when that explains stale reads. */
static void lab_assess_score_overlap_hint(const lab_config *c, char *out, size_t outlen)
{
    if (lab_config_strong(c))
        out[0] = '\0';
    else
        snprintf(out, outlen, "; W + R = %lld is not more than N = %lld",
                 (long long)(c->write_quorum + c->read_quorum),
                 (long long)c->followers);
}

void lab_assess_score_judge_stale(lab_assess_score_report *r, const lab_config *c,
                        const lab_assess_score_stale_obs *o)
{
    char what[LAB_ASSESS_SCORE_TEXT], hint[96];

    lab_assess_score_overlap_hint(c, hint, sizeof hint);
    snprintf(what, sizeof what, "%d rounds of write then read at once on one "
             "cart key see the latest version", o->rounds);
    if (o->rounds == 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_STALE, what, 0, LAB_ASSESS_SCORE_PTS_STALE_RYW,
                   "INC-3: no round could run");
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_STALE, what,
                   lab_assess_score_prorate(LAB_ASSESS_SCORE_PTS_STALE_RYW, o->fresh, o->rounds),
                   LAB_ASSESS_SCORE_PTS_STALE_RYW,
                   "INC-3: %s (%d of %d reads fresh: %d stale, %d missing, "
                   "%d failed%s)", o->first_bad[0] ? o->first_bad : "stale read",
                   o->fresh, o->rounds, o->stale, o->missing, o->errors, hint);

    snprintf(what, sizeof what, "%d new keys each read at once after their "
             "write", o->keys);
    if (o->keys == 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_STALE, what, 0, LAB_ASSESS_SCORE_PTS_STALE_KEYS,
                   "INC-3: no key could be written");
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_STALE, what,
                   lab_assess_score_prorate(LAB_ASSESS_SCORE_PTS_STALE_KEYS, o->keys_fresh, o->keys),
                   LAB_ASSESS_SCORE_PTS_STALE_KEYS,
                   "INC-3: %s (%d of %d reads fresh: %d stale, %d missing, "
                   "%d failed%s)",
                   o->first_bad_key[0] ? o->first_bad_key : "stale read",
                   o->keys_fresh, o->keys, o->keys_stale, o->keys_missing,
                   o->keys_errors, hint);
}

void lab_assess_score_judge_outage(lab_assess_score_report *r, const lab_config *c,
                         const lab_assess_score_outage_obs *o)
{
    char what[LAB_ASSESS_SCORE_TEXT], down[64];
    long long n = (long long)c->followers;
    int k = o->killed > 0 ? o->killed : lab_assess_score_kill_count(c->followers);

    snprintf(down, sizeof down, "%d of %lld followers", k, n);
    if (o->kill_err[0]) {
        snprintf(what, sizeof what, "writes with %s down", down);
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_WRITES,
                   "INC-4: %s", o->kill_err);
        snprintf(what, sizeof what, "reads with %s down", down);
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_READS,
                   "INC-4: %s", o->kill_err);
        snprintf(what, sizeof what, "/status reports can_write and can_read "
                 "with %s down", down);
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_STATUS,
                   "INC-4: %s", o->kill_err);
        return;
    }

    snprintf(what, sizeof what, "writes with %s down", down);
    if (o->writes > 0 && o->writes_ok == o->writes)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, LAB_ASSESS_SCORE_PTS_OUTAGE_WRITES,
                   LAB_ASSESS_SCORE_PTS_OUTAGE_WRITES, NULL);
    else if (o->writes == 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_WRITES,
                   "INC-4: no write was tried");
    else if (o->write_fail_status == 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_WRITES,
                   "INC-4: write got no answer after killing %s (W=%lld)%s%s",
                   down, (long long)c->write_quorum, o->write_fail[0] ? ": " : "",
                   o->write_fail);
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_WRITES,
                   "INC-4: write %ld after killing %s (W=%lld)%s%s",
                   o->write_fail_status, down, (long long)c->write_quorum,
                   o->write_fail[0] ? ": " : "", o->write_fail);

    snprintf(what, sizeof what, "reads with %s down", down);
    if (o->reads > 0 && o->reads_ok == o->reads)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, LAB_ASSESS_SCORE_PTS_OUTAGE_READS,
                   LAB_ASSESS_SCORE_PTS_OUTAGE_READS, NULL);
    else if (o->reads == 0)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_READS,
                   "INC-4: no read was tried");
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_READS,
                   "INC-4: read %ld after killing %s (R=%lld)%s%s",
                   o->read_fail_status, down, (long long)c->read_quorum,
                   o->read_fail[0] ? ": " : "", o->read_fail);

    snprintf(what, sizeof what, "/status reports can_write and can_read with "
             "%s down", down);
    if (!o->status_seen)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_STATUS,
                   "INC-4: /status never showed the killed followers dead");
    else if (!o->can_write)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_STATUS,
                   "INC-4: /status says can_write false with %lld of %lld "
                   "followers alive (W=%lld)", (long long)o->alive, n,
                   (long long)c->write_quorum);
    else if (!o->can_read)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, 0, LAB_ASSESS_SCORE_PTS_OUTAGE_STATUS,
                   "INC-4: /status says can_read false with %lld of %lld "
                   "followers alive (R=%lld)", (long long)o->alive, n,
                   (long long)c->read_quorum);
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_OUTAGE, what, LAB_ASSESS_SCORE_PTS_OUTAGE_STATUS,
                   LAB_ASSESS_SCORE_PTS_OUTAGE_STATUS, NULL);
}

void lab_assess_score_judge_recovery(lab_assess_score_report *r, const lab_config *c,
                           const lab_assess_score_recovery_obs *o)
{
    char what[LAB_ASSESS_SCORE_TEXT];
    const char *target = o->pause_target[0] ? o->pause_target : "a follower";
    int64_t cost = lab_config_cost_per_hour(c);

    snprintf(what, sizeof what, "no ghost node when %s pauses %d s",
             target, LAB_ASSESS_SCORE_PAUSE_MS / 1000);
    if (o->pause_err[0])
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, 0, LAB_ASSESS_SCORE_PTS_REC_GHOST,
                   "INC-2: %s", o->pause_err);
    else if (o->ghost)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, 0, LAB_ASSESS_SCORE_PTS_REC_GHOST,
                   "INC-2: ghost respawn: %s during a %d s pause "
                   "(auto_spawn_delay %g s)", o->ghost_why,
                   LAB_ASSESS_SCORE_PAUSE_MS / 1000, c->auto_spawn_delay);
    else if (!o->back_alive)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, 0, LAB_ASSESS_SCORE_PTS_REC_GHOST,
                   "INC-2: %s did not come back after a %d s pause", target,
                   LAB_ASSESS_SCORE_PAUSE_MS / 1000);
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, LAB_ASSESS_SCORE_PTS_REC_GHOST,
                   LAB_ASSESS_SCORE_PTS_REC_GHOST, NULL);

    snprintf(what, sizeof what, "a follower spawned after a kill joins the "
             "cluster");
    if (o->spawn_err[0])
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, 0, LAB_ASSESS_SCORE_PTS_REC_JOIN,
                   "INC-2: %s", o->spawn_err);
    else if (!o->spawned_alive)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, 0, LAB_ASSESS_SCORE_PTS_REC_JOIN,
                   "INC-2: spawned %s never showed alive in /status within %g s",
                   o->spawned_id[0] ? o->spawned_id : "follower",
                   o->join_deadline_s);
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, LAB_ASSESS_SCORE_PTS_REC_JOIN,
                   LAB_ASSESS_SCORE_PTS_REC_JOIN, NULL);

    snprintf(what, sizeof what, "the spawned follower has caught up from the "
             "leader");
    if (o->spawn_err[0])
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, 0, LAB_ASSESS_SCORE_PTS_REC_CATCHUP,
                   "INC-2: %s", o->spawn_err);
    else if (!o->caught_up)
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, 0, LAB_ASSESS_SCORE_PTS_REC_CATCHUP,
                   "INC-2: %s", o->catchup_err[0] ? o->catchup_err
                                                  : "no catch-up seen");
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, LAB_ASSESS_SCORE_PTS_REC_CATCHUP,
                   LAB_ASSESS_SCORE_PTS_REC_CATCHUP, NULL);

    snprintf(what, sizeof what, "cost within the $%d/h budget",
             LAB_CONFIG_BUDGET_USD);
    if (lab_config_within_budget(c))
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, LAB_ASSESS_SCORE_PTS_REC_COST,
                   LAB_ASSESS_SCORE_PTS_REC_COST, NULL);
    else
        lab_assess_score_add(r, LAB_ASSESS_SCORE_S_RECOVERY, what, 0, LAB_ASSESS_SCORE_PTS_REC_COST,
                   "INC-5: $%lld/h is over the $%d/h budget (%lld nodes x "
                   "$%d/h)", (long long)cost, LAB_CONFIG_BUDGET_USD,
                   (long long)(1 + c->followers), LAB_CONFIG_NODE_COST_USD);
}

/* ---- contracts ---- */

bool lab_assess_score_is_alive(const char *status)
{
    return status && (strcasecmp(status, "alive") == 0 ||
                      strcasecmp(status, "healthy") == 0 ||
                      strcasecmp(status, "up") == 0);
}

static void lab_assess_score_setf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lab_assess_score_setf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const cJSON *lab_assess_score_get(const cJSON *j, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(j, name);
}

/* An integer-valued JSON number. */
static bool lab_assess_score_int(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9.1e15)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static int lab_assess_score_parse_node(const cJSON *j, const char *where, lab_assess_score_node *n,
                             char *err, size_t errlen)
{
    static const char *const keys[] = {"node_id", "url", "status"};
    const cJSON *inc;

    memset(n, 0, sizeof *n);
    n->incarnation = -1;
    if (!cJSON_IsObject(j)) {
        lab_assess_score_setf(err, errlen, "%s is not an object", where);
        return -1;
    }
    for (size_t i = 0; i < 3; i++) {
        const cJSON *v = lab_assess_score_get(j, keys[i]);
        if (!cJSON_IsString(v)) {
            lab_assess_score_setf(err, errlen, "%s.%s is missing or not a string",
                        where, keys[i]);
            return -1;
        }
    }
    snprintf(n->id, sizeof n->id, "%s", lab_assess_score_get(j, "node_id")->valuestring);
    snprintf(n->url, sizeof n->url, "%s", lab_assess_score_get(j, "url")->valuestring);
    snprintf(n->status, sizeof n->status, "%s", lab_assess_score_get(j, "status")->valuestring);
    n->alive = lab_assess_score_is_alive(n->status);
    inc = lab_assess_score_get(j, "incarnation");
    if (inc)
        lab_assess_score_int(inc, &n->incarnation);
    return 0;
}

/* respawns / fenced: top level, or inside "auto_spawn" or "lab". */
static int64_t lab_assess_score_counter(const cJSON *j, const char *name)
{
    static const char *const homes[] = {NULL, "auto_spawn", "lab"};
    int64_t v;

    for (size_t i = 0; i < sizeof homes / sizeof homes[0]; i++) {
        const cJSON *o = homes[i] ? lab_assess_score_get(j, homes[i]) : j;
        if (cJSON_IsObject(o) && lab_assess_score_int(lab_assess_score_get(o, name), &v))
            return v;
    }
    return -1;
}

int lab_assess_score_status_parse(const cJSON *j, lab_assess_score_status *s, char *err,
                        size_t errlen)
{
    const cJSON *fol, *q, *f;
    char where[48];
    size_t i = 0;

    memset(s, 0, sizeof *s);
    s->respawns = s->fenced = -1;
    if (!cJSON_IsObject(j)) {
        lab_assess_score_setf(err, errlen, "/status is not a JSON object");
        return -1;
    }
    if (lab_assess_score_parse_node(lab_assess_score_get(j, "leader"), "leader", &s->leader, err,
                          errlen) != 0)
        return -1;
    fol = lab_assess_score_get(j, "followers");
    if (!cJSON_IsArray(fol)) {
        lab_assess_score_setf(err, errlen, "followers is missing or not a list");
        return -1;
    }
    cJSON_ArrayForEach(f, fol) {
        if (i >= LAB_ASSESS_SCORE_MAX_NODES)
            break;
        snprintf(where, sizeof where, "followers[%zu]", i);
        if (lab_assess_score_parse_node(f, where, &s->followers[i], err, errlen) != 0)
            return -1;
        i++;
    }
    s->nfollowers = i;
    q = lab_assess_score_get(j, "quorum");
    if (!cJSON_IsObject(q)) {
        lab_assess_score_setf(err, errlen, "quorum is missing or not an object");
        return -1;
    }
    if (!lab_assess_score_int(lab_assess_score_get(q, "W"), &s->W) ||
        !lab_assess_score_int(lab_assess_score_get(q, "R"), &s->R) ||
        !lab_assess_score_int(lab_assess_score_get(q, "total_alive"), &s->total_alive)) {
        lab_assess_score_setf(err, errlen, "quorum.W, quorum.R and quorum.total_alive "
                    "must be integers");
        return -1;
    }
    if (!cJSON_IsBool(lab_assess_score_get(q, "can_write")) ||
        !cJSON_IsBool(lab_assess_score_get(q, "can_read"))) {
        lab_assess_score_setf(err, errlen, "quorum.can_write and quorum.can_read must "
                    "be true or false");
        return -1;
    }
    s->can_write = cJSON_IsTrue(lab_assess_score_get(q, "can_write"));
    s->can_read = cJSON_IsTrue(lab_assess_score_get(q, "can_read"));
    s->respawns = lab_assess_score_counter(j, "respawns");
    s->fenced = lab_assess_score_counter(j, "fenced");
    return 0;
}

size_t lab_assess_score_status_alive(const lab_assess_score_status *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfollowers; i++)
        n += s->followers[i].alive;
    return n;
}

const lab_assess_score_node *lab_assess_score_status_find(const lab_assess_score_status *s, const char *id)
{
    for (size_t i = 0; i < s->nfollowers; i++)
        if (strcmp(s->followers[i].id, id) == 0)
            return &s->followers[i];
    return NULL;
}

bool lab_assess_score_status_replaced(const lab_assess_score_status *before,
                            const lab_assess_score_status *after, char *why,
                            size_t whylen)
{
    for (size_t i = 0; i < after->nfollowers; i++) {
        const lab_assess_score_node *a = &after->followers[i];
        const lab_assess_score_node *b = lab_assess_score_status_find(before, a->id);

        if (b == NULL) {
            lab_assess_score_setf(why, whylen, "a new node %s appeared at %s", a->id,
                        a->url);
            return true;
        }
        if (strcmp(a->url, b->url) != 0) {
            lab_assess_score_setf(why, whylen, "%s was replaced by a new incarnation "
                        "at %s", a->id, a->url);
            return true;
        }
        if (a->incarnation >= 0 && b->incarnation >= 0 &&
            a->incarnation != b->incarnation) {
            lab_assess_score_setf(why, whylen, "%s was replaced (incarnation %lld, "
                        "then %lld)", a->id, (long long)b->incarnation,
                        (long long)a->incarnation);
            return true;
        }
    }
    if (before->respawns >= 0 && after->respawns > before->respawns) {
        lab_assess_score_setf(why, whylen, "a follower was respawned (respawns %lld, "
                    "then %lld)", (long long)before->respawns,
                    (long long)after->respawns);
        return true;
    }
    if (before->fenced >= 0 && after->fenced > before->fenced) {
        lab_assess_score_setf(why, whylen, "an incarnation was fenced (fenced %lld, "
                    "then %lld)", (long long)before->fenced,
                    (long long)after->fenced);
        return true;
    }
    return false;
}

/* The text of a JSON value: a string as it is, anything else printed. */
static void lab_assess_score_value_text(const cJSON *v, char *out, size_t outlen)
{
    if (cJSON_IsString(v)) {
        snprintf(out, outlen, "%s", v->valuestring);
    } else {
        char *t = cJSON_PrintUnformatted(v);
        snprintf(out, outlen, "%s", t ? t : "?");
        free(t);
    }
}

int lab_assess_score_check_write(const cJSON *j, const char *key, const char *value,
                       int64_t W, int64_t *version_out, char *err,
                       size_t errlen)
{
    const cJSON *v;
    int64_t version, acks;

    if (!cJSON_IsObject(j)) {
        lab_assess_score_setf(err, errlen, "the answer is not a JSON object");
        return -1;
    }
    v = lab_assess_score_get(j, "status");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "success") != 0) {
        lab_assess_score_setf(err, errlen, "\"status\" is not \"success\"");
        return -1;
    }
    v = lab_assess_score_get(j, "key");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, key) != 0) {
        lab_assess_score_setf(err, errlen, "\"key\" is not the key written");
        return -1;
    }
    v = lab_assess_score_get(j, "value");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, value) != 0) {
        lab_assess_score_setf(err, errlen, "\"value\" is not the value written");
        return -1;
    }
    if (!lab_assess_score_int(lab_assess_score_get(j, "version"), &version) || version <= 0) {
        lab_assess_score_setf(err, errlen, "\"version\" is missing or not a positive "
                    "integer");
        return -1;
    }
    if (!lab_assess_score_int(lab_assess_score_get(j, "sync_acks"), &acks)) {
        lab_assess_score_setf(err, errlen, "\"sync_acks\" is missing or not an integer");
        return -1;
    }
    if (acks < W) {
        lab_assess_score_setf(err, errlen, "\"sync_acks\" is %lld, less than W = %lld",
                    (long long)acks, (long long)W);
        return -1;
    }
    if (lab_assess_score_get(j, "quorum") == NULL) {
        lab_assess_score_setf(err, errlen, "\"quorum\" is missing");
        return -1;
    }
    if (version_out)
        *version_out = version;
    return 0;
}

int lab_assess_score_check_read(const cJSON *j, const char *key, char *value,
                      size_t valuelen, int64_t *version, char *served_by,
                      size_t sblen, char *err, size_t errlen)
{
    const cJSON *v;

    if (!cJSON_IsObject(j)) {
        lab_assess_score_setf(err, errlen, "the answer is not a JSON object");
        return -1;
    }
    v = lab_assess_score_get(j, "key");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, key) != 0) {
        lab_assess_score_setf(err, errlen, "\"key\" is not the key read");
        return -1;
    }
    v = lab_assess_score_get(j, "value");
    if (v == NULL) {
        lab_assess_score_setf(err, errlen, "\"value\" is missing");
        return -1;
    }
    lab_assess_score_value_text(v, value, valuelen);
    if (!lab_assess_score_int(lab_assess_score_get(j, "version"), version)) {
        lab_assess_score_setf(err, errlen, "\"version\" is missing or not an integer");
        return -1;
    }
    v = lab_assess_score_get(j, "served_by");
    if (v == NULL) {
        lab_assess_score_setf(err, errlen, "\"served_by\" is missing");
        return -1;
    }
    lab_assess_score_value_text(v, served_by, sblen);
    if (lab_assess_score_get(j, "quorum_responses") == NULL) {
        lab_assess_score_setf(err, errlen, "\"quorum_responses\" is missing");
        return -1;
    }
    return 0;
}

/* A header holding a non-negative integer. */
static bool lab_assess_score_hdr_uint(const char *h, int64_t *out)
{
    char *end;
    long long v;

    if (h == NULL || *h == '\0')
        return false;
    v = strtoll(h, &end, 10);
    while (*end == ' ')
        end++;
    if (*end != '\0' || v < 0)
        return false;
    *out = v;
    return true;
}

int lab_assess_score_check_429(const char *body, size_t len, const char *retry_after,
                     const char *limit, const char *remaining, int64_t max,
                     char *err, size_t errlen)
{
    cJSON *j = body ? json_whole_parse(body, len, NULL) : NULL;
    const cJSON *v;
    int64_t n;
    int rc = -1;

    if (!cJSON_IsObject(j)) {
        lab_assess_score_setf(err, errlen, "the 429 body is not a JSON object");
        goto out;
    }
    v = lab_assess_score_get(j, "error");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "Too Many Requests") != 0) {
        lab_assess_score_setf(err, errlen, "the 429 body's \"error\" is not \"Too Many "
                    "Requests\"");
        goto out;
    }
    v = lab_assess_score_get(j, "retry_after");
    if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
        lab_assess_score_setf(err, errlen, "the 429 body's \"retry_after\" is missing or "
                    "not a number");
        goto out;
    }
    if (!cJSON_IsString(lab_assess_score_get(j, "message"))) {
        lab_assess_score_setf(err, errlen, "the 429 body's \"message\" is missing");
        goto out;
    }
    if (!lab_assess_score_hdr_uint(retry_after, &n)) {
        lab_assess_score_setf(err, errlen, "the 429 has no Retry-After header in seconds");
        goto out;
    }
    if (!lab_assess_score_hdr_uint(limit, &n)) {
        lab_assess_score_setf(err, errlen, "the 429 has no X-RateLimit-Limit header");
        goto out;
    }
    if (n != max) {
        lab_assess_score_setf(err, errlen, "X-RateLimit-Limit is %lld, the config says "
                    "%lld", (long long)n, (long long)max);
        goto out;
    }
    if (!lab_assess_score_hdr_uint(remaining, &n)) {
        lab_assess_score_setf(err, errlen, "the 429 has no X-RateLimit-Remaining header");
        goto out;
    }
    if (n != 0) {
        lab_assess_score_setf(err, errlen, "X-RateLimit-Remaining is %lld on a 429",
                    (long long)n);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

int lab_assess_score_check_stats(const cJSON *j, const lab_config *c, char *err,
                       size_t errlen)
{
    const cJSON *rl, *v;

    if (!cJSON_IsObject(j)) {
        lab_assess_score_setf(err, errlen, "/stats is not a JSON object");
        return -1;
    }
    if (!cJSON_IsObject(lab_assess_score_get(j, "gateway"))) {
        lab_assess_score_setf(err, errlen, "/stats has no \"gateway\" object");
        return -1;
    }
    rl = lab_assess_score_get(j, "rate_limiter");
    if (!cJSON_IsObject(rl)) {
        lab_assess_score_setf(err, errlen, "/stats has no \"rate_limiter\" object");
        return -1;
    }
    if (!cJSON_IsString(lab_assess_score_get(rl, "strategy"))) {
        lab_assess_score_setf(err, errlen, "/stats rate_limiter.strategy is missing");
        return -1;
    }
    v = lab_assess_score_get(rl, "max_requests");
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)c->rate_limit_max) {
        lab_assess_score_setf(err, errlen, "/stats rate_limiter.max_requests is not "
                    "%lld", (long long)c->rate_limit_max);
        return -1;
    }
    v = lab_assess_score_get(rl, "window_seconds");
    if (!cJSON_IsNumber(v) || fabs(v->valuedouble - c->rate_limit_window) > 1e-3) {
        lab_assess_score_setf(err, errlen, "/stats rate_limiter.window_seconds is not %g",
                    c->rate_limit_window);
        return -1;
    }
    return 0;
}
