#include "httpc.h"

#include "log.h"
#include "resolve.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTTPC_CONNECT_TIMEOUT_MS 1000L
#define HTTPC_PARALLEL_MAX 64

void httpc_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct httpc_buf {
    char *data;
    size_t len, cap;
    size_t limit;
} httpc_buf;

static int httpc_buf_add(httpc_buf *b, const char *p, size_t n)
{
    if (b->len + n > b->limit)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* What one transfer collects; lives as long as the transfer. */
typedef struct httpc_xfer {
    httpc_buf body, hdrs;
    struct curl_slist *req_hdrs;
    struct curl_slist *resolve;   /* host:port:address from lib/resolve */
    char errbuf[CURL_ERROR_SIZE];
    char iface[80];               /* "host!<src_addr>" */
} httpc_xfer;

int httpc_url_split(const char *url, const char **host, size_t *hlen,
                    uint16_t *port, const char **path)
{
    const char *p, *slash, *colon;

    if (strncmp(url, "http://", 7) != 0)
        return -1;
    p = url + 7;
    slash = strchr(p, '/');
    if (slash == NULL)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    *host = p;
    *hlen = (size_t)((colon ? colon : slash) - p);
    *port = 80;
    if (colon) {
        long v = strtol(colon + 1, NULL, 10);
        if (v <= 0 || v > 65535)
            return -1;
        *port = (uint16_t)v;
    }
    *path = *slash ? slash : "/";
    return *hlen ? 0 : -1;
}

/* Give libcurl the address of a named host from lib/resolve, so that it
 * never waits on DNS itself (its threaded resolver joins a stuck lookup:
 * 10 s for a stopped container's name here). 0, or -1 with errbuf set. */
static int httpc_pin_address(CURL *e, const char *url, long timeout_ms,
                             httpc_xfer *x)
{
    const char *host, *path;
    size_t hlen;
    uint16_t port;
    char name[256], ip[INET6_ADDRSTRLEN], rule[320];
    struct sockaddr_storage sa;
    socklen_t salen;

    curl_easy_setopt(e, CURLOPT_RESOLVE, (struct curl_slist *)NULL);
    if (httpc_url_split(url, &host, &hlen, &port, &path) != 0 ||
        hlen >= sizeof name)
        return 0; /* not ours to resolve: libcurl reports what it makes of it */
    memcpy(name, host, hlen);
    name[hlen] = '\0';
    if (resolve_literal(name, port, &sa, &salen))
        return 0;
    if (resolve_wait(name, port, &sa, &salen,
                     timeout_ms < HTTPC_CONNECT_TIMEOUT_MS ? timeout_ms
                                                          : HTTPC_CONNECT_TIMEOUT_MS,
                     x->errbuf, sizeof x->errbuf) != RESOLVE_OK)
        return -1;
    resolve_ntop(&sa, ip, sizeof ip);
    snprintf(rule, sizeof rule, "%s:%u:%s%s%s", name, (unsigned)port,
             sa.ss_family == AF_INET6 ? "[" : "", ip,
             sa.ss_family == AF_INET6 ? "]" : "");
    x->resolve = curl_slist_append(NULL, rule);
    curl_easy_setopt(e, CURLOPT_RESOLVE, x->resolve);
    return 0;
}

static size_t httpc_on_body(char *p, size_t sz, size_t n, void *ud)
{
    httpc_xfer *x = ud;
    return httpc_buf_add(&x->body, p, sz * n) ? 0 : sz * n;
}

static size_t httpc_on_header(char *p, size_t sz, size_t n, void *ud)
{
    httpc_xfer *x = ud;
    /* A new status line (after 100 Continue, say) starts a new header block. */
    if (n * sz > 5 && strncmp(p, "HTTP/", 5) == 0)
        x->hdrs.len = 0;
    return httpc_buf_add(&x->hdrs, p, sz * n) ? 0 : sz * n;
}

/* Options that never change, set once when a handle is made; resetting a
 * handle for every call costs more than the call itself on a fast path. */
static CURL *httpc_easy_new(void)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, httpc_on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, httpc_on_header);
    return e;
}

/* Everything that may differ from the handle's previous call. 0, or -1
 * (the host could not be resolved: x->errbuf says why; finish with
 * httpc_finish as usual). */
static int httpc_setup(CURL *e, const httpc_req *req, httpc_xfer *x)
{
    const char *m = req->method ? req->method : "GET";
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
    int has_ctype = 0;

    memset(x, 0, sizeof *x);
    x->body.limit = HTTPC_MAX_RESP_BODY;
    x->hdrs.limit = 64 * 1024;
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        has_ctype |= strncasecmp(req->headers[i], "Content-Type:", 13) == 0;
        x->req_hdrs = curl_slist_append(x->req_hdrs, req->headers[i]);
    }
    /* No "Expect: 100-continue" round trip before bodies. */
    x->req_hdrs = curl_slist_append(x->req_hdrs, "Expect:");
    if (!has_ctype && req->body)
        x->req_hdrs = curl_slist_append(x->req_hdrs,
                                        "Content-Type: application/octet-stream");
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout < HTTPC_CONNECT_TIMEOUT_MS ? timeout
                                                        : HTTPC_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->req_hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOBODY, strcmp(m, "HEAD") == 0 ? 1L : 0L);
    /* The handle is reused: clear a source address a previous call set. */
    if (req->src_addr && req->src_addr[0])
        snprintf(x->iface, sizeof x->iface, "host!%s", req->src_addr);
    curl_easy_setopt(e, CURLOPT_INTERFACE,
                     x->iface[0] ? x->iface : (char *)NULL);
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* also clears a custom method */
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (char *)NULL);
    } else {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    }
    return httpc_pin_address(e, req->url, timeout, x);
}

