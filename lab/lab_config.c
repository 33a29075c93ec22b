/* lab_config: see lab_config.h. */
#include "lab_config.h"

#include "json_whole.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const lab_config_just_names[LAB_CONFIG_NJUST] = {
    "quorum_choice", "follower_count", "rate_limiting", "auto_spawn",
};

const char *lab_config_just_name(int i)
{
    return i >= 0 && i < LAB_CONFIG_NJUST ? lab_config_just_names[i] : NULL;
}

void lab_config_defaults(lab_config *c)
{
    memset(c, 0, sizeof *c);
    c->followers = 3;
    c->write_quorum = 2;
    c->read_quorum = 2;
    c->auto_spawn = false;
    c->auto_spawn_delay = 5;
    c->rate_limit_enabled = true;
    c->rate_limit_max = 10;
    c->rate_limit_window = 60;
}

/* ---- message buffers ---- */

/* Append one line to buf (size len), keeping it NUL-terminated; a full
 * buffer keeps what fits. */
static void lab_config_addf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void lab_config_addf(char *buf, size_t len, const char *fmt, ...)
{
    size_t used;
    va_list ap;

    if (buf == NULL || len == 0)
        return;
    used = strnlen(buf, len);
    if (used >= len - 1)
        return;
    if (used > 0) {
        buf[used++] = '\n';
        buf[used] = '\0';
        if (used >= len - 1)
            return;
    }
    va_start(ap, fmt);
    vsnprintf(buf + used, len - used, fmt, ap);
    va_end(ap);
}

static const char *lab_config_type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsBool(v))
        return v->type & cJSON_True ? "true" : "false";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "a list";
    if (cJSON_IsObject(v))
        return "an object";
    return "something else";
}

/* ---- fields ---- */

enum lab_config_kind { LK_INT, LK_SECONDS, LK_BOOL };

typedef struct lab_config_field {
    const char *section, *name;
    enum lab_config_kind kind;
    size_t off;
} lab_config_field;

#define LAB_CONFIG_FIELD(sec, name, kind) {sec, #name, kind, offsetof(lab_config, name)}
static const lab_config_field lab_config_fields[] = {
    LAB_CONFIG_FIELD("deployment", followers, LK_INT),
    LAB_CONFIG_FIELD("deployment", write_quorum, LK_INT),
    LAB_CONFIG_FIELD("deployment", read_quorum, LK_INT),
    LAB_CONFIG_FIELD("deployment", auto_spawn, LK_BOOL),
    LAB_CONFIG_FIELD("deployment", auto_spawn_delay, LK_SECONDS),
    LAB_CONFIG_FIELD("gateway", rate_limit_enabled, LK_BOOL),
    LAB_CONFIG_FIELD("gateway", rate_limit_max, LK_INT),
    LAB_CONFIG_FIELD("gateway", rate_limit_window, LK_SECONDS),
};
#undef LF
#define LAB_CONFIG_NFIELDS (sizeof lab_config_fields / sizeof lab_config_fields[0])

static const char *const lab_config_sections[] = {"deployment", "gateway",
                                              "justifications"};

static bool lab_config_known(const char *section, const char *name)
{
    for (size_t i = 0; i < LAB_CONFIG_NFIELDS; i++)
        if (strcmp(lab_config_fields[i].section, section) == 0 &&
            strcmp(lab_config_fields[i].name, name) == 0)
            return true;
    if (strcmp(section, "justifications") == 0)
        for (int i = 0; i < LAB_CONFIG_NJUST; i++)
            if (strcmp(lab_config_just_names[i], name) == 0)
                return true;
    return false;
}

/* Set one field from a JSON value. 0, or -1 after adding an error. */
static int lab_config_set(lab_config *c, const lab_config_field *f, const cJSON *v,
                      char *err, size_t errlen)
{
    char *p = (char *)c + f->off;

    switch (f->kind) {
    case LK_BOOL:
        if (!cJSON_IsBool(v)) {
            lab_config_addf(err, errlen, "%s.%s: must be true or false, not %s",
                        f->section, f->name, lab_config_type_name(v));
            return -1;
        }
        *(bool *)p = cJSON_IsTrue(v);
        return 0;
    case LK_INT:
        if (!cJSON_IsNumber(v)) {
            lab_config_addf(err, errlen, "%s.%s: must be a whole number, not %s",
                        f->section, f->name, lab_config_type_name(v));
            return -1;
        }
        if (!isfinite(v->valuedouble) || v->valuedouble != floor(v->valuedouble) ||
            fabs(v->valuedouble) > 1e15) {
            lab_config_addf(err, errlen, "%s.%s: must be a whole number, not %g",
                        f->section, f->name, v->valuedouble);
            return -1;
        }
        *(int64_t *)p = (int64_t)v->valuedouble;
        return 0;
    case LK_SECONDS:
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            lab_config_addf(err, errlen, "%s.%s: must be a number of seconds, not %s",
                        f->section, f->name, lab_config_type_name(v));
            return -1;
        }
        *(double *)p = v->valuedouble;
        return 0;
    }
    return -1;
}

