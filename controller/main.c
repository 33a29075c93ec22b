/* kv-controller: starts and supervises a local cluster (or, with
 * controller.supervise=0, watches one it did not start), serves its
 * topology. Wiring only; the logic is in sup.c, cluster*.c, health.c,
 * probe.c, failover.c, nginx_conf.c and http.c. */
#include "cluster.h"
#include "cluster_cmd.h"
#include "cluster_leftover.h"
#include "cluster_preflight.h"
#include "cluster_state.h"
#include "config.h"
#include "flags.h"
#include "health.h"
#include "controller_http.h"
#include "lab_coordinator.h"
#include "httpc.h"
#include "log.h"
#include "nginx_conf.h"
#include "controller_opts.h"
#include "reshard.h"
#include "sup.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STOP_GRACE_MS 5000

int main(int argc, char **argv)
{
    kv_config cfg;
    controller_opts args;
    cluster_t cl = {0};
    sup_t *sup = NULL;
    controller_http *http = NULL;
    health_t *health;
    reshard_t *rs = NULL;
    char exe[PATH_MAX], tmpl[PATH_MAX], err[1024];
    ssize_t n;
    int code;

    err[0] = tmpl[0] = '\0';
    signal(SIGPIPE, SIG_IGN);
    /* Before any thread exists: the supervisor takes these via signalfd. */
    sup_block_signals();
    log_init("kv-controller", LOG_INFO);
    switch (controller_opts_parse(argc, argv, &args, &cfg, err, sizeof err)) {
    case FLAGS_HELP:
        controller_opts_usage(stdout);
        return 0;
    case -1:
        fprintf(stderr, "kv-controller: %s (see --help)\n", err);
        return 2;
    }
    /* The processes it starts take the token from their environment, never
     * from a command line (ps shows those) or the config file it writes. */
    if (!args.lab && cfg.token[0] && setenv("KV_TOKEN", cfg.token, 1) != 0) {
        fprintf(stderr, "kv-controller: cannot pass the token on: %s\n",
                strerror(errno));
        return 1;
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
        cluster_state_load(&cl, err, sizeof err) < 0 ||
        cluster_preflight_check_binaries(&cl, err, sizeof err) < 0) {
        fprintf(stderr, "kv-controller: %s\n", err);
        goto fail;
    }
    /* nginx workers an earlier run left behind would hold nginx.port. */
    cluster_leftover_reclaim_nginx(&cl);
    if (cluster_preflight_check_ports(&cl, err, sizeof err) < 0) {
        fprintf(stderr, "kv-controller: %s\n", err);
        goto fail;
    }
    if (cl.supervise && nginx_conf_find_template(args.nginx_template,
                                                 cl.bin_dir, tmpl,
                                                 sizeof tmpl) < 0) {
        fprintf(stderr, "kv-controller: nginx template %s not found "
                "(use --nginx-template FILE)\n", tmpl);
        goto fail;
    }
    /* The state file from the first start on, not only after a failover:
     * it is what tells a later start with another cluster.shards that the
     * data was placed by this count. */
    if (cluster_preflight_prepare(&cl, tmpl, err, sizeof err) < 0 ||
        cluster_state_save(&cl) < 0) {
        fprintf(stderr, "kv-controller: %s\n",
                err[0] ? err : "cannot write the topology state file");
        goto fail;
    }
    httpc_global_init();
    sup = sup_new(&(sup_opts){.backoff_ms = cfg.restart_backoff_ms,
                              .backoff_max_ms = cfg.restart_backoff_max_ms,
                              .log_dir = cl.log_dir[0] ? cl.log_dir : NULL});
    if (sup == NULL || (cl.supervise && cluster_cmd_register(&cl, sup) < 0)) {
        fprintf(stderr, "kv-controller: cannot set up the supervisor\n");
        goto fail;
    }
    rs = reshard_new(&cl, sup);
    if (rs == NULL) {
        fprintf(stderr, "kv-controller: out of memory\n");
        goto fail;
    }
    http = controller_http_start(&cl, sup, rs);
    if (http == NULL) {
        fprintf(stderr, "kv-controller: cannot listen on %s:%lld\n",
                cfg.bind, (long long)cfg.base_port);
        goto fail;
    }
    if (cl.supervise) {
        log_info("controller on %s, run dir %s", cl.controller_url,
                 cl.run_dir);
        sup_start_all(sup);
    } else {
        log_info("controller on %s: external nodes (controller.supervise=0), "
                 "state in %s", cl.controller_url, cl.state_path);
    }

    health = health_start(&cl, sup, args.ready_timeout_ms, rs);
    if (health == NULL) {
        fprintf(stderr, "kv-controller: cannot start the health checks\n");
        sup_stop_all(sup, STOP_GRACE_MS);
        return 1;
    }

    code = sup_run(sup);

    health_request_stop(health);
    sup_stop_all(sup, STOP_GRACE_MS);
    health_stop(health);
    controller_http_stop(http);
    reshard_free(rs);
    sup_free(sup);
    cluster_free(&cl);
    log_info("stopped (exit %d)", code);
    return code;

fail: /* before any child started */
    if (http)
        controller_http_stop(http);
    if (rs)
        reshard_free(rs);
    if (sup)
        sup_free(sup);
    cluster_free(&cl);
    return 1;
}
