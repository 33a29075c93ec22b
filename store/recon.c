#include "recon.h"

#include "clock.h"
#include "httpc.h"
#include "json_whole.h"
#include "kvhdr.h"
#include "log.h"
#include "wire.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECON_RESYNC_RESTARTS 3
#define RECON_HANDOFF_BYTES ((size_t)4 << 20)

struct recon {
    recon_opts o;
    char auth[KVHDR_AUTH_MAX];
    _Atomic uint64_t primary_gc;
    _Atomic uint64_t full_resyncs, catchups, catchup_ops, resync_ops,
        handoffs, handoff_ops, rounds, failures;
    uint64_t resumed_from;
    /* The epoch of the last full resync that ended with nothing applied: a
     * new cluster's secondaries stay at seq 0 until the first write, and
     * another wipe every round would fill the log ("full resync ...") with
     * no news. Only the reconcile thread touches it. */
    uint64_t empty_resync_epoch;
    int empty_resynced;
    unsigned streak;      /* failed requests in a row (logs are thinned) */
};

recon_t *recon_new(const recon_opts *o)
{
    recon_t *r = calloc(1, sizeof *r);

    if (r == NULL)
        return NULL;
    r->o = *o;
    r->o.token = NULL;
    if (r->o.page_max == 0)
        r->o.page_max = 5000;
    if (r->o.timeout_ms <= 0)
        r->o.timeout_ms = 5000;
    kvhdr_auth(r->auth, sizeof r->auth, o->token);
    r->resumed_from = sdb_resyncing(o->db) ? 0 : sdb_applied_seq(o->db);
    return r;
}

void recon_free(recon_t *r)
{
    free(r);
}

void recon_note_gc(recon_t *r, uint64_t gc_seq)
{
    uint64_t cur = atomic_load(&r->primary_gc);
    while (gc_seq > cur &&
           !atomic_compare_exchange_weak(&r->primary_gc, &cur, gc_seq))
        ;
}

uint64_t recon_primary_gc(recon_t *r)
{
    return atomic_load(&r->primary_gc);
}

uint64_t recon_full_resyncs(recon_t *r)
{
    return atomic_load(&r->full_resyncs);
}

uint64_t recon_catchups(recon_t *r)
{
    return atomic_load(&r->catchups);
}

static int recon_cancelled(recon_t *r)
{
    return r->o.cancelled && r->o.cancelled(r->o.arg);
}

static uint64_t recon_hdr_u64(const httpc_resp *resp, const char *name,
                              int *found)
{
    uint64_t v = 0;
    int ok = kvhdr_u64(resp, name, &v) == 0;

    if (found)
        *found = ok;
    return ok ? v : 0;
}

/* The "error" and a numeric field of a JSON error body. */
static int recon_err_is(const httpc_resp *resp, const char *code,
                        const char *field, uint64_t *val)
{
    cJSON *j = json_whole_parse(resp->body, resp->len, NULL);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    int is = cJSON_IsString(e) && strcmp(e->valuestring, code) == 0;
    if (is && field && val) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, field);
        *val = cJSON_IsNumber(v) && v->valuedouble > 0
                   ? (uint64_t)v->valuedouble
                   : 0;
    }
    cJSON_Delete(j);
    return is;
}

/* GET one page of the primary's changes. */
static int recon_get(recon_t *r, const char *primary, uint64_t epoch,
                     uint64_t since, const char *snap, httpc_resp *resp)
{
    char url[600], h_epoch[KVHDR_EPOCH_MAX];
    const char *hdrs[3];
    int nh = 0;
    httpc_req req;

    snprintf(url, sizeof url,
             "%s/internal/changes?since=%" PRIu64 "&limit=%zu%s%s", primary,
             since, r->o.page_max, snap && snap[0] ? "&snapshot=" : "",
             snap && snap[0] ? snap : "");
    kvhdr_epoch(h_epoch, sizeof h_epoch, epoch);
    hdrs[nh++] = h_epoch;
    if (r->auth[0])
        hdrs[nh++] = r->auth;
    hdrs[nh] = NULL;
    memset(&req, 0, sizeof req);
    req.url = url;
    req.headers = hdrs;
    req.timeout_ms = r->o.timeout_ms;
    if (httpc_do(&req, resp) != 0) {
        if (r->streak++ % 20 == 0)
            log_warn("reconcile: GET %s: %s (%u failures in a row)", url,
                     resp->error, r->streak);
        httpc_resp_free(resp);
        return -1;
    }
    if (r->streak)
        log_info("reconcile: %s answers again after %u failures", primary,
                 r->streak);
    r->streak = 0;
    return 0;
}

