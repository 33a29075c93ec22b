/* store_http: the HTTP routes of a kv-store (docs/PROTOCOL.md, "Store" and
 * "Replication, quorums and failover").
 *
 *   GET|PUT|DELETE /internal/kv/{key}[?version=V]
 *   POST /internal/kv/{key}/incr?by=N[&version=V]
 *   POST /internal/batch            wire ops in, wire results out
 *   POST /internal/replicate        a primary's stream (secondaries)
 *   POST /internal/repair           wire ops applied by version, any role
 *   GET  /internal/changes?since=S&limit=N[&snapshot=ID]
 *   POST /internal/topology-changed re-read the topology now
 *   GET  /health, /stats (JSON), /metrics (Prometheus)
 *
 * Reads and W = 0 writes answer on the httpd thread that called them: LMDB
 * reads never block and writes only wait for the single write lock. A write
 * with W > 0 is applied, then suspended until W secondaries acked it
 * (store/wquorum.h) and answered from a replication sender thread (or 504
 * from the quorum timer). When a token is set, /internal/ needs
 * "Authorization: Bearer <token>".
 *
 * Epochs: a write, batch, replicate, repair or changes request carrying
 * "X-KV-Epoch: E" with E below the store's epoch gets 409
 * {"error":"stale_epoch","epoch":<ours>} and changes nothing; E above ours
 * makes the store re-read the topology at once and answers 503
 * epoch_pending (Retry-After: 1) until it has caught up. A secondary
 * refuses client writes (batch, kv writes) with 409
 * {"error":"not_primary","primary":<url or null>}.
 *
 * Answers beyond docs/PROTOCOL.md:
 *  - PUT/DELETE: "seq" is the seq the write got, 0 when it was not newer.
 *  - batch: 200 + one wire_result per op, with X-KV-Last-Seq (this store's
 *    last seq), X-KV-Applied-Seq and X-KV-Epoch. When the transaction
 *    itself fails nothing is applied and the answer is 507
 *    insufficient_storage or 500 JSON, so the sender retries the whole
 *    batch. Request bodies are capped at store_http_max_body (64 MiB by
 *    default): senders must cap batch bytes.
 *  - changes: limit defaults to 1000 (at most 100000) and an answer to about
 *    8 MiB; X-KV-Last-Seq is where to resume (pass it as the next since),
 *    X-KV-More is 1 when the answer was cut short, X-KV-Epoch the epoch,
 *    X-KV-Gc-Seq the tombstone horizon. since=0 cut short opens a read
 *    snapshot named by X-KV-Snapshot: pass it back as &snapshot= with the
 *    next pages (410 snapshot_gone once it expired, 30 s idle). since above
 *    the store's last seq is 409 {"error":"seq_ahead","seq":<last seq>}.
 *  - a resyncing secondary answers GET /internal/kv with 503 resyncing.
 *  - ownership (store/store_owner.h, docs/PROTOCOL.md "Store details"): a
 *    key another shard owns is 421 moved (X-KV-Shard), a client write to a
 *    key a migration is moving 503 migrating (Retry-After: 1); in batches
 *    and repairs per op (wire_result.number = the owner for 421). Repair
 *    answers carry X-KV-Last-Seq.
 *
 * store_http.c holds the setup and the table of routes; each route is a
 * module of its own: store_kv, store_batch, store_repl_recv, store_repair,
 * store_changes (with store_snapcache), store_stats, with the refusals in
 * store_fence and the shared answers in store_reply.
 *
 * Ownership: store_http_new copies what it needs from opts except db, role,
 * mig and wqm, which are borrowed and must outlive the handle; store_http_free
 * frees the handle (stop the httpd server first). */
#ifndef KV_STORE_HTTP_H
#define KV_STORE_HTTP_H

#include "sdb.h"
#include "httpd.h"
#include "role.h"
#include "store_migrate.h"
#include "wquorum.h"

#include <stddef.h>
#include <stdint.h>

typedef struct store_http store_http;

typedef struct store_http_opts {
    sdb *db;
    unsigned shard;
    unsigned replica;
    const char *token;       /* NULL or "" = no authentication */
    size_t max_key_bytes;    /* 414 above */
    size_t max_value_bytes;  /* 413 above */
    role_t *role;            /* the store's role (required) */
    store_migrate *mig;      /* the migration's write fence and report
                                (NULL: no fence, id and phase only) */
    wquorum *wqm;             /* NULL when write_quorum is 0 */
    unsigned write_quorum;   /* W */
    /* Optional gate (the lab's lease, store/heartbeat.h): while it returns
     * 0, POST /internal/replicate (heartbeats included) and
     * /internal/repair answer 503 {"error":"lease_expired"} and apply
     * nothing. */
    int (*may_apply)(void *arg);
    void *may_apply_arg;
} store_http_opts;

store_http *store_http_new(const store_http_opts *o);
void store_http_free(store_http *h);
/* The httpd_handler: httpd_start(&opts, store_http_handle, h), with
 * opts.admit = store_http_admit (the token of /internal/ routes). */
void store_http_handle(httpd_req *r, void *app);
void store_http_admit(httpd_req *r, void *app);
/* The httpd max_body a store needs: batches hold many values. */
size_t store_http_max_body(size_t max_value_bytes);

#endif
