#include "role.h"

#include "clock.h"
#include "httpc.h"
#include "log.h"
#include "topo.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROLE_TICK_MS 50
#define ROLE_GC_MS 1000
#define ROLE_RETRY_MS 250

enum role_state {
    ROLE_S_PRIMARY = 0,
    ROLE_S_SECONDARY,
    ROLE_S_DETACHED,
    ROLE_S_STARTING,  /* a controller, and no topology from it yet */
};

/* Two threads: the role thread applies topologies (fast: never waits on
 * another store, so a promotion is never stuck behind a request to a hung
 * primary) and collects a primary's tombstones; the follower thread does
 * what a secondary does over the network: reconcile rounds, the rejoin
 * handoff and full resyncs, and a secondary's tombstone collection. What
 * they share is under mu; the store itself is kept consistent by
 * store/sdb.h, whose replicated writes check the epoch and whose wipe
 * refuses to touch a primary. */
struct role {
    sdb *db;
    wquorum *wqm;
    kv_config cfg;
    unsigned shard, replica;
    char self[256];
    topo_watch *tw;
    repl_send_t *repl;
    recon_t *recon;
    pthread_t thr, fthr;
    int started, fstarted;

    pthread_mutex_t gc_mu;       /* held through a tombstone collection */
    pthread_mutex_t mu;          /* guards what follows */
    pthread_cond_t cv;
    int stopping;
    int poked;
    _Atomic int state;
    _Atomic uint64_t gen;        /* bumped when whom we follow changes */
    char primary[256];           /* "" when unknown */
    _Atomic int rejoin;          /* a handoff + full resync is due */
    uint64_t rejoin_from, rejoin_epoch;
    int recon_now;               /* reconcile at once (a new primary) */

    /* role thread only */
    topo_t *cur;                 /* the topology last applied */
    char followed[256];          /* the primary we followed in this process */
    int ignored_logged;
    uint64_t next_gc_ms;

    /* follower thread only */
    uint64_t fgen;               /* gen of the work under way */
    uint64_t next_recon_ms, retry_ms, next_fgc_ms;
};

/* Waits on cv (mu held) for up to ms. */
static void role_wait_ms(role_t *r, uint64_t ms)
{
    clock_cond_wait_ms(&r->cv, &r->mu, ms);
}

static void role_set_primary(role_t *r, const char *url, enum role_state st)
{
    pthread_mutex_lock(&r->mu);
    if (strcmp(r->primary, url ? url : "") != 0 ||
        atomic_load(&r->state) != (int)st) {
        atomic_fetch_add(&r->gen, 1);
        r->recon_now = 1;
        pthread_cond_broadcast(&r->cv);
    }
    snprintf(r->primary, sizeof r->primary, "%s", url ? url : "");
    atomic_store(&r->state, st);
    pthread_mutex_unlock(&r->mu);
}

static void role_on_stale(void *arg)
{
    role_poke(arg);
}

/* Whom we follow changed under a long reconcile: stop it. */
static int role_cancelled(void *arg)
{
    role_t *r = arg;
    int stop;

    pthread_mutex_lock(&r->mu);
    stop = r->stopping;
    pthread_mutex_unlock(&r->mu);
    return stop || atomic_load(&r->gen) != r->fgen;
}

/* The port of an http://host:port URL, or 0. */
static unsigned role_url_port(const char *url)
{
    const char *c = strrchr(url, ':');
    const char *sch = strstr(url, "://");
    if (c == NULL || sch == NULL || c < sch + 3)
        return 0;
    return (unsigned)strtoul(c + 1, NULL, 10);
}

/* This store in the shard: by its URL, or else (another advertised host
 * name, as in containers) by its port when exactly one URL has it. */
static enum role_state role_find_me(const role_t *r, const topo_shard *sh)
{
    unsigned port = role_url_port(r->self), hits = 0;
    enum role_state by_port = ROLE_S_DETACHED;

