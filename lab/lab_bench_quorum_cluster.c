/* lab_bench_quorum_cluster: one W's cluster for `kvctl bench quorum`
 * (lab_bench_quorum_internal.h). */
#include "lab_bench_quorum_internal.h"

#include "httpc.h"
#include "json_whole.h"
#include "lab_cli.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

/* The clusters running now, one slot per W, for the signal handler (Ctrl-C
 * stops them and removes their directories before kvctl exits). */
static lab_bench_quorum_cluster *volatile lab_bench_quorum_cluster_running[LAB_BENCH_QUORUM_MAX_FOLLOWERS];
static volatile sig_atomic_t lab_bench_quorum_cluster_keep_dir;

static void lab_bench_quorum_cluster_on_signal(int sig)
{
    int st;

    for (int i = 0; i < LAB_BENCH_QUORUM_MAX_FOLLOWERS; i++) {
        lab_bench_quorum_cluster *c = lab_bench_quorum_cluster_running[i];
        if (c == NULL || c->pid <= 0)
            continue;
        kill(c->pid, SIGTERM);
        waitpid(c->pid, &st, 0);
        if (!lab_bench_quorum_cluster_keep_dir && strncmp(c->dir, "/tmp/kvbench-quorum-", 20) == 0) {
            pid_t p = fork();
            if (p == 0) {
                char *const argv[] = {"rm", "-rf", "--", c->dir, NULL};
                execv("/bin/rm", argv);
                _exit(127);
            }
            if (p > 0)
                waitpid(p, &st, 0);
        }
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ---- HTTP helpers -------------------------------------------------------- */

static cJSON *lab_bench_quorum_cluster_get_json(const char *base, const char *path, long timeout_ms,
                          long *status)
{
    char url[600];
    httpc_req rq = {.method = "GET", .url = url, .timeout_ms = timeout_ms};
    httpc_resp r;
    cJSON *j = NULL;

    snprintf(url, sizeof url, "%s%s", base, path);
    httpc_do(&rq, &r);
    if (status)
        *status = r.status;
    if (r.status == 200 && r.body)
        j = json_whole_parse(r.body, r.len, NULL);
    httpc_resp_free(&r);
    return j;
}

/* ---- the cluster --------------------------------------------------------- */

static int lab_bench_quorum_cluster_port_free(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

    if (fd < 0)
        return 0;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A block of free loopback ports, locked like the integration tests lock
 * theirs (flock on LAB_BENCH_QUORUM_LOCK_DIR/<base>.lock), so concurrent runs never pick
 * the same ports. 0, or -1. */
static int lab_bench_quorum_cluster_pick_ports(lab_bench_quorum_cluster *c)
{
    unsigned seed = (unsigned)getpid() ^ (unsigned)(lab_bench_quorum_now() * 1e6) ^
                    (unsigned)(uintptr_t)c;

    mkdir(LAB_BENCH_QUORUM_LOCK_DIR, 0777);
    for (int tries = 0; tries < 200; tries++) {
        int base = LAB_BENCH_QUORUM_PORT_LO + 10 * (int)(rand_r(&seed) %
                                           ((LAB_BENCH_QUORUM_PORT_HI - LAB_BENCH_QUORUM_PORT_LO - LAB_BENCH_QUORUM_PORT_BLOCK - 10) / 10));
        char path[128];
        int fd, ok = 1;

        snprintf(path, sizeof path, "%s/%d.lock", LAB_BENCH_QUORUM_LOCK_DIR, base);
        fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0666);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            continue;
        }
        for (int p = base; p <= base + LAB_BENCH_QUORUM_PORT_BLOCK && ok; p++)
            ok = lab_bench_quorum_cluster_port_free(p);
        if (!ok) {
            close(fd);
            continue;
        }
        c->base_port = base;
        c->nginx_port = base + LAB_BENCH_QUORUM_PORT_BLOCK;
        c->lock_fd = fd;
        return 0;
    }
    return -1;
}

static void lab_bench_quorum_cluster_kill(lab_bench_quorum_cluster *c)
{
    int st;

    if (c->pid > 0) {
        double end = lab_bench_quorum_now() + LAB_BENCH_QUORUM_STOP_GRACE_S;
        kill(c->pid, SIGTERM);
        while (lab_bench_quorum_now() < end) {
            pid_t w = waitpid(c->pid, &st, WNOHANG);
            if (w == c->pid || (w < 0 && errno == ECHILD))
                break;
            lab_bench_quorum_sleep_ms(50);
        }
        if (lab_bench_quorum_now() >= end) {
            fprintf(stderr, "kvctl bench: kv-controller did not stop within "
                    "%.0f s; killing it\n", LAB_BENCH_QUORUM_STOP_GRACE_S);
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
        }
        c->pid = 0;
    }
    if (c->lock_fd > 0) {
        close(c->lock_fd);
        c->lock_fd = 0;
    }
}

static void lab_bench_quorum_cluster_rmrf(const char *dir)
{
    pid_t pid;
    int st;

    if (dir[0] == '\0' || strncmp(dir, "/tmp/kvbench-quorum-", 20) != 0)
        return;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, &st, 0);
}

