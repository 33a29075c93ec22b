#include "cluster.h"

#include "addr.h"
#include "httpc.h"
#include "log.h"
#include "nginx_conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *cluster_kind_name(enum cluster_kind k)
{
    switch (k) {
    case CLUSTER_STORE: return "store";
    case CLUSTER_QUEUE: return "queue";
    case CLUSTER_API: return "api";
    case CLUSTER_NGINX: break;
    }
    return "nginx";
}

void cluster_advertise_host(const char *bind, char *out, size_t len)
{
    snprintf(out, len, "%s", config_local_host(bind));
}

static int cluster_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cluster_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* snprintf that reports truncation: 0 or -1. */
static int cluster_fmt(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cluster_fmt(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static cluster_node *cluster_add_node(cluster_t *cl, enum cluster_kind kind,
                                      int shard, int replica, uint16_t port,
                                      char *err, size_t errlen)
{
    cluster_node *n = &cl->nodes[cl->nnodes];

    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->shard = shard;
    n->replica = replica;
    n->port = port;
    n->sup_index = -1;
    atomic_init(&n->healthy, 0);
    atomic_init(&n->last_ok_ms, 0);
    atomic_init(&n->seen_seq, 0);
    atomic_init(&n->seen_epoch, 0);
    switch (kind) {
    case CLUSTER_STORE:
        snprintf(n->name, sizeof n->name, "store-%d-%d", shard, replica);
        break;
    case CLUSTER_API:
        snprintf(n->name, sizeof n->name, "api-%d", replica);
        break;
    default:
        snprintf(n->name, sizeof n->name, "%s", cluster_kind_name(kind));
    }
    if (addr_url(cl->cfg.advertise_host, cl->cfg.bind,
                 &(addr_node){.name = n->name,
                              .kind = cluster_kind_name(kind),
                              .shard = kind == CLUSTER_STORE ? shard : -1,
                              .replica = kind == CLUSTER_STORE ? replica : -1},
                 port, n->url, sizeof n->url, err, errlen) < 0)
        return NULL;
    cl->nnodes++;
    return n;
}

int cluster_init(cluster_t *cl, const kv_config *c, const char *run_dir,
                 const char *bin_dir, const char *log_dir, char *err,
                 size_t errlen)
{
    char cwd[PATH_MAX];
    size_t max_nodes;

    memset(cl, 0, sizeof *cl);
    cl->cfg = *c;
    if (c->shards < 1 || c->shards > 1000)
        return cluster_errf(err, errlen, "cluster.shards: must be 1..1000");
    if (c->replicas < 1 || c->replicas > 10)
        return cluster_errf(err, errlen,
                            "cluster.replicas: must be 1..10 (store ports are "
                            "base_port + 100 + 10 * shard + replica)");
    if (c->api_count < 1 || c->api_count > 90)
        return cluster_errf(err, errlen,
                            "api.count: must be 1..90 (api ports are "
                            "base_port + 10 + i)");
    if (c->base_port < 1 ||
        c->base_port + 100 + 10 * (c->shards - 1) + c->replicas - 1 > 65535)
        return cluster_errf(err, errlen,
                            "cluster.base_port: the store ports would pass "
                            "65535");
    if (c->nginx_port < 1 || c->nginx_port > 65535)
        return cluster_errf(err, errlen, "nginx.port: must be 1..65535");

    cl->supervise = c->supervise != 0;
    if (addr_check_template(c->advertise_host, err, errlen) < 0)
        return -1;
    cluster_advertise_host(c->bind, cl->host, sizeof cl->host);
    snprintf(cl->controller_url, sizeof cl->controller_url, "http://%s:%lld",
             cl->host, (long long)c->base_port);
    if (getcwd(cwd, sizeof cwd) == NULL)
        return cluster_errf(err, errlen, "getcwd: %s", strerror(errno));
    if (!c->data_dir[0])
        return cluster_errf(err, errlen, "cluster.data_dir: must not be empty");
    if (c->data_dir[0] == '/'
            ? cluster_fmt(cl->data_dir, sizeof cl->data_dir, "%s", c->data_dir)
            : cluster_fmt(cl->data_dir, sizeof cl->data_dir, "%s/%s", cwd,
                          c->data_dir))
        return cluster_errf(err, errlen, "cluster.data_dir: path too long");
    if (strlen(cl->data_dir) >= sizeof cl->cfg.data_dir)
        return cluster_errf(err, errlen,
                            "cluster.data_dir: absolute path %s is over %d "
                            "bytes", cl->data_dir, CFG_STR_MAX - 1);
    memcpy(cl->cfg.data_dir, cl->data_dir, strlen(cl->data_dir) + 1);
    if (run_dir && *run_dir
            ? (run_dir[0] == '/'
                   ? cluster_fmt(cl->run_dir, sizeof cl->run_dir, "%s", run_dir)
                   : cluster_fmt(cl->run_dir, sizeof cl->run_dir, "%s/%s", cwd,
                                 run_dir))
            : cluster_fmt(cl->run_dir, sizeof cl->run_dir, "%s/run",
                          cl->data_dir))
        return cluster_errf(err, errlen, "run dir: path too long");
    if (log_dir && *log_dir &&
        (log_dir[0] == '/'
             ? cluster_fmt(cl->log_dir, sizeof cl->log_dir, "%s", log_dir)
             : cluster_fmt(cl->log_dir, sizeof cl->log_dir, "%s/%s", cwd,
                           log_dir)))
        return cluster_errf(err, errlen, "log dir: path too long");
    if (cluster_fmt(cl->bin_dir, sizeof cl->bin_dir, "%s",
                    bin_dir ? bin_dir : ".") ||
        cluster_fmt(cl->config_path, sizeof cl->config_path, "%s/cluster.json",
                    cl->run_dir) ||
        cluster_fmt(cl->nginx_conf, sizeof cl->nginx_conf, "%s/nginx.conf",
                    cl->run_dir) ||
        cluster_fmt(cl->nginx_pidfile, sizeof cl->nginx_pidfile,
                    "%s/nginx.pid", cl->run_dir) ||
        cluster_fmt(cl->nginx_errlog, sizeof cl->nginx_errlog,
                    "%s/nginx-error.log", cl->run_dir))
        return cluster_errf(err, errlen, "run dir: path too long");
    if (cluster_fmt(cl->state_path, sizeof cl->state_path,
                    "%s/controller-state.json", cl->data_dir))
        return cluster_errf(err, errlen, "cluster.data_dir: path too long");

    max_nodes = (size_t)(c->shards * c->replicas + 1 + c->api_count + 1);
    cl->nodes = calloc(max_nodes, sizeof *cl->nodes);
    cl->shards = calloc((size_t)c->shards, sizeof *cl->shards);
    if (cl->nodes == NULL || cl->shards == NULL) {
        cluster_free(cl);
        return cluster_errf(err, errlen, "out of memory");
    }
    pthread_mutex_init(&cl->mu, NULL);
    cl->epoch = 1;
    cl->nshards = (size_t)c->shards;
    atomic_init(&cl->failovers, 0);
    atomic_init(&cl->failovers_skipped, 0);
    for (size_t s = 0; s < cl->nshards; s++) {
        cl->shards[s].epoch = 1;
        cl->shards[s].primary = 0;
        for (int64_t r = 0; r < c->replicas; r++)
            if (cluster_add_node(cl, CLUSTER_STORE, (int)s, (int)r,
                                 config_store_port(c, (unsigned)s,
                                                   (unsigned)r),
                                 err, errlen) == NULL)
                goto bad_node;
    }
    if (cluster_add_node(cl, CLUSTER_QUEUE, -1, -1, config_queue_port(c), err,
                         errlen) == NULL)
        goto bad_node;
    /* Watching external processes: the stores and the queue have one
     * address each; api replicas (any number, behind one service name) and
     * nginx are the container platform's business. */
    for (int64_t i = 0; cl->supervise && i < c->api_count; i++) {
        cluster_node *n = cluster_add_node(cl, CLUSTER_API, -1, (int)i,
                                           config_api_port(c, (unsigned)i),
                                           err, errlen);
        if (n == NULL)
            goto bad_node;
        n->replica = -1;
    }
    if (cl->supervise &&
        cluster_add_node(cl, CLUSTER_NGINX, -1, -1, (uint16_t)c->nginx_port,
                         err, errlen) == NULL)
        goto bad_node;
    atomic_init(&cl->ready, 0);
    return 0;
bad_node:
    cluster_free(cl);
    return -1;
}

void cluster_free(cluster_t *cl)
{
    if (cl->nodes || cl->shards)
        pthread_mutex_destroy(&cl->mu);
    free(cl->nodes);
    free(cl->shards);
    cl->nodes = NULL;
    cl->shards = NULL;
    cl->nnodes = cl->nshards = 0;
}

const char *cluster_node_role(cluster_t *cl, const cluster_node *n)
{
    const char *role;

    if (n->kind != CLUSTER_STORE)
        return cluster_kind_name(n->kind);
    pthread_mutex_lock(&cl->mu);
    role = cl->shards[n->shard].primary == n->replica ? "primary"
                                                      : "secondary";
    pthread_mutex_unlock(&cl->mu);
    return role;
}

int cluster_set_primary(cluster_t *cl, unsigned shard, int replica)
{
    if (shard >= cl->nshards || replica < -1 || replica >= cl->cfg.replicas)
        return -1;
    pthread_mutex_lock(&cl->mu);
    cl->shards[shard].primary = replica;
    cl->shards[shard].epoch++;
    cl->epoch++;
    pthread_mutex_unlock(&cl->mu);
    return 0;
}

int cluster_promote(cluster_t *cl, unsigned shard, int replica,
                    uint64_t handoff_seq, int64_t now_ms)
{
    cluster_shard *sh;

    if (shard >= cl->nshards || replica < 0 || replica >= cl->cfg.replicas)
        return -1;
    pthread_mutex_lock(&cl->mu);
    sh = &cl->shards[shard];
    sh->primary = replica;
    sh->epoch++;
    sh->handoff_seq = handoff_seq;
    sh->failovers++;
    sh->last_failover_ms = now_ms;
    cl->epoch++;
    pthread_mutex_unlock(&cl->mu);
    atomic_fetch_add(&cl->failovers, 1);
    return 0;
}

cluster_node *cluster_store_node(cluster_t *cl, unsigned shard, int replica)
{
    for (size_t i = 0; i < cl->nnodes; i++) {
        cluster_node *n = &cl->nodes[i];
        if (n->kind == CLUSTER_STORE && n->shard == (int)shard &&
            n->replica == replica)
            return n;
    }
    return NULL;
}

/* ---- topology state on disk ---- */

static int cluster_json_u64(const cJSON *o, const char *name, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsNumber(v) || v->valuedouble < 0 ||
        v->valuedouble > 9007199254740992.0)
        return -1;
    *out = (uint64_t)v->valuedouble;
    return 0;
}

int cluster_load_state(cluster_t *cl, char *err, size_t errlen)
{
    FILE *f = fopen(cl->state_path, "r");
    char *text = NULL;
    size_t len = 0, cap = 0;
    cJSON *root = NULL;
    const cJSON *shards, *sj;
    uint64_t epoch;
    cluster_shard *next = NULL;
    size_t i = 0;
    int rc = -1;

    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        return cluster_errf(err, errlen, "%s: %s", cl->state_path,
                            strerror(errno));
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *t = realloc(text, cap = cap ? cap * 2 : 8192);
            if (t == NULL)
                break;
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    if (text == NULL)
        return cluster_errf(err, errlen, "%s: out of memory", cl->state_path);
    text[len] = '\0';
    root = cJSON_ParseWithLength(text, len);
    shards = cJSON_GetObjectItemCaseSensitive(root, "shards");
    if (root == NULL || cluster_json_u64(root, "epoch", &epoch) < 0 ||
        !cJSON_IsArray(shards)) {
        cluster_errf(err, errlen, "%s: not a controller state file (delete "
                     "it to start over at epoch 1)", cl->state_path);
        goto out;
    }
    if ((size_t)cJSON_GetArraySize(shards) != cl->nshards) {
        cluster_errf(err, errlen, "%s: written for %d shards, the "
                     "configuration has %zu (cluster.shards cannot change "
                     "over existing data)", cl->state_path,
                     cJSON_GetArraySize(shards), cl->nshards);
        goto out;
    }
    next = calloc(cl->nshards, sizeof *next);
    if (next == NULL) {
        cluster_errf(err, errlen, "out of memory");
        goto out;
    }
    cJSON_ArrayForEach(sj, shards) {
        uint64_t e, primary, hs = 0, fo = 0;
        if (cluster_json_u64(sj, "epoch", &e) < 0 ||
            cluster_json_u64(sj, "primary", &primary) < 0 ||
            primary >= (uint64_t)cl->cfg.replicas) {
            cluster_errf(err, errlen, "%s: shards[%zu] needs an epoch and a "
                         "primary below cluster.replicas (%lld)",
                         cl->state_path, i, (long long)cl->cfg.replicas);
            goto out;
        }
        cluster_json_u64(sj, "handoff_seq", &hs);
        cluster_json_u64(sj, "failovers", &fo);
        next[i].epoch = e;
        next[i].primary = (int)primary;
        next[i].handoff_seq = hs;
        next[i].failovers = fo;
        i++;
    }
    pthread_mutex_lock(&cl->mu);
    cl->epoch = epoch;
    memcpy(cl->shards, next, cl->nshards * sizeof *next);
    pthread_mutex_unlock(&cl->mu);
    log_info("topology state from %s: epoch %llu", cl->state_path,
             (unsigned long long)epoch);
    rc = 0;
out:
    free(next);
    cJSON_Delete(root);
    free(text);
    return rc;
}

int cluster_save_state(cluster_t *cl)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(root, "shards");
    char tmp[PATH_MAX + 8];
    char *text;
    FILE *f;
    int rc = 0;

    pthread_mutex_lock(&cl->mu);
    cJSON_AddNumberToObject(root, "epoch", (double)cl->epoch);
    for (size_t s = 0; s < cl->nshards; s++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)s);
        cJSON_AddNumberToObject(o, "epoch", (double)cl->shards[s].epoch);
        cJSON_AddNumberToObject(o, "primary", cl->shards[s].primary);
        cJSON_AddNumberToObject(o, "handoff_seq",
                                (double)cl->shards[s].handoff_seq);
        cJSON_AddNumberToObject(o, "failovers",
                                (double)cl->shards[s].failovers);
        cJSON_AddItemToArray(arr, o);
    }
    pthread_mutex_unlock(&cl->mu);
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text == NULL)
        return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp", cl->state_path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        log_warn("cannot write %s: %s", tmp, strerror(errno));
        free(text);
        return -1;
    }
    if (fputs(text, f) < 0 || fputc('\n', f) == EOF || fflush(f) != 0 ||
        fsync(fileno(f)) != 0)
        rc = -1;
    if (fclose(f) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, cl->state_path) != 0)
        rc = -1;
    if (rc < 0)
        log_warn("cannot write %s: %s", cl->state_path, strerror(errno));
    free(text);
    return rc;
}

