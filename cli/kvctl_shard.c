/* kvctl shard add | remove ID | status: grow and shrink the cluster through
 * the controller's POST /shards, DELETE /shards/{id} and GET /rebalance
 * (docs/PROTOCOL.md "Growing and shrinking"). add and remove wait for the
 * end unless --no-wait, with a progress line on a terminal. */
#include "kvctl.h"

#include "num.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KVCTL_SHARD_POLL_MS 500
#define KVCTL_SHARD_UNREACHABLE_MS 30000 /* give up waiting after this */
#define KVCTL_SHARD_MAX_SECONDARIES 16

typedef struct kvctl_shard_args {
    kvctl_opts o;
    const char *primary;
    const char *secondaries[KVCTL_SHARD_MAX_SECONDARIES];
    size_t nsecondaries;
    int no_wait;
    const char *pos[4];
    int npos;
} kvctl_shard_args;

static const char *kvctl_shard_str(const cJSON *j, const char *name,
                                   const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static double kvctl_shard_num(const cJSON *j, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

/* The command's own options (it is in kvctl.c's own-options list). */
static int kvctl_shard_parse(const kvctl_opts *o, int argc, char **argv,
                             kvctl_shard_args *a)
{
    memset(a, 0, sizeof *a);
    a->o = *o;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
        size_t nlen = strcspn(s, "=");
        int takes;

        if (strncmp(s, "--", 2) != 0 || s[2] == '\0') {
            if (a->npos >= 4) {
                fprintf(stderr, "kvctl shard: too many arguments\n");
                return KVCTL_USAGE;
            }
            a->pos[a->npos++] = s;
            continue;
        }
        if (s[nlen] == '=')
            val = s + nlen + 1;
#define KVCTL_SHARD_IS(name) (strlen(name) == nlen && strncmp(s, name, nlen) == 0)
        takes = KVCTL_SHARD_IS("--primary") || KVCTL_SHARD_IS("--secondary") ||
                KVCTL_SHARD_IS("--controller") ||
                KVCTL_SHARD_IS("--timeout-ms");
        if (takes && val == NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "kvctl shard: %s needs a value\n", s);
                return KVCTL_USAGE;
            }
            val = argv[++i];
        }
        if (KVCTL_SHARD_IS("--json")) {
            a->o.json = 1;
        } else if (KVCTL_SHARD_IS("--no-wait")) {
            a->no_wait = 1;
        } else if (KVCTL_SHARD_IS("--primary")) {
            a->primary = val;
        } else if (KVCTL_SHARD_IS("--secondary")) {
            if (a->nsecondaries >= KVCTL_SHARD_MAX_SECONDARIES) {
                fprintf(stderr, "kvctl shard: at most %d --secondary\n",
                        KVCTL_SHARD_MAX_SECONDARIES);
                return KVCTL_USAGE;
            }
            a->secondaries[a->nsecondaries++] = val;
        } else if (KVCTL_SHARD_IS("--controller")) {
            a->o.controller = val;
        } else if (KVCTL_SHARD_IS("--timeout-ms")) {
            uint64_t ms;
            if (num_parse_max(val, (uint64_t)LONG_MAX, &ms) != 0 || ms == 0) {
                fprintf(stderr, "kvctl shard: --timeout-ms needs a number of "
                                "milliseconds, not \"%s\"\n", val);
                return KVCTL_USAGE;
            }
            a->o.timeout_ms = (long)ms;
        } else {
            fprintf(stderr, "kvctl shard: unknown option %s (see kvctl help "
                            "shard)\n", s);
            return KVCTL_USAGE;
        }
#undef KVCTL_SHARD_IS
    }
    if (a->npos == 0) {
        fprintf(stderr, "usage: kvctl shard add [--primary URL --secondary URL "
                        "...] | remove ID | status\n");
        return KVCTL_USAGE;
    }
    if (a->nsecondaries && !a->primary) {
        fprintf(stderr, "kvctl shard add: --secondary needs --primary\n");
        return KVCTL_USAGE;
    }
    return KVCTL_OK;
}

