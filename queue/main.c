/* kv-queue: write admission and dispatch to shard primaries. */
#include "daemon.h"
#include "flags.h"
#include "kvhttp.h"
#include "queue_http.h"
#include "httpc.h"
#include "log.h"
#include "topo.h"
#include "wq.h"

#include <stdio.h>

static void queue_main_usage(FILE *f)
{
    fprintf(f,
            "usage: kv-queue [--config FILE] [--set path=value]... [--port P]\n"
            "                [--controller URL] [--data DIR]\n"
            "Accepts writes (PUT/DELETE /internal/kv/{key}, POST .../incr),\n"
            "answers 202 with a job id (or waits with ?sync=1 / Prefer: wait=N)\n"
            "and sends them in order, in batches, to the shard primaries named\n"
            "by the controller's topology. Settings: kv-controller --help.\n");
}

int main(int argc, char **argv)
{
    const char *config = NULL, *controller = NULL, *data = NULL;
    uint64_t port = 0;
    int have_port = 0, rc;
    flags_list sets = {0};
    const flag_spec flags[] = {
        {"config", FLAG_STR, &config, 0, NULL},
        {"set", FLAG_LIST, &sets, 0, NULL},
        {"port", FLAG_UINT, &port, 65535, &have_port},
        {"controller", FLAG_STR, &controller, 0, NULL},
        {"data", FLAG_STR, &data, 0, NULL},
    };
    kv_config cfg;

    rc = flags_parse_main("kv-queue", argc, argv, flags,
                          sizeof flags / sizeof flags[0], queue_main_usage);
    if (rc != 0)
        return rc == FLAGS_HELP ? 0 : 2;
    log_init("kv-queue", LOG_INFO);
    if (daemon_config(&cfg, config, sets.v, sets.n, DAEMON_TOKEN_READ, NULL, 0))
        return 1;
    char ctl[300];
    if (controller == NULL) {
        snprintf(ctl, sizeof ctl, "http://%s:%lld", cfg.bind,
                 (long long)cfg.base_port);
        controller = ctl;
    }
    if (!have_port)
        port = config_queue_port(&cfg);

    daemon_block_signals();
    httpc_global_init();
    topo_watch *topo = topo_watch_start(controller, cfg.topology_poll_ms);
    char jdir[512];
    if (data == NULL) {
        snprintf(jdir, sizeof jdir, "%s/queue", cfg.data_dir);
        data = jdir;
    }
    wq_t *wq = wq_start(&cfg, topo, data, queue_http_notify);
    if (wq == NULL) {
        topo_watch_stop(topo);
        return 1;
    }
    queue_http_app app = {.cfg = &cfg, .wq = wq, .topo = topo};
    /* A worker journals the writes of a whole pass at once (on_pass), so
     * one worker per core (threads 0) keeps every core busy. */
    httpd_opts ho = {.bind = cfg.bind, .port = (uint16_t)port,
                     .threads = (unsigned)cfg.queue_threads,
                     .max_body = (size_t)cfg.max_value_bytes + 64 * 1024,
                     .on_pass = queue_http_flush,
                     .admit = queue_http_admit,
                     .subreq = 1}; /* the api's writes, many in one request */
    kvhttp_limits(&ho, &cfg);
    httpd_t *srv = httpd_start(&ho, queue_http_handle, &app);
    if (srv == NULL) {
        wq_stop(wq);
        topo_watch_stop(topo);
        return 1;
    }
    log_info("listening on %s:%u, topology from %s, %lld dispatchers",
             cfg.bind, httpd_port(srv), controller, (long long)cfg.worker_count);
    int sig = daemon_wait_signal();
    log_info("signal %d: stopping", sig);
    wq_stop(wq);        /* answers every waiting request first */
    httpd_stop(srv);
    topo_watch_stop(topo);
    log_info("stopped");
    return 0;
}
