#include "ui_static.h"

#include "num.h"

#include <string.h>

static const char *const ui_static_hdrs[] = {
    "Cache-Control: no-cache",
    /* The page loads nothing from elsewhere, and nothing may inject it. */
    "Content-Security-Policy: default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options: nosniff",
    NULL,
};

static const ui_file *ui_static_find(const char *name, size_t len)
{
    for (size_t i = 0; i < ui_files_n; i++)
        if (strlen(ui_files[i].name) == len &&
            memcmp(ui_files[i].name, name, len) == 0)
            return &ui_files[i];
    return NULL;
}

int ui_static_after(httpd_req *r, uint64_t *after)
{
    const char *q = httpd_query(r, "after");

    *after = 0;
    if (q && num_parse_max(q, UINT64_MAX >> 11, after) != 0) {
        httpd_error(r, 400, "bad_request", "?after= is an event id (a number)");
        return -1;
    }
    return 0;
}

int ui_static_serve(httpd_req *r, const char *path, size_t plen)
{
    static const char *const allow[] = {"Allow: GET", NULL};
    static const char *const to_dir[] = {"Location: /ui/", NULL};
    const ui_file *f;

    if (plen < 3 || memcmp(path, "/ui", 3) != 0 || (plen > 3 && path[3] != '/'))
        return 0;
    if (!httpd_method_is(r, "GET") && !httpd_method_is(r, "HEAD")) {
        httpd_error_h(r, 405, allow, "method_not_allowed",
                      "%s %.*s: only GET is allowed", httpd_method(r),
                      (int)(plen > 200 ? 200 : plen), path);
        return 1;
    }
    if (plen == 3) {
        httpd_respond(r, 301, "text/plain", "", 0, to_dir);
        return 1;
    }
    f = plen == 4 ? ui_static_find("index.html", 10)
                  : ui_static_find(path + 4, plen - 4);
    if (f == NULL) {
        httpd_error(r, 404, "not_found", "no file %.*s in the dashboard",
                    (int)(plen > 200 ? 200 : plen), path);
        return 1;
    }
    httpd_respond(r, 200, f->type, (const char *)f->data, f->len, ui_static_hdrs);
    return 1;
}