/* GET /rebalance into *out. 0, KVCTL_FAIL or KVCTL_CONNECT. */
static int kvctl_shard_rebalance(const kvctl_opts *o, cJSON **out, int quiet)
{
    httpc_resp r;
    int rc;

    *out = NULL;
    if (quiet) {
        /* while waiting: an unreachable controller is retried, quietly */
        httpc_req req = {0};
        char url[1024];
        snprintf(url, sizeof url, "%s/rebalance", o->controller);
        req.url = url;
        req.timeout_ms = o->timeout_ms;
        memset(&r, 0, sizeof r);
        if (httpc_do(&req, &r) < 0 || r.status == 0) {
            httpc_resp_free(&r);
            return KVCTL_CONNECT;
        }
    } else if ((rc = kvctl_http_request(o, "GET", o->controller, "/rebalance",
                                        NULL, 0, NULL, &r)) != 0) {
        return rc;
    }
    if (r.status != 200) {
        rc = kvctl_http_fail(o, &r, "GET /rebalance");
        httpc_resp_free(&r);
        return rc;
    }
    *out = kvctl_http_json(&r);
    httpc_resp_free(&r);
    return *out ? KVCTL_OK : KVCTL_FAIL;
}

static void kvctl_shard_bytes(double b, char *out, size_t len)
{
    if (b >= 1e9)
        snprintf(out, len, "%.2f GB", b / 1e9);
    else if (b >= 1e6)
        snprintf(out, len, "%.1f MB", b / 1e6);
    else if (b >= 1e3)
        snprintf(out, len, "%.1f kB", b / 1e3);
    else
        snprintf(out, len, "%.0f B", b);
}

/* "migration 3 (add shard 2)" */
static void kvctl_shard_name(const cJSON *j, char *out, size_t len)
{
    snprintf(out, len, "migration %.0f (%s shard %.0f)",
             kvctl_shard_num(j, "id", 0), kvctl_shard_str(j, "kind", "?"),
             kvctl_shard_num(j, "shard", -1));
}

/* One progress line (on a terminal it is rewritten in place). */
static void kvctl_shard_progress(const cJSON *j, FILE *f, int tty)
{
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(j, "totals");
    const cJSON *eta = cJSON_GetObjectItemCaseSensitive(j, "eta_s");
    char bytes[32];

    kvctl_shard_bytes(kvctl_shard_num(tot, "sent_bytes", 0), bytes,
                      sizeof bytes);
    fprintf(f, "%s%-7s %.0f of ~%.0f keys moved (%s), %.0f keys/s, %.2f MB/s",
            tty ? "\r" : "", kvctl_shard_str(j, "phase", "?"),
            kvctl_shard_num(tot, "sent", 0),
            kvctl_shard_num(j, "predicted_keys", 0), bytes,
            kvctl_shard_num(j, "keys_per_s", 0),
            kvctl_shard_num(j, "mb_per_s", 0));
    if (cJSON_IsNumber(eta))
        fprintf(f, ", ETA %.0f s", eta->valuedouble);
    fputs(tty ? "   " : "\n", f);
    fflush(f);
}

