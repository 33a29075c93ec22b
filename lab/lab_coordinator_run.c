/* lab_coordinator_run: kv-controller --lab: the run directory, the
 * stores' and gateway's config, starting everything, the main loop and
 * teardown (lab_coordinator_main, lab_coordinator.h). */
#include "lab_coordinator_internal.h"

#include "clock.h"
#include "config.h"
#include "httpc.h"
#include "lab_coordinator_http.h"
#include "log.h"
#include "sup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- setting up and running ------------------------------------------------- */

static int lab_coordinator_rm_one(const char *path, const struct stat *sb, int flag,
                      struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* The run directory: $KV_DATA_DIR/lab-<time>-<pid> (kept), else a fresh
 * temporary directory (removed at exit). */
static int lab_coordinator_make_dir(lab_coordinator_t *L)
{
    const char *base = getenv("KV_DATA_DIR");

    if (base && *base) {
        char stamp[32];
        time_t t = time(NULL);
        struct tm tm;
        if (mkdir(base, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "kv-controller: mkdir %s: %s\n", base,
                    strerror(errno));
            return -1;
        }
        localtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        if ((size_t)snprintf(L->dir, sizeof L->dir, "%s/lab-%s-%ld", base,
                             stamp, (long)getpid()) >= sizeof L->dir - 64 ||
            mkdir(L->dir, 0755) != 0) {
            fprintf(stderr, "kv-controller: cannot create %s: %s\n", L->dir,
                    strerror(errno));
            return -1;
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(L->dir, sizeof L->dir, "%s/kv-lab-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(L->dir) == NULL) {
            fprintf(stderr, "kv-controller: mkdtemp %s: %s\n", L->dir,
                    strerror(errno));
            return -1;
        }
        L->remove_dir = 1;
    }
    return 0;
}

/* The configuration file every lab store and the gateway read: the lab
 * timing profile. */
static int lab_coordinator_write_config(lab_coordinator_t *L)
{
    kv_config c;
    char err[256], *text;
    FILE *f;
    int rc = 0;

    config_defaults(&c);
    snprintf(c.bind, sizeof c.bind, "%s", LAB_COORDINATOR_HOST);
    /* The upstream grader's API has no token: every lab process binds
     * loopback only instead (lab/README.md). */
    snprintf(c.auth, sizeof c.auth, "off");
    if ((size_t)snprintf(c.data_dir, sizeof c.data_dir, "%s", L->dir) >=
        sizeof c.data_dir) {
        fprintf(stderr, "kv-controller: %s: path too long\n", L->dir);
        return -1;
    }
    c.shards = 1;
    c.replicas = 32;
    c.base_port = LAB_COORDINATOR_CTL_PORT;
    c.write_quorum = L->cfg.write_quorum;
    c.read_quorum = L->cfg.read_quorum;
    snprintf(c.quorum_policy, sizeof c.quorum_policy, "ordered");
    c.quorum_timeout_ms = LAB_COORDINATOR_QUORUM_TIMEOUT_MS;
    c.lab_sync_delay_ms = LAB_COORDINATOR_SYNC_DELAY_MS;
    c.lab_async_delay_ms = LAB_COORDINATOR_ASYNC_DELAY_MS;
    c.heartbeat_ms = LAB_COORDINATOR_HEARTBEAT_MS;
    c.lease_ms = 0;   /* per follower on its command line */
    /* The stream delivers everything; a secondary's own pull is only a
     * safety net here, or it would undo the async delay. */
    c.reconcile_interval_ms = 30000;
    c.topology_poll_ms = 500;
    c.map_size_mb = 1024;
    c.store_threads = 4;
    c.api_count = 1;
    c.api_threads = 4;
    c.upstream_timeout_ms = 15000;
    c.rate_limit = L->cfg.rate_limit_enabled ? L->cfg.rate_limit_max : 0;
    c.rate_window_ms = (int64_t)(L->cfg.rate_limit_window * 1000.0 + 0.5);
    if (c.rate_window_ms < 1)
        c.rate_window_ms = 1;
    if (config_validate(&c, err, sizeof err) != 0) {
        fprintf(stderr, "kv-controller: lab configuration: %s\n", err);
        return -1;
    }
    if ((size_t)snprintf(L->conf, sizeof L->conf, "%s/lab-config.json",
                         L->dir) >= sizeof L->conf)
        return -1;
    text = config_to_json(&c);
    f = fopen(L->conf, "w");
    if (text == NULL || f == NULL || fputs(text, f) < 0 || fputc('\n', f) < 0)
        rc = -1;
    if (f && fclose(f) != 0)
        rc = -1;
    free(text);
    if (rc)
        fprintf(stderr, "kv-controller: cannot write %s\n", L->conf);
    return rc;
}

static int lab_coordinator_add_gateway(lab_coordinator_t *L)
{
    char bin[PATH_MAX + 16], port[16], ctl[80], rl[64], rw[64];
    char *argv[16];
    size_t a = 0;
    sup_spec spec;

    snprintf(bin, sizeof bin, "%s/kv-api", L->bin_dir);
    snprintf(port, sizeof port, "%d", LAB_COORDINATOR_GATEWAY_PORT);
    snprintf(ctl, sizeof ctl, "%s", L->ctl_url);
    snprintf(rl, sizeof rl, "api.rate_limit=%lld",
             L->cfg.rate_limit_enabled ? (long long)L->cfg.rate_limit_max : 0LL);
    snprintf(rw, sizeof rw, "api.rate_window_ms=%lld",
             (long long)(L->cfg.rate_limit_window * 1000.0 + 0.5) > 0
                 ? (long long)(L->cfg.rate_limit_window * 1000.0 + 0.5)
                 : 1LL);
    argv[a++] = bin;
    argv[a++] = "--lab";
    argv[a++] = "--config";
    argv[a++] = L->conf;
    argv[a++] = "--port";
    argv[a++] = port;
    argv[a++] = "--controller";
    argv[a++] = ctl;
    argv[a++] = "--set";
    argv[a++] = rl;
    argv[a++] = "--set";
    argv[a++] = rw;
    argv[a] = NULL;
    memset(&spec, 0, sizeof spec);
    snprintf(spec.name, sizeof spec.name, "gateway");
    snprintf(spec.kind, sizeof spec.kind, "api");
    snprintf(spec.role, sizeof spec.role, "gateway");
    spec.shard = spec.replica = -1;
    spec.port = LAB_COORDINATOR_GATEWAY_PORT;
    snprintf(spec.url, sizeof spec.url, "http://%s:%d", LAB_COORDINATOR_HOST,
             LAB_COORDINATOR_GATEWAY_PORT);
    spec.argv = argv;
    L->gw_sup = sup_add(L->sup, &spec);
    return L->gw_sup < 0 ? -1 : 0;
}

static void lab_coordinator_print_lines(const char *prefix, const char *msg)
{
    while (*msg) {
        size_t n = strcspn(msg, "\n");
        if (n)
            fprintf(stderr, "%s%.*s\n", prefix, (int)n, msg);
        msg += n;
        if (*msg == '\n')
            msg++;
    }
}

/* The lab's settings from the student's file, and the timing they imply.
 * 0, or -1 (said). */
static int lab_coordinator_configure(lab_coordinator_t *L,
                                     const char *config_path,
                                     const char *bin_dir)
{
    char err[4096], warn[2048];

    if (lab_config_load_resolved(&L->cfg, config_path, err, sizeof err, warn,
                                 sizeof warn) != 0) {
        lab_coordinator_print_lines("kv-controller: ", err);
        return -1;
    }
    lab_coordinator_print_lines("kv-controller: warning: ", warn);
    lab_config_print_summary(stdout, &L->cfg);
    fflush(stdout);
    snprintf(L->bin_dir, sizeof L->bin_dir, "%s", bin_dir);
    snprintf(L->ctl_url, sizeof L->ctl_url, "http://%s:%d", LAB_COORDINATOR_HOST,
             LAB_COORDINATOR_CTL_PORT);
    /* Silence for dead_after means dead; never below two heartbeats. */
    L->dead_after_ms = L->cfg.auto_spawn
                           ? (int64_t)(L->cfg.auto_spawn_delay * 1000.0 + 0.5)
                           : LAB_COORDINATOR_DEAD_AFTER_DEFAULT_MS;
    if (L->dead_after_ms < 2 * LAB_COORDINATOR_HEARTBEAT_MS)
        L->dead_after_ms = 2 * LAB_COORDINATOR_HEARTBEAT_MS;
    L->lease_ms = L->dead_after_ms;
    return 0;
}

/* kv-store is built and the lab's fixed ports are free. 0, or -1 (said). */
static int lab_coordinator_preflight(lab_coordinator_t *L, const char *bin_dir)
{
    unsigned ports[LAB_CONFIG_MAX_FOLLOWERS + 3];
    char bin[PATH_MAX + 16];
    size_t np = 0;

    snprintf(bin, sizeof bin, "%s/kv-store", bin_dir);
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "kv-controller: %s: %s (build it with make)\n", bin,
                strerror(errno));
        return -1;
    }
    ports[np++] = LAB_COORDINATOR_CTL_PORT;
    ports[np++] = LAB_COORDINATOR_GATEWAY_PORT;
    for (int64_t i = 0; i <= L->cfg.followers; i++)
        ports[np++] = LAB_COORDINATOR_LEADER_PORT + (unsigned)i;
    for (size_t i = 0; i < np; i++)
        if (!lab_coordinator_port_free(ports[i])) {
            fprintf(stderr, "kv-controller: port %u is in use (another "
                    "lab still running? the lab needs 7000, 7001..%u and "
                    "8000)\n", ports[i],
                    LAB_COORDINATOR_LEADER_PORT + (unsigned)L->cfg.followers);
            return -1;
        }
    return 0;
}