/* Which fields were given with a wrong type: their cross checks are
 * skipped, since the value is still the default. */
#define LAB_CONFIG_BAD(i) (1u << (i))

static void lab_config_check_range(const lab_config *c, unsigned bad, char *err,
                               size_t errlen, int *nerr)
{
    const int64_t n = c->followers;

#define LAB_CONFIG_ERR(...) do { lab_config_addf(err, errlen, __VA_ARGS__); (*nerr)++; } while (0)
    if (!(bad & LAB_CONFIG_BAD(0))) {
        if (n < 1)
            LAB_CONFIG_ERR("deployment.followers: must be at least 1, not %lld",
                       (long long)n);
        else if (n > LAB_CONFIG_MAX_FOLLOWERS)
            LAB_CONFIG_ERR("deployment.followers: %lld is more than the lab's "
                       "limit of %d", (long long)n, LAB_CONFIG_MAX_FOLLOWERS);
    }
    for (int q = 0; q < 2; q++) {
        const char *name = q == 0 ? "write_quorum" : "read_quorum";
        int64_t v = q == 0 ? c->write_quorum : c->read_quorum;

        if (bad & LAB_CONFIG_BAD(1 + q))
            continue;
        if (v < 1)
            LAB_CONFIG_ERR("deployment.%s: must be at least 1, not %lld", name,
                       (long long)v);
        else if (!(bad & LAB_CONFIG_BAD(0)) && n >= 1 && v > n)
            LAB_CONFIG_ERR("deployment.%s: %lld is more than the %lld follower%s",
                       name, (long long)v, (long long)n, n == 1 ? "" : "s");
    }
    if (!(bad & LAB_CONFIG_BAD(4))) {
        if (!(c->auto_spawn_delay > 0))
            LAB_CONFIG_ERR("deployment.auto_spawn_delay: must be more than 0 "
                       "seconds, not %g", c->auto_spawn_delay);
        else if (c->auto_spawn_delay > LAB_CONFIG_MAX_DELAY_S)
            LAB_CONFIG_ERR("deployment.auto_spawn_delay: %g seconds is more than "
                       "the %g allowed", c->auto_spawn_delay, LAB_CONFIG_MAX_DELAY_S);
    }
    if (!(bad & LAB_CONFIG_BAD(6)) && c->rate_limit_max < 1)
        LAB_CONFIG_ERR("gateway.rate_limit_max: must be at least 1, not %lld",
                   (long long)c->rate_limit_max);
    if (!(bad & LAB_CONFIG_BAD(7))) {
        if (!(c->rate_limit_window > 0))
            LAB_CONFIG_ERR("gateway.rate_limit_window: must be more than 0 "
                       "seconds, not %g", c->rate_limit_window);
        else if (c->rate_limit_window > LAB_CONFIG_MAX_DELAY_S)
            LAB_CONFIG_ERR("gateway.rate_limit_window: %g seconds is more than "
                       "the %g allowed", c->rate_limit_window, LAB_CONFIG_MAX_DELAY_S);
    }
#undef LAB_CONFIG_ERR
}

int lab_config_validate(const lab_config *c, char *err, size_t errlen)
{
    int nerr = 0;

    if (err && errlen)
        err[0] = '\0';
    lab_config_check_range(c, 0, err, errlen, &nerr);
    return nerr ? -1 : 0;
}

