#include "flags.h"

#include "num.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const flag_spec *flags_find(const flag_spec *specs, size_t n,
                                   const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(specs[i].name) == len &&
            memcmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

static int flags_store(const flag_spec *s, char *val, char *err,
                       size_t errlen)
{
    flags_list *l;

    switch (s->kind) {
    case FLAG_STR:
        *(const char **)s->out = val;
        break;
    case FLAG_UINT:
        if (num_parse_max(val, s->max, (uint64_t *)s->out) != 0) {
            snprintf(err, errlen, "--%s: expected an integer 0..%" PRIu64
                     ", got \"%s\"", s->name, s->max, val);
            return -1;
        }
        break;
    case FLAG_BOOL:
        *(int *)s->out = 1;
        break;
    case FLAG_LIST:
        l = s->out;
        if (l->n >= FLAGS_LIST_MAX) {
            snprintf(err, errlen, "--%s: at most %d times", s->name,
                     FLAGS_LIST_MAX);
            return -1;
        }
        l->v[l->n++] = val;
        break;
    }
    if (s->given)
        *s->given = 1;
    return 0;
}

int flags_parse(int argc, char **argv, const flag_spec *specs, size_t nspecs,
                char *err, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i], *val = NULL, *eq;
        const flag_spec *s;
        size_t len;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return FLAGS_HELP;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(err, errlen, "unexpected argument \"%s\"", arg);
            return -1;
        }
        eq = strchr(arg + 2, '=');
        len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if ((s = flags_find(specs, nspecs, arg + 2, len)) == NULL) {
            snprintf(err, errlen, "unknown option \"%.*s\"", (int)len + 2, arg);
            return -1;
        }
        if (s->kind == FLAG_BOOL) {
            if (eq) {
                snprintf(err, errlen, "--%s takes no value", s->name);
                return -1;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            snprintf(err, errlen, "--%s needs a value", s->name);
            return -1;
        }
        if (flags_store(s, val, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int flags_parse_main(const char *prog, int argc, char **argv,
                     const flag_spec *specs, size_t nspecs,
                     void (*usage)(FILE *f))
{
    char err[256];
    int rc = flags_parse(argc, argv, specs, nspecs, err, sizeof err);

    if (rc < 0)
        fprintf(stderr, "%s: %s\n", prog, err);
    if (rc != 0)
        usage(rc < 0 ? stderr : stdout);
    return rc;
}
