/* kv-controller: starts and supervises a local cluster (or, with
 * controller.supervise=0, watches one it did not start), serves its
 * topology. Wiring only; the logic is in sup.c, cluster.c, failover.c, nginx_conf.c
 * and http.c. */
#include "cluster.h"
#include "config.h"
#include "failover.h"
#include "http.h"
#include "lab_coordinator.h"
#include "httpc.h"
#include "log.h"
#include "nginx_conf.h"
#include "opts.h"
#include "sup.h"

#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define STOP_GRACE_MS 5000

typedef struct ready_ctx {
    cluster_t *cl;
    sup_t *sup;
    long timeout_ms;
    atomic_int stop;
} ready_ctx;

static void *ready_thread(void *arg)
{
    ready_ctx *r = arg;
    char err[2048];

    if (r->timeout_ms <= 0) {
        cluster_print_summary(r->cl, r->sup, stdout);
    } else if (cluster_wait_ready(r->cl, r->timeout_ms, &r->stop, err,
                                  sizeof err) == 0) {
        cluster_print_summary(r->cl, r->sup, stdout);
        log_info("cluster ready");
    } else if (atomic_load(&r->stop)) {
        return NULL;
    } else if (r->cl->supervise) {
        log_error("cluster did not come up: %s", err);
        sup_request_exit(r->sup, 1);
        return NULL;
    } else {
        /* External nodes come and go with their containers: watch them
         * and fail over anyway. */
        log_warn("%s; health checks and failover start now", err);
    }
    /* Health checks every controller.health_interval_ms keep the flags of
     * /status current and drive failover. */
    failover_t *fo = failover_new(r->cl, r->sup, &r->stop);
    int64_t interval = r->cl->cfg.health_interval_ms;
    int64_t next = sup_now_ms() + interval;

    if (fo == NULL) {
        log_error("failover: out of memory; health checks stopped");
        return NULL;
    }
    log_info("health checks every %lld ms, failover after %lld ms",
             (long long)interval, (long long)r->cl->cfg.failover_after_ms);
    while (!atomic_load(&r->stop)) {
        int64_t now = sup_now_ms();
        if (now < next) {
            int64_t d = next - now > 50 ? 50 : next - now;
            nanosleep(&(struct timespec){0, (long)d * 1000000L}, NULL);
            continue;
        }
        next = now + interval;
        failover_tick(fo, now);
        if (!atomic_load(&r->cl->ready) && cluster_all_healthy(r->cl)) {
            atomic_store(&r->cl->ready, 1);
            cluster_print_summary(r->cl, r->sup, stdout);
            log_info("cluster ready");
        }
    }
    failover_free(fo);
    httpc_thread_done();
    return NULL;
}

int main(int argc, char **argv)
{
    kv_config cfg;
    ctl_opts args;
    cluster_t cl;
    sup_t *sup;
    ctl_http *http;
    ready_ctx rc;
    pthread_t ready_tid;
    char exe[PATH_MAX], tmpl[PATH_MAX], err[1024];
    ssize_t n;
    int code;

    err[0] = tmpl[0] = '\0';
    signal(SIGPIPE, SIG_IGN);
    /* Before any thread exists: the supervisor takes these via signalfd. */
    sup_block_signals();
    log_init("kv-controller", LOG_INFO);
    switch (ctl_opts_parse(argc, argv, &args, &cfg, err, sizeof err)) {
    case 1:
        ctl_opts_usage(stdout);
        return 0;
    case -1:
        fprintf(stderr, "kv-controller: %s (see --help)\n", err);
        return 2;
    }
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "kv-controller: cannot read /proc/self/exe\n");
        return 1;
    }
    exe[n] = '\0';
    if (args.lab)
        return lab_coordinator_main(args.lab, dirname(exe), args.log_dir);
    if (args.render_nginx) {
        if (nginx_conf_find_template(args.nginx_template, dirname(exe), tmpl,
                                     sizeof tmpl) < 0 ||
            nginx_conf_render_container(tmpl, args.render_nginx, &cfg, err,
                                        sizeof err) < 0) {
            fprintf(stderr, "kv-controller: --render-nginx: %s\n",
                    err[0] ? err : "nginx template not found "
                                   "(use --nginx-template FILE)");
            return 1;
        }
        return 0;
    }
    if (cluster_init(&cl, &cfg, args.run_dir, dirname(exe), args.log_dir, err,
                     sizeof err) < 0 ||
        cluster_load_state(&cl, err, sizeof err) < 0 ||
        cluster_check_binaries(&cl, err, sizeof err) < 0 ||
        cluster_check_ports(&cl, err, sizeof err) < 0) {
        fprintf(stderr, "kv-controller: %s\n", err);
        return 1;
    }
    if (cl.supervise && nginx_conf_find_template(args.nginx_template,
                                                 cl.bin_dir, tmpl,
                                                 sizeof tmpl) < 0) {
        fprintf(stderr, "kv-controller: nginx template %s not found "
                "(use --nginx-template FILE)\n", tmpl);
        return 1;
    }
    if (cluster_prepare(&cl, tmpl, err, sizeof err) < 0) {
        fprintf(stderr, "kv-controller: %s\n", err);
        return 1;
    }
    httpc_global_init();
    sup = sup_new(&(sup_opts){.backoff_ms = cfg.restart_backoff_ms,
                              .backoff_max_ms = cfg.restart_backoff_max_ms,
                              .log_dir = cl.log_dir[0] ? cl.log_dir : NULL});
    if (sup == NULL || (cl.supervise && cluster_register(&cl, sup) < 0)) {
        fprintf(stderr, "kv-controller: cannot set up the supervisor\n");
        return 1;
    }
    http = ctl_http_start(&cl, sup);
    if (http == NULL) {
        fprintf(stderr, "kv-controller: cannot listen on %s:%lld\n",
                cfg.bind, (long long)cfg.base_port);
        return 1;
    }
    if (cl.supervise) {
        log_info("controller on %s, run dir %s", cl.controller_url,
                 cl.run_dir);
        sup_start_all(sup);
    } else {
        log_info("controller on %s: external nodes (controller.supervise=0), "
                 "state in %s", cl.controller_url, cl.state_path);
    }

    rc.cl = &cl;
    rc.sup = sup;
    rc.timeout_ms = args.ready_timeout_ms;
    atomic_init(&rc.stop, 0);
    pthread_create(&ready_tid, NULL, ready_thread, &rc);

    code = sup_run(sup);

    atomic_store(&rc.stop, 1);
    sup_stop_all(sup, STOP_GRACE_MS);
    pthread_join(ready_tid, NULL);
    ctl_http_stop(http);
    sup_free(sup);
    cluster_free(&cl);
    log_info("stopped (exit %d)", code);
    return code;
}
