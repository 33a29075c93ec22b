/* fuzz_wire: the wire decoders of lib/wire.h on arbitrary bytes, read both
 * as a batch body (wire_next_op, what the store's /internal/batch and the
 * replication stream decode) and as a batch answer (wire_next_result).
 *
 * Asserts, beyond no crash or sanitizer report:
 *  - decoding only moves forward and never past the input; every decoded
 *    op's key and value lie inside the input, its op is PUT/DEL/INCR and an
 *    INCR carries exactly 8 bytes; its flags hold at most one condition
 *    and no unknown bit, and if_match / expires_at are 0 without theirs;
 *  - round trip: the decoded ops re-encoded with wire_put_op give the input
 *    back byte for byte except the reserved fields (which decoding drops),
 *    up to the first malformed op; the same for results with
 *    wire_put_result;
 *  - an INCR's delta survives wire_decode_delta -> wire_encode_delta. */
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of an op header / a result that decoding ignores (reserved). */
static int fuzz_wire_reserved_op(size_t i)
{
    return (i >= 2 && i < 4) || (i >= 12 && i < 16);
}

static int fuzz_wire_reserved_result(size_t i)
{
    return i >= 2 && i < 8;
}

static void fuzz_wire_ops(const uint8_t *data, size_t size)
{
    wire_buf b = {0};
    size_t off = 0, prev = 0;
    wire_op op;
    int rc;

    while ((rc = wire_next_op(data, size, &off, &op)) == 1) {
        const char *lo = (const char *)data, *hi = lo + size;
        if (off <= prev || off > size)
            abort();
        if (op.key < lo || op.key + op.key_len > hi || op.val < op.key ||
            op.val + op.val_len > hi)
            abort();
        if (op.op < WIRE_PUT || op.op > WIRE_INCR ||
            (op.op == WIRE_INCR && op.val_len != 8))
            abort();
        {
            unsigned c = op.flags & WIRE_F_CONDITIONS;
            if ((op.flags & ~(WIRE_F_CONDITIONS | WIRE_F_EXPIRES | WIRE_F_REAPED)) ||
                (c & (c - 1)) ||
                (!(op.flags & WIRE_F_IF_MATCH) && op.if_match) ||
                (!(op.flags & WIRE_F_EXPIRES) && op.expires_at))
                abort();
        }
        if (op.op == WIRE_INCR) {
            char again[8];
            wire_encode_delta(wire_decode_delta(op.val), again);
            if (memcmp(again, op.val, 8) != 0)
                abort();
        }
        if (wire_put_op(&b, &op) != 0)
            abort();
        prev = off;
    }
    if (rc == 0 && off != size && size != 0)
        abort(); /* the end is the end of the input */
    /* b holds the well-formed prefix data[0..prev) re-encoded. */
    if (b.len != prev)
        abort();
    for (size_t i = 0; i < prev;) {
        uint32_t klen = (uint32_t)data[i + 4] | (uint32_t)data[i + 5] << 8 |
                        (uint32_t)data[i + 6] << 16 | (uint32_t)data[i + 7] << 24;
        uint32_t vlen = (uint32_t)data[i + 8] | (uint32_t)data[i + 9] << 8 |
                        (uint32_t)data[i + 10] << 16 | (uint32_t)data[i + 11] << 24;
        /* the header, then if_match and expires_at with their flags
         * (lib/wire.h) */
        size_t hdr = WIRE_OP_HDR + ((data[i + 1] & WIRE_F_IF_MATCH) ? 8u : 0u) +
                     ((data[i + 1] & WIRE_F_EXPIRES) ? 8u : 0u);
        size_t end = i + hdr + (size_t)klen + vlen;
        for (size_t j = i; j < end; j++)
            if (!fuzz_wire_reserved_op(j - i) && b.data[j] != data[j])
                abort();
        for (size_t j = i; j < i + WIRE_OP_HDR; j++)
            if (fuzz_wire_reserved_op(j - i) && b.data[j] != 0)
                abort(); /* the encoder zeroes them */
        i = end;
    }
    wire_buf_free(&b);
}

static void fuzz_wire_results(const uint8_t *data, size_t size)
{
    wire_buf b = {0};
    size_t off = 0;
    wire_result r;
    int rc;

    while ((rc = wire_next_result(data, size, &off, &r)) == 1)
        if (wire_put_result(&b, &r) != 0)
            abort();
    /* Results are fixed-size: malformed exactly when a partial one is left. */
    if ((rc < 0) != (size % WIRE_RESULT_LEN != 0))
        abort();
    if (b.len != size - size % WIRE_RESULT_LEN)
        abort();
    for (size_t j = 0; j < b.len; j++)
        if (fuzz_wire_reserved_result(j % WIRE_RESULT_LEN)
                ? b.data[j] != 0
                : b.data[j] != data[j])
            abort();
    wire_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_wire_ops(data, size);
    fuzz_wire_results(data, size);
    return 0;
}
