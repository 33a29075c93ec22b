/* kv-api: the public HTTP API, stateless, behind nginx. */
#include "api_app.h"
#include "api_http.h"
#include "daemon.h"
#include "flags.h"
#include "httpc_batch.h"
#include "kvhttp.h"
#include "lab_gateway.h"
#include "kvhdr.h"
#include "log.h"
#include "quorum.h"
#include "repair.h"

#include <stdio.h>


static void api_main_usage(FILE *f)
{
    fprintf(f,
            "usage: kv-api [--config FILE] [--set path=value]... [--port P]\n"
            "              [--controller URL] [--lab]\n"
            "Serves the public API (GET/PUT/DELETE /kv/{key}, POST\n"
            "/kv/{key}/incr, /counter/..., /jobs/{id}, /ring, /health, /ready,\n"
            "/stats, /metrics): reads straight from the shards (the primary, or\n"
            "cluster.read_quorum secondaries with read repair), writes through\n"
            "the queue. Settings: kv-controller --help.\n"
            "\n"
            "--lab: the CloudCart lab gateway instead (default port 8000,\n"
            "controller %s): POST /write and GET /read/{key}\n"
            "forwarded to the lab controller, GET /cluster-status (its /status),\n"
            "/stats, /health; a fixed-window limit per client address of\n"
            "api.rate_limit requests per api.rate_window_ms (0: off) on every\n"
            "path.\n", LAB_GATEWAY_CONTROLLER);
}

int main(int argc, char **argv)
{
    const char *config = NULL, *controller = NULL;
    uint64_t port = 0;
    int have_port = 0, lab = 0, rc;
    flags_list sets = {0};
    const flag_spec flags[] = {
        {"config", FLAG_STR, &config, 0, NULL},
        {"set", FLAG_LIST, &sets, 0, NULL},
        {"port", FLAG_UINT, &port, 65535, &have_port},
        {"controller", FLAG_STR, &controller, 0, NULL},
        {"lab", FLAG_BOOL, &lab, 0, NULL},
    };
    static api_app app;
    char ctl[300];

    rc = flags_parse_main("kv-api", argc, argv, flags,
                          sizeof flags / sizeof flags[0], api_main_usage);
    if (rc != 0)
        return rc == FLAGS_HELP ? 0 : 2;
    log_init("kv-api", LOG_INFO);
    /* The lab gateway serves the upstream grader's token-free API and
     * forwards to the lab's coordinator, which has none either. */
    if (daemon_config(&app.cfg, config, sets.v, sets.n,
                      lab ? DAEMON_TOKEN_NONE : DAEMON_TOKEN_READ, NULL, 0))
        return 1;
    if (controller == NULL && lab)
        controller = LAB_GATEWAY_CONTROLLER;
    if (controller == NULL) {
        snprintf(ctl, sizeof ctl, "http://%s:%lld", app.cfg.bind,
                 (long long)app.cfg.base_port);
        controller = ctl;
    }
    if (!have_port)
        port = lab ? LAB_GATEWAY_PORT : config_api_port(&app.cfg, 0);

    daemon_block_signals();
    httpc_global_init();
    httpc_batch_metrics_register();
    api_http_metrics_register();
    quorum_metrics_register();
    repair_metrics_register();
    kvhdr_auth(app.auth, sizeof app.auth, app.cfg.token);
    if ((app.quorum = quorum_state_new()) == NULL)
        return 1;
    if (app.cfg.rate_limit > 0)
        app.rl = ratelimit_new(lab ? RATELIMIT_FIXED : RATELIMIT_SLIDING, (uint32_t)app.cfg.rate_limit,
                        (uint64_t)app.cfg.rate_window_ms, 100000);
    if (lab && (app.lab_gateway = lab_gateway_new(controller)) == NULL)
        return 1;
    /* The lab gateway forwards to the lab controller: no topology, no
     * shards, no read repair. */
    if (!lab)
        app.topo = topo_watch_start(controller, app.cfg.topology_poll_ms);
    if (!lab && app.cfg.read_quorum > 0) {
        repair_opts ro = {.max_items = 4096, .max_bytes = (size_t)32 << 20,
                          .timeout_ms = app.cfg.upstream_timeout_ms,
                          .auth = app.auth};
        app.repair = repair_start(&ro);
        if (app.repair == NULL)
            log_warn("read repair thread did not start: stale replicas "
                     "wait for reconciliation");
    }
    /* No handler blocks: one worker thread per core (threads 0). */
    httpd_opts ho = {.bind = app.cfg.bind, .port = (uint16_t)port,
                     .threads = (unsigned)app.cfg.api_threads,
                     .max_body = (size_t)app.cfg.max_value_bytes + 64 * 1024,
                     .admit = lab ? NULL : api_http_admit,
                     .latency = api_http_latency()};
    kvhttp_limits(&ho, &app.cfg);
    /* kv-api --lab serves the lab gateway's own handler, not the API. */
    httpd_t *srv = httpd_start(&ho, lab ? lab_gateway_handle : api_http_handle, &app);
    if (srv == NULL)
        return 1;
    if (lab)
        log_info("lab gateway listening on %s:%u, controller %s, rate limit %lld "
                 "per %lld ms%s", app.cfg.bind, httpd_port(srv), controller,
                 (long long)app.cfg.rate_limit, (long long)app.cfg.rate_window_ms,
                 app.rl ? " (fixed window per client address)" : " (off)");
    else
        log_info("listening on %s:%u, topology from %s", app.cfg.bind,
                 httpd_port(srv), controller);
    int sig = daemon_wait_signal();
    /* Lame duck first: tell nginx to stop reusing connections to us (and
     * kv-nginx, by /ready, to drop us) while still serving, so that no
     * request is sent on a connection that is about to vanish. */
    httpd_set_closing(srv);
    atomic_store(&app.draining, 1);
    if (app.cfg.api_shutdown_delay_ms > 0) {
        log_info("signal %d: serving %lld ms more, then stopping (a second "
                 "signal stops at once)", sig,
                 (long long)app.cfg.api_shutdown_delay_ms);
        daemon_wait_signal_ms((long)app.cfg.api_shutdown_delay_ms);
    } else {
        log_info("signal %d: stopping", sig);
    }
    /* Let calls in flight finish (they have timeouts), then stop. */
    atomic_store(&app.stopping, 1);
    httpd_drain(srv, lab ? lab_gateway_max_call_ms()
                         : app.cfg.upstream_timeout_ms + app.cfg.wait_max_ms);
    httpd_stop(srv);
    repair_stop(app.repair);
    topo_watch_stop(app.topo);
    ratelimit_free(app.rl);
    quorum_state_free(app.quorum);
    lab_gateway_free(app.lab_gateway);
    log_info("stopped");
    return 0;
}
