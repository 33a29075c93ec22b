#include "wire.h"

#include <stdlib.h>
#include <string.h>

/* Explicit little-endian coding, so the format does not depend on the host. */
static void wire_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wire_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wire_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t wire_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t wire_get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t wire_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

uint8_t *wire_buf_grow(wire_buf *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        uint8_t *d;
        while (cap < b->len + n)
            cap *= 2;
        d = realloc(b->data, cap);
        if (d == NULL)
            return NULL;
        b->data = d;
        b->cap = cap;
    }
    b->len += n;
    return b->data + b->len - n;
}

/* The flags an op may carry: no unknown bit, at most one condition. */
static int wire_flags_valid(uint8_t f)
{
    uint8_t c = f & WIRE_F_CONDITIONS;

    return (f & ~(WIRE_F_CONDITIONS | WIRE_F_EXPIRES | WIRE_F_REAPED)) == 0 && (c & (c - 1)) == 0;
}

size_t wire_ext_len(uint8_t f)
{
    return ((f & WIRE_F_IF_MATCH) ? 8u : 0u) + ((f & WIRE_F_EXPIRES) ? 8u : 0u);
}

int wire_put_op(wire_buf *b, const wire_op *op)
{
    size_t hdr = WIRE_OP_HDR + wire_ext_len(op->flags);
    uint8_t *p;

    if (op->key_len > UINT32_MAX || op->val_len > UINT32_MAX ||
        !wire_flags_valid(op->flags))
        return -1;
    p = wire_buf_grow(b, hdr + op->key_len + op->val_len);
    if (p == NULL)
        return -1;
    memset(p, 0, WIRE_OP_HDR);
    p[0] = op->op;
    p[1] = op->flags;
    wire_u32(p + 4, (uint32_t)op->key_len);
    wire_u32(p + 8, (uint32_t)op->val_len);
    wire_u64(p + 16, op->version);
    wire_u64(p + 24, op->seq);
    if (op->flags & WIRE_F_IF_MATCH)
        wire_u64(p + WIRE_OP_HDR, op->if_match);
    if (op->flags & WIRE_F_EXPIRES)
        wire_u64(p + hdr - 8, op->expires_at);
    memcpy(p + hdr, op->key, op->key_len);
    if (op->val_len)
        memcpy(p + hdr + op->key_len, op->val, op->val_len);
    return 0;
}

int wire_next_op(const void *buf, size_t len, size_t *off, wire_op *out)
{
    const uint8_t *p = (const uint8_t *)buf + *off;
    size_t left = len - *off, hdr;
    uint32_t klen, vlen;

    if (*off >= len)
        return 0;
    if (left < WIRE_OP_HDR || !wire_flags_valid(p[1]))
        return -1;
    hdr = WIRE_OP_HDR + wire_ext_len(p[1]);
    klen = wire_get32(p + 4);
    vlen = wire_get32(p + 8);
    if (left < hdr || (uint64_t)klen + vlen > left - hdr)
        return -1;
    out->op = p[0];
    out->flags = p[1];
    out->version = wire_get64(p + 16);
    out->seq = wire_get64(p + 24);
    out->if_match = (p[1] & WIRE_F_IF_MATCH) ? wire_get64(p + WIRE_OP_HDR) : 0;
    out->expires_at = (p[1] & WIRE_F_EXPIRES) ? wire_get64(p + hdr - 8) : 0;
    out->key = (const char *)p + hdr;
    out->key_len = klen;
    out->val = out->key + klen;
    out->val_len = vlen;
    if (out->op < WIRE_PUT || out->op > WIRE_INCR ||
        (out->op == WIRE_INCR && vlen != 8))
        return -1;
    *off += hdr + (size_t)klen + vlen;
    return 1;
}

int wire_put_result(wire_buf *b, const wire_result *res)
{
    uint8_t *p = wire_buf_grow(b, WIRE_RESULT_LEN);
    if (p == NULL)
        return -1;
    memset(p, 0, 8);
    wire_u16(p, res->status);
    wire_u64(p + 8, res->version);
    wire_u64(p + 16, (uint64_t)res->number);
    return 0;
}

int wire_next_result(const void *buf, size_t len, size_t *off,
                     wire_result *out)
{
    const uint8_t *p = (const uint8_t *)buf + *off;

    if (*off >= len)
        return 0;
    if (len - *off < WIRE_RESULT_LEN)
        return -1;
    out->status = wire_get16(p);
    out->version = wire_get64(p + 8);
    out->number = (int64_t)wire_get64(p + 16);
    *off += WIRE_RESULT_LEN;
    return 1;
}

/* An increment's delta travels as 8 little-endian bytes. */
void wire_encode_delta(int64_t delta, char out[8])
{
    wire_u64((uint8_t *)out, (uint64_t)delta);
}

int64_t wire_decode_delta(const char *in)
{
    return (int64_t)wire_get64((const uint8_t *)in);
}

void wire_buf_reset(wire_buf *b)
{
    b->len = 0;
}

void wire_buf_free(wire_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
