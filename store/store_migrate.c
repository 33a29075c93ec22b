/* store_migrate: the write fence, the copier and the purge of a shard
 * migration (store/store_migrate.h). */
#include "store_migrate.h"

#include "clock.h"
#include "httpc.h"
#include "json_whole.h"
#include "kvhdr.h"
#include "log.h"
#include "metrics.h"
#include "store_owner.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <string.h>

#define STORE_MIGRATE_IDLE_MS 50
#define STORE_MIGRATE_PAGE_BYTES ((size_t)8 << 20)

METRIC_COUNTER(smg_sent, "kv_store_migrate_sent_total",
               "records a migration's copier sent to their new shard");
METRIC_COUNTER(smg_sent_bytes, "kv_store_migrate_sent_bytes_total",
               "bytes of repair batches a migration's copier sent");
METRIC_COUNTER(smg_purged, "kv_store_migrate_purged_total",
               "records dropped after a migration (another shard owns them)");

/* A deferred job (store_migrate_defer), run in arrival order. */
typedef struct store_migrate_job {
    void (*fn)(void *arg);
    void *arg;
    struct store_migrate_job *next;
} store_migrate_job;

/* What the copier knows of one target shard in this migration. */
typedef struct store_migrate_target {
    wire_buf buf;        /* the batch being filled */
    size_t nops;
    int used;            /* something was sent there in this migration */
    uint64_t seq;        /* its X-KV-Last-Seq after our last batch */
    char primary[256];   /* whom we sent it to */
} store_migrate_target;

struct store_migrate {
    sdb *db;
    role_t *role;
    uint32_t shard;
    char auth[KVHDR_AUTH_MAX];
    long timeout_ms;
    uint64_t rate;               /* records/s, 0 = no limit */
    pthread_rwlock_t fence;
    pthread_t thr;
    int started;

    pthread_mutex_t mu;          /* guards the report, stopping and jobs */
    pthread_cond_t cv;
    int stopping;
    int closed;                  /* store_migrate_defer refuses */
    struct store_migrate_job *jobs, **jobs_tail;
    uint64_t id;                 /* the migration the state below is of */
    int source, caught_up, frozen, drained;
    uint64_t position, fence_seq, scanned, sent, sent_bytes;

    /* copier thread only */
    int copying;                 /* the pass from 0 has begun */
    uint64_t t_start_ms, first_pass_logged;
    uint64_t pace_from;          /* scanned when this pass began */
    uint64_t backoff_ms, retry_at_ms;
    store_migrate_target tgt[TOPO_MAX_SHARD_IDS];
    wire_buf page;
};

static int store_migrate_stopping(store_migrate *m)
{
    int s;
    pthread_mutex_lock(&m->mu);
    s = m->stopping;
    pthread_mutex_unlock(&m->mu);
    return s;
}

static void store_migrate_sleep(store_migrate *m, uint64_t ms)
{
    pthread_mutex_lock(&m->mu);
    if (!m->stopping && m->jobs == NULL)
        clock_cond_wait_ms(&m->cv, &m->mu, ms);
    pthread_mutex_unlock(&m->mu);
}

/* ---- deferred jobs ------------------------------------------------------ */

int store_migrate_defer(store_migrate *m, void (*fn)(void *arg), void *arg)
{
    store_migrate_job *j;

    if (m == NULL || (j = malloc(sizeof *j)) == NULL)
        return -1;
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&m->mu);
    if (m->closed) {
        pthread_mutex_unlock(&m->mu);
        free(j);
        return -1;
    }
    *m->jobs_tail = j;
    m->jobs_tail = &j->next;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

/* Runs every queued job on the calling thread. */
static void store_migrate_run_jobs(store_migrate *m)
{
    store_migrate_job *j;

    pthread_mutex_lock(&m->mu);
    j = m->jobs;
    m->jobs = NULL;
    m->jobs_tail = &m->jobs;
    pthread_mutex_unlock(&m->mu);
    while (j) {
        store_migrate_job *next = j->next;
        j->fn(j->arg);
        free(j);
        j = next;
    }
}

