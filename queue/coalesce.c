#include "coalesce.h"

#include "wire.h"

enum coalesce_how coalesce_rule(uint8_t pending_op, uint8_t new_op)
{
    if (new_op == WIRE_PUT || new_op == WIRE_DEL)
        return COALESCE_REPLACE;
    if (new_op == WIRE_INCR && pending_op == WIRE_INCR)
        return COALESCE_ADD;
    return COALESCE_NONE;
}
