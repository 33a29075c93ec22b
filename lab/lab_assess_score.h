/* lab_assess_score: the pure half of `kvctl assess`: what the grader observed
 * goes in (plain structs filled by lab_assess.c), points and reasons come
 * out. No I/O here except printing a report to a FILE, so the unit test
 * (tests/unit/test_assess.c) checks partial credit, the failure reasons and
 * the grades without a cluster.
 *
 * Also here: parsing and checking the lab's JSON contracts (docs/PROTOCOL.md,
 * "The CloudCart lab"): the controller's /status, /write and /read answers, the gateway's 429
 * answer and /stats, and spotting a replaced node between two /status
 * snapshots (an INC-2 ghost).
 *
 * Ownership: everything lives in caller-provided structs; cJSON values are
 * borrowed. */
#ifndef KV_ASSESS_SCORE_H
#define KV_ASSESS_SCORE_H

#include "lab_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cJSON;

/* The scenarios of the incident brief, in the order they run, and their
 * weights. */
enum {
    LAB_ASSESS_SCORE_S_BASIC,      /* INC-0   basic operations          15 */
    LAB_ASSESS_SCORE_S_RATE,       /* INC-1   sustained rate limit      15 */
    LAB_ASSESS_SCORE_S_STALE,      /* INC-3   stale reads               25 */
    LAB_ASSESS_SCORE_S_OUTAGE,     /* INC-4   write outage              25 */
    LAB_ASSESS_SCORE_S_RECOVERY,   /* INC-2/5 recovery, right-sizing    20 */
    LAB_ASSESS_SCORE_NSCEN
};

/* Points inside each scenario (they add up to the weights above). */
enum {
    LAB_ASSESS_SCORE_PTS_BASIC_WRITE = 5,
    LAB_ASSESS_SCORE_PTS_BASIC_READ = 5,
    LAB_ASSESS_SCORE_PTS_BASIC_STATUS = 5,
    LAB_ASSESS_SCORE_PTS_RATE_FIRST = 5,
    LAB_ASSESS_SCORE_PTS_RATE_SECOND = 7,
    LAB_ASSESS_SCORE_PTS_RATE_SHAPE = 3,
    LAB_ASSESS_SCORE_PTS_STALE_RYW = 15,
    LAB_ASSESS_SCORE_PTS_STALE_KEYS = 10,
    LAB_ASSESS_SCORE_PTS_OUTAGE_WRITES = 15,
    LAB_ASSESS_SCORE_PTS_OUTAGE_READS = 5,
    LAB_ASSESS_SCORE_PTS_OUTAGE_STATUS = 5,
    LAB_ASSESS_SCORE_PTS_REC_GHOST = 7,
    LAB_ASSESS_SCORE_PTS_REC_JOIN = 4,
    LAB_ASSESS_SCORE_PTS_REC_CATCHUP = 4,
    LAB_ASSESS_SCORE_PTS_REC_COST = 5,
};

/* The scraper of INC-1 pauses this long between its two bursts: longer
 * than the incident's 2 s window, so a window that short resets in between. */
#define LAB_ASSESS_SCORE_SCRAPER_PAUSE_S 2.5
#define LAB_ASSESS_SCORE_SECOND_BURST 5       /* requests in the second burst */
#define LAB_ASSESS_SCORE_FIRST_BURST_CAP 205  /* most requests in the first burst */
#define LAB_ASSESS_SCORE_PAUSE_MS 2000        /* the INC-2 network blip */

const char *lab_assess_score_scen_label(int s);   /* "INC-2/5" */
const char *lab_assess_score_scen_title(int s);   /* "Recovery & Right-Sizing" */
int lab_assess_score_scen_max(int s);             /* 15, 15, 25, 25, 20 */

/* ---- the report ---- */

#define LAB_ASSESS_SCORE_MAX_TESTS 32
#define LAB_ASSESS_SCORE_TEXT 320

