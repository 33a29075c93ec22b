/* api_app: what every part of kv-api shares. The api is the public HTTP
 * API, stateless: reads go straight to the shard the ring names (its
 * primary, or R secondaries: quorum.h), writes to the queue; every upstream call is asynchronous on the httpc loop of the
 * worker thread that runs the request (api_call.h). */
#ifndef KV_API_APP_H
#define KV_API_APP_H

#include "config.h"
#include "httpc.h"
#include "httpd.h"
#include "kvhdr.h"
#include "ratelimit.h"
#include "repair.h"
#include "topo.h"

#include <stdatomic.h>

/* The read path's memory (quorum.h): replicas that just failed, the last
 * topology poke. */
typedef struct quorum_state quorum_state;

typedef struct api_app {
    kv_config cfg;
    topo_watch *topo;
    ratelimit_t *rl;          /* NULL when api.rate_limit is 0 */
    quorum_state *quorum;     /* quorum_state_new; main frees it */
    repair_t *repair;         /* background read repair (R >= 1), or NULL */
    struct lab_gateway *lab_gateway; /* kv-api --lab (lab/lab_gateway.h) */
    char auth[KVHDR_AUTH_MAX]; /* "Authorization: Bearer ..." or "" */
    _Atomic int draining;     /* SIGTERM: /ready says 503, still serving */
    _Atomic int stopping;     /* no new upstream calls: answer 503 */
} api_app;

#endif
