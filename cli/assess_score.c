/* assess_score: see assess_score.h. */
#include "assess_score.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const assess_labels[ASSESS_NSCEN] = {
    "INC-0", "INC-1", "INC-3", "INC-4", "INC-2/5",
};
static const char *const assess_titles[ASSESS_NSCEN] = {
    "Basic Operations", "Gateway Flood (Rate Limiting)",
    "Stale Cart Data (Consistency)", "Write Outage (Fault Tolerance)",
    "Recovery & Right-Sizing",
};
static const int assess_maxes[ASSESS_NSCEN] = {15, 15, 25, 25, 20};

const char *assess_scen_label(int s)
{
    return s >= 0 && s < ASSESS_NSCEN ? assess_labels[s] : "?";
}

const char *assess_scen_title(int s)
{
    return s >= 0 && s < ASSESS_NSCEN ? assess_titles[s] : "?";
}

int assess_scen_max(int s)
{
    return s >= 0 && s < ASSESS_NSCEN ? assess_maxes[s] : 0;
}

/* ---- report ---- */

void assess_add(assess_report *r, int scen, const char *what, int points,
                int max, const char *reason_fmt, ...)
{
    assess_test *t;

    if (r->n >= ASSESS_MAX_TESTS)
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

int assess_scen_points(const assess_report *r, int scen)
{
    int sum = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->tests[i].scen == scen)
            sum += r->tests[i].points;
    return sum;
}

int assess_total(const assess_report *r)
{
    int sum = 0;
    for (size_t i = 0; i < r->n; i++)
        sum += r->tests[i].points;
    return sum;
}

void assess_format_test(const assess_test *t, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s %s: %s (%d/%d)%s%s",
             t->points == t->max ? "PASS" : "FAIL", assess_scen_label(t->scen),
             t->what, t->points, t->max, t->reason[0] ? ": " : "", t->reason);
}

char assess_grade(int score)
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

int assess_prorate(int max, int good, int total)
{
    if (total <= 0 || good <= 0)
        return 0;
    if (good >= total)
        return max;
    return (int)((int64_t)max * good / total);
}

int assess_kill_count(int64_t followers)
{
    int64_t k = followers / 2;
    return k < 1 ? 1 : (int)k;
}

int assess_exit_status(int score, int justifications_filled)
{
    return score >= 100 && justifications_filled >= LABCFG_NJUST ? 0 : 1;
}

/* ---- judges ---- */

