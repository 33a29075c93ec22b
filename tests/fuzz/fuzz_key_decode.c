/* fuzz_key_decode: percent-decoding of a key's path segment, httpd_decode
 * (lib/httpd.h), the function kvhttp_key (store, queue, api) and the lab's
 * gateway and coordinator decode every key with.
 *
 * Input: the raw segment bytes, any of them (a raw NUL, '%', space and
 * control bytes included; the servers refuse a NUL, space or control byte
 * in the target earlier, in lib/httpd.c, but the decoder must not rely on
 * it).
 *
 * Asserts, beyond no crash or sanitizer report:
 *  - it agrees with a reference decoder written here from the contract: a
 *    '%' needs two hex digits inside the segment, the result never holds a
 *    NUL (neither %00 nor a raw one: a key is a C string further on), every
 *    other byte is kept (no '+' to space); anything else is refused (NULL);
 *  - the result is NUL-terminated and its length is the one returned;
 *  - round trip: the result percent-encoded byte for byte (upper- or
 *    lower-case hex, chosen by the input) decodes back to itself. */
#include "httpd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int fuzz_key_hex(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/* The reference: 0 with the decoded bytes in out (n + 1 bytes), or -1. */
static int fuzz_key_reference(const uint8_t *in, size_t n, uint8_t *out,
                              size_t *olen)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        if (c == '%') {
            if (n - i < 3 || fuzz_key_hex(in[i + 1]) < 0 ||
                fuzz_key_hex(in[i + 2]) < 0)
                return -1;
            c = (uint8_t)(fuzz_key_hex(in[i + 1]) * 16 + fuzz_key_hex(in[i + 2]));
            i += 2;
        }
        if (c == '\0')
            return -1;
        out[o++] = c;
    }
    *olen = o;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char hex_uc[] = "0123456789ABCDEF", hex_lc[] = "0123456789abcdef";
    uint8_t *want = malloc(size + 1);
    size_t want_len = 0, len = (size_t)-1;
    int ok;
    char *got;

    if (want == NULL)
        abort();
    ok = fuzz_key_reference(data, size, want, &want_len) == 0;
    got = httpd_decode((const char *)data, size, &len);
    if ((got != NULL) != ok)
        abort();
    if (got) {
        const char *hex = size && (data[0] & 1) ? hex_lc : hex_uc;
        char *enc = malloc(3 * len + 1), *again;
        size_t again_len = (size_t)-1;

        if (len != want_len || memcmp(got, want, len) != 0 || got[len] != '\0')
            abort();
        if (enc == NULL)
            abort();
        for (size_t i = 0; i < len; i++) {
            enc[3 * i] = '%';
            enc[3 * i + 1] = hex[(uint8_t)got[i] >> 4];
            enc[3 * i + 2] = hex[(uint8_t)got[i] & 15];
        }
        again = httpd_decode(enc, 3 * len, &again_len);
        if (again == NULL || again_len != len || memcmp(again, got, len) != 0)
            abort();
        free(again);
        free(enc);
        free(got);
    }
    free(want);
    return 0;
}
