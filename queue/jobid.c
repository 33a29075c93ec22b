/* jobid: random job ids (queue/jobid.h). */
#include "jobid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

int jobid_new(jobid *ids, size_t n)
{
    uint8_t *p = (uint8_t *)ids;
    size_t left = n * sizeof *ids;

    /* getrandom blocks only until the pool is first seeded (early boot),
     * may return less than asked for large requests, or be interrupted. */
    while (left > 0) {
        ssize_t got = getrandom(p, left, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += got;
        left -= (size_t)got;
    }
    return 0;
}

void jobid_format(const jobid *id, char out[JOBID_TEXT + 1])
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < JOBID_BYTES; i++) {
        out[2 * i] = hex[id->b[i] >> 4];
        out[2 * i + 1] = hex[id->b[i] & 15];
    }
    out[JOBID_TEXT] = '\0';
}

static int jobid_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int jobid_parse(const char *s, size_t len, jobid *out)
{
    jobid id;

    if (s == NULL || len != JOBID_TEXT)
        return -1;
    for (size_t i = 0; i < JOBID_BYTES; i++) {
        int hi = jobid_nibble(s[2 * i]), lo = jobid_nibble(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        id.b[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = id;
    return 0;
}

int jobid_equal(const jobid *a, const jobid *b)
{
    return memcmp(a->b, b->b, JOBID_BYTES) == 0;
}

uint64_t jobid_hash(const jobid *id)
{
    uint64_t h;

    memcpy(&h, id->b, sizeof h);
    return h;
}
