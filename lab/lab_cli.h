/* lab_cli: `kvctl lab --config FILE [--dry-run]`, and what `kvctl assess`
 * shares with it: loading the student config and finding kv-controller.
 *
 * kvctl lab prints the configuration summary (lab_config_print_summary) and
 * execs `kv-controller --lab ABSFILE` (the kv-controller next to kvctl:
 * dirname of /proc/self/exe), which runs the lab cluster in the foreground
 * until Ctrl-C. --dry-run prints the summary and the command only.
 *
 * Ownership: nothing allocated outlives a call. */
#ifndef KV_LAB_CLI_H
#define KV_LAB_CLI_H

struct kvctl_opts;

#include "lab_config.h"

#include <stddef.h>

#define LAB_CLI_CONTROLLER_BIN "kv-controller"

/* kvctl lab: the command function (argv after "lab"). */
int lab_cli_cmd(const struct kvctl_opts *o, int argc, char **argv);

/* Path of the kv-controller binary next to the running kvctl. 0, or -1
 * with err saying where it looked. */
int lab_cli_controller_path(char *out, size_t outlen, char *err, size_t errlen);

/* Resolve (lab_config path rule) and load a student config, printing errors
 * and warnings to stderr prefixed with "kvctl <cmd>: ". 0 or -1. */
int lab_cli_load_config(const char *cmd, const char *arg, lab_config *c);

/* Print the last 20 lines of the log at path to stderr (a child that did
 * not come up: kvctl assess, kvctl bench quorum). */
void lab_cli_tail_log(const char *path);

#endif
