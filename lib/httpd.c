#include "httpd.h"

#include "log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTPD_DEFAULT_BODY ((size_t)1024 * 1024 + 64 * 1024)
/* Per-connection buffer for headers and upload chunks; MHD clears it
 * between requests, so bigger is slower for small requests. */
#ifndef HTTPD_CONN_MEMORY
#define HTTPD_CONN_MEMORY ((size_t)16 * 1024)
#endif

struct httpd {
    struct MHD_Daemon *mhd;
    _Atomic int pending;       /* suspended requests not yet finished */
    httpd_handler handler;
    void *app;
    size_t max_body;
    uint16_t port;
};

enum httpd_req_state { REQ_READING, REQ_HANDLED };

struct httpd_req {
    httpd_t *srv;
    struct MHD_Connection *conn;
    const char *method;
    const char *path;
    enum httpd_req_state state;
    int too_big;
    int async;                 /* set by httpd_suspend in the handler */
    char *body;
    size_t len, cap;
    struct MHD_Response *resp; /* ready to queue */
    unsigned status;
    void *user;
    void (*user_free)(void *);
    char **allocs; /* decoded query values, freed with the request */
    size_t nallocs;
    char ip[INET6_ADDRSTRLEN];
};

/* Keep the raw %-encoded path and query values: we decode ourselves so that
 * %2F inside a key is not taken for a path separator. */
static size_t httpd_no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void httpd_req_free(httpd_req *r)
{
    if (r->resp)
        MHD_destroy_response(r->resp);
    if (r->user_free)
        r->user_free(r->user);
    for (size_t i = 0; i < r->nallocs; i++)
        free(r->allocs[i]);
    free(r->allocs);
    free(r->body);
    free(r);
}

static void httpd_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    httpd_req *r = *con_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (r && r->async)
        atomic_fetch_sub(&r->srv->pending, 1);
    if (r)
        httpd_req_free(r);
    *con_cls = NULL;
}

static enum MHD_Result httpd_queue(httpd_req *r)
{
    struct MHD_Response *resp = r->resp;
    enum MHD_Result ret;

    r->resp = NULL;
    ret = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result httpd_access(void *cls, struct MHD_Connection *conn,
                                    const char *url, const char *method,
                                    const char *version,
                                    const char *upload_data,
                                    size_t *upload_data_size, void **con_cls)
{
    httpd_t *d = cls;
    httpd_req *r = *con_cls;
    (void)version;

    if (r == NULL) {
        const char *cl;
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return MHD_NO;
        r->srv = d;
        r->conn = conn;
        r->method = method;
        r->path = url;
        *con_cls = r;
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                         MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > d->max_body)
            r->too_big = 1;
        return MHD_YES;
    }
    if (r->state == REQ_READING) {
        if (*upload_data_size) {
            size_t n = *upload_data_size;
            *upload_data_size = 0;
            if (r->too_big || r->len + n > d->max_body) {
                r->too_big = 1; /* keep reading, answer 413 at the end */
                return MHD_YES;
            }
            if (r->len + n + 1 > r->cap) {
                size_t cap = r->cap ? r->cap : 4096;
                while (cap < r->len + n + 1)
                    cap *= 2;
                char *b = realloc(r->body, cap);
                if (b == NULL)
                    return MHD_NO;
                r->body = b;
                r->cap = cap;
            }
            memcpy(r->body + r->len, upload_data, n);
            r->len += n;
            r->body[r->len] = '\0';
            return MHD_YES;
        }
        r->state = REQ_HANDLED;
        if (r->too_big)
            httpd_error(r, 413, "too_large",
                        "request body is over the %zu byte limit", d->max_body);
        else
            d->handler(r, d->app);
        /* Suspended: another thread may be answering right now; MHD calls
         * us again once it resumed the connection, and we queue it then. */
        if (r->async)
            return MHD_YES;
    }
    if (r->resp)
        return httpd_queue(r);
    return MHD_YES;
}

httpd_t *httpd_start(const httpd_opts *o, httpd_handler h, void *app)
{
    struct sockaddr_in sa;
    httpd_t *d = calloc(1, sizeof *d);
    const union MHD_DaemonInfo *info;
    unsigned threads = o->threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (d == NULL)
        return NULL;
    if (threads == 0)
        threads = cores > 0 ? (unsigned)cores : 2;
    d->handler = h;
    d->app = app;
    d->max_body = o->max_body ? o->max_body : HTTPD_DEFAULT_BODY;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(o->port);
    if (inet_pton(AF_INET, o->bind ? o->bind : "127.0.0.1", &sa.sin_addr) != 1) {
        log_error("httpd: bad bind address %s", o->bind);
        free(d);
        return NULL;
    }
    d->mhd = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_TURBO | MHD_USE_ERROR_LOG,
        0, NULL, NULL, httpd_access, d,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s ? o->timeout_s : 120u,
        MHD_OPTION_CONNECTION_LIMIT, o->max_conns ? o->max_conns : 4096u,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_CONN_MEMORY,
        MHD_OPTION_UNESCAPE_CALLBACK, httpd_no_unescape, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, httpd_completed, NULL,
        MHD_OPTION_END);
    if (d->mhd == NULL) {
        log_error("httpd: cannot listen on %s:%u",
                  o->bind ? o->bind : "127.0.0.1", o->port);
        free(d);
        return NULL;
    }
    info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info ? info->port : o->port;
    return d;
}

int httpd_drain(httpd_t *d, long timeout_ms)
{
    struct timespec tick = {0, 10 * 1000000L};
    for (long waited = 0; atomic_load(&d->pending) > 0; waited += 10) {
        if (waited >= timeout_ms)
            return -1;
        nanosleep(&tick, NULL);
    }
    return 0;
}