void assess_judge_rate(assess_report *r, const labcfg *c,
                       const assess_rate_obs *o)
{
    char what[ASSESS_TEXT];
    double gap = o->gap_secs > 0 ? o->gap_secs : ASSESS_SCRAPER_PAUSE_S;

    snprintf(what, sizeof what, "a burst of %d requests is limited", o->a_sent);
    if (o->a_sent == 0)
        assess_add(r, ASSESS_S_RATE, what, 0, ASSESS_PTS_RATE_FIRST,
                   "INC-1: the first burst could not be sent");
    else if (o->a_other > 0)
        assess_add(r, ASSESS_S_RATE, what, 0, ASSESS_PTS_RATE_FIRST,
                   "INC-1: %d of %d requests of the first burst got %ld, "
                   "neither an answer nor 429", o->a_other, o->a_sent,
                   o->other_status);
    else if (o->a_limited == 0)
        assess_add(r, ASSESS_S_RATE, what, 0, ASSESS_PTS_RATE_FIRST,
                   "INC-1: a burst of %d requests in %.1f s was never limited%s",
                   o->a_sent, o->a_secs,
                   !c->rate_limit_enabled ? " (gateway.rate_limit_enabled is false)"
                   : c->rate_limit_max >= o->a_sent ? " (the limit is above the burst)"
                   : "");
    else if (o->a_ok > c->rate_limit_max)
        assess_add(r, ASSESS_S_RATE, what, 0, ASSESS_PTS_RATE_FIRST,
                   "INC-1: %d of %d requests got through a limit of %lld",
                   o->a_ok, o->a_sent, (long long)c->rate_limit_max);
    else
        assess_add(r, ASSESS_S_RATE, what, ASSESS_PTS_RATE_FIRST,
                   ASSESS_PTS_RATE_FIRST, NULL);

    snprintf(what, sizeof what, "a second burst %.1f s later is limited too", gap);
    if (o->b_sent == 0)
        assess_add(r, ASSESS_S_RATE, what, 0, ASSESS_PTS_RATE_SECOND,
                   "INC-1: the second burst could not be sent");
    else if (o->b_limited == o->b_sent)
        assess_add(r, ASSESS_S_RATE, what, ASSESS_PTS_RATE_SECOND,
                   ASSESS_PTS_RATE_SECOND, NULL);
    else if (o->a_limited == 0)
        assess_add(r, ASSESS_S_RATE, what, 0, ASSESS_PTS_RATE_SECOND,
                   "INC-1: second burst not limited either: %d of %d requests "
                   "got through", o->b_sent - o->b_limited, o->b_sent);
    else
        assess_add(r, ASSESS_S_RATE, what, 0, ASSESS_PTS_RATE_SECOND,
                   "INC-1: second burst not limited after the window reset: "
                   "%d of %d requests got through %.1f s after the first burst "
                   "(window %g s)", o->b_sent - o->b_limited, o->b_sent, gap,
                   c->rate_limit_window);

    snprintf(what, sizeof what, "the 429 answer and /stats match the config");
    if (!o->have_429)
        assess_add(r, ASSESS_S_RATE, what, 0, ASSESS_PTS_RATE_SHAPE,
                   "INC-1: no 429 answer to check");
    else if (o->shape_err[0])
        assess_add(r, ASSESS_S_RATE, what, 0, ASSESS_PTS_RATE_SHAPE,
                   "INC-1: %s", o->shape_err);
    else
        assess_add(r, ASSESS_S_RATE, what, ASSESS_PTS_RATE_SHAPE,
                   ASSESS_PTS_RATE_SHAPE, NULL);
}

/* ", W + R = 5 is not more than N = 5" when that explains stale reads. */
static void assess_overlap_hint(const labcfg *c, char *out, size_t outlen)
{
    if (labcfg_strong(c))
        out[0] = '\0';
    else
        snprintf(out, outlen, "; W + R = %lld is not more than N = %lld",
                 (long long)(c->write_quorum + c->read_quorum),
                 (long long)c->followers);
}

void assess_judge_stale(assess_report *r, const labcfg *c,
                        const assess_stale_obs *o)
{
    char what[ASSESS_TEXT], hint[96];

    assess_overlap_hint(c, hint, sizeof hint);
    snprintf(what, sizeof what, "%d rounds of write then read at once on one "
             "cart key see the latest version", o->rounds);
    if (o->rounds == 0)
        assess_add(r, ASSESS_S_STALE, what, 0, ASSESS_PTS_STALE_RYW,
                   "INC-3: no round could run");
    else
        assess_add(r, ASSESS_S_STALE, what,
                   assess_prorate(ASSESS_PTS_STALE_RYW, o->fresh, o->rounds),
                   ASSESS_PTS_STALE_RYW,
                   "INC-3: %s (%d of %d reads fresh: %d stale, %d missing, "
                   "%d failed%s)", o->first_bad[0] ? o->first_bad : "stale read",
                   o->fresh, o->rounds, o->stale, o->missing, o->errors, hint);

    snprintf(what, sizeof what, "%d new keys each read at once after their "
             "write", o->keys);
    if (o->keys == 0)
        assess_add(r, ASSESS_S_STALE, what, 0, ASSESS_PTS_STALE_KEYS,
                   "INC-3: no key could be written");
    else
        assess_add(r, ASSESS_S_STALE, what,
                   assess_prorate(ASSESS_PTS_STALE_KEYS, o->keys_fresh, o->keys),
                   ASSESS_PTS_STALE_KEYS,
                   "INC-3: %s (%d of %d reads fresh: %d stale, %d missing, "
                   "%d failed%s)",
                   o->first_bad_key[0] ? o->first_bad_key : "stale read",
                   o->keys_fresh, o->keys, o->keys_stale, o->keys_missing,
                   o->keys_errors, hint);
}