    if (sh->primary && strcmp(sh->primary, r->self) == 0)
        return ROLE_S_PRIMARY;
    for (size_t i = 0; i < sh->nsecondaries; i++)
        if (strcmp(sh->secondaries[i], r->self) == 0)
            return ROLE_S_SECONDARY;
    if (port == 0)
        return ROLE_S_DETACHED;
    if (sh->primary && role_url_port(sh->primary) == port) {
        hits++;
        by_port = ROLE_S_PRIMARY;
    }
    for (size_t i = 0; i < sh->nsecondaries; i++)
        if (role_url_port(sh->secondaries[i]) == port) {
            hits++;
            by_port = ROLE_S_SECONDARY;
        }
    return hits == 1 ? by_port : ROLE_S_DETACHED;
}

/* ---- the role thread: applying a topology ------------------------------ */

/* The role the store's data says it has. */
static void role_as_stored(role_t *r)
{
    if (sdb_get_role(r->db) == SDB_ROLE_PRIMARY)
        role_set_primary(r, r->self, ROLE_S_PRIMARY);
    else
        role_set_primary(r, NULL, ROLE_S_SECONDARY);
}

/* The first topology did not place this store (no such shard, or an epoch
 * older than ours): it is what it was. */
static void role_started(role_t *r)
{
    if (atomic_load(&r->state) == ROLE_S_STARTING)
        role_as_stored(r);
}

static void role_gc_collect(role_t *r, enum role_state st);

static void role_stop_leading(role_t *r, const char *why)
{
    repl_send_set_peers(r->repl, NULL, 0);
    if (r->wqm)
        wquorum_fail_all(r->wqm, why);
}

static void role_set_rejoin(role_t *r, int on, uint64_t from, uint64_t epoch)
{
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->rejoin, on);
    r->rejoin_from = from;
    r->rejoin_epoch = epoch;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void role_apply_secondary(role_t *r, const topo_shard *sh,
                                 enum sdb_role was, uint64_t e_old)
{
    uint64_t e_new = sh->epoch;
    int other = sh->primary == NULL || r->followed[0] == '\0' ||
                strcmp(sh->primary, r->followed) != 0;
    int fork = was == SDB_ROLE_PRIMARY || (e_new > e_old && other);

    if (atomic_load(&r->rejoin)) {
        /* Still to hand off: to the newest primary, from the lowest fork
         * seq seen. */
        pthread_mutex_lock(&r->mu);
        if (e_new > r->rejoin_epoch) {
            r->rejoin_epoch = e_new;
            if (sh->handoff_seq < r->rejoin_from)
                r->rejoin_from = sh->handoff_seq;
        }
        pthread_mutex_unlock(&r->mu);
    } else if (fork) {
        uint64_t pos = sdb_last_seq(r->db);
        if (sdb_applied_seq(r->db) > pos)
            pos = sdb_applied_seq(r->db);
        if (sdb_resyncing(r->db))
            pos = 0; /* a partial copy: nothing of ours to hand off */
        if (pos > sh->handoff_seq) {
            if (was == SDB_ROLE_PRIMARY)
                sdb_set_role(r->db, SDB_ROLE_SECONDARY);
            log_warn("role: rejoin: our seq %" PRIu64 " is past the handoff "
                     "seq %" PRIu64 " of epoch %" PRIu64 ": records above it "
                     "go to %s first, then a full resync", pos,
                     sh->handoff_seq, e_new,
                     sh->primary ? sh->primary : "the new primary");
            role_set_rejoin(r, 1, sh->handoff_seq, e_new);
        } else {
            log_info("role: secondary of shard %u at epoch %" PRIu64 " (was "
                     "%s at %" PRIu64 "), following %s from seq %" PRIu64,
                     r->shard, e_new,
                     was == SDB_ROLE_PRIMARY ? "primary" : "secondary", e_old,
                     sh->primary ? sh->primary : "(none yet)", pos);
            if (sdb_follow(r->db, e_new, pos) != 0)
                return;
        }
    } else if (e_new > e_old) {
        log_info("role: secondary of shard %u, epoch %" PRIu64 " -> %" PRIu64,
                 r->shard, e_old, e_new);
        if (sdb_follow(r->db, e_new, sdb_applied_seq(r->db)) != 0)
            return;
    } else if (was != SDB_ROLE_SECONDARY) {
        sdb_set_role(r->db, SDB_ROLE_SECONDARY);
    }
    if (sh->primary)
        snprintf(r->followed, sizeof r->followed, "%s", sh->primary);
    role_set_primary(r, sh->primary, ROLE_S_SECONDARY);
    if (e_new > e_old) {
        /* The follower's work for the old epoch is void. */
        atomic_fetch_add(&r->gen, 1);
    }
}

