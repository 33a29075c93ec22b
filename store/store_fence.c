#include "store_fence.h"

#include "kvhdr.h"
#include "num.h"
#include "repl_send.h"
#include "role.h"
#include "sdb.h"
#include "store_http_internal.h"
#include "store_reply.h"
#include "store_stats.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int store_fence_epoch(store_http *h, httpd_req *r, uint64_t *epoch)
{
    const char *e = httpd_header(r, KVHDR_EPOCH);
    uint64_t got, cur = sdb_get_epoch(h->db);
    char hdr[KVHDR_EPOCH_MAX], msg[160];
    const char *hdrs[] = {hdr, NULL};
    const char *hdrs_retry[] = {hdr, "Retry-After: 1", NULL};

    if (epoch)
        *epoch = cur;
    if (e == NULL)
        return 0;
    if (num_parse_u64(e, &got) != 0) {
        httpd_error(r, 400, "bad_epoch", "X-KV-Epoch must be an integer");
        return -1;
    }
    if (epoch)
        *epoch = got;
    if (got == cur)
        return 0;
    kvhdr_epoch(hdr, sizeof hdr, cur);
    if (got < cur) {
        store_stats_add(STORE_STATS_FENCED, 1);
        snprintf(msg, sizeof msg,
                 "epoch %" PRIu64 " is older than this store's %" PRIu64, got,
                 cur);
        store_reply_error_u64(r, 409, hdrs, "stale_epoch", msg, "epoch", cur);
        return -1;
    }
    /* Newer than ours: we are behind the topology. Catch up first. Not
     * counted as an error: the asker is right and only has to retry. */
    role_poke(h->role);
    store_stats_add(STORE_STATS_EPOCH_PENDING, 1);
    snprintf(msg, sizeof msg,
             "epoch %" PRIu64 " is newer than this store's %" PRIu64
             "; it is re-reading the topology", got, cur);
    store_reply_json_error(r, 503, hdrs_retry, "epoch_pending", msg, "epoch",
                           cur);
    return -1;
}

int store_fence_lease(store_http *h, httpd_req *r)
{
    static const char body[] =
        "{\"error\":\"lease_expired\",\"message\":\"this store has no "
        "current lease from the controller (it may have been replaced); it "
        "applies nothing until a heartbeat is acknowledged\"}";
    static const char *const rh[] = {"Retry-After: 1", NULL};

    if (h->may_apply == NULL || h->may_apply(h->may_apply_arg))
        return 0;
    store_stats_add(STORE_STATS_ERRORS, 1);
    httpd_respond(r, 503, STORE_REPLY_JSON, body, sizeof body - 1, rh);
    return -1;
}

int store_fence_primary(store_http *h, httpd_req *r)
{
    char primary[256];
    cJSON *j;

    if (sdb_get_role(h->db) == SDB_ROLE_PRIMARY &&
        strcmp(role_state(h->role), "primary") == 0)
        return 0;
    store_stats_add(STORE_STATS_NOT_PRIMARY, 1);
    role_poke(h->role);
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", "not_primary");
    cJSON_AddStringToObject(j, "message",
                            strcmp(role_state(h->role), "starting") == 0
                                ? "this store has just started and has not "
                                  "heard from the controller whether it is "
                                  "still the shard's primary"
                                : "this store is not the shard's primary");
    if (role_primary(h->role, primary, sizeof primary) == 0 &&
        strcmp(primary, "") != 0)
        cJSON_AddStringToObject(j, "primary", primary);
    else
        cJSON_AddNullToObject(j, "primary");
    httpd_respond_json(r, 409, j, NULL);
    return -1;
}

int store_fence_quorum(store_http *h, httpd_req *r)
{
    size_t alive, total;
    cJSON *j;
    static const char *const hdrs[] = {"Retry-After: 1", NULL};

    if (h->write_quorum == 0)
        return 0;
    alive = repl_send_alive(role_repl(h->role), &total);
    if (alive >= h->write_quorum)
        return 0;
    store_stats_add(STORE_STATS_QUORUM_UNAVAIL, 1);
    store_stats_add(STORE_STATS_ERRORS, 1);
    j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "error", "quorum_unavailable");
    cJSON_AddStringToObject(j, "message",
                            "fewer than W secondaries are alive; nothing "
                            "was written");
    store_reply_add_u64(j, "alive", alive);
    store_reply_add_u64(j, "required", h->write_quorum);
    store_reply_add_u64(j, "secondaries", total);
    httpd_respond_json(r, 503, j, hdrs);
    return -1;
}

int store_fence_owner(store_http *h, httpd_req *r, const topo_t *t,
                      const char *key, size_t len, enum store_owner_op op)
{
    char hdr[40], msg[160], at[320], epoch[48];
    const char *hdrs[4] = {hdr, NULL};
    static const char *const retry[] = {"Retry-After: 1", NULL};
    const topo_shard *sh;
    uint32_t owner;

    switch (store_owner_check(t, h->shard, key, len, op, &owner)) {
    case STORE_OWNER_OK:
        return 0;
    case STORE_OWNER_MOVED:
        store_stats_add(STORE_STATS_MOVED, 1);
        snprintf(hdr, sizeof hdr, "X-KV-Shard: %u", (unsigned)owner);
        /* Where it is, by this store's topology: an api whose topology is
         * older (it may not know the shard yet) reads it there. */
        sh = topo_shard_by_id(t, owner);
        if (sh && sh->primary &&
            snprintf(at, sizeof at, "X-KV-Owner: %s", sh->primary) < (int)sizeof at) {
            snprintf(epoch, sizeof epoch, "X-KV-Owner-Epoch: %" PRIu64, sh->epoch);
            hdrs[1] = at;
            hdrs[2] = epoch;
        }
        snprintf(msg, sizeof msg, "shard %u owns this key, not shard %u",
                 (unsigned)owner, h->shard);
        store_reply_json_error(r, 421, hdrs, "moved", msg, "shard", owner);
        return -1;
    default:
        store_stats_add(STORE_STATS_MIGRATING, 1);
        store_reply_json_error(r, 503, retry, "migrating",
                               "this key is moving to another shard; "
                               "retry shortly", NULL, 0);
        return -1;
    }
}
