/* Unit tests for lab/lab_assess_score: the pure half of `kvctl assess`. Grades,
 * partial credit, the weights, each judge on what the incident config and
 * the solved config produce (the failure reasons name the incident), and
 * the lab's JSON contracts: /status parsing, ghost detection between two
 * snapshots, the /write, /read, 429 and /stats checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "lab_assess_score.h"
#include "lab_config.h"

static char err[512];

static void incident(lab_config *c)
{
    lab_config_defaults(c);
    c->followers = 5, c->write_quorum = 4, c->read_quorum = 1;
    c->auto_spawn = true, c->auto_spawn_delay = 1;
    c->rate_limit_max = 20, c->rate_limit_window = 2;
}

static void solved(lab_config *c)
{
    lab_config_defaults(c);
    c->auto_spawn = true;
    for (int i = 0; i < LAB_CONFIG_NJUST; i++)
        c->just_filled[i] = true;
}

/* The reason of the test whose "what" contains needle. */
static const lab_assess_score_test *find_test(const lab_assess_score_report *r, const char *needle)
{
    for (size_t i = 0; i < r->n; i++)
        if (strstr(r->tests[i].what, needle))
            return &r->tests[i];
    fail_msg("no test \"%s\"", needle);
    return NULL;
}

static void test_grades(void **state)
{
    (void)state;
    assert_int_equal(lab_assess_score_grade(100), 'A');
    assert_int_equal(lab_assess_score_grade(90), 'A');
    assert_int_equal(lab_assess_score_grade(89), 'B');
    assert_int_equal(lab_assess_score_grade(80), 'B');
    assert_int_equal(lab_assess_score_grade(79), 'C');
    assert_int_equal(lab_assess_score_grade(70), 'C');
    assert_int_equal(lab_assess_score_grade(69), 'D');
    assert_int_equal(lab_assess_score_grade(60), 'D');
    assert_int_equal(lab_assess_score_grade(59), 'F');
    assert_int_equal(lab_assess_score_grade(0), 'F');
}

static void test_weights_add_up(void **state)
{
    int sum = 0;
    (void)state;

    for (int s = 0; s < LAB_ASSESS_SCORE_NSCEN; s++)
        sum += lab_assess_score_scen_max(s);
    assert_int_equal(sum, 100);
    assert_int_equal(lab_assess_score_scen_max(LAB_ASSESS_SCORE_S_BASIC), 15);
    assert_int_equal(lab_assess_score_scen_max(LAB_ASSESS_SCORE_S_RATE), 15);
    assert_int_equal(lab_assess_score_scen_max(LAB_ASSESS_SCORE_S_STALE), 25);
    assert_int_equal(lab_assess_score_scen_max(LAB_ASSESS_SCORE_S_OUTAGE), 25);
    assert_int_equal(lab_assess_score_scen_max(LAB_ASSESS_SCORE_S_RECOVERY), 20);
    assert_int_equal(LAB_ASSESS_SCORE_PTS_BASIC_WRITE + LAB_ASSESS_SCORE_PTS_BASIC_READ +
                     LAB_ASSESS_SCORE_PTS_BASIC_STATUS, 15);
    assert_int_equal(LAB_ASSESS_SCORE_PTS_RATE_FIRST + LAB_ASSESS_SCORE_PTS_RATE_SECOND +
                     LAB_ASSESS_SCORE_PTS_RATE_SHAPE, 15);
    assert_int_equal(LAB_ASSESS_SCORE_PTS_STALE_RYW + LAB_ASSESS_SCORE_PTS_STALE_KEYS, 25);
    assert_int_equal(LAB_ASSESS_SCORE_PTS_OUTAGE_WRITES + LAB_ASSESS_SCORE_PTS_OUTAGE_READS +
                     LAB_ASSESS_SCORE_PTS_OUTAGE_STATUS, 25);
    assert_int_equal(LAB_ASSESS_SCORE_PTS_REC_GHOST + LAB_ASSESS_SCORE_PTS_REC_JOIN +
                     LAB_ASSESS_SCORE_PTS_REC_CATCHUP + LAB_ASSESS_SCORE_PTS_REC_COST, 20);
    assert_string_equal(lab_assess_score_scen_label(LAB_ASSESS_SCORE_S_RECOVERY), "INC-2/5");
    assert_string_equal(lab_assess_score_scen_label(LAB_ASSESS_SCORE_S_STALE), "INC-3");
}

