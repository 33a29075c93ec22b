/* store_changes: GET /internal/changes?since=S&limit=N[&snapshot=ID], the
 * pull side of replication (docs/PROTOCOL.md "Replication, quorums and
 * failover"; the answer headers are listed in store/store_http.h). A
 * since=0 answer cut short keeps its read snapshot in store_snapcache so
 * that a full resync sees one state across pages. */
#ifndef KV_STORE_CHANGES_H
#define KV_STORE_CHANGES_H

#include "httpd.h"

typedef struct store_http store_http;

/* The route handler (GET or HEAD; store_http checks the method). */
void store_changes_route(store_http *h, httpd_req *r, const char *rest);

#endif
