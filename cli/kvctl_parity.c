/* kvctl parity: are all replicas of every shard identical? For each shard of
 * the controller's topology, read every replica's records through
 * /internal/changes (paged from seq 0), keep the live ones (a tombstone may
 * be collected on one replica before another, and a record expired by the
 * time the run began is absent whether or not a replica reaped it yet),
 * and compare them by key, version, expiry and value. Meaningful when
 * writes have stopped. */
#include "kvctl.h"

#include "hlc.h"
#include "kvhdr.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

typedef struct kvctl_parity_rec {
    char *key;
    size_t klen;
    uint64_t version;
    uint64_t vhash;            /* XXH3 of the value and the expiry */
} kvctl_parity_rec;

typedef struct kvctl_parity_dump {
    const char *url;
    uint64_t now_ms;           /* expired before this: absent */
    kvctl_parity_rec *recs;
    size_t n, cap;
    uint64_t digest;
} kvctl_parity_dump;

static int kvctl_parity_cmp(const void *a, const void *b)
{
    const kvctl_parity_rec *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static int kvctl_parity_add(kvctl_parity_dump *d, const wire_op *op)
{
    kvctl_parity_rec *r;

    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 1024;
        kvctl_parity_rec *n = realloc(d->recs, cap * sizeof *n);
        if (n == NULL)
            return -1;
        d->recs = n;
        d->cap = cap;
    }
    r = &d->recs[d->n];
    if ((r->key = malloc(op->key_len ? op->key_len : 1)) == NULL)
        return -1;
    memcpy(r->key, op->key, op->key_len);
    r->klen = op->key_len;
    r->version = op->version;
    r->vhash = XXH3_64bits_withSeed(op->val, op->val_len, op->expires_at);
    d->n++;
    return 0;
}

/* Read one replica's live records, sorted by key, and their digest. */
static int kvctl_parity_read(const kvctl_opts *o, kvctl_parity_dump *d)
{
    uint64_t since = 0;
    int more = 1;

    while (more) {
        char path[96], hdr[32];
        uint64_t next;
        httpc_resp r;
        size_t off = 0;
        wire_op op;
        int rc;

        snprintf(path, sizeof path, "/internal/changes?since=%llu&limit=2000",
                 (unsigned long long)since);
        rc = kvctl_http_request(o, "GET", d->url, path, NULL, 0, NULL, &r);
        if (rc != 0)
            return rc;
        if (r.status != 200) {
            rc = kvctl_http_fail(o, &r, d->url);
            httpc_resp_free(&r);
            return rc;
        }
        while ((rc = wire_next_op(r.body, r.len, &off, &op)) == 1)
            if (op.op == WIRE_PUT &&
                !(op.expires_at && op.expires_at <= d->now_ms) &&
                kvctl_parity_add(d, &op) != 0)
                rc = -1;
        more = httpc_resp_header(&r, "X-KV-More", hdr, sizeof hdr) &&
               (strcmp(hdr, "1") == 0 || strcmp(hdr, "true") == 0);
        if (kvhdr_u64(&r, "X-KV-Last-Seq", &next) == 0) {
            more = more && next > since;
            since = next;
        } else {
            more = 0;
        }
        httpc_resp_free(&r);
        if (rc < 0) {
            fprintf(stderr, "kvctl: %s sent a malformed changes page\n", d->url);
            return KVCTL_FAIL;
        }
    }
    if (d->n) /* recs is NULL when there are none, and qsort's may not be */
        qsort(d->recs, d->n, sizeof *d->recs, kvctl_parity_cmp);
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    for (size_t i = 0; i < d->n; i++) {
        XXH3_64bits_update(st, d->recs[i].key, d->recs[i].klen);
        XXH3_64bits_update(st, &d->recs[i].version, sizeof d->recs[i].version);
        XXH3_64bits_update(st, &d->recs[i].vhash, sizeof d->recs[i].vhash);
    }
    d->digest = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return KVCTL_OK;
}