void assess_judge_outage(assess_report *r, const labcfg *c,
                         const assess_outage_obs *o)
{
    char what[ASSESS_TEXT], down[64];
    long long n = (long long)c->followers;
    int k = o->killed > 0 ? o->killed : assess_kill_count(c->followers);

    snprintf(down, sizeof down, "%d of %lld followers", k, n);
    if (o->kill_err[0]) {
        snprintf(what, sizeof what, "writes with %s down", down);
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_WRITES,
                   "INC-4: %s", o->kill_err);
        snprintf(what, sizeof what, "reads with %s down", down);
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_READS,
                   "INC-4: %s", o->kill_err);
        snprintf(what, sizeof what, "/status reports can_write and can_read "
                 "with %s down", down);
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_STATUS,
                   "INC-4: %s", o->kill_err);
        return;
    }

    snprintf(what, sizeof what, "writes with %s down", down);
    if (o->writes > 0 && o->writes_ok == o->writes)
        assess_add(r, ASSESS_S_OUTAGE, what, ASSESS_PTS_OUTAGE_WRITES,
                   ASSESS_PTS_OUTAGE_WRITES, NULL);
    else if (o->writes == 0)
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_WRITES,
                   "INC-4: no write was tried");
    else if (o->write_fail_status == 0)
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_WRITES,
                   "INC-4: write got no answer after killing %s (W=%lld)%s%s",
                   down, (long long)c->write_quorum, o->write_fail[0] ? ": " : "",
                   o->write_fail);
    else
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_WRITES,
                   "INC-4: write %ld after killing %s (W=%lld)%s%s",
                   o->write_fail_status, down, (long long)c->write_quorum,
                   o->write_fail[0] ? ": " : "", o->write_fail);

    snprintf(what, sizeof what, "reads with %s down", down);
    if (o->reads > 0 && o->reads_ok == o->reads)
        assess_add(r, ASSESS_S_OUTAGE, what, ASSESS_PTS_OUTAGE_READS,
                   ASSESS_PTS_OUTAGE_READS, NULL);
    else if (o->reads == 0)
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_READS,
                   "INC-4: no read was tried");
    else
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_READS,
                   "INC-4: read %ld after killing %s (R=%lld)%s%s",
                   o->read_fail_status, down, (long long)c->read_quorum,
                   o->read_fail[0] ? ": " : "", o->read_fail);

    snprintf(what, sizeof what, "/status reports can_write and can_read with "
             "%s down", down);
    if (!o->status_seen)
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_STATUS,
                   "INC-4: /status never showed the killed followers dead");
    else if (!o->can_write)
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_STATUS,
                   "INC-4: /status says can_write false with %lld of %lld "
                   "followers alive (W=%lld)", (long long)o->alive, n,
                   (long long)c->write_quorum);
    else if (!o->can_read)
        assess_add(r, ASSESS_S_OUTAGE, what, 0, ASSESS_PTS_OUTAGE_STATUS,
                   "INC-4: /status says can_read false with %lld of %lld "
                   "followers alive (R=%lld)", (long long)o->alive, n,
                   (long long)c->read_quorum);
    else
        assess_add(r, ASSESS_S_OUTAGE, what, ASSESS_PTS_OUTAGE_STATUS,
                   ASSESS_PTS_OUTAGE_STATUS, NULL);
}

