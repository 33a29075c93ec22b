/* lab_heartbeat: a lab store's heartbeats to the controller, its lease and its
 * fencing (docs/PROTOCOL.md "The CloudCart lab").
 *
 * A store started with --heartbeat URL --node-id ID --incarnation K POSTs
 * URL/heartbeat {"node_id","incarnation","applied_seq","state","url","pid"}
 * every store.heartbeat_ms. The controller answers {"status":"ok"}, or
 * {"status":"retired","incarnation":K2} when this incarnation was replaced
 * by K2 (it was silent too long: a network blip, a SIGSTOP). A retired
 * store logs "fenced: replaced by incarnation K2", applies nothing more and
 * stops at once (SIGTERM to itself: the normal shutdown, exit status 0).
 *
 * Lease (store.lease_ms > 0). The store applies replicated data (the
 * replication stream, repairs, reconciliation pages and wipes) only while
 * the last heartbeat the controller acknowledged was sent less than
 * lease_ms ago. The controller declares a silent follower dead, and may
 * replace it, only once it has heard nothing for lease_ms after the
 * receipt of its last heartbeat, which comes after that heartbeat was
 * sent. So whenever a replacement exists, the original's lease has run
 * out: a paused original that wakes up refuses every write still queued
 * for it until a heartbeat answers, and that answer retires it. Both sides
 * measure with CLOCK_MONOTONIC on one machine.
 *
 * The first heartbeat is sent by lab_heartbeat_start itself (so that a new
 * incarnation holds its lease before it starts to resync); later ones by a
 * thread. A controller that does not answer is retried every interval.
 *
 * The store is seen only through two callbacks that kv-store's main wires
 * (its position and its role's state), so the lab does not depend on the
 * store's modules.
 *
 * Ownership: lab_heartbeat_start copies its strings and borrows
 * position_arg, which must outlive the handle; lab_heartbeat_set_state
 * borrows state_arg until lab_heartbeat_stop, which joins the thread and
 * frees. Every function accepts NULL (no heartbeats: the gate always
 * opens). */
#ifndef KV_LAB_HEARTBEAT_H
#define KV_LAB_HEARTBEAT_H

#include <stdint.h>

typedef struct lab_heartbeat lab_heartbeat_t;
/* The store's position as /health reports it (applied seq; 0 while it
 * resyncs). */
typedef uint64_t (*lab_heartbeat_position_fn)(void *arg);
/* The store role's state ("secondary", "resyncing", ...). */
typedef const char *(*lab_heartbeat_state_fn)(void *arg);

typedef struct lab_heartbeat_opts {
    const char *controller;   /* base URL: POST <controller>/heartbeat */
    const char *node_id;      /* "leader", "follower-2" */
    uint64_t incarnation;
    const char *self_url;     /* http://host:port of this store */
    long interval_ms;         /* store.heartbeat_ms */
    long lease_ms;            /* store.lease_ms, 0 = no lease */
    const char *token;        /* cluster token or NULL */
    lab_heartbeat_position_fn position;
    void *position_arg;
} lab_heartbeat_opts;

lab_heartbeat_t *lab_heartbeat_start(const lab_heartbeat_opts *o);
/* The state heartbeats report, set once the role exists ("starting"
 * before). */
void lab_heartbeat_set_state(lab_heartbeat_t *h, lab_heartbeat_state_fn state,
                             void *state_arg);
void lab_heartbeat_stop(lab_heartbeat_t *h);

/* 1 while the store may apply replicated data (no lease, or a lease
 * acknowledged less than lease_ms ago, and not retired); 0 otherwise. The
 * signature of role_opts.may_apply: pass the lab_heartbeat_t as arg. */
int lab_heartbeat_may_apply(void *h);
/* 1 once the controller said this incarnation was replaced. */
int lab_heartbeat_retired(const lab_heartbeat_t *h);
/* The lease state for /health and /stats: "none", "held", "expired" or
 * "retired". */
const char *lab_heartbeat_lease_state(lab_heartbeat_t *h);

#endif
