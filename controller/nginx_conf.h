/* nginx_conf: render nginx/nginx.conf.template into the run directory.
 *
 * The template is plain nginx syntax with {{NAME}} placeholders. A value that
 * spans several lines is indented like the line its placeholder sits on.
 * Placeholders the controller fills (nginx_conf_vars_from_config):
 *   RUN_DIR, ERROR_LOG, WORKERS, NOFILE, WORKER_CONNECTIONS, LISTEN,
 *   UPSTREAM_SERVERS, MAX_BODY, HEADER_BUFFER, HEADER_TIMEOUT,
 *   PROXY_CONNECT_TIMEOUT, PROXY_READ_TIMEOUT.
 *
 * Two uses: the local cluster (nginx_conf_write: the api servers of the
 * port layout, the error log in the run directory) and the compose
 * deployment (nginx_conf_render_container, from kv-controller
 * --render-nginx DIR: the api servers come from DIR/upstream.conf, which
 * nginx/kv-nginx.sh rewrites whenever the api service name
 * resolves to another set of replicas, then reloads nginx).
 *
 * Ownership: rendered text is malloc'd, the caller frees it. */
#ifndef KV_CTL_NGINX_CONF_H
#define KV_CTL_NGINX_CONF_H

#include "config.h"

#include <stddef.h>
#include <stdint.h>

#define NGINX_CONF_MAX_VARS 24

typedef struct nginx_conf_var {
    char name[32];
    char *value;              /* owned by the vars set */
} nginx_conf_var;

typedef struct nginx_conf_vars {
    nginx_conf_var v[NGINX_CONF_MAX_VARS];
    size_t n;
} nginx_conf_vars;

/* Add or replace name = value (copied). 0 or -1. */
int nginx_conf_var_set(nginx_conf_vars *vars, const char *name,
                       const char *value);
void nginx_conf_vars_free(nginx_conf_vars *vars);

/* Fill every placeholder from the configuration. host: the address the api
 * processes are reached on (127.0.0.1 when bind is 0.0.0.0). nofile_limit:
 * the hard RLIMIT_NOFILE (0 = unknown). */
int nginx_conf_vars_from_config(nginx_conf_vars *vars, const kv_config *c,
                                const char *run_dir, const char *host,
                                uint64_t nofile_limit);

/* Substitute placeholders. NULL on an unknown or unterminated placeholder
 * (err names it). */
char *nginx_conf_render(const char *tmpl, const nginx_conf_vars *vars,
                        char *err, size_t errlen);

/* Find the template: explicit path first (may be NULL), then
 * $KV_NGINX_TEMPLATE, then next to the binaries (bin_dir/../../../nginx,
 * bin_dir/../nginx, bin_dir/../share/kv), then ./nginx. 0 with path in out,
 * or -1. */
int nginx_conf_find_template(const char *explicit_path, const char *bin_dir,
                             char *out, size_t outlen);

/* Read a whole file (caller frees), NULL + err on failure. */
char *nginx_conf_read_file(const char *path, char *err, size_t errlen);

/* Render template_path into out_path (and create the temp directories
 * below run_dir). 0 or -1 + err. */
int nginx_conf_write(const char *template_path, const char *out_path,
                     const kv_config *c, const char *run_dir,
                     const char *host, char *err, size_t errlen);

/* The upstream of a container before any api replica resolves: valid
 * nginx, and every request gets the JSON 502. */
#define NGINX_CONF_NO_UPSTREAM \
    "server 127.0.0.1:9 down; # no api replica resolves yet"

/* The compose deployment's nginx: DIR/nginx.conf (UPSTREAM_SERVERS = an
 * include of DIR/upstream.conf, ERROR_LOG = stderr, temp dirs below DIR),
 * and DIR/upstream.conf with NGINX_CONF_NO_UPSTREAM when it does not exist
 * yet. 0 or -1 + err. */
int nginx_conf_render_container(const char *template_path, const char *dir,
                                const kv_config *c, char *err, size_t errlen);

#endif
