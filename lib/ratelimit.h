/* ratelimit: per-client request limits.
 *  RL_SLIDING: sliding-window counter (the production limiter): the count of
 *    the current fixed window plus the previous window's count weighted by
 *    how much of it still overlaps the sliding window. O(1) per client.
 *  RL_FIXED: a fixed window per client starting at that client's first
 *    request (the CloudCart lab gateway's limiter).
 * Clients live in a striped hash table; entries idle for two windows are
 * recycled, and at most max(max_clients, 64) are tracked (past that, new
 * clients share an overflow bucket's count rather than going unlimited).
 * Ownership: rl_new allocates, rl_free frees; thread-safe. */
#ifndef KV_RATELIMIT_H
#define KV_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef enum rl_kind { RL_SLIDING, RL_FIXED } rl_kind;
typedef struct rl rl_t;

typedef struct rl_verdict {
    int allowed;
    uint32_t limit;
    uint32_t remaining;       /* after this request */
    uint64_t reset_ms;        /* until the current window ends */
    uint64_t retry_after_ms;  /* when denied: until a request would pass */
} rl_verdict;

typedef struct rl_stats {
    uint64_t allowed, denied;
    size_t clients;
} rl_stats;

rl_t *rl_new(rl_kind kind, uint32_t limit, uint64_t window_ms,
             size_t max_clients);
void rl_free(rl_t *rl);
/* Count one request of client at now_ms (monotonic milliseconds). */
rl_verdict rl_check(rl_t *rl, const char *client, uint64_t now_ms);
void rl_get_stats(rl_t *rl, rl_stats *out);
/* Retry-After seconds for a verdict (at least 1). */
unsigned rl_retry_after_s(const rl_verdict *v);
uint64_t rl_now_ms(void);  /* CLOCK_MONOTONIC in ms */

#endif
