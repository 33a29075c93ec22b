/* ui_static: the dashboard's files (ui/), embedded into the program at
 * build time (scripts/embed.sh writes the table below), served from memory
 * by the controller and the lab coordinator: no files to install beside
 * the binary, no CDN, nothing for users to build.
 *
 *   GET /ui        301 to /ui/
 *   GET /ui/       index.html
 *   GET /ui/NAME   the file NAME (its type from its extension), else 404
 * Every answer says Cache-Control: no-cache (an upgraded binary's page is
 * fetched again) and a Content-Security-Policy of 'self' only. Which
 * clients may see the page is the caller's to decide (its admit hook), as
 * is any /ui/ route it answers itself (the page's state JSON).
 *
 * Ownership: the table is static, nothing is allocated. */
#ifndef KV_UI_STATIC_H
#define KV_UI_STATIC_H

#include "httpd.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ui_file {
    const char *name;          /* "index.html" */
    const char *type;          /* Content-Type */
    const unsigned char *data;
    size_t len;
} ui_file;

extern const ui_file ui_files[];
extern const size_t ui_files_n;

/* 1 when path (its query cut off: plen) is /ui or under /ui/, and was
 * answered; 0 when it is another path (nothing answered). */
int ui_static_serve(httpd_req *r, const char *path, size_t plen);

/* The ?after=ID of a GET /ui/state (the newest event the page has; 0 when
 * absent) into *after: 0, or -1 when it is not a number (answered 400). */
int ui_static_after(httpd_req *r, uint64_t *after);

#endif
