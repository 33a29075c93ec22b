#include "outcome.h"

enum outcome outcome_of(const wire_result *r, uint64_t op_version)
{
    switch (r->status) {
    case 200:
        return OUTCOME_APPLIED;
    case 208:
        return r->version > op_version ? OUTCOME_SUPERSEDED : OUTCOME_APPLIED;
    case 412:
        return OUTCOME_PRECONDITION;
    case 421:
        return OUTCOME_MOVED;
    case 503:
        return OUTCOME_MIGRATING;
    default:
        return OUTCOME_FAILED;
    }
}
