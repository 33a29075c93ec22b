#include "failover.h"

#include "notify.h"

#include "cluster_cmd.h"
#include "cluster_state.h"
#include "httpc.h"
#include "kvhdr.h"
#include "events.h"
#include "log.h"
#include "probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* /internal/topology-changed is a hint: the stores poll anyway. */
/* Stores per shard we ask at once (cluster.replicas is at most 10). */
#define FAILOVER_MAX_REPLICAS 16

struct failover {
    cluster_t *cl;
    sup_t *sup;
    const atomic_int *stop;
    int64_t started_ms;        /* no node is older news than this */
    int *down_logged;          /* per shard: "primary down" said once */
    int64_t *skip_logged_ms;   /* per shard: last "no live secondary" */
    long probe_timeout_ms;
    char auth[KVHDR_AUTH_MAX]; /* "Authorization: Bearer ..." or "" */
};

long failover_probe_timeout_ms(int64_t health_interval_ms)
{
    if (health_interval_ms < 200)
        return 200;
    if (health_interval_ms > 1000)
        return 1000;
    return (long)health_interval_ms;
}

int failover_pick(const failover_cand *c, size_t n)
{
    int best = -1;

    for (size_t i = 0; i < n; i++)
        if (best < 0 || c[i].seq > c[best].seq ||
            (c[i].seq == c[best].seq && c[i].replica < c[best].replica))
            best = (int)i;
    return best;
}

failover_t *failover_new(cluster_t *cl, sup_t *sup, const atomic_int *stop)
{
    failover_t *f = calloc(1, sizeof *f);

    if (f == NULL)
        return NULL;
    f->cl = cl;
    f->sup = sup;
    f->stop = stop;
    f->started_ms = sup_now_ms();
    /* By id, for every shard the cluster can have (some added later). */
    f->down_logged = calloc(CLUSTER_MAX_SHARDS, sizeof *f->down_logged);
    f->skip_logged_ms = calloc(CLUSTER_MAX_SHARDS,
                               sizeof *f->skip_logged_ms);
    if (f->down_logged == NULL || f->skip_logged_ms == NULL) {
        failover_free(f);
        return NULL;
    }
    f->probe_timeout_ms = failover_probe_timeout_ms(cl->cfg.health_interval_ms);
    kvhdr_auth(f->auth, sizeof f->auth, cl->cfg.token);
    return f;
}

void failover_free(failover_t *f)
{
    if (f == NULL)
        return;
    free(f->down_logged);
    free(f->skip_logged_ms);
    free(f);
}

static int failover_running(failover_t *f, const cluster_node *n)
{
    sup_info info;

    if (n->sup_index < 0)
        return 1; /* not supervised (unit tests): the probe decides */
    return sup_get(f->sup, (size_t)n->sup_index, &info) == 0 &&
           info.state == SUP_RUNNING;
}

/* Ask every store of shard except `except` for its /health; fills cands
 * with the ones that answer 200 with a seq. Returns how many. */
static size_t failover_candidates(failover_t *f, unsigned shard, int except,
                                  failover_cand *cands)
{
    cluster_t *cl = f->cl;
    cluster_node *nodes[FAILOVER_MAX_REPLICAS];
    const char *bases[FAILOVER_MAX_REPLICAS] = {0};
    httpc_resp resps[FAILOVER_MAX_REPLICAS];
    size_t n = 0, got = 0;

    for (size_t i = 0; i < cl->nnodes && n < FAILOVER_MAX_REPLICAS; i++) {
        cluster_node *nd = &cl->nodes[i];
        if (nd->kind != CLUSTER_STORE || nd->shard != (int)shard ||
            nd->replica == except || atomic_load(&nd->gone))
            continue;
        nodes[n] = nd;
        bases[n++] = nd->url;
    }
    probe_health(bases, n, f->probe_timeout_ms, resps);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq, epoch;
        if (resps[i].status != 200) {
            log_info("failover: shard %u: %s is not a candidate: %s", shard,
                     nodes[i]->name,
                     resps[i].status ? "HTTP error" : resps[i].error);
        } else if (probe_health_seq(resps[i].body, resps[i].len, &seq,
                                      &epoch) < 0) {
            log_warn("failover: shard %u: %s: /health has no applied_seq or "
                     "seq", shard, nodes[i]->name);
        } else if (!failover_running(f, nodes[i])) {
            log_info("failover: shard %u: %s answers but is being stopped",
                     shard, nodes[i]->name);
        } else {
            log_info("failover: shard %u: candidate %s (replica %d) "
                     "applied_seq %llu, epoch %llu",
                     shard, nodes[i]->name, nodes[i]->replica,
                     (unsigned long long)seq, (unsigned long long)epoch);
            atomic_store(&nodes[i]->seen_seq, seq);
            cands[got].replica = nodes[i]->replica;
            cands[got].seq = seq;
            got++;
        }
        httpc_resp_free(&resps[i]);
    }
    return got;
}

