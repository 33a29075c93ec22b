/* kv-store: one replica of one shard. Parses flags and configuration, opens
 * the LMDB store, follows the topology (store/role.h: replication out as a
 * primary, reconciliation in as a secondary), serves HTTP until
 * SIGINT/SIGTERM, then closes cleanly. */
#include "config.h"
#include "daemon.h"
#include "db.h"
#include "flags.h"
#include "lab_heartbeat.h"
#include "http.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "role.h"
#include "wquorum.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void store_usage(FILE *f)
{
    fprintf(f,
            "usage: kv-store [options]\n"
            "  --config FILE        cluster configuration (JSON)\n"
            "  --set PATH=VALUE     override one field, repeatable\n"
            "                       (e.g. --set store.fsync=always)\n"
            "  --port P             listen port (default: from cluster.base_port)\n"
            "  --shard S            shard id (default 0)\n"
            "  --replica R          replica id within the shard (default 0)\n"
            "  --role primary|secondary\n"
            "                       role to start in (default: the stored one)\n"
            "  --data DIR           LMDB directory (default:\n"
            "                       <cluster.data_dir>/store-<S>-<R>)\n"
            "  --controller URL     the controller: the store follows its\n"
            "                       /topology (role, epoch, primary); without\n"
            "                       it the store keeps its role, alone\n"
            "  --heartbeat URL      lab: POST URL/heartbeat every\n"
            "                       store.heartbeat_ms; a \"retired\" answer\n"
            "                       stops the store (fencing); with\n"
            "                       store.lease_ms it applies replicated data\n"
            "                       only under a fresh acknowledgement\n"
            "  --node-id ID         lab: the node this store is (follower-2)\n"
            "  --incarnation K      lab: which incarnation of it (default 1)\n"
            "  --help               this text; configuration fields follow\n\n");
    config_print_help(f);
}

/* What the lab heartbeat reports (lab/lab_heartbeat.h): the store's
 * position as /health reports it, and its role's state. */
static uint64_t store_main_position(void *arg)
{
    sdb *db = arg;
    if (sdb_resyncing(db))
        return 0;
    if (sdb_get_role(db) == SDB_ROLE_PRIMARY)
        return sdb_last_seq(db);
    return sdb_applied_seq(db);
}

static const char *store_main_state(void *arg)
{
    return role_state(arg);
}

