#include "prefer.h"

#include "num.h"

#include <stddef.h>
#include <string.h>

/* 20 digits hold any uint64_t; a longer run of digits is past every cap. */
#define PREFER_DIGITS_MAX 20

static int prefer_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Where the wait preference's value starts, or NULL: "wait=" as a whole
 * preference name (at the start or after a separator), so "nowait=1" or
 * "xwait=1" are someone else's. */
static const char *prefer_find_wait(const char *p)
{
    const char *w = p;

    while ((w = strstr(w, "wait=")) != NULL) {
        if (w == p || strchr(",; \t", w[-1]) != NULL)
            return w + 5;
        w += 5;
    }
    return NULL;
}

int prefer_wait_ms(const char *prefer, uint64_t max_ms, uint64_t *ms)
{
    const char *v, *p;
    char ip[PREFER_DIGITS_MAX + 1];
    size_t n = 0, nfrac = 0;
    uint64_t secs, frac = 0, out;

    if (prefer == NULL || (v = prefer_find_wait(prefer)) == NULL) {
        *ms = 0;
        return 0;
    }
    for (p = v; prefer_is_digit(*p); p++)
        n++;
    if (n == 0)
        return -1;                 /* "", "-1", "inf", "nan", "+3", ".5" */
    if (*p == '.') {
        p++;
        for (; prefer_is_digit(*p); p++, nfrac++)
            if (nfrac < 3)
                frac = frac * 10 + (uint64_t)(*p - '0');
        if (nfrac == 0)
            return -1;             /* "5." */
        for (size_t k = nfrac; k < 3; k++)
            frac *= 10;
    }
    /* The value ends at the next preference or parameter. */
    if (*p != '\0' && strchr(",; \t", *p) == NULL)
        return -1;                 /* "1e17", "0x10", "5s" */
    if (n > PREFER_DIGITS_MAX) {
        *ms = max_ms;
        return 0;
    }
    memcpy(ip, v, n);
    ip[n] = '\0';
    if (num_parse_u64(ip, &secs) != 0 || secs > (UINT64_MAX - 999) / 1000)
        out = max_ms;              /* too long to count: the cap */
    else
        out = secs * 1000 + frac;
    *ms = out < max_ms ? out : max_ms;
    return 0;
}
