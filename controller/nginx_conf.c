#include "nginx_conf.h"

#include "addr.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int nginx_conf_var_set(nginx_conf_vars *vars, const char *name,
                       const char *value)
{
    char *copy;
    size_t i;

    if (strlen(name) >= sizeof vars->v[0].name)
        return -1;
    copy = strdup(value);
    if (copy == NULL)
        return -1;
    for (i = 0; i < vars->n; i++)
        if (strcmp(vars->v[i].name, name) == 0) {
            free(vars->v[i].value);
            vars->v[i].value = copy;
            return 0;
        }
    if (vars->n == NGINX_CONF_MAX_VARS) {
        free(copy);
        return -1;
    }
    snprintf(vars->v[vars->n].name, sizeof vars->v[0].name, "%s", name);
    vars->v[vars->n++].value = copy;
    return 0;
}

void nginx_conf_vars_free(nginx_conf_vars *vars)
{
    for (size_t i = 0; i < vars->n; i++)
        free(vars->v[i].value);
    vars->n = 0;
}

static const char *nginx_conf_var_get(const nginx_conf_vars *vars,
                                      const char *name, size_t len)
{
    for (size_t i = 0; i < vars->n; i++)
        if (strlen(vars->v[i].name) == len &&
            memcmp(vars->v[i].name, name, len) == 0)
            return vars->v[i].value;
    return NULL;
}

/* A growing output buffer. */
typedef struct nginx_conf_buf {
    char *p;
    size_t len, cap;
    int oom;
} nginx_conf_buf;

