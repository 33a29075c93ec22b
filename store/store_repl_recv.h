/* store_repl_recv: POST /internal/replicate on a secondary — a batch of its
 * primary's stream (X-KV-Since, X-KV-Upto, wire ops), or a heartbeat (no
 * X-KV-Upto) that just asks where it stands (docs/PROTOCOL.md "Replication,
 * quorums and failover"). Answers {"applied_seq":N[,"gap":true]}. */
#ifndef KV_STORE_REPL_RECV_H
#define KV_STORE_REPL_RECV_H

#include "httpd.h"

typedef struct store_http store_http;

void store_repl_recv_route(store_http *h, httpd_req *r, const char *rest);

#endif
