#include "kvctl.h"

#include "lab_assess.h"
#include "lab_bench_quorum.h"
#include "lab_cli.h"
#include "num.h"
#include "token.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const kvctl_cmd kvctl_cmds[] = {
    {"get", "get KEY", "print the value of KEY (raw bytes)",
     "Prints the value exactly as stored, with no newline added unless stdout\n"
     "is a terminal. With --json prints {\"key\",\"value\",\"version\",\"shard\",\n"
     "\"served_by\"}. Exit 1 with \"not found\" when KEY is absent or deleted.",
     1, 1, kvctl_kv_get},
    {"put", "put KEY [VALUE | -]", "store VALUE under KEY",
     "The value is VALUE, or standard input with - (or when VALUE is left out\n"
     "and stdin is not a terminal), sent as raw bytes. The write is queued\n"
     "(202); with --wait it returns once applied (?sync=1). A value that\n"
     "starts with \"--\" goes after a \"--\" argument: kvctl put k -- --x.\n"
     "With --if-match V (the version kvctl get --json shows) the write applies\n"
     "only if KEY is still at V, with --if-absent only if KEY does not exist:\n"
     "else 412 precondition_failed with current_version, exit 1 (queued, the\n"
     "job ends failed). \"superseded\": KEY held a newer version already.\n"
     "del and incr take the same options.",
     1, 2, kvctl_kv_put},
    {"del", "del KEY", "delete KEY (writes a tombstone)",
     "Queued like put; --wait returns once applied.", 1, 1, kvctl_kv_del},
    {"incr", "incr KEY [BY]", "add BY (default 1, may be negative) to a counter",
     "The stored value must be a decimal integer (a missing key counts as 0).\n"
     "With --wait prints the new value.",
     1, 2, kvctl_kv_incr},
    {"status", "status", "health and stats of the api, children of the controller",
     "GET /health and /stats of --url, and /status of --controller (default\n"
     KVCTL_DEFAULT_CONTROLLER ", env KV_CONTROLLER).",
     0, 0, kvctl_info_status},
    {"ring", "ring KEY", "which shard and replicas own KEY",
     "GET /ring?key=KEY: the shard, its epoch, its primary and secondaries.",
     1, 1, kvctl_info_ring},
    {"parity", "parity", "check that all replicas of every shard hold the same data",
     "Reads every replica's live records (GET /internal/changes from the\n"
     "topology of --controller) and compares keys, versions and values; exit\n"
     "1 and the first difference when they differ. Run it with writes stopped.",
     0, 0, kvctl_parity_cmd},
    {"shard", "shard add|remove ID|status",
     "grow or shrink the cluster: add a shard, remove one, show the migration",
     "kvctl shard add [--primary URL --secondary URL ...] adds a shard\n"
     "(POST /shards on --controller); a controller that supervises starts\n"
     "its stores itself, one with controller.supervise=0 needs their URLs\n"
     "(the stores you started). kvctl shard remove ID moves shard ID's keys\n"
     "to the others and stops its stores (DELETE /shards/ID). Both wait for\n"
     "the end of the migration (copy, freeze, switch, open), with a progress\n"
     "line on a terminal (keys moved of the predicted total, MB/s, ETA) and a\n"
     "summary; --no-wait returns once it started. kvctl shard status shows\n"
     "the current or last migration (GET /rebalance).\n"
     "Options: --json (the final GET /rebalance JSON), --no-wait,\n"
     "--primary URL, --secondary URL (repeatable), --controller URL.\n"
     "Exit 0 when it is done, 1 when it failed or was refused (the server's\n"
     "message, e.g. 409 migration_running), 2 usage, 3 no controller.",
     1, 64, kvctl_shard_cmd},
    {"lab", "lab --config FILE",
     "start the CloudCart lab cluster described by a student_config.json",
     "Prints the configuration (N, W, R, whether W + R > N, the cost per hour\n"
     "against the $50 budget, the justification status) and runs\n"
     "kv-controller --lab FILE in the foreground until Ctrl-C: controller on\n"
     ":7000, leader :7001, follower-i :7001+i, gateway :8000. A relative FILE\n"
     "is looked up in the working directory, then in lab/cloudcart/.\n"
     "Options: --config FILE (or --config=FILE), --dry-run.\n"
     "--dry-run prints the summary and the command without running it.",
     0, 64, lab_cli_cmd},
    {"assess", "assess --config FILE",
     "grade a CloudCart student_config.json (five incident scenarios, /100)",
     "Starts the lab cluster from FILE (unless --no-start-cluster: then it\n"
     "grades the one already running), runs INC-0 basic operations (15),\n"
     "INC-1 sustained rate limiting (15), INC-3 stale reads (25), INC-4 write\n"
     "outage after floor(N/2) follower kills (25) and INC-2/5 recovery and\n"
     "right-sizing (20), prints one line per test, the score, the grade, W + R\n"
     "against N, the cost against the budget and the justification check.\n"
     "Options: --config FILE, --no-start-cluster,\n"
     "--controller URL (default " LAB_ASSESS_DEFAULT_CONTROLLER "),\n"
     "--gateway URL (default " LAB_ASSESS_DEFAULT_GATEWAY "), --verbose.\n"
     "Exit 0 only at 100/100 with all four justifications filled; 1 below;\n"
     "2 for a bad config; 3 when no cluster could be started or reached.",
     0, 64, lab_assess_cmd},
    {"bench", "bench quorum [options]",
     "the write-quorum study: write latency against W, with replica parity",
     "For each W = 1..N, all at once, starts a one-shard cluster (kv-controller:\n"
     "a primary and N\n"
     "secondaries, cluster.write_quorum = W, each replication batch to each\n"
     "secondary delayed by uniform(0, MAX) ms), times sequential writes to the\n"
     "primary (each waits for W acknowledgements; the next starts once every\n"
     "secondary has the write, so delays are independent), compares mean and\n"
     "p99 with the order-statistic expectation W/(N+1) x MAX, checks that all\n"
     "replicas hold the same records, and stops the cluster.\n"
     "Writes DIR/quorum_vs_latency.csv and DIR/quorum_vs_latency.png (gnuplot).\n"
     "Options: --followers N (5), --max-delay-ms MAX (1000), --writes K (300),\n"
     "--out DIR (reports), --delay uniform|fixed (uniform), --w W (only that\n"
     "W), --keep (keep the clusters' directories), --verbose.\n"
     "Exit 1 when a write or a parity check fails.",
     1, 64, lab_bench_quorum_cmd},
};