/* ---- command lines ---- */

static int cluster_arg(cluster_argv *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int cluster_arg(cluster_argv *a, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (a->argc >= SUP_MAX_ARGS)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(a->buf + a->used, sizeof a->buf - a->used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof a->buf - a->used)
        return -1;
    a->argv[a->argc++] = a->buf + a->used;
    a->argv[a->argc] = NULL;
    a->used += (size_t)n + 1;
    return 0;
}

int cluster_node_argv(cluster_t *cl, size_t i, cluster_argv *a)
{
    const cluster_node *n = &cl->nodes[i];
    int rc = 0;

    a->argc = 0;
    a->used = 0;
    a->argv[0] = NULL;
    switch (n->kind) {
    case CLUSTER_STORE:
        rc |= cluster_arg(a, "%s/kv-store", cl->bin_dir);
        rc |= cluster_arg(a, "--config");
        rc |= cluster_arg(a, "%s", cl->config_path);
        rc |= cluster_arg(a, "--port");
        rc |= cluster_arg(a, "%u", (unsigned)n->port);
        rc |= cluster_arg(a, "--shard");
        rc |= cluster_arg(a, "%d", n->shard);
        rc |= cluster_arg(a, "--replica");
        rc |= cluster_arg(a, "%d", n->replica);
        rc |= cluster_arg(a, "--role");
        rc |= cluster_arg(a, "%s", cluster_node_role(cl, n));
        rc |= cluster_arg(a, "--data");
        rc |= cluster_arg(a, "%s/shard-%d-%d", cl->data_dir, n->shard,
                          n->replica);
        rc |= cluster_arg(a, "--controller");
        rc |= cluster_arg(a, "%s", cl->controller_url);
        break;
    case CLUSTER_QUEUE:
        rc |= cluster_arg(a, "%s/kv-queue", cl->bin_dir);
        rc |= cluster_arg(a, "--config");
        rc |= cluster_arg(a, "%s", cl->config_path);
        rc |= cluster_arg(a, "--port");
        rc |= cluster_arg(a, "%u", (unsigned)n->port);
        rc |= cluster_arg(a, "--controller");
        rc |= cluster_arg(a, "%s", cl->controller_url);
        rc |= cluster_arg(a, "--data");
        rc |= cluster_arg(a, "%s/queue", cl->data_dir);
        break;
    case CLUSTER_API:
        rc |= cluster_arg(a, "%s/kv-api", cl->bin_dir);
        rc |= cluster_arg(a, "--config");
        rc |= cluster_arg(a, "%s", cl->config_path);
        rc |= cluster_arg(a, "--port");
        rc |= cluster_arg(a, "%u", (unsigned)n->port);
        rc |= cluster_arg(a, "--controller");
        rc |= cluster_arg(a, "%s", cl->controller_url);
        break;
    case CLUSTER_NGINX:
        rc |= cluster_arg(a, "%s", cl->nginx_bin[0] ? cl->nginx_bin
                                                    : cl->cfg.nginx_bin);
        rc |= cluster_arg(a, "-p");
        rc |= cluster_arg(a, "%s/", cl->run_dir);
        rc |= cluster_arg(a, "-c");
        rc |= cluster_arg(a, "%s", cl->nginx_conf);
        rc |= cluster_arg(a, "-e");
        rc |= cluster_arg(a, "%s", cl->nginx_errlog);
        break;
    }
    return rc ? -1 : 0;
}

/* ---- preflight ---- */

int cluster_find_program(const char *name, char *out, size_t outlen)
{
    static const char *const extra[] = {"/usr/sbin", "/usr/local/sbin",
                                        "/sbin", "/usr/local/nginx/sbin"};
    const char *path = getenv("PATH");

    if (name == NULL || *name == '\0')
        return -1;
    if (strchr(name, '/')) {
        snprintf(out, outlen, "%s", name);
        return access(out, X_OK) == 0 ? 0 : -1;
    }
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(out, outlen, "%.*s/%s", (int)n, path,
                                      name) < outlen &&
            access(out, X_OK) == 0)
            return 0;
        path += n + (path[n] == ':');
    }
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        snprintf(out, outlen, "%s/%s", extra[i], name);
        if (access(out, X_OK) == 0)
            return 0;
    }
    return -1;
}

