/* kvctl get / put / del / incr over the public API (docs/PROTOCOL.md). */
#include "kvctl.h"

#include "num.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "/kv/<escaped key><suffix>" (caller frees), NULL on a bad key. */
static char *kvctl_kv_path(const char *key, const char *suffix)
{
    char *esc, *path;
    size_t n;

    if (key[0] == '\0') {
        fprintf(stderr, "kvctl: the key must not be empty\n");
        return NULL;
    }
    esc = kvctl_http_escape(key, strlen(key));
    if (esc == NULL)
        return NULL;
    n = strlen(esc) + strlen(suffix) + 8;
    path = malloc(n);
    if (path)
        snprintf(path, n, "/kv/%s%s", esc, suffix);
    free(esc);
    return path;
}

/* The condition of --if-match / --if-absent as request headers into hdrs
 * (room for 2), NULL when the write has none. */
static const char *const *kvctl_kv_cond(const kvctl_opts *o, char *buf,
                                        size_t len, const char **hdrs)
{
    if (o->if_match)
        snprintf(buf, len, "If-Match: \"%llu\"", (unsigned long long)o->if_match);
    else if (o->if_absent)
        snprintf(buf, len, "If-None-Match: *");
    else
        return NULL;
    hdrs[0] = buf;
    hdrs[1] = NULL;
    return hdrs;
}

/* Appends the write's query (?sync=1 for --wait, ttl= for --ttl) to buf,
 * after "?" or, when buf has a query already, "&". */
static void kvctl_kv_query(const kvctl_opts *o, char *buf, size_t len, int write_ttl)
{
    size_t n = strlen(buf);

    if (o->wait)
        n += (size_t)snprintf(buf + n, len - n, "%ssync=1", strchr(buf, '?') ? "&" : "?");
    if (write_ttl && o->ttl_s && n < len)
        snprintf(buf + n, len - n, "%sttl=%llu", strchr(buf, '?') ? "&" : "?",
                 (unsigned long long)o->ttl_s);
}

/* Print " name value" of a JSON field (as text: a job id may pass 2^53). */
static void kvctl_kv_print_field(const cJSON *j, const char *name, int *first)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    char *s;

    if (!cJSON_IsNumber(v) && !cJSON_IsString(v))
        return;
    s = cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v);
    printf("%s%s %s", *first ? "" : ", ", name, s ? s : v->valuestring);
    free(s);
    *first = 0;
}

/* The answer to a write: 200 applied, 202 queued. */
static int kvctl_kv_write_done(const kvctl_opts *o, httpc_resp *r,
                            const char *key, const char *what)
{
    cJSON *j;
    const cJSON *st;

    if (r->status != 200 && r->status != 202)
        return kvctl_http_fail(o, r, what);
    if (o->json) {
        kvctl_http_print_body(r);
        return KVCTL_OK;
    }
    j = kvctl_http_json(r);
    st = cJSON_GetObjectItemCaseSensitive(j, "status");
    printf("%s: %s", key,
           cJSON_IsString(st) ? st->valuestring
                              : (r->status == 200 ? "applied" : "queued"));
    if (o->wait && r->status == 202)
        printf(" (not applied within the wait)");
    {
        int first = 1;
        printf(" (");
        kvctl_kv_print_field(j, "job", &first);
        kvctl_kv_print_field(j, "version", &first);
        kvctl_kv_print_field(j, "current_version", &first);
        printf(")\n");
    }
    cJSON_Delete(j);
    return KVCTL_OK;
}

int kvctl_kv_get(const kvctl_opts *o, int argc, char **argv)
{
    static const char *const json_hdr[] = {"Accept: application/json", NULL};
    char *path = kvctl_kv_path(argv[0], "");
    httpc_resp r;
    int rc;

    (void)argc;
    if (path == NULL)
        return KVCTL_USAGE;
    rc = kvctl_http_request(o, "GET", o->url, path, NULL, 0,
                            o->json ? json_hdr : NULL, &r);
    free(path);
    if (rc)
        return rc;
    if (r.status == 404) {
        if (o->json)
            kvctl_http_print_body(&r);
        else
            fprintf(stderr, "not found\n");
        rc = KVCTL_FAIL;
    } else if (r.status != 200) {
        rc = kvctl_http_fail(o, &r, "get");
    } else if (o->json) {
        kvctl_http_print_body(&r);
    } else {
        fwrite(r.body, 1, r.len, stdout);
        if (isatty(STDOUT_FILENO) && (r.len == 0 || r.body[r.len - 1] != '\n'))
            putchar('\n');
    }
    httpc_resp_free(&r);
    return rc;
}

