/* store_http_internal: the state of a kv-store's HTTP side, shared by the
 * route modules (store_kv, store_batch, store_repl_recv, store_repair,
 * store_changes, store_stats, store_fence) and built by store_http_new.
 * Only store/ includes it. db, role and wqm are borrowed (store_http.h). */
#ifndef KV_STORE_HTTP_INTERNAL_H
#define KV_STORE_HTTP_INTERNAL_H

#include "role.h"
#include "sdb.h"
#include "store_migrate.h"
#include "store_snapcache.h"
#include "wquorum.h"

#include <stddef.h>

struct store_http {
    sdb *db;
    role_t *role;
    store_migrate *mig;       /* NULL: no write fence */
    wquorum *wqm;             /* NULL when write_quorum is 0 */
    unsigned write_quorum;
    unsigned shard, replica;
    char *token;              /* NULL when /internal/ needs no token */
    size_t max_key, max_value;
    int (*may_apply)(void *arg);
    void *may_apply_arg;
    store_snapcache *snaps;   /* owned */
};

#endif
