/* lab_config: the CloudCart lab's student_config.json (lab/cloudcart/README.md).
 *
 *   {"deployment":    {"followers", "write_quorum", "read_quorum",
 *                      "auto_spawn", "auto_spawn_delay"},
 *    "gateway":       {"rate_limit_enabled", "rate_limit_max",
 *                      "rate_limit_window"},
 *    "justifications":{"quorum_choice", "follower_count", "rate_limiting",
 *                      "auto_spawn"}}
 *
 * Missing keys take the defaults 3, 2, 2, false, 5, true, 10, 60 (and ""
 * for a justification). Validation names the field in every message
 * ("deployment.write_quorum: 4 is more than the 3 followers"); all errors
 * are reported at once, one per line. Unknown keys are not errors: they are
 * listed as warnings (a misspelt key would otherwise silently take its
 * default); keys starting with '_' are comments and are not listed.
 *
 * Types: followers, write_quorum, read_quorum and rate_limit_max are whole
 * numbers (3 and 3.0 are fine, 2.5 and "3" are not); auto_spawn_delay and
 * rate_limit_window are seconds, any number > 0 (fractions allowed);
 * auto_spawn and rate_limit_enabled are true/false; justifications are
 * strings (null counts as empty).
 *
 * Path rule (lab_config_resolve): an absolute path is used as it is. A relative
 * path is tried against
 *   1. the working directory,
 *   2. the lab folder, found in this order: $KV_LAB_DIR; <repo>/lab/cloudcart
 *      where <repo> is three levels above the running binary
 *      (/proc/self/exe is <repo>/build/<variant>/bin/<prog>); <exe dir>/../
 *      lab/cloudcart (an installed prefix/bin layout); LAB_CONFIG_LAB_DIR, a
 *      compiled-in default (-DLABCFG_LAB_DIR=..., default
 *      /usr/local/share/kv/lab/cloudcart),
 *   3. <repo> itself, so "lab/cloudcart/student_config.json" works from any
 *      directory.
 * The first existing regular file wins; the result is an absolute path.
 *
 * Ownership: lab_config is a plain struct with no heap: copy it freely. */
#ifndef KV_LABCFG_H
#define KV_LABCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define LAB_CONFIG_NODE_COST_USD 10      /* per node per hour */
#define LAB_CONFIG_BUDGET_USD 50         /* per hour, the whole cluster */
#define LAB_CONFIG_MAX_FOLLOWERS 20      /* ports 7002..7021; the gateway is 8000 */
#define LAB_CONFIG_MAX_DELAY_S 3600.0    /* auto_spawn_delay, rate_limit_window */
#define LAB_CONFIG_TEXT_MAX 4096         /* a justification, bytes kept (NUL incl.) */
#define LAB_CONFIG_PATH_MAX 4096

#ifndef LAB_CONFIG_LAB_DIR
#define LAB_CONFIG_LAB_DIR "/usr/local/share/kv/lab/cloudcart"
#endif

/* The four justification fields, in file order. */
enum {
    LAB_CONFIG_J_QUORUM_CHOICE,
    LAB_CONFIG_J_FOLLOWER_COUNT,
    LAB_CONFIG_J_RATE_LIMITING,
    LAB_CONFIG_J_AUTO_SPAWN,
    LAB_CONFIG_NJUST
};

typedef struct lab_config {
    /* deployment */
    int64_t followers;          /* N */
    int64_t write_quorum;       /* W: followers that ack a write */
    int64_t read_quorum;        /* R: followers a read consults */
    bool auto_spawn;
    double auto_spawn_delay;    /* seconds */
    /* gateway */
    bool rate_limit_enabled;
    int64_t rate_limit_max;     /* requests per window per client IP */
    double rate_limit_window;   /* seconds */
    /* justifications: the text (truncated to LAB_CONFIG_TEXT_MAX - 1 bytes) and
     * whether the full text was filled (lab_config_text_filled). */
    char just[LAB_CONFIG_NJUST][LAB_CONFIG_TEXT_MAX];
    bool just_filled[LAB_CONFIG_NJUST];
    /* where it came from: "" for defaults or lab_config_parse */
    char path[LAB_CONFIG_PATH_MAX];
} lab_config;

/* The JSON key of a justification ("quorum_choice"), NULL out of range. */
const char *lab_config_just_name(int i);

/* Fill with the defaults (3, 2, 2, false, 5, true, 10, 60, "" x 4). */
void lab_config_defaults(lab_config *c);

/* Parse JSON text over the defaults, then validate. 0, or -1 with err
 * holding every problem, one per line, each naming its field (or the
 * position of a JSON syntax error). Warnings (unknown keys), when warn is
 * not NULL, go to warn one per line ("" when none). */
int lab_config_parse(lab_config *c, const char *text, size_t len, char *err,
                 size_t errlen, char *warn, size_t warnlen);

/* Read and parse the file at path (used as given: see lab_config_resolve).
 * Errors are prefixed with the path. Sets c->path. */
int lab_config_load(lab_config *c, const char *path, char *err, size_t errlen,
                char *warn, size_t warnlen);

/* Range and cross-field checks of a filled struct (done by lab_config_parse). */
int lab_config_validate(const lab_config *c, char *err, size_t errlen);

/* The path rule above: 0 with the absolute path in out, or -1 with err
 * saying where it looked. */
int lab_config_resolve(const char *path, char *out, size_t outlen, char *err,
                   size_t errlen);
/* The lab folder (step 2 of the path rule) that exists, or -1. */
int lab_config_lab_dir(char *out, size_t outlen);
/* The directory of the running binary (dirname of /proc/self/exe), or -1. */
int lab_config_exe_dir(char *out, size_t outlen);

/* lab_config_resolve then lab_config_load. */
int lab_config_load_resolved(lab_config *c, const char *path, char *err,
                         size_t errlen, char *warn, size_t warnlen);

/* ---- what the config means ---- */

/* (1 + N) x $10 per hour. */
int64_t lab_config_cost_per_hour(const lab_config *c);
/* cost <= $50 per hour. */
bool lab_config_within_budget(const lab_config *c);
/* W + R > N: every read set overlaps every write's sync set. */
bool lab_config_strong(const lab_config *c);
/* Follower failures that writes (N - W) and reads (N - R) survive. */
int64_t lab_config_write_tolerance(const lab_config *c);
int64_t lab_config_read_tolerance(const lab_config *c);

/* A justification counts as filled when it has a non-blank character and
 * does not contain "TODO" in any case. NULL is not filled. */
bool lab_config_text_filled(const char *s);
/* How many of the four are filled. */
int lab_config_just_count(const lab_config *c);

/* The summary that `kvctl lab` and `kvctl assess` print: N, W, R, W + R
 * against N, the failures survived, cost against the budget, auto-spawn,
 * the rate limit and the justification status. */
void lab_config_print_summary(FILE *f, const lab_config *c);

#endif