static void test_prorate_kills_exit(void **state)
{
    (void)state;
    assert_int_equal(lab_assess_score_prorate(15, 8, 8), 15);
    assert_int_equal(lab_assess_score_prorate(15, 7, 8), 13);
    assert_int_equal(lab_assess_score_prorate(15, 1, 8), 1);
    assert_int_equal(lab_assess_score_prorate(15, 0, 8), 0);
    assert_int_equal(lab_assess_score_prorate(10, 0, 0), 0);
    assert_int_equal(lab_assess_score_prorate(10, 9, 5), 10);

    assert_int_equal(lab_assess_score_kill_count(1), 1);   /* at least one failure */
    assert_int_equal(lab_assess_score_kill_count(2), 1);
    assert_int_equal(lab_assess_score_kill_count(3), 1);
    assert_int_equal(lab_assess_score_kill_count(4), 2);
    assert_int_equal(lab_assess_score_kill_count(5), 2);

    assert_int_equal(lab_assess_score_exit_status(100, LAB_CONFIG_NJUST), 0);
    assert_int_equal(lab_assess_score_exit_status(100, LAB_CONFIG_NJUST - 1), 1);
    assert_int_equal(lab_assess_score_exit_status(99, LAB_CONFIG_NJUST), 1);
    assert_int_equal(lab_assess_score_exit_status(0, 0), 1);
}

static void test_report_lines(void **state)
{
    lab_assess_score_report r = {0};
    char line[1024];
    (void)state;

    lab_assess_score_add(&r, LAB_ASSESS_SCORE_S_RATE, "first burst limited", 5, 5, "ignored %d", 1);
    lab_assess_score_add(&r, LAB_ASSESS_SCORE_S_RATE, "second burst limited", 0, 7,
               "INC-1: second burst not limited after the window reset");
    lab_assess_score_add(&r, LAB_ASSESS_SCORE_S_STALE, "rounds", 11, 15, "INC-3: stale read");
    lab_assess_score_add(&r, LAB_ASSESS_SCORE_S_STALE, "clamped", 99, 10, NULL);
    lab_assess_score_format_test(&r.tests[0], line, sizeof line);
    assert_string_equal(line, "PASS INC-1: first burst limited (5/5)");
    lab_assess_score_format_test(&r.tests[1], line, sizeof line);
    assert_string_equal(line, "FAIL INC-1: second burst limited (0/7): INC-1: "
                              "second burst not limited after the window reset");
    lab_assess_score_format_test(&r.tests[2], line, sizeof line);
    assert_string_equal(line, "FAIL INC-3: rounds (11/15): INC-3: stale read");
    assert_int_equal(r.tests[3].points, 10);
    assert_int_equal(lab_assess_score_scen_points(&r, LAB_ASSESS_SCORE_S_RATE), 5);
    assert_int_equal(lab_assess_score_scen_points(&r, LAB_ASSESS_SCORE_S_STALE), 21);
    assert_int_equal(lab_assess_score_total(&r), 26);
}

/* ---- the judges on the incident config and the solved config ---- */

static void test_rate_incident(void **state)
{
    lab_config c;
    lab_assess_score_report r = {0};
    lab_assess_score_rate_obs o = {0};
    const lab_assess_score_test *t;
    (void)state;

    incident(&c);
    /* 25 requests: 20 through, 5 limited; 2.5 s later the window of 2 s has
     * reset and the 5 of the second burst all get through. */
    o.a_sent = 25, o.a_ok = 20, o.a_limited = 5, o.a_secs = 0.1;
    o.b_sent = 5, o.b_ok = 5, o.gap_secs = 2.5;
    o.have_429 = true;
    lab_assess_score_judge_rate(&r, &c, &o);
    assert_int_equal(lab_assess_score_scen_points(&r, LAB_ASSESS_SCORE_S_RATE),
                     LAB_ASSESS_SCORE_PTS_RATE_FIRST + LAB_ASSESS_SCORE_PTS_RATE_SHAPE);
    t = find_test(&r, "second burst");
    assert_int_equal(t->points, 0);
    assert_non_null(strstr(t->reason, "INC-1: second burst not limited after "
                                      "the window reset"));
    assert_non_null(strstr(t->reason, "5 of 5 requests got through"));
    assert_non_null(strstr(t->reason, "(window 2 s)"));
}