/* Move what the transfer collected into the response, and clean up. */
static int httpc_finish(CURL *e, CURLcode rc, httpc_xfer *x, httpc_resp *out)
{
    memset(out, 0, sizeof *out);
    curl_slist_free_all(x->req_hdrs);
    curl_slist_free_all(x->resolve);
    x->req_hdrs = x->resolve = NULL;
    if (rc != CURLE_OK) {
        out->bind_failed = rc == CURLE_INTERFACE_FAILED;
        snprintf(out->error, sizeof out->error, "%s",
                 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        free(x->body.data);
        free(x->hdrs.data);
        return -1;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = x->body.data ? x->body.data : calloc(1, 1);
    out->len = x->body.len;
    out->headers = x->hdrs.data;
    return 0;
}

/* Per-thread handles keep connections alive between calls; a pthread key's
 * destructor frees them when the thread ends. */
static __thread CURL *httpc_tl_easy;
static __thread CURLM *httpc_tl_multi;
static __thread CURL *httpc_tl_pool[HTTPC_PARALLEL_MAX];
static pthread_key_t httpc_tl_key;
static pthread_once_t httpc_tl_once = PTHREAD_ONCE_INIT;

static void httpc_tl_free(void *unused)
{
    (void)unused;
    for (size_t i = 0; i < HTTPC_PARALLEL_MAX; i++) {
        if (httpc_tl_pool[i])
            curl_easy_cleanup(httpc_tl_pool[i]);
        httpc_tl_pool[i] = NULL;
    }
    if (httpc_tl_multi)
        curl_multi_cleanup(httpc_tl_multi);
    if (httpc_tl_easy)
        curl_easy_cleanup(httpc_tl_easy);
    httpc_tl_multi = NULL;
    httpc_tl_easy = NULL;
}

static void httpc_tl_key_init(void)
{
    pthread_key_create(&httpc_tl_key, httpc_tl_free);
}

static void httpc_tl_register(void)
{
    pthread_once(&httpc_tl_once, httpc_tl_key_init);
    pthread_setspecific(httpc_tl_key, (void *)1);
}

void httpc_thread_done(void)
{
    httpc_tl_free(NULL);
}

int httpc_do(const httpc_req *req, httpc_resp *out)
{
    httpc_xfer x;

    if (httpc_tl_easy == NULL) {
        httpc_tl_register();
        httpc_tl_easy = httpc_easy_new();
    }
    if (httpc_tl_easy == NULL) {
        memset(out, 0, sizeof *out);
        strcpy(out->error, "out of memory");
        return -1;
    }
    if (httpc_setup(httpc_tl_easy, req, &x) != 0)
        return httpc_finish(httpc_tl_easy, CURLE_COULDNT_RESOLVE_HOST, &x, out);
    return httpc_finish(httpc_tl_easy, curl_easy_perform(httpc_tl_easy), &x, out);
}

void httpc_parallel(const httpc_req *reqs, httpc_resp *resps, size_t n,
                    long deadline_ms)
{
    httpc_xfer x[HTTPC_PARALLEL_MAX];
    int running = 0;
    CURLMsg *msg;
    int left;

    if (n > HTTPC_PARALLEL_MAX)
        n = HTTPC_PARALLEL_MAX;
    if (httpc_tl_multi == NULL) {
        httpc_tl_register();
        httpc_tl_multi = curl_multi_init();
    }
    for (size_t i = 0; i < n; i++) {
        httpc_req r = reqs[i];
        if (deadline_ms > 0 && (r.timeout_ms <= 0 || r.timeout_ms > deadline_ms))
            r.timeout_ms = deadline_ms;
        if (httpc_tl_pool[i] == NULL)
            httpc_tl_pool[i] = httpc_easy_new();
        if (httpc_setup(httpc_tl_pool[i], &r, &x[i]) != 0) {
            httpc_finish(httpc_tl_pool[i], CURLE_COULDNT_RESOLVE_HOST, &x[i], &resps[i]);
            continue;
        }
        curl_easy_setopt(httpc_tl_pool[i], CURLOPT_PRIVATE, (void *)(uintptr_t)i);
        curl_multi_add_handle(httpc_tl_multi, httpc_tl_pool[i]);
    }
    do {
        if (curl_multi_perform(httpc_tl_multi, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(httpc_tl_multi, NULL, 0, 100, NULL);
        while ((msg = curl_multi_info_read(httpc_tl_multi, &left))) {
            char *priv;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            size_t i = (size_t)(uintptr_t)priv;
            httpc_finish(msg->easy_handle, msg->data.result, &x[i], &resps[i]);
            curl_multi_remove_handle(httpc_tl_multi, msg->easy_handle);
        }
    } while (running);
}

void httpc_resp_free(httpc_resp *r)
{
    if (r == NULL)
        return;
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
    r->len = 0;
}

const char *httpc_resp_header(const httpc_resp *r, const char *name, char *buf,
                              size_t bufsz)
{
    size_t nlen = strlen(name);
    const char *p = r->headers;

    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            size_t vlen = len - nlen - 1;
            while (vlen && (*v == ' ' || *v == '\t'))
                v++, vlen--;
            while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            if (vlen >= bufsz)
                vlen = bufsz - 1;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}
