/* store_http: the HTTP routes of a kv-store (docs/PROTOCOL.md, "Store").
 *
 *   GET|PUT|DELETE /internal/kv/{key}[?version=V]
 *   POST /internal/kv/{key}/incr?by=N[&version=V]
 *   POST /internal/batch            wire ops in, wire results out
 *   GET  /internal/changes?since=S&limit=N
 *   GET  /health, /stats (JSON), /metrics (Prometheus)
 *
 * Every handler answers synchronously on the httpd thread that called it:
 * LMDB reads never block and writes only wait for the single write lock.
 * When a token is set, /internal/ needs "Authorization: Bearer <token>".
 * A write carrying "X-KV-Epoch: E" with E below the store's epoch is fenced
 * with 409 stale_epoch (a deposed primary's traffic).
 *
 * Answers beyond docs/PROTOCOL.md:
 *  - PUT/DELETE: "seq" is the seq the write got, 0 when it was not newer.
 *  - batch: 200 + one wire_result per op, with X-KV-Last-Seq (this store's
 *    last seq), X-KV-Applied-Seq (highest op.seq applied: a secondary's
 *    position in its primary's stream; senders other than a primary must
 *    send seq 0) and X-KV-Epoch. When the transaction itself fails nothing
 *    is applied and the answer is 507 insufficient_storage or 500 JSON, so
 *    the sender retries the whole batch. Request bodies are capped at
 *    store_http_max_body (64 MiB by default): senders must cap batch bytes.
 *  - changes: limit defaults to 1000 (at most 100000) and an answer to about
 *    8 MiB; X-KV-Last-Seq is where to resume (pass it as the next since),
 *    X-KV-More is 1 when the answer was cut short, X-KV-Epoch the epoch.
 *
 * Ownership: store_http_new copies what it needs from opts except db, which
 * is borrowed and must outlive the handle; store_http_free frees the handle
 * (stop the httpd server first). */
#ifndef KV_STORE_HTTP_H
#define KV_STORE_HTTP_H

#include "db.h"
#include "httpd.h"

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
} store_http_opts;

store_http *store_http_new(const store_http_opts *o);
void store_http_free(store_http *h);
/* The httpd_handler: httpd_start(&opts, store_http_handle, h). */
void store_http_handle(httpd_req *r, void *app);
/* The httpd max_body a store needs: batches hold many values. */
size_t store_http_max_body(size_t max_value_bytes);

#endif
