#include "addr.h"

#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int addr_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int addr_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err && errlen) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static int addr_host_char_ok(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch >= '0' && ch <= '9') || strchr(".-_:[]", ch) != NULL;
}

int addr_host(const char *tmpl, const char *bind, const addr_node *n,
              char *out, size_t outlen, char *err, size_t errlen)
{
    size_t used = 0;
    const char *p;

    if (outlen == 0)
        return addr_fail(err, errlen, "no room for the host");
    out[0] = '\0';
    if (tmpl == NULL || tmpl[0] == '\0') {
        if ((size_t)snprintf(out, outlen, "%s", config_local_host(bind)) >=
            outlen)
            return addr_fail(err, errlen, "cluster.bind: too long for a URL");
        return 0;
    }
    for (p = tmpl; *p;) {
        char num[16];
        const char *val = NULL;
        size_t vlen;

        if (*p == '{') {
            const char *close = strchr(p, '}');
            size_t nlen = close ? (size_t)(close - p - 1) : 0;

            if (close == NULL)
                return addr_fail(err, errlen,
                                 "cluster.advertise_host: unterminated { in "
                                 "\"%s\"", tmpl);
            if (nlen == 4 && memcmp(p + 1, "name", 4) == 0)
                val = n->name;
            else if (nlen == 4 && memcmp(p + 1, "kind", 4) == 0)
                val = n->kind;
            else if ((nlen == 5 && memcmp(p + 1, "shard", 5) == 0) ||
                     (nlen == 7 && memcmp(p + 1, "replica", 7) == 0)) {
                int v = nlen == 5 ? n->shard : n->replica;
                if (v < 0)
                    return addr_fail(err, errlen,
                                     "cluster.advertise_host: {%.*s} used "
                                     "for %s, which is not a store",
                                     (int)nlen, p + 1, n->name);
                snprintf(num, sizeof num, "%d", v);
                val = num;
            } else
                return addr_fail(err, errlen,
                                 "cluster.advertise_host: unknown placeholder "
                                 "{%.*s} (known: {name} {kind} {shard} "
                                 "{replica})",
                                 (int)(nlen > 32 ? 32 : nlen), p + 1);
            if (val == NULL)
                val = "";
            vlen = strlen(val);
            p = close + 1;
        } else {
            val = p;
            vlen = 1;
            p++;
        }
        if (used + vlen >= outlen)
            return addr_fail(err, errlen,
                             "cluster.advertise_host: \"%s\" makes a host "
                             "over %zu bytes for %s", tmpl, outlen - 1,
                             n->name);
        for (size_t i = 0; i < vlen; i++)
            if (!addr_host_char_ok(val[i]))
                return addr_fail(err, errlen,
                                 "cluster.advertise_host: \"%s\" gives %s a "
                                 "host with '%c' (letters, digits and .-_:[] "
                                 "only)", tmpl, n->name, val[i]);
        memcpy(out + used, val, vlen);
        used += vlen;
        out[used] = '\0';
    }
    if (used == 0)
        return addr_fail(err, errlen,
                         "cluster.advertise_host: \"%s\" gives %s an empty "
                         "host", tmpl, n->name);
    return 0;
}

int addr_url(const char *tmpl, const char *bind, const addr_node *n,
             uint16_t port, char *out, size_t outlen, char *err,
             size_t errlen)
{
    char host[256];

    if (addr_host(tmpl, bind, n, host, sizeof host, err, errlen) < 0)
        return -1;
    if ((size_t)snprintf(out, outlen, "http://%s:%u", host, (unsigned)port) >=
        outlen)
        return addr_fail(err, errlen, "the URL of %s is over %zu bytes",
                         n->name, outlen - 1);
    return 0;
}

int addr_check_template(const char *tmpl, char *err, size_t errlen)
{
    static const addr_node probes[] = {
        {"store-0-0", "store", 0, 0},
        {"queue", "queue", -1, -1},
    };
    char host[256];

    for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
        if (addr_host(tmpl, "127.0.0.1", &probes[i], host, sizeof host, err,
                      errlen) < 0)
            return -1;
    return 0;
}