void store_migrate_close(store_migrate *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->closed = 1;
    pthread_mutex_unlock(&m->mu);
    store_migrate_run_jobs(m);
}

/* ---- the write fence ---------------------------------------------------- */

topo_t *store_migrate_write_begin(store_migrate *m, role_t *role)
{
    if (m)
        pthread_rwlock_rdlock(&m->fence);
    return role_topo(role);
}

void store_migrate_write_end(store_migrate *m, topo_t *t)
{
    topo_put(t);
    if (m)
        pthread_rwlock_unlock(&m->fence);
}

/* The first sight of phase freeze: every write that checked against an
 * older topology has committed once the write lock is ours, and every later
 * one sees the freeze (the watcher already holds it). */
static void store_migrate_freeze(store_migrate *m)
{
    uint64_t seq;

    pthread_rwlock_wrlock(&m->fence);
    seq = sdb_last_seq(m->db);
    pthread_rwlock_unlock(&m->fence);
    pthread_mutex_lock(&m->mu);
    m->frozen = 1;
    m->fence_seq = seq;
    pthread_mutex_unlock(&m->mu);
    log_info("migrate %" PRIu64 ": frozen at seq %" PRIu64 " (position %"
             PRIu64 "): writes to moving keys are refused", m->id, seq,
             m->position);
}

/* ---- the copier --------------------------------------------------------- */

/* A new migration (or none, id 0): forget the last one's state. */
static void store_migrate_reset(store_migrate *m, uint64_t id)
{
    pthread_mutex_lock(&m->mu);
    m->id = id;
    m->source = m->caught_up = m->frozen = m->drained = 0;
    m->position = m->fence_seq = m->scanned = m->sent = m->sent_bytes = 0;
    pthread_mutex_unlock(&m->mu);
    m->copying = 0;
    m->first_pass_logged = 0;
    m->backoff_ms = 0;
    m->retry_at_ms = 0;
    for (size_t i = 0; i < TOPO_MAX_SHARD_IDS; i++) {
        wire_buf_reset(&m->tgt[i].buf);
        m->tgt[i].nops = 0;
        m->tgt[i].used = 0;
        m->tgt[i].seq = 0;
        m->tgt[i].primary[0] = '\0';
    }
}

/* Start over from seq 0 (a target's primary changed, or this store was not
 * the primary for a while): idempotent by version. refreeze: the store
 * stopped being the source; another primary may have taken writes since
 * its fence, so a later primaryship freezes again. */
static void store_migrate_restart(store_migrate *m, int refreeze)
{
    pthread_mutex_lock(&m->mu);
    m->position = 0;
    m->drained = 0;
    if (refreeze) {
        m->frozen = 0;
        m->fence_seq = 0;
    }
    pthread_mutex_unlock(&m->mu);
    m->copying = 0;
    for (size_t i = 0; i < TOPO_MAX_SHARD_IDS; i++) {
        wire_buf_reset(&m->tgt[i].buf);
        m->tgt[i].nops = 0;
        m->tgt[i].used = 0;
        m->tgt[i].seq = 0; /* a new primary numbers on from its own seq */
        m->tgt[i].primary[0] = '\0';
    }
}

/* Sends target id's pending batch. 0 when the target answered 200 with
 * every op 200 or 208 (or one the store can never take, logged), -1 when
 * the batch must be sent again. */
