/* coalesce: the rule for merging a new write of a key into the key's
 * pending write, chosen so that applying the merged write is the same as
 * applying both in order:
 *  - a put or a delete replaces whatever is pending (last writer wins);
 *  - an increment adds to a pending increment;
 *  - an increment after a pending put or delete cannot merge (the stored
 *    value it adds to is not known here): it waits as a write of its own. */
#ifndef KV_QUEUE_COALESCE_H
#define KV_QUEUE_COALESCE_H

#include <stdint.h>

enum coalesce_how { COALESCE_NONE, COALESCE_REPLACE, COALESCE_ADD };

enum coalesce_how coalesce_rule(uint8_t pending_op, uint8_t new_op);

#endif
