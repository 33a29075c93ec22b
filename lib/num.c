#include "num.h"

#include <errno.h>
#include <stdlib.h>

int num_parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || !(*s == '-' || (*s >= '0' && *s <= '9')))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int num_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    /* strtoull takes "-1" as ULLONG_MAX: a digit must come first. */
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

int num_parse_max(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v;

    if (num_parse_u64(s, &v) != 0 || v > max)
        return -1;
    *out = v;
    return 0;
}