/* Classifies a non-200 answer of the primary. */
static int recon_refused(recon_t *r, const char *primary, httpc_resp *resp,
                         uint64_t *fork)
{
    uint64_t v = 0;
    (void)r;
    if (resp->status == 409 && recon_err_is(resp, "stale_epoch", "epoch", &v)) {
        log_info("reconcile: %s is at epoch %" PRIu64 ", newer than ours",
                 primary, v);
        return RECON_STALE;
    }
    if (resp->status == 409 && recon_err_is(resp, "seq_ahead", "seq", &v)) {
        if (fork)
            *fork = v;
        return RECON_DIVERGED;
    }
    log_warn("reconcile: %s answered %ld: %.200s", primary, resp->status,
             resp->body);
    return RECON_FAILED;
}

static size_t recon_count_ops(const httpc_resp *resp, wire_op **ops)
{
    size_t off = 0, n = 0;
    wire_op op;

    while (wire_next_op(resp->body, resp->len, &off, &op) == 1)
        n++;
    *ops = n ? malloc(n * sizeof **ops) : NULL;
    if (n && *ops == NULL)
        return (size_t)-1;
    off = 0;
    for (size_t i = 0; i < n; i++)
        wire_next_op(resp->body, resp->len, &off, &(*ops)[i]);
    return n;
}

/* The gate of recon_opts.may_apply. */
static int recon_may_apply(recon_t *r)
{
    if (r->o.may_apply == NULL || r->o.may_apply(r->o.may_apply_arg))
        return 1;
    log_debug("reconcile: not applying: the store's lease has expired");
    return 0;
}

/* Applies one page; 0, or a RECON_* code. */
static int recon_apply(recon_t *r, const httpc_resp *resp, uint64_t epoch,
                       uint64_t since, uint64_t upto, int resync, size_t *nops)
{
    wire_op *ops = NULL;
    wire_result *res = NULL;
    size_t n = recon_count_ops(resp, &ops);
    sdb_repl_args a = {.epoch = epoch, .since = since, .upto = upto,
                       .resync = resync};
    enum sdb_repl_rc rc;

    *nops = 0;
    if (n == (size_t)-1)
        return RECON_FAILED;
    if (n && (res = malloc(n * sizeof *res)) == NULL) {
        free(ops);
        return RECON_FAILED;
    }
    if (!recon_may_apply(r)) {
        free(ops);
        free(res);
        return RECON_FAILED;
    }
    rc = sdb_replicate(r->o.db, ops, n, &a, res, NULL);
    free(ops);
    free(res);
    switch (rc) {
    case SDB_REPL_OK:
        *nops = n;
        return 0;
    case SDB_REPL_EPOCH:
        return RECON_CANCELLED;
    case SDB_REPL_RESYNC:
    case SDB_REPL_GAP:
        /* Only this thread wipes, so neither can happen: retry later. */
        log_warn("reconcile: page from %" PRIu64 " refused (%d)", since, rc);
        return RECON_FAILED;
    default:
        return RECON_FAILED;
    }
}

