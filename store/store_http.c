#include "store_http.h"

#include "kvhttp.h"
#include "store_batch.h"
#include "store_changes.h"
#include "store_http_internal.h"
#include "store_kv.h"
#include "store_repair.h"
#include "store_repl_recv.h"
#include "store_reply.h"
#include "store_stats.h"

#include <stdlib.h>
#include <string.h>

size_t store_http_max_body(size_t max_value_bytes)
{
    /* A batch carries up to queue.batch_max values; 64 MiB bounds the
     * memory one request can pin while still fitting the largest value. */
    size_t floor = (size_t)64 << 20;
    size_t need = 2 * max_value_bytes + ((size_t)1 << 20);
    return need > floor ? need : floor;
}

store_http *store_http_new(const store_http_opts *o)
{
    store_http *h = calloc(1, sizeof *h);

    if (h == NULL)
        return NULL;
    h->db = o->db;
    h->role = o->role;
    h->mig = o->mig;
    h->wqm = o->wqm;
    h->write_quorum = o->wqm ? o->write_quorum : 0;
    h->shard = o->shard;
    h->replica = o->replica;
    h->max_key = o->max_key_bytes ? o->max_key_bytes : 1024;
    h->max_value = o->max_value_bytes;
    h->may_apply = o->may_apply;
    h->may_apply_arg = o->may_apply_arg;
    if ((h->snaps = store_snapcache_new()) == NULL)
        goto fail;
    if (o->token && o->token[0] && (h->token = strdup(o->token)) == NULL)
        goto fail;
    store_stats_register();
    return h;
fail:
    store_http_free(h);
    return NULL;
}

void store_http_free(store_http *h)
{
    if (h == NULL)
        return;
    free(h->token);
    store_snapcache_free(h->snaps);
    free(h);
}

static void store_http_topology_changed(store_http *h, httpd_req *r,
                                        const char *rest)
{
    (void)rest;
    if (!httpd_method_is(r, "POST")) {
        kvhttp_bad_method(r, "POST");
        return;
    }
    role_poke(h->role);
    kvhttp_ok(r, NULL);
}

typedef struct store_http_route {
    const char *path;  /* exact, or a prefix when it ends in '/' */
    int get_only;      /* GET and HEAD only, checked here */
    /* rest: what follows path (a prefix route's key). */
    void (*fn)(store_http *h, httpd_req *r, const char *rest);
} store_http_route;

/* Paths under /internal/ need the token (when one is set), unknown ones
 * too, so that a 404 tells nothing to a stranger: store_http_admit refuses
 * them from the head, before their body is read. */
static const store_http_route store_http_routes[] = {
    {"/internal/kv/", 0, store_kv_route},
    {"/internal/batch", 0, store_batch_route},
    {"/internal/replicate", 0, store_repl_recv_route},
    {"/internal/changes", 1, store_changes_route},
    {"/internal/repair", 0, store_repair_route},
    {"/internal/topology-changed", 0, store_http_topology_changed},
    {"/health", 1, store_stats_health},
    {"/stats", 1, store_stats_json},
    {"/metrics", 1, store_stats_metrics},
};

void store_http_admit(httpd_req *r, void *app)
{
    store_http *h = app;
    kvhttp_admit_internal(r, h->token);
}

void store_http_handle(httpd_req *r, void *app)
{
    store_http *h = app;
    const char *path = httpd_path(r);
    size_t nroutes = sizeof store_http_routes / sizeof store_http_routes[0];
    for (size_t i = 0; i < nroutes; i++) {
        const store_http_route *rt = &store_http_routes[i];
        size_t n = strlen(rt->path);
        int prefix = rt->path[n - 1] == '/';
        if (prefix ? strncmp(path, rt->path, n) != 0
                   : strcmp(path, rt->path) != 0)
            continue;
        if (rt->get_only && !store_reply_is_get(r))
            kvhttp_bad_method(r, "GET, HEAD");
        else
            rt->fn(h, r, path + n);
        return;
    }
    kvhttp_not_found(r);
}
