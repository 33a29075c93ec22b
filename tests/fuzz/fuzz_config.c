/* fuzz_config: the cluster configuration JSON (lib/config.h), the file
 * every process loads: config_load_text over the defaults, then
 * config_validate, as config_load does (minus the environment, which the
 * harness clears once so that the runner's variables do not leak in).
 *
 * Input: the JSON text (any bytes).
 *
 * Asserts, beyond no crash or sanitizer report:
 *  - a refusal names its cause in err (a non-empty sentence);
 *  - round trip: an accepted and valid configuration written out by
 *    config_to_json loads back over fresh defaults into the same
 *    configuration (compared as its JSON text again), and that one is
 *    valid too;
 *  - every string field stays NUL-terminated within CFG_STR_MAX (checked
 *    by the round trip's strlen; ASan sees an overrun). */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    config_clear_env();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kv_config c, back;
    char err[512] = "";
    char *json, *json2;

    config_defaults(&c);
    if (config_load_text(&c, (const char *)data, size, "fuzz", err, sizeof err) != 0 ||
        config_validate(&c, err, sizeof err) != 0) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    json = config_to_json(&c);
    if (json == NULL)
        abort();
    config_defaults(&back);
    if (config_load_text(&back, json, strlen(json), "round trip", err, sizeof err) != 0 ||
        config_validate(&back, err, sizeof err) != 0)
        abort();
    json2 = config_to_json(&back);
    if (json2 == NULL || strcmp(json, json2) != 0)
        abort();
    free(json2);
    free(json);
    return 0;
}
