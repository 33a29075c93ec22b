/* resolve: host names to addresses without waiting on DNS.
 *
 * Why: in a compose deployment our servers reach each other by service
 * name, and a stopped container takes its name with it; looking up a name
 * that is gone can take seconds (Docker forwards it upstream: 10 s on this
 * machine). A server's event loop must never wait that long, nor a queue
 * dispatcher holding writes for a shard's new primary. So lookups answer
 * from a process-wide cache, and the DNS work happens on short-lived
 * threads, one per name being looked up (so a name that hangs holds up no
 * other):
 *  - a name in use is looked up again when its answer is older than
 *    RESOLVE_TTL_MS (a recreated container may come back at another
 *    address), while callers go on with the answer it has;
 *  - a lookup that fails keeps the address the name had;
 *  - only a name never resolved yet makes its caller wait.
 * IP literals never reach the cache.
 *
 * Threads: any. Ownership: out and err are the caller's; cache entries live
 * as long as the process. */
#ifndef KV_RESOLVE_H
#define KV_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define RESOLVE_TTL_MS 1000

enum { RESOLVE_OK = 0, RESOLVE_PENDING = 1, RESOLVE_FAILED = -1 };

typedef void (*resolve_notify_fn)(void *arg);

/* The address of name:port into *out, without blocking. RESOLVE_PENDING:
 * the name has no answer yet; notify(arg) is called once it has one (from a
 * lookup thread, under the cache's lock: it must be quick and call nothing
 * here), then call again. RESOLVE_FAILED: err says why. */
int resolve_lookup(const char *name, uint16_t port, struct sockaddr_storage *out,
                   socklen_t *outlen, resolve_notify_fn notify, void *arg,
                   char *err, size_t errlen);
/* Forget a notify still pending for arg (before arg goes away). */
void resolve_cancel(resolve_notify_fn notify, void *arg);
/* For threads that may wait: resolve_lookup, waiting up to timeout_ms for
 * a first answer. RESOLVE_OK or RESOLVE_FAILED. */
int resolve_wait(const char *name, uint16_t port, struct sockaddr_storage *out,
                 socklen_t *outlen, long timeout_ms, char *err, size_t errlen);
/* An IPv4 or IPv6 literal? Then *out is filled and the cache not used. */
int resolve_literal(const char *name, uint16_t port, struct sockaddr_storage *out,
                    socklen_t *outlen);
/* The numeric form of an address (for CURLOPT_RESOLVE). */
void resolve_ntop(const struct sockaddr_storage *a, char *buf, size_t len);

#endif
