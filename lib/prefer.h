/* prefer: the wait a client asks for in an HTTP Prefer header (RFC 7240),
 * "Prefer: wait=N" with N seconds, among other comma- or semicolon-separated
 * preferences ("respond-async, wait=5"). N is digits with an optional
 * decimal fraction ("10", "0.5"; precision is milliseconds, finer digits are
 * dropped). A wait longer than the caller's maximum, however long (even past
 * 2^64), is that maximum, like ?sync=1; anything else after "wait=" (a sign,
 * an exponent, inf, nan, hex, a quoted or empty value) is refused so the
 * caller answers 400 instead of guessing. Pure: no I/O, no allocation. */
#ifndef KV_PREFER_H
#define KV_PREFER_H

#include <stdint.h>

/* prefer may be NULL (no header). On 0 *ms is the wait in milliseconds,
 * at most max_ms (0: the header asks no wait); -1 when the wait value is
 * malformed (*ms untouched). */
int prefer_wait_ms(const char *prefer, uint64_t max_ms, uint64_t *ms);

#endif
