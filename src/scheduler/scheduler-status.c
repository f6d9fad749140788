/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "scheduler-manager.h"
#include "util.h"

/* The status page (docs/operations.md, "The status page"): three static
 * files from status_page_dir, read at each request (they are small, and an
 * upgraded package shows at once). Only these names are served, never a
 * path from the request. The page polls the JSON endpoints with the
 * operator's reader token; the files themselves are public, so that the
 * page can ask for the token. */

#define STATUS_FILE_MAX ((size_t) 1024 * 1024)

/* No inline script, nothing from elsewhere: node ids and addresses come
 * from the servers, and the page shows them as text. */
static const char *const page_headers[] = {
        "Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        "X-Content-Type-Options", "nosniff",
        "Referrer-Policy", "no-referrer",
        "Cache-Control", "no-cache",
        NULL,
};

static int serve_file(HttpRequest *req, Manager *m, const char *name, const char *content_type) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        const char *dir = conf_status_page_dir(m->config);
        size_t size;
        int r;

        if (asprintf(&path, "%s/%s", dir, name) < 0)
                return http_reply_error(req, 500, "Out of memory.");
        r = read_full_file(path, &text, &size, STATUS_FILE_MAX);
        if (r < 0) {
                log_warning_errno(r, "Failed to read the status page's %s (status_page_dir=%s): %m", path, dir);
                return http_reply_error(req, r == -ENOENT ? 404 : 500, "The status page's %s is not installed.",
                                        name);
        }
        return http_reply_with_headers(req, 200, content_type, text, size, page_headers);
}

int rest_get_status_page(HttpRequest *req, void *userdata) {
        return serve_file(req, userdata, "index.html", "text/html; charset=utf-8");
}

int rest_get_status_js(HttpRequest *req, void *userdata) {
        return serve_file(req, userdata, "status.js", "text/javascript; charset=utf-8");
}

int rest_get_status_css(HttpRequest *req, void *userdata) {
        return serve_file(req, userdata, "status.css", "text/css; charset=utf-8");
}
