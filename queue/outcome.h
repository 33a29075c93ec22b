/* outcome: what a shard's result for one op of a batch means for the jobs
 * the op carries (docs/PROTOCOL.md "Queue"):
 *   200                  applied
 *   208, same version    applied: the shard had it already (a resend, or
 *                        the journal's replay after a restart)
 *   208, newer version   superseded: the shard holds a newer version of the
 *                        key, so the write changed nothing (last writer
 *                        wins); the job ends, reporting the winner
 *   412                  precondition: the write's condition did not hold
 *                        (the version it was judged on is the result's)
 *   421                  moved: a migration gave the key another shard
 *   503                  migrating: the key is frozen for a moment
 *   anything else        failed */
#ifndef KV_QUEUE_OUTCOME_H
#define KV_QUEUE_OUTCOME_H

#include "wire.h"

#include <stdint.h>

enum outcome {
    OUTCOME_APPLIED,
    OUTCOME_SUPERSEDED,
    OUTCOME_PRECONDITION,
    OUTCOME_MOVED,
    OUTCOME_MIGRATING,
    OUTCOME_FAILED
};

/* op_version: the version the op was sent with. */
enum outcome outcome_of(const wire_result *r, uint64_t op_version);

#endif