/* Commands that parse their own options: after the command name every
 * argument but --help goes to the command. */
static const char *const kvctl_own_opts[] = {"lab", "assess", "bench",
                                             "shard"};

static int kvctl_has_own_opts(const char *name)
{
    for (size_t i = 0; i < sizeof kvctl_own_opts / sizeof kvctl_own_opts[0]; i++)
        if (strcmp(kvctl_own_opts[i], name) == 0)
            return 1;
    return 0;
}

#define KVCTL_NCMDS (sizeof kvctl_cmds / sizeof kvctl_cmds[0])

static const kvctl_cmd *kvctl_find(const char *name)
{
    for (size_t i = 0; i < KVCTL_NCMDS; i++)
        if (strcmp(kvctl_cmds[i].name, name) == 0)
            return &kvctl_cmds[i];
    return NULL;
}

static void kvctl_usage(FILE *f)
{
    fprintf(f,
        "usage: kvctl [options] COMMAND [ARGS]\n"
        "\n"
        "Commands:\n");
    for (size_t i = 0; i < KVCTL_NCMDS; i++)
        fprintf(f, "  %-22s %s\n", kvctl_cmds[i].synopsis,
                kvctl_cmds[i].summary);
    fprintf(f,
        "  %-22s %s\n"
        "\n"
        "Options (anywhere on the line; \"--\" ends them):\n"
        "  --url URL          public API (nginx); env KV_URL; default %s\n"
        "  --controller URL   controller, for status; env KV_CONTROLLER;\n"
        "                     default %s\n"
        "  --json             print the server's JSON answers\n"
        "  --wait             writes return once applied (?sync=1)\n"
        "  --if-match V       writes apply only if the key is at version V\n"
        "                     (If-Match; else 412 and exit 1)\n"
        "  --if-absent        writes apply only if the key does not exist\n"
        "                     (If-None-Match: *)\n"
        "  --ttl S            put and incr: the key expires S seconds later\n"
        "                     (?ttl=S; a put without it clears the TTL)\n"
        "  --timeout-ms N     per request (default %ld, %ld with --wait)\n"
        "  --help             this text; kvctl help COMMAND for one command\n"
        "\n"
        "Exit codes: 0 ok, 1 not found or refused by the server, 2 usage error,\n"
        "3 could not connect.\n",
        "help [COMMAND]", "this text, or the details of one command",
        KVCTL_DEFAULT_URL, KVCTL_DEFAULT_CONTROLLER, KVCTL_TIMEOUT_MS,
        KVCTL_WAIT_TIMEOUT_MS);
}