/* The human summary of a migration (the last or the running one). */
static void kvctl_shard_summary(const cJSON *j, FILE *f)
{
    const cJSON *tot = cJSON_GetObjectItemCaseSensitive(j, "totals");
    const cJSON *srcs = cJSON_GetObjectItemCaseSensitive(j, "sources");
    const cJSON *s;
    char name[96], bytes[32];

    if (kvctl_shard_num(j, "id", 0) == 0) {
        fprintf(f, "no shard migration has run on this cluster\n");
        return;
    }
    kvctl_shard_name(j, name, sizeof name);
    kvctl_shard_bytes(kvctl_shard_num(tot, "sent_bytes", 0), bytes,
                      sizeof bytes);
    fprintf(f, "%s: %s, started %s", name, kvctl_shard_str(j, "phase", "?"),
            kvctl_shard_str(j, "started", "?"));
    if (kvctl_shard_str(j, "ended", NULL))
        fprintf(f, ", ended %s", kvctl_shard_str(j, "ended", "?"));
    fprintf(f, " (%.1f s)\n", kvctl_shard_num(j, "elapsed_s", 0));
    fprintf(f, "  predicted to move %.1f %% of the keys (~%.0f); %.0f sent "
               "(%s), %.0f keys/s, %.2f MB/s\n",
            kvctl_shard_num(j, "share", 0) * 100,
            kvctl_shard_num(j, "predicted_keys", 0),
            kvctl_shard_num(tot, "sent", 0), bytes,
            kvctl_shard_num(j, "keys_per_s", 0),
            kvctl_shard_num(j, "mb_per_s", 0));
    cJSON_ArrayForEach(s, srcs)
        fprintf(f, "  source shard %.0f: %sposition %.0f of %.0f, scanned "
                   "%.0f, sent %.0f%s\n",
                kvctl_shard_num(s, "shard", -1),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "answered"))
                    ? "" : "(no answer) ",
                kvctl_shard_num(s, "position", 0),
                kvctl_shard_num(s, "last_seq", 0),
                kvctl_shard_num(s, "scanned", 0), kvctl_shard_num(s, "sent", 0),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "drained"))
                    ? ", drained" : "");
    if (kvctl_shard_str(j, "error", NULL))
        fprintf(f, "  error: %s\n", kvctl_shard_str(j, "error", ""));
}

static void kvctl_shard_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void kvctl_shard_print_json(const cJSON *j)
{
    char *s = cJSON_Print(j);
    if (s)
        puts(s);
    free(s);
}

/* Poll GET /rebalance until migration id is done or failed. */
static int kvctl_shard_wait(const kvctl_shard_args *a, double id)
{
    int tty = isatty(STDERR_FILENO) && !a->o.json;
    long unreachable = 0;
    int rc = KVCTL_FAIL;
    cJSON *j = NULL;

    for (;;) {
        const char *phase;
        int r = kvctl_shard_rebalance(&a->o, &j, 1);
        if (r == KVCTL_CONNECT) {
            unreachable += KVCTL_SHARD_POLL_MS;
            if (unreachable >= KVCTL_SHARD_UNREACHABLE_MS) {
                fprintf(stderr, "%skvctl: cannot reach %s for %d s; the "
                                "migration goes on: kvctl shard status\n",
                        tty ? "\n" : "", a->o.controller,
                        KVCTL_SHARD_UNREACHABLE_MS / 1000);
                return KVCTL_CONNECT;
            }
            kvctl_shard_sleep_ms(KVCTL_SHARD_POLL_MS);
            continue;
        }
        if (r != KVCTL_OK)
            return r;
        unreachable = 0;
        if (kvctl_shard_num(j, "id", 0) != id) {
            fprintf(stderr, "kvctl: the controller shows migration %.0f, not "
                            "%.0f\n", kvctl_shard_num(j, "id", 0), id);
            break;
        }
        phase = kvctl_shard_str(j, "phase", "?");
        if (strcmp(phase, "done") == 0 || strcmp(phase, "failed") == 0) {
            rc = strcmp(phase, "done") == 0 ? KVCTL_OK : KVCTL_FAIL;
            break;
        }
        if (tty)
            kvctl_shard_progress(j, stderr, 1);
        cJSON_Delete(j);
        j = NULL;
        kvctl_shard_sleep_ms(KVCTL_SHARD_POLL_MS);
    }
    if (tty)
        fputc('\n', stderr);
    if (j && a->o.json)
        kvctl_shard_print_json(j);
    else if (j)
        kvctl_shard_summary(j, stdout);
    cJSON_Delete(j);
    return rc;
}

