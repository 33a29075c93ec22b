/* httpd_internal: the structures lib/httpd.c and lib/httpd_subreq.c share
 * (a sub-request is an httpd_req of its own, answered into its batch's
 * answer instead of onto a connection). Not for the servers: they see
 * lib/httpd.h only. */
#ifndef KV_HTTPD_INTERNAL_H
#define KV_HTTPD_INTERNAL_H

#include "httpd.h"
#include "httpd_conns.h"
#include "subreq.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

/* One worker thread: an MHD daemon in external-epoll mode on the shared
 * listening socket, and an httpc loop, both waited on with one epoll set. */
typedef struct httpd_worker {
    httpd_t *srv;
    struct MHD_Daemon *mhd;
    httpc_loop *hc;
    int epfd;
    int wakefd;                /* eventfd: a request was answered elsewhere */
    int resumed;               /* a request was answered in this pass: the
                                  next pass starts at once (libmicrohttpd
                                  sends a resumed answer only in the
                                  MHD_run after the one that resumed it) */
    pthread_t thread;
    int started;
} httpd_worker;

struct httpd {
    httpd_worker *workers;
    unsigned nworkers;
    int listen_fd;
    int stopfd;                /* eventfd: readable once stopping */
    _Atomic int stopping;
    _Atomic int closing;       /* answers close their connections */
    _Atomic int pending;       /* suspended requests not yet finished */
    httpd_handler handler;
    void *app;
    void (*on_pass)(void *app);
    void (*admit)(httpd_req *r, void *app);
    metrics_hist *latency;
    int subreq;                /* serves SUBREQ_PATH (httpd_opts.subreq) */
    httpd_conns *conns;
    unsigned max_conns_mhd;    /* per daemon: the table's, plus spares */
    size_t max_body;
    uint16_t port;
    pthread_mutex_t start_mu;  /* workers report their start here */
    pthread_cond_t start_cv;
    unsigned nready, nfailed;
    const httpd_opts *opts;    /* during httpd_start only */
};

enum httpd_req_state { REQ_HEAD, REQ_READING, REQ_HANDLED };

struct httpd_req {
    httpd_t *srv;
    httpd_worker *worker;
    struct MHD_Connection *conn;
    httpd_conns_slot *slot;    /* its connection's, in d->conns */
    size_t uri_len;            /* of the raw request target, to its first NUL */
    int bad_uri;               /* a space or control byte in it */
    const char *method;
    const char *path;
    enum httpd_req_state state;
    int too_big;
    int async;                 /* set by httpd_suspend in the handler */
    char *body;
    size_t len, cap;
    size_t want;               /* Content-Length, when it came with one */
    struct MHD_Response *resp; /* ready to queue */
    unsigned status;
    void *user;
    void (*user_free)(void *);
    uint64_t t0_us;            /* arrival, when the server times answers */
    char **allocs; /* decoded query values, freed with the request */
    size_t nallocs;
    char ip[INET6_ADDRSTRLEN];
    /* sub-requests (lib/httpd_subreq.c) */
    httpd_req *parent;         /* a sub-request's batch, else NULL */
    struct httpd_sub *sub;     /* a sub-request's own parts */
    httpd_req **subs;          /* a batch's sub-requests, in order */
    size_t nsubs;
    _Atomic size_t subs_left;  /* not yet answered, plus one while running */
};

/* Runs the sub-requests in r's body (a POST to SUBREQ_PATH) through the
 * admit hook and the handler, each as a request of its own, and answers r
 * with their answers once all have one (r is suspended meanwhile). */
void httpd_subreq_run(httpd_req *r);
/* A sub-request's answer, in place of a connection's (httpd_respond). */
void httpd_subreq_answer(httpd_req *r, unsigned status,
                         const char *content_type, const void *body,
                         size_t len, const char *const *headers);
/* A sub-request's header and query value (decoded, kept by r), and the
 * freeing of its parts (httpd_req_free). */
const char *httpd_subreq_header(const httpd_req *r, const char *name);
const char *httpd_subreq_query(httpd_req *r, const char *name);
void httpd_subreq_free(httpd_req *r);
/* Keep s (malloc'd) until r is freed. */
void httpd_keep(httpd_req *r, char *s);

#endif
