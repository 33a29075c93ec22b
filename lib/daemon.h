/* daemon: what every server process does around its real work: build its
 * configuration from --config and --set flags, block SIGINT/SIGTERM before
 * threads start (so only the waiting thread sees them), wait for one. */
#ifndef KV_DAEMON_H
#define KV_DAEMON_H

#include "config.h"

/* What daemon_config does about the cluster token (lib/token.h). */
typedef enum daemon_token {
    DAEMON_TOKEN_READ,         /* a server: it must have one */
    DAEMON_TOKEN_MAKE,         /* the controller: create its file if missing */
    DAEMON_TOKEN_NONE,         /* a tool that needs none (--render-nginx) */
} daemon_token;

/* Defaults, then the file (may be NULL), then the environment, then each
 * "path=value" of sets, then validation, then the cluster token. 0, or -1
 * with the error naming the field in err; with err NULL it is printed to
 * stderr instead ("configuration error: ..."). */
int daemon_config(kv_config *c, const char *path, char *const *sets,
                  int nsets, daemon_token token, char *err, size_t errlen);
/* Block SIGINT, SIGTERM and SIGPIPE in this and every later thread. */
void daemon_block_signals(void);
/* Wait for SIGINT or SIGTERM; returns the signal. */
int daemon_wait_signal(void);
/* The same for at most ms milliseconds; 0 when none came. */
int daemon_wait_signal_ms(long ms);

#endif