typedef struct lab_assess_score_test {
    int scen;
    char what[LAB_ASSESS_SCORE_TEXT];     /* "first burst of 25 requests limited" */
    int points, max;
    char reason[LAB_ASSESS_SCORE_TEXT];   /* "" when passed; names the incident */
} lab_assess_score_test;

typedef struct lab_assess_score_report {
    lab_assess_score_test tests[LAB_ASSESS_SCORE_MAX_TESTS];
    size_t n;
} lab_assess_score_report;

/* Add one test. reason (printf format, may be NULL) is kept only when
 * points < max. */
void lab_assess_score_add(lab_assess_score_report *r, int scen, const char *what, int points,
                int max, const char *reason_fmt, ...)
    __attribute__((format(printf, 6, 7)));
int lab_assess_score_scen_points(const lab_assess_score_report *r, int scen);
int lab_assess_score_total(const lab_assess_score_report *r);
/* The line printed for a test:
 *   "PASS INC-1: first burst limited (5/5)"
 *   "FAIL INC-1: second burst limited (0/7): INC-1: second burst ..." */
void lab_assess_score_format_test(const lab_assess_score_test *t, char *out, size_t outlen);

/* A >= 90, B >= 80, C >= 70, D >= 60, else F. */
char lab_assess_score_grade(int score);
/* max * good / total, rounded down; 0 when total is 0. */
int lab_assess_score_prorate(int max, int good, int total);
/* Follower kills of INC-4: floor(N / 2), at least 1 (the brief's "at least
 * one server can go down"; N = 1 must not pass with no kill at all). */
int lab_assess_score_kill_count(int64_t followers);
/* Exit status: 0 only with 100 points and every justification filled. */
int lab_assess_score_exit_status(int score, int justifications_filled);

/* ---- observations and judges ---- */

/* INC-1: two bursts from one client address. */
typedef struct lab_assess_score_rate_obs {
    int a_sent, a_ok, a_limited, a_other;  /* ok = 2xx or 404 */
    double a_secs;
    int b_sent, b_ok, b_limited, b_other;
    double gap_secs;                        /* end of A to start of B */
    long other_status;                      /* one status that was neither */
    bool have_429;
    char shape_err[LAB_ASSESS_SCORE_TEXT];            /* 429 body/headers, /stats */
} lab_assess_score_rate_obs;
void lab_assess_score_judge_rate(lab_assess_score_report *r, const lab_config *c,
                       const lab_assess_score_rate_obs *o);

/* INC-3: write then read at once, rounds on one key and fresh keys. */
typedef struct lab_assess_score_stale_obs {
    int rounds, fresh, stale, missing, errors;
    char first_bad[LAB_ASSESS_SCORE_TEXT];       /* "wrote v7, read v6 from follower-5" */
    int keys, keys_fresh, keys_stale, keys_missing, keys_errors;
    char first_bad_key[LAB_ASSESS_SCORE_TEXT];
} lab_assess_score_stale_obs;
void lab_assess_score_judge_stale(lab_assess_score_report *r, const lab_config *c,
                        const lab_assess_score_stale_obs *o);

/* INC-4: writes and reads with kill_count followers down. */
typedef struct lab_assess_score_outage_obs {
    int killed;                        /* followers actually killed */
    char kill_err[LAB_ASSESS_SCORE_TEXT];        /* a kill that failed, "" if none */
    int writes, writes_ok;
    long write_fail_status;            /* first failed write, 0 = no answer */
    char write_fail[LAB_ASSESS_SCORE_TEXT];      /* its error text */
    int reads, reads_ok;
    long read_fail_status;
    char read_fail[LAB_ASSESS_SCORE_TEXT];
    bool status_seen, can_write, can_read;
    int64_t alive;                     /* followers alive in that /status */
} lab_assess_score_outage_obs;
void lab_assess_score_judge_outage(lab_assess_score_report *r, const lab_config *c,
                         const lab_assess_score_outage_obs *o);