static void role_apply(role_t *r, const topo_t *t)
{
    const topo_shard *sh;
    enum role_state want;
    enum sdb_role was = sdb_get_role(r->db);
    enum role_state st = (enum role_state)atomic_load(&r->state);
    uint64_t e_new, e_old = sdb_get_epoch(r->db);

    sh = topo_shard_by_id(t, r->shard);
    if (sh == NULL) {
        if (!r->ignored_logged)
            log_warn("role: the topology has no shard %u", r->shard);
        r->ignored_logged = 1;
        return;
    }
    e_new = sh->epoch;
    if (e_new < e_old) {
        if (!r->ignored_logged)
            log_warn("role: topology gives shard %u epoch %" PRIu64
                     ", older than ours (%" PRIu64 "): ignored", r->shard,
                     e_new, e_old);
        r->ignored_logged = 1;
        return;
    }
    r->ignored_logged = 0;
    want = role_find_me(r, sh);

    if (want == ROLE_S_PRIMARY) {
        if (was != SDB_ROLE_PRIMARY || sdb_resyncing(r->db)) {
            uint64_t stamped = 0;
            log_warn("role: promoted to primary of shard %u at epoch %" PRIu64
                     " (was secondary at epoch %" PRIu64 ", applied seq %"
                     PRIu64 ", last seq %" PRIu64 ")", r->shard, e_new, e_old,
                     sdb_applied_seq(r->db), sdb_last_seq(r->db));
            if (sdb_resyncing(r->db))
                log_error("role: promoted in the middle of a full resync: "
                          "this copy may be incomplete");
            if (sdb_promote(r->db, e_new, &stamped) != 0)
                return; /* retried at the next topology change or poke */
            log_info("role: primary from seq %" PRIu64 " (%" PRIu64
                     " repaired records got seqs)", sdb_last_seq(r->db),
                     stamped);
        } else if (e_new != e_old) {
            log_info("role: primary of shard %u, epoch %" PRIu64 " -> %" PRIu64,
                     r->shard, e_old, e_new);
            if (sdb_set_epoch(r->db, e_new) != 0)
                return;
        }
        role_set_rejoin(r, 0, 0, 0);
        r->followed[0] = '\0';
        role_set_primary(r, r->self, ROLE_S_PRIMARY);
        repl_send_set_peers(r->repl, sh->secondaries, sh->nsecondaries);
        repl_send_update_quorum(r->repl);
        return;
    }

    if (was == SDB_ROLE_PRIMARY || st == ROLE_S_PRIMARY) {
        log_warn("role: stepping down: shard %u primary at epoch %" PRIu64
                 " is %s at epoch %" PRIu64 "; this store is %s", r->shard,
                 e_old, sh->primary ? sh->primary : "(none)", e_new,
                 want == ROLE_S_SECONDARY ? "a secondary" : "not listed");
        role_stop_leading(r, "this store stepped down from primary; the "
                             "write was applied here but not acknowledged");
    }
    if (want == ROLE_S_DETACHED) {
        if (was == SDB_ROLE_PRIMARY)
            sdb_set_role(r->db, SDB_ROLE_SECONDARY);
        log_warn("role: %s is not in shard %u of the topology: detached",
                 r->self, r->shard);
        role_set_primary(r, sh->primary, ROLE_S_DETACHED);
        return;
    }
    role_apply_secondary(r, sh, was, e_old);
}

/* No tombstone collection while the topology has a migration: a delete
 * collected on a source before the copier sent it would let the target
 * keep the value it deleted. gc_mu spans the check and the collection, so
 * that role_gc_barrier waits for one that began before the migration. */
