/* cluster: the model of the local cluster (cluster.h). */
#include "cluster.h"

#include "addr.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cluster_kind_name(enum cluster_kind k)
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

int cluster_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

int cluster_fmt(char *out, size_t len, const char *fmt, ...)
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
    cluster_node *n;

    if (cl->nnodes >= cl->nodes_cap) {
        cluster_errf(err, errlen, "too many nodes (%zu)", cl->nodes_cap);
        return NULL;
    }
    n = &cl->nodes[cl->nnodes];

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

/* The limits of the port layout (config_store_port and friends). */
static int cluster_init_check(const kv_config *c, char *err, size_t errlen)
{
    if (c->shards < 1 || c->shards > CLUSTER_MAX_SHARDS)
        return cluster_errf(err, errlen, "cluster.shards: must be 1..%d",
                            CLUSTER_MAX_SHARDS);
    if (c->replicas < 1 || c->replicas > CLUSTER_MAX_REPLICAS)
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
    return 0;
}

/* path made absolute against cwd. 0 or -1 when it does not fit. */
static int cluster_init_abs(char *out, size_t len, const char *cwd,
                            const char *path)
{
    return path[0] == '/' ? cluster_fmt(out, len, "%s", path)
                          : cluster_fmt(out, len, "%s/%s", cwd, path);
}

/* Every directory and file name the cluster uses. */
static int cluster_init_paths(cluster_t *cl, const char *run_dir,
                              const char *bin_dir, const char *log_dir,
                              char *err, size_t errlen)
{
    const kv_config *c = &cl->cfg;
    char cwd[PATH_MAX];

    if (getcwd(cwd, sizeof cwd) == NULL)
        return cluster_errf(err, errlen, "getcwd: %s", strerror(errno));
    if (!c->data_dir[0])
        return cluster_errf(err, errlen, "cluster.data_dir: must not be empty");
    if (cluster_init_abs(cl->data_dir, sizeof cl->data_dir, cwd, c->data_dir))
        return cluster_errf(err, errlen, "cluster.data_dir: path too long");
    if (strlen(cl->data_dir) >= sizeof cl->cfg.data_dir)
        return cluster_errf(err, errlen,
                            "cluster.data_dir: absolute path %s is over %d "
                            "bytes", cl->data_dir, CFG_STR_MAX - 1);
    memcpy(cl->cfg.data_dir, cl->data_dir, strlen(cl->data_dir) + 1);
    if (run_dir && *run_dir
            ? cluster_init_abs(cl->run_dir, sizeof cl->run_dir, cwd, run_dir)
            : cluster_fmt(cl->run_dir, sizeof cl->run_dir, "%s/run",
                          cl->data_dir))
        return cluster_errf(err, errlen, "run dir: path too long");
    if (log_dir && *log_dir &&
        cluster_init_abs(cl->log_dir, sizeof cl->log_dir, cwd, log_dir))
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
    return 0;
}

/* The port of store (id, replica) fits below 65535 (an id added at
 * runtime goes past the ports the start checked). 0 or -1 + err. */
static int cluster_shard_port_check(const cluster_t *cl, uint32_t id,
                                    char *err, size_t errlen)
{
    const kv_config *c = &cl->cfg;
    int64_t lo = c->base_port + 100 + 10 * (int64_t)id;
    int64_t hi = lo + c->replicas - 1;

    if (id >= CLUSTER_MAX_SHARDS)
        return cluster_errf(err, errlen, "shard id %u: ids are 0..%d and "
                            "never reused", id, CLUSTER_MAX_SHARDS - 1);
    if (hi > 65535)
        return cluster_errf(err, errlen, "shard %u: its store ports "
                            "(base_port + 100 + 10 * %u + replica) would "
                            "pass 65535", id, id);
    if (cl->supervise && c->nginx_port >= lo && c->nginx_port <= hi)
        return cluster_errf(err, errlen, "shard %u: its store ports "
                            "%lld..%lld hold nginx.port %lld", id,
                            (long long)lo, (long long)hi,
                            (long long)c->nginx_port);
    return 0;
}

/* The store nodes of shard id: from its URLs when it has them, else the
 * port layout. */