int cluster_check_binaries(cluster_t *cl, char *err, size_t errlen)
{
    static const char *const progs[] = {"kv-store", "kv-queue", "kv-api"};

    if (!cl->supervise)
        return 0;
    for (size_t i = 0; i < sizeof progs / sizeof progs[0]; i++) {
        char path[PATH_MAX];
        if (cluster_fmt(path, sizeof path, "%s/%s", cl->bin_dir, progs[i]) ||
            access(path, X_OK) != 0)
            return cluster_errf(err, errlen,
                                "%s not found next to kv-controller (%s): "
                                "build it with `make`",
                                progs[i], path);
    }
    if (cluster_find_program(cl->cfg.nginx_bin, cl->nginx_bin,
                             sizeof cl->nginx_bin) < 0)
        return cluster_errf(err, errlen,
                            "nginx.bin: cannot find \"%s\" in PATH or "
                            "/usr/sbin; install nginx (nginx-light) or set "
                            "nginx.bin to its path",
                            cl->cfg.nginx_bin);
    return 0;
}

static int cluster_port_free(const char *bind_addr, uint16_t port, int *eno)
{
    struct sockaddr_in sa;
    int one = 1, fd, rc;

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, bind_addr, &sa.sin_addr) != 1) {
        *eno = EINVAL;
        return 0;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *eno = errno;
        return 0;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    *eno = rc < 0 ? errno : 0;
    close(fd);
    return rc == 0;
}