static void role_gc(role_t *r, enum role_state st)
{
    topo_t *t;

    pthread_mutex_lock(&r->gc_mu);
    t = role_topo(r);
    if (t == NULL || t->phase == TOPO_PHASE_NONE)
        role_gc_collect(r, st);
    topo_put(t);
    pthread_mutex_unlock(&r->gc_mu);
}

void role_gc_barrier(role_t *r)
{
    pthread_mutex_lock(&r->gc_mu);
    pthread_mutex_unlock(&r->gc_mu);
}

static void role_gc_collect(role_t *r, enum role_state st)
{
    uint64_t upto, n = 0;

    if (st == ROLE_S_PRIMARY) {
        upto = repl_send_min_acked(r->repl);
    } else {
        if (atomic_load(&r->rejoin) || sdb_resyncing(r->db))
            return;
        upto = recon_primary_gc(r->recon);
        if (sdb_applied_seq(r->db) < upto)
            upto = sdb_applied_seq(r->db);
    }
    if (upto <= sdb_gc_seq(r->db))
        return;
    if (sdb_collect_tombstones(r->db, upto, &n) == 0 && n)
        log_debug("role: collected %" PRIu64 " tombstones up to seq %" PRIu64,
                  n, upto);
}

static void *role_main(void *arg)
{
    role_t *r = arg;

    pthread_setname_np(pthread_self(), "role"); /* top -H, perf */
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        topo_t *t;
        uint64_t now;

        r->poked = 0;
        pthread_mutex_unlock(&r->mu);

        t = topo_watch_get(r->tw);
        if (t && t != r->cur) {
            role_apply(r, t);
            topo_put(r->cur);
            r->cur = t;
            role_started(r);
        } else {
            topo_put(t);
        }
        now = clock_mono_ms();
        if (now >= r->next_gc_ms &&
            atomic_load(&r->state) == ROLE_S_PRIMARY && r->cur) {
            role_gc(r, ROLE_S_PRIMARY);
            r->next_gc_ms = now + ROLE_GC_MS;
        }

        pthread_mutex_lock(&r->mu);
        if (!r->stopping && !r->poked)
            role_wait_ms(r, ROLE_TICK_MS);
    }
    pthread_mutex_unlock(&r->mu);
    httpc_thread_done();
    return NULL;
}

/* ---- the follower thread: a secondary's network work --------------------- */

static void role_rejoin(role_t *r, const char *primary, uint64_t from,
                        uint64_t epoch, uint64_t now)
{
    uint64_t sent = 0;
    topo_t *t = role_topo(r);
    int rc;

    log_info("role: rejoin: handing records above seq %" PRIu64
             " (our last seq %" PRIu64 ") to %s at epoch %" PRIu64, from,
             sdb_last_seq(r->db), primary, epoch);
    rc = recon_handoff(r->recon, primary, epoch, from, t, &sent);
    topo_put(t);
    if (rc != RECON_OK) {
        log_warn("role: rejoin: handoff to %s did not complete; retrying",
                 primary);
        if (rc == RECON_STALE)
            role_poke(r);
        r->retry_ms = now + ROLE_RETRY_MS;
        return;
    }
    log_info("role: rejoin: %s took our %" PRIu64 " records; full resync "
             "from it", primary, sent);
    pthread_mutex_lock(&r->mu);
    if (r->rejoin_epoch == epoch && atomic_load(&r->gen) == r->fgen)
        atomic_store(&r->rejoin, 0);
    pthread_mutex_unlock(&r->mu);
    if (atomic_load(&r->rejoin)) {
        r->retry_ms = 0; /* a newer primary meanwhile: hand off to it */
        return;
    }
    rc = recon_full_resync(r->recon, primary, epoch);
    if (rc == RECON_OK)
        log_info("role: rejoin: done, following %s at epoch %" PRIu64
                 " from seq %" PRIu64, primary, sdb_get_epoch(r->db),
                 sdb_applied_seq(r->db));
    /* A failed resync leaves the copy marked: the next round redoes it. */
    r->next_recon_ms = now + (rc == RECON_OK
                                  ? (uint64_t)r->cfg.reconcile_interval_ms
                                  : ROLE_RETRY_MS);
}

