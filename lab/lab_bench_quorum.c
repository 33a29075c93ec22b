/* lab_bench_quorum: see lab_bench_quorum.h. */
#include "lab_bench_quorum.h"
#include "json_whole.h"
#include "lab_bench_quorum_internal.h"

#include "kvctl.h"

#include "lab_cli.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the order statistics ------------------------------------------------ */

/* P(X_(w) <= x) for the w-th smallest of n uniforms on (0, 1): at least w of
 * them below x. */
static double lab_bench_quorum_os_cdf(int w, int n, double x)
{
    double p = 0, c = 1;   /* c = C(n, j) */

    for (int j = 0; j <= n; j++) {
        if (j >= w)
            p += c * pow(x, j) * pow(1 - x, n - j);
        c = c * (n - j) / (j + 1);
    }
    return p;
}

/* The q-quantile of the w-th of n uniforms on (0, 1) (bisection). */
static double lab_bench_quorum_os_quantile(int w, int n, double q)
{
    double lo = 0, hi = 1;
    for (int i = 0; i < 60; i++) {
        double mid = (lo + hi) / 2;
        if (lab_bench_quorum_os_cdf(w, n, mid) < q)
            lo = mid;
        else
            hi = mid;
    }
    return (lo + hi) / 2;
}

static int lab_bench_quorum_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double lab_bench_quorum_pct(const double *v, int n, double p)
{
    int k = (int)ceil(p / 100.0 * n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

/* ---- one W ----------------------------------------------------------------- */

/* Write number i through the primary, time it, and wait until every
 * secondary has acknowledged it. */
static void lab_bench_quorum_write_one(const lab_bench_quorum_opts *o, int w,
                                       const lab_bench_quorum_cluster *c, int i,
                                       double *lat,
                                       lab_bench_quorum_result *res)
{
    long write_timeout = 3 * o->max_delay_ms + 2000 + 5000;
    char url[400], value[LAB_BENCH_QUORUM_VALUE_BYTES + 1];
    const char *hdrs[] = {"Content-Type: application/octet-stream", NULL};
    httpc_req rq = {.method = "PUT", .url = url, .body = value,
                    .headers = hdrs, .timeout_ms = write_timeout};
    httpc_resp r;
    double t0, t1;
    uint64_t seq = 0;
    cJSON *j;

    snprintf(url, sizeof url, "%s/internal/kv/bq-w%d-%04d", c->primary, w, i);
    snprintf(value, sizeof value, "quorum-study W=%d write %d ", w, i);
    memset(value + strlen(value), 'x', LAB_BENCH_QUORUM_VALUE_BYTES - strlen(value));
    value[LAB_BENCH_QUORUM_VALUE_BYTES] = '\0';
    rq.body_len = LAB_BENCH_QUORUM_VALUE_BYTES;
    t0 = lab_bench_quorum_now();
    httpc_do(&rq, &r);
    t1 = lab_bench_quorum_now();
    j = r.status == 200 ? json_whole_parse(r.body, r.len, NULL) : NULL;
    if (j && cJSON_IsNumber(cJSON_GetObjectItem(j, "seq")))
        seq = (uint64_t)cJSON_GetObjectItem(j, "seq")->valuedouble;
    cJSON_Delete(j);
    if (r.status != 200 || seq == 0) {
        res->failed_writes++;
        if (res->failed_writes <= 3)
            fprintf(stderr, "kvctl bench: W=%d write %d: %ld %s%.200s\n", w, i,
                    r.status, r.status ? "" : r.error, r.body ? r.body : "");
        httpc_resp_free(&r);
        return;
    }
    httpc_resp_free(&r);
    lat[res->ok_writes++] = (t1 - t0) * 1000.0;
    /* Every secondary idle again before the next write: a fresh,
     * independent delay on each of them. */
    if (lab_bench_quorum_cluster_wait_acked(c, seq, 2 * o->max_delay_ms + 5000) != 0) {
        fprintf(stderr, "kvctl bench: W=%d: the secondaries did not all "
                "acknowledge write %d (seq %llu)\n", w, i,
                (unsigned long long)seq);
        res->failed_writes++;
    }
    if (o->verbose && (i + 1) % 25 == 0)
        printf("  %d/%d writes, last %.1f ms\n", i + 1, o->writes, lat[res->ok_writes - 1]);
}

/* Parity: every replica's live records, until identical (they all acked
 * the last write already) or 15 s. */
static void lab_bench_quorum_parity(int w, const lab_bench_quorum_cluster *c,
                                    lab_bench_quorum_result *res)
{
    const char *urls[LAB_BENCH_QUORUM_MAX_FOLLOWERS + 1];
    kvctl_opts ko = {.url = c->primary, .controller = c->controller,
                     .timeout_ms = 10000};
    char label[64];
    double end = lab_bench_quorum_now() + 15;
    int prc;
    size_t n = 0;

    urls[n++] = c->primary;
    for (int i = 0; i < c->nsec; i++)
        urls[n++] = c->secondaries[i];
    while ((prc = kvctl_parity_replicas(&ko, urls, n, "", NULL, &res->keys)) != KVCTL_OK &&
           lab_bench_quorum_now() < end)
        lab_bench_quorum_sleep_ms(200);
    snprintf(label, sizeof label, "  W=%d parity", w);
    prc = kvctl_parity_replicas(&ko, urls, n, label, stdout, &res->keys);
    res->parity_ok = prc == KVCTL_OK && res->keys == (size_t)res->ok_writes;
    if (prc == KVCTL_OK && !res->parity_ok)
        printf("  W=%d: the replicas agree but hold %zu keys, %d were written\n",
               w, res->keys, res->ok_writes);
}

/* The latency summary of one W beside what the order statistics expect. */
static void lab_bench_quorum_stats(const lab_bench_quorum_opts *o,
                                   double *lat, lab_bench_quorum_result *res)
{
    int n = res->ok_writes, N = o->followers;
    double m = (double)o->max_delay_ms;

    if (n > 0) {
        double sum = 0, ss = 0;

        qsort(lat, (size_t)n, sizeof *lat, lab_bench_quorum_cmp_double);
        for (int i = 0; i < n; i++)
            sum += lat[i];
        res->mean_ms = sum / n;
        for (int i = 0; i < n; i++)
            ss += (lat[i] - res->mean_ms) * (lat[i] - res->mean_ms);
        res->sd_ms = n > 1 ? sqrt(ss / (n - 1)) : 0;
        res->se_ms = res->sd_ms / sqrt((double)n);
        res->p50_ms = lab_bench_quorum_pct(lat, n, 50);
        res->p99_ms = lab_bench_quorum_pct(lat, n, 99);
        res->max_ms = lat[n - 1];
    }
    if (o->random) {
        int w = res->w;

        res->expected_ms = (double)w / (N + 1) * m;
        res->expected_p99_ms = lab_bench_quorum_os_quantile(w, N, 0.99) * m;
        res->expected_se_ms = m * sqrt((double)w * (N + 1 - w) /
                                       ((double)(N + 1) * (N + 1) * (N + 2))) /
                              sqrt(n > 0 ? n : 1);
    } else {
        res->expected_ms = m;
        res->expected_p99_ms = m;
        res->expected_se_ms = 0;
    }
    res->deviation_pct = res->expected_ms > 0
        ? (res->mean_ms - res->expected_ms) / res->expected_ms * 100.0 : 0;
}

static int lab_bench_quorum_run_w(const lab_bench_quorum_opts *o, int w, const char *bin, lab_bench_quorum_result *res)
{
    lab_bench_quorum_cluster c;
    double *lat = calloc((size_t)o->writes, sizeof *lat);
    int rc = 0;

    memset(&c, 0, sizeof c);
    memset(res, 0, sizeof *res);
    res->w = w;
    if (lat == NULL)
        return -1;
    printf("W=%d: starting a cluster of 1 primary + %d secondaries ...\n", w,
           o->followers);
    fflush(stdout);
    if (lab_bench_quorum_cluster_start(o, w, bin, &c) != 0) {
        snprintf(res->note, sizeof res->note, "the cluster did not start");
        rc = -1;
        goto out;
    }
    if (o->verbose)
        printf("  controller %s, primary %s, data in %s\n", c.controller,
               c.primary, c.dir);

    for (int i = 0; i < o->writes; i++)
        lab_bench_quorum_write_one(o, w, &c, i, lat, res);
    lab_bench_quorum_parity(w, &c, res);

out:
    lab_bench_quorum_cluster_stop(&c, w, o->keep);

    lab_bench_quorum_stats(o, lat, res);
    free(lat);
    if (res->failed_writes)
        rc = -1;
    return rc;
}

/* ---- outputs --------------------------------------------------------------- */

static int lab_bench_quorum_write_csv(const lab_bench_quorum_opts *o, const lab_bench_quorum_result *r, int n, const char *path)
{
    FILE *f = fopen(path, "w");

    if (f == NULL) {
        fprintf(stderr, "kvctl bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "W,mean_ms,p99_ms,expected_ms,deviation_pct,parity,"
               "stderr_ms,expected_stderr_ms,p50_ms,expected_p99_ms,max_ms,"
               "writes,failed_writes,followers,max_delay_ms,delay\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%d,%.2f,%.2f,%.2f,%.2f,%s,%.2f,%.2f,%.2f,%.2f,%.2f,%d,%d,%d,%ld,%s\n",
                r[i].w, r[i].mean_ms, r[i].p99_ms, r[i].expected_ms,
                r[i].deviation_pct, r[i].parity_ok ? "ok" : "FAIL", r[i].se_ms,
                r[i].expected_se_ms, r[i].p50_ms, r[i].expected_p99_ms,
                r[i].max_ms, r[i].ok_writes, r[i].failed_writes, o->followers,
                o->max_delay_ms, o->random ? "uniform" : "fixed");
    return fclose(f) == 0 ? 0 : -1;
}

static int lab_bench_quorum_plot(const lab_bench_quorum_opts *o, const char *csv, const char *png)
{
    FILE *g;
    int st;
    int N = o->followers;
    char delay[64];

    if (o->random)
        snprintf(delay, sizeof delay, "uniform(0, %ld ms)", o->max_delay_ms);
    else
        snprintf(delay, sizeof delay, "%ld ms", o->max_delay_ms);
    fflush(NULL);
    g = popen("gnuplot", "w");
    if (g == NULL) {
        fprintf(stderr, "kvctl bench: cannot run gnuplot: %s\n", strerror(errno));
        return -1;
    }
    fprintf(g,
            "set terminal pngcairo size 900,600 enhanced font 'Sans,11'\n"
            "set output '%s'\n"
            "set datafile separator ','\n"
            "set title \"Write latency vs write quorum W\\n{/*0.85 N = %d "
            "followers, replication delay %s per follower and batch, %d "
            "sequential writes per W}\"\n"
            "set xlabel 'write quorum W (secondaries that must acknowledge)'\n"
            "set ylabel 'latency (ms)'\n"
            "set xrange [0.5:%d.5]\n"
            "set xtics 1\n"
            "set yrange [0:*]\n"
            "set grid\n"
            "set key top left\n"
            "N = %d; M = %ld\n"
            "plot (%s) with lines lw 2 dt 2 lc rgb '#555555' "
            "title 'expected mean %s', \\\n"
            "     '%s' every ::1 using 1:10 with linespoints lw 1 dt 3 pt 6 "
            "lc rgb '#d62728' title 'expected p99', \\\n"
            "     '%s' every ::1 using 1:2:($7*1.96) with yerrorlines lw 2 pt 7 "
            "lc rgb '#1f77b4' title 'measured mean (95%% CI)', \\\n"
            "     '%s' every ::1 using 1:3 with linespoints lw 2 pt 5 "
            "lc rgb '#d62728' title 'measured p99'\n",
            png, N,
            delay,
            o->writes, N, N, o->max_delay_ms,
            o->random ? "x / (N + 1) * M" : "M",
            o->random ? "W/(N+1) x M" : "M",
            csv, csv, csv);
    st = pclose(g);
    if (st != 0) {
        fprintf(stderr, "kvctl bench: gnuplot failed (status %d): no plot\n", st);
        return -1;
    }
    return 0;
}

/* ---- the command ----------------------------------------------------------- */

/* One W's run on its own thread. */
typedef struct lab_bench_quorum_task {
    const lab_bench_quorum_opts *o;
    int w;
    const char *bin;
    lab_bench_quorum_result *res;
    int rc;
    pthread_t th;
} lab_bench_quorum_task;

static void *lab_bench_quorum_task_main(void *arg)
{
    lab_bench_quorum_task *t = arg;
    t->rc = lab_bench_quorum_run_w(t->o, t->w, t->bin, t->res);
    httpc_thread_done();
    return NULL;
}

static int lab_bench_quorum_usage(void)
{
    fprintf(stderr,
            "usage: kvctl bench quorum [--followers N] [--max-delay-ms MS] "
            "[--writes K]\n"
            "                          [--out DIR] [--delay uniform|fixed] "
            "[--w W] [--keep] [--verbose]\n");
    return KVCTL_USAGE;
}

static int lab_bench_quorum_int_arg(const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    long x;

    errno = 0;
    x = v ? strtol(v, &end, 10) : 0;
    if (v == NULL || *v == '\0' || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "kvctl bench: %s wants an integer in [%ld, %ld]\n", name,
                lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* The study's flags into o. 0, or a kvctl exit status (said). */
static int lab_bench_quorum_args(int argc, char **argv, lab_bench_quorum_opts *o)
{
    long v;

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[32];
        size_t nl = strcspn(a, "=");

        if (nl >= sizeof name)
            return lab_bench_quorum_usage();
        memcpy(name, a, nl);
        name[nl] = '\0';
        if (a[nl] == '=')
            val = a + nl + 1;
        if (strcmp(name, "--keep") == 0) {
            o->keep = 1;
            continue;
        }
        if (strcmp(name, "--verbose") == 0 || strcmp(name, "-v") == 0) {
            o->verbose = 1;
            continue;
        }
        if (val == NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "kvctl bench: %s needs a value\n", a);
                return KVCTL_USAGE;
            }
            val = argv[++i];
        }
        if (strcmp(name, "--followers") == 0) {
            if (lab_bench_quorum_int_arg(name, val, 1, LAB_BENCH_QUORUM_MAX_FOLLOWERS, &v))
                return KVCTL_USAGE;
            o->followers = (int)v;
        } else if (strcmp(name, "--max-delay-ms") == 0) {
            if (lab_bench_quorum_int_arg(name, val, 1, 190000, &v))
                return KVCTL_USAGE;
            o->max_delay_ms = v;
        } else if (strcmp(name, "--writes") == 0) {
            if (lab_bench_quorum_int_arg(name, val, 1, 1000000, &v))
                return KVCTL_USAGE;
            o->writes = (int)v;
        } else if (strcmp(name, "--w") == 0) {
            if (lab_bench_quorum_int_arg(name, val, 1, LAB_BENCH_QUORUM_MAX_FOLLOWERS, &v))
                return KVCTL_USAGE;
            o->only_w = (int)v;
        } else if (strcmp(name, "--out") == 0) {
            o->out = val;
        } else if (strcmp(name, "--delay") == 0) {
            if (strcmp(val, "uniform") == 0 || strcmp(val, "random") == 0)
                o->random = 1;
            else if (strcmp(val, "fixed") == 0)
                o->random = 0;
            else
                return lab_bench_quorum_usage();
        } else {
            fprintf(stderr, "kvctl bench: unknown option %s\n", a);
            return lab_bench_quorum_usage();
        }
    }
    if (o->only_w > o->followers) {
        fprintf(stderr, "kvctl bench: --w %d is above --followers %d\n", o->only_w,
                o->followers);
        return KVCTL_USAGE;
    }
    return 0;
}

/* Every W at once, one cluster each; res[] gets one result per W run.
 * The number of runs, or -1 when one could not start (said); *bad is set
 * when a write or a parity check failed. */
static int lab_bench_quorum_run_all(lab_bench_quorum_opts *o, const char *bin,
                                    lab_bench_quorum_result *res, int *bad)
{
    lab_bench_quorum_task tasks[LAB_BENCH_QUORUM_MAX_FOLLOWERS];
    int nres = 0;

    for (int w = 1; w <= o->followers; w++) {
        if (o->only_w && w != o->only_w)
            continue;
        lab_bench_quorum_task *t = &tasks[nres];
        *t = (lab_bench_quorum_task){.o = o, .w = w, .bin = bin, .res = &res[nres]};
        if (pthread_create(&t->th, NULL, lab_bench_quorum_task_main, t) != 0) {
            fprintf(stderr, "kvctl bench: cannot start the W=%d run\n", w);
            return -1;
        }
        nres++;
    }
    for (int i = 0; i < nres; i++) {
        pthread_join(tasks[i].th, NULL);
        if (tasks[i].rc != 0 || !res[i].parity_ok)
            *bad = 1;
    }
    printf("\n");
    for (int i = 0; i < nres; i++)
        printf("  W=%d: %d writes, mean %.1f ms (expected %.1f), p99 %.1f ms\n",
               res[i].w, res[i].ok_writes, res[i].mean_ms, res[i].expected_ms,
               res[i].p99_ms);
    printf("\n");
    fflush(stdout);
    return nres;
}

/* The table of every W against its expectation. */
static void lab_bench_quorum_table(const lab_bench_quorum_opts *o,
                                   const lab_bench_quorum_result *res, int nres)
{
    printf("%2s %6s %9s %9s %9s %9s %10s %9s %7s %7s\n", "W", "writes", "mean_ms",
           "stderr", "expected", "dev_%", "p99_ms", "exp_p99", "z", "parity");
    for (int i = 0; i < nres; i++) {
        const lab_bench_quorum_result *r = &res[i];
        double z = r->expected_se_ms > 0
            ? (r->mean_ms - r->expected_ms) / r->expected_se_ms : 0;
        printf("%2d %6d %9.1f %9.1f %9.1f %+9.1f %10.1f %9.1f %+7.2f %7s%s\n", r->w,
               r->ok_writes, r->mean_ms, r->se_ms, r->expected_ms, r->deviation_pct,
               r->p99_ms, r->expected_p99_ms, z, r->parity_ok ? "ok" : "FAIL",
               fabs(r->deviation_pct) > 10 ? "  (mean off by more than 10 %)" : "");
    }
    if (o->random)
        printf("\nstderr: the measured standard error of the mean; z: the "
               "deviation in units of the\nexpected standard error "
               "(MAX x sqrt(W(N+1-W) / ((N+1)^2 (N+2))) / sqrt(writes)).\n");
}

static int lab_bench_quorum_quorum(int argc, char **argv)
{
    lab_bench_quorum_opts o = {.followers = 5, .max_delay_ms = 1000, .writes = 300,
                 .out = "reports", .random = 1};
    char bin[4096], err[4200], csv[1024], png[1024];
    lab_bench_quorum_result res[LAB_BENCH_QUORUM_MAX_FOLLOWERS];
    int nres, bad = 0, rc;

    if ((rc = lab_bench_quorum_args(argc, argv, &o)) != 0)
        return rc;
    if (lab_cli_controller_path(bin, sizeof bin, err, sizeof err) != 0) {
        fprintf(stderr, "kvctl bench: %s\n", err);
        return KVCTL_FAIL;
    }
    if (mkdir(o.out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "kvctl bench: %s: %s\n", o.out, strerror(errno));
        return KVCTL_FAIL;
    }
    lab_bench_quorum_cluster_on_signals(o.keep);
    snprintf(csv, sizeof csv, "%s/quorum_vs_latency.csv", o.out);
    snprintf(png, sizeof png, "%s/quorum_vs_latency.png", o.out);

    printf("kvctl bench quorum: 1 primary + N=%d followers, replication delay %s%ld%s "
           "ms per batch and follower, %d sequential writes per W\n",
           o.followers, o.random ? "uniform(0, " : "fixed ", o.max_delay_ms,
           o.random ? ")" : "", o.writes);
    if (o.random)
        printf("expectation: a write waits for the W-th fastest of N delays: "
               "mean W/(N+1) x %ld ms\n", o.max_delay_ms);
    printf("\n");
    if ((nres = lab_bench_quorum_run_all(&o, bin, res, &bad)) < 0)
        return KVCTL_FAIL;
    lab_bench_quorum_table(&o, res, nres);
    if (nres > 0) {
        if (lab_bench_quorum_write_csv(&o, res, nres, csv) == 0)
            printf("wrote %s\n", csv);
        else
            bad = 1;
        if (lab_bench_quorum_plot(&o, csv, png) == 0)
            printf("wrote %s\n", png);
    }
    if (bad)
        printf("FAILED: %s\n", "a write or a parity check failed (see above)");
    return bad ? KVCTL_FAIL : KVCTL_OK;
}

int lab_bench_quorum_cmd(const kvctl_opts *o, int argc, char **argv)
{
    (void)o;
    if (argc < 1 || strcmp(argv[0], "quorum") != 0) {
        fprintf(stderr, "kvctl bench: the only study is \"quorum\"\n");
        return lab_bench_quorum_usage();
    }
    return lab_bench_quorum_quorum(argc - 1, argv + 1);
}