static int store_migrate_flush(store_migrate *m, const topo_t *t, uint32_t id)
{
    store_migrate_target *tg = &m->tgt[id];
    const topo_shard *sh = topo_shard_by_id(t, id);
    char url[300], h_epoch[KVHDR_EPOCH_MAX], h_mig[48];
    const char *hdrs[5];
    size_t nh = 0, off = 0, bad = 0, retry = 0;
    httpc_req req = {0};
    httpc_resp resp;
    wire_result res;
    uint64_t seq;

    if (tg->nops == 0)
        return 0;
    if (sh == NULL || sh->primary == NULL) {
        log_warn("migrate %" PRIu64 ": shard %u has no primary yet", m->id,
                 (unsigned)id);
        return -1;
    }
    if (tg->used && strcmp(tg->primary, sh->primary) != 0) {
        /* What the old primary took may not have reached the new one. */
        log_warn("migrate %" PRIu64 ": shard %u's primary is now %s (was %s):"
                 " the copy starts over", m->id, (unsigned)id, sh->primary,
                 tg->primary);
        store_migrate_restart(m, 0);
        return -1;
    }
    snprintf(url, sizeof url, "%s/internal/repair", sh->primary);
    hdrs[nh++] = "Content-Type: application/octet-stream";
    hdrs[nh++] = kvhdr_epoch(h_epoch, sizeof h_epoch, sh->epoch);
    /* The target applies it on its migration thread (store_repair). */
    snprintf(h_mig, sizeof h_mig, "X-KV-Migration: %" PRIu64, m->id);
    hdrs[nh++] = h_mig;
    if (m->auth[0])
        hdrs[nh++] = m->auth;
    hdrs[nh] = NULL;
    req.method = "POST";
    req.url = url;
    req.body = tg->buf.data;
    req.body_len = tg->buf.len;
    req.headers = hdrs;
    req.timeout_ms = m->timeout_ms;
    if (httpc_do(&req, &resp) != 0 || resp.status != 200 ||
        resp.len != tg->nops * WIRE_RESULT_LEN) {
        log_warn("migrate %" PRIu64 ": %s: %ld %s", m->id, url, resp.status,
                 resp.status ? (resp.body ? resp.body : "") : resp.error);
        if (resp.status == 409 || resp.status == 503)
            role_poke(m->role); /* stale or pending epoch: re-read */
        httpc_resp_free(&resp);
        return -1;
    }
    while (wire_next_result(resp.body, resp.len, &off, &res) == 1) {
        if (res.status == 200 || res.status == 208)
            continue;
        if (res.status == 400 || res.status == 413 || res.status == 414)
            bad++;   /* this op can never be applied there */
        else
            retry++; /* 421 (its topology is behind), 5xx */
    }
    if (kvhdr_u64(&resp, "X-KV-Last-Seq", &seq) != 0)
        seq = 0;
    httpc_resp_free(&resp);
    if (retry) {
        log_warn("migrate %" PRIu64 ": shard %u refused %zu of %zu ops "
                 "(its topology may be behind); sending again", m->id,
                 (unsigned)id, retry, tg->nops);
        role_poke(m->role);
        return -1;
    }
    if (bad)
        log_error("migrate %" PRIu64 ": shard %u cannot apply %zu records "
                  "(invalid there); skipped", m->id, (unsigned)id, bad);
    metrics_add(&smg_sent, (int64_t)tg->nops);
    metrics_add(&smg_sent_bytes, (int64_t)tg->buf.len);
    pthread_mutex_lock(&m->mu);
    m->sent += tg->nops;
    m->sent_bytes += tg->buf.len;
    pthread_mutex_unlock(&m->mu);
    tg->used = 1;
    if (seq > tg->seq)
        tg->seq = seq;
    snprintf(tg->primary, sizeof tg->primary, "%s", sh->primary);
    wire_buf_reset(&tg->buf);
    tg->nops = 0;
    return 0;
}

static int store_migrate_flush_all(store_migrate *m, const topo_t *t)
{
    for (uint32_t id = 0; id < TOPO_MAX_SHARD_IDS; id++)
        if (m->tgt[id].nops && store_migrate_flush(m, t, id) != 0)
            return -1;
    return 0;
}

/* Pages of a tenth of a second's worth under a rate: no burst past it. */
static size_t store_migrate_page_ops(const store_migrate *m)
{
    uint64_t n = m->rate ? (m->rate + 9) / 10 : STORE_MIGRATE_PAGE_OPS;

    return n < STORE_MIGRATE_PAGE_OPS ? (size_t)n : STORE_MIGRATE_PAGE_OPS;
}

