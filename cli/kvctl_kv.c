/* kvctl get / put / del / incr over the public API (DESIGN §5). */
#include "kvctl.h"

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
    esc = kvctl_escape(key, strlen(key));
    if (esc == NULL)
        return NULL;
    n = strlen(esc) + strlen(suffix) + 8;
    path = malloc(n);
    if (path)
        snprintf(path, n, "/kv/%s%s", esc, suffix);
    free(esc);
    return path;
}

/* Print " name value" of a JSON field (as text: a job id may pass 2^53). */
static void kvctl_print_field(const cJSON *j, const char *name, int *first)
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
static int kvctl_write_done(const kvctl_opts *o, httpc_resp *r,
                            const char *key, const char *what)
{
    cJSON *j;
    const cJSON *st;

    if (r->status != 200 && r->status != 202)
        return kvctl_fail(o, r, what);
    if (o->json) {
        kvctl_print_body(r);
        return KVCTL_OK;
    }
    j = kvctl_json(r);
    st = cJSON_GetObjectItemCaseSensitive(j, "status");
    printf("%s: %s", key,
           cJSON_IsString(st) ? st->valuestring
                              : (r->status == 200 ? "applied" : "queued"));
    if (o->wait && r->status == 202)
        printf(" (not applied within the wait)");
    {
        int first = 1;
        printf(" (");
        kvctl_print_field(j, "job", &first);
        kvctl_print_field(j, "version", &first);
        printf(")\n");
    }
    cJSON_Delete(j);
    return KVCTL_OK;
}

int kvctl_cmd_get(const kvctl_opts *o, int argc, char **argv)
{
    static const char *const json_hdr[] = {"Accept: application/json", NULL};
    char *path = kvctl_kv_path(argv[0], "");
    httpc_resp r;
    int rc;

    (void)argc;
    if (path == NULL)
        return KVCTL_USAGE;
    rc = kvctl_http(o, "GET", o->url, path, NULL, 0,
                    o->json ? json_hdr : NULL, &r);
    free(path);
    if (rc)
        return rc;
    if (r.status == 404) {
        if (o->json)
            kvctl_print_body(&r);
        else
            fprintf(stderr, "not found\n");
        rc = KVCTL_FAIL;
    } else if (r.status != 200) {
        rc = kvctl_fail(o, &r, "get");
    } else if (o->json) {
        kvctl_print_body(&r);
    } else {
        fwrite(r.body, 1, r.len, stdout);
        if (isatty(STDOUT_FILENO) && (r.len == 0 || r.body[r.len - 1] != '\n'))
            putchar('\n');
    }
    httpc_resp_free(&r);
    return rc;
}

int kvctl_cmd_put(const kvctl_opts *o, int argc, char **argv)
{
    char *path = kvctl_kv_path(argv[0], o->wait ? "?sync=1" : "");
    char *owned = NULL;
    const char *val;
    size_t len;
    httpc_resp r;
    int rc;

    if (path == NULL)
        return KVCTL_USAGE;
    if (argc == 2 && strcmp(argv[1], "-") != 0) {
        val = argv[1];
        len = strlen(val);
    } else {
        if (argc == 1 && isatty(STDIN_FILENO)) {
            fprintf(stderr, "usage: kvctl put KEY [VALUE | -] (no value given "
                            "and stdin is a terminal)\n");
            free(path);
            return KVCTL_USAGE;
        }
        owned = kvctl_read_all(stdin, &len);
        if (owned == NULL) {
            fprintf(stderr, "kvctl: reading stdin: %s\n", strerror(errno));
            free(path);
            return KVCTL_FAIL;
        }
        val = owned;
    }
    rc = kvctl_http(o, "PUT", o->url, path, val, len, NULL, &r);
    free(path);
    free(owned);
    if (rc)
        return rc;
    rc = kvctl_write_done(o, &r, argv[0], "put");
    httpc_resp_free(&r);
    return rc;
}

int kvctl_cmd_del(const kvctl_opts *o, int argc, char **argv)
{
    char *path = kvctl_kv_path(argv[0], o->wait ? "?sync=1" : "");
    httpc_resp r;
    int rc;

    (void)argc;
    if (path == NULL)
        return KVCTL_USAGE;
    rc = kvctl_http(o, "DELETE", o->url, path, NULL, 0, NULL, &r);
    free(path);
    if (rc)
        return rc;
    rc = kvctl_write_done(o, &r, argv[0], "del");
    httpc_resp_free(&r);
    return rc;
}

int kvctl_cmd_incr(const kvctl_opts *o, int argc, char **argv)
{
    long long by = 1;
    char suffix[64], *path, *end;
    httpc_resp r;
    int rc;

    if (argc == 2) {
        errno = 0;
        by = strtoll(argv[1], &end, 10);
        if (errno || end == argv[1] || *end) {
            fprintf(stderr, "kvctl: incr: BY must be an integer, not \"%s\"\n",
                    argv[1]);
            return KVCTL_USAGE;
        }
    }
    snprintf(suffix, sizeof suffix, "/incr?by=%lld%s", by,
             o->wait ? "&sync=1" : "");
    path = kvctl_kv_path(argv[0], suffix);
    if (path == NULL)
        return KVCTL_USAGE;
    rc = kvctl_http(o, "POST", o->url, path, NULL, 0, NULL, &r);
    free(path);
    if (rc)
        return rc;
    if (r.status == 200 && !o->json) {
        cJSON *j = kvctl_json(&r);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "value");
        if (cJSON_IsNumber(v) || cJSON_IsString(v)) {
            /* The new value alone: handy in scripts. Copied from the body
             * text, since a double cannot hold every int64. */
            const char *raw = strstr(r.body, "\"value\":");
            if (cJSON_IsString(v))
                printf("%s\n", v->valuestring);
            else if (raw)
                printf("%.*s\n", (int)strspn(raw + 8, "-0123456789"), raw + 8);
            else
                printf("%.0f\n", v->valuedouble);
            cJSON_Delete(j);
            httpc_resp_free(&r);
            return KVCTL_OK;
        }
        cJSON_Delete(j);
    }
    rc = kvctl_write_done(o, &r, argv[0], "incr");
    httpc_resp_free(&r);
    return rc;
}
