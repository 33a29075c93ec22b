#include "kvhttp.h"

#include "metrics.h"
#include "num.h"
#include "precond.h"
#include "prefer.h"
#include "token.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int kvhttp_key(httpd_req *r, unsigned seg, size_t max_key, char **key,
               size_t *len)
{
    size_t rawlen;
    const char *raw = httpd_path_seg(r, seg, &rawlen);

    if (raw == NULL || rawlen == 0) {
        httpd_error(r, 400, "bad_key", "the key is empty");
        return -1;
    }
    /* A %-escape shrinks 3 bytes to 1, so a raw segment over 3 * max_key
     * is too long whatever it holds; this bounds the decode work. */
    if (rawlen > 3 * max_key) {
        httpd_error(r, 414, "key_too_long", "keys are at most %zu bytes",
                    max_key);
        return -1;
    }
    *key = httpd_decode(raw, rawlen, len);
    if (*key == NULL) {
        httpd_error(r, 400, "bad_key",
                    "the key has a bad %%-escape or a NUL byte");
        return -1;
    }
    if (*len > max_key) {
        free(*key);
        *key = NULL;
        httpd_error(r, 414, "key_too_long", "keys are at most %zu bytes",
                    max_key);
        return -1;
    }
    return 0;
}

void kvhttp_not_found(httpd_req *r)
{
    httpd_error(r, 404, "not_found", "no route for %s %s", httpd_method(r),
                httpd_path(r));
}

void kvhttp_bad_method(httpd_req *r, const char *allow)
{
    char hdr[128];
    const char *hdrs[] = {hdr, NULL};

    snprintf(hdr, sizeof hdr, "Allow: %s", allow);
    httpd_error_h(r, 405, hdrs, "method_not_allowed",
                  "%s is not allowed on %s (allowed: %s)", httpd_method(r),
                  httpd_path(r), allow);
}

int kvhttp_auth(httpd_req *r, const char *token)
{
    const char *h;

    if (token == NULL || token[0] == '\0')
        return 0;
    h = httpd_header(r, "Authorization");
    if (h && strncmp(h, "Bearer ", 7) == 0 &&
        token_equal(h + 7, strlen(h + 7), token, strlen(token)))
        return 0;
    httpd_error(r, 401, "unauthorized",
                "this route needs the cluster token (Authorization: Bearer)");
    return -1;
}

static int kvhttp_loopback(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
           strncmp(ip, "::ffff:127.", 11) == 0;
}

int kvhttp_is_local(httpd_req *r)
{
    const char *real = httpd_header(r, "X-Real-IP");

    return kvhttp_loopback(httpd_peer_ip(r)) &&
           (real == NULL || *real == '\0' || kvhttp_loopback(real));
}

void kvhttp_admit_internal(httpd_req *r, const char *token)
{
    if (strncmp(httpd_path(r), "/internal/", 10) == 0)
        kvhttp_auth(r, token);
}

void kvhttp_limits(httpd_opts *o, const kv_config *cfg)
{
    o->max_conns = (unsigned)cfg->max_connections;
    o->max_conns_per_ip = (unsigned)cfg->max_connections_per_ip;
    o->head_timeout_ms = (unsigned)cfg->header_timeout_ms;
}

int kvhttp_wait_ms(httpd_req *r, uint64_t max_ms, uint64_t *ms)
{
    const char *sync = httpd_query(r, "sync");

    if (sync && (strcmp(sync, "1") == 0 || strcasecmp(sync, "true") == 0)) {
        *ms = max_ms;
        return 0;
    }
    if (prefer_wait_ms(httpd_header(r, "Prefer"), max_ms, ms) != 0) {
        httpd_error(r, 400, "bad_request",
                    "Prefer: wait= takes whole or decimal seconds (wait=5, wait=0.5)");
        return -1;
    }
    return 0;
}

int kvhttp_condition(httpd_req *r, uint8_t *flags, uint64_t *version)
{
    const char *why = NULL;

    if (precond_parse(httpd_header(r, "If-Match"), httpd_header(r, "If-None-Match"),
                      flags, version, &why) != 0) {
        httpd_error(r, 400, "bad_precondition", "%s", why);
        return -1;
    }
    return 0;
}

int kvhttp_ttl(httpd_req *r, uint64_t *seconds)
{
    const char *ttl = httpd_query(r, "ttl");

    *seconds = 0;
    if (ttl == NULL)
        return 0;
    if (num_parse_max(ttl, KVHTTP_TTL_MAX_S, seconds) != 0 || *seconds == 0) {
        *seconds = 0;
        httpd_error(r, 400, "bad_ttl", "ttl takes whole seconds, 1 to %llu",
                    (unsigned long long)KVHTTP_TTL_MAX_S);
        return -1;
    }
    return 0;
}

void kvhttp_ok(httpd_req *r, const char *const *headers)
{
    static const char ok[] = "{\"status\":\"ok\"}";

    httpd_respond(r, 200, "application/json", ok, sizeof ok - 1, headers);
}

void kvhttp_metrics(httpd_req *r)
{
    size_t len;
    char *text = metrics_render(&len);
    httpd_respond(r, 200, "text/plain; version=0.0.4", text, len, NULL);
    free(text);
}
