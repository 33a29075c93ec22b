/* fuzz_http1_parse: the HTTP client's response parser (lib/http1_parse.c,
 * llhttp 8.1 in strict mode plus our bounds) on arbitrary server answers.
 *
 * Input: byte 0 is control (bit 0: the request was HEAD; bits 1-7: the size
 * of the pieces of the second feed), the rest is what the server sent,
 * followed by EOF.
 *
 * Asserts, beyond no crash or sanitizer report:
 *  - split invariance: the answer fed whole and fed in pieces (as a socket
 *    delivers it) gets the same outcome, status and body (for inputs under
 *    HTTP1_MAX_HEADER_BYTES: the bounds are checked on what is buffered,
 *    which depends on the pieces);
 *  - a DONE answer has a status of 200..999 (interim 1xx are dropped, 101
 *    refused, the code is three digits), a body no longer than the input
 *    and none for HEAD, 204 and 304; head_end lies inside the buffer;
 *  - http1_parse_take_body gives a NUL-terminated copy of the body. */
#include "http1_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct fuzz_http1_out {
    http1_parse_rc rc;
    long status;
    char *body;      /* taken (NULL when empty) */
    size_t body_len;
} fuzz_http1_out;

/* Feed text[0..n) in pieces of step bytes (0: whole), then EOF. */
static void fuzz_http1_feed(const uint8_t *text, size_t n, size_t step,
                            int head_only, fuzz_http1_out *out)
{
    char *buf = malloc(n ? n : 1);
    size_t len = 0, given = 0;
    http1_parse p;
    http1_parse_rc rc = HTTP1_PARSE_MORE;

    if (buf == NULL)
        abort();
    memset(&p, 0, sizeof p);
    http1_parse_reset(&p, head_only);
    while (given < n && rc == HTTP1_PARSE_MORE) {
        size_t k = step && n - given > step ? step : n - given;
        memcpy(buf + len, text + given, k);
        len += k;
        given += k;
        rc = http1_parse_step(&p, buf, &len, 0);
        if (len > given) /* it only ever drops interim answers */
            abort();
    }
    if (rc == HTTP1_PARSE_MORE)
        rc = http1_parse_step(&p, buf, &len, 1);
    out->rc = rc;
    out->status = p.status;
    out->body = NULL;
    out->body_len = 0;
    if (rc == HTTP1_PARSE_DONE) {
        size_t blen;
        (void)http1_parse_body(&p, buf, len, &blen);
        if (p.head_end == 0 || p.head_end > len)
            abort();
        if (p.status < 200 || p.status > 999 || blen > n)
            abort();
        if ((head_only || p.status == 204 || p.status == 304) && blen != 0)
            abort();
        out->body_len = blen;
        out->body = http1_parse_take_body(&p);
        if ((out->body == NULL) != (blen == 0) ||
            (out->body && out->body[blen] != '\0'))
            abort();
    }
    http1_parse_free(&p);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_http1_out whole, split;
    int head_only;
    size_t step;

    if (size < 1)
        return 0;
    head_only = data[0] & 1;
    step = (size_t)(data[0] >> 1) + 1;
    data++;
    size--;
    fuzz_http1_feed(data, size, 0, head_only, &whole);
    fuzz_http1_feed(data, size, step, head_only, &split);
    if (size < HTTP1_MAX_HEADER_BYTES &&
        (whole.rc != split.rc || whole.status != split.status ||
         whole.body_len != split.body_len ||
         (whole.body_len &&
          memcmp(whole.body, split.body, whole.body_len) != 0)))
        abort();
    free(whole.body);
    free(split.body);
    return 0;
}