void assess_judge_recovery(assess_report *r, const labcfg *c,
                           const assess_recovery_obs *o)
{
    char what[ASSESS_TEXT];
    const char *target = o->pause_target[0] ? o->pause_target : "a follower";
    int64_t cost = labcfg_cost_per_hour(c);

    snprintf(what, sizeof what, "no ghost node when %s pauses %d s",
             target, ASSESS_PAUSE_MS / 1000);
    if (o->pause_err[0])
        assess_add(r, ASSESS_S_RECOVERY, what, 0, ASSESS_PTS_REC_GHOST,
                   "INC-2: %s", o->pause_err);
    else if (o->ghost)
        assess_add(r, ASSESS_S_RECOVERY, what, 0, ASSESS_PTS_REC_GHOST,
                   "INC-2: ghost respawn: %s during a %d s pause "
                   "(auto_spawn_delay %g s)", o->ghost_why,
                   ASSESS_PAUSE_MS / 1000, c->auto_spawn_delay);
    else if (!o->back_alive)
        assess_add(r, ASSESS_S_RECOVERY, what, 0, ASSESS_PTS_REC_GHOST,
                   "INC-2: %s did not come back after a %d s pause", target,
                   ASSESS_PAUSE_MS / 1000);
    else
        assess_add(r, ASSESS_S_RECOVERY, what, ASSESS_PTS_REC_GHOST,
                   ASSESS_PTS_REC_GHOST, NULL);

    snprintf(what, sizeof what, "a follower spawned after a kill joins the "
             "cluster");
    if (o->spawn_err[0])
        assess_add(r, ASSESS_S_RECOVERY, what, 0, ASSESS_PTS_REC_JOIN,
                   "INC-2: %s", o->spawn_err);
    else if (!o->spawned_alive)
        assess_add(r, ASSESS_S_RECOVERY, what, 0, ASSESS_PTS_REC_JOIN,
                   "INC-2: spawned %s never showed alive in /status within %g s",
                   o->spawned_id[0] ? o->spawned_id : "follower",
                   o->join_deadline_s);
    else
        assess_add(r, ASSESS_S_RECOVERY, what, ASSESS_PTS_REC_JOIN,
                   ASSESS_PTS_REC_JOIN, NULL);

    snprintf(what, sizeof what, "the spawned follower has caught up from the "
             "leader");
    if (o->spawn_err[0])
        assess_add(r, ASSESS_S_RECOVERY, what, 0, ASSESS_PTS_REC_CATCHUP,
                   "INC-2: %s", o->spawn_err);
    else if (!o->caught_up)
        assess_add(r, ASSESS_S_RECOVERY, what, 0, ASSESS_PTS_REC_CATCHUP,
                   "INC-2: %s", o->catchup_err[0] ? o->catchup_err
                                                  : "no catch-up seen");
    else
        assess_add(r, ASSESS_S_RECOVERY, what, ASSESS_PTS_REC_CATCHUP,
                   ASSESS_PTS_REC_CATCHUP, NULL);

    snprintf(what, sizeof what, "cost within the $%d/h budget",
             LABCFG_BUDGET_USD);
    if (labcfg_within_budget(c))
        assess_add(r, ASSESS_S_RECOVERY, what, ASSESS_PTS_REC_COST,
                   ASSESS_PTS_REC_COST, NULL);
    else
        assess_add(r, ASSESS_S_RECOVERY, what, 0, ASSESS_PTS_REC_COST,
                   "INC-5: $%lld/h is over the $%d/h budget (%lld nodes x "
                   "$%d/h)", (long long)cost, LABCFG_BUDGET_USD,
                   (long long)(1 + c->followers), LABCFG_NODE_COST_USD);
}

/* ---- contracts ---- */

bool assess_is_alive(const char *status)
{
    return status && (strcasecmp(status, "alive") == 0 ||
                      strcasecmp(status, "healthy") == 0 ||
                      strcasecmp(status, "up") == 0);
}

static void assess_setf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void assess_setf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const cJSON *assess_get(const cJSON *j, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(j, name);
}

/* An integer-valued JSON number. */
static bool assess_int(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        v->valuedouble != floor(v->valuedouble) || fabs(v->valuedouble) > 9.1e15)
        return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