/* Failover tells the stores of the shard it changed (they re-read the
 * topology at once) and the queue and the apis (notify.h). */
static int failover_notify_pick(const cluster_node *n, void *ctx)
{
    unsigned shard = *(const unsigned *)ctx;

    return (n->kind == CLUSTER_STORE && n->shard == (int)shard) ||
           n->kind == CLUSTER_QUEUE || n->kind == CLUSTER_API;
}

static void failover_notify_answer(const cluster_node *n, const httpc_resp *r,
                                   void *ctx)
{
    unsigned shard = *(const unsigned *)ctx;

    if (r->status >= 200 && r->status < 300)
        log_info("failover: shard %u: %s told of the new topology", shard,
                 n->name);
    else if (r->status)
        log_info("failover: shard %u: %s answered %ld to topology-changed "
                 "(it polls anyway)", shard, n->name, r->status);
    else
        log_info("failover: shard %u: %s not told (%s); it polls the "
                 "topology when it is back", shard, n->name, r->error);
}

static void failover_notify(failover_t *f, unsigned shard)
{
    notify_nodes(f->cl, f->auth, failover_notify_pick, failover_notify_answer,
                 &shard, NULL);
}

enum failover_result failover_shard(failover_t *f, unsigned shard,
                                    int64_t now_ms)
{
    cluster_t *cl = f->cl;
    failover_cand cands[FAILOVER_MAX_REPLICAS];
    cluster_node *old_node, *new_node;
    uint64_t shard_epoch, epoch;
    int old_primary, best;
    size_t n;

    if (shard >= cl->nshards)
        return FAILOVER_ERROR;
    pthread_mutex_lock(&cl->mu);
    old_primary = cl->shards[shard].present ? cl->shards[shard].primary : -2;
    pthread_mutex_unlock(&cl->mu);
    if (old_primary == -2)
        return FAILOVER_ERROR;
    old_node = old_primary >= 0 ? cluster_store_node(cl, shard, old_primary)
                                : NULL;
    n = failover_candidates(f, shard, old_primary, cands);
    if (n == 0) {
        atomic_fetch_add(&cl->failovers_skipped, 1);
        if (f->skip_logged_ms[shard] == 0 ||
            now_ms - f->skip_logged_ms[shard] >= cl->cfg.failover_after_ms) {
            log_warn("failover: shard %u: primary %s is down but no "
                     "secondary answers /health: no failover, topology "
                     "unchanged (retrying every %lld ms)",
                     shard, old_node ? old_node->name : "(none)",
                     (long long)cl->cfg.health_interval_ms);
            f->skip_logged_ms[shard] = now_ms;
        }
        return FAILOVER_SKIPPED;
    }
    if (f->stop && atomic_load(f->stop))
        return FAILOVER_SKIPPED;
    best = failover_pick(cands, n);
    new_node = cluster_store_node(cl, shard, cands[best].replica);
    if (new_node == NULL ||
        cluster_promote(cl, shard, cands[best].replica, cands[best].seq,
                        now_ms) < 0)
        return FAILOVER_ERROR;
    pthread_mutex_lock(&cl->mu);
    shard_epoch = cl->shards[shard].epoch;
    epoch = cl->epoch;
    pthread_mutex_unlock(&cl->mu);
    log_warn("failover: shard %u: promoted %s (replica %d, applied_seq %llu) "
             "in place of %s; shard epoch %llu, topology epoch %llu, "
             "handoff_seq %llu",
             shard, new_node->name, new_node->replica,
             (unsigned long long)cands[best].seq,
             old_node ? old_node->name : "(none)",
             (unsigned long long)shard_epoch, (unsigned long long)epoch,
             (unsigned long long)cands[best].seq);
    events_add("failover", "shard %u: %s promoted in place of %s at shard "
               "epoch %llu (topology epoch %llu)", shard, new_node->name,
               old_node ? old_node->name : "(none)",
               (unsigned long long)shard_epoch, (unsigned long long)epoch);
    /* The promoted store starts a new window of its own. */
    atomic_store(&new_node->last_ok_ms, now_ms);
    f->down_logged[shard] = 0;
    f->skip_logged_ms[shard] = 0;
    if (cluster_state_save(cl) == 0)
        log_info("failover: shard %u: topology state saved to %s", shard,
                 cl->state_path);
    /* Restarts from now on start every store of the shard in its new role. */
    for (size_t i = 0; i < cl->nnodes; i++) {
        cluster_node *nd = &cl->nodes[i];
        if (nd->kind != CLUSTER_STORE || nd->shard != (int)shard ||
            nd->sup_index < 0)
            continue;
        if (cluster_cmd_update_child(cl, f->sup, i) < 0)
            log_error("failover: shard %u: cannot update the command line "
                      "of %s", shard, nd->name);
        else if (nd == old_node || nd == new_node)
            log_info("failover: shard %u: %s restarts as %s", shard,
                     nd->name, cluster_node_role(cl, nd));
    }
    log_info("failover: shard %u: topology epoch %llu published", shard,
             (unsigned long long)epoch);
    failover_notify(f, shard);
    return FAILOVER_PROMOTED;
}