static int cluster_shard_nodes(cluster_t *cl, uint32_t id, char *err,
                               size_t errlen)
{
    const cluster_shard *sh = &cl->shards[id];
    size_t n = sh->nurls ? sh->nurls : (size_t)cl->cfg.replicas;

    if (!sh->nurls && cluster_shard_port_check(cl, id, err, errlen) < 0)
        return -1;
    for (size_t r = 0; r < n; r++) {
        cluster_node *nd;
        if (cl->nnodes >= cl->nodes_cap)
            return cluster_errf(err, errlen, "too many nodes");
        if (sh->nurls) {
            /* Fill before counting it: readers walk nodes[0..nnodes). */
            nd = &cl->nodes[cl->nnodes];
            memset(nd, 0, sizeof *nd);
            nd->kind = CLUSTER_STORE;
            nd->shard = (int)id;
            nd->replica = (int)r;
            nd->sup_index = -1;
            snprintf(nd->name, sizeof nd->name, "store-%u-%zu", id, r);
            snprintf(nd->url, sizeof nd->url, "%s", sh->urls[r]);
            nd->port = 0;
            {
                const char *p = strrchr(sh->urls[r], ':');
                long v = p ? strtol(p + 1, NULL, 10) : 0;
                nd->port = v > 0 && v <= 65535 ? (uint16_t)v : 0;
            }
            cl->nnodes++;
        } else if (cluster_add_node(cl, CLUSTER_STORE, (int)id, (int)r,
                                    config_store_port(&cl->cfg, id,
                                                      (unsigned)r),
                                    err, errlen) == NULL) {
            return -1;
        }
    }
    return 0;
}

/* Every store replica and the queue; api processes and nginx when
 * supervised. The arrays are allocated already. */
static int cluster_init_nodes(cluster_t *cl, char *err, size_t errlen)
{
    const kv_config *c = &cl->cfg;

    for (size_t s = 0; s < cl->nshards; s++)
        if (cl->shards[s].present &&
            cluster_shard_nodes(cl, (uint32_t)s, err, errlen) < 0)
            return -1;
    if (cluster_add_node(cl, CLUSTER_QUEUE, -1, -1, config_queue_port(c), err,
                         errlen) == NULL)
        return -1;
    /* Watching external processes: the stores and the queue have one
     * address each; api replicas (any number, behind one service name) and
     * nginx are the container platform's business. */
    for (int64_t i = 0; cl->supervise && i < c->api_count; i++) {
        cluster_node *n = cluster_add_node(cl, CLUSTER_API, -1, (int)i,
                                           config_api_port(c, (unsigned)i),
                                           err, errlen);
        if (n == NULL)
            return -1;
        n->replica = -1;
    }
    if (cl->supervise &&
        cluster_add_node(cl, CLUSTER_NGINX, -1, -1, (uint16_t)c->nginx_port,
                         err, errlen) == NULL)
        return -1;
    return 0;
}

int cluster_init(cluster_t *cl, const kv_config *c, const char *run_dir,
                 const char *bin_dir, const char *log_dir, char *err,
                 size_t errlen)
{
    size_t max_nodes;

    memset(cl, 0, sizeof *cl);
    cl->cfg = *c;
    if (cluster_init_check(c, err, errlen) < 0)
        return -1;
    cl->supervise = c->supervise != 0;
    if (addr_check_template(c->advertise_host, err, errlen) < 0)
        return -1;
    cluster_advertise_host(c->bind, cl->host, sizeof cl->host);
    snprintf(cl->controller_url, sizeof cl->controller_url, "http://%s:%lld",
             cl->host, (long long)c->base_port);
    if (cluster_init_paths(cl, run_dir, bin_dir, log_dir, err, errlen) < 0)
        return -1;

    pthread_mutex_init(&cl->mu, NULL);
    /* Every node it can ever have: ids are never reused. */
    max_nodes = (size_t)(CLUSTER_MAX_SHARDS * c->replicas + 1 +
                         c->api_count + 1);
    cl->nodes = calloc(max_nodes, sizeof *cl->nodes);
    cl->nodes_cap = max_nodes;
    cl->shards = calloc(CLUSTER_MAX_SHARDS, sizeof *cl->shards);
    if (cl->nodes == NULL || cl->shards == NULL) {
        cluster_errf(err, errlen, "out of memory");
        goto fail;
    }
    cl->epoch = 1;
    cl->nshards = (size_t)c->shards;
    atomic_init(&cl->failovers, 0);
    atomic_init(&cl->failovers_skipped, 0);
    cl->next_shard_id = (uint32_t)cl->nshards;
    cl->created_shards = cl->nshards;
    for (size_t s = 0; s < cl->nshards; s++) {
        cl->shards[s].epoch = 1;
        cl->shards[s].primary = 0;
        cl->shards[s].present = 1;
    }
    if (cluster_init_nodes(cl, err, errlen) < 0)
        goto fail;
    atomic_init(&cl->ready, 0);
    return 0;
fail:
    cluster_free(cl);
    return -1;
}

