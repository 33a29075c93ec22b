/* wquorum: a primary's write quorum W (docs/PROTOCOL.md "Write quorum W").
 *
 * A write is applied first; then, when W > 0, its HTTP request is suspended
 * here with the answer already built, until W secondaries have acked a seq
 * >= the write's seq (wquorum_release, called by the replication senders
 * with the quorum seq they compute), or until the timeout passes (then 504
 * quorum_timeout, answered by this module's timer thread).
 *
 * The quorum seq of a set of secondaries (wquorum_seq) is the highest seq S
 * such that the policy holds for every write at or below S:
 *   any      the W-th highest acked seq over every secondary, live or not
 *            (store/repl_send.c passes 0 for a secondary whose position it
 *            lost track of, i.e. from its first failed exchange on);
 *   ordered  the lowest acked seq over the first W live secondaries in
 *            replica-id order (the topology lists them in that order),
 *            0 while fewer than W are live (PostgreSQL's FIRST k).
 *
 * Threads: wquorum_wait runs on httpd threads, wquorum_release on sender
 * threads; one timer thread answers timeouts. No httpd call is made under
 * the module's lock.
 *
 * Ownership: wquorum_new allocates; wquorum_close answers every waiter and
 * every later wait at once (503 shutting_down: call it before stopping the
 * httpd server, so that it can drain); wquorum_free closes, joins the timer
 * thread and frees; both accept NULL. wquorum_wait takes
 * ownership of body (malloc'd; freed after the answer) and copies the
 * headers. */
#ifndef KV_STORE_WQUORUM_H
#define KV_STORE_WQUORUM_H

#include "httpd.h"

#include <stddef.h>
#include <stdint.h>

enum wquorum_policy { WQUORUM_ANY = 0, WQUORUM_ORDERED };

/* One secondary as the quorum sees it, in replica-id order. */
typedef struct wquorum_peer {
    uint64_t acked;  /* highest seq it acked (0: unknown) */
    int alive;
} wquorum_peer;

/* "any" | "ordered" -> policy; -1 on anything else. */
int wquorum_policy_parse(const char *s, enum wquorum_policy *out);
/* The quorum seq of peers[0..n) for w >= 1 (see above). */
uint64_t wquorum_seq(const wquorum_peer *peers, size_t n, unsigned w,
                     enum wquorum_policy policy);
size_t wquorum_alive(const wquorum_peer *peers, size_t n);

typedef struct wquorum wquorum;

wquorum *wquorum_new(long timeout_ms);
void wquorum_close(wquorum *q);
void wquorum_free(wquorum *q);

/* Answer r with (status, ctype, body, headers) once the quorum seq reaches
 * seq: at once when it already has (r is not suspended then), else after
 * httpd_suspend. headers: NULL-terminated, at most 4, copied. */
void wquorum_wait(wquorum *q, httpd_req *r, uint64_t seq, unsigned status,
                  const char *ctype, char *body, size_t len,
                  const char *const *headers);
/* The quorum seq is now qseq: answers every waiter at or below it. */
void wquorum_release(wquorum *q, uint64_t qseq);
/* Answers every waiter with 504 quorum_timeout now (the store stepped down:
 * its writes were applied here but not acknowledged). */
void wquorum_fail_all(wquorum *q, const char *why);
size_t wquorum_waiting(wquorum *q);

#endif