static void test_rate_solved_and_broken(void **state)
{
    lab_config c;
    lab_assess_score_report r = {0};
    lab_assess_score_rate_obs o = {0};
    (void)state;

    solved(&c);
    o.a_sent = 15, o.a_ok = 10, o.a_limited = 5;
    o.b_sent = 5, o.b_limited = 5, o.gap_secs = 2.5;
    o.have_429 = true;
    lab_assess_score_judge_rate(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), 15);

    /* Rate limiting off: nothing limited, nothing to check. */
    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    c.rate_limit_enabled = false;
    o.a_sent = 15, o.a_ok = 15, o.b_sent = 5, o.b_ok = 5;
    lab_assess_score_judge_rate(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), 0);
    assert_non_null(strstr(find_test(&r, "a burst of 15")->reason,
                           "gateway.rate_limit_enabled is false"));
    assert_non_null(strstr(find_test(&r, "second burst")->reason,
                           "INC-1: second burst not limited either"));
    assert_non_null(strstr(find_test(&r, "429 answer")->reason, "no 429"));

    /* Limited, but more got through than the limit; a bad 429 answer. */
    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    c.rate_limit_enabled = true;
    o.a_sent = 15, o.a_ok = 12, o.a_limited = 3;
    o.b_sent = 5, o.b_limited = 5;
    o.have_429 = true;
    snprintf(o.shape_err, sizeof o.shape_err, "X-RateLimit-Limit is 12, the config says 10");
    lab_assess_score_judge_rate(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), LAB_ASSESS_SCORE_PTS_RATE_SECOND);
    assert_non_null(strstr(find_test(&r, "a burst of")->reason,
                           "12 of 15 requests got through a limit of 10"));
    assert_string_equal(find_test(&r, "429 answer")->reason,
                        "INC-1: X-RateLimit-Limit is 12, the config says 10");

    /* Server errors in the burst are not "got through". */
    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    o.a_sent = 15, o.a_ok = 5, o.a_limited = 5, o.a_other = 5, o.other_status = 502;
    lab_assess_score_judge_rate(&r, &c, &o);
    assert_non_null(strstr(find_test(&r, "a burst of")->reason, "got 502"));
}

static void test_stale(void **state)
{
    lab_config c;
    lab_assess_score_report r = {0};
    lab_assess_score_stale_obs o = {0};
    const lab_assess_score_test *t;
    (void)state;

    incident(&c);
    o.rounds = 8, o.stale = 8;
    snprintf(o.first_bad, sizeof o.first_bad,
             "stale read: wrote v7, read v6 from follower-5");
    o.keys = 5, o.keys_missing = 5;
    snprintf(o.first_bad_key, sizeof o.first_bad_key,
             "missing read: wrote item-1, the read set answered 404 at once");
    lab_assess_score_judge_stale(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), 0);
    t = find_test(&r, "rounds");
    assert_non_null(strstr(t->reason, "INC-3: stale read: wrote v7, read v6 from follower-5"));
    assert_non_null(strstr(t->reason, "W + R = 5 is not more than N = 5"));
    assert_non_null(strstr(find_test(&r, "new keys")->reason, "INC-3: missing read"));

    /* Partial credit per fresh read; no overlap hint when W + R > N. */
    memset(&r, 0, sizeof r);
    solved(&c);
    o.fresh = 6, o.stale = 2;
    o.keys_fresh = 5, o.keys_missing = 0;
    lab_assess_score_judge_stale(&r, &c, &o);
    t = find_test(&r, "rounds");
    assert_int_equal(t->points, 11);
    assert_null(strstr(t->reason, "not more than"));
    assert_int_equal(find_test(&r, "new keys")->points, 10);

    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    o.rounds = 8, o.fresh = 8, o.keys = 5, o.keys_fresh = 5;
    lab_assess_score_judge_stale(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), 25);
}

