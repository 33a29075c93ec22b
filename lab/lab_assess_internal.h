/* lab_assess_internal: what the files of `kvctl assess` share
 * (lab/lab_assess.h is the command): the run's context, the calls and
 * checks every scenario makes. lab_assess.c holds those helpers, starting
 * or attaching to the lab and the command; lab_assess_traffic.c the
 * scenarios that only send requests (INC-0, INC-1, INC-3);
 * lab_assess_faults.c those that kill and pause followers (INC-4, INC-2/5).
 * The points and reasons are lab_assess_score's. */
#ifndef KV_LAB_ASSESS_INTERNAL_H
#define KV_LAB_ASSESS_INTERNAL_H

#include "lab_assess.h"

#include "httpc.h"
#include "lab_assess_score.h"
#include "lab_config.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

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

/* The scenarios, in the order lab_assess_cmd runs them; each adds its tests
 * to x->rep. */
void lab_assess_basic(lab_assess_ctx *x);    /* INC-0, lab_assess_traffic.c */
void lab_assess_rate(lab_assess_ctx *x);     /* INC-1, lab_assess_traffic.c */
void lab_assess_stale(lab_assess_ctx *x);    /* INC-3, lab_assess_traffic.c */
void lab_assess_outage(lab_assess_ctx *x);   /* INC-4, lab_assess_faults.c */
void lab_assess_recovery(lab_assess_ctx *x); /* INC-2/5, lab_assess_faults.c */

/* What the scenarios share (lab_assess.c). */
void lab_assess_call(lab_assess_ctx *x, const char *method, const char *base,
                    const char *path, const char *json, int octet,
                    long timeout_ms, httpc_resp *out);
void lab_assess_err_text(const httpc_resp *r, char *out, size_t outlen);
bool lab_assess_healthy(lab_assess_ctx *x, const lab_assess_score_status *s, bool all_listed);
cJSON *lab_assess_json(const httpc_resp *r);
void lab_assess_kv_body(char *out, size_t outlen, const char *k, const char *v);
void lab_assess_log(lab_assess_ctx *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int lab_assess_node_cmp(const void *pa, const void *pb);
double lab_assess_now(void);
void lab_assess_set(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void lab_assess_sleep(double s);
int lab_assess_status(lab_assess_ctx *x, lab_assess_score_status *s, char *err, size_t errlen);
int lab_assess_wait_healthy(lab_assess_ctx *x, double deadline_s, bool all_listed,
                           pid_t child, lab_assess_score_status *s, char *err,
                           size_t errlen);

#endif
