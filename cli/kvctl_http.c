#include "kvctl.h"

#include "json_whole.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define KVCTL_HTTP_MAX_HEADERS 14

int kvctl_http_request(const kvctl_opts *o, const char *method,
                       const char *base, const char *path, const void *body,
                       size_t len, const char *const *headers, httpc_resp *out)
{
    size_t n = strlen(base) + strlen(path) + 1;
    char *url = malloc(n);
    httpc_req req = {0};
    /* the caller's headers, the token's, the NULL that ends them */
    const char *hdrs[KVCTL_HTTP_MAX_HEADERS + 2];
    size_t nh = 0;

    memset(out, 0, sizeof *out);
    for (; headers && headers[nh]; nh++) {
        if (nh == KVCTL_HTTP_MAX_HEADERS) {
            fprintf(stderr, "kvctl: more than %d headers for one request\n",
                    KVCTL_HTTP_MAX_HEADERS);
            free(url);
            return KVCTL_FAIL;
        }
        hdrs[nh] = headers[nh];
    }
    if (url == NULL)
        return KVCTL_FAIL;
    if (o->auth[0])
        hdrs[nh++] = o->auth;
    hdrs[nh] = NULL;
    snprintf(url, n, "%s%s", base, path);
    req.method = method;
    req.url = url;
    req.body = body;
    req.body_len = len;
    req.headers = hdrs;
    req.timeout_ms = o->timeout_ms;
    if (httpc_do(&req, out) < 0 || out->status == 0) {
        fprintf(stderr, "kvctl: cannot reach %s: %s\n", base,
                out->error[0] ? out->error : "no answer");
        free(url);
        httpc_resp_free(out);
        return KVCTL_CONNECT;
    }
    free(url);
    return 0;
}

char *kvctl_http_escape(const char *s, size_t len)
{
    CURL *h = curl_easy_init();
    char *e, *copy;

    if (h == NULL)
        return NULL;
    e = curl_easy_escape(h, s, (int)len);
    copy = e ? strdup(e) : NULL;
    curl_free(e);
    curl_easy_cleanup(h);
    return copy;
}

cJSON *kvctl_http_json(const httpc_resp *r)
{
    if (r->body == NULL || r->len == 0)
        return NULL;
    return json_whole_parse(r->body, r->len, NULL);
}

void kvctl_http_print_body(const httpc_resp *r)
{
    if (r->body && r->len) {
        fwrite(r->body, 1, r->len, stdout);
        if (r->body[r->len - 1] != '\n')
            putchar('\n');
    }
}

int kvctl_http_fail(const kvctl_opts *o, const httpc_resp *r, const char *what)
{
    cJSON *j;
    const cJSON *code, *msg;

    if (o->json) {
        kvctl_http_print_body(r);
        return KVCTL_FAIL;
    }
    j = kvctl_http_json(r);
    code = cJSON_GetObjectItemCaseSensitive(j, "error");
    msg = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (cJSON_IsString(code))
        fprintf(stderr, "kvctl: %s: %ld %s%s%s\n", what, r->status,
                code->valuestring, cJSON_IsString(msg) ? ": " : "",
                cJSON_IsString(msg) ? msg->valuestring : "");
    else
        fprintf(stderr, "kvctl: %s: HTTP %ld%s%.200s\n", what, r->status,
                r->len ? ": " : "", r->body ? r->body : "");
    cJSON_Delete(j);
    return KVCTL_FAIL;
}

static void kvctl_http_print_scalar(FILE *f, const cJSON *j)
{
    if (cJSON_IsString(j))
        fputs(j->valuestring, f);
    else if (cJSON_IsBool(j))
        fputs(cJSON_IsTrue(j) ? "true" : "false", f);
    else if (cJSON_IsNull(j))
        fputs("null", f);
    else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == (double)(long long)d && d < 9.1e15 && d > -9.1e15)
            fprintf(f, "%lld", (long long)d);
        else
            fprintf(f, "%g", d);
    } else {
        char *s = cJSON_PrintUnformatted(j);
        fputs(s ? s : "?", f);
        free(s);
    }
}

static int kvctl_http_is_flat(const cJSON *j)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, j)
        if (cJSON_IsObject(it) || cJSON_IsArray(it))
            return 0;
    return 1;
}

void kvctl_http_print_tree(FILE *f, const cJSON *j, int indent)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, j) {
        fprintf(f, "%*s", indent, "");
        if (it->string)
            fprintf(f, "%s:", it->string);
        else
            fputs("-", f);
        if (cJSON_IsObject(it) || (cJSON_IsArray(it) && !kvctl_http_is_flat(it))) {
            fputc('\n', f);
            kvctl_http_print_tree(f, it, indent + 2);
        } else if (cJSON_IsArray(it)) {
            const cJSON *e;
            int first = 1;
            fputc(' ', f);
            cJSON_ArrayForEach(e, it) {
                if (!first)
                    fputs(", ", f);
                kvctl_http_print_scalar(f, e);
                first = 0;
            }
            fputc('\n', f);
        } else {
            fputc(' ', f);
            kvctl_http_print_scalar(f, it);
            fputc('\n', f);
        }
    }
}