static void role_follow(role_t *r, const char *primary, uint64_t now)
{
    uint64_t fork = 0;
    int rc;

    rc = recon_round(r->recon, primary, sdb_get_epoch(r->db), &fork);
    switch (rc) {
    case RECON_OK:
        r->next_recon_ms = now + (uint64_t)r->cfg.reconcile_interval_ms;
        break;
    case RECON_STALE:
        role_poke(r);
        r->next_recon_ms = now + 200;
        break;
    case RECON_DIVERGED:
        log_warn("role: our position (%" PRIu64 ") is past %s's last seq %"
                 PRIu64 ": we hold another history; rejoin",
                 sdb_applied_seq(r->db), primary, fork);
        role_set_rejoin(r, 1, fork, sdb_get_epoch(r->db));
        r->retry_ms = 0;
        break;
    case RECON_CANCELLED:
        r->next_recon_ms = 0;
        break;
    default:
        r->next_recon_ms =
            now + ((uint64_t)r->cfg.reconcile_interval_ms < ROLE_RETRY_MS
                       ? (uint64_t)r->cfg.reconcile_interval_ms
                       : ROLE_RETRY_MS);
        break;
    }
}

static void *role_follower_main(void *arg)
{
    role_t *r = arg;

    pthread_setname_np(pthread_self(), "role-follow"); /* top -H, perf */
    pthread_mutex_lock(&r->mu);
    while (!r->stopping) {
        char primary[256];
        int st = atomic_load(&r->state);
        int rejoin = atomic_load(&r->rejoin);
        uint64_t from = r->rejoin_from, epoch = r->rejoin_epoch;
        uint64_t now = clock_mono_ms(), wait;
        int due;

        snprintf(primary, sizeof primary, "%s", r->primary);
        if (r->recon_now) {
            r->recon_now = 0;
            r->next_recon_ms = 0;
            r->retry_ms = 0;
        }
        r->fgen = atomic_load(&r->gen);
        due = st == ROLE_S_SECONDARY && primary[0] &&
              now >= (rejoin ? r->retry_ms : r->next_recon_ms);
        pthread_mutex_unlock(&r->mu);

        if (due && rejoin)
            role_rejoin(r, primary, from, epoch, now);
        else if (due)
            role_follow(r, primary, now);
        now = clock_mono_ms();
        if (st == ROLE_S_SECONDARY && now >= r->next_fgc_ms) {
            role_gc(r, ROLE_S_SECONDARY);
            r->next_fgc_ms = now + ROLE_GC_MS;
        }

        pthread_mutex_lock(&r->mu);
        if (r->stopping || r->recon_now)
            continue;
        wait = 100;
        if (st == ROLE_S_SECONDARY && primary[0]) {
            uint64_t at = atomic_load(&r->rejoin) ? r->retry_ms
                                                  : r->next_recon_ms;
            now = clock_mono_ms();
            wait = at > now ? at - now : 0;
            if (wait > 100)
                wait = 100;
        }
        if (wait)
            role_wait_ms(r, wait);
    }
    pthread_mutex_unlock(&r->mu);
    httpc_thread_done();
    return NULL;
}

/* ---- life cycle --------------------------------------------------------- */