int failover_tick(failover_t *f, int64_t now_ms)
{
    cluster_t *cl = f->cl;
    int done = 0;

    probe_nodes(cl, f->probe_timeout_ms);
    now_ms = sup_now_ms(); /* the probes took a while */
    for (size_t s = 0; s < cl->nshards; s++) {
        cluster_node *p;
        int primary;
        int64_t last_fo, last_ok, down_ms, added;
        int present;

        if (f->stop && atomic_load(f->stop))
            break;
        pthread_mutex_lock(&cl->mu);
        present = cl->shards[s].present;
        primary = cl->shards[s].primary;
        last_fo = cl->shards[s].last_failover_ms;
        added = cl->shards[s].added_ms;
        pthread_mutex_unlock(&cl->mu);
        if (!present)
            continue;
        p = primary >= 0 ? cluster_store_node(cl, (unsigned)s, primary) : NULL;
        if (p && atomic_load(&p->healthy) && failover_running(f, p)) {
            if (f->down_logged[s])
                log_info("failover: shard %zu: primary %s answers again",
                         s, p->name);
            f->down_logged[s] = 0;
            continue;
        }
        last_ok = p ? atomic_load(&p->last_ok_ms) : 0;
        if (last_ok < f->started_ms)
            last_ok = f->started_ms;
        if (last_ok < added) /* a shard added since: its stores are new */
            last_ok = added;
        if (last_fo > last_ok)
            last_ok = last_fo;
        down_ms = now_ms - last_ok;
        if (!f->down_logged[s]) {
            log_warn("failover: shard %zu: primary %s does not answer "
                     "/health (%s); failover after %lld ms",
                     s, p ? p->name : "(none)",
                     p && p->last_error[0] ? p->last_error : "not running",
                     (long long)cl->cfg.failover_after_ms);
            f->down_logged[s] = 1;
        }
        if (down_ms < cl->cfg.failover_after_ms)
            continue;
        if (last_fo > 0 && now_ms - last_fo < cl->cfg.failover_after_ms)
            continue;
        if (f->skip_logged_ms[s] == 0 ||
            now_ms - f->skip_logged_ms[s] >= cl->cfg.failover_after_ms)
            log_warn("failover: shard %zu: primary %s down for %lld ms: "
                     "failing over", s, p ? p->name : "(none)",
                     (long long)down_ms);
        if (failover_shard(f, (unsigned)s, now_ms) == FAILOVER_PROMOTED)
            done++;
    }
    return done;
}