/* Line and column (1-based) of pos in text. */
static void lab_config_position(const char *text, const char *pos, int *line,
                            int *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; p < pos && *p; p++) {
        if (*p == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static void lab_config_set_text(lab_config *c, int i, const char *s)
{
    snprintf(c->just[i], sizeof c->just[i], "%s", s ? s : "");
    c->just_filled[i] = lab_config_text_filled(s);
}

int lab_config_parse(lab_config *c, const char *text, size_t len, char *err,
                 size_t errlen, char *warn, size_t warnlen)
{
    const char *end = NULL;
    cJSON *root;
    unsigned bad = 0;
    int nerr = 0;

    if (err && errlen)
        err[0] = '\0';
    if (warn && warnlen)
        warn[0] = '\0';
    lab_config_defaults(c);
    /* An editor's UTF-8 byte order mark is not JSON; skip it. */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
        text += 3;
        len -= 3;
    }
    root = json_whole_parse(text, len, &end);
    if (root == NULL) {
        int line, col;
        lab_config_position(text, end ? end : text, &line, &col);
        lab_config_addf(err, errlen, "not valid JSON near line %d, column %d",
                    line, col);
        return -1;
    }
    if (!cJSON_IsObject(root)) {
        lab_config_addf(err, errlen, "the file must hold a JSON object, not %s",
                    lab_config_type_name(root));
        cJSON_Delete(root);
        return -1;
    }

    for (const cJSON *sec = root->child; sec; sec = sec->next) {
        const char *sname = sec->string ? sec->string : "";
        bool known = false;

        for (size_t i = 0; i < sizeof lab_config_sections / sizeof lab_config_sections[0]; i++)
            known |= strcmp(sname, lab_config_sections[i]) == 0;
        if (!known) {
            if (sname[0] != '_')
                lab_config_addf(warn, warnlen, "%s: unknown section, ignored", sname);
            continue;
        }
        if (!cJSON_IsObject(sec)) {
            lab_config_addf(err, errlen, "%s: must be an object, not %s", sname,
                        lab_config_type_name(sec));
            nerr++;
            if (strcmp(sname, "deployment") == 0)
                bad |= LAB_CONFIG_BAD(0) | LAB_CONFIG_BAD(1) | LAB_CONFIG_BAD(2) |
                       LAB_CONFIG_BAD(3) | LAB_CONFIG_BAD(4);
            else if (strcmp(sname, "gateway") == 0)
                bad |= LAB_CONFIG_BAD(5) | LAB_CONFIG_BAD(6) | LAB_CONFIG_BAD(7);
            continue;
        }
        for (const cJSON *v = sec->child; v; v = v->next) {
            const char *name = v->string ? v->string : "";
            if (!lab_config_known(sname, name) && name[0] != '_')
                lab_config_addf(warn, warnlen, "%s.%s: unknown key, ignored",
                            sname, name);
        }
    }

    for (size_t i = 0; i < LAB_CONFIG_NFIELDS; i++) {
        const lab_config_field *f = &lab_config_fields[i];
        const cJSON *sec = cJSON_GetObjectItemCaseSensitive(root, f->section);
        const cJSON *v;

        if (!cJSON_IsObject(sec))
            continue;
        v = cJSON_GetObjectItemCaseSensitive(sec, f->name);
        if (v == NULL)
            continue;
        if (lab_config_set(c, f, v, err, errlen) != 0) {
            bad |= LAB_CONFIG_BAD(i);
            nerr++;
        }
    }
    {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(root, "justifications");
        for (int i = 0; i < LAB_CONFIG_NJUST && cJSON_IsObject(js); i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(js, lab_config_just_names[i]);
            if (v == NULL || cJSON_IsNull(v))
                continue;
            if (!cJSON_IsString(v)) {
                lab_config_addf(err, errlen, "justifications.%s: must be a string, "
                            "not %s", lab_config_just_names[i], lab_config_type_name(v));
                nerr++;
                continue;
            }
            lab_config_set_text(c, i, v->valuestring);
        }
    }
    cJSON_Delete(root);

    lab_config_check_range(c, bad, err, errlen, &nerr);
    return nerr ? -1 : 0;
}

/* Prefix every line of msg with "prefix: " into out. */
static void lab_config_prefix_lines(const char *prefix, const char *msg, char *out,
                                size_t outlen)
{
    const char *p = msg;

    if (out == NULL || outlen == 0)
        return;
    out[0] = '\0';
    while (*p) {
        const char *eol = strchr(p, '\n');
        int n = eol ? (int)(eol - p) : (int)strlen(p);
        lab_config_addf(out, outlen, "%s: %.*s", prefix, n, p);
        p += n;
        if (*p == '\n')
            p++;
    }
}

int lab_config_load(lab_config *c, const char *path, char *err, size_t errlen,
                char *warn, size_t warnlen)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL, *tmp_err = NULL, *tmp_warn = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;

    if (err && errlen)
        err[0] = '\0';
    if (warn && warnlen)
        warn[0] = '\0';
    lab_config_defaults(c);
    if (f == NULL) {
        lab_config_addf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *t;
            cap = cap ? cap * 2 : 8192;
            if (cap > 16u * 1024 * 1024) {
                lab_config_addf(err, errlen, "%s: too large for a config file", path);
                goto out;
            }
            t = realloc(text, cap);
            if (t == NULL) {
                lab_config_addf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            text = t;
        }
        size_t n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            if (ferror(f)) {
                lab_config_addf(err, errlen, "%s: %s", path, strerror(errno));
                goto out;
            }
            break;
        }
    }
    text[len] = '\0';
    tmp_err = calloc(1, errlen ? errlen : 1);
    tmp_warn = calloc(1, warnlen ? warnlen : 1);
    if (tmp_err == NULL || tmp_warn == NULL) {
        lab_config_addf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    rc = lab_config_parse(c, text, len, tmp_err, errlen, tmp_warn, warnlen);
    lab_config_prefix_lines(path, tmp_err, err, errlen);
    lab_config_prefix_lines(path, tmp_warn, warn, warnlen);
    snprintf(c->path, sizeof c->path, "%s", path);
out:
    free(tmp_err);
    free(tmp_warn);
    free(text);
    fclose(f);
    return rc;
}

