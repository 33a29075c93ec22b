#include "journal.h"

#include "clock.h"
#include "log.h"
#include "wire.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* A pending change: a record to write (rec != NULL, owned by its waiting
 * caller) or a version to delete. */
typedef struct journal_pend {
    uint64_t version;
    journal_rec *rec;
    struct journal_pend *next;
} journal_pend;

struct journal {
    MDB_env *env;
    journal_hooks hooks;
    MDB_dbi dbi;
    int sync_each;
    int sync_everysec;
    pthread_mutex_t mu;
    pthread_cond_t done;
    journal_pend *head, *tail;
    uint64_t queued;       /* changes handed in so far */
    uint64_t committed;    /* changes durable so far */
    int committing;
    uint64_t fail_lo, fail_hi; /* the last failed group's changes */
    pthread_t syncer;
    pthread_cond_t tick;   /* the syncer's own: commits must not wake it */
    int stopping;
};

static void journal_lead(journal_t *j);

static void *journal_sync_main(void *arg)
{
    journal_t *j = arg;
    pthread_mutex_lock(&j->mu);
    while (!j->stopping) {
        uint64_t end = clock_mono_ms() + 1000, now;

        while (!j->stopping && (now = clock_mono_ms()) < end)
            clock_cond_wait_ms(&j->tick, &j->mu, end - now);
        if (j->stopping)
            break;
        /* Deletions nobody waits for go out at least once a second. */
        if (j->head && !j->committing)
            journal_lead(j);
        if (j->sync_everysec) {
            pthread_mutex_unlock(&j->mu);
            mdb_env_sync(j->env, 1);
            pthread_mutex_lock(&j->mu);
        }
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

journal_t *journal_open(const char *dir, size_t map_mb, const char *fsync,
                const journal_hooks *hooks)
{
    journal_t *j = calloc(1, sizeof *j);
    MDB_txn *txn;
    int rc;
    /* A writable map: a commit writes into the map, not with pwrite calls
     * (the journal holds only our own records, so the risk LMDB warns of,
     * stray writes through the map, is the same as for any memory). */
    unsigned flags = MDB_NOTLS | MDB_WRITEMAP;

    if (j == NULL)
        return NULL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        log_error("journal: cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    j->hooks = *hooks;
    j->sync_each = strcmp(fsync, "always") == 0;
    if (!j->sync_each)
        flags |= MDB_NOSYNC | MDB_MAPASYNC; /* everysec: the syncer; no: the OS */
    if ((rc = mdb_env_create(&j->env)) ||
        (rc = mdb_env_set_mapsize(j->env, map_mb * 1024 * 1024)) ||
        (rc = mdb_env_open(j->env, dir, flags, 0644)) ||
        (rc = mdb_txn_begin(j->env, NULL, 0, &txn))) {
        log_error("journal: cannot open %s: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    if ((rc = mdb_dbi_open(txn, NULL, MDB_INTEGERKEY, &j->dbi)) ||
        (rc = mdb_txn_commit(txn))) {
        log_error("journal: cannot open its table: %s", mdb_strerror(rc));
        goto fail;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->done, NULL);
    clock_cond_init(&j->tick);
    j->sync_everysec = strcmp(fsync, "everysec") == 0;
    pthread_create(&j->syncer, NULL, journal_sync_main, j);
    return j;
fail:
    if (j->env)
        mdb_env_close(j->env);
    free(j);
    return NULL;
}

void journal_close(journal_t *j)
{
    if (j == NULL)
        return;
    pthread_mutex_lock(&j->mu);
    while (j->committing)
        pthread_cond_wait(&j->done, &j->mu);
    if (j->head)
        journal_lead(j);
    j->stopping = 1;
    pthread_cond_broadcast(&j->tick);
    pthread_mutex_unlock(&j->mu);
    pthread_join(j->syncer, NULL);
    mdb_env_sync(j->env, 1);
    mdb_env_close(j->env);
    pthread_cond_destroy(&j->done);
    pthread_cond_destroy(&j->tick);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

/* Write one record: format, op, delta, key length, job id, flags,
 * [if_match], [expires_at], key, value (queue/journal.h). */
#define JOURNAL_HDR 31     /* JOURNAL_FMT_COND without if_match */
#define JOURNAL_HDR_JOB 30 /* JOURNAL_FMT_JOB */
#define JOURNAL_HDR_OLD 13
static int journal_put(journal_t *j, MDB_txn *txn, const journal_rec *r)
{
    size_t version = (size_t)r->version;
    size_t hdr = JOURNAL_HDR + wire_ext_len(r->flags);
    MDB_val k = {sizeof version, &version};
    MDB_val v = {hdr + r->klen + r->vlen, NULL};
    uint32_t klen = (uint32_t)r->klen;
    uint8_t *b;
    int rc = mdb_put(txn, j->dbi, &k, &v, MDB_RESERVE);

    if (rc)
        return rc;
    b = v.mv_data;
    b[0] = JOURNAL_FMT_COND;
    b[1] = r->op;
    memcpy(b + 2, &r->delta, 8);
    memcpy(b + 10, &klen, 4);
    memcpy(b + 14, r->job.b, JOBID_BYTES);
    b[30] = r->flags;
    if (r->flags & WIRE_F_IF_MATCH)
        memcpy(b + 31, &r->if_match, 8);
    if (r->flags & WIRE_F_EXPIRES)
        memcpy(b + hdr - 8, &r->expires_at, 8);
    memcpy(b + hdr, r->key, r->klen);
    if (r->vlen)
        memcpy(b + hdr + r->klen, r->val, r->vlen);
    return 0;
}

/* Read one record of either format into r (pointing into b); -1 when it
 * is cut short. */
static int journal_get(const uint8_t *b, size_t n, journal_rec *r)
{
    size_t hdr = JOURNAL_HDR_OLD, at = 0;
    uint32_t klen;

    memset(r, 0, sizeof *r);
    if (n >= 1 && (b[0] == JOURNAL_FMT_JOB || b[0] == JOURNAL_FMT_COND)) {
        hdr = JOURNAL_HDR_JOB;
        at = 1;
        r->has_job = 1;
    }
    if (n >= 1 && b[0] == JOURNAL_FMT_COND) {
        if (n < JOURNAL_HDR)
            return -1;
        r->flags = b[30];
        hdr = JOURNAL_HDR + wire_ext_len(r->flags);
        if (n >= hdr && (r->flags & WIRE_F_IF_MATCH))
            memcpy(&r->if_match, b + 31, 8);
        if (n >= hdr && (r->flags & WIRE_F_EXPIRES))
            memcpy(&r->expires_at, b + hdr - 8, 8);
    }
    if (n < hdr)
        return -1;
    r->op = b[at];
    memcpy(&r->delta, b + at + 1, 8);
    memcpy(&klen, b + at + 9, 4);
    if (r->has_job)
        memcpy(r->job.b, b + 14, JOBID_BYTES);
    if (hdr + (size_t)klen > n)
        return -1;
    r->key = (const char *)b + hdr;
    r->klen = klen;
    r->val = b + hdr + klen;
    r->vlen = n - hdr - klen;
    return 0;
}

/* Record 0 holds the highest version ever handed out, so that a restarted queue
 * with an empty journal never numbers below it (a clock stepped back). */
static int journal_put_high(journal_t *j, MDB_txn *txn, uint64_t high)
{
    size_t zero = 0;
    MDB_val k = {sizeof zero, &zero}, v = {sizeof high, &high};
    return mdb_put(txn, j->dbi, &k, &v, 0);
}

/* Commit one group (the list taken from the pending queue). */
static int journal_commit(journal_t *j, journal_pend *list, uint64_t high)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(j->env, NULL, 0, &txn);

    if (rc == 0 && high)
        rc = journal_put_high(j, txn, high);

    for (journal_pend *p = list; rc == 0 && p; p = p->next) {
        size_t version = (size_t)p->version;
        MDB_val k = {sizeof version, &version};
        if (p->rec) {
            rc = journal_put(j, txn, p->rec);
        } else {
            rc = mdb_del(txn, j->dbi, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        }
    }
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    if (rc)
        log_error("journal: commit of a group failed: %s", mdb_strerror(rc));
    return rc;
}

/* Lead a group: take everything pending and commit it in one transaction.
 * Called and returns with the lock held; drops it while committing. */
static int journal_commit(journal_t *j, journal_pend *list, uint64_t high);
static void journal_lead(journal_t *j)
{
    journal_pend *list = j->head;
    uint64_t from = j->committed + 1, upto = j->queued;
    journal_rec **recs = NULL;
    size_t n = 0;
    int rc;

    j->head = j->tail = NULL;
    j->committing = 1;
    pthread_mutex_unlock(&j->mu);
    for (journal_pend *p = list; p; p = p->next)
        n += p->rec != NULL;
    recs = n ? malloc(n * sizeof *recs) : NULL;
    n = 0;
    /* Number the group in the order it is written. */
    uint64_t high = 0;
    for (journal_pend *p = list; p; p = p->next)
        if (p->rec) {
            p->rec->version = high = j->hooks.next_id(j->hooks.arg);
            if (recs)
                recs[n++] = p->rec;
        }
    rc = recs || n == 0 ? journal_commit(j, list, high) : -1;
    if (rc == 0 && n)
        j->hooks.committed(j->hooks.arg, recs, n);
    free(recs);
    for (journal_pend *q = list, *nx; q; q = nx) {
        nx = q->next;
        free(q);
    }
    pthread_mutex_lock(&j->mu);
    j->committing = 0;
    j->committed = upto;
    if (rc) {
        j->fail_lo = from;
        j->fail_hi = upto;
    }
    pthread_cond_broadcast(&j->done);
}

/* Hand in n changes (linked through next) and, if wait, return once they
 * are durable; rcs (when given) gets 0 or -1 for each. */
static void journal_submit(journal_t *j, journal_pend *first, size_t n, int wait, int *rcs)
{
    journal_pend *last = first;
    uint64_t mine;

    while (last->next)
        last = last->next;
    pthread_mutex_lock(&j->mu);
    if (j->tail)
        j->tail->next = first;
    else
        j->head = first;
    j->tail = last;
    mine = j->queued + 1; /* the first of ours */
    j->queued += n;
    while (wait && j->committed < mine + n - 1) {
        if (j->committing) {
            pthread_cond_wait(&j->done, &j->mu);
            continue;
        }
        journal_lead(j);
    }
    for (size_t i = 0; rcs && i < n; i++)
        rcs[i] = mine + i >= j->fail_lo && mine + i <= j->fail_hi ? -1 : 0;
    pthread_mutex_unlock(&j->mu);
}

int journal_append_many(journal_t *j, journal_rec *const *recs, size_t n, int *rcs)
{
    journal_pend *first = NULL, **tail = &first;

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        journal_pend *p = calloc(1, sizeof *p);
        if (p == NULL) {
            while (first) {
                journal_pend *nx = first->next;
                free(first);
                first = nx;
            }
            return -1;
        }
        p->rec = recs[i];
        *tail = p;
        tail = &p->next;
    }
    journal_submit(j, first, n, 1, rcs);
    return 0;
}

void journal_forget(journal_t *j, const uint64_t *versions, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        journal_pend *p = calloc(1, sizeof *p);
        if (p == NULL)
            return; /* replayed later: a no-op at the store by version */
        p->version = versions[i];
        journal_submit(j, p, 1, 0, NULL);
    }
}

int journal_replay(journal_t *j, void (*fn)(const journal_rec *rec, void *ctx), void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn);

    if (rc)
        return -1;
    if ((rc = mdb_cursor_open(txn, j->dbi, &cur))) {
        mdb_txn_abort(txn);
        return -1;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t version;
        journal_rec r;
        if (k.mv_size != sizeof version)
            continue;
        memcpy(&version, k.mv_data, sizeof version);
        if (version == 0)
            continue; /* the high-water mark */
        if (journal_get(v.mv_data, v.mv_size, &r) != 0)
            continue;
        r.version = version;
        fn(&r, ctx);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return 0;
}

size_t journal_count(journal_t *j)
{
    MDB_txn *txn;
    MDB_stat st;
    size_t n = 0;

    if (mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_stat(txn, j->dbi, &st) == 0)
            n = st.ms_entries;
        mdb_txn_abort(txn);
    }
    return n > 0 && journal_high(j) ? n - 1 : n;
}

uint64_t journal_high(journal_t *j)
{
    MDB_txn *txn;
    size_t zero = 0;
    MDB_val k = {sizeof zero, &zero}, v;
    uint64_t high = 0;

    if (mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_get(txn, j->dbi, &k, &v) == 0 && v.mv_size == sizeof high)
            memcpy(&high, v.mv_data, sizeof high);
        mdb_txn_abort(txn);
    }
    return high;
}