/* Fork kv-controller for one W in c->dir, its output in log. */
static int lab_bench_quorum_cluster_spawn(const lab_bench_quorum_opts *o, int w,
                                  const char *bin, lab_bench_quorum_cluster *c,
                                  const char *log)
{
    char sets[16][128], logdir[600], data[600], dd[640];
    const char *argv[48];
    int na = 0, ns = 0;
    pid_t parent = getpid();
    long quorum_timeout = 3 * o->max_delay_ms + 2000;

    snprintf(logdir, sizeof logdir, "%s/logs", c->dir);
    snprintf(data, sizeof data, "%s/data", c->dir);
    mkdir(logdir, 0755);

#define LAB_BENCH_QUORUM_SET(...) snprintf(sets[ns++], sizeof sets[0], __VA_ARGS__)
    LAB_BENCH_QUORUM_SET("cluster.shards=1");
    LAB_BENCH_QUORUM_SET("cluster.replicas=%d", o->followers + 1);
    LAB_BENCH_QUORUM_SET("cluster.write_quorum=%d", w);
    LAB_BENCH_QUORUM_SET("cluster.quorum_policy=any");
    LAB_BENCH_QUORUM_SET("cluster.base_port=%d", c->base_port);
    LAB_BENCH_QUORUM_SET("cluster.bind=127.0.0.1");
    LAB_BENCH_QUORUM_SET("nginx.port=%d", c->nginx_port);
    LAB_BENCH_QUORUM_SET("api.count=1");
    LAB_BENCH_QUORUM_SET("api.rate_limit=0");
    LAB_BENCH_QUORUM_SET("store.repl_delay_ms=%ld", o->max_delay_ms);
    if (o->random)
        LAB_BENCH_QUORUM_SET("store.repl_delay_random=1");
    LAB_BENCH_QUORUM_SET("store.quorum_timeout_ms=%ld", quorum_timeout);
    /* Secondaries also pull what they miss every reconcile interval (1 s by
     * default), undelayed, and report it in the next heartbeat's answer:
     * that would cut the slow link short and bias every mean low (by about
     * 10 % at MAX = 1 s). The study times the replication stream alone. */
    LAB_BENCH_QUORUM_SET("store.reconcile_interval_ms=3600000");
#undef LAB_BENCH_QUORUM_SET
    argv[na++] = "kv-controller";
    for (int i = 0; i < ns; i++) {
        argv[na++] = "--set";
        argv[na++] = sets[i];
    }
    snprintf(dd, sizeof dd, "cluster.data_dir=%s", data);
    argv[na++] = "--set";
    argv[na++] = dd;
    argv[na++] = "--log-dir";
    argv[na++] = logdir;
    argv[na] = NULL;

    fflush(NULL);
    c->pid = fork();
    if (c->pid < 0) {
        fprintf(stderr, "kvctl bench: fork: %s\n", strerror(errno));
        c->pid = 0;
        return -1;
    }
    if (c->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int nul = open("/dev/null", O_RDONLY);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent || fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (chdir(c->dir) != 0)
            _exit(127);
        execv(bin, (char *const *)argv);
        fprintf(stderr, "kvctl bench: cannot run %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    return 0;
}

/* Ready: /status says so, the topology has the shard's N + 1 replicas, and
 * the primary has heard from every secondary. */
static int lab_bench_quorum_cluster_wait_ready(const lab_bench_quorum_opts *o, int w,
                                       lab_bench_quorum_cluster *c,
                                       const char *log)
{
    double end = lab_bench_quorum_now() + LAB_BENCH_QUORUM_READY_TIMEOUT_S;

    for (int stage = 0; stage < 3;) {
        int st;
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            fprintf(stderr, "kvctl bench: kv-controller exited (status %d) "
                    "before the cluster was ready\n",
                    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
            c->pid = 0;
            lab_cli_tail_log(log);
            return -1;
        }
        if (lab_bench_quorum_now() > end) {
            fprintf(stderr, "kvctl bench: the cluster (W=%d) was not ready "
                    "within %.0f s (stage %d)\n", w, LAB_BENCH_QUORUM_READY_TIMEOUT_S, stage);
            lab_cli_tail_log(log);
            return -1;
        }
        if (stage == 0) {
            cJSON *j = lab_bench_quorum_cluster_get_json(c->controller, "/status", 2000, NULL);
            stage += cJSON_IsTrue(cJSON_GetObjectItem(j, "ready"));
            cJSON_Delete(j);
        } else if (stage == 1) {
            cJSON *j = lab_bench_quorum_cluster_get_json(c->controller, "/topology", 2000, NULL);
            const cJSON *sh = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "shards"), 0);
            const cJSON *p = cJSON_GetObjectItem(sh, "primary"), *s;
            int n = 0;
            if (cJSON_IsString(p)) {
                snprintf(c->primary, sizeof c->primary, "%s", p->valuestring);
                cJSON_ArrayForEach(s, cJSON_GetObjectItem(sh, "secondaries"))
                    if (cJSON_IsString(s) && n < LAB_BENCH_QUORUM_MAX_FOLLOWERS)
                        snprintf(c->secondaries[n++], sizeof c->secondaries[0],
                                 "%s", s->valuestring);
                c->nsec = n;
                stage += n == o->followers;
            }
            cJSON_Delete(j);
        } else {
            cJSON *j = lab_bench_quorum_cluster_get_json(c->primary, "/health", 2000, NULL);
            const cJSON *s;
            int known = 0;
            cJSON_ArrayForEach(s, cJSON_GetObjectItem(j, "secondaries"))
                known += cJSON_IsTrue(cJSON_GetObjectItem(s, "known")) &&
                         cJSON_IsTrue(cJSON_GetObjectItem(s, "alive"));
            stage += known == o->followers;
            cJSON_Delete(j);
        }
        if (stage < 3)
            lab_bench_quorum_sleep_ms(100);
    }
    return 0;
}