/* Under a rate: how long to wait before the next page so that what this
 * pass scanned stays within rate x its time so far (0: go on). */
static uint64_t store_migrate_pace_ms(const store_migrate *m, uint64_t now)
{
    uint64_t due_ms;

    if (m->rate == 0)
        return 0;
    due_ms = (m->scanned - m->pace_from) * 1000 / m->rate;
    return m->t_start_ms + due_ms > now ? m->t_start_ms + due_ms - now : 0;
}

/* Which keys of a page go: the ones moving away from this shard. */
typedef struct store_migrate_pick {
    const topo_t *t;
    uint32_t shard;
} store_migrate_pick;

static int store_migrate_moving(void *arg, const char *key, size_t len)
{
    const store_migrate_pick *p = arg;

    return topo_owner_from(p->t, key, len) == p->shard &&
           topo_owner_to(p->t, key, len) != p->shard;
}

/* One page of changes from position: the moving records go out; position
 * moves past the page once all of it was answered. 1 = more to read now,
 * 0 = caught up with the last seq, -1 = failed (retry after a backoff). */
static int store_migrate_page(store_migrate *m, const topo_t *t)
{
    store_migrate_pick pick = {.t = t, .shard = m->shard};
    uint64_t pos = m->position, next = pos, scanned = 0;
    size_t off = 0;
    int more = 0;
    wire_op op;

    wire_buf_reset(&m->page);
    if (sdb_changes_picked(m->db, pos, store_migrate_page_ops(m),
                           STORE_MIGRATE_PAGE_BYTES, store_migrate_moving,
                           &pick, &m->page, &next, &more, &scanned) != 0)
        return -1;
    while (wire_next_op(m->page.data, m->page.len, &off, &op) == 1) {
        uint32_t to = topo_owner_to(t, op.key, op.key_len);
        store_migrate_target *tg = &m->tgt[to];

        op.seq = 0; /* a repair's seq is the receiver's own */
        if (wire_put_op(&tg->buf, &op) != 0)
            return -1;
        tg->nops++;
        if ((tg->nops >= STORE_MIGRATE_BATCH_OPS ||
             tg->buf.len >= STORE_MIGRATE_BATCH_BYTES) &&
            store_migrate_flush(m, t, to) != 0)
            return -1;
    }
    if (store_migrate_flush_all(m, t) != 0)
        return -1;
    pthread_mutex_lock(&m->mu);
    if (m->copying) { /* not restarted by a flush */
        m->position = next;
        m->scanned += scanned;
        if (!more)
            m->caught_up = 1;
    }
    pthread_mutex_unlock(&m->mu);
    return more ? 1 : 0;
}

/* The target's live secondaries acked what we sent there: 1, else 0. */
static int store_migrate_target_drained(store_migrate *m, const topo_t *t,
                                        uint32_t id)
{
    store_migrate_target *tg = &m->tgt[id];
    const topo_shard *sh = topo_shard_by_id(t, id);
    char url[300];
    httpc_req req = {0};
    httpc_resp resp;
    cJSON *j, *secs, *s;
    uint64_t want = tg->seq;
    int ok = 1;

    if (sh == NULL || sh->primary == NULL)
        return 0;
    if (strcmp(tg->primary, sh->primary) != 0) {
        log_warn("migrate %" PRIu64 ": shard %u's primary is now %s (was %s):"
                 " the copy starts over", m->id, (unsigned)id, sh->primary,
                 tg->primary);
        store_migrate_restart(m, 0);
        return 0;
    }
    snprintf(url, sizeof url, "%s/health", sh->primary);
    req.url = url;
    req.timeout_ms = m->timeout_ms;
    if (httpc_do(&req, &resp) != 0 || resp.status != 200) {
        httpc_resp_free(&resp);
        return 0;
    }
    j = json_whole_parse(resp.body, resp.len, NULL);
    httpc_resp_free(&resp);
    if (j == NULL)
        return 0;
    if (want == 0) { /* a target that does not name its seq: its seq now */
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(j, "seq");
        want = cJSON_IsNumber(seq) ? (uint64_t)seq->valuedouble : UINT64_MAX;
    }
    secs = cJSON_GetObjectItemCaseSensitive(j, "secondaries");
    cJSON_ArrayForEach(s, secs) {
        const cJSON *acked = cJSON_GetObjectItemCaseSensitive(s, "acked_seq");
        const cJSON *alive = cJSON_GetObjectItemCaseSensitive(s, "alive");
        /* A dead secondary cannot be promoted ahead of a live one that
         * has it all (the controller picks the highest applied seq). */
        if (cJSON_IsFalse(alive))
            continue;
        if (!cJSON_IsNumber(acked) || (uint64_t)acked->valuedouble < want)
            ok = 0;
    }
    cJSON_Delete(j);
    return ok;
}