static void test_outage(void **state)
{
    lab_config c;
    lab_assess_score_report r = {0};
    lab_assess_score_outage_obs o = {0};
    const lab_assess_score_test *t;
    (void)state;

    incident(&c);
    o.killed = 2;
    o.writes = 3, o.writes_ok = 0, o.write_fail_status = 503;
    snprintf(o.write_fail, sizeof o.write_fail, "Write quorum not available");
    o.reads = 2, o.reads_ok = 2;
    o.status_seen = true, o.can_write = false, o.can_read = true, o.alive = 3;
    lab_assess_score_judge_outage(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), LAB_ASSESS_SCORE_PTS_OUTAGE_READS);
    t = find_test(&r, "writes with 2 of 5 followers down");
    assert_string_equal(t->reason, "INC-4: write 503 after killing 2 of 5 "
                                   "followers (W=4): Write quorum not available");
    t = find_test(&r, "/status");
    assert_string_equal(t->reason, "INC-4: /status says can_write false with 3 "
                                   "of 5 followers alive (W=4)");

    /* Solved: one of three down, everything works. */
    memset(&r, 0, sizeof r);
    solved(&c);
    memset(&o, 0, sizeof o);
    o.killed = 1, o.writes = 3, o.writes_ok = 3, o.reads = 2, o.reads_ok = 2;
    o.status_seen = true, o.can_write = o.can_read = true, o.alive = 2;
    lab_assess_score_judge_outage(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), 25);
    assert_non_null(find_test(&r, "writes with 1 of 3 followers down"));

    /* One write of three failing is a failure (no partial credit: a write
     * outage is an outage). */
    memset(&r, 0, sizeof r);
    o.writes_ok = 2, o.write_fail_status = 0;
    snprintf(o.write_fail, sizeof o.write_fail, "Operation timed out");
    lab_assess_score_judge_outage(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), 10);
    assert_non_null(strstr(find_test(&r, "writes with")->reason,
                           "INC-4: write got no answer after killing 1 of 3"));

    /* A kill that failed fails the scenario, saying why. */
    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    snprintf(o.kill_err, sizeof o.kill_err, "POST /kill/follower-1 answered 404: unknown");
    lab_assess_score_judge_outage(&r, &c, &o);
    assert_int_equal(r.n, 3);
    assert_int_equal(lab_assess_score_total(&r), 0);
    assert_string_equal(r.tests[0].reason,
                        "INC-4: POST /kill/follower-1 answered 404: unknown");

    /* Reads failing name R. */
    memset(&r, 0, sizeof r);
    c.followers = 4, c.read_quorum = 3;
    memset(&o, 0, sizeof o);
    o.killed = 2, o.writes = 3, o.writes_ok = 3, o.reads = 2, o.read_fail_status = 503;
    o.status_seen = true, o.can_write = true, o.can_read = false, o.alive = 2;
    lab_assess_score_judge_outage(&r, &c, &o);
    assert_string_equal(find_test(&r, "reads with")->reason,
                        "INC-4: read 503 after killing 2 of 4 followers (R=3)");
    assert_non_null(strstr(find_test(&r, "/status")->reason, "can_read false"));
}

