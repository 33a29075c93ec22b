/* kv-store: one replica of one shard. Parses flags and configuration, opens
 * the LMDB store, follows the topology (store/role.h: replication out as a
 * primary, reconciliation in as a secondary), serves HTTP until
 * SIGINT/SIGTERM, then closes cleanly. */
#include "config.h"
#include "daemon.h"
#include "kvhttp.h"
#include "sdb.h"
#include "flags.h"
#include "lab_heartbeat.h"
#include "store_http.h"
#include "store_migrate.h"
#include "httpc.h"
#include "httpd.h"
#include "log.h"
#include "reaper.h"
#include "role.h"
#include "wquorum.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void store_main_usage(FILE *f)
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

/* Everything main builds, in the order it builds it. */
typedef struct store_main {
    kv_config cfg;
    const char *config_path, *data, *controller;
    const char *role_arg, *hb_url, *node_id;
    uint64_t incarnation, port, shard, replica;
    int have_port;
    flags_list sets;
    enum sdb_role role;
    enum sdb_fsync fsync_mode;
    char datadir[512];
    char self_url[300];
    sdb *db;
    wquorum *wqm;
    lab_heartbeat_t *hb;
    role_t *follower;
    store_migrate *mig;
    reaper_t *reaper;
    store_http *sh;
    httpd_t *srv;
} store_main;

/* The command line. 0 = go on, 1 = --help printed, -1 = a usage error
 * (said on stderr). */
static int store_main_flags(store_main *m, int argc, char **argv)
{
    char err[512];
    const flag_spec flags[] = {
        {"config", FLAG_STR, &m->config_path, 0, NULL},
        {"set", FLAG_LIST, &m->sets, 0, NULL},
        {"port", FLAG_UINT, &m->port, 65535, &m->have_port},
        {"shard", FLAG_UINT, &m->shard, 1023, NULL},
        {"replica", FLAG_UINT, &m->replica, 1023, NULL},
        {"role", FLAG_STR, &m->role_arg, 0, NULL},
        {"data", FLAG_STR, &m->data, 0, NULL},
        {"controller", FLAG_STR, &m->controller, 0, NULL},
        {"heartbeat", FLAG_STR, &m->hb_url, 0, NULL},
        {"node-id", FLAG_STR, &m->node_id, 0, NULL},
        {"incarnation", FLAG_UINT, &m->incarnation, 1000000000, NULL},
    };
    int rc = flags_parse(argc, argv, flags, sizeof flags / sizeof flags[0],
                         err, sizeof err);

    if (rc == FLAGS_HELP) {
        store_main_usage(stdout);
        return 1;
    }
    if (rc == 0 && m->role_arg && sdb_role_parse(m->role_arg, &m->role) != 0) {
        snprintf(err, sizeof err, "--role: expected primary or secondary, "
                 "got \"%s\"", m->role_arg);
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "kv-store: %s\n", err);
        return -1;
    }
    return 0;
}

/* The --heartbeat node id goes into JSON unescaped: keep it plain. */
static int store_main_node_id_ok(const char *id)
{
    return id && id[0] != '\0' && strlen(id) <= 60 &&
           strpbrk(id, "\"\\") == NULL;
}

/* Configuration (defaults < file < environment < --set), then what the
 * flags leave to it: port, data directory, self URL. 0, or 1 (a
 * configuration error, said), or 2 (a usage error, said). */
