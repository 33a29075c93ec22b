/* flags: the command line of every server binary, from a table.
 *   --name value, --name=value, --flag (a FLAG_BOOL takes no value),
 *   --help or -h; anything else is an error that names the argument.
 * A FLAG_UINT must be digits only, within [0, max]; a FLAG_LIST collects
 * every occurrence (--set a=1 --set b=2) in order, up to FLAGS_LIST_MAX.
 * Ownership: strings point into argv; nothing is allocated. */
#ifndef KV_FLAGS_H
#define KV_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FLAGS_LIST_MAX 64
/* flags_parse's answer when --help was asked for. */
#define FLAGS_HELP 1

typedef enum flag_kind { FLAG_STR, FLAG_UINT, FLAG_BOOL, FLAG_LIST } flag_kind;

typedef struct flags_list {
    char *v[FLAGS_LIST_MAX];
    int n;
} flags_list;

typedef struct flag_spec {
    const char *name;  /* without the leading "--" */
    flag_kind kind;
    void *out;         /* const char **, uint64_t *, int * or flags_list * */
    uint64_t max;      /* FLAG_UINT: the largest value allowed */
    int *given;        /* optional: set to 1 when the flag appears */
} flag_spec;

/* 0, FLAGS_HELP, or -1 with err saying which argument is wrong and why.
 * Outputs of flags that do not appear are left as they were (defaults). */
int flags_parse(int argc, char **argv, const flag_spec *specs, size_t nspecs,
                char *err, size_t errlen);
/* flags_parse for a main(): --help prints usage to stdout (FLAGS_HELP: exit
 * 0), an error prints "prog: why" and usage to stderr (-1: exit 2). */
int flags_parse_main(const char *prog, int argc, char **argv,
                     const flag_spec *specs, size_t nspecs,
                     void (*usage)(FILE *f));

#endif