static void store_migrate_check_drained(store_migrate *m, const topo_t *t)
{
    for (uint32_t id = 0; id < TOPO_MAX_SHARD_IDS; id++)
        if (m->tgt[id].used && !store_migrate_target_drained(m, t, id))
            return;
    if (!m->copying)
        return;
    pthread_mutex_lock(&m->mu);
    m->drained = 1;
    pthread_mutex_unlock(&m->mu);
    log_info("migrate %" PRIu64 ": drained: %" PRIu64 " records (%.1f MB) "
             "sent up to seq %" PRIu64 " (fence %" PRIu64 ") and acknowledged "
             "by the targets' secondaries", m->id, m->sent,
             (double)m->sent_bytes / 1e6, m->position, m->fence_seq);
}

/* One step of a source primary in phase copy or freeze. Returns how long
 * to wait before the next (0: go on at once). */
static uint64_t store_migrate_copy_step(store_migrate *m, const topo_t *t)
{
    uint64_t now = clock_mono_ms();
    int rc;

    if (!m->copying) {
        /* A tombstone collection that began before the store saw the
         * migration ends first: none starts during it. */
        role_gc_barrier(m->role);
        m->copying = 1;
        m->t_start_ms = now;
        m->pace_from = m->scanned;
        log_info("migrate %" PRIu64 ": copying the moving keys of shard %u "
                 "from seq 0 (last seq %" PRIu64 ")", m->id, (unsigned)m->shard,
                 sdb_last_seq(m->db));
    }
    if (t->phase == TOPO_PHASE_FREEZE && !m->frozen)
        store_migrate_freeze(m);
    if (now < m->retry_at_ms)
        return m->retry_at_ms - now;
    if (store_migrate_pace_ms(m, now))
        return store_migrate_pace_ms(m, now);
    rc = store_migrate_page(m, t);
    if (rc < 0) {
        m->backoff_ms = m->backoff_ms ? m->backoff_ms * 2
                                      : STORE_MIGRATE_BACKOFF_MIN_MS;
        if (m->backoff_ms > STORE_MIGRATE_BACKOFF_MAX_MS)
            m->backoff_ms = STORE_MIGRATE_BACKOFF_MAX_MS;
        m->retry_at_ms = clock_mono_ms() + m->backoff_ms;
        return m->backoff_ms;
    }
    m->backoff_ms = 0;
    if (rc == 0 && !m->first_pass_logged && m->copying) {
        double s = (double)(clock_mono_ms() - m->t_start_ms) / 1000.0;
        m->first_pass_logged = 1;
        log_info("migrate %" PRIu64 ": first pass done in %.2f s: %" PRIu64
                 " records scanned, %" PRIu64 " sent (%.1f MB, %.0f "
                 "records/s), position %" PRIu64, m->id, s, m->scanned,
                 m->sent, (double)m->sent_bytes / 1e6,
                 s > 0 ? (double)m->sent / s : 0.0, m->position);
    }
    if (m->frozen && !m->drained && m->position >= m->fence_seq && m->copying)
        store_migrate_check_drained(m, t);
    return rc > 0 ? 0 : STORE_MIGRATE_IDLE_MS;
}