/* ---- paths ---- */

static bool lab_config_is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool lab_config_is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int lab_config_exe_dir(char *out, size_t outlen)
{
    char buf[LAB_CONFIG_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    char *slash;

    if (n <= 0 || (size_t)n >= sizeof buf - 1)
        return -1;
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    if (buf[0] == '\0')
        strcpy(buf, "/");
    if (strlen(buf) >= outlen)
        return -1;
    strcpy(out, buf);
    return 0;
}

/* realpath of dir/rel into out when it is a directory (want_dir) or a
 * regular file. */
static int lab_config_try(const char *dir, const char *rel, bool want_dir,
                      char *out, size_t outlen)
{
    char joined[2 * LAB_CONFIG_PATH_MAX + 2];
    char real[PATH_MAX];

    if (dir == NULL || dir[0] == '\0')
        return -1;
    snprintf(joined, sizeof joined, "%s/%s", dir, rel);
    if (want_dir ? !lab_config_is_dir(joined) : !lab_config_is_file(joined))
        return -1;
    if (realpath(joined, real) == NULL || strlen(real) >= outlen)
        return -1;
    strcpy(out, real);
    return 0;
}

int lab_config_lab_dir(char *out, size_t outlen)
{
    const char *env = getenv("KV_LAB_DIR");
    char exe[LAB_CONFIG_PATH_MAX];

    if (env && env[0] && lab_config_try(env, ".", true, out, outlen) == 0)
        return 0;
    if (lab_config_exe_dir(exe, sizeof exe) == 0) {
        if (lab_config_try(exe, "../../../lab/cloudcart", true, out, outlen) == 0)
            return 0;
        if (lab_config_try(exe, "../lab/cloudcart", true, out, outlen) == 0)
            return 0;
    }
    return lab_config_try(LAB_CONFIG_LAB_DIR, ".", true, out, outlen);
}

int lab_config_resolve(const char *path, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    char labdir[LAB_CONFIG_PATH_MAX], exe[LAB_CONFIG_PATH_MAX];
    char real[PATH_MAX];
    bool have_lab, have_exe;

    if (err && errlen)
        err[0] = '\0';
    if (path == NULL || path[0] == '\0') {
        lab_config_addf(err, errlen, "no config file given");
        return -1;
    }
    if (path[0] == '/') {
        if (!lab_config_is_file(path)) {
            lab_config_addf(err, errlen, "%s: no such file", path);
            return -1;
        }
        if (realpath(path, real) == NULL || strlen(real) >= outlen) {
            lab_config_addf(err, errlen, "%s: %s", path, strerror(errno));
            return -1;
        }
        strcpy(out, real);
        return 0;
    }
    if (lab_config_try(".", path, false, out, outlen) == 0)
        return 0;
    have_lab = lab_config_lab_dir(labdir, sizeof labdir) == 0;
    if (have_lab && lab_config_try(labdir, path, false, out, outlen) == 0)
        return 0;
    have_exe = lab_config_exe_dir(exe, sizeof exe) == 0;
    if (have_exe && lab_config_try(exe, "../../..", true, real, sizeof real) == 0 &&
        lab_config_try(real, path, false, out, outlen) == 0)
        return 0;
    lab_config_addf(err, errlen, "%s: no such file in the working directory%s%s%s",
                path, have_lab ? " nor in " : "", have_lab ? labdir : "",
                have_lab ? "" : " (and no lab folder found)");
    return -1;
}

int lab_config_load_resolved(lab_config *c, const char *path, char *err,
                         size_t errlen, char *warn, size_t warnlen)
{
    char abs[LAB_CONFIG_PATH_MAX];

    if (warn && warnlen)
        warn[0] = '\0';
    if (lab_config_resolve(path, abs, sizeof abs, err, errlen) != 0) {
        lab_config_defaults(c);
        return -1;
    }
    return lab_config_load(c, abs, err, errlen, warn, warnlen);
}

/* ---- meaning ---- */

int64_t lab_config_cost_per_hour(const lab_config *c)
{
    return (1 + c->followers) * LAB_CONFIG_NODE_COST_USD;
}

bool lab_config_within_budget(const lab_config *c)
{
    return lab_config_cost_per_hour(c) <= LAB_CONFIG_BUDGET_USD;
}

bool lab_config_strong(const lab_config *c)
{
    return c->write_quorum + c->read_quorum > c->followers;
}

int64_t lab_config_write_tolerance(const lab_config *c)
{
    return c->followers - c->write_quorum;
}

int64_t lab_config_read_tolerance(const lab_config *c)
{
    return c->followers - c->read_quorum;
}

bool lab_config_text_filled(const char *s)
{
    bool blank = true;

    if (s == NULL)
        return false;
    for (const char *p = s; *p; p++) {
        if (!isspace((unsigned char)*p))
            blank = false;
        if (strncasecmp(p, "todo", 4) == 0)
            return false;
    }
    return !blank;
}

int lab_config_just_count(const lab_config *c)
{
    int n = 0;
    for (int i = 0; i < LAB_CONFIG_NJUST; i++)
        n += c->just_filled[i];
    return n;
}

void lab_config_print_summary(FILE *f, const lab_config *c)
{
    int64_t cost = lab_config_cost_per_hour(c);
    int filled = lab_config_just_count(c);

    fprintf(f, "CloudCart lab configuration%s%s\n", c->path[0] ? ": " : "",
            c->path);
    fprintf(f, "  followers N = %lld, write quorum W = %lld, read quorum R = %lld\n",
            (long long)c->followers, (long long)c->write_quorum,
            (long long)c->read_quorum);
    fprintf(f, "  W + R = %lld %s N = %lld: %s\n",
            (long long)(c->write_quorum + c->read_quorum),
            lab_config_strong(c) ? ">" : "<=", (long long)c->followers,
            lab_config_strong(c) ? "every read set overlaps the last write's sync set"
                             : "a read set can miss the last write's sync set");
    fprintf(f, "  follower failures survived: writes %lld (N - W), reads %lld (N - R)\n",
            (long long)lab_config_write_tolerance(c),
            (long long)lab_config_read_tolerance(c));
    fprintf(f, "  cost: %lld nodes x $%d/h = $%lld/h, %s the $%d/h budget\n",
            (long long)(1 + c->followers), LAB_CONFIG_NODE_COST_USD, (long long)cost,
            lab_config_within_budget(c) ? "within" : "over", LAB_CONFIG_BUDGET_USD);
    if (c->auto_spawn)
        fprintf(f, "  auto-spawn: on, a dead follower is replaced after %g s\n",
                c->auto_spawn_delay);
    else
        fprintf(f, "  auto-spawn: off\n");
    if (c->rate_limit_enabled)
        fprintf(f, "  gateway rate limit: %lld requests per %g s per client IP\n",
                (long long)c->rate_limit_max, c->rate_limit_window);
    else
        fprintf(f, "  gateway rate limit: off\n");
    fprintf(f, "  justifications: %d of %d filled", filled, LAB_CONFIG_NJUST);
    if (filled < LAB_CONFIG_NJUST) {
        const char *sep = " (still empty or TODO: ";
        for (int i = 0; i < LAB_CONFIG_NJUST; i++) {
            if (c->just_filled[i])
                continue;
            fprintf(f, "%s%s", sep, lab_config_just_names[i]);
            sep = ", ";
        }
        fputc(')', f);
    }
    fputc('\n', f);
}