/* POST /shards or DELETE /shards/{id}; then wait unless --no-wait. */
static int kvctl_shard_start(const kvctl_shard_args *a, const char *method,
                             const char *path, const char *body)
{
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    httpc_resp r;
    cJSON *j, *m;
    char name[96];
    double id;
    int rc = kvctl_http_request(&a->o, method, a->o.controller, path, body,
                                body ? strlen(body) : 0, hdrs, &r);

    if (rc)
        return rc;
    if (r.status != 202) {
        rc = kvctl_http_fail(&a->o, &r, "shard");
        httpc_resp_free(&r);
        return rc;
    }
    j = kvctl_http_json(&r);
    m = cJSON_GetObjectItemCaseSensitive(j, "migration");
    id = kvctl_shard_num(m, "id", 0);
    kvctl_shard_name(m, name, sizeof name);
    if (a->no_wait) {
        if (a->o.json)
            kvctl_http_print_body(&r);
        else
            printf("%s started (phase %s); follow it with kvctl shard "
                   "status\n", name, kvctl_shard_str(m, "phase", "?"));
        cJSON_Delete(j);
        httpc_resp_free(&r);
        return KVCTL_OK;
    }
    if (!a->o.json)
        fprintf(stderr, "%s started: predicted to move %.1f %% of the keys\n",
                name, kvctl_shard_num(m, "share", 0) * 100);
    cJSON_Delete(j);
    httpc_resp_free(&r);
    return kvctl_shard_wait(a, id);
}

static int kvctl_shard_add(const kvctl_shard_args *a)
{
    cJSON *b = cJSON_CreateObject();
    char *body;
    int rc;

    if (a->primary) {
        cJSON *secs = cJSON_AddArrayToObject(b, "secondaries");
        cJSON_AddStringToObject(b, "primary", a->primary);
        for (size_t i = 0; i < a->nsecondaries; i++)
            cJSON_AddItemToArray(secs, cJSON_CreateString(a->secondaries[i]));
    }
    body = cJSON_PrintUnformatted(b);
    cJSON_Delete(b);
    if (body == NULL)
        return KVCTL_FAIL;
    rc = kvctl_shard_start(a, "POST", "/shards", body);
    free(body);
    return rc;
}

int kvctl_shard_cmd(const kvctl_opts *o, int argc, char **argv)
{
    kvctl_shard_args a;
    int rc = kvctl_shard_parse(o, argc, argv, &a);
    const char *sub;

    if (rc != KVCTL_OK)
        return rc;
    sub = a.pos[0];
    if (strcmp(sub, "add") == 0 && a.npos == 1)
        return kvctl_shard_add(&a);
    if (strcmp(sub, "remove") == 0 && a.npos == 2 && !a.primary) {
        uint64_t id;
        char path[64];
        if (num_parse_max(a.pos[1], 255, &id) != 0) {
            fprintf(stderr, "kvctl shard remove: ID is a shard id 0..255, not "
                            "\"%s\"\n", a.pos[1]);
            return KVCTL_USAGE;
        }
        snprintf(path, sizeof path, "/shards/%llu", (unsigned long long)id);
        return kvctl_shard_start(&a, "DELETE", path, NULL);
    }
    if (strcmp(sub, "status") == 0 && a.npos == 1 && !a.primary) {
        cJSON *j;
        rc = kvctl_shard_rebalance(&a.o, &j, 0);
        if (rc == KVCTL_OK) {
            if (a.o.json)
                kvctl_shard_print_json(j);
            else
                kvctl_shard_summary(j, stdout);
        }
        cJSON_Delete(j);
        return rc;
    }
    fprintf(stderr, "usage: kvctl shard add [--primary URL --secondary URL "
                    "...] | remove ID | status\n");
    return KVCTL_USAGE;
}