static void nginx_conf_put(nginx_conf_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

char *nginx_conf_render(const char *tmpl, const nginx_conf_vars *vars,
                        char *err, size_t errlen)
{
    nginx_conf_buf b = {0};
    const char *p = tmpl;
    const char *line = tmpl;  /* start of the current template line */
    unsigned lineno = 1;

    nginx_conf_put(&b, "", 0);
    while (*p) {
        const char *open = strstr(p, "{{");
        const char *close, *name, *val;
        size_t nlen, indent = 0;

        if (open == NULL) {
            nginx_conf_put(&b, p, strlen(p));
            break;
        }
        for (const char *q = p; q < open; q++)
            if (*q == '\n') {
                line = q + 1;
                lineno++;
            }
        nginx_conf_put(&b, p, (size_t)(open - p));
        name = open + 2;
        close = strstr(name, "}}");
        if (close == NULL || memchr(name, '\n', (size_t)(close - name))) {
            snprintf(err, errlen, "line %u: unterminated {{ placeholder",
                     lineno);
            free(b.p);
            return NULL;
        }
        nlen = (size_t)(close - name);
        val = nginx_conf_var_get(vars, name, nlen);
        if (val == NULL) {
            snprintf(err, errlen, "line %u: unknown placeholder {{%.*s}}",
                     lineno, (int)(nlen > 64 ? 64 : nlen), name);
            free(b.p);
            return NULL;
        }
        while (line + indent < open && (line[indent] == ' ' ||
                                         line[indent] == '\t'))
            indent++;
        /* Indent every continuation line of a multi-line value. */
        for (const char *v = val; *v;) {
            const char *nl = strchr(v, '\n');
            size_t n = nl ? (size_t)(nl - v) + 1 : strlen(v);
            nginx_conf_put(&b, v, n);
            v += n;
            if (nl && *v)
                nginx_conf_put(&b, line, indent);
        }
        p = close + 2;
    }
    if (b.oom) {
        snprintf(err, errlen, "out of memory");
        free(b.p);
        return NULL;
    }
    return b.p;
}

static int nginx_conf_setf(nginx_conf_vars *vars, const char *name,
                           const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int nginx_conf_setf(nginx_conf_vars *vars, const char *name,
                           const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return nginx_conf_var_set(vars, name, buf);
}

int nginx_conf_vars_from_config(nginx_conf_vars *vars, const kv_config *c,
                                const char *run_dir, const char *host,
                                uint64_t nofile_limit)
{
    nginx_conf_buf ups = {0};
    uint64_t nofile = 16384, conns;
    int64_t max_body = c->max_value_bytes + 64 * 1024;
    int64_t header = 3 * c->max_key_bytes + 2048; /* %XX per byte + the rest */
    int64_t read_s, connect_s;
    int rc = 0;

    if (nofile_limit && nofile > nofile_limit)
        nofile = nofile_limit;
    conns = nofile / 2 > 512 ? nofile / 2 : 512;
    if (header < 8192)
        header = 8192;
    header = (header + 1023) / 1024; /* in k */
    /* Long enough for a ?sync=1 write: the queue waits up to wait_max_ms. */
    read_s = (c->wait_max_ms + c->upstream_timeout_ms) / 1000 + 5;
    if (read_s < 30)
        read_s = 30;
    connect_s = c->upstream_timeout_ms / 1000;
    if (connect_s < 2)
        connect_s = 2;

    for (int64_t i = 0; i < c->api_count; i++) {
        char line[160];
        int n = snprintf(line, sizeof line,
                         "%sserver %s:%u max_fails=1 fail_timeout=1s;",
                         i ? "\n" : "", host,
                         config_api_port(c, (unsigned)i));
        nginx_conf_put(&ups, line, (size_t)n);
    }
    if (ups.oom)
        return -1;

    rc |= nginx_conf_var_set(vars, "RUN_DIR", run_dir);
    rc |= nginx_conf_setf(vars, "ERROR_LOG", "%s/nginx-error.log", run_dir);
    if (c->nginx_workers > 0)
        rc |= nginx_conf_setf(vars, "WORKERS", "%lld",
                              (long long)c->nginx_workers);
    else
        rc |= nginx_conf_var_set(vars, "WORKERS", "auto");
    rc |= nginx_conf_setf(vars, "NOFILE", "%llu", (unsigned long long)nofile);
    rc |= nginx_conf_setf(vars, "WORKER_CONNECTIONS", "%llu",
                          (unsigned long long)conns);
    if (strcmp(c->bind, "0.0.0.0") == 0 || c->bind[0] == '\0')
        rc |= nginx_conf_setf(vars, "LISTEN", "%lld", (long long)c->nginx_port);
    else
        rc |= nginx_conf_setf(vars, "LISTEN", "%s:%lld", c->bind,
                              (long long)c->nginx_port);
    rc |= nginx_conf_var_set(vars, "UPSTREAM_SERVERS", ups.p ? ups.p : "");
    {
        /* The dashboard's server: the controller, as its nodes reach it
         * (cluster.advertise_host: "controller" in the compose file). */
        addr_node me = {.name = "controller", .kind = "controller",
                        .shard = -1, .replica = -1};
        char chost[128], aerr[128];
        if (addr_host(c->advertise_host, c->bind, &me, chost, sizeof chost,
                      aerr, sizeof aerr) != 0)
            snprintf(chost, sizeof chost, "%s", host);
        rc |= nginx_conf_setf(vars, "CONTROLLER", "%s:%lld", chost,
                              (long long)c->base_port);
    }
    rc |= nginx_conf_setf(vars, "MAX_BODY", "%lld", (long long)max_body);
    rc |= nginx_conf_setf(vars, "HEADER_BUFFER", "%lldk", (long long)header);
    rc |= nginx_conf_setf(vars, "HEADER_TIMEOUT", "%lldms",
                          (long long)c->header_timeout_ms);
    rc |= nginx_conf_setf(vars, "PROXY_CONNECT_TIMEOUT", "%llds",
                          (long long)connect_s);
    rc |= nginx_conf_setf(vars, "PROXY_READ_TIMEOUT", "%llds",
                          (long long)read_s);
    free(ups.p);
    return rc ? -1 : 0;
}

static int nginx_conf_readable(const char *path)
{
    return access(path, R_OK) == 0;
}

int nginx_conf_find_template(const char *explicit_path, const char *bin_dir,
                             char *out, size_t outlen)
{
    static const char *const rel[] = {
        "/../../../nginx/nginx.conf.template", /* build/<variant>/bin */
        "/../nginx/nginx.conf.template",
        "/../share/kv/nginx.conf.template",
    };
    const char *env = getenv("KV_NGINX_TEMPLATE");

    if (explicit_path && *explicit_path) {
        snprintf(out, outlen, "%s", explicit_path);
        return nginx_conf_readable(out) ? 0 : -1;
    }
    if (env && *env) {
        snprintf(out, outlen, "%s", env);
        return nginx_conf_readable(out) ? 0 : -1;
    }
    for (size_t i = 0; bin_dir && i < sizeof rel / sizeof rel[0]; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s%s", bin_dir, rel[i]);
        if (nginx_conf_readable(path)) {
            if (realpath(path, out) == NULL || strlen(out) >= outlen)
                snprintf(out, outlen, "%s", path);
            return 0;
        }
    }
    snprintf(out, outlen, "nginx/nginx.conf.template");
    return nginx_conf_readable(out) ? 0 : -1;
}

char *nginx_conf_read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *p = realloc(buf, cap);
            if (p == NULL) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = p;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n < 4096)
            break;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

static int nginx_conf_mkdir(const char *path, char *err, size_t errlen)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "mkdir %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Render into out_path; upstream_include (NULL: the layout's api servers)
 * replaces UPSTREAM_SERVERS with an include of that file and sends the
 * error log to stderr; controller (NULL: from the configuration) is the
 * host:port the dashboard is passed to. */
static int nginx_conf_write_with(const char *template_path,
                                 const char *out_path, const kv_config *c,
                                 const char *run_dir, const char *host,
                                 const char *upstream_include,
                                 const char *controller, char *err,
                                 size_t errlen)
{
    static const char *const tmp[] = {"client_body", "proxy", "fastcgi",
                                      "uwsgi", "scgi"};
    nginx_conf_vars vars = {0};
    struct rlimit rl;
    uint64_t hard = 0;
    char path[PATH_MAX], msg[256];
    char *tmpl, *text;
    FILE *f;

    snprintf(path, sizeof path, "%s/nginx-tmp", run_dir);
    if (nginx_conf_mkdir(path, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < sizeof tmp / sizeof tmp[0]; i++) {
        snprintf(path, sizeof path, "%s/nginx-tmp/%s", run_dir, tmp[i]);
        if (nginx_conf_mkdir(path, err, errlen) < 0)
            return -1;
    }
    tmpl = nginx_conf_read_file(template_path, err, errlen);
    if (tmpl == NULL)
        return -1;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
        hard = (uint64_t)rl.rlim_max;
    if (nginx_conf_vars_from_config(&vars, c, run_dir, host, hard) < 0 ||
        (upstream_include &&
         (nginx_conf_setf(&vars, "UPSTREAM_SERVERS", "include %s;",
                          upstream_include) < 0 ||
          nginx_conf_var_set(&vars, "ERROR_LOG", "stderr") < 0)) ||
        (controller && nginx_conf_var_set(&vars, "CONTROLLER", controller) < 0)) {
        snprintf(err, errlen, "out of memory");
        text = NULL;
    } else {
        text = nginx_conf_render(tmpl, &vars, msg, sizeof msg);
        if (text == NULL)
            snprintf(err, errlen, "%s: %s", template_path, msg);
    }
    nginx_conf_vars_free(&vars);
    free(tmpl);
    if (text == NULL)
        return -1;
    f = fopen(out_path, "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", out_path, strerror(errno));
        free(text);
        return -1;
    }
    fprintf(f, "# Generated by kv-controller from %s. Do not edit:\n"
               "# it is rewritten at every start.\n\n",
            template_path);
    fputs(text, f);
    free(text);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: %s", out_path, strerror(errno));
        return -1;
    }
    return 0;
}