int cluster_check_ports(const cluster_t *cl, char *err, size_t errlen)
{
    const char *bind_addr = cl->cfg.bind[0] ? cl->cfg.bind : "0.0.0.0";
    int eno;

    if (!cluster_port_free(bind_addr, (uint16_t)cl->cfg.base_port, &eno))
        return cluster_errf(err, errlen,
                            "port %lld on %s (kv-controller, "
                            "cluster.base_port) is not available: %s",
                            (long long)cl->cfg.base_port, bind_addr,
                            strerror(eno));
    for (size_t i = 0; cl->supervise && i < cl->nnodes; i++) {
        const cluster_node *n = &cl->nodes[i];
        if (!cluster_port_free(bind_addr, n->port, &eno))
            return cluster_errf(err, errlen,
                                "port %u on %s (%s) is not available: %s; "
                                "stop what holds it or move the cluster "
                                "(cluster.base_port, nginx.port)",
                                (unsigned)n->port, bind_addr, n->name,
                                strerror(eno));
    }
    return 0;
}

static int cluster_mkdirs(const char *path, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len >= sizeof buf)
        return cluster_errf(err, errlen, "path too long: %s", path);
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return cluster_errf(err, errlen, "mkdir %s: %s", buf,
                                strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return cluster_errf(err, errlen, "mkdir %s: %s", buf, strerror(errno));
    return 0;
}

static int cluster_write_file(const char *path, const char *text, char *err,
                              size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return cluster_errf(err, errlen, "%s: %s", path, strerror(errno));
    fputs(text, f);
    fputc('\n', f);
    if (fclose(f) != 0)
        return cluster_errf(err, errlen, "%s: %s", path, strerror(errno));
    return 0;
}

/* Run `nginx -t` on the rendered file; its output goes to a file that is
 * quoted in err when the test fails. */
