/* lab_coordinator_http: the lab coordinator's HTTP API on 127.0.0.1:7000
 * (docs/PROTOCOL.md "The CloudCart lab").
 *
 *   GET  /status              the lab: leader, followers, quorum, counters
 *   POST /write {"key","value"}  to the leader, answered after the W
 *                             followers of the sync set applied it
 *   GET  /read/{key}          the read set (last R alive followers) in
 *                             parallel, the newest version wins
 *   POST /kill/{node_id}      SIGTERM; dead at once
 *   POST /spawn [{"node_id","port"}]   a new incarnation (catches up first)
 *   POST /pause/{node_id}?ms=N         SIGSTOP, SIGCONT after N ms
 *   POST /heartbeat {"node_id","incarnation","applied_seq","state"}
 *                             from the stores: {"status":"ok"|"retired"}
 *   GET  /topology, /health, /metrics
 *
 * Lab errors are {"detail":{"error":"<sentence>",...}} (the shape the
 * CloudCart tools read); an unknown path is 404 and a known path with
 * another method 405, both JSON. /write and /read never hold a server
 * thread: the request is suspended and answered from the lab's httpc loop
 * (a quorum write takes 0.5 s or more, and heartbeats must not wait behind
 * it).
 *
 * Ownership: lab_coordinator_http_start returns a server the caller stops with
 * lab_coordinator_http_stop; L is borrowed and must outlive it. */
#ifndef KV_CTL_LAB_HTTP_H
#define KV_CTL_LAB_HTTP_H

#include "httpc.h"
#include "httpd.h"

#include <stdint.h>

typedef struct lab_coordinator lab_coordinator_t;
typedef struct lab_coordinator_http lab_coordinator_http_t;

lab_coordinator_http_t *lab_coordinator_http_start(lab_coordinator_t *L, const char *bind, uint16_t port);
void lab_coordinator_http_stop(lab_coordinator_http_t *h);
/* The handler itself (app is the lab_coordinator_http_t). */
void lab_coordinator_http_handle(httpd_req *r, void *app);

/* The lab's async client loop (lab_coordinator.c). */
httpc_loop *lab_coordinator_loop(lab_coordinator_t *L);

#endif
