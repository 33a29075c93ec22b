/* store_repair: POST /internal/repair — wire ops applied by version on any
 * role (sdb SDB_APPLY_REPAIR), one wire_result per op back; a primary
 * streams what it applied (docs/PROTOCOL.md "Replication, quorums and
 * failover"). */
#ifndef KV_STORE_REPAIR_H
#define KV_STORE_REPAIR_H

#include "httpd.h"

typedef struct store_http store_http;

void store_repair_route(store_http *h, httpd_req *r, const char *rest);

#endif
