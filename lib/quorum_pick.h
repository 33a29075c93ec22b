/* quorum_pick: the one rule of a quorum read, "the newest version wins",
 * shared by the api's read path (api/quorum.c) and the lab coordinator's
 * GET /read (lab/lab_coordinator_http.c); docs/PROTOCOL.md "Read quorum R".
 *
 * Pure: given the answers of the replicas asked, it names the winner and
 * says which answers are older than it (the replicas to repair). The caller
 * decides what an answer is (which statuses count, whether a version-less
 * answer may win) and what to do with the result.
 *
 * Ownership: nothing is allocated; the answers stay the caller's. */
#ifndef KV_QUORUM_PICK_H
#define KV_QUORUM_PICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct quorum_pick_answer {
    bool candidate;     /* this replica answered and its answer may win */
    bool value;         /* a value (200), not a tombstone or a miss */
    uint64_t version;   /* X-KV-Version, 0 when absent */
} quorum_pick_answer;

/* The index of the winner: the highest version among the candidates; at
 * equal versions a value beats a non-value, else the first asked wins. -1
 * when there is no candidate. */
int quorum_pick_winner(const quorum_pick_answer *a, size_t n);

/* Whether answer a is older than the winner w (a candidate below a winner
 * that has a version): that replica needs a repair. */
bool quorum_pick_is_stale(const quorum_pick_answer *a,
                          const quorum_pick_answer *w);

#endif
