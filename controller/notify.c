/* notify: see notify.h. */
#include "notify.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define NOTIFY_CHUNK 32 /* requests in flight at once */

size_t notify_nodes(cluster_t *cl, const char *auth, notify_pick_fn pick,
                    notify_answer_fn answer, void *ctx, size_t *asked)
{
    const cluster_node *nodes[NOTIFY_CHUNK];
    char urls[NOTIFY_CHUNK][SUP_URL_MAX + 32];
    httpc_req reqs[NOTIFY_CHUNK];
    httpc_resp resps[NOTIFY_CHUNK];
    const char *hdrs[] = {auth[0] ? auth : NULL, NULL};
    size_t next = 0, told = 0, total = 0;

    while (next < cl->nnodes) {
        size_t n = 0;

        memset(reqs, 0, sizeof reqs);
        for (; next < cl->nnodes && n < NOTIFY_CHUNK; next++) {
            const cluster_node *nd = &cl->nodes[next];

            if (atomic_load(&nd->gone) || !pick(nd, ctx))
                continue;
            nodes[n] = nd;
            snprintf(urls[n], sizeof urls[n], "%s/internal/topology-changed",
                     nd->url);
            reqs[n].method = "POST";
            reqs[n].url = urls[n];
            reqs[n].body = "";
            reqs[n].headers = hdrs;
            reqs[n].timeout_ms = NOTIFY_TIMEOUT_MS;
            n++;
        }
        memset(resps, 0, sizeof resps);
        httpc_parallel(reqs, resps, n, NOTIFY_TIMEOUT_MS);
        for (size_t i = 0; i < n; i++) {
            told += resps[i].status >= 200 && resps[i].status < 300;
            if (answer)
                answer(nodes[i], &resps[i], ctx);
            httpc_resp_free(&resps[i]);
        }
        total += n;
    }
    if (asked)
        *asked = total;
    return told;
}
