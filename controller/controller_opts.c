#include "controller_opts.h"

#include "daemon.h"
#include "flags.h"

#include <stdlib.h>
#include <string.h>

void controller_opts_usage(FILE *f)
{
    fprintf(f,
        "usage: kv-controller [--config FILE] [--set path=value]... [--run-dir DIR]\n"
        "                     [--log-dir DIR] [--nginx-template FILE]\n"
        "                     [--ready-timeout-ms N]\n"
        "       kv-controller --render-nginx DIR [--config FILE] [--set ...]\n"
        "                     [--nginx-template FILE]\n"
        "       kv-controller --lab student_config.json [--log-dir DIR]\n"
        "\n"
        "--lab FILE: the CloudCart lab (lab/README.md) instead: a leader on\n"
        "127.0.0.1:7001, follower-i on 7001+i, the gateway (kv-api --lab) on 8000\n"
        "and the lab API on 7000 (GET /status, POST /write, GET /read/{key},\n"
        "POST /kill/{id}, POST /spawn, POST /pause/{id}?ms=N), with N, W, R,\n"
        "auto-spawn and the gateway's rate limit from the student_config.json (a\n"
        "relative path is looked up in the working directory, then the lab\n"
        "folder). Data and logs go to $KV_DATA_DIR/lab-<time>-<pid>, or to a\n"
        "temporary directory removed at exit. `kvctl lab` and `kvctl assess`\n"
        "start it.\n"
        "\n"
        "Starts a local cluster as child processes (every kv-store replica, kv-queue,\n"
        "api.count kv-api, nginx in front), restarts any that dies (exponential\n"
        "backoff), fails a shard over to its most up-to-date secondary when the\n"
        "primary has not answered /health for controller.failover_after_ms (the\n"
        "topology state is kept in <cluster.data_dir>/controller-state.json),\n"
        "serves GET /topology /status /health /metrics on\n"
        "cluster.bind:cluster.base_port (and POST /shards, DELETE /shards/{id},\n"
        "GET /rebalance: live shard migration, `kvctl shard`), the dashboard at\n"
        "/ui/ (also through nginx; open to this machine, the cluster token from\n"
        "elsewhere; --lab serves its own lab view there), prints where\n"
        "everything is and a line \"ready\" once every child answers /health.\n"
        "Ctrl-C (SIGINT, SIGTERM, SIGHUP) stops them all: SIGTERM, then SIGKILL\n"
        "after 5 s. Children die with the controller even when it is killed\n"
        "with SIGKILL.\n"
        "\n"
        "controller.supervise=0 (KV_SUPERVISE=0; containers, docker-compose.yml):\n"
        "start nothing. The stores and the queue run elsewhere and are reached at\n"
        "http://<cluster.advertise_host>:<port of the layout>, e.g.\n"
        "KV_ADVERTISE_HOST='{name}' gives http://store-0-1:7101 and\n"
        "http://queue:7001 (the service names). Health checks, failover with\n"
        "epochs, the state file and /topology work as above; api replicas and\n"
        "nginx are not watched (they only read the topology). The controller waits\n"
        "--ready-timeout-ms (default 60000 here) for every node's first answer,\n"
        "then checks and fails over anyway; it never exits for a missing node.\n"
        "\n"
        "--render-nginx DIR: write DIR/nginx.conf from the nginx template and the\n"
        "configuration, with the api servers taken from DIR/upstream.conf (an\n"
        "include that nginx/kv-nginx.sh keeps in sync with the api\n"
        "replicas), the dashboard passed to $KV_CONTROLLER (http://host:port)\n"
        "when set, and the error log on stderr, then exit (0, or 1 with a reason).\n"
        "\n"
        "  --config FILE         cluster configuration (JSON); default: built-in\n"
        "  --set path=value      override one field (repeatable), e.g. --set cluster.shards=4\n"
        "  --run-dir DIR         generated files (cluster.json, nginx.conf, nginx logs);\n"
        "                        default <cluster.data_dir>/run\n"
        "  --log-dir DIR         write each child's output to DIR/<name>.log instead of\n"
        "                        this terminal's stderr\n"
        "  --nginx-template FILE default: nginx/nginx.conf.template of the source tree\n"
        "                        (or $KV_NGINX_TEMPLATE)\n"
        "  --ready-timeout-ms N  how long children get to answer /health (%ld;\n"
        "                        0 = do not wait); past it the controller stops, exit 1\n"
        "\n"
        "Configuration fields (precedence: defaults < file < environment < --set):\n",
        CONTROLLER_OPTS_READY_TIMEOUT_MS);
    config_print_help(f);
}

static int controller_opts_fail(char *err, size_t errlen, const char *what,
                                const char *detail)
{
    snprintf(err, errlen, "%s%s", what, detail ? detail : "");
    return -1;
}

int controller_opts_parse(int argc, char **argv, controller_opts *o,
                          kv_config *c, char *err, size_t errlen)
{
    uint64_t ready_ms = CONTROLLER_OPTS_READY_TIMEOUT_MS;
    flags_list sets = {0};
    const flag_spec flags[] = {
        {"config", FLAG_STR, &o->config, 0, NULL},
        {"set", FLAG_LIST, &sets, 0, NULL},
        {"run-dir", FLAG_STR, &o->run_dir, 0, NULL},
        {"log-dir", FLAG_STR, &o->log_dir, 0, NULL},
        {"lab", FLAG_STR, &o->lab, 0, NULL},
        {"render-nginx", FLAG_STR, &o->render_nginx, 0, NULL},
        {"nginx-template", FLAG_STR, &o->nginx_template, 0, NULL},
        {"ready-timeout-ms", FLAG_UINT, &ready_ms, 86400000,
         &o->ready_timeout_set},
    };
    char msg[256];
    int rc;

    memset(o, 0, sizeof *o);
    rc = flags_parse(argc, argv, flags, sizeof flags / sizeof flags[0], err,
                     errlen);
    if (rc != 0)
        return rc;
    o->ready_timeout_ms = (long)ready_ms;
    if (o->lab) {
        config_defaults(c);
        if (o->config || sets.n || o->run_dir || o->nginx_template)
            return controller_opts_fail(err, errlen, "--lab takes only "
                                        "--log-dir besides the "
                                        "student_config.json", NULL);
        return 0; /* the lab reads its own file (lab.h) */
    }
    if (daemon_config(c, o->config, sets.v, sets.n,
                      o->render_nginx ? DAEMON_TOKEN_NONE : DAEMON_TOKEN_MAKE,
                      msg, sizeof msg) < 0)
        return controller_opts_fail(err, errlen, msg, NULL);
    if (!c->supervise && !o->ready_timeout_set)
        o->ready_timeout_ms = CONTROLLER_OPTS_EXTERNAL_READY_TIMEOUT_MS;
    return 0;
}
