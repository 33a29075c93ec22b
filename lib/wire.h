/* wire: the binary framing of write batches between queue and store (and
 * between replicas): a body is a sequence of ops, each
 *   u8 op, u8 flags, u16 reserved, u32 key_len, u32 val_len, u32 reserved,
 *   u64 version, u64 seq, [u64 if_match], [u64 expires_at], key bytes,
 *   value bytes
 * (little-endian). The flags are the op's condition (below),
 * WIRE_F_EXPIRES and WIRE_F_REAPED; if_match is there only with WIRE_F_IF_MATCH, expires_at
 * only with WIRE_F_EXPIRES. An unknown flag, or two conditions, make the op
 * malformed.
 * For WIRE_INCR the value is the 8-byte signed delta. A batch answer is a
 * sequence of results: u16 status, u16 reserved, u32 reserved, u64 version,
 * i64 number (the counter after an increment).
 * Ownership: encoders append to a caller-owned wire_buf (wire_buf_free);
 * decoded ops point into the caller's input buffer. */
#ifndef KV_WIRE_H
#define KV_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum wire_op_kind { WIRE_PUT = 1, WIRE_DEL = 2, WIRE_INCR = 3 };

#define WIRE_OP_HDR 32
#define WIRE_RESULT_LEN 24

/* Conditions (HTTP's If-Match / If-None-Match): the shard primary applies
 * the op only if the key's live record (not deleted) then is
 *   WIRE_F_IF_MATCH   at version if_match      (If-Match: "<version>")
 *   WIRE_F_IF_EXISTS  there, at any version    (If-Match: *)
 *   WIRE_F_IF_ABSENT  not there                (If-None-Match: *)
 * else the result is 412 with the live version (0: none). */
#define WIRE_F_IF_MATCH 0x01u
#define WIRE_F_IF_EXISTS 0x02u
#define WIRE_F_IF_ABSENT 0x04u
#define WIRE_F_CONDITIONS (WIRE_F_IF_MATCH | WIRE_F_IF_EXISTS | WIRE_F_IF_ABSENT)
/* The record expires at expires_at (Unix milliseconds): from then on every
 * replica reads it as absent. On a put it sets the key's expiry, on an
 * increment it replaces it (an increment without it keeps the key's). */
#define WIRE_F_EXPIRES 0x08u
/* On a delete: the tombstone of an expired record, at that record's own
 * version (a primary's reaper wrote it; store/reaper.h). A replica holding
 * the expired record at exactly that version replaces it, where any other
 * op of the same version would be a no-op. With WIRE_F_EXPIRES, expires_at
 * names the reaper's index entry (store/sdb.h "expiry"). */
#define WIRE_F_REAPED 0x10u

/* Bytes the optional fields of flags take (if_match, expires_at): the wire
 * op's, and the queue journal's, which stores them the same way. */
size_t wire_ext_len(uint8_t flags);

typedef struct wire_op {
    uint8_t op;
    uint8_t flags;
    uint64_t version;
    uint64_t seq;
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
    uint64_t if_match; /* with WIRE_F_IF_MATCH */
    uint64_t expires_at; /* with WIRE_F_EXPIRES */
} wire_op;

typedef struct wire_result {
    uint16_t status;   /* HTTP-like: 200 applied, 208 older (no-op), 409,
                          412 condition not met, 500 */
    uint64_t version;  /* the record's version after the op (412: the live
                          version the condition was judged on, 0: none) */
    int64_t number;    /* the counter value after an increment */
} wire_result;

typedef struct wire_buf {
    uint8_t *data;
    size_t len, cap;
} wire_buf;

int wire_put_op(wire_buf *b, const wire_op *op);
int wire_put_result(wire_buf *b, const wire_result *res);
/* Decode the op at *off and advance. 1 = got one, 0 = end, -1 = malformed. */
int wire_next_op(const void *buf, size_t len, size_t *off, wire_op *out);
int wire_next_result(const void *buf, size_t len, size_t *off,
                     wire_result *out);
/* An increment's delta as the op's 8-byte value. */
void wire_encode_delta(int64_t delta, char out[8]);
int64_t wire_decode_delta(const char *in);
/* n more bytes at the end of b (its len grows by n): where they start, or
 * NULL when out of memory (b unchanged). */
uint8_t *wire_buf_grow(wire_buf *b, size_t n);
void wire_buf_reset(wire_buf *b);
void wire_buf_free(wire_buf *b);

#endif
