/* controller_opts: kv-controller's command line.
 *   --config FILE, --set path=value (repeatable), --run-dir DIR,
 *   --log-dir DIR, --nginx-template FILE, --ready-timeout-ms N,
 *   --lab FILE (the CloudCart lab instead of a cluster),
 *   --render-nginx DIR (write nginx.conf for a container and exit), --help.
 * Ownership: the strings point into argv. */
#ifndef KV_CTL_OPTS_H
#define KV_CTL_OPTS_H

#include "config.h"

#include <stdio.h>

#define CONTROLLER_OPTS_READY_TIMEOUT_MS 10000L
/* controller.supervise=0: containers may take a while to appear. */
#define CONTROLLER_OPTS_EXTERNAL_READY_TIMEOUT_MS 60000L

typedef struct controller_opts {
    const char *config;
    const char *run_dir;
    const char *log_dir;
    const char *nginx_template;
    long ready_timeout_ms;     /* 0 = print the summary without waiting */
    const char *lab;           /* --lab FILE: the CloudCart lab (lab.h) */
    const char *render_nginx;  /* --render-nginx DIR: nginx_conf.h */
    int ready_timeout_set;     /* --ready-timeout-ms was given */
} controller_opts;

void controller_opts_usage(FILE *f);
/* Parse argv and build the configuration (defaults < file < environment <
 * --set, through daemon_config). 0 = run, FLAGS_HELP = --help was asked
 * for, -1 = error (err says why). */
int controller_opts_parse(int argc, char **argv, controller_opts *o,
                          kv_config *c, char *err, size_t errlen);

#endif