/* ---- the purge ---------------------------------------------------------- */

typedef struct store_migrate_purge_ctx {
    store_migrate *m;
    topo_t *t;
} store_migrate_purge_ctx;

static void *store_migrate_purge_begin(void *arg)
{
    store_migrate_purge_ctx *c = arg;

    c->t = role_topo(c->m->role);
    /* A migration began (or the topology is gone, or no longer lists this
     * shard): stop; its end purges. */
    if (c->t == NULL || c->t->phase != TOPO_PHASE_NONE ||
        topo_shard_by_id(c->t, c->m->shard) == NULL ||
        store_migrate_stopping(c->m)) {
        topo_put(c->t);
        c->t = NULL;
        return NULL;
    }
    return c;
}

static int store_migrate_purge_owned(void *ctx, const char *key, size_t len)
{
    store_migrate_purge_ctx *c = ctx;
    return store_owner_check(c->t, c->m->shard, key, len, STORE_OWNER_REPAIR,
                             NULL) == STORE_OWNER_OK;
}

static void store_migrate_purge_end(void *ctx)
{
    store_migrate_purge_ctx *c = ctx;
    topo_put(c->t);
    c->t = NULL;
}

/* 1 when the purge walked everything, else 0 (stopped or failed). */
static int store_migrate_purge(store_migrate *m)
{
    store_migrate_purge_ctx c = {.m = m};
    sdb_purge_fns f = {
        .begin = store_migrate_purge_begin,
        .owned = store_migrate_purge_owned,
        .end = store_migrate_purge_end,
        .arg = &c,
    };
    uint64_t n = 0, t0 = clock_mono_ms();
    int done = 0;

    if (sdb_purge(m->db, &f, STORE_MIGRATE_PURGE_BATCH, &n, &done) != 0)
        done = 0;
    metrics_add(&smg_purged, (int64_t)n);
    if (n || done)
        log_info("purged %" PRIu64 " records that other shards own now "
                 "(%.2f s%s)", n, (double)(clock_mono_ms() - t0) / 1000.0,
                 done ? "" : ", cut short");
    return done;
}

/* ---- the thread --------------------------------------------------------- */

static void *store_migrate_main(void *arg)
{
    store_migrate *m = arg;
    int purge_due = 1; /* once at start */

    pthread_setname_np(pthread_self(), "migrate"); /* top -H, perf */
    /* Below the request threads: the copy (and the purge) take the CPU the
     * foreground leaves, so reads keep their latency while keys move. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), STORE_MIGRATE_NICE) != 0)
        log_debug("migrate: setpriority: %s", strerror(errno));

    while (!store_migrate_stopping(m)) {
        topo_t *t;
        uint64_t wait = STORE_MIGRATE_IDLE_MS;

        store_migrate_run_jobs(m);
        t = role_topo(m->role);

        if (t == NULL) {
            /* no topology yet */
        } else if (t->phase == TOPO_PHASE_NONE) {
            if (m->id) {
                log_info("migrate %" PRIu64 ": over", m->id);
                store_migrate_reset(m, 0);
                purge_due = 1;
            }
            /* A shard listed but not in the ring owns nothing: what it
             * holds (a migration that was called off) goes too, or a key
             * deleted meanwhile could come back with the next one. A
             * shard no longer listed is being removed: its replicas stop. */
            /* Not while an old primary rejoins: what it hands off may be
             * keys a migration moved meanwhile, which the handoff sends
             * on to their new shard (store/recon.h). */
            if (purge_due && topo_shard_by_id(t, m->shard) &&
                strcmp(role_state(m->role), "rejoining") != 0)
                purge_due = !store_migrate_purge(m);
        } else {
            int source;
            if (t->migration_id != m->id)
                store_migrate_reset(m, t->migration_id);
            source = role_is_primary(m->role) &&
                     store_owner_in_ring(t->ring_from, m->shard);
            if (source != m->source) {
                pthread_mutex_lock(&m->mu);
                m->source = source;
                pthread_mutex_unlock(&m->mu);
                if (!source) /* a later primaryship starts over */
                    store_migrate_restart(m, 1);
            }
            if (source && t->phase != TOPO_PHASE_SWITCH)
                wait = store_migrate_copy_step(m, t);
        }
        topo_put(t);
        if (wait)
            store_migrate_sleep(m, wait);
    }
    httpc_thread_done();
    return NULL;
}