role_t *role_start(const role_opts *o)
{
    role_t *r = calloc(1, sizeof *r);
    enum wquorum_policy pol = WQUORUM_ANY;

    if (r == NULL)
        return NULL;
    r->db = o->db;
    r->wqm = o->wqm;
    r->cfg = *o->cfg;
    r->shard = o->shard;
    r->replica = o->replica;
    snprintf(r->self, sizeof r->self, "%s", o->self_url);
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->gc_mu, NULL);
    clock_cond_init(&r->cv);
    (void)wquorum_policy_parse(r->cfg.quorum_policy, &pol);
    r->repl = repl_send_new(&(repl_send_opts){
        .db = o->db,
        .wqm = o->wqm,
        .write_quorum = (unsigned)r->cfg.write_quorum,
        .policy = pol,
        .token = r->cfg.token,
        .batch_max = (size_t)r->cfg.repl_batch_max,
        .delay_ms = (long)r->cfg.repl_delay_ms,
        .delay_random = r->cfg.repl_delay_random != 0,
        .sync_delay_ms = (long)r->cfg.lab_sync_delay_ms,
        .async_delay_ms = (long)r->cfg.lab_async_delay_ms,
        .timeout_ms = 2000,
        .on_stale_epoch = role_on_stale,
        .arg = r,
    });
    r->recon = recon_new(&(recon_opts){
        .db = o->db,
        .token = r->cfg.token,
        .page_max = 5000,
        .timeout_ms = 5000,
        .cancelled = role_cancelled,
        .arg = r,
        .may_apply = o->may_apply,
        .may_apply_arg = o->may_apply_arg,
    });
    if (r->repl == NULL || r->recon == NULL)
        goto fail;
    if (o->controller == NULL || o->controller[0] == '\0') {
        role_as_stored(r); /* standalone: the store is what it was */
        return r;
    }
    /* A primary killed and started again may have been replaced while it
     * was down: it takes no write, and no read meant for the primary,
     * until the controller's topology says what it is now. */
    atomic_store(&r->state, ROLE_S_STARTING);
    r->tw = topo_watch_start(o->controller, (long)r->cfg.topology_poll_ms);
    if (r->tw == NULL)
        goto fail;
    if (pthread_create(&r->thr, NULL, role_main, r) != 0)
        goto fail;
    r->started = 1;
    if (pthread_create(&r->fthr, NULL, role_follower_main, r) != 0)
        goto fail;
    r->fstarted = 1;
    log_info("role: following the topology of %s as %s (shard %u replica %u)",
             o->controller, r->self, r->shard, r->replica);
    return r;
fail:
    log_error("role: cannot start");
    role_stop(r);
    return NULL;
}

void role_stop(role_t *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->started)
        pthread_join(r->thr, NULL);
    if (r->fstarted)
        pthread_join(r->fthr, NULL);
    repl_send_free(r->repl);
    recon_free(r->recon);
    topo_watch_stop(r->tw);
    topo_put(r->cur);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->gc_mu);
    free(r);
}

void role_poke(role_t *r)
{
    if (r->tw)
        topo_watch_poke(r->tw);
    pthread_mutex_lock(&r->mu);
    r->poked = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

int role_primary(role_t *r, char *buf, size_t n)
{
    int rc;
    pthread_mutex_lock(&r->mu);
    snprintf(buf, n, "%s", r->primary);
    rc = r->primary[0] ? 0 : -1;
    pthread_mutex_unlock(&r->mu);
    return rc;
}

const char *role_state(role_t *r)
{
    switch ((enum role_state)atomic_load(&r->state)) {
    case ROLE_S_PRIMARY:
        return "primary";
    case ROLE_S_STARTING:
        return "starting";
    case ROLE_S_SECONDARY:
        if (sdb_resyncing(r->db))
            return "resyncing";
        if (atomic_load(&r->rejoin))
            return "rejoining";
        return "secondary";
    default:
        return "detached";
    }
}

int role_is_primary(role_t *r)
{
    return atomic_load(&r->state) == ROLE_S_PRIMARY &&
           sdb_get_role(r->db) == SDB_ROLE_PRIMARY;
}

topo_t *role_topo(role_t *r)
{
    return r->tw ? topo_watch_get(r->tw) : NULL;
}

repl_send_t *role_repl(role_t *r)
{
    return r->repl;
}

recon_t *role_recon(role_t *r)
{
    return r->recon;
}

void role_stats_json(role_t *r, cJSON *obj)
{
    char primary[256];
    cJSON *rc = cJSON_CreateObject();

    cJSON_AddStringToObject(obj, "state", role_state(r));
    if (role_primary(r, primary, sizeof primary) == 0)
        cJSON_AddStringToObject(obj, "primary", primary);
    else
        cJSON_AddNullToObject(obj, "primary");
    recon_stats_json(r->recon, rc);
    cJSON_AddItemToObject(obj, "reconcile", rc);
}
