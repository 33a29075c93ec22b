/* lab_assess: `kvctl assess --config FILE [--no-start-cluster]
 *          [--controller URL] [--gateway URL] [--verbose]`
 *
 * The CloudCart grader. Unless --no-start-cluster it starts the lab cluster
 * itself: `kv-controller --lab ABSFILE` (next to kvctl) as a child, with its
 * output in <tmp>/controller.log, its working directory <tmp> and
 * KV_DATA_DIR=<tmp>/data, and waits (30 s at most) until the controller's
 * /status shows the leader and every follower alive; at the end it sends
 * SIGTERM and waits (SIGKILL after 10 s). It then runs the five scenarios
 * of the incident brief (weights 15, 15, 25, 25, 20), prints one line per
 * test, the total, the grade, W + R against N, the cost against the budget
 * and the justification check.
 *
 * Exit status: 0 only at 100/100 with every justification filled; 1 below
 * that; 2 for a usage or config error; 3 when no cluster could be started or
 * reached.
 *
 * The scoring is pure and lives in lab_assess_score.c; this file only talks
 * HTTP and processes. */
#ifndef KV_LAB_ASSESS_H
#define KV_LAB_ASSESS_H

struct kvctl_opts;


#define LAB_ASSESS_DEFAULT_CONTROLLER "http://127.0.0.1:7000"
#define LAB_ASSESS_DEFAULT_GATEWAY "http://127.0.0.1:8000"
#define LAB_ASSESS_START_DEADLINE_S 30.0
#define LAB_ASSESS_STOP_GRACE_S 10.0

/* kvctl assess: the command function (argv after "assess"). */
int lab_assess_cmd(const struct kvctl_opts *o, int argc, char **argv);

#endif
