/* lab_assess_score_net: see lab_assess_score_net.h. */
#include "lab_assess_net.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LAB_ASSESS_SCORE_NET_MAX_HDRS 32

static int lab_assess_net_nobind;

int lab_assess_net_bind_failed(void)
{
    return lab_assess_net_nobind;
}

typedef struct lab_assess_score_buf {
    char *p;
    size_t len, cap;
} lab_assess_score_buf;

static size_t lab_assess_net_add(lab_assess_score_buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *q;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > HTTPC_MAX_RESP_BODY)
            return 0;
        q = realloc(b->p, cap);
        if (q == NULL)
            return 0;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

static size_t lab_assess_net_on_body(char *p, size_t sz, size_t n, void *ud)
{
    return lab_assess_net_add(ud, p, sz * n) == sz * n ? sz * n : 0;
}

static size_t lab_assess_net_on_header(char *p, size_t sz, size_t n, void *ud)
{
    lab_assess_score_buf *b = ud;
    if (sz * n > 5 && strncmp(p, "HTTP/", 5) == 0)
        b->len = 0;   /* a new header block (after 100 Continue) */
    return lab_assess_net_add(b, p, sz * n) == sz * n ? sz * n : 0;
}

/* One transfer on a fresh handle (the source address differs between
 * calls; a fresh connection per call keeps that simple). */
static int lab_assess_net_bound(const httpc_req *req, const char *src_ip,
                            int bind, httpc_resp *out, CURLcode *rc_out)
{
    const char *m = req->method ? req->method : "GET";
    long timeout = req->timeout_ms > 0 ? req->timeout_ms : HTTPC_DEFAULT_TIMEOUT_MS;
    struct curl_slist *hdrs = NULL;
    lab_assess_score_buf body = {0}, head = {0};
    char iface[80], realip[80], errbuf[CURL_ERROR_SIZE] = "";
    int has_ctype = 0;
    CURLcode rc;
    CURL *e = curl_easy_init();

    memset(out, 0, sizeof *out);
    if (e == NULL) {
        snprintf(out->error, sizeof out->error, "out of memory");
        *rc_out = CURLE_OUT_OF_MEMORY;
        return -1;
    }
    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        has_ctype |= strncasecmp(req->headers[i], "Content-Type:", 13) == 0;
        hdrs = curl_slist_append(hdrs, req->headers[i]);
    }
    snprintf(realip, sizeof realip, "X-Real-IP: %s", src_ip);
    hdrs = curl_slist_append(hdrs, realip);
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (!has_ctype && req->body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout < 1000 ? timeout : 1000L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, lab_assess_net_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, lab_assess_net_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &head);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    if (bind) {
        snprintf(iface, sizeof iface, "host!%s", src_ip);
        curl_easy_setopt(e, CURLOPT_INTERFACE, iface);
    }
    if (strcmp(m, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
    }
    rc = curl_easy_perform(e);
    *rc_out = rc;
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        snprintf(out->error, sizeof out->error, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
        free(body.p);
        free(head.p);
        curl_easy_cleanup(e);
        return -1;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out->status);
    out->body = body.p ? body.p : calloc(1, 1);
    out->len = body.len;
    out->headers = head.p;
    curl_easy_cleanup(e);
    return 0;
}

int lab_assess_net_do(const httpc_req *req, const char *src_ip, httpc_resp *out)
{
    CURLcode rc;

    if (src_ip == NULL || src_ip[0] == '\0')
        return httpc_do(req, out);
    if (!lab_assess_net_nobind) {
        if (lab_assess_net_bound(req, src_ip, 1, out, &rc) == 0)
            return 0;
        if (rc != CURLE_INTERFACE_FAILED)
            return -1;
        lab_assess_net_nobind = 1;
    }
    return lab_assess_net_bound(req, src_ip, 0, out, &rc);
}