/* The run directory, the log directory and the children's config file.
 * 0, or -1 (said). */
static int lab_coordinator_prepare(lab_coordinator_t *L, const char *log_dir)
{
    if (lab_coordinator_make_dir(L) != 0)
        return -1;
    if ((size_t)snprintf(L->logs, sizeof L->logs, "%s%s",
                         log_dir && *log_dir ? log_dir : L->dir,
                         log_dir && *log_dir ? "" : "/logs") >= sizeof L->logs) {
        fprintf(stderr, "kv-controller: %s: path too long\n", L->dir);
        return -1;
    }
    if (mkdir(L->logs, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "kv-controller: mkdir %s: %s\n", L->logs,
                strerror(errno));
        return -1;
    }
    if (lab_coordinator_write_config(L) != 0)
        return -1;
    /* The children read the lab's file; the caller's environment must not
     * change W, the delays or the ports under them. */
    config_clear_env();
    return 0;
}

/* The leader and the followers, then the gateway (optional: without
 * kv-api the lab runs without one). 0 or -1. */
static int lab_coordinator_start_nodes(lab_coordinator_t *L,
                                       const char *bin_dir)
{
    char bin[PATH_MAX + 16];

    L->started_ms = clock_mono_ms();
    L->topo_epoch = 1;
    pthread_mutex_lock(&L->mu);
    for (int64_t i = 0; i <= L->cfg.followers; i++) {
        lab_coordinator_node *n = lab_coordinator_new_node(L, (unsigned)i);
        if (n == NULL ||
            lab_coordinator_start_proc(
                L, n, LAB_COORDINATOR_LEADER_PORT + (unsigned)i, 0) != 0) {
            pthread_mutex_unlock(&L->mu);
            return -1;
        }
    }
    pthread_mutex_unlock(&L->mu);
    snprintf(bin, sizeof bin, "%s/kv-api", bin_dir);
    if (access(bin, X_OK) != 0)
        log_error("lab: %s: %s: running without a gateway", bin,
                  strerror(errno));
    else if (lab_coordinator_add_gateway(L) != 0)
        log_error("lab: cannot register the gateway");
    return 0;
}