/* All of stream f in a new buffer (caller frees); NULL on error. */
static char *kvctl_kv_read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);

    if (buf == NULL)
        return NULL;
    for (;;) {
        size_t got;
        if (n == cap) {
            char *p = realloc(buf, cap * 2);
            if (p == NULL) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int kvctl_kv_put(const kvctl_opts *o, int argc, char **argv)
{
    char cbuf[64], query[64] = "";
    const char *chdrs[2];
    char *path;
    char *owned = NULL;
    const char *val;
    size_t len;
    httpc_resp r;
    int rc;

    kvctl_kv_query(o, query, sizeof query, 1);
    if ((path = kvctl_kv_path(argv[0], query)) == NULL)
        return KVCTL_USAGE;
    if (argc == 2 && strcmp(argv[1], "-") != 0) {
        val = argv[1];
        len = strlen(val);
    } else {
        if (argc == 1 && isatty(STDIN_FILENO)) {
            fprintf(stderr, "usage: kvctl put KEY [VALUE | -] (no value given "
                            "and stdin is a terminal)\n");
            rc = KVCTL_USAGE;
            goto out;
        }
        owned = kvctl_kv_read_all(stdin, &len);
        if (owned == NULL) {
            fprintf(stderr, "kvctl: reading stdin: %s\n", strerror(errno));
            rc = KVCTL_FAIL;
            goto out;
        }
        val = owned;
    }
    rc = kvctl_http_request(o, "PUT", o->url, path, val, len,
                            kvctl_kv_cond(o, cbuf, sizeof cbuf, chdrs), &r);
    if (rc == 0) {
        rc = kvctl_kv_write_done(o, &r, argv[0], "put");
        httpc_resp_free(&r);
    }
out:
    free(owned);
    free(path);
    return rc;
}

int kvctl_kv_del(const kvctl_opts *o, int argc, char **argv)
{
    char cbuf[64], query[32] = "";
    const char *chdrs[2];
    char *path;
    httpc_resp r;
    int rc;

    (void)argc;
    kvctl_kv_query(o, query, sizeof query, 0);
    if ((path = kvctl_kv_path(argv[0], query)) == NULL)
        return KVCTL_USAGE;
    rc = kvctl_http_request(o, "DELETE", o->url, path, NULL, 0,
                            kvctl_kv_cond(o, cbuf, sizeof cbuf, chdrs), &r);
    free(path);
    if (rc)
        return rc;
    rc = kvctl_kv_write_done(o, &r, argv[0], "del");
    httpc_resp_free(&r);
    return rc;
}

/* An incr's answer: print the new value alone (handy in scripts); 1 when
 * the answer had one. Copied from the body text, since a double cannot hold
 * every int64. */
static int kvctl_kv_print_new_value(const httpc_resp *r)
{
    cJSON *j = kvctl_http_json(r);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "value");
    int printed = cJSON_IsNumber(v) || cJSON_IsString(v);

    if (printed) {
        const char *raw = strstr(r->body, "\"value\":");
        if (cJSON_IsString(v))
            printf("%s\n", v->valuestring);
        else if (raw)
            printf("%.*s\n", (int)strspn(raw + 8, "-0123456789"), raw + 8);
        else
            printf("%.0f\n", v->valuedouble);
    }
    cJSON_Delete(j);
    return printed;
}

int kvctl_kv_incr(const kvctl_opts *o, int argc, char **argv)
{
    int64_t by = 1;
    char suffix[64], *path, cbuf[64];
    const char *chdrs[2];
    httpc_resp r;
    int rc;

    if (argc == 2) {
        if (num_parse_i64(argv[1], &by) != 0) {
            fprintf(stderr, "kvctl: incr: BY must be an integer, not \"%s\"\n",
                    argv[1]);
            return KVCTL_USAGE;
        }
    }
    snprintf(suffix, sizeof suffix, "/incr?by=%lld", (long long)by);
    kvctl_kv_query(o, suffix, sizeof suffix, 1);
    path = kvctl_kv_path(argv[0], suffix);
    if (path == NULL)
        return KVCTL_USAGE;
    rc = kvctl_http_request(o, "POST", o->url, path, NULL, 0,
                            kvctl_kv_cond(o, cbuf, sizeof cbuf, chdrs), &r);
    free(path);
    if (rc)
        return rc;
    if (r.status == 200 && !o->json && kvctl_kv_print_new_value(&r))
        rc = KVCTL_OK;
    else
        rc = kvctl_kv_write_done(o, &r, argv[0], "incr");
    httpc_resp_free(&r);
    return rc;
}