/* The first key where two sorted dumps differ, for the report. */
static void kvctl_parity_explain(FILE *out, const kvctl_parity_dump *a,
                                 const kvctl_parity_dump *b)
{
    size_t i = 0, k = 0;

    while (i < a->n || k < b->n) {
        int c = i == a->n   ? 1
                : k == b->n ? -1
                            : kvctl_parity_cmp(&a->recs[i], &b->recs[k]);
        const kvctl_parity_rec *r = c <= 0 ? &a->recs[i] : &b->recs[k];
        if (c == 0 && r->version == b->recs[k].version &&
            r->vhash == b->recs[k].vhash) {
            i++, k++;
            continue;
        }
        fprintf(out, "    first difference: key %.*s%s: %s",
                (int)(r->klen > 60 ? 60 : r->klen), r->key, r->klen > 60 ? "..." : "",
               c < 0 ? "only on the first" : c > 0 ? "only on the second" : "");
        if (c == 0)
            fprintf(out, "version %llu vs %llu%s",
                   (unsigned long long)r->version,
                   (unsigned long long)b->recs[k].version,
                   r->version == b->recs[k].version
                       ? " (values or expiries differ)" : "");
        fprintf(out, "\n");
        return;
    }
}

static void kvctl_parity_free(kvctl_parity_dump *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->recs[i].key);
    free(d->recs);
}

int kvctl_parity_replicas(const kvctl_opts *o, const char *const *urls,
                          size_t n, const char *label, FILE *out, size_t *nkeys)
{
    kvctl_parity_dump *d = calloc(n ? n : 1, sizeof *d);
    uint64_t now_ms = hlc_wall_us() / 1000u; /* one time for every replica */
    int rc = KVCTL_OK, same = 1;

    if (d == NULL)
        return KVCTL_FAIL;
    for (size_t i = 0; i < n; i++) {
        d[i].url = urls[i];
        d[i].now_ms = now_ms;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = kvctl_parity_read(o, &d[i]);
    if (rc == 0) {
        for (size_t i = 1; i < n; i++)
            same &= d[i].digest == d[0].digest && d[i].n == d[0].n;
        if (nkeys)
            *nkeys = n ? d[0].n : 0;
        if (out) {
            fprintf(out, "%s: %zu replicas, %zu keys: %s\n", label, n,
                    n ? d[0].n : 0, same ? "identical" : "DIFFERENT");
            for (size_t i = 1; !same && i < n; i++)
                if (d[i].digest != d[0].digest || d[i].n != d[0].n) {
                    fprintf(out, "  %s has %zu keys, %s has %zu\n", d[0].url,
                            d[0].n, d[i].url, d[i].n);
                    kvctl_parity_explain(out, &d[0], &d[i]);
                }
        }
    }
    for (size_t i = 0; i < n; i++)
        kvctl_parity_free(&d[i]);
    free(d);
    return rc ? rc : same ? KVCTL_OK : KVCTL_FAIL;
}

int kvctl_parity_cmd(const kvctl_opts *o, int argc, char **argv)
{
    httpc_resp r;
    cJSON *topo, *shard;
    int rc, bad = 0;
    (void)argc;
    (void)argv;

    rc = kvctl_http_request(o, "GET", o->controller, "/topology", NULL, 0,
                            NULL, &r);
    if (rc != 0)
        return rc;
    topo = r.status == 200 ? kvctl_http_json(&r) : NULL;
    if (topo == NULL)
        rc = kvctl_http_fail(o, &r, "topology");
    httpc_resp_free(&r);
    if (topo == NULL)
        return rc;
    cJSON_ArrayForEach(shard, cJSON_GetObjectItem(topo, "shards")) {
        const char *urls[17];
        size_t n = 0;
        char label[32];
        const cJSON *p = cJSON_GetObjectItem(shard, "primary"), *s;
        if (cJSON_IsString(p))
            urls[n++] = p->valuestring;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(shard, "secondaries"))
            if (cJSON_IsString(s) && n < 17)
                urls[n++] = s->valuestring;
        snprintf(label, sizeof label, "shard %d",
                 (int)cJSON_GetNumberValue(cJSON_GetObjectItem(shard, "id")));
        rc = kvctl_parity_replicas(o, urls, n, label, stdout, NULL);
        if (rc == KVCTL_FAIL) {
            bad = 1;
            rc = KVCTL_OK;
        }
        if (rc)
            break;
    }
    cJSON_Delete(topo);
    return rc ? rc : bad ? KVCTL_FAIL : KVCTL_OK;
}