int lab_bench_quorum_cluster_start(const lab_bench_quorum_opts *o, int w,
                                   const char *bin, lab_bench_quorum_cluster *c)
{
    char log[600];

    lab_bench_quorum_cluster_running[w - 1] = c;
    snprintf(c->dir, sizeof c->dir, "/tmp/kvbench-quorum-XXXXXX");
    if (mkdtemp(c->dir) == NULL) {
        fprintf(stderr, "kvctl bench: mkdtemp: %s\n", strerror(errno));
        c->dir[0] = '\0';
        return -1;
    }
    if (lab_bench_quorum_cluster_pick_ports(c) != 0) {
        fprintf(stderr, "kvctl bench: no free block of loopback ports\n");
        return -1;
    }
    snprintf(c->controller, sizeof c->controller, "http://127.0.0.1:%d", c->base_port);
    snprintf(log, sizeof log, "%s/controller.log", c->dir);
    if (lab_bench_quorum_cluster_spawn(o, w, bin, c, log) != 0)
        return -1;
    return lab_bench_quorum_cluster_wait_ready(o, w, c, log);
}

int lab_bench_quorum_cluster_wait_acked(const lab_bench_quorum_cluster *c,
                                        uint64_t seq, long timeout_ms)
{
    double end = lab_bench_quorum_now() + (double)timeout_ms / 1000.0;

    for (;;) {
        cJSON *j = lab_bench_quorum_cluster_get_json(c->primary, "/health", 2000, NULL);
        const cJSON *s;
        int n = 0, done = 0;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(j, "secondaries")) {
            const cJSON *a = cJSON_GetObjectItem(s, "acked_seq");
            n++;
            done += cJSON_IsNumber(a) && (uint64_t)a->valuedouble >= seq;
        }
        cJSON_Delete(j);
        if (n == c->nsec && done == n)
            return 0;
        if (lab_bench_quorum_now() > end)
            return -1;
        lab_bench_quorum_sleep_ms(3);
    }
}

void lab_bench_quorum_cluster_stop(lab_bench_quorum_cluster *c, int w, int keep)
{
    lab_bench_quorum_cluster_kill(c);
    lab_bench_quorum_cluster_running[w - 1] = NULL;
    if (!keep)
        lab_bench_quorum_cluster_rmrf(c->dir);
    else if (c->dir[0])
        printf("  kept %s\n", c->dir);
}

void lab_bench_quorum_cluster_on_signals(int keep)
{
    lab_bench_quorum_cluster_keep_dir = keep;
    signal(SIGINT, lab_bench_quorum_cluster_on_signal);
    signal(SIGTERM, lab_bench_quorum_cluster_on_signal);
}