static int cluster_nginx_test(cluster_t *cl, char *err, size_t errlen)
{
    char out_path[PATH_MAX], prefix[PATH_MAX];
    char *argv[] = {cl->nginx_bin, "-t", "-q", "-p", prefix, "-c",
                    cl->nginx_conf, "-e", cl->nginx_errlog, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none;
    pid_t pid;
    int status = 0, rc;

    if (cluster_fmt(prefix, sizeof prefix, "%s/", cl->run_dir) ||
        cluster_fmt(out_path, sizeof out_path, "%s/nginx-test.log",
                    cl->run_dir))
        return cluster_errf(err, errlen, "run dir: path too long");
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out_path,
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    rc = posix_spawn(&pid, cl->nginx_bin, &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        return cluster_errf(err, errlen, "cannot run %s: %s", cl->nginx_bin,
                            strerror(rc));
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    {
        char buf[600] = "";
        FILE *f = fopen(out_path, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        return cluster_errf(err, errlen, "nginx rejects %s: %s",
                            cl->nginx_conf, buf);
    }
}

int cluster_prepare(cluster_t *cl, const char *nginx_template, char *err,
                    size_t errlen)
{
    char path[PATH_MAX];
    char *json;

    if (cluster_mkdirs(cl->data_dir, err, errlen) < 0)
        return -1;
    if (!cl->supervise)
        return 0; /* the nodes have their own data; ours is the state file */
    if (cluster_mkdirs(cl->run_dir, err, errlen) < 0)
        return -1;
    if (cl->log_dir[0] && cluster_mkdirs(cl->log_dir, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < cl->nnodes; i++) {
        const cluster_node *n = &cl->nodes[i];
        int bad;
        if (n->kind == CLUSTER_STORE)
            bad = cluster_fmt(path, sizeof path, "%s/shard-%d-%d",
                              cl->data_dir, n->shard, n->replica);
        else if (n->kind == CLUSTER_QUEUE)
            bad = cluster_fmt(path, sizeof path, "%s/queue", cl->data_dir);
        else
            continue;
        if (bad)
            return cluster_errf(err, errlen, "data dir: path too long");
        if (cluster_mkdirs(path, err, errlen) < 0)
            return -1;
    }
    json = config_to_json(&cl->cfg);
    if (json == NULL)
        return cluster_errf(err, errlen, "config_to_json failed");
    if (cluster_write_file(cl->config_path, json, err, errlen) < 0) {
        free(json);
        return -1;
    }
    free(json);
    if (nginx_conf_write(nginx_template, cl->nginx_conf, &cl->cfg, cl->run_dir,
                         cl->host, err, errlen) < 0)
        return -1;
    return cluster_nginx_test(cl, err, errlen);
}

int cluster_register(cluster_t *cl, sup_t *sup)
{
    for (size_t i = 0; i < cl->nnodes; i++) {
        cluster_node *n = &cl->nodes[i];
        cluster_argv a;
        sup_spec spec;
        int idx;

        if (cluster_node_argv(cl, i, &a) < 0)
            return -1;
        memset(&spec, 0, sizeof spec);
        snprintf(spec.name, sizeof spec.name, "%s", n->name);
        snprintf(spec.kind, sizeof spec.kind, "%s", cluster_kind_name(n->kind));
        snprintf(spec.role, sizeof spec.role, "%s", cluster_node_role(cl, n));
        snprintf(spec.url, sizeof spec.url, "%s", n->url);
        spec.shard = n->shard;
        spec.replica = n->replica;
        spec.port = n->port;
        spec.argv = a.argv;
        if (n->kind == CLUSTER_NGINX) {
            spec.group = 1; /* master + workers: guarded process group */
            spec.pidfile = cl->nginx_pidfile;
        }
        idx = sup_add(sup, &spec);
        if (idx < 0)
            return -1;
        n->sup_index = idx;
    }
    return 0;
}

int cluster_update_child(cluster_t *cl, sup_t *sup, size_t i)
{
    cluster_argv a;

    if (i >= cl->nnodes || cl->nodes[i].sup_index < 0 ||
        cluster_node_argv(cl, i, &a) < 0)
        return -1;
    return sup_set_spec(sup, (size_t)cl->nodes[i].sup_index,
                        cluster_node_role(cl, &cl->nodes[i]), a.argv);
}

/* ---- published state ---- */

cJSON *cluster_topology_json(cluster_t *cl)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *shards = cJSON_CreateArray();
    const char *queue = "";

    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].kind == CLUSTER_QUEUE)
            queue = cl->nodes[i].url;
    pthread_mutex_lock(&cl->mu);
    cJSON_AddNumberToObject(root, "epoch", (double)cl->epoch);
    cJSON_AddNumberToObject(root, "vnodes", (double)cl->cfg.vnodes);
    cJSON_AddStringToObject(root, "queue", queue);
    for (size_t s = 0; s < cl->nshards; s++) {
        cJSON *sh = cJSON_CreateObject();
        cJSON *secs = cJSON_CreateArray();
        int primary = cl->shards[s].primary;

        cJSON_AddNumberToObject(sh, "id", (double)s);
        cJSON_AddNumberToObject(sh, "epoch", (double)cl->shards[s].epoch);
        cJSON_AddItemToObject(sh, "primary", cJSON_CreateNull());
        for (size_t i = 0; i < cl->nnodes; i++) {
            const cluster_node *n = &cl->nodes[i];
            if (n->kind != CLUSTER_STORE || n->shard != (int)s)
                continue;
            if (n->replica == primary)
                cJSON_ReplaceItemInObject(sh, "primary",
                                          cJSON_CreateString(n->url));
            else
                cJSON_AddItemToArray(secs, cJSON_CreateString(n->url));
        }
        cJSON_AddItemToObject(sh, "secondaries", secs);
        cJSON_AddNumberToObject(sh, "handoff_seq",
                                (double)cl->shards[s].handoff_seq);
        cJSON_AddItemToArray(shards, sh);
    }
    pthread_mutex_unlock(&cl->mu);
    cJSON_AddItemToObject(root, "shards", shards);
    return root;
}

cJSON *cluster_status_json(cluster_t *cl, sup_t *sup)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *ctl = cJSON_CreateObject();
    cJSON *kids = cJSON_CreateArray();
    cJSON *shards = cJSON_CreateArray();
    int64_t now = sup_now_ms();
    uint64_t epoch;

    pthread_mutex_lock(&cl->mu);
    epoch = cl->epoch;
    for (size_t s = 0; s < cl->nshards; s++) {
        const cluster_shard *sh = &cl->shards[s];
        cJSON *o = cJSON_CreateObject();
        const cluster_node *p = NULL;
        for (size_t i = 0; i < cl->nnodes && sh->primary >= 0; i++)
            if (cl->nodes[i].kind == CLUSTER_STORE &&
                cl->nodes[i].shard == (int)s &&
                cl->nodes[i].replica == sh->primary)
                p = &cl->nodes[i];
        cJSON_AddNumberToObject(o, "id", (double)s);
        cJSON_AddNumberToObject(o, "epoch", (double)sh->epoch);
        cJSON_AddNumberToObject(o, "primary_replica", sh->primary);
        if (p)
            cJSON_AddStringToObject(o, "primary", p->url);
        else
            cJSON_AddNullToObject(o, "primary");
        cJSON_AddNumberToObject(o, "handoff_seq", (double)sh->handoff_seq);
        cJSON_AddNumberToObject(o, "failovers", (double)sh->failovers);
        if (sh->last_failover_ms > 0)
            cJSON_AddNumberToObject(o, "last_failover_ms_ago",
                                    (double)(now - sh->last_failover_ms));
        cJSON_AddItemToArray(shards, o);
    }
    pthread_mutex_unlock(&cl->mu);
    cJSON_AddStringToObject(root, "status", "ok");
    cJSON_AddStringToObject(root, "mode", cl->supervise ? "supervise"
                                                        : "external");
    cJSON_AddBoolToObject(root, "ready", atomic_load(&cl->ready));
    cJSON_AddNumberToObject(root, "epoch", (double)epoch);
    cJSON_AddNumberToObject(root, "failovers",
                            (double)atomic_load(&cl->failovers));
    cJSON_AddNumberToObject(root, "failovers_skipped",
                            (double)atomic_load(&cl->failovers_skipped));
    cJSON_AddNumberToObject(ctl, "pid", (double)getpid());
    cJSON_AddStringToObject(ctl, "url", cl->controller_url);
    cJSON_AddNumberToObject(ctl, "port", (double)cl->cfg.base_port);
    cJSON_AddStringToObject(ctl, "run_dir", cl->run_dir);
    cJSON_AddStringToObject(ctl, "data_dir", cl->data_dir);
    cJSON_AddItemToObject(root, "controller", ctl);
    for (size_t i = 0; i < cl->nnodes; i++) {
        const cluster_node *n = &cl->nodes[i];
        cJSON *k = cJSON_CreateObject();
        sup_info info;

        if (n->sup_index < 0 || sup_get(sup, (size_t)n->sup_index, &info) < 0) {
            memset(&info, 0, sizeof info);
            info.state = SUP_STOPPED;
        }
        cJSON_AddStringToObject(k, "name", n->name);
        cJSON_AddStringToObject(k, "kind", cluster_kind_name(n->kind));
        cJSON_AddStringToObject(k, "role", cluster_node_role(cl, n));
        if (n->kind == CLUSTER_STORE) {
            cJSON_AddNumberToObject(k, "shard", n->shard);
            cJSON_AddNumberToObject(k, "replica", n->replica);
            cJSON_AddNumberToObject(k, "applied_seq",
                                    (double)atomic_load(&n->seen_seq));
            cJSON_AddNumberToObject(k, "store_epoch",
                                    (double)atomic_load(&n->seen_epoch));
        }
        if (info.pid > 0)
            cJSON_AddNumberToObject(k, "pid", (double)info.pid);
        else
            cJSON_AddNullToObject(k, "pid");
        cJSON_AddNumberToObject(k, "port", n->port);
        cJSON_AddStringToObject(k, "url", n->url);
        if (n->sup_index < 0) {
            /* Not ours to run: what the last /health probe said. */
            cJSON_AddStringToObject(k, "state", "external");
            cJSON_AddBoolToObject(k, "healthy", atomic_load(&n->healthy));
            if (!atomic_load(&n->healthy) && n->last_error[0])
                cJSON_AddStringToObject(k, "last_error", n->last_error);
        } else {
            cJSON_AddStringToObject(k, "state", sup_state_name(info.state));
            cJSON_AddBoolToObject(k, "healthy", info.state == SUP_RUNNING &&
                                                    atomic_load(&n->healthy));
        }
        if (n->sup_index >= 0) { /* the supervisor's to tell */
            cJSON_AddNumberToObject(k, "restarts", info.restarts);
            cJSON_AddNumberToObject(k, "uptime_ms", (double)info.uptime_ms);
        }
        if (info.state == SUP_RESTARTING)
            cJSON_AddNumberToObject(k, "restart_in_ms",
                                    (double)info.next_start_ms);
        if (info.last_exit[0])
            cJSON_AddStringToObject(k, "last_exit", info.last_exit);
        cJSON_AddItemToArray(kids, k);
    }
    cJSON_AddItemToObject(root, "children", kids);
    cJSON_AddItemToObject(root, "shards", shards);
    return root;
}

