/* token: the cluster token, secure by default. Every /internal/ route of
 * every server and the controller's mutating routes refuse a request
 * without it (lib/kvhttp.h kvhttp_auth).
 *
 * Where it comes from, first found wins: cluster.token (the config file,
 * KV_TOKEN, --set), else the file cluster.token_file (KV_TOKEN_FILE;
 * default <cluster.data_dir>/run/token). The controller creates that file
 * when it is missing (token_resolve with create): 32 random bytes as 64 hex
 * digits, mode 0600, kept across restarts; every other process only reads
 * it, and refuses to start without a token. The token never appears on a
 * command line or in a log line. cluster.auth "off" (allowed with a
 * loopback cluster.bind only, as the CloudCart lab runs) leaves the token
 * empty: then no route asks for one.
 *
 * Plain functions over kv_config; no state. */
#ifndef KV_TOKEN_H
#define KV_TOKEN_H

#include "config.h"

#include <stddef.h>

/* Fill c->token as above. create: make the file when there is none. 0, or
 * -1 with err (no token, an unreadable or malformed file). */
int token_resolve(kv_config *c, int create, char *err, size_t errlen);
/* The file's path for c into buf. 0, or -1 when it does not fit. */
int token_path(const kv_config *c, char *buf, size_t len);
/* 1 when a equals b; the time taken depends on their lengths only, not on
 * where they first differ. */
int token_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
