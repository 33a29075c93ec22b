/* api: the public HTTP API (DESIGN §5). Stateless: reads go straight to the
 * shard primary the ring names, writes go to the queue; both asynchronously,
 * the request suspended while one of the httpc loops talks upstream. */
#ifndef KV_API_APP_H
#define KV_API_APP_H

#include "config.h"
#include "httpc.h"
#include "httpd.h"
#include "ratelimit.h"
#include "topo.h"

#include <stdatomic.h>

#define API_MAX_LOOPS 8

typedef struct api_app {
    kv_config cfg;
    topo_watch *topo;
    httpc_loop *loops[API_MAX_LOOPS];
    unsigned nloops;
    _Atomic unsigned next_loop;
    rl_t *rl;                 /* NULL when api.rate_limit is 0 */
    char auth[300];           /* "Authorization: Bearer ..." or "" */
    _Atomic int stopping;     /* no new upstream calls: answer 503 */
} api_app;

void api_handle(httpd_req *r, void *app);

#endif