int recon_full_resync(recon_t *r, const char *primary, uint64_t epoch)
{
    uint64_t t0 = clock_mono_ms(), total = 0;
    int restarts = 0;

restart:
    if (!recon_may_apply(r))
        return RECON_FAILED;
    log_info("reconcile: full resync from %s at epoch %" PRIu64
             ": wiping the local copy", primary, epoch);
    if (sdb_wipe(r->o.db, epoch) != 0)
        return RECON_FAILED;
    {
        uint64_t since = 0;
        char snap[64] = "";
        int more = 1;
        total = 0;
        while (more) {
            httpc_resp resp;
            uint64_t next;
            size_t n;
            int rc, found;

            if (recon_cancelled(r))
                return RECON_CANCELLED;
            if (recon_get(r, primary, epoch, since, snap, &resp) != 0)
                goto failed;
            if (resp.status == 410 && ++restarts <= RECON_RESYNC_RESTARTS) {
                log_warn("reconcile: %s: the resync snapshot expired; "
                         "starting over", primary);
                httpc_resp_free(&resp);
                goto restart;
            }
            if (resp.status != 200) {
                rc = recon_refused(r, primary, &resp, NULL);
                httpc_resp_free(&resp);
                if (rc == RECON_STALE)
                    return rc;
                goto failed;
            }
            if (recon_hdr_u64(&resp, KVHDR_EPOCH, NULL) > epoch) {
                httpc_resp_free(&resp);
                return RECON_STALE;
            }
            next = recon_hdr_u64(&resp, "X-KV-Last-Seq", &found);
            more = recon_hdr_u64(&resp, "X-KV-More", NULL) != 0;
            recon_note_gc(r, recon_hdr_u64(&resp, "X-KV-Gc-Seq", NULL));
            {
                char buf[64];
                const char *s = httpc_resp_header(&resp, "X-KV-Snapshot", buf,
                                                  sizeof buf);
                if (s)
                    snprintf(snap, sizeof snap, "%s", s);
            }
            if (!found || next < since) {
                log_warn("reconcile: %s: page without a usable X-KV-Last-Seq",
                         primary);
                httpc_resp_free(&resp);
                goto failed;
            }
            rc = recon_apply(r, &resp, epoch, since, next, 1, &n);
            httpc_resp_free(&resp);
            if (rc != 0) {
                if (rc == RECON_CANCELLED)
                    return rc;
                goto failed;
            }
            total += n;
            atomic_fetch_add(&r->resync_ops, n);
            since = next;
        }
        if (sdb_resync_done(r->o.db, since) != 0)
            goto failed;
        atomic_fetch_add(&r->full_resyncs, 1);
        r->empty_resynced = since == 0;
        r->empty_resync_epoch = epoch;
        log_info("reconcile: full resync from %s done: %" PRIu64
                 " records up to seq %" PRIu64 " in %" PRIu64 " ms",
                 primary, total, since, clock_mono_ms() - t0);
        return RECON_OK;
    }
failed:
    atomic_fetch_add(&r->failures, 1);
    log_warn("reconcile: full resync from %s failed after %" PRIu64
             " records; it starts over next round", primary, total);
    return RECON_FAILED;
}

int recon_round(recon_t *r, const char *primary, uint64_t epoch,
                uint64_t *fork)
{
    uint64_t since, start, got = 0;
    int more = 1;

    atomic_fetch_add(&r->rounds, 1);
    if (sdb_resyncing(r->o.db) ||
        (sdb_applied_seq(r->o.db) == 0 &&
         !(r->empty_resynced && r->empty_resync_epoch == epoch)))
        return recon_full_resync(r, primary, epoch);
    since = start = sdb_applied_seq(r->o.db);
    while (more) {
        httpc_resp resp;
        uint64_t next, gc;
        size_t n;
        int rc, found;

        if (recon_cancelled(r))
            return RECON_CANCELLED;
        if (recon_get(r, primary, epoch, since, NULL, &resp) != 0) {
            atomic_fetch_add(&r->failures, 1);
            return RECON_FAILED;
        }
        if (resp.status != 200) {
            rc = recon_refused(r, primary, &resp, fork);
            httpc_resp_free(&resp);
            if (rc == RECON_FAILED)
                atomic_fetch_add(&r->failures, 1);
            return rc;
        }
        if (recon_hdr_u64(&resp, KVHDR_EPOCH, NULL) > epoch) {
            httpc_resp_free(&resp);
            return RECON_STALE;
        }
        next = recon_hdr_u64(&resp, "X-KV-Last-Seq", &found);
        more = recon_hdr_u64(&resp, "X-KV-More", NULL) != 0;
        gc = recon_hdr_u64(&resp, "X-KV-Gc-Seq", NULL);
        recon_note_gc(r, gc);
        if (since < gc) {
            /* Tombstones between our position and gc are gone: deletes we
             * never saw would be lost. */
            log_warn("reconcile: position %" PRIu64 " is below %s's "
                     "tombstone horizon %" PRIu64 ": full resync",
                     since, primary, gc);
            httpc_resp_free(&resp);
            return recon_full_resync(r, primary, epoch);
        }
        if (!found || next < since) {
            httpc_resp_free(&resp);
            atomic_fetch_add(&r->failures, 1);
            return RECON_FAILED;
        }
        rc = recon_apply(r, &resp, epoch, since, next, 0, &n);
        httpc_resp_free(&resp);
        if (rc != 0) {
            if (rc == RECON_FAILED)
                atomic_fetch_add(&r->failures, 1);
            return rc;
        }
        got += n;
        since = next;
    }
    atomic_fetch_add(&r->catchups, 1);
    atomic_fetch_add(&r->catchup_ops, got);
    if (got)
        log_debug("reconcile: caught up %" PRIu64 " records from %s (seq %"
                  PRIu64 " -> %" PRIu64 ")", got, primary, start, since);
    return RECON_OK;
}

