/* store_kv: /internal/kv/{key} — GET (zero-copy from the map), PUT and
 * DELETE, and POST /internal/kv/{key}/incr?by=N (docs/PROTOCOL.md "Store").
 * A write is one op in one transaction; with W > 0 its answer waits in
 * store/wquorum.h until W secondaries acked it. */
#ifndef KV_STORE_KV_H
#define KV_STORE_KV_H

#include "httpd.h"

typedef struct store_http store_http;

/* rest: what follows "/internal/kv/". */
void store_kv_route(store_http *h, httpd_req *r, const char *rest);

#endif