/* Everything main made, in reverse order. */
static void lab_coordinator_teardown(lab_coordinator_t *L,
                                     lab_coordinator_http_t *http)
{
    atomic_store(&L->stop, 1);
    if (L->mon_started)
        pthread_join(L->mon, NULL);
    if (L->sup) {
        /* Paused processes act on SIGTERM only once they run again. */
        pthread_mutex_lock(&L->mu);
        for (size_t i = 0; i < L->nprocs; i++)
            if (L->procs[i].used && L->procs[i].sup >= 0)
                sup_signal_child(L->sup, (size_t)L->procs[i].sup, SIGCONT);
        pthread_mutex_unlock(&L->mu);
        sup_stop_all(L->sup, 5000);
    }
    lab_coordinator_http_stop(http);
    if (L->loop)
        httpc_loop_stop(L->loop);
    sup_free(L->sup);
    if (L->remove_dir && L->dir[0])
        nftw(L->dir, lab_coordinator_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    else if (L->dir[0])
        log_info("lab: data and logs kept in %s", L->dir);
    httpc_thread_done();
    pthread_mutex_destroy(&L->mu);
    free(L);
}

int lab_coordinator_main(const char *config_path, const char *bin_dir,
                const char *log_dir)
{
    lab_coordinator_t *L = calloc(1, sizeof *L);
    lab_coordinator_http_t *http = NULL;
    int code = 1;

    if (L == NULL)
        return 1;
    pthread_mutex_init(&L->mu, NULL);
    atomic_init(&L->stop, 0);
    L->gw_sup = -1;
    if (lab_coordinator_configure(L, config_path, bin_dir) != 0) {
        lab_coordinator_teardown(L, NULL); /* nothing started yet */
        return 2;
    }
    if (lab_coordinator_preflight(L, bin_dir) != 0 ||
        lab_coordinator_prepare(L, log_dir) != 0)
        goto out;
    httpc_global_init();
    L->loop = httpc_loop_start();
    L->sup = sup_new(&(sup_opts){.backoff_ms = 500,
                                 .backoff_max_ms = 5000,
                                 .log_dir = L->logs});
    if (L->loop == NULL || L->sup == NULL)
        goto out;
    http = lab_coordinator_http_start(L, LAB_COORDINATOR_HOST,
                                      LAB_COORDINATOR_CTL_PORT);
    if (http == NULL) {
        fprintf(stderr, "kv-controller: cannot listen on %s:%d\n",
                LAB_COORDINATOR_HOST, LAB_COORDINATOR_CTL_PORT);
        goto out;
    }
    if (lab_coordinator_start_nodes(L, bin_dir) != 0)
        goto out;
    log_info("lab: controller on %s, data and logs in %s (one log per "
             "process in %s), heartbeats every %d ms, dead after %lld ms of "
             "silence", L->ctl_url, L->dir, L->logs, LAB_COORDINATOR_HEARTBEAT_MS,
             (long long)L->dead_after_ms);
    sup_start_all(L->sup);
    if (pthread_create(&L->mon, NULL, lab_coordinator_monitor, L) != 0)
        goto out;
    L->mon_started = 1;

    code = sup_run(L->sup);

out:
    lab_coordinator_teardown(L, http);
    log_info("lab stopped (exit %d)", code);
    return code;
}

httpc_loop *lab_coordinator_loop(lab_coordinator_t *L)
{
    return L->loop;
}
