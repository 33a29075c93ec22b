#include "precond.h"

#include "hlc.h"
#include "wire.h"

#include <string.h>

static const char *precond_trim(const char *s, size_t *len)
{
    size_t n = strlen(s);

    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *len = n;
    return s;
}

/* "<digits>" as a version in [1, HLC_MAX]: 0 or -1. */
static int precond_tag(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n < 3 || s[0] != '"' || s[n - 1] != '"')
        return -1;
    for (size_t i = 1; i < n - 1; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        if (v > HLC_MAX)
            return -1;
    }
    if (v == 0)
        return -1;
    *out = v;
    return 0;
}

int precond_parse(const char *if_match, const char *if_none_match,
                  uint8_t *flags, uint64_t *version, const char **why)
{
    const char *s, *bad = NULL;
    size_t n;
    uint8_t f = 0;
    uint64_t v = 0;

    if (if_match && if_none_match) {
        bad = "a write takes If-Match or If-None-Match, not both";
    } else if (if_none_match) {
        s = precond_trim(if_none_match, &n);
        if (n == 1 && *s == '*')
            f = WIRE_F_IF_ABSENT;
        else
            bad = "on a write, If-None-Match takes only * (create the key)";
    } else if (if_match) {
        s = precond_trim(if_match, &n);
        if (n == 1 && *s == '*')
            f = WIRE_F_IF_EXISTS;
        else if (precond_tag(s, n, &v) == 0)
            f = WIRE_F_IF_MATCH;
        else
            bad = "If-Match takes one ETag as GET gives it (\"<version>\") or *";
    }
    if (bad) {
        if (why)
            *why = bad;
        return -1;
    }
    *flags = f;
    *version = v;
    return 0;
}
