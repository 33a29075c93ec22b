/* store_batch: POST /internal/batch — a queue's wire ops applied in one
 * transaction, one wire_result per op back (docs/PROTOCOL.md "Store"; the
 * answer headers are listed in store/store_http.h). With W > 0 the answer
 * waits in store/wquorum.h for everything the batch applied. */
#ifndef KV_STORE_BATCH_H
#define KV_STORE_BATCH_H

#include "httpd.h"

typedef struct store_http store_http;

void store_batch_route(store_http *h, httpd_req *r, const char *rest);

#endif