static int kvctl_help_cmd(const char *name, FILE *f)
{
    const kvctl_cmd *c = kvctl_find(name);

    if (c == NULL) {
        fprintf(stderr, "kvctl: unknown command \"%s\" (see kvctl --help)\n",
                name);
        return KVCTL_USAGE;
    }
    fprintf(f, "usage: kvctl [options] %s\n\n%s.\n", c->synopsis, c->summary);
    if (c->help)
        fprintf(f, "\n%s\n", c->help);
    return KVCTL_OK;
}

/* Strip trailing slashes of a base URL (in place). */
static const char *kvctl_base(char *url)
{
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/')
        url[--n] = '\0';
    return url;
}

/* The options before (and between) the positional arguments into o, the
 * positional ones into pos[0..*npos). KVCTL_OK, or KVCTL_USAGE (said why). */
static int kvctl_parse_args(int argc, char **argv, kvctl_opts *o, char **pos,
                            int *npos, int *help)
{
    int options_done = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        size_t nlen;

        if (!options_done && *npos > 0 && kvctl_has_own_opts(pos[0])) {
            if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
                *help = 1;
            else
                pos[(*npos)++] = argv[i];
            continue;
        }
        if (options_done || strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (!options_done && strcmp(a, "--") == 0)
                options_done = 1;
            else if (!options_done && strcmp(a, "-h") == 0)
                *help = 1;
            else
                pos[(*npos)++] = argv[i];
            continue;
        }
        nlen = strcspn(a, "=");
        if (a[nlen] == '=')
            val = a + nlen + 1;
#define KVCTL_IS(name) (strlen(name) == nlen && strncmp(a, name, nlen) == 0)
        if (KVCTL_IS("--help")) {
            *help = 1;
        } else if (KVCTL_IS("--json")) {
            o->json = 1;
        } else if (KVCTL_IS("--wait")) {
            o->wait = 1;
        } else if (KVCTL_IS("--if-absent")) {
            o->if_absent = 1;
        } else if (KVCTL_IS("--url") || KVCTL_IS("--controller") ||
                   KVCTL_IS("--timeout-ms") || KVCTL_IS("--if-match") ||
                   KVCTL_IS("--ttl")) {
            if (val == NULL) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "kvctl: %s needs a value\n", a);
                    return KVCTL_USAGE;
                }
                val = argv[++i];
            }
            if (KVCTL_IS("--url")) {
                o->url = val;
            } else if (KVCTL_IS("--controller")) {
                o->controller = val;
            } else if (KVCTL_IS("--ttl")) {
                if (num_parse_u64(val, &o->ttl_s) != 0 || o->ttl_s == 0) {
                    fprintf(stderr, "kvctl: --ttl needs whole seconds, not \"%s\"\n",
                            val);
                    return KVCTL_USAGE;
                }
            } else if (KVCTL_IS("--if-match")) {
                if (num_parse_u64(val, &o->if_match) != 0 || o->if_match == 0) {
                    fprintf(stderr, "kvctl: --if-match needs a version (the "
                                    "number GET shows), not \"%s\"\n", val);
                    return KVCTL_USAGE;
                }
            } else {
                uint64_t ms;
                if (num_parse_max(val, (uint64_t)LONG_MAX, &ms) != 0) {
                    fprintf(stderr, "kvctl: --timeout-ms needs a number of "
                                    "milliseconds, not \"%s\"\n", val);
                    return KVCTL_USAGE;
                }
                o->timeout_ms = (long)ms;
            }
        } else {
            fprintf(stderr, "kvctl: unknown option %s (see kvctl --help)\n", a);
            return KVCTL_USAGE;
        }