static void test_recovery(void **state)
{
    lab_config c;
    lab_assess_score_report r = {0};
    lab_assess_score_recovery_obs o = {0};
    const lab_assess_score_test *t;
    (void)state;

    incident(&c);
    snprintf(o.pause_target, sizeof o.pause_target, "follower-2");
    o.ghost = true;
    snprintf(o.ghost_why, sizeof o.ghost_why,
             "follower-2 was replaced by a new incarnation at http://127.0.0.1:7007");
    snprintf(o.spawned_id, sizeof o.spawned_id, "follower-5");
    o.spawned_alive = true, o.caught_up = true;
    lab_assess_score_judge_recovery(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), LAB_ASSESS_SCORE_PTS_REC_JOIN + LAB_ASSESS_SCORE_PTS_REC_CATCHUP);
    t = find_test(&r, "no ghost");
    assert_non_null(strstr(t->reason, "INC-2: ghost respawn: follower-2 was "
                                      "replaced"));
    assert_non_null(strstr(t->reason, "during a 2 s pause"));
    t = find_test(&r, "cost");
    assert_string_equal(t->reason, "INC-5: $60/h is over the $50/h budget "
                                   "(6 nodes x $10/h)");

    /* Solved. */
    memset(&r, 0, sizeof r);
    solved(&c);
    o.ghost = false, o.back_alive = true;
    lab_assess_score_judge_recovery(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), 20);

    /* The original did not come back; the spawn failed. */
    memset(&r, 0, sizeof r);
    o.back_alive = false;
    snprintf(o.spawn_err, sizeof o.spawn_err, "POST /spawn answered 500: boom");
    lab_assess_score_judge_recovery(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), LAB_ASSESS_SCORE_PTS_REC_COST);
    assert_string_equal(find_test(&r, "no ghost")->reason,
                        "INC-2: follower-2 did not come back after a 2 s pause");
    assert_string_equal(find_test(&r, "joins")->reason,
                        "INC-2: POST /spawn answered 500: boom");

    /* Joined but not caught up. */
    memset(&r, 0, sizeof r);
    o.spawn_err[0] = '\0';
    o.back_alive = true, o.caught_up = false;
    snprintf(o.catchup_err, sizeof o.catchup_err, "spawned follower-3 does not hold k");
    lab_assess_score_judge_recovery(&r, &c, &o);
    assert_int_equal(lab_assess_score_total(&r), 20 - LAB_ASSESS_SCORE_PTS_REC_CATCHUP);
    assert_string_equal(find_test(&r, "caught up")->reason,
                        "INC-2: spawned follower-3 does not hold k");

    /* $50/h is within the budget. */
    memset(&r, 0, sizeof r);
    c.followers = 4;
    lab_assess_score_judge_recovery(&r, &c, &o);
    assert_int_equal(find_test(&r, "cost")->points, LAB_ASSESS_SCORE_PTS_REC_COST);
}

/* The whole incident run: well below 100, every incident named. */
static void test_incident_total(void **state)
{
    lab_config c;
    lab_assess_score_report r = {0};
    lab_assess_score_rate_obs ro = {0};
    lab_assess_score_stale_obs so = {0};
    lab_assess_score_outage_obs oo = {0};
    lab_assess_score_recovery_obs vo = {0};
    char all[8192] = "";
    (void)state;

    incident(&c);
    lab_assess_score_add(&r, LAB_ASSESS_SCORE_S_BASIC, "write", 5, 5, NULL);
    lab_assess_score_add(&r, LAB_ASSESS_SCORE_S_BASIC, "read", 5, 5, NULL);
    lab_assess_score_add(&r, LAB_ASSESS_SCORE_S_BASIC, "status", 5, 5, NULL);
    ro.a_sent = 25, ro.a_ok = 20, ro.a_limited = 5, ro.b_sent = 5, ro.b_ok = 5;
    ro.have_429 = true;
    lab_assess_score_judge_rate(&r, &c, &ro);
    so.rounds = 8, so.stale = 8, so.keys = 5, so.keys_missing = 5;
    lab_assess_score_judge_stale(&r, &c, &so);
    oo.killed = 2, oo.writes = 3, oo.write_fail_status = 503, oo.reads = 2;
    oo.reads_ok = 2, oo.status_seen = true, oo.can_read = true, oo.alive = 3;
    lab_assess_score_judge_outage(&r, &c, &oo);
    vo.ghost = true, vo.spawned_alive = true, vo.caught_up = true;
    snprintf(vo.ghost_why, sizeof vo.ghost_why, "follower-2 was replaced");
    lab_assess_score_judge_recovery(&r, &c, &vo);
    assert_int_equal(lab_assess_score_total(&r), 36);
    assert_int_equal(lab_assess_score_grade(lab_assess_score_total(&r)), 'F');
    for (size_t i = 0; i < r.n; i++) {
        strcat(all, r.tests[i].reason);
        strcat(all, "\n");
    }
    assert_non_null(strstr(all, "INC-1: second burst not limited after the window reset"));
    assert_non_null(strstr(all, "INC-3: "));
    assert_non_null(strstr(all, "INC-4: write 503 after killing 2 of 5 followers (W=4)"));
    assert_non_null(strstr(all, "INC-2: ghost respawn: follower-2 was replaced"));
    assert_non_null(strstr(all, "INC-5: $60/h is over the $50/h budget"));
}