static int assess_parse_node(const cJSON *j, const char *where, assess_node *n,
                             char *err, size_t errlen)
{
    static const char *const keys[] = {"node_id", "url", "status"};
    const cJSON *inc;

    memset(n, 0, sizeof *n);
    n->incarnation = -1;
    if (!cJSON_IsObject(j)) {
        assess_setf(err, errlen, "%s is not an object", where);
        return -1;
    }
    for (size_t i = 0; i < 3; i++) {
        const cJSON *v = assess_get(j, keys[i]);
        if (!cJSON_IsString(v)) {
            assess_setf(err, errlen, "%s.%s is missing or not a string",
                        where, keys[i]);
            return -1;
        }
    }
    snprintf(n->id, sizeof n->id, "%s", assess_get(j, "node_id")->valuestring);
    snprintf(n->url, sizeof n->url, "%s", assess_get(j, "url")->valuestring);
    snprintf(n->status, sizeof n->status, "%s", assess_get(j, "status")->valuestring);
    n->alive = assess_is_alive(n->status);
    inc = assess_get(j, "incarnation");
    if (inc)
        assess_int(inc, &n->incarnation);
    return 0;
}

/* respawns / fenced: top level, or inside "auto_spawn" or "lab". */
static int64_t assess_counter(const cJSON *j, const char *name)
{
    static const char *const homes[] = {NULL, "auto_spawn", "lab"};
    int64_t v;

    for (size_t i = 0; i < sizeof homes / sizeof homes[0]; i++) {
        const cJSON *o = homes[i] ? assess_get(j, homes[i]) : j;
        if (cJSON_IsObject(o) && assess_int(assess_get(o, name), &v))
            return v;
    }
    return -1;
}

int assess_status_parse(const cJSON *j, assess_status *s, char *err,
                        size_t errlen)
{
    const cJSON *fol, *q, *f;
    char where[48];
    size_t i = 0;

    memset(s, 0, sizeof *s);
    s->respawns = s->fenced = -1;
    if (!cJSON_IsObject(j)) {
        assess_setf(err, errlen, "/status is not a JSON object");
        return -1;
    }
    if (assess_parse_node(assess_get(j, "leader"), "leader", &s->leader, err,
                          errlen) != 0)
        return -1;
    fol = assess_get(j, "followers");
    if (!cJSON_IsArray(fol)) {
        assess_setf(err, errlen, "followers is missing or not a list");
        return -1;
    }
    cJSON_ArrayForEach(f, fol) {
        if (i >= ASSESS_MAX_NODES)
            break;
        snprintf(where, sizeof where, "followers[%zu]", i);
        if (assess_parse_node(f, where, &s->followers[i], err, errlen) != 0)
            return -1;
        i++;
    }
    s->nfollowers = i;
    q = assess_get(j, "quorum");
    if (!cJSON_IsObject(q)) {
        assess_setf(err, errlen, "quorum is missing or not an object");
        return -1;
    }
    if (!assess_int(assess_get(q, "W"), &s->W) ||
        !assess_int(assess_get(q, "R"), &s->R) ||
        !assess_int(assess_get(q, "total_alive"), &s->total_alive)) {
        assess_setf(err, errlen, "quorum.W, quorum.R and quorum.total_alive "
                    "must be integers");
        return -1;
    }
    if (!cJSON_IsBool(assess_get(q, "can_write")) ||
        !cJSON_IsBool(assess_get(q, "can_read"))) {
        assess_setf(err, errlen, "quorum.can_write and quorum.can_read must "
                    "be true or false");
        return -1;
    }
    s->can_write = cJSON_IsTrue(assess_get(q, "can_write"));
    s->can_read = cJSON_IsTrue(assess_get(q, "can_read"));
    s->respawns = assess_counter(j, "respawns");
    s->fenced = assess_counter(j, "fenced");
    return 0;
}

size_t assess_status_alive(const assess_status *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfollowers; i++)
        n += s->followers[i].alive;
    return n;
}

const assess_node *assess_status_find(const assess_status *s, const char *id)
{
    for (size_t i = 0; i < s->nfollowers; i++)
        if (strcmp(s->followers[i].id, id) == 0)
            return &s->followers[i];
    return NULL;
}

