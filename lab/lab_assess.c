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
#include "lab_assess_internal.h"

#include "json_whole.h"
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

/* ---- small helpers ---- */

/* snprintf for messages, where cutting a long one short is fine. */

void lab_assess_set(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
}

double lab_assess_now(void)
{
    return (double)clock_mono_us() / 1e6;
}

void lab_assess_sleep(double s)
{
    struct timespec ts;
    if (s <= 0)
        return;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}


void lab_assess_log(lab_assess_ctx *x, const char *fmt, ...)
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

int lab_assess_node_cmp(const void *pa, const void *pb)
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
void lab_assess_err_text(const httpc_resp *r, char *out, size_t outlen)
{
    cJSON *j;
    const cJSON *d, *v;

    out[0] = '\0';
    if (r->status == 0) {
        lab_assess_set(out, outlen, "%s", r->error[0] ? r->error : "no answer");
        return;
    }
    j = r->body ? json_whole_parse(r->body, r->len, NULL) : NULL;
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
void lab_assess_call(lab_assess_ctx *x, const char *method, const char *base,
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

cJSON *lab_assess_json(const httpc_resp *r)
{
    return r->body && r->status ? json_whole_parse(r->body, r->len, NULL) : NULL;
}

/* {"key":k,"value":v} (both plain: the grader's own keys and values). */
void lab_assess_kv_body(char *out, size_t outlen, const char *k, const char *v)
{
    lab_assess_set(out, outlen, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
}

int lab_assess_status(lab_assess_ctx *x, lab_assess_score_status *s, char *err, size_t errlen)
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
bool lab_assess_healthy(lab_assess_ctx *x, const lab_assess_score_status *s, bool all_listed)
{
    size_t alive = lab_assess_score_status_alive(s);
    return s->leader.alive && alive >= (size_t)x->cfg.followers &&
           (!all_listed || alive == s->nfollowers);
}

int lab_assess_wait_healthy(lab_assess_ctx *x, double deadline_s, bool all_listed,
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