void httpd_stop(httpd_t *d)
{
    if (d == NULL)
        return;
    /* libmicrohttpd must not stop with suspended connections. */
    if (httpd_drain(d, 5000))
        log_error("httpd: %d requests still waiting at shutdown",
                  atomic_load(&d->pending));
    MHD_stop_daemon(d->mhd);
    free(d);
}

uint16_t httpd_port(const httpd_t *d)
{
    return d->port;
}

const char *httpd_method(const httpd_req *r)
{
    return r->method;
}

const char *httpd_path(const httpd_req *r)
{
    return r->path;
}

int httpd_method_is(const httpd_req *r, const char *m)
{
    return strcmp(r->method, m) == 0;
}

const char *httpd_header(httpd_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static void httpd_keep(httpd_req *r, char *s)
{
    char **a = realloc(r->allocs, (r->nallocs + 1) * sizeof *a);
    if (a == NULL) {
        free(s);
        return;
    }
    r->allocs = a;
    r->allocs[r->nallocs++] = s;
}

const char *httpd_query(httpd_req *r, const char *name)
{
    const char *raw = MHD_lookup_connection_value(r->conn,
                                                  MHD_GET_ARGUMENT_KIND, name);
    char *dec;

    if (raw == NULL)
        return NULL;
    dec = httpd_decode(raw, strlen(raw), NULL);
    if (dec == NULL)
        return NULL;
    httpd_keep(r, dec);
    return dec;
}

const void *httpd_body(const httpd_req *r, size_t *len)
{
    *len = r->len;
    return r->body ? r->body : "";
}

const char *httpd_client_ip(httpd_req *r)
{
    const char *real = httpd_header(r, "X-Real-IP");

    if (real && *real)
        return real;
    return httpd_peer_ip(r);
}

const char *httpd_peer_ip(httpd_req *r)
{
    const union MHD_ConnectionInfo *ci;

    if (r->ip[0])
        return r->ip;
    ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
                      r->ip, sizeof r->ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr,
                      r->ip, sizeof r->ip);
    }
    if (!r->ip[0])
        strcpy(r->ip, "unknown");
    return r->ip;
}

const char *httpd_path_seg(const httpd_req *r, unsigned i, size_t *len)
{
    const char *p = r->path + (r->path[0] == '/');

    for (unsigned k = 0; k < i; k++) {
        p = strchr(p, '/');
        if (p == NULL)
            return NULL;
        p++;
    }
    *len = strcspn(p, "/");
    return p;
}

unsigned httpd_path_nsegs(const httpd_req *r)
{
    const char *p = r->path + (r->path[0] == '/');
    unsigned n = 1;

    for (; *p; p++)
        n += *p == '/';
    return n;
}

static int httpd_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *httpd_decode(const char *in, size_t n, size_t *out_len)
{
    char *out = malloc(n + 1);
    size_t o = 0;

    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '%') {
            int h = i + 2 < n ? httpd_hex(in[i + 1]) : -1;
            int l = i + 2 < n ? httpd_hex(in[i + 2]) : -1;
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

void httpd_set_user(httpd_req *r, void *user, void (*free_fn)(void *))
{
    r->user = user;
    r->user_free = free_fn;
}

void *httpd_user(const httpd_req *r)
{
    return r->user;
}

void httpd_suspend(httpd_req *r)
{
    r->async = 1;
    atomic_fetch_add(&r->srv->pending, 1);
    MHD_suspend_connection(r->conn);
}

void httpd_respond(httpd_req *r, unsigned status, const char *content_type,
                   const void *body, size_t len, const char *const *headers)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_MUST_COPY);

    if (resp == NULL) {
        log_error("httpd: out of memory building a response");
        resp = MHD_create_response_from_buffer(0, (void *)"",
                                               MHD_RESPMEM_PERSISTENT);
        status = 500;
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type);
    for (size_t i = 0; headers && headers[i]; i++) {
        const char *colon = strchr(headers[i], ':');
        char name[128];
        size_t n;
        if (colon == NULL || (n = (size_t)(colon - headers[i])) >= sizeof name)
            continue;
        memcpy(name, headers[i], n);
        name[n] = '\0';
        colon++;
        while (*colon == ' ')
            colon++;
        MHD_add_response_header(resp, name, colon);
    }
    r->status = status;
    r->resp = resp;
    if (r->async)
        MHD_resume_connection(r->conn); /* its lock publishes r->resp */
}

void httpd_respond_json(httpd_req *r, unsigned status, cJSON *json,
                        const char *const *headers)
{
    char *s = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    if (s == NULL) {
        httpd_respond(r, 500, "application/json",
                      "{\"error\":\"internal\"}", 20, NULL);
        return;
    }
    httpd_respond(r, status, "application/json", s, strlen(s), headers);
    free(s);
}

static void httpd_verror(httpd_req *r, unsigned status,
                         const char *const *headers, const char *code,
                         const char *fmt, va_list ap)
{
    char msg[512];
    cJSON *j = cJSON_CreateObject();

    vsnprintf(msg, sizeof msg, fmt, ap);
    cJSON_AddStringToObject(j, "error", code);
    cJSON_AddStringToObject(j, "message", msg);
    httpd_respond_json(r, status, j, headers);
}

void httpd_error(httpd_req *r, unsigned status, const char *code,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    httpd_verror(r, status, NULL, code, fmt, ap);
    va_end(ap);
}

void httpd_error_h(httpd_req *r, unsigned status, const char *const *headers,
                   const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    httpd_verror(r, status, headers, code, fmt, ap);
    va_end(ap);
}
