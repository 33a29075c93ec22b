/* kvctl: the command line client of the KV store.
 *
 *   kvctl [--url URL] [--controller URL] [--json] [--wait] COMMAND [ARGS]
 *
 * Commands live in a table (kvctl.c): each is a name, a synopsis, help text
 * and a run function over the parsed options and its positional arguments.
 * New commands (lab, assess, bench) add one row and one function.
 *
 * Exit codes: KVCTL_OK 0, KVCTL_FAIL 1 (not found, or the server refused),
 * KVCTL_USAGE 2, KVCTL_CONNECT 3 (no connection / no answer).
 *
 * Ownership: responses come from lib/httpc (httpc_resp_free); kvctl_http_escape
 * returns a malloc'd string the caller frees. */
#ifndef KV_KVCTL_H
#define KV_KVCTL_H

#include "httpc.h"
#include "kvhdr.h"

#include <stddef.h>
#include <stdio.h>

enum { KVCTL_OK = 0, KVCTL_FAIL = 1, KVCTL_USAGE = 2, KVCTL_CONNECT = 3 };

#define KVCTL_DEFAULT_URL "http://127.0.0.1:8000"
#define KVCTL_DEFAULT_CONTROLLER "http://127.0.0.1:7000"
#define KVCTL_TIMEOUT_MS 5000L
#define KVCTL_WAIT_TIMEOUT_MS 65000L  /* --wait: above queue.wait_max_ms */

typedef struct kvctl_opts {
    const char *url;          /* public API (nginx), no trailing slash */
    const char *controller;   /* controller base URL */
    int json;                 /* print the server's JSON */
    int wait;                 /* writes wait until applied (?sync=1) */
    uint64_t if_match;        /* --if-match V: writes need version V (0: no) */
    int if_absent;            /* --if-absent: writes create the key only */
    uint64_t ttl_s;           /* --ttl S: put and incr expire after S s (0: no) */
    long timeout_ms;
    /* "Authorization: Bearer <token>" on every request, or "": the token
     * of KV_TOKEN, or of the file of KV_TOKEN_FILE or of KV_DATA_DIR
     * (data/run/token by default, where `make run` keeps it). */
    char auth[KVHDR_AUTH_MAX];
} kvctl_opts;

typedef struct kvctl_cmd {
    const char *name;
    const char *synopsis;     /* "get KEY" */
    const char *summary;      /* one line */
    const char *help;         /* details, may be NULL */
    int min_args, max_args;   /* positional arguments after the command */
    int (*run)(const kvctl_opts *o, int argc, char **argv);
} kvctl_cmd;

/* The whole tool: parses argv and runs a command; returns the exit code. */
int kvctl_main(int argc, char **argv);

/* ---- HTTP helpers (kvctl_http.c) ---- */

/* method base+path with an optional body and headers. On a transport failure
 * prints "kvctl: cannot reach ..." and returns KVCTL_CONNECT; else 0 with
 * the response in out (free it with httpc_resp_free). */
int kvctl_http_request(const kvctl_opts *o, const char *method,
                       const char *base, const char *path, const void *body,
                       size_t len, const char *const *headers, httpc_resp *out);
/* Percent-encode a key for a URL path segment or a query value. */
char *kvctl_http_escape(const char *s, size_t len);
/* For a failed response: print "kvctl: <status> <code>: <message>" (or the
 * raw body with --json) and return KVCTL_FAIL. */
int kvctl_http_fail(const kvctl_opts *o, const httpc_resp *r, const char *what);
/* Parse a response body as JSON (NULL when it is not). */
struct cJSON *kvctl_http_json(const httpc_resp *r);
/* Print body to stdout as it came, with a newline when it has none. */
void kvctl_http_print_body(const httpc_resp *r);
/* Print a JSON value as indented "key: value" lines. */
void kvctl_http_print_tree(FILE *f, const struct cJSON *j, int indent);

/* ---- commands (kvctl_kv.c, kvctl_info.c) ---- */
int kvctl_kv_get(const kvctl_opts *o, int argc, char **argv);
int kvctl_kv_put(const kvctl_opts *o, int argc, char **argv);
int kvctl_kv_del(const kvctl_opts *o, int argc, char **argv);
int kvctl_kv_incr(const kvctl_opts *o, int argc, char **argv);
int kvctl_info_status(const kvctl_opts *o, int argc, char **argv);
int kvctl_info_ring(const kvctl_opts *o, int argc, char **argv);
/* kvctl shard add|remove|status (kvctl_shard.c). */
int kvctl_shard_cmd(const kvctl_opts *o, int argc, char **argv);
/* kvctl parity (kvctl_parity.c). */
int kvctl_parity_cmd(const kvctl_opts *o, int argc, char **argv);
/* Compare the live records (key, version, value) of the replicas urls[0..n)
 * read through GET /internal/changes?since=0 (paged). With out, prints
 * "<label>: N replicas, K keys: identical|DIFFERENT" and the first
 * difference of each replica that differs from urls[0]. *nkeys (optional)
 * gets urls[0]'s count. KVCTL_OK when identical, KVCTL_FAIL when they differ
 * or a replica refused, KVCTL_CONNECT when one could not be reached. */
int kvctl_parity_replicas(const kvctl_opts *o, const char *const *urls,
                          size_t n, const char *label, FILE *out, size_t *nkeys);

#endif