#undef KVCTL_IS
    }
    if (o->if_match && o->if_absent) {
        fprintf(stderr, "kvctl: --if-match and --if-absent exclude each other\n");
        return KVCTL_USAGE;
    }
    if (o->timeout_ms <= 0)
        o->timeout_ms = o->wait ? KVCTL_WAIT_TIMEOUT_MS : KVCTL_TIMEOUT_MS;
    return KVCTL_OK;
}

/* Run pos[0] with the arguments after it: help, usage errors, or the
 * command's run function on o with its base URLs stripped of slashes. */
static int kvctl_dispatch(kvctl_opts *o, char **pos, int npos, int help)
{
    const kvctl_cmd *cmd;
    char *url = NULL, *ctl = NULL;
    int rc;

    if (npos == 0) {
        kvctl_usage(help ? stdout : stderr);
        return help ? KVCTL_OK : KVCTL_USAGE;
    }
    if (strcmp(pos[0], "help") == 0) {
        if (npos > 1)
            return kvctl_help_cmd(pos[1], stdout);
        kvctl_usage(stdout);
        return KVCTL_OK;
    }
    cmd = kvctl_find(pos[0]);
    if (cmd == NULL) {
        fprintf(stderr, "kvctl: unknown command \"%s\" (see kvctl --help)\n",
                pos[0]);
        return KVCTL_USAGE;
    }
    if (help)
        return kvctl_help_cmd(cmd->name, stdout);
    if (npos - 1 < cmd->min_args || npos - 1 > cmd->max_args) {
        fprintf(stderr, "usage: kvctl [options] %s\n", cmd->synopsis);
        return KVCTL_USAGE;
    }
    url = strdup(o->url);
    ctl = strdup(o->controller);
    if (url == NULL || ctl == NULL) {
        rc = KVCTL_FAIL;
        goto out;
    }
    o->url = kvctl_base(url);
    o->controller = kvctl_base(ctl);
    httpc_global_init();
    rc = cmd->run(o, npos - 1, pos + 1);
out:
    free(ctl);
    free(url);
    return rc;
}

/* The cluster token as the servers find it (lib/token.h), from the
 * environment's settings; none is fine (a command that needs one is told
 * 401 by the server). */
static void kvctl_token(kvctl_opts *o)
{
    kv_config c;
    char err[512];

    config_defaults(&c);
    if (config_load(&c, NULL, err, sizeof err) == 0 &&
        token_resolve(&c, 0, err, sizeof err) == 0)
        kvhdr_auth(o->auth, sizeof o->auth, c.token);
}

int kvctl_main(int argc, char **argv)
{
    kvctl_opts o = {0};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0, help = 0, rc;
    const char *env;

    if (pos == NULL)
        return KVCTL_FAIL;
    env = getenv("KV_URL");
    o.url = env && *env ? env : KVCTL_DEFAULT_URL;
    env = getenv("KV_CONTROLLER");
    o.controller = env && *env ? env : KVCTL_DEFAULT_CONTROLLER;
    kvctl_token(&o);
    rc = kvctl_parse_args(argc, argv, &o, pos, &npos, &help);
    if (rc == KVCTL_OK)
        rc = kvctl_dispatch(&o, pos, npos, help);
    free(pos);
    return rc;
}