static int store_main_settings(store_main *m)
{
    if (daemon_config(&m->cfg, m->config_path, m->sets.v, m->sets.n,
                      DAEMON_TOKEN_READ, NULL, 0) != 0)
        return 1;
    if (sdb_fsync_parse(m->cfg.fsync, &m->fsync_mode) != 0) {
        fprintf(stderr, "kv-store: store.fsync: unknown policy \"%s\"\n",
                m->cfg.fsync);
        return 1;
    }
    if (m->hb_url && !store_main_node_id_ok(m->node_id)) {
        fprintf(stderr, "kv-store: --heartbeat needs --node-id (up to 60 "
                        "characters, no quotes)\n");
        return 2;
    }
    if (!m->have_port)
        m->port = config_store_port(&m->cfg, (unsigned)m->shard,
                                    (unsigned)m->replica);
    if (m->data == NULL) {
        snprintf(m->datadir, sizeof m->datadir, "%s/store-%" PRIu64 "-%" PRIu64,
                 m->cfg.data_dir, m->shard, m->replica);
        m->data = m->datadir;
    }
    snprintf(m->self_url, sizeof m->self_url, "http://%s:%" PRIu64,
             config_local_host(m->cfg.bind), m->port);
    return 0;
}

/* Opens the LMDB store with the role the flag asks for. 0 or -1. */
static int store_main_open_db(store_main *m)
{
    char err[512];
    sdb_opts dbo = {
        .map_size_mb = (size_t)m->cfg.map_size_mb,
        .fsync = m->fsync_mode,
        .max_key_bytes = (size_t)m->cfg.max_key_bytes,
        .max_value_bytes = (size_t)m->cfg.max_value_bytes,
        .max_version_skew_ms = (uint64_t)m->cfg.max_version_skew_ms,
    };

    m->db = sdb_open(m->data, &dbo, err, sizeof err);
    if (m->db == NULL) {
        log_error("cannot open the store: %s", err);
        return -1;
    }
    /* The role flag is what the controller wants now; without it the store
     * keeps the role it had. */
    if (m->role_arg && sdb_get_role(m->db) != m->role &&
        sdb_set_role(m->db, m->role) != 0)
        return -1;
    return 0;
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

/* The role and the HTTP side; the heartbeat (lab) comes first so that a new
 * incarnation holds its lease before it resyncs (lab/lab_heartbeat.h). 0 or
 * -1. */
static int store_main_start(store_main *m)
{
    lab_heartbeat_t *hb = NULL;
    httpd_opts ho = {
        .bind = m->cfg.bind,
        .port = (uint16_t)m->port,
        .threads = (unsigned)m->cfg.store_threads,
        .max_body = store_http_max_body((size_t)m->cfg.max_value_bytes),
        .admit = store_http_admit,
        .subreq = 1, /* the api's reads, many in one request */
    };

    if (m->cfg.write_quorum > 0 &&
        (m->wqm = wquorum_new((long)m->cfg.quorum_timeout_ms)) == NULL)
        return -1;
    if (m->hb_url &&
        (hb = lab_heartbeat_start(&(lab_heartbeat_opts){
             .controller = m->hb_url,
             .node_id = m->node_id,
             .incarnation = (uint64_t)m->incarnation,
             .self_url = m->self_url,
             .interval_ms = (long)m->cfg.heartbeat_ms,
             .lease_ms = (long)m->cfg.lease_ms,
             .token = m->cfg.token,
             .position = store_main_position,
             .position_arg = m->db,
         })) == NULL)
        return -1;
    m->hb = hb;
    m->follower = role_start(&(role_opts){
        .db = m->db,
        .wqm = m->wqm,
        .cfg = &m->cfg,
        .shard = (unsigned)m->shard,
        .replica = (unsigned)m->replica,
        .self_url = m->self_url,
        .controller = m->controller,
        .may_apply = hb ? lab_heartbeat_may_apply : NULL,
        .may_apply_arg = hb,
    });
    if (m->follower == NULL)
        return -1;
    m->mig = store_migrate_start(&(store_migrate_opts){
        .db = m->db,
        .role = m->follower,
        .shard = (unsigned)m->shard,
        .token = m->cfg.token,
        .rate = (uint64_t)m->cfg.migrate_rate,
    });
    if (m->mig == NULL)
        return -1;
    m->reaper = reaper_start(&(reaper_opts){
        .db = m->db,
        .role = m->follower,
        .mig = m->mig,
        .may_apply = hb ? lab_heartbeat_may_apply : NULL,
        .may_apply_arg = hb,
    });
    if (m->reaper == NULL)
        return -1;
    m->sh = store_http_new(&(store_http_opts){
        .db = m->db,
        .shard = (unsigned)m->shard,
        .replica = (unsigned)m->replica,
        .token = m->cfg.token,
        .max_key_bytes = (size_t)m->cfg.max_key_bytes,
        .max_value_bytes = (size_t)m->cfg.max_value_bytes,
        .role = m->follower,
        .mig = m->mig,
        .wqm = m->wqm,
        .write_quorum = (unsigned)m->cfg.write_quorum,
        .may_apply = hb ? lab_heartbeat_may_apply : NULL,
        .may_apply_arg = hb,
    });
    lab_heartbeat_set_state(hb, store_main_state, m->follower);
    if (m->sh == NULL) {
        log_error("out of memory");
        return -1;
    }
    kvhttp_limits(&ho, &m->cfg);
    m->srv = httpd_start(&ho, store_http_handle, m->sh);
    return m->srv ? 0 : -1;
}

static void store_main_log_ready(const store_main *m)
{
    sdb *db = m->db;

    log_info("shard %" PRIu64 " replica %" PRIu64 " (%s, epoch %llu, seq %llu, applied seq "
             "%llu%s) listening on http://%s:%u, data in %s, fsync %s, W %lld "
             "(%s), controller %s",
             m->shard, m->replica, sdb_role_name(sdb_get_role(db)),
             (unsigned long long)sdb_get_epoch(db),
             (unsigned long long)sdb_last_seq(db),
             (unsigned long long)sdb_applied_seq(db),
             sdb_resyncing(db) ? ", resync cut short" : "", m->cfg.bind,
             (unsigned)httpd_port(m->srv), m->data, m->cfg.fsync,
             (long long)m->cfg.write_quorum, m->cfg.quorum_policy,
             m->controller ? m->controller : "(none)");
}

/* Everything store_main_start and store_main_open_db made, whatever got
 * made; each step takes NULL. */
static void store_main_teardown(store_main *m)
{
    /* Waiting writes are answered first (503), and deferred repairs
     * applied, so that httpd can drain. */
    wquorum_close(m->wqm);
    store_migrate_close(m->mig);
    httpd_stop(m->srv);
    store_http_free(m->sh);
    /* Writes (which use its fence) are over; before the role it uses. */
    reaper_stop(m->reaper);
    store_migrate_stop(m->mig);
    /* Before the role: its state is what heartbeats read. */
    lab_heartbeat_stop(m->hb);
    role_stop(m->follower);
    wquorum_free(m->wqm);
    sdb_close(m->db);
}

int main(int argc, char **argv)
{
    store_main m = {.incarnation = 1, .role = SDB_ROLE_PRIMARY};
    int rc, sig;

    log_init("kv-store", LOG_INFO);
    rc = store_main_flags(&m, argc, argv);
    if (rc > 0)
        return 0;
    rc = rc < 0 ? 2 : store_main_settings(&m);
    if (rc == 2)
        fprintf(stderr, "kv-store: see --help\n");
    if (rc != 0)
        return rc; /* nothing built yet */

    /* Block the stop signals before any thread exists (the LMDB sync
     * thread, the httpd pool) so every thread inherits the mask and only the
     * wait below sees them. */
    daemon_block_signals();
    httpc_global_init();
    rc = 1;
    if (store_main_open_db(&m) != 0 || store_main_start(&m) != 0)
        goto out;
    store_main_log_ready(&m);

    sig = daemon_wait_signal();
    if (lab_heartbeat_retired(m.hb))
        log_info("fenced: stopping");
    else
        log_info("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
out:
    store_main_teardown(&m);
    httpc_thread_done();
    if (rc == 0)
        log_info("stopped");
    return rc;
}