char *cluster_metrics_text(cluster_t *cl, sup_t *sup, size_t *len)
{
    size_t cap = 1536 + cl->nnodes * 512 + cl->nshards * 256, off = 0;
    char *buf = malloc(cap);
    static const char *const head =
        "# HELP kv_controller_ready 1 once every child answered /health\n"
        "# TYPE kv_controller_ready gauge\n"
        "kv_controller_ready %d\n"
        "# HELP kv_controller_epoch Cluster topology epoch\n"
        "# TYPE kv_controller_epoch gauge\n"
        "kv_controller_epoch %llu\n"
        "# HELP kv_controller_failovers_total Primaries replaced by a "
        "promoted secondary\n"
        "# TYPE kv_controller_failovers_total counter\n"
        "kv_controller_failovers_total %llu\n"
        "# HELP kv_controller_failovers_skipped_total Failovers due but not "
        "done: no live secondary\n"
        "# TYPE kv_controller_failovers_skipped_total counter\n"
        "kv_controller_failovers_skipped_total %llu\n"
        "# HELP kv_controller_child_up 1 while the child process runs\n"
        "# TYPE kv_controller_child_up gauge\n";
    uint64_t epoch;

    if (buf == NULL)
        return NULL;
    pthread_mutex_lock(&cl->mu);
    epoch = cl->epoch;
    pthread_mutex_unlock(&cl->mu);
    off += (size_t)snprintf(buf + off, cap - off, head,
                            atomic_load(&cl->ready), (unsigned long long)epoch,
                            (unsigned long long)atomic_load(&cl->failovers),
                            (unsigned long long)atomic_load(
                                &cl->failovers_skipped));
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            off += (size_t)snprintf(
                buf + off, cap - off,
                "# HELP kv_controller_child_restarts_total Unexpected exits "
                "followed by a restart\n"
                "# TYPE kv_controller_child_restarts_total counter\n");
        if (pass == 2)
            off += (size_t)snprintf(
                buf + off, cap - off,
                "# HELP kv_controller_child_healthy 1 when the last /health "
                "probe passed\n"
                "# TYPE kv_controller_child_healthy gauge\n");
        for (size_t i = 0; i < cl->nnodes && off < cap; i++) {
            const cluster_node *n = &cl->nodes[i];
            sup_info info;
            long long v;
            memset(&info, 0, sizeof info);
            if (n->sup_index >= 0)
                sup_get(sup, (size_t)n->sup_index, &info);
            if (n->sup_index < 0) /* external: up = answers /health */
                info.state = atomic_load(&n->healthy) ? SUP_RUNNING
                                                      : SUP_STOPPED;
            v = pass == 0   ? info.state == SUP_RUNNING
                : pass == 1 ? (long long)info.restarts
                            : info.state == SUP_RUNNING &&
                                  atomic_load(&n->healthy);
            off += (size_t)snprintf(buf + off, cap - off,
                                    "%s{name=\"%s\",kind=\"%s\"} %lld\n",
                                    pass == 0   ? "kv_controller_child_up"
                                    : pass == 1 ? "kv_controller_child_restarts_total"
                                                : "kv_controller_child_healthy",
                                    n->name, cluster_kind_name(n->kind), v);
        }
    }
    if (off < cap)
        off += (size_t)snprintf(buf + off, cap - off,
                                "# HELP kv_controller_shard_epoch Epoch of each "
                                "shard\n"
                                "# TYPE kv_controller_shard_epoch gauge\n");
    pthread_mutex_lock(&cl->mu);
    for (size_t s = 0; s < cl->nshards && off < cap; s++)
        off += (size_t)snprintf(buf + off, cap - off,
                                "kv_controller_shard_epoch{shard=\"%zu\"} "
                                "%llu\n",
                                s, (unsigned long long)cl->shards[s].epoch);
    if (off < cap)
        off += (size_t)snprintf(buf + off, cap - off,
                                "# HELP kv_controller_shard_failovers_total "
                                "Promotions per shard\n"
                                "# TYPE kv_controller_shard_failovers_total "
                                "counter\n");
    for (size_t s = 0; s < cl->nshards && off < cap; s++)
        off += (size_t)snprintf(buf + off, cap - off,
                                "kv_controller_shard_failovers_total{shard="
                                "\"%zu\"} %llu\n",
                                s, (unsigned long long)cl->shards[s].failovers);
    pthread_mutex_unlock(&cl->mu);
    if (off >= cap)
        off = cap - 1;
    buf[off] = '\0';
    *len = off;
    return buf;
}