/* ---- life cycle and report ---------------------------------------------- */

store_migrate *store_migrate_start(const store_migrate_opts *o)
{
    store_migrate *m = calloc(1, sizeof *m);
    pthread_rwlockattr_t ra;

    if (m == NULL)
        return NULL;
    m->db = o->db;
    m->role = o->role;
    m->shard = o->shard;
    m->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    m->rate = o->rate;
    kvhdr_auth(m->auth, sizeof m->auth, o->token);
    /* Writer-preferring: a freeze must not wait behind a stream of writes. */
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&m->fence, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&m->mu, NULL);
    clock_cond_init(&m->cv);
    m->jobs_tail = &m->jobs;
    metrics_register(&smg_sent);
    metrics_register(&smg_sent_bytes);
    metrics_register(&smg_purged);
    if (pthread_create(&m->thr, NULL, store_migrate_main, m) != 0) {
        log_error("migrate: cannot start its thread");
        store_migrate_stop(m);
        return NULL;
    }
    m->started = 1;
    return m;
}

void store_migrate_stop(store_migrate *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (m->started)
        pthread_join(m->thr, NULL);
    store_migrate_close(m); /* what came after the thread's last round */
    for (size_t i = 0; i < TOPO_MAX_SHARD_IDS; i++)
        wire_buf_free(&m->tgt[i].buf);
    wire_buf_free(&m->page);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    pthread_rwlock_destroy(&m->fence);
    free(m);
}

static void store_migrate_add_u64(cJSON *j, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    cJSON_AddRawToObject(j, name, buf);
}

void store_migrate_json(store_migrate *m, const topo_t *t, cJSON *obj)
{
    cJSON *j;

    if (t == NULL || t->phase == TOPO_PHASE_NONE)
        return;
    j = cJSON_AddObjectToObject(obj, "migration");
    store_migrate_add_u64(j, "id", t->migration_id);
    cJSON_AddStringToObject(j, "phase", topo_phase_name(t->phase));
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    if (m->id != t->migration_id) { /* the thread has not seen it yet */
        cJSON_AddBoolToObject(j, "source", 0);
        store_migrate_add_u64(j, "position", 0);
        store_migrate_add_u64(j, "last_seq", sdb_last_seq(m->db));
        cJSON_AddBoolToObject(j, "caught_up", 0);
        store_migrate_add_u64(j, "fence_seq", 0);
        store_migrate_add_u64(j, "scanned", 0);
        store_migrate_add_u64(j, "sent", 0);
        store_migrate_add_u64(j, "sent_bytes", 0);
        cJSON_AddBoolToObject(j, "drained", 0);
    } else {
        cJSON_AddBoolToObject(j, "source", m->source);
        store_migrate_add_u64(j, "position", m->position);
        store_migrate_add_u64(j, "last_seq", sdb_last_seq(m->db));
        cJSON_AddBoolToObject(j, "caught_up", m->caught_up);
        store_migrate_add_u64(j, "fence_seq", m->fence_seq);
        store_migrate_add_u64(j, "scanned", m->scanned);
        store_migrate_add_u64(j, "sent", m->sent);
        store_migrate_add_u64(j, "sent_bytes", m->sent_bytes);
        cJSON_AddBoolToObject(j, "drained", m->drained);
    }
    pthread_mutex_unlock(&m->mu);
}