/* ---- contracts ---- */

static const char status_json[] =
    "{\"leader\":{\"node_id\":\"leader\",\"url\":\"http://127.0.0.1:7001\",\"status\":\"alive\"},"
    "\"followers\":["
    "{\"node_id\":\"follower-1\",\"url\":\"http://127.0.0.1:7002\",\"status\":\"alive\"},"
    "{\"node_id\":\"follower-2\",\"url\":\"http://127.0.0.1:7003\",\"status\":\"healthy\",\"incarnation\":1},"
    "{\"node_id\":\"follower-3\",\"url\":\"http://127.0.0.1:7004\",\"status\":\"dead\"}],"
    "\"quorum\":{\"W\":2,\"R\":2,\"total_alive\":2,\"can_write\":true,\"can_read\":false},"
    "\"respawns\":3}";

static void parse_status(const char *text, lab_assess_score_status *s, int want)
{
    cJSON *j = cJSON_Parse(text);
    assert_int_equal(lab_assess_score_status_parse(j, s, err, sizeof err), want);
    cJSON_Delete(j);
}

static void test_status_parse(void **state)
{
    lab_assess_score_status s;
    (void)state;

    parse_status(status_json, &s, 0);
    assert_string_equal(s.leader.id, "leader");
    assert_true(s.leader.alive);
    assert_int_equal(s.nfollowers, 3);
    assert_true(s.followers[1].alive);    /* "healthy" counts */
    assert_false(s.followers[2].alive);
    assert_int_equal(s.followers[0].incarnation, -1);
    assert_int_equal(s.followers[1].incarnation, 1);
    assert_int_equal(lab_assess_score_status_alive(&s), 2);
    assert_int_equal(s.W, 2);
    assert_int_equal(s.R, 2);
    assert_int_equal(s.total_alive, 2);
    assert_true(s.can_write);
    assert_false(s.can_read);
    assert_int_equal(s.respawns, 3);
    assert_int_equal(s.fenced, -1);
    assert_non_null(lab_assess_score_status_find(&s, "follower-3"));
    assert_null(lab_assess_score_status_find(&s, "follower-9"));

    assert_true(lab_assess_score_is_alive("alive"));
    assert_true(lab_assess_score_is_alive("UP"));
    assert_false(lab_assess_score_is_alive("dead"));
    assert_false(lab_assess_score_is_alive("catching_up"));
    assert_false(lab_assess_score_is_alive(NULL));

    /* Counters may live in an "auto_spawn" object. */
    parse_status("{\"leader\":{\"node_id\":\"l\",\"url\":\"u\",\"status\":\"up\"},"
                 "\"followers\":[],\"quorum\":{\"W\":1,\"R\":1,\"total_alive\":0,"
                 "\"can_write\":false,\"can_read\":false},"
                 "\"auto_spawn\":{\"respawns\":1,\"fenced\":2}}", &s, 0);
    assert_int_equal(s.respawns, 1);
    assert_int_equal(s.fenced, 2);

    parse_status("{\"followers\":[],\"quorum\":{}}", &s, -1);
    assert_non_null(strstr(err, "leader"));
    parse_status("{\"leader\":{\"node_id\":\"l\",\"status\":\"up\"},"
                 "\"followers\":[],\"quorum\":{}}", &s, -1);
    assert_non_null(strstr(err, "leader.url"));
    parse_status("{\"leader\":{\"node_id\":\"l\",\"url\":\"u\",\"status\":\"up\"},"
                 "\"followers\":[{\"node_id\":\"f\"}],\"quorum\":{}}", &s, -1);
    assert_non_null(strstr(err, "followers[0].url"));
    parse_status("{\"leader\":{\"node_id\":\"l\",\"url\":\"u\",\"status\":\"up\"},"
                 "\"followers\":[],\"quorum\":{\"W\":1,\"R\":1,\"total_alive\":0}}",
                 &s, -1);
    assert_non_null(strstr(err, "can_write"));
    parse_status("[]", &s, -1);
}

