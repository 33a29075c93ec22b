/* fuzz_labcfg: the CloudCart lab's student_config.json, parsed by
 * lab_config_parse (lab/lab_config.h) in kvctl lab, kvctl assess and the
 * lab controller.
 *
 * Input: the JSON text (any bytes).
 *
 * Asserts, beyond no crash or sanitizer report:
 *  - an accepted configuration passes lab_config_validate on its own, its
 *    numbers are in the documented ranges (N 1..LAB_CONFIG_MAX_FOLLOWERS,
 *    W and R 1..N, rate_limit_max >= 1, delays > 0 and at most LAB_CONFIG_MAX_DELAY_S), every
 *    justification is NUL-terminated inside its buffer, and the summary
 *    prints;
 *  - a refusal leaves a message in err;
 *  - the outcome and the parsed struct do not depend on the size of the
 *    caller's err/warn buffers (parsed again with 1-byte ones, which must
 *    stay NUL-terminated). */
#include "lab_config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *fuzz_labcfg_null;

/* Field by field (the buffers past a text's NUL are not part of it). */
static int fuzz_labcfg_same(const lab_config *a, const lab_config *b)
{
    if (a->followers != b->followers || a->write_quorum != b->write_quorum ||
        a->read_quorum != b->read_quorum || a->auto_spawn != b->auto_spawn ||
        a->auto_spawn_delay != b->auto_spawn_delay ||
        a->rate_limit_enabled != b->rate_limit_enabled ||
        a->rate_limit_max != b->rate_limit_max ||
        a->rate_limit_window != b->rate_limit_window)
        return 0;
    for (int i = 0; i < LAB_CONFIG_NJUST; i++)
        if (strcmp(a->just[i], b->just[i]) != 0 ||
            a->just_filled[i] != b->just_filled[i])
            return 0;
    return 1;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_labcfg_null = fopen("/dev/null", "w");
    if (fuzz_labcfg_null == NULL)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lab_config c, c2;
    static char err[8192], warn[8192];
    char err1[1] = {'x'}, warn1[1] = {'x'};
    int rc, rc2;

    rc = lab_config_parse(&c, (const char *)data, size, err, sizeof err, warn,
                          sizeof warn);
    rc2 = lab_config_parse(&c2, (const char *)data, size, err1, sizeof err1,
                           warn1, sizeof warn1);
    if (rc != rc2 || err1[0] != '\0' || warn1[0] != '\0' ||
        memchr(err, '\0', sizeof err) == NULL ||
        memchr(warn, '\0', sizeof warn) == NULL)
        abort();
    if (rc != 0) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    if (!fuzz_labcfg_same(&c, &c2))
        abort();
    if (lab_config_validate(&c, err, sizeof err) != 0)
        abort();
    if (c.followers < 1 || c.followers > LAB_CONFIG_MAX_FOLLOWERS ||
        c.write_quorum < 1 || c.write_quorum > c.followers ||
        c.read_quorum < 1 || c.read_quorum > c.followers || c.rate_limit_max < 1 ||
        !(c.auto_spawn_delay > 0) || c.auto_spawn_delay > LAB_CONFIG_MAX_DELAY_S ||
        !(c.rate_limit_window > 0) || c.rate_limit_window > LAB_CONFIG_MAX_DELAY_S)
        abort();
    for (int i = 0; i < LAB_CONFIG_NJUST; i++)
        if (memchr(c.just[i], '\0', LAB_CONFIG_TEXT_MAX) == NULL ||
            lab_config_just_name(i) == NULL)
            abort();
    lab_config_print_summary(fuzz_labcfg_null, &c);
    return 0;
}