/* ---- readiness ---- */

int cluster_health_seq(const char *body, size_t len, uint64_t *seq,
                       uint64_t *epoch)
{
    cJSON *j = body ? cJSON_ParseWithLength(body, len) : NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "applied_seq");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "epoch");
    int rc = -1;

    if (!cJSON_IsNumber(v))
        v = cJSON_GetObjectItemCaseSensitive(j, "seq");
    if (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
        v->valuedouble < 18446744073709551616.0) {
        *seq = (uint64_t)v->valuedouble;
        rc = 0;
    }
    if (epoch)
        *epoch = cJSON_IsNumber(e) && e->valuedouble >= 0 &&
                         e->valuedouble < 18446744073709551616.0
                     ? (uint64_t)e->valuedouble
                     : 0;
    cJSON_Delete(j);
    return rc;
}

/* Record one probe's outcome on n. */
static int cluster_probe_result(cluster_node *n, const httpc_resp *resp)
{
    int ok;

    if (resp->status == 0) {
        snprintf(n->last_error, sizeof n->last_error, "%.100s",
                 resp->error[0] ? resp->error : "no answer");
        ok = 0;
    } else if (resp->status < 200 || resp->status >= 300) {
        snprintf(n->last_error, sizeof n->last_error, "HTTP %ld",
                 resp->status);
        ok = 0;
    } else {
        n->last_error[0] = '\0';
        ok = 1;
        atomic_store(&n->last_ok_ms, sup_now_ms());
        if (n->kind == CLUSTER_STORE) {
            uint64_t seq, epoch;
            if (cluster_health_seq(resp->body, resp->len, &seq, &epoch) == 0)
                atomic_store(&n->seen_seq, seq);
            atomic_store(&n->seen_epoch, epoch);
        }
    }
    atomic_store(&n->healthy, ok);
    return ok;
}

