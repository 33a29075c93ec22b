/* kv-queue: write admission and dispatch to shard primaries. */
#include "daemon.h"
#include "http.h"
#include "httpc.h"
#include "log.h"
#include "topo.h"
#include "wq.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void usage(FILE *f)
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
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"port", required_argument, NULL, 'p'},
        {"controller", required_argument, NULL, 'C'},
        {"data", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *config = NULL, *controller = NULL, *data = NULL;
    char **sets = calloc((size_t)argc, sizeof *sets);
    int nsets = 0, port = -1, c;
    kv_config cfg;

    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's': sets[nsets++] = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'C': controller = optarg; break;
        case 'd': data = optarg; break;
        case 'h': usage(stdout); free(sets); return 0;
        default: usage(stderr); free(sets); return 2;
        }
    }
    log_init("kv-queue", LOG_INFO);
    if (daemon_config(&cfg, config, sets, nsets)) {
        free(sets);
        return 1;
    }
    free(sets);
    char ctl[300];
    if (controller == NULL) {
        snprintf(ctl, sizeof ctl, "http://%s:%lld", cfg.bind,
                 (long long)cfg.base_port);
        controller = ctl;
    }
    if (port < 0)
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
    queue_app app = {.cfg = &cfg, .wq = wq, .topo = topo};
    /* A worker journals the writes of a whole pass at once (on_pass), so
     * one worker per core (threads 0) keeps every core busy. */
    httpd_opts ho = {.bind = cfg.bind, .port = (uint16_t)port,
                     .threads = (unsigned)cfg.queue_threads,
                     .max_body = (size_t)cfg.max_value_bytes + 64 * 1024,
                     .on_pass = queue_http_flush};
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