/* INC-2/5: a blip, a kill then spawn, and the cost. */
typedef struct lab_assess_score_recovery_obs {
    char pause_target[64];
    char pause_err[LAB_ASSESS_SCORE_TEXT];       /* the pause could not be done */
    double pause_window_s;
    bool ghost;
    char ghost_why[LAB_ASSESS_SCORE_TEXT];       /* "follower-2 was replaced (...)" */
    bool back_alive;                   /* the paused original is alive again */
    char spawn_err[LAB_ASSESS_SCORE_TEXT];       /* kill or spawn failed */
    char spawned_id[64];
    bool spawned_alive;
    double join_deadline_s;
    bool caught_up;
    char catchup_err[LAB_ASSESS_SCORE_TEXT];
} lab_assess_score_recovery_obs;
void lab_assess_score_judge_recovery(lab_assess_score_report *r, const lab_config *c,
                           const lab_assess_score_recovery_obs *o);

/* ---- the lab's JSON contracts ---- */

#define LAB_ASSESS_SCORE_MAX_NODES 64

typedef struct lab_assess_score_node {
    char id[64];
    char url[128];
    char status[32];
    bool alive;              /* status "alive" (or "healthy", "up") */
    int64_t incarnation;     /* -1 when /status does not say */
} lab_assess_score_node;

typedef struct lab_assess_score_status {
    lab_assess_score_node leader;
    lab_assess_score_node followers[LAB_ASSESS_SCORE_MAX_NODES];
    size_t nfollowers;
    int64_t W, R, total_alive;
    bool can_write, can_read;
    int64_t respawns, fenced;  /* -1 when /status does not say */
} lab_assess_score_status;

/* "alive", "healthy" and "up" (any case) count as alive. */
bool lab_assess_score_is_alive(const char *status);
/* Parse a /status answer. 0, or -1 with err naming what is missing. */
int lab_assess_score_status_parse(const struct cJSON *j, lab_assess_score_status *s, char *err,
                        size_t errlen);
size_t lab_assess_score_status_alive(const lab_assess_score_status *s);
const lab_assess_score_node *lab_assess_score_status_find(const lab_assess_score_status *s, const char *id);
/* Did a follower get replaced between before and after? A new node id, the
 * same id at another url or incarnation, or a higher respawn or fenced
 * count. true with why filled ("follower-2 was replaced (now ...)"). */
bool lab_assess_score_status_replaced(const lab_assess_score_status *before,
                            const lab_assess_score_status *after, char *why,
                            size_t whylen);

/* Check a 200 answer of POST /write {"key","value"}: {"status":"success",
 * "key","value","version" (integer > 0),"sync_acks" (integer >= W),
 * "quorum"}. 0, or -1 with err. version_out may be NULL. */
int lab_assess_score_check_write(const struct cJSON *j, const char *key,
                       const char *value, int64_t W, int64_t *version_out,
                       char *err, size_t errlen);
/* Check a 200 answer of GET /read/{key}: {"key","value","version",
 * "served_by","quorum_responses"}. Fills value (a string value, or the
 * JSON text of another type), version and served_by. 0 or -1 with err. */
int lab_assess_score_check_read(const struct cJSON *j, const char *key, char *value,
                      size_t valuelen, int64_t *version, char *served_by,
                      size_t sblen, char *err, size_t errlen);
/* Check a 429 of the gateway: the body {"error":"Too Many Requests",
 * "retry_after","message"}, Retry-After, X-RateLimit-Limit equal to the
 * configured max and X-RateLimit-Remaining 0. A NULL header is absent. */
int lab_assess_score_check_429(const char *body, size_t len, const char *retry_after,
                     const char *limit, const char *remaining, int64_t max,
                     char *err, size_t errlen);
/* Check the gateway's GET /stats: {"gateway":{...},"rate_limiter":
 * {"strategy","max_requests","window_seconds",...}} matching the config. */
int lab_assess_score_check_stats(const struct cJSON *j, const lab_config *c, char *err,
                       size_t errlen);

#endif