void cluster_free(cluster_t *cl)
{
    /* The mutex exists once the arrays were asked for (cluster_init). */
    if (cl->nodes || cl->shards)
        pthread_mutex_destroy(&cl->mu);
    free(cl->nodes);
    free(cl->shards);
    cl->nodes = NULL;
    cl->shards = NULL;
    cl->nnodes = 0;
    cl->nshards = 0;
}

const char *cluster_node_role(cluster_t *cl, const cluster_node *n)
{
    const char *role;

    if (n->kind != CLUSTER_STORE)
        return cluster_kind_name(n->kind);
    pthread_mutex_lock(&cl->mu);
    role = n->shard >= 0 && n->shard < CLUSTER_MAX_SHARDS &&
                   cl->shards[n->shard].primary == n->replica
               ? "primary"
               : "secondary";
    pthread_mutex_unlock(&cl->mu);
    return role;
}

int cluster_init_renodes(cluster_t *cl, char *err, size_t errlen)
{
    cl->nnodes = 0;
    return cluster_init_nodes(cl, err, errlen);
}

size_t cluster_shard_count(cluster_t *cl)
{
    size_t n = 0;

    pthread_mutex_lock(&cl->mu);
    for (size_t s = 0; s < cl->nshards; s++)
        n += cl->shards[s].present != 0;
    pthread_mutex_unlock(&cl->mu);
    return n;
}

int cluster_shard_add(cluster_t *cl, uint32_t id, const char *const *urls,
                      size_t nurls, int64_t now_ms, char *err, size_t errlen)
{
    cluster_shard *sh;

    if (id >= CLUSTER_MAX_SHARDS || cl->shards[id].present)
        return cluster_errf(err, errlen, "shard id %u is taken or out of "
                            "range", id);
    if (nurls > (size_t)cl->cfg.replicas)
        return cluster_errf(err, errlen, "%zu stores for one shard: "
                            "cluster.replicas is %lld", nurls,
                            (long long)cl->cfg.replicas);
    if (!nurls && cluster_shard_port_check(cl, id, err, errlen) < 0)
        return -1;
    sh = &cl->shards[id];
    memset(sh, 0, sizeof *sh);
    sh->epoch = 1;
    sh->primary = 0;
    sh->added_ms = now_ms;
    sh->nurls = nurls;
    for (size_t r = 0; r < nurls; r++)
        snprintf(sh->urls[r], sizeof sh->urls[r], "%s", urls[r]);
    /* Nodes first, then present: a reader that sees the shard finds its
     * stores (readers walk the nodes without the lock). */
    if (cluster_shard_nodes(cl, id, err, errlen) < 0)
        return -1;
    sh->present = 1;
    if (id + 1 > cl->nshards)
        cl->nshards = id + 1;
    if (id + 1 > cl->next_shard_id)
        cl->next_shard_id = id + 1;
    return 0;
}

void cluster_shard_drop(cluster_t *cl, uint32_t id)
{
    if (id >= CLUSTER_MAX_SHARDS)
        return;
    pthread_mutex_lock(&cl->mu);
    cl->shards[id].present = 0;
    pthread_mutex_unlock(&cl->mu);
    for (size_t i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].kind == CLUSTER_STORE &&
            cl->nodes[i].shard == (int)id)
            atomic_store(&cl->nodes[i].gone, 1);
}

int cluster_mig_active(const cluster_migration *m)
{
    return m->phase >= CLUSTER_MIG_PREPARE && m->phase <= CLUSTER_MIG_SWITCH;
}

static const char *const cluster_mig_phases[] = {
    "none", "prepare", "copy", "freeze", "switch", "done", "failed"};

const char *cluster_mig_phase_name(enum cluster_mig_phase p)
{
    return (unsigned)p < 7 ? cluster_mig_phases[p] : "none";
}

enum cluster_mig_phase cluster_mig_phase_parse(const char *s)
{
    for (int i = 0; s && i < 7; i++)
        if (strcmp(s, cluster_mig_phases[i]) == 0)
            return (enum cluster_mig_phase)i;
    return CLUSTER_MIG_NONE;
}

size_t cluster_ring_ids(const cluster_t *cl, uint32_t *out)
{
    const cluster_migration *m = &cl->mig;
    size_t n = 0;

    if (cluster_mig_active(m)) {
        const uint32_t *ids = m->phase == CLUSTER_MIG_SWITCH ? m->to : m->from;
        n = m->phase == CLUSTER_MIG_SWITCH ? m->nto : m->nfrom;
        memcpy(out, ids, n * sizeof *ids);
        return n;
    }
    for (size_t s = 0; s < cl->nshards; s++)
        if (cl->shards[s].present)
            out[n++] = (uint32_t)s;
    return n;
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
            n->replica == replica && !atomic_load(&n->gone))
            return n;
    }
    return NULL;
}