/* POST the n ops in buf to base's /internal/repair at epoch; res gets
 * their results. 0 when every op was answered, else -1 (logged). */
static int recon_post_repair(recon_t *r, const char *base, uint64_t epoch,
                             const wire_buf *buf, size_t n, wire_result *res)
{
    char url[300], h_epoch[KVHDR_EPOCH_MAX];
    const char *hdrs[4];
    int nh = 0;
    size_t off = 0, i = 0;
    httpc_req req = {0};
    httpc_resp resp;

    snprintf(url, sizeof url, "%s/internal/repair", base);
    hdrs[nh++] = "Content-Type: application/octet-stream";
    hdrs[nh++] = kvhdr_epoch(h_epoch, sizeof h_epoch, epoch);
    if (r->auth[0])
        hdrs[nh++] = r->auth;
    hdrs[nh] = NULL;
    req.method = "POST";
    req.url = url;
    req.body = buf->data;
    req.body_len = buf->len;
    req.headers = hdrs;
    req.timeout_ms = r->o.timeout_ms;
    if (httpc_do(&req, &resp) != 0) {
        log_warn("rejoin: POST %s: %s", url, resp.error);
        httpc_resp_free(&resp);
        return -1;
    }
    if (resp.status != 200 || resp.len != n * WIRE_RESULT_LEN) {
        log_warn("rejoin: POST %s answered %ld: %.200s", url, resp.status,
                 resp.body);
        httpc_resp_free(&resp);
        return -1;
    }
    while (i < n && wire_next_result(resp.body, resp.len, &off, &res[i]) == 1)
        i++;
    httpc_resp_free(&resp);
    return i == n ? 0 : -1;
}

/* What one repair result asks of the handoff. */
enum recon_took { RECON_TOOK = 0, RECON_MOVED, RECON_LATER };

static enum recon_took recon_took(const wire_result *res, const char *where)
{
    switch (res->status) {
    case 200: case 208:
        return RECON_TOOK;
    case 421:
        return RECON_MOVED;
    case 400: case 413: case 414: /* can never be applied: say so, go on */
        log_error("rejoin: %s refused a record for good (%u)", where,
                  (unsigned)res->status);
        return RECON_TOOK;
    default: /* 503 migrating (its shard fences the key), 5xx */
        return RECON_LATER;
    }
}

/* The ops of page (n of them, res their results at our shard's primary)
 * that another shard owns now (421, res.number = its id) go to that
 * shard's primary under t, one batch per shard: a migration moved them
 * while we were away. 0 when each was taken, else -1 (the whole handoff is
 * tried again: repairs are idempotent by version). */