int nginx_conf_write(const char *template_path, const char *out_path,
                     const kv_config *c, const char *run_dir,
                     const char *host, char *err, size_t errlen)
{
    return nginx_conf_write_with(template_path, out_path, c, run_dir, host,
                                 NULL, NULL, err, errlen);
}

int nginx_conf_render_container(const char *template_path, const char *dir,
                                const kv_config *c, char *err, size_t errlen)
{
    char conf[PATH_MAX], ups[PATH_MAX], ctl[256];
    const char *env = getenv("KV_CONTROLLER");
    FILE *f;

    if (nginx_conf_mkdir(dir, err, errlen) < 0)
        return -1;
    if ((size_t)snprintf(conf, sizeof conf, "%s/nginx.conf", dir) >=
            sizeof conf ||
        (size_t)snprintf(ups, sizeof ups, "%s/upstream.conf", dir) >=
            sizeof ups) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -1;
    }
    /* Until the first resolution: a valid upstream that answers 502. */
    if (access(ups, F_OK) != 0) {
        f = fopen(ups, "w");
        if (f == NULL || fputs(NGINX_CONF_NO_UPSTREAM "\n", f) < 0 ||
            fclose(f) != 0) {
            snprintf(err, errlen, "%s: %s", ups, strerror(errno));
            return -1;
        }
    }
    /* The controller runs in a container of its own: $KV_CONTROLLER
     * (http://controller:7000, what kvctl uses) names it. */
    ctl[0] = '\0';
    if (env && strncmp(env, "http://", 7) == 0 && strlen(env + 7) < sizeof ctl) {
        snprintf(ctl, sizeof ctl, "%s", env + 7);
        ctl[strcspn(ctl, "/")] = '\0';
    }
    /* In a container the api replicas are found by name (the include),
     * not from the local port layout: host is unused. */
    return nginx_conf_write_with(template_path, conf, c, dir, "127.0.0.1", ups,
                                 ctl[0] ? ctl : NULL, err, errlen);
}
