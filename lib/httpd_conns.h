/* httpd_conns: which connections a server keeps, so that idle or slow
 * connections cannot crowd out the requests that matter (a health check,
 * nginx's next request).
 *
 * Three rules, over every worker of one server together:
 *   - at most max_per_ip connections from one client address;
 *   - at most max_total connections in all;
 *   - a connection must send a whole request head within head_timeout_ms of
 *     being accepted, or it is closed (slowloris, or a connection that never
 *     sends anything).
 * A new connection over a limit does not simply get refused: the oldest
 * idle connection (no request in progress: between requests, or still
 * sending its head) of the same address, or of anyone when the total is
 * full, is closed to make room. A flood of idle connections then only ever
 * replaces itself, and a client that connects and asks at once (the
 * controller's /health) is served. Only when every counted connection is
 * busy is the new one refused.
 *
 * Closing means shutdown(2) of the socket: the server's own loop then reads
 * the end of the stream and closes the connection as it would any other
 * (libmicrohttpd has no call to drop a connection it runs). The table is
 * shared by the server's worker threads under one mutex; each function is
 * safe to call from any of them. A connection's slot stays until
 * httpd_conns_close, which its loop calls before closing the socket, so a
 * shutdown never reaches a reused descriptor.
 *
 * Ownership: the server owns the table (httpd_conns_free); a slot belongs
 * to the connection it was opened for. */
#ifndef KV_HTTPD_CONNS_H
#define KV_HTTPD_CONNS_H

#include <stdint.h>
#include <sys/socket.h>

typedef struct httpd_conns httpd_conns;
typedef struct httpd_conns_slot httpd_conns_slot;

typedef struct httpd_conns_stats {
    unsigned open;             /* connections counted now */
    uint64_t evicted;          /* idle ones closed to make room */
    uint64_t refused;          /* new ones closed: every slot was busy */
    uint64_t head_timeouts;    /* closed for not sending a head in time */
} httpd_conns_stats;

httpd_conns *httpd_conns_new(unsigned max_total, unsigned max_per_ip,
                             unsigned head_timeout_ms);
void httpd_conns_free(httpd_conns *t);
/* Slots (sockets) a table for max_total connections may hold at once:
 * the connections shut down but not yet closed come on top. */
unsigned httpd_conns_capacity(unsigned max_total);

/* A connection was accepted on socket fd from address sa: its slot, or NULL
 * when it was refused (its socket is already shut down). Makes room first
 * by closing an older idle connection when a limit is reached. */
httpd_conns_slot *httpd_conns_open(httpd_conns *t, int fd,
                                   const struct sockaddr *sa);
/* The connection is being closed: its slot is free again. */
void httpd_conns_close(httpd_conns *t, httpd_conns_slot *s);
/* A request head arrived (busy = 1) or its answer was sent (busy = 0):
 * only idle connections are ever closed to make room. */
void httpd_conns_busy(httpd_conns *t, httpd_conns_slot *s, int busy);
/* Close the connections past their head deadline; cheap to call often (it
 * looks at the table at most every 100 ms). */
void httpd_conns_sweep(httpd_conns *t);
void httpd_conns_get_stats(httpd_conns *t, httpd_conns_stats *st);

#endif