static int recon_forward_moved(recon_t *r, const topo_t *t,
                               const wire_buf *page, size_t n,
                               const wire_result *res)
{
    wire_buf out[TOPO_MAX_SHARD_IDS] = {{0}};
    size_t count[TOPO_MAX_SHARD_IDS] = {0}, off = 0;
    wire_result *fres = malloc(n * sizeof *fres);
    wire_op op;
    int rc = fres ? 0 : -1;

    for (size_t i = 0; rc == 0 && i < n &&
                       wire_next_op(page->data, page->len, &off, &op) == 1;
         i++) {
        uint32_t id = (uint32_t)res[i].number;
        if (res[i].status != 421)
            continue;
        op.seq = 0;
        if (id >= TOPO_MAX_SHARD_IDS || wire_put_op(&out[id], &op) != 0)
            rc = -1;
        else
            count[id]++;
    }
    for (uint32_t id = 0; rc == 0 && id < TOPO_MAX_SHARD_IDS; id++) {
        const topo_shard *sh;

        if (count[id] == 0)
            continue;
        sh = t ? topo_shard_by_id(t, id) : NULL;
        if (sh == NULL || sh->primary == NULL) {
            log_warn("rejoin: %zu records belong to shard %u now, which has "
                     "no primary here yet", count[id], (unsigned)id);
            rc = -1;
        } else if (recon_post_repair(r, sh->primary, sh->epoch, &out[id],
                                     count[id], fres) != 0) {
            rc = -1;
        } else {
            for (size_t k = 0; k < count[id] && rc == 0; k++)
                if (recon_took(&fres[k], sh->primary) != RECON_TOOK)
                    rc = -1;
            if (rc == 0)
                log_info("rejoin: %zu records went to shard %u (%s), which "
                         "owns them now", count[id], (unsigned)id,
                         sh->primary);
        }
    }
    for (size_t id = 0; id < TOPO_MAX_SHARD_IDS; id++)
        wire_buf_free(&out[id]);
    free(fres);
    return rc;
}

int recon_handoff(recon_t *r, const char *primary, uint64_t epoch,
                  uint64_t from, const topo_t *t, uint64_t *sent)
{
    wire_buf buf = {0};
    wire_result *res = NULL;
    size_t cap = 0;
    uint64_t since = from, total = 0;
    int more = 1;

    if (sent)
        *sent = 0;
    while (more) {
        uint64_t next;
        size_t n = 0, off = 0, moved = 0;
        wire_op op;

        if (recon_cancelled(r)) {
            wire_buf_free(&buf);
            free(res);
            return RECON_CANCELLED;
        }
        wire_buf_reset(&buf);
        if (sdb_changes_since(r->o.db, since, r->o.page_max,
                              RECON_HANDOFF_BYTES, &buf, &next, &more) != 0)
            goto failed;
        while (wire_next_op(buf.data, buf.len, &off, &op) == 1)
            n++;
        if (n > cap) {
            wire_result *nr = realloc(res, n * sizeof *res);
            if (nr == NULL)
                goto failed;
            res = nr;
            cap = n;
        }
        if (n && recon_post_repair(r, primary, epoch, &buf, n, res) != 0)
            goto failed;
        for (size_t i = 0; i < n; i++) {
            enum recon_took k = recon_took(&res[i], primary);
            if (k == RECON_LATER) {
                log_warn("rejoin: %s cannot take a record yet (%u); the "
                         "handoff is tried again", primary,
                         (unsigned)res[i].status);
                goto failed;
            }
            moved += k == RECON_MOVED;
        }
        if (moved && recon_forward_moved(r, t, &buf, n, res) != 0)
            goto failed;
        total += n;
        since = next;
    }
    wire_buf_free(&buf);
    free(res);
    atomic_fetch_add(&r->handoffs, 1);
    atomic_fetch_add(&r->handoff_ops, total);
    if (sent)
        *sent = total;
    return RECON_OK;
failed:
    wire_buf_free(&buf);
    free(res);
    atomic_fetch_add(&r->failures, 1);
    return RECON_FAILED;
}

void recon_stats_json(recon_t *r, cJSON *obj)
{
    char num[24];
#define RECON_ADD(name, v)                                                     \
    do {                                                                       \
        snprintf(num, sizeof num, "%" PRIu64, (uint64_t)(v));                  \
        cJSON_AddRawToObject(obj, name, num);                                  \
    } while (0)
    RECON_ADD("full_resyncs", atomic_load(&r->full_resyncs));
    RECON_ADD("catchups", atomic_load(&r->catchups));
    RECON_ADD("catchup_ops", atomic_load(&r->catchup_ops));
    RECON_ADD("resync_ops", atomic_load(&r->resync_ops));
    RECON_ADD("handoffs", atomic_load(&r->handoffs));
    RECON_ADD("handoff_ops", atomic_load(&r->handoff_ops));
    RECON_ADD("rounds", atomic_load(&r->rounds));
    RECON_ADD("failures", atomic_load(&r->failures));
    RECON_ADD("resumed_from", r->resumed_from);
    RECON_ADD("primary_gc_seq", atomic_load(&r->primary_gc));
#undef RECON_ADD
}
