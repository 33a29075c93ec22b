/* lab_assess_score_net: the grader's HTTP calls. Without a source address it is
 * lib/httpc's httpc_do. With one (a loopback address such as 127.31.7.2)
 * the client socket is bound to it (CURLOPT_INTERFACE "host!ADDR") and the
 * request carries "X-Real-IP: ADDR" as well, so the gateway's per-client
 * rate limiter sees that address whether it keys on the peer address (the
 * lab gateway, no nginx in front) or on X-Real-IP (behind nginx). When the
 * bind fails (no such local address) the request goes out unbound with the
 * header only, and later calls stop trying to bind.
 *
 * Ownership: as httpc_do: the caller frees the response with
 * httpc_resp_free. */
#ifndef KV_ASSESS_NET_H
#define KV_ASSESS_NET_H

#include "httpc.h"

/* 0, or -1 on a transport error (out->status 0, out->error says why). */
int lab_assess_net_do(const httpc_req *req, const char *src_ip, httpc_resp *out);
/* 1 once a bind has failed (requests then rely on X-Real-IP alone). */
int lab_assess_net_bind_failed(void);

#endif
