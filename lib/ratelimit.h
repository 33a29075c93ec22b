/* ratelimit: per-client request limits.
 *  RATELIMIT_SLIDING: sliding-window counter (the production limiter): the count of
 *    the current fixed window plus the previous window's count weighted by
 *    how much of it still overlaps the sliding window. O(1) per client.
 *  RATELIMIT_FIXED: a fixed window per client starting at that client's first
 *    request (the CloudCart lab gateway's limiter).
 * Clients live in a striped hash table; entries idle for two windows are
 * recycled, and at most max(max_clients, 64) are tracked (past that, new
 * clients share an overflow bucket's count rather than going unlimited).
 * Ownership: ratelimit_new allocates, ratelimit_free frees; thread-safe. */
#ifndef KV_RATELIMIT_H
#define KV_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef enum ratelimit_kind { RATELIMIT_SLIDING, RATELIMIT_FIXED } ratelimit_kind;
typedef struct ratelimit ratelimit_t;

typedef struct ratelimit_verdict {
    int allowed;
    uint32_t limit;
    uint32_t remaining;       /* after this request */
    uint64_t reset_ms;        /* until the current window ends */
    uint64_t retry_after_ms;  /* when denied: until a request would pass */
} ratelimit_verdict;

typedef struct ratelimit_stats {
    uint64_t allowed, denied;
    size_t clients;
} ratelimit_stats;

ratelimit_t *ratelimit_new(ratelimit_kind kind, uint32_t limit, uint64_t window_ms,
             size_t max_clients);
void ratelimit_free(ratelimit_t *rl);
/* Count one request of client at now_ms (monotonic milliseconds). */
ratelimit_verdict ratelimit_check(ratelimit_t *rl, const char *client, uint64_t now_ms);
void ratelimit_get_stats(ratelimit_t *rl, ratelimit_stats *out);

/* One client's window as of now: requests it counts (sliding: the
 * weighted estimate, rounded up) and when the window ends. */
typedef struct ratelimit_client {
    char client[48];          /* cut to fit */
    uint32_t count;
    uint64_t reset_ms;
} ratelimit_client;
/* Up to max clients with a request in their current or previous window,
 * into out (in no order); returns how many. For a live view: it takes each
 * stripe's lock in turn, like ratelimit_get_stats. */
size_t ratelimit_clients(ratelimit_t *rl, uint64_t now_ms, ratelimit_client *out,
                         size_t max);
/* Retry-After seconds for a verdict (at least 1). */
unsigned ratelimit_retry_after_s(const ratelimit_verdict *v);

#endif