static int cluster_probe(cluster_node *n)
{
    char url[SUP_URL_MAX + 16];
    httpc_req req = {0};
    httpc_resp resp = {0};
    int ok;

    snprintf(url, sizeof url, "%s/health", n->url);
    req.method = "GET";
    req.url = url;
    req.timeout_ms = 1000;
    httpc_do(&req, &resp);
    ok = cluster_probe_result(n, &resp);
    httpc_resp_free(&resp);
    return ok;
}

#define CLUSTER_PROBE_CHUNK 32

void cluster_probe_all(cluster_t *cl, long timeout_ms)
{
    char urls[CLUSTER_PROBE_CHUNK][SUP_URL_MAX + 16];
    httpc_req reqs[CLUSTER_PROBE_CHUNK];
    httpc_resp resps[CLUSTER_PROBE_CHUNK];

    for (size_t base = 0; base < cl->nnodes; base += CLUSTER_PROBE_CHUNK) {
        size_t n = cl->nnodes - base;
        if (n > CLUSTER_PROBE_CHUNK)
            n = CLUSTER_PROBE_CHUNK;
        memset(reqs, 0, sizeof reqs);
        memset(resps, 0, sizeof resps);
        for (size_t i = 0; i < n; i++) {
            snprintf(urls[i], sizeof urls[i], "%s/health",
                     cl->nodes[base + i].url);
            reqs[i].method = "GET";
            reqs[i].url = urls[i];
            reqs[i].timeout_ms = timeout_ms;
        }
        httpc_parallel(reqs, resps, n, timeout_ms);
        for (size_t i = 0; i < n; i++) {
            cluster_probe_result(&cl->nodes[base + i], &resps[i]);
            httpc_resp_free(&resps[i]);
        }
    }
}

int cluster_wait_ready(cluster_t *cl, int64_t timeout_ms, const atomic_int *stop,
                       char *err, size_t errlen)
{
    int64_t deadline = sup_now_ms() + timeout_ms;

    for (;;) {
        size_t missing = 0;
        for (size_t i = 0; i < cl->nnodes; i++) {
            cluster_node *n = &cl->nodes[i];
            if (atomic_load(&n->healthy))
                continue;
            /* nginx's /health goes through to an api: probe it last. */
            if (n->kind == CLUSTER_NGINX && missing > 0) {
                missing++;
                snprintf(n->last_error, sizeof n->last_error,
                         "waiting for the others");
                continue;
            }
            if (!cluster_probe(n))
                missing++;
        }
        if (missing == 0) {
            atomic_store(&cl->ready, 1);
            return 0;
        }
        if (stop && atomic_load(stop))
            return cluster_errf(err, errlen, "stopped before ready");
        if (sup_now_ms() >= deadline)
            break;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    {
        size_t off = (size_t)snprintf(err, errlen,
                                      "not healthy after %lld ms:",
                                      (long long)timeout_ms);
        for (size_t i = 0; i < cl->nnodes && off < errlen; i++) {
            const cluster_node *n = &cl->nodes[i];
            if (!atomic_load(&n->healthy))
                off += (size_t)snprintf(err + off, errlen - off, " %s (%s)",
                                        n->name, n->last_error);
        }
    }
    return -1;
}

int cluster_all_healthy(cluster_t *cl)
{
    for (size_t i = 0; i < cl->nnodes; i++)
        if (!atomic_load(&cl->nodes[i].healthy))
            return 0;
    return 1;
}

void cluster_print_summary(cluster_t *cl, sup_t *sup, FILE *f)
{
    if (cl->supervise)
        fprintf(f, "kv cluster: %zu shard%s x %lld replica%s, %lld api, "
                   "queue, nginx\n",
                cl->nshards, cl->nshards == 1 ? "" : "s",
                (long long)cl->cfg.replicas, cl->cfg.replicas == 1 ? "" : "s",
                (long long)cl->cfg.api_count);
    else
        fprintf(f, "kv cluster: %zu shard%s x %lld replica%s and the queue, "
                   "external (controller.supervise=0)\n",
                cl->nshards, cl->nshards == 1 ? "" : "s",
                (long long)cl->cfg.replicas, cl->cfg.replicas == 1 ? "" : "s");
    fprintf(f, "  %-12s %-26s %-20s pid %d\n", "controller",
            cl->controller_url, "/topology /status", (int)getpid());
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < cl->nnodes; i++) {
            const cluster_node *n = &cl->nodes[i];
            sup_info info;
            char what[64];

            if ((pass == 0) != (n->kind == CLUSTER_NGINX))
                continue;
            memset(&info, 0, sizeof info);
            if (n->sup_index >= 0)
                sup_get(sup, (size_t)n->sup_index, &info);
            if (n->kind == CLUSTER_STORE)
                snprintf(what, sizeof what, "shard %d %s", n->shard,
                         cluster_node_role(cl, n));
            else if (n->kind == CLUSTER_NGINX)
                snprintf(what, sizeof what, "public API");
            else
                snprintf(what, sizeof what, "%s", cluster_kind_name(n->kind));
            if (n->sup_index < 0)
                fprintf(f, "  %-12s %-26s %-20s external\n", n->name, n->url,
                        what);
            else
                fprintf(f, "  %-12s %-26s %-20s pid %d\n", n->name, n->url,
                        what, (int)info.pid);
        }
    if (cl->supervise)
        fprintf(f, "  run dir      %s (cluster.json, nginx.conf, "
                   "nginx-error.log)\n", cl->run_dir);
    fprintf(f, "  data dir     %s\n", cl->data_dir);
    if (cl->supervise)
        fprintf(f, "  child logs   %s\n",
                cl->log_dir[0] ? cl->log_dir : "this terminal (stderr)");
    fprintf(f, "%sready\n", cl->supervise ? "Stop with Ctrl-C.\n" : "");
    fflush(f);
}