bool assess_status_replaced(const assess_status *before,
                            const assess_status *after, char *why,
                            size_t whylen)
{
    for (size_t i = 0; i < after->nfollowers; i++) {
        const assess_node *a = &after->followers[i];
        const assess_node *b = assess_status_find(before, a->id);

        if (b == NULL) {
            assess_setf(why, whylen, "a new node %s appeared at %s", a->id,
                        a->url);
            return true;
        }
        if (strcmp(a->url, b->url) != 0) {
            assess_setf(why, whylen, "%s was replaced by a new incarnation "
                        "at %s", a->id, a->url);
            return true;
        }
        if (a->incarnation >= 0 && b->incarnation >= 0 &&
            a->incarnation != b->incarnation) {
            assess_setf(why, whylen, "%s was replaced (incarnation %lld, "
                        "then %lld)", a->id, (long long)b->incarnation,
                        (long long)a->incarnation);
            return true;
        }
    }
    if (before->respawns >= 0 && after->respawns > before->respawns) {
        assess_setf(why, whylen, "a follower was respawned (respawns %lld, "
                    "then %lld)", (long long)before->respawns,
                    (long long)after->respawns);
        return true;
    }
    if (before->fenced >= 0 && after->fenced > before->fenced) {
        assess_setf(why, whylen, "an incarnation was fenced (fenced %lld, "
                    "then %lld)", (long long)before->fenced,
                    (long long)after->fenced);
        return true;
    }
    return false;
}

/* The text of a JSON value: a string as it is, anything else printed. */
static void assess_value_text(const cJSON *v, char *out, size_t outlen)
{
    if (cJSON_IsString(v)) {
        snprintf(out, outlen, "%s", v->valuestring);
    } else {
        char *t = cJSON_PrintUnformatted(v);
        snprintf(out, outlen, "%s", t ? t : "?");
        free(t);
    }
}

int assess_check_write(const cJSON *j, const char *key, const char *value,
                       int64_t W, int64_t *version_out, char *err,
                       size_t errlen)
{
    const cJSON *v;
    int64_t version, acks;

    if (!cJSON_IsObject(j)) {
        assess_setf(err, errlen, "the answer is not a JSON object");
        return -1;
    }
    v = assess_get(j, "status");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "success") != 0) {
        assess_setf(err, errlen, "\"status\" is not \"success\"");
        return -1;
    }
    v = assess_get(j, "key");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, key) != 0) {
        assess_setf(err, errlen, "\"key\" is not the key written");
        return -1;
    }
    v = assess_get(j, "value");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, value) != 0) {
        assess_setf(err, errlen, "\"value\" is not the value written");
        return -1;
    }
    if (!assess_int(assess_get(j, "version"), &version) || version <= 0) {
        assess_setf(err, errlen, "\"version\" is missing or not a positive "
                    "integer");
        return -1;
    }
    if (!assess_int(assess_get(j, "sync_acks"), &acks)) {
        assess_setf(err, errlen, "\"sync_acks\" is missing or not an integer");
        return -1;
    }
    if (acks < W) {
        assess_setf(err, errlen, "\"sync_acks\" is %lld, less than W = %lld",
                    (long long)acks, (long long)W);
        return -1;
    }
    if (assess_get(j, "quorum") == NULL) {
        assess_setf(err, errlen, "\"quorum\" is missing");
        return -1;
    }
    if (version_out)
        *version_out = version;
    return 0;
}

