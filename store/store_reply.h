/* store_reply: what the kv-store's route modules share to read a wire body
 * and to answer: the JSON error shapes of docs/PROTOCOL.md "Store" (errors
 * with status >= 500 are counted in kv_store_errors_total), u64 fields as
 * raw JSON numbers, and the whole-transaction failure answer.
 *
 * Ownership: store_reply_ops gives a malloc'd op array the caller frees;
 * the ops point into the request body, valid while the request is. */
#ifndef KV_STORE_REPLY_H
#define KV_STORE_REPLY_H

#include "httpd.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_REPLY_JSON "application/json"
#define STORE_REPLY_BIN "application/octet-stream"

/* httpd_error, counted when status >= 500. */
void store_reply_fail(httpd_req *r, unsigned status, const char *code,
                      const char *msg);
/* {"error":code,"message":msg,<field>:<v>} (field NULL: none) with the
 * optional headers hdrs; store_reply_error_u64 counts it as an error when
 * status >= 500, store_reply_json_error never does. */
void store_reply_json_error(httpd_req *r, unsigned status,
                            const char *const *hdrs, const char *code,
                            const char *msg, const char *field, uint64_t v);
void store_reply_error_u64(httpd_req *r, unsigned status,
                           const char *const *hdrs, const char *code,
                           const char *msg, const char *field, uint64_t v);
/* Adds name: v as raw JSON text (cJSON numbers would round past 2^53). */
void store_reply_add_u64(cJSON *j, const char *name, uint64_t v);
void store_reply_add_i64(cJSON *j, const char *name, int64_t v);
/* GET or HEAD. */
int store_reply_is_get(const httpd_req *r);
/* Decodes the wire body into *ops (NULL when empty). 0 = go on, -1 =
 * answered (400 malformed, 500 out of memory). */
int store_reply_ops(httpd_req *r, wire_op **ops, size_t *n);
/* Answers a failed transaction (nothing applied): 507 or 500. */
void store_reply_txn_failed(httpd_req *r, const wire_result *res);
/* One wire_result per op into out; counts applied and no-ops. 0 or -1. */
int store_reply_results(const wire_result *res, size_t n, wire_buf *out);

#endif
