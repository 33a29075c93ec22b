/* kvhttp: request helpers every server shares: a key from a path segment
 * (non-empty, no NUL, at most limits.max_key_bytes: 414 above), the
 * standard JSON errors, the bearer token check of /internal/ routes, the
 * wait a client asks for, the {"status":"ok"} answer and /metrics.
 * Functions that return -1 have already answered. */
#ifndef KV_KVHTTP_H
#define KV_KVHTTP_H

#include "config.h"
#include "httpd.h"

#include <stddef.h>
#include <stdint.h>

/* Decode path segment seg into a new key (caller frees): 400 on a bad escape,
 * a NUL or an empty key, 414 over max_key. 0 or -1 (answered). */
int kvhttp_key(httpd_req *r, unsigned seg, size_t max_key, char **key,
               size_t *len);
void kvhttp_not_found(httpd_req *r);
void kvhttp_bad_method(httpd_req *r, const char *allow);
/* 0 when the request carries token (compared in constant time), or when
 * token is empty (cluster.auth off); else 401 and -1. */
int kvhttp_auth(httpd_req *r, const char *token);
/* 1 when the request comes from this machine: a loopback peer, and no
 * X-Real-IP (a proxy's word for a client elsewhere) other than loopback.
 * A client elsewhere cannot pass for local by sending the header: its peer
 * address is not loopback. */
int kvhttp_is_local(httpd_req *r);
/* An admit hook's rule (httpd_opts.admit) for servers whose /internal/
 * routes need the token: without it, 401 from the request's head, its body
 * never read. Other paths go on. */
void kvhttp_admit_internal(httpd_req *r, const char *token);
/* The connection limits of cfg (limits.max_connections, ..._per_ip,
 * limits.header_timeout_ms) into o. */
void kvhttp_limits(httpd_opts *o, const kv_config *cfg);
/* How long the client wants to wait for its write, into *ms: ?sync=1
 * (max_ms) or Prefer: wait=N seconds (lib/prefer.h: capped at max_ms),
 * 0 = no wait. 0, or -1 after a 400 bad_request for a malformed wait. */
int kvhttp_wait_ms(httpd_req *r, uint64_t max_ms, uint64_t *ms);
/* The write's condition from If-Match / If-None-Match (lib/precond.h) into
 * *flags and *version. 0, or -1 after a 400 bad_precondition. */
int kvhttp_condition(httpd_req *r, uint8_t *flags, uint64_t *version);
/* ?ttl=SECONDS (1 to KVHTTP_TTL_MAX_S) into *seconds (0: no ttl). 0, or
 * -1 after a 400 bad_ttl. */
#define KVHTTP_TTL_MAX_S (10ULL * 366 * 24 * 3600) /* ten years */
int kvhttp_ttl(httpd_req *r, uint64_t *seconds);
/* 200 {"status":"ok"}; headers may be NULL. */
void kvhttp_ok(httpd_req *r, const char *const *headers);
/* 200 with the Prometheus text of lib/metrics. */
void kvhttp_metrics(httpd_req *r);

#endif