int assess_check_read(const cJSON *j, const char *key, char *value,
                      size_t valuelen, int64_t *version, char *served_by,
                      size_t sblen, char *err, size_t errlen)
{
    const cJSON *v;

    if (!cJSON_IsObject(j)) {
        assess_setf(err, errlen, "the answer is not a JSON object");
        return -1;
    }
    v = assess_get(j, "key");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, key) != 0) {
        assess_setf(err, errlen, "\"key\" is not the key read");
        return -1;
    }
    v = assess_get(j, "value");
    if (v == NULL) {
        assess_setf(err, errlen, "\"value\" is missing");
        return -1;
    }
    assess_value_text(v, value, valuelen);
    if (!assess_int(assess_get(j, "version"), version)) {
        assess_setf(err, errlen, "\"version\" is missing or not an integer");
        return -1;
    }
    v = assess_get(j, "served_by");
    if (v == NULL) {
        assess_setf(err, errlen, "\"served_by\" is missing");
        return -1;
    }
    assess_value_text(v, served_by, sblen);
    if (assess_get(j, "quorum_responses") == NULL) {
        assess_setf(err, errlen, "\"quorum_responses\" is missing");
        return -1;
    }
    return 0;
}

/* A header holding a non-negative integer. */
static bool assess_hdr_uint(const char *h, int64_t *out)
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

int assess_check_429(const char *body, size_t len, const char *retry_after,
                     const char *limit, const char *remaining, int64_t max,
                     char *err, size_t errlen)
{
    cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *v;
    int64_t n;
    int rc = -1;

    if (!cJSON_IsObject(j)) {
        assess_setf(err, errlen, "the 429 body is not a JSON object");
        goto out;
    }
    v = assess_get(j, "error");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "Too Many Requests") != 0) {
        assess_setf(err, errlen, "the 429 body's \"error\" is not \"Too Many "
                    "Requests\"");
        goto out;
    }
    v = assess_get(j, "retry_after");
    if (!cJSON_IsNumber(v) || v->valuedouble < 0) {
        assess_setf(err, errlen, "the 429 body's \"retry_after\" is missing or "
                    "not a number");
        goto out;
    }
    if (!cJSON_IsString(assess_get(j, "message"))) {
        assess_setf(err, errlen, "the 429 body's \"message\" is missing");
        goto out;
    }
    if (!assess_hdr_uint(retry_after, &n)) {
        assess_setf(err, errlen, "the 429 has no Retry-After header in seconds");
        goto out;
    }
    if (!assess_hdr_uint(limit, &n)) {
        assess_setf(err, errlen, "the 429 has no X-RateLimit-Limit header");
        goto out;
    }
    if (n != max) {
        assess_setf(err, errlen, "X-RateLimit-Limit is %lld, the config says "
                    "%lld", (long long)n, (long long)max);
        goto out;
    }
    if (!assess_hdr_uint(remaining, &n)) {
        assess_setf(err, errlen, "the 429 has no X-RateLimit-Remaining header");
        goto out;
    }
    if (n != 0) {
        assess_setf(err, errlen, "X-RateLimit-Remaining is %lld on a 429",
                    (long long)n);
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

int assess_check_stats(const cJSON *j, const labcfg *c, char *err,
                       size_t errlen)
{
    const cJSON *rl, *v;

    if (!cJSON_IsObject(j)) {
        assess_setf(err, errlen, "/stats is not a JSON object");
        return -1;
    }
    if (!cJSON_IsObject(assess_get(j, "gateway"))) {
        assess_setf(err, errlen, "/stats has no \"gateway\" object");
        return -1;
    }
    rl = assess_get(j, "rate_limiter");
    if (!cJSON_IsObject(rl)) {
        assess_setf(err, errlen, "/stats has no \"rate_limiter\" object");
        return -1;
    }
    if (!cJSON_IsString(assess_get(rl, "strategy"))) {
        assess_setf(err, errlen, "/stats rate_limiter.strategy is missing");
        return -1;
    }
    v = assess_get(rl, "max_requests");
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)c->rate_limit_max) {
        assess_setf(err, errlen, "/stats rate_limiter.max_requests is not "
                    "%lld", (long long)c->rate_limit_max);
        return -1;
    }
    v = assess_get(rl, "window_seconds");
    if (!cJSON_IsNumber(v) || fabs(v->valuedouble - c->rate_limit_window) > 1e-3) {
        assess_setf(err, errlen, "/stats rate_limiter.window_seconds is not %g",
                    c->rate_limit_window);
        return -1;
    }
    return 0;
}