static void test_replaced(void **state)
{
    lab_assess_score_status a, b;
    char why[256];
    (void)state;

    parse_status(status_json, &a, 0);
    b = a;
    assert_false(lab_assess_score_status_replaced(&a, &b, why, sizeof why));
    /* A status change alone (dead while paused) is no replacement. */
    snprintf(b.followers[1].status, sizeof b.followers[1].status, "dead");
    b.followers[1].alive = false;
    assert_false(lab_assess_score_status_replaced(&a, &b, why, sizeof why));

    b = a;
    snprintf(b.followers[1].url, sizeof b.followers[1].url, "http://127.0.0.1:7007");
    assert_true(lab_assess_score_status_replaced(&a, &b, why, sizeof why));
    assert_string_equal(why, "follower-2 was replaced by a new incarnation at "
                             "http://127.0.0.1:7007");

    b = a;
    b.followers[1].incarnation = 2;
    assert_true(lab_assess_score_status_replaced(&a, &b, why, sizeof why));
    assert_non_null(strstr(why, "follower-2 was replaced (incarnation 1, then 2)"));

    b = a;
    b.followers[b.nfollowers] = a.followers[0];
    snprintf(b.followers[b.nfollowers].id, sizeof b.followers[0].id, "follower-6");
    b.nfollowers++;
    assert_true(lab_assess_score_status_replaced(&a, &b, why, sizeof why));
    assert_non_null(strstr(why, "a new node follower-6 appeared"));

    b = a;
    b.respawns = 4;
    assert_true(lab_assess_score_status_replaced(&a, &b, why, sizeof why));
    assert_non_null(strstr(why, "respawns 3, then 4"));
    b = a;
    a.fenced = 0, b.fenced = 1;
    assert_true(lab_assess_score_status_replaced(&a, &b, why, sizeof why));
    assert_non_null(strstr(why, "fenced"));
    /* Counters the server does not report are ignored. */
    a.fenced = -1, b.fenced = 5;
    assert_false(lab_assess_score_status_replaced(&a, &b, why, sizeof why));
}

static int check_write(const char *text, int64_t W, int64_t *v)
{
    cJSON *j = cJSON_Parse(text);
    int rc = lab_assess_score_check_write(j, "k", "hello", W, v, err, sizeof err);
    cJSON_Delete(j);
    return rc;
}

