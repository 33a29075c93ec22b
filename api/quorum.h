/* quorum: the api's read path to a shard (docs/PROTOCOL.md
 * "Read quorum R").
 *
 * R = cluster.read_quorum, policy cluster.quorum_policy.
 *  - R = 0: GET the primary. When it does not answer (transport error or
 *    5xx), or the shard has no primary, the first secondary that answers in
 *    topology order serves the read, and X-KV-Served-By says so:
 *    "<url>; fallback=primary_unreachable".
 *  - R >= 1: GET R secondaries in parallel: policy `any` =
 *    R in random order, `ordered` = the last R in topology (replica id)
 *    order. A secondary that does not answer (transport error, 5xx) is
 *    replaced by the next one of the same order (the rest shuffled for
 *    `any`, by descending id for `ordered`: "the last R live secondaries"),
 *    so any R distinct answers count. An answer is a 200 (value with
 *    X-KV-Version) or a 404 (a tombstone carries X-KV-Version too; a missing
 *    key has no version). Fewer than R answers: 503 {"error":
 *    "quorum_unavailable","answered":A,"required":R}. The newest version
 *    wins (a tombstone too: 404); none has the key: 404. X-KV-Served-By
 *    names the replica whose answer is returned, X-KV-Quorum
 *    "answered=A required=R repairs=N". Replicas that answered an older
 *    version or no version are repaired in the background (repair.h).
 * A replica that just failed to answer is asked last for a second
 * (quorum_mark), so that a paused one does not cost every read a timeout.
 * Every request carries X-KV-Epoch with the shard epoch; a store at a newer
 * epoch (409 stale_epoch: the topology moved on and this api has not seen it
 * yet) is asked once more with its epoch: a read needs no fencing, and the
 * newer store is the better source.
 *
 * Nothing blocks: the client request is suspended and every GET runs on the
 * worker's httpc loop (httpd_loop); the last answer needed answers the
 * client, on the same thread.
 *
 * Ownership: quorum_read* take the call and the topology reference t (sh
 * points into it), answer the client, free the call and put t back. */
#ifndef KV_API_QUORUM_H
#define KV_API_QUORUM_H

#include "topo.h"
#include "api_call.h"

#include <stddef.h>
#include <stdint.h>

/* Register the read metrics once per process. */
void quorum_metrics_register(void);

/* R = 0: the primary, with the fallback above. */
void quorum_read_primary(api_call *c, topo_t *t, const topo_shard *sh,
                         const char *raw_key, size_t raw_len);
/* R >= 1. */
void quorum_read(api_call *c, topo_t *t, const topo_shard *sh,
                 const char *raw_key, size_t raw_len, unsigned r);

/* The order in which secondaries 0..n-1 are asked: the first min(r, n) are
 * the read set, the rest fallbacks. ordered: n-1, n-2, ..., 0; else a
 * random permutation drawn from *rng (xorshift64 state, not 0). */
void quorum_order(size_t n, int ordered, uint64_t *rng, size_t *order);

/* One replica's answer to a read: 1 counts toward the quorum (200 or 404),
 * 0 does not. *version: X-KV-Version (0 when absent), *tomb: a 404 with a
 * version (a tombstone). */
int quorum_classify(const httpc_resp *resp, uint64_t *version, int *tomb);

/* Replicas that did not answer a read (transport error or timeout) are
 * suspect for a second: reads ask them last (R >= 1: after the others of
 * the order; R = 0: the secondaries before a suspect primary). mark: after
 * a read of url, answered or not. */
void quorum_mark(quorum_state *s, const char *url, int answered);
/* The state is the api_app's (app->quorum): quorum_state_new (NULL when out
 * of memory), quorum_state_free after the server has stopped. */
quorum_state *quorum_state_new(void);
void quorum_state_free(quorum_state *s);
int quorum_suspect(quorum_state *s, const char *url);

/* Have the topology watcher poll now (a store answered from a newer epoch,
 * the primary did not answer, or the controller said the topology changed);
 * at most once per 100 ms however often it is called. */
void quorum_poke(api_app *a);

/* The store's epoch in a 409 stale_epoch answer (header X-KV-Epoch, else the
 * body's "epoch"); 0 when resp is not one. */
uint64_t quorum_stale_epoch(const httpc_resp *resp);

#endif
