/* fuzz_batch: the store's POST /internal/batch body applied to the engine,
 * as store/store_batch.c does it: the wire ops decoded (wire_next_op, as
 * store_reply_ops) and applied in one transaction with
 * sdb_apply_as(SDB_APPLY_WRITE) on a real LMDB store (store/sdb.h). A
 * malformed body is the route's 400 and reaches no engine.
 *
 * The store lives in a fresh temporary directory per process ($TMPDIR or
 * /tmp, kv-fuzz-batch-XXXXXX, removed at exit; a crash leaves it), opened
 * with fsync "no" and a fixed clock (2026-12-01) so an input's outcome
 * does not depend on the time; it is emptied (closed, removed, opened
 * again) every FUZZ_BATCH_RESET inputs so it stays small. State carries over between
 * inputs within that window, as in a real store; a crash input is
 * reproduced on a fresh store (run the binary on it).
 *
 * Input: the batch body (wire ops, lib/wire.h).
 *
 * Asserts, beyond no crash or sanitizer report:
 *  - the transaction commits, or fails with every result 500/507;
 *  - every result is 200, 208, 400, 409, 413 or 414, or 412 for an op with
 *    a condition (lib/wire.h WIRE_F_IF_*); an op got a seq
 *    exactly when it was applied (200), the seqs of a batch increase and
 *    end at or below the store's last_seq; a version is at most HLC_MAX and
 *    a 208's stored version is not older than the op's;
 *  - what was applied reads back: for each key's last applied op, sdb_get
 *    finds the result's version and a PUT's value, a DEL's tombstone, or
 *    an INCR's counter as decimal text. */
#include "hlc.h"
#include "sdb.h"
#include "wire.h"

#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FUZZ_BATCH_RESET 20000
#define FUZZ_BATCH_NOW_US UINT64_C(1796083200000000) /* 2026-12-01T00:00Z */

static char fuzz_batch_dir[4096];
static sdb *fuzz_batch_db;
static unsigned long fuzz_batch_inputs;

static uint64_t fuzz_batch_clock(void)
{
    return FUZZ_BATCH_NOW_US;
}

static int fuzz_batch_rm(const char *path, const struct stat *st, int flag,
                         struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void fuzz_batch_open(void)
{
    sdb_opts o = {.map_size_mb = 256, .fsync = SDB_FSYNC_NO,
                  .clock = fuzz_batch_clock};
    char err[256];

    fuzz_batch_db = sdb_open(fuzz_batch_dir, &o, err, sizeof err);
    if (fuzz_batch_db == NULL) {
        fprintf(stderr, "fuzz_batch: %s\n", err);
        abort();
    }
}

static void fuzz_batch_cleanup(void)
{
    sdb_close(fuzz_batch_db);
    fuzz_batch_db = NULL;
    nftw(fuzz_batch_dir, fuzz_batch_rm, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");

    (void)argc;
    (void)argv;
    snprintf(fuzz_batch_dir, sizeof fuzz_batch_dir, "%s/kv-fuzz-batch-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(fuzz_batch_dir) == NULL)
        abort();
    fuzz_batch_open();
    atexit(fuzz_batch_cleanup);
    return 0;
}

/* The stored record of op's key matches what applying op answered. */
static void fuzz_batch_reads_back(const wire_op *op, const wire_result *res)
{
    sdb_record rec;
    char num[24];

    if (sdb_get(fuzz_batch_db, op->key, op->key_len, &rec) != SDB_GET_FOUND)
        abort();
    if (rec.version != res->version)
        abort();
    switch (op->op) {
    case WIRE_PUT:
        if ((rec.flags & SDB_F_TOMBSTONE) || rec.val_len != op->val_len ||
            memcmp(rec.val, op->val, op->val_len) != 0)
            abort();
        break;
    case WIRE_DEL:
        if (!(rec.flags & SDB_F_TOMBSTONE))
            abort();
        break;
    case WIRE_INCR:
        snprintf(num, sizeof num, "%" PRId64, res->number);
        if ((rec.flags & SDB_F_TOMBSTONE) || rec.val_len != strlen(num) ||
            memcmp(rec.val, num, rec.val_len) != 0)
            abort();
        break;
    default:
        abort();
    }
    sdb_record_free(&rec);
}

static int fuzz_batch_same_key(const wire_op *a, const wire_op *b)
{
    return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0, n = 0;
    wire_op op, *ops;
    wire_result *res;
    sdb_opinfo *info;
    uint64_t prev_seq = 0;
    int rc;

    if (++fuzz_batch_inputs % FUZZ_BATCH_RESET == 0) {
        fuzz_batch_cleanup();
        fuzz_batch_open();
    }
    while ((rc = wire_next_op(data, size, &off, &op)) == 1)
        n++;
    if (rc < 0 || n == 0)
        return 0; /* the route's 400, or nothing to apply */
    ops = calloc(n, sizeof *ops);
    res = calloc(n, sizeof *res);
    info = calloc(n, sizeof *info);
    if (ops == NULL || res == NULL || info == NULL)
        abort();
    off = 0;
    for (size_t i = 0; i < n; i++)
        wire_next_op(data, size, &off, &ops[i]);

    rc = sdb_apply_as(fuzz_batch_db, SDB_APPLY_WRITE, ops, n, res, info);
    for (size_t i = 0; i < n; i++) {
        unsigned s = res[i].status;
        if (rc != 0) {
            if (s != 500 && s != 507)
                abort();
            continue;
        }
        if (s != 200 && s != 208 && s != 400 && s != 409 && s != 413 && s != 414 &&
            !(s == 412 && (ops[i].flags & WIRE_F_CONDITIONS)) &&
            !(s == 404 && (ops[i].flags & WIRE_F_REAPED)))
            abort();
        if ((s == 200) != (info[i].seq != 0) || res[i].version > HLC_MAX)
            abort();
        if (s == 200) {
            if (info[i].seq <= prev_seq || res[i].version == 0)
                abort();
            prev_seq = info[i].seq;
        }
        if (s == 208 && res[i].version < ops[i].version)
            abort();
    }
    if (rc == 0 && prev_seq > sdb_last_seq(fuzz_batch_db))
        abort();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int last = res[i].status == 200;
        for (size_t j = i + 1; last && j < n; j++)
            last = !(res[j].status == 200 && fuzz_batch_same_key(&ops[i], &ops[j]));
        if (last)
            fuzz_batch_reads_back(&ops[i], &res[i]);
    }
    free(info);
    free(res);
    free(ops);
    return 0;
}
