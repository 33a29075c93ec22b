/* jnl: the queue's durable journal (LMDB). A job is written before the
 * client hears 202 and deleted once it has ended; on start the queue replays
 * what is left. Commits are grouped: whoever finds no commit under way takes
 * every record waiting and commits them in one transaction, while the others
 * wait for theirs (leader/follower group commit), so admission costs about
 * one commit per group, not per write.
 * Ownership: jnl_open allocates, jnl_close frees; records are copied. */
#ifndef KV_QUEUE_JOURNAL_H
#define KV_QUEUE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct jnl jnl_t;

typedef struct jnl_rec {
    uint64_t id;          /* the job id (= its version) */
    uint8_t op;           /* WIRE_PUT / WIRE_DEL / WIRE_INCR */
    int64_t delta;
    const char *key;
    size_t klen;
    const void *val;
    size_t vlen;
} jnl_rec;

/* fsync: "always" syncs every group, "everysec" from a timer, "no" never
 * (the OS writes back; a process crash loses nothing either way). */
jnl_t *jnl_open(const char *dir, size_t map_mb, const char *fsync);
void jnl_close(jnl_t *j);
/* Durable on return (per the fsync policy). 0, or -1 (journal full or I/O). */
int jnl_append(jnl_t *j, const jnl_rec *rec);
/* Queue the deletion of ended jobs; done with a later group (no wait). */
void jnl_forget(jnl_t *j, const uint64_t *ids, size_t n);
/* Call fn for every record, in id order (before the queue starts). */
int jnl_replay(jnl_t *j, void (*fn)(const jnl_rec *rec, void *ctx), void *ctx);
size_t jnl_count(jnl_t *j);

#endif
