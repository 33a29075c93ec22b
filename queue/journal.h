/* journal: the queue's durable journal (LMDB). A job is written before the
 * client hears 202 and deleted once it has ended; on start the queue replays
 * what is left. Commits are grouped: whoever finds no commit under way takes
 * every record waiting and commits them in one transaction, while the others
 * wait for theirs (leader/follower group commit), so admission costs about
 * one commit per group, not per write.
 *
 * The leader also numbers the group: it takes each record's version from
 * hooks.next_id in the order it writes them, and after the commit hands the
 * whole group, in that order, to hooks.committed before anyone returns. The
 * queue enqueues there, so enqueue order is version order. Records are
 * keyed by version; each also holds its job's random id (queue/jobid.h),
 * given by the caller, so that a replayed job keeps its public name.
 *
 * Record format: the value of a record written now starts with the byte
 * JOURNAL_FMT_COND: format, op, delta (8), key length (4), job id (16),
 * flags (1: the write's condition and TTL, lib/wire.h WIRE_F_*), if_match
 * (8, only with WIRE_F_IF_MATCH), expires_at (8, only with WIRE_F_EXPIRES),
 * key, value. Two older formats still replay: one
 * that starts with JOURNAL_FMT_JOB (the same without flags and if_match: no
 * condition) and the first one (op, delta, key length, key, value: when the
 * job id was the version), whose records come back with has_job 0, and the
 * queue names them anew (their old numeric ids were the guessable kind, and
 * are not accepted any more).
 * Ownership: journal_open allocates, journal_close frees; records are copied. */
#ifndef KV_QUEUE_JOURNAL_H
#define KV_QUEUE_JOURNAL_H

#include "jobid.h"

#include <stddef.h>
#include <stdint.h>

/* The first byte of a record of the current format (an old record starts
 * with its op, 1 to 3). */
#define JOURNAL_FMT_JOB 0x80
#define JOURNAL_FMT_COND 0x81

typedef struct journal journal_t;

typedef struct journal_rec {
    uint64_t version;     /* the job's version, set by the leader */
    jobid job;            /* the job's id, set by the caller */
    int has_job;          /* replay: 0 for a record of the old format */
    uint8_t op;           /* WIRE_PUT / WIRE_DEL / WIRE_INCR */
    uint8_t flags;        /* its condition (WIRE_F_IF_*) and WIRE_F_EXPIRES */
    uint64_t if_match;    /* with WIRE_F_IF_MATCH */
    uint64_t expires_at;  /* with WIRE_F_EXPIRES: Unix ms */
    int64_t delta;
    const char *key;
    size_t klen;
    const void *val;
    size_t vlen;
    void *ctx;            /* the caller's, passed to hooks.committed */
} journal_rec;

typedef struct journal_hooks {
    uint64_t (*next_id)(void *arg);
    /* Called by the leader, in id order, once the records are durable. */
    void (*committed)(void *arg, journal_rec *const *recs, size_t n);
    void *arg;
} journal_hooks;

/* fsync: "always" syncs every group, "everysec" from a timer, "no" never
 * (the OS writes back; a process crash loses nothing either way). */
journal_t *journal_open(const char *dir, size_t map_mb, const char *fsync,
                const journal_hooks *hooks);
void journal_close(journal_t *j);
/* Hand in n records together (one server pass's worth) and return once
 * they are durable (per the fsync policy) and handed to hooks.committed;
 * they join the same group where they can, and each recs[i]->version is
 * set.
 * rcs[i]: 0, or -1 for a record that was not committed (journal full or
 * I/O). Returns -1 only when nothing was handed in (out of memory). The
 * records and what they point to must stay valid until then (the caller
 * waits anyway). */
int journal_append_many(journal_t *j, journal_rec *const *recs, size_t n, int *rcs);
/* Queue the deletion of ended jobs (by version); done with a later group
 * (no wait). */
void journal_forget(journal_t *j, const uint64_t *versions, size_t n);
/* Call fn for every record, in version order (before the queue starts). */
int journal_replay(journal_t *j, void (*fn)(const journal_rec *rec, void *ctx), void *ctx);
size_t journal_count(journal_t *j);
/* The highest version the journal ever committed (0 for a new journal). */
uint64_t journal_high(journal_t *j);

#endif