static void test_write_read_shapes(void **state)
{
    int64_t v = 0;
    char value[64], served[64];
    cJSON *j;
    (void)state;

    assert_int_equal(check_write("{\"status\":\"success\",\"key\":\"k\",\"value\":\"hello\","
                                 "\"version\":42,\"sync_acks\":2,\"quorum\":{\"W\":2}}", 2, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(check_write("{\"status\":\"success\",\"key\":\"k\",\"value\":\"hello\","
                                 "\"version\":42,\"sync_acks\":1,\"quorum\":2}", 2, NULL), -1);
    assert_string_equal(err, "\"sync_acks\" is 1, less than W = 2");
    assert_int_equal(check_write("{\"status\":\"success\",\"key\":\"k\",\"value\":\"hello\","
                                 "\"version\":42,\"sync_acks\":2}", 2, NULL), -1);
    assert_non_null(strstr(err, "quorum"));
    assert_int_equal(check_write("{\"status\":\"queued\"}", 2, NULL), -1);
    assert_non_null(strstr(err, "success"));
    assert_int_equal(check_write("{\"status\":\"success\",\"key\":\"k\",\"value\":\"hello\","
                                 "\"version\":\"42\",\"sync_acks\":2,\"quorum\":2}", 2, NULL), -1);
    assert_non_null(strstr(err, "version"));
    assert_int_equal(check_write("{\"status\":\"success\",\"key\":\"x\"}", 2, NULL), -1);
    assert_non_null(strstr(err, "key"));

    j = cJSON_Parse("{\"key\":\"k\",\"value\":\"v7\",\"version\":7,\"served_by\":"
                    "\"follower-5\",\"quorum_responses\":1}");
    assert_int_equal(lab_assess_score_check_read(j, "k", value, sizeof value, &v, served,
                                       sizeof served, err, sizeof err), 0);
    assert_string_equal(value, "v7");
    assert_int_equal(v, 7);
    assert_string_equal(served, "follower-5");
    cJSON_Delete(j);
    j = cJSON_Parse("{\"key\":\"k\",\"value\":3,\"version\":7,\"quorum_responses\":1}");
    assert_int_equal(lab_assess_score_check_read(j, "k", value, sizeof value, &v, served,
                                       sizeof served, err, sizeof err), -1);
    assert_non_null(strstr(err, "served_by"));
    assert_string_equal(value, "3");
    cJSON_Delete(j);
}

static void test_429_and_stats(void **state)
{
    static const char good[] = "{\"error\":\"Too Many Requests\",\"retry_after\":58,"
                               "\"message\":\"slow down\"}";
    lab_config c;
    cJSON *j;
    (void)state;

    assert_int_equal(lab_assess_score_check_429(good, strlen(good), "58", "10", "0", 10,
                                      err, sizeof err), 0);
    assert_int_equal(lab_assess_score_check_429(good, strlen(good), NULL, "10", "0", 10,
                                      err, sizeof err), -1);
    assert_non_null(strstr(err, "Retry-After"));
    assert_int_equal(lab_assess_score_check_429(good, strlen(good), "58", "20", "0", 10,
                                      err, sizeof err), -1);
    assert_string_equal(err, "X-RateLimit-Limit is 20, the config says 10");
    assert_int_equal(lab_assess_score_check_429(good, strlen(good), "58", "10", NULL, 10,
                                      err, sizeof err), -1);
    assert_non_null(strstr(err, "X-RateLimit-Remaining"));
    assert_int_equal(lab_assess_score_check_429(good, strlen(good), "58", "10", "3", 10,
                                      err, sizeof err), -1);
    assert_int_equal(lab_assess_score_check_429("<html>429</html>", 16, "1", "10", "0", 10,
                                      err, sizeof err), -1);
    assert_non_null(strstr(err, "not a JSON object"));
    {
        static const char other[] = "{\"error\":\"rate_limited\",\"retry_after\":1,"
                                    "\"message\":\"m\"}";
        assert_int_equal(lab_assess_score_check_429(other, strlen(other), "1", "10", "0",
                                          10, err, sizeof err), -1);
    }
    assert_non_null(strstr(err, "Too Many Requests"));

    solved(&c);
    j = cJSON_Parse("{\"gateway\":{\"requests\":3},\"rate_limiter\":{\"strategy\":"
                    "\"fixed_window\",\"max_requests\":10,\"window_seconds\":60}}");
    assert_int_equal(lab_assess_score_check_stats(j, &c, err, sizeof err), 0);
    c.rate_limit_window = 2;
    assert_int_equal(lab_assess_score_check_stats(j, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "window_seconds"));
    c.rate_limit_window = 60;
    c.rate_limit_max = 20;
    assert_int_equal(lab_assess_score_check_stats(j, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "max_requests"));
    cJSON_Delete(j);
    j = cJSON_Parse("{\"rate_limiter\":{}}");
    assert_int_equal(lab_assess_score_check_stats(j, &c, err, sizeof err), -1);
    assert_non_null(strstr(err, "gateway"));
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grades),
        cmocka_unit_test(test_weights_add_up),
        cmocka_unit_test(test_prorate_kills_exit),
        cmocka_unit_test(test_report_lines),
        cmocka_unit_test(test_rate_incident),
        cmocka_unit_test(test_rate_solved_and_broken),
        cmocka_unit_test(test_stale),
        cmocka_unit_test(test_outage),
        cmocka_unit_test(test_recovery),
        cmocka_unit_test(test_incident_total),
        cmocka_unit_test(test_status_parse),
        cmocka_unit_test(test_replaced),
        cmocka_unit_test(test_write_read_shapes),
        cmocka_unit_test(test_429_and_stats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