int main(int argc, char **argv)
{
    kv_config cfg;
    char err[512];
    const char *config_path = NULL, *data = NULL, *controller = NULL;
    const char *role_arg = NULL, *hb_url = NULL, *node_id = NULL;
    uint64_t incarnation = 1, port = 0, shard = 0, replica = 0;
    int have_port = 0, rc;
    flags_list sets = {0};
    const flag_spec flags[] = {
        {"config", FLAG_STR, &config_path, 0, NULL},
        {"set", FLAG_LIST, &sets, 0, NULL},
        {"port", FLAG_UINT, &port, 65535, &have_port},
        {"shard", FLAG_UINT, &shard, 1023, NULL},
        {"replica", FLAG_UINT, &replica, 1023, NULL},
        {"role", FLAG_STR, &role_arg, 0, NULL},
        {"data", FLAG_STR, &data, 0, NULL},
        {"controller", FLAG_STR, &controller, 0, NULL},
        {"heartbeat", FLAG_STR, &hb_url, 0, NULL},
        {"node-id", FLAG_STR, &node_id, 0, NULL},
        {"incarnation", FLAG_UINT, &incarnation, 1000000000, NULL},
    };
    lab_heartbeat_t *hb = NULL;
    char datadir[512];
    enum sdb_fsync fsync_mode;
    enum sdb_role role = SDB_ROLE_PRIMARY;
    sdb_opts dbo;
    sdb *db;
    store_http *sh;
    httpd_t *srv;
    role_t *follower;
    wquorum *wq = NULL;
    char self_url[300];
    httpd_opts ho;
    int sig;

    log_init("kv-store", LOG_INFO);
    rc = flags_parse(argc, argv, flags, sizeof flags / sizeof flags[0], err,
                     sizeof err);
    if (rc == FLAGS_HELP) {
        store_usage(stdout);
        return 0;
    }
    if (rc == 0 && role_arg && sdb_role_parse(role_arg, &role) != 0) {
        snprintf(err, sizeof err, "--role: expected primary or secondary, "
                 "got \"%s\"", role_arg);
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "kv-store: %s\n", err);
        goto usage_fail;
    }

    /* Precedence: defaults < file < environment < --set. */
    if (daemon_config(&cfg, config_path, sets.v, sets.n) != 0)
        goto fail;
    if (sdb_fsync_parse(cfg.fsync, &fsync_mode) != 0) {
        fprintf(stderr, "kv-store: store.fsync: unknown policy \"%s\"\n",
                cfg.fsync);
        goto fail;
    }
    if (hb_url && (node_id == NULL || node_id[0] == '\0' ||
                   strlen(node_id) > 60 || strpbrk(node_id, "\"\\") != NULL)) {
        fprintf(stderr, "kv-store: --heartbeat needs --node-id (up to 60 "
                        "characters, no quotes)\n");
        goto usage_fail;
    }
    if (!have_port)
        port = config_store_port(&cfg, (unsigned)shard, (unsigned)replica);
    if (data == NULL) {
        snprintf(datadir, sizeof datadir, "%s/store-%" PRIu64 "-%" PRIu64 "", cfg.data_dir,
                 shard, replica);
        data = datadir;
    }

    /* Block the stop signals before any thread exists (the LMDB sync
     * thread, the httpd pool) so every thread inherits the mask and only the
     * wait below sees them. */
    daemon_block_signals();
    httpc_global_init();

    memset(&dbo, 0, sizeof dbo);
    dbo.map_size_mb = (size_t)cfg.map_size_mb;
    dbo.fsync = fsync_mode;
    dbo.max_key_bytes = (size_t)cfg.max_key_bytes;
    dbo.max_value_bytes = (size_t)cfg.max_value_bytes;
    db = sdb_open(data, &dbo, err, sizeof err);
    if (db == NULL) {
        log_error("cannot open the store: %s", err);
        goto fail;
    }
    /* The role flag is what the controller wants now; without it the store
     * keeps the role it had. */
    if (role_arg && sdb_get_role(db) != role && sdb_set_role(db, role) != 0) {
        sdb_close(db);
        goto fail;
    }

    snprintf(self_url, sizeof self_url, "http://%s:%" PRIu64,
             config_local_host(cfg.bind), port);
    if (cfg.write_quorum > 0 &&
        (wq = wquorum_new((long)cfg.quorum_timeout_ms)) == NULL) {
        sdb_close(db);
        goto fail;
    }
    /* Before the role starts: a new incarnation holds its lease before it
     * resyncs (lab/lab_heartbeat.h). */
    if (hb_url &&
        (hb = lab_heartbeat_start(&(lab_heartbeat_opts){
             .controller = hb_url,
             .node_id = node_id,
             .incarnation = (uint64_t)incarnation,
             .self_url = self_url,
             .interval_ms = (long)cfg.heartbeat_ms,
             .lease_ms = (long)cfg.lease_ms,
             .token = cfg.token,
             .position = store_main_position,
             .position_arg = db,
         })) == NULL) {
        wquorum_free(wq);
        sdb_close(db);
        goto fail;
    }
    follower = role_start(&(role_opts){
        .db = db,
        .wq = wq,
        .cfg = &cfg,
        .shard = (unsigned)shard,
        .replica = (unsigned)replica,
        .self_url = self_url,
        .controller = controller,
        .may_apply = hb ? lab_heartbeat_may_apply : NULL,
        .may_apply_arg = hb,
    });
    if (follower == NULL) {
        lab_heartbeat_stop(hb);
        wquorum_free(wq);
        sdb_close(db);
        goto fail;
    }
    sh = store_http_new(&(store_http_opts){
        .db = db,
        .shard = (unsigned)shard,
        .replica = (unsigned)replica,
        .token = cfg.token,
        .max_key_bytes = (size_t)cfg.max_key_bytes,
        .max_value_bytes = (size_t)cfg.max_value_bytes,
        .role = follower,
        .wq = wq,
        .write_quorum = (unsigned)cfg.write_quorum,
        .may_apply = hb ? lab_heartbeat_may_apply : NULL,
        .may_apply_arg = hb,
    });
    lab_heartbeat_set_state(hb, store_main_state, follower);
    if (sh == NULL) {
        log_error("out of memory");
        lab_heartbeat_stop(hb);
        role_stop(follower);
        wquorum_free(wq);
        sdb_close(db);
        goto fail;
    }

    memset(&ho, 0, sizeof ho);
    ho.bind = cfg.bind;
    ho.port = (uint16_t)port;
    ho.threads = (unsigned)cfg.store_threads;
    ho.max_body = store_http_max_body((size_t)cfg.max_value_bytes);
    srv = httpd_start(&ho, store_http_handle, sh);
    if (srv == NULL) {
        store_http_free(sh);
        lab_heartbeat_stop(hb);
        role_stop(follower);
        wquorum_free(wq);
        sdb_close(db);
        goto fail;
    }
    log_info("shard %" PRIu64 " replica %" PRIu64 " (%s, epoch %llu, seq %llu, applied seq "
             "%llu%s) listening on http://%s:%u, data in %s, fsync %s, W %lld "
             "(%s), controller %s",
             shard, replica, sdb_role_name(sdb_get_role(db)),
             (unsigned long long)sdb_get_epoch(db),
             (unsigned long long)sdb_last_seq(db),
             (unsigned long long)sdb_applied_seq(db),
             sdb_resyncing(db) ? ", resync cut short" : "", cfg.bind,
             (unsigned)httpd_port(srv), data, cfg.fsync,
             (long long)cfg.write_quorum, cfg.quorum_policy,
             controller ? controller : "(none)");

    sig = daemon_wait_signal();
    if (lab_heartbeat_retired(hb))
        log_info("fenced: stopping");
    else
        log_info("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    /* Waiting writes are answered first (503) so that httpd can drain. */
    if (wq)
        wquorum_close(wq);
    httpd_stop(srv);
    /* Before the role: its state is what heartbeats read. */
    lab_heartbeat_stop(hb);
    role_stop(follower);
    wquorum_free(wq);
    store_http_free(sh);
    sdb_close(db);
    httpc_thread_done();
    log_info("stopped");
    return 0;

usage_fail:
    fprintf(stderr, "kv-store: see --help\n");
    return 2;
fail:
    return 1;
}
