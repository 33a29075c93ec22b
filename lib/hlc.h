/* hlc: hybrid logical clock giving 53-bit versions (JSON-safe integers).
 * A version is microseconds since 2020-01-01 UTC; when the wall clock has not
 * moved past the last version (same microsecond, or the clock went backwards)
 * the clock bumps the last version by one instead. Versions it hands out are
 * strictly increasing, also across threads. Lock-free. */
#ifndef KV_HLC_H
#define KV_HLC_H

#include <stdatomic.h>
#include <stdint.h>

#define HLC_EPOCH_UNIX_US 1577836800000000ULL /* 2020-01-01T00:00:00Z */
#define HLC_MAX ((1ULL << 53) - 1)

typedef uint64_t (*hlc_clock_fn)(void); /* microseconds since the Unix epoch */

typedef struct hlc {
    _Atomic uint64_t last;
    hlc_clock_fn clock;
} hlc_t;

/* clock: NULL uses CLOCK_REALTIME; tests pass a fake one. */
void hlc_init(hlc_t *h, hlc_clock_fn clock);
/* A new version, greater than every version returned or observed before. */
uint64_t hlc_next(hlc_t *h);
/* Remember a version seen elsewhere (a stored record, a peer's write), so the
 * next version is newer than it. Versions >= HLC_MAX are ignored. */
void hlc_observe(hlc_t *h, uint64_t version);
uint64_t hlc_wall_us(void);

#endif
