/* kvhdr: the headers our servers send each other, built and read in one
 * place (docs/PROTOCOL.md lists what each route sends).
 *  - X-KV-Epoch: the sender's topology epoch for the shard; a store fences
 *    a request from an older epoch with 409 stale_epoch.
 *  - Authorization: Bearer <cluster.token> on /internal/ routes.
 *  - X-KV-Read-Primary: 1 on a GET meant for the shard's primary (the api's
 *    R = 0 read); a store that is not primary now answers 409 not_primary.
 *  - X-KV-Version, X-KV-Seq, X-KV-Applied-Seq...: u64 values a response
 *    carries.
 * Ownership: the builders write into the caller's buffer and return it. */
#ifndef KV_KVHDR_H
#define KV_KVHDR_H

#include "httpc.h"

#include <stddef.h>
#include <stdint.h>

#define KVHDR_EPOCH "X-KV-Epoch"
#define KVHDR_READ_PRIMARY "X-KV-Read-Primary"
/* Room for "X-KV-Epoch: <u64>". */
#define KVHDR_EPOCH_MAX 40
/* Room for "Authorization: Bearer <token>" with a token of cluster.token's
 * size. */
#define KVHDR_AUTH_MAX 300

/* "X-KV-Epoch: E" into buf (KVHDR_EPOCH_MAX bytes). */
const char *kvhdr_epoch(char *buf, size_t len, uint64_t epoch);
/* "Authorization: Bearer T" into buf, or "" when token is NULL or empty. */
const char *kvhdr_auth(char *buf, size_t len, const char *token);
/* A response header holding a u64: 0 and *out, or -1 when it is absent or
 * not a number. */
int kvhdr_u64(const httpc_resp *resp, const char *name, uint64_t *out);

#endif
