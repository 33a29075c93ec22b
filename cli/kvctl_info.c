/* kvctl status / ring: what the cluster looks like. */
#include "kvctl.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* GET base+path as JSON into *out (NULL when not JSON). Returns 0, KVCTL_FAIL
 * for a non-2xx answer, KVCTL_CONNECT when unreachable. */
static int kvctl_info_get_json(const kvctl_opts *o, const char *base,
                          const char *path, cJSON **out, long *status)
{
    httpc_resp r;
    int rc = kvctl_http_request(o, "GET", base, path, NULL, 0, NULL, &r);

    *out = NULL;
    *status = 0;
    if (rc)
        return rc;
    *status = r.status;
    *out = kvctl_http_json(&r);
    httpc_resp_free(&r);
    return *status >= 200 && *status < 300 ? 0 : KVCTL_FAIL;
}

static int kvctl_info_worst(int a, int b)
{
    return a > b ? a : b;
}

static const char *kvctl_info_str(const cJSON *j, const char *name, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double kvctl_info_num(const cJSON *j, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

static void kvctl_info_print_children(const cJSON *status)
{
    const cJSON *kids = cJSON_GetObjectItemCaseSensitive(status, "children");
    const cJSON *k;

    printf("  %-12s %-10s %-11s %-8s %-6s %-8s %-9s %s\n", "NAME", "ROLE",
           "STATE", "PID", "PORT", "HEALTHY", "RESTARTS", "UPTIME");
    cJSON_ArrayForEach(k, kids) {
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(k, "pid");
        const cJSON *healthy = cJSON_GetObjectItemCaseSensitive(k, "healthy");
        const cJSON *uptime = cJSON_GetObjectItemCaseSensitive(k, "uptime_ms");
        char pidbuf[16] = "-";
        double up = kvctl_info_num(k, "uptime_ms", 0) / 1000.0;
        const char *last = kvctl_info_str(k, "last_exit", NULL);

        if (cJSON_IsNumber(pid))
            snprintf(pidbuf, sizeof pidbuf, "%.0f", pid->valuedouble);
        printf("  %-12s %-10s %-11s %-8s %-6.0f %-8s ",
               kvctl_info_str(k, "name", "?"), kvctl_info_str(k, "role", "?"),
               kvctl_info_str(k, "state", "?"), pidbuf, kvctl_info_num(k, "port", 0),
               cJSON_IsTrue(healthy) ? "yes" : "no");
        if (!cJSON_IsNumber(uptime)) {
            /* an external node (controller.supervise=0): not ours to
             * count restarts or uptime of */
            printf("%-9s -\n", "-");
            continue;
        }
        printf("%-9.0f ", kvctl_info_num(k, "restarts", 0));
        if (up >= 3600)
            printf("%.1fh", up / 3600);
        else if (up >= 60)
            printf("%.1fm", up / 60);
        else
            printf("%.1fs", up);
        if (last && kvctl_info_num(k, "restarts", 0) > 0)
            printf("  (last exit: %s)", last);
        putchar('\n');
    }
}

/* One line while a shard migration runs (/status "migration"). */
static void kvctl_info_print_migration(const cJSON *status)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(status, "migration");
    const char *phase = kvctl_info_str(m, "phase", "none");

    if (!cJSON_IsObject(m) || strcmp(phase, "done") == 0 ||
        strcmp(phase, "failed") == 0 || strcmp(phase, "none") == 0)
        return;
    printf("  migration %.0f (%s shard %.0f) in phase %s; kvctl shard status "
           "for its progress\n",
           kvctl_info_num(m, "id", 0), kvctl_info_str(m, "kind", "?"),
           kvctl_info_num(m, "shard", -1), phase);
}

int kvctl_info_status(const kvctl_opts *o, int argc, char **argv)
{
    cJSON *health = NULL, *stats = NULL, *ctl = NULL;
    long hs, ss, cs;
    int rc = 0, r;

    (void)argc;
    (void)argv;
    r = kvctl_info_get_json(o, o->url, "/health", &health, &hs);
    rc = kvctl_info_worst(rc, r);
    if (r != KVCTL_CONNECT) {
        r = kvctl_info_get_json(o, o->url, "/stats", &stats, &ss);
        rc = kvctl_info_worst(rc, r);
    }
    r = kvctl_info_get_json(o, o->controller, "/status", &ctl, &cs);
    rc = kvctl_info_worst(rc, r);

    if (o->json) {
        cJSON *all = cJSON_CreateObject();
        cJSON *api = cJSON_AddObjectToObject(all, "api");
        cJSON *c = cJSON_AddObjectToObject(all, "controller");
        char *s;
        cJSON_AddStringToObject(api, "url", o->url);
        cJSON_AddItemToObject(api, "health", health ? health : cJSON_CreateNull());
        cJSON_AddItemToObject(api, "stats", stats ? stats : cJSON_CreateNull());
        cJSON_AddStringToObject(c, "url", o->controller);
        cJSON_AddItemToObject(c, "status", ctl ? ctl : cJSON_CreateNull());
        s = cJSON_Print(all);
        if (s)
            puts(s);
        free(s);
        cJSON_Delete(all);
        return rc;
    }

    printf("api %s: ", o->url);
    if (hs == 0)
        printf("unreachable\n");
    else
        printf("%s (HTTP %ld)\n", kvctl_info_str(health, "status", "?"), hs);
    if (stats) {
        kvctl_http_print_tree(stdout, stats, 2);
    }
    printf("controller %s: ", o->controller);
    if (cs == 0) {
        printf("unreachable\n");
    } else {
        printf("epoch %.0f, %s\n", kvctl_info_num(ctl, "epoch", 0),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ctl, "ready"))
                   ? "ready"
                   : "not ready");
        kvctl_info_print_migration(ctl);
        kvctl_info_print_children(ctl);
    }
    cJSON_Delete(health);
    cJSON_Delete(stats);
    cJSON_Delete(ctl);
    return rc;
}

int kvctl_info_ring(const kvctl_opts *o, int argc, char **argv)
{
    char *esc = kvctl_http_escape(argv[0], strlen(argv[0]));
    char *path = NULL;
    httpc_resp r;
    int rc;

    (void)argc;
    if (esc == NULL || asprintf(&path, "/ring?key=%s", esc) < 0) {
        free(esc);
        return KVCTL_FAIL;
    }
    free(esc);
    rc = kvctl_http_request(o, "GET", o->url, path, NULL, 0, NULL, &r);
    free(path);
    if (rc)
        return rc;
    if (r.status != 200) {
        rc = kvctl_http_fail(o, &r, "ring");
    } else if (o->json) {
        kvctl_http_print_body(&r);
    } else {
        cJSON *j = kvctl_http_json(&r);
        const cJSON *secs = cJSON_GetObjectItemCaseSensitive(j, "secondaries");
        const cJSON *s;
        printf("key          %s\n", kvctl_info_str(j, "key", argv[0]));
        printf("shard        %.0f (epoch %.0f)\n", kvctl_info_num(j, "shard", -1),
               kvctl_info_num(j, "epoch", 0));
        printf("primary      %s\n", kvctl_info_str(j, "primary", "(none)"));
        printf("secondaries ");
        if (cJSON_GetArraySize(secs) == 0)
            printf(" (none)");
        cJSON_ArrayForEach(s, secs)
            printf(" %s", cJSON_IsString(s) ? s->valuestring : "?");
        putchar('\n');
        cJSON_Delete(j);
    }
    httpc_resp_free(&r);
    return rc;
}
