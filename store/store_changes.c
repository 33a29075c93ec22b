#include "store_changes.h"

#include "kvhdr.h"
#include "num.h"
#include "store_fence.h"
#include "store_http_internal.h"
#include "store_reply.h"
#include "store_stats.h"

#include <inttypes.h>
#include <stdio.h>

#define STORE_CHANGES_DEFAULT_LIMIT 1000
#define STORE_CHANGES_MAX_LIMIT 100000
/* Cap on one changes answer; a single larger value still goes out alone. */
#define STORE_CHANGES_MAX_BYTES ((size_t)8 << 20)

/* The query: since, limit (clamped), snapshot. 0 = go on, -1 = answered. */
static int store_changes_query(httpd_req *r, uint64_t *since, uint64_t *limit,
                               uint64_t *snap_id)
{
    const char *sq = httpd_query(r, "since");
    const char *lq = httpd_query(r, "limit");
    const char *snq = httpd_query(r, "snapshot");

    if (sq && num_parse_u64(sq, since) != 0) {
        httpd_error(r, 400, "bad_since", "since must be an integer");
        return -1;
    }
    if (lq && (num_parse_u64(lq, limit) != 0 || *limit == 0)) {
        httpd_error(r, 400, "bad_limit", "limit must be a positive integer");
        return -1;
    }
    if (snq && (num_parse_u64(snq, snap_id) != 0 || *snap_id == 0)) {
        httpd_error(r, 400, "bad_snapshot", "snapshot must be an id");
        return -1;
    }
    return 0;
}

/* A page from the live store; since=0 reads through a fresh snapshot and
 * keeps it when the answer is cut short (*snap_id gets its id, 0 when it
 * could not be kept). 0 or -1. */
static int store_changes_live(store_http *h, uint64_t since, size_t limit,
                              wire_buf *out, uint64_t *next, int *more,
                              uint64_t *snap_id)
{
    sdb_snap *snap = since == 0 ? sdb_snap_open(h->db) : NULL;
    int rc;

    *snap_id = 0;
    if (snap == NULL)
        return sdb_changes_since(h->db, since, limit, STORE_CHANGES_MAX_BYTES,
                                 out, next, more);
    rc = sdb_snap_changes(snap, since, limit, STORE_CHANGES_MAX_BYTES, out,
                          next, more);
    if (rc == 0 && *more)
        *snap_id = store_snapcache_add(h->snaps, snap);
    else
        sdb_snap_close(snap);
    return rc;
}

void store_changes_route(store_http *h, httpd_req *r, const char *rest)
{
    uint64_t since = 0, limit = STORE_CHANGES_DEFAULT_LIMIT, next, snap_id = 0;
    wire_buf out = {0};
    int more, rc;
    char h1[48], h2[32], h3[48], h4[48], h5[48];
    const char *hdrs[6] = {h1, h2, h3, h4, NULL, NULL};

    (void)rest;
    if (store_changes_query(r, &since, &limit, &snap_id) != 0 ||
        store_fence_epoch(h, r, NULL) != 0)
        return;
    if (limit > STORE_CHANGES_MAX_LIMIT)
        limit = STORE_CHANGES_MAX_LIMIT;
    store_stats_add(STORE_STATS_CHANGES, 1);
    if (snap_id) {
        enum store_snapcache_rc src = store_snapcache_changes(
            h->snaps, snap_id, since, (size_t)limit, STORE_CHANGES_MAX_BYTES,
            &out, &next, &more);
        if (src == STORE_SNAPCACHE_GONE) {
            httpd_error(r, 410, "snapshot_gone",
                        "resync snapshot %" PRIu64 " expired or is in use; "
                        "start the resync over", snap_id);
            return;
        }
        rc = src == STORE_SNAPCACHE_OK ? 0 : -1;
    } else {
        if (since > sdb_last_seq(h->db)) {
            /* The asker holds seqs we never gave: another history. */
            store_reply_error_u64(r, 409, NULL, "seq_ahead",
                                  "since is past this store's last seq",
                                  "seq", sdb_last_seq(h->db));
            return;
        }
        rc = store_changes_live(h, since, (size_t)limit, &out, &next, &more,
                                &snap_id);
        if (snap_id) {
            snprintf(h5, sizeof h5, "X-KV-Snapshot: %" PRIu64, snap_id);
            hdrs[4] = h5;
        }
    }
    if (rc != 0) {
        wire_buf_free(&out);
        store_reply_fail(r, 500, "internal",
                         "the store could not read changes");
        return;
    }
    /* X-KV-Last-Seq is where to resume: pass it as the next since. */
    snprintf(h1, sizeof h1, "X-KV-Last-Seq: %" PRIu64, next);
    snprintf(h2, sizeof h2, "X-KV-More: %d", more);
    kvhdr_epoch(h3, sizeof h3, sdb_get_epoch(h->db));
    snprintf(h4, sizeof h4, "X-KV-Gc-Seq: %" PRIu64, sdb_gc_seq(h->db));
    httpd_respond(r, 200, STORE_REPLY_BIN, out.data ? (void *)out.data : "",
                  out.len, hdrs);
    wire_buf_free(&out);
}
