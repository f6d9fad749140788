/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "http.h"

typedef struct Manager Manager;

/* What a REST route requires once tokens are configured (HttpRoute.access).
 * The default, 0, is the strictest: a route nobody marked needs an
 * operator. */
enum {
        REST_ACCESS_OPERATOR = 0,       /* changes something */
        REST_ACCESS_READER = 1,         /* reads */
        REST_ACCESS_PUBLIC = 2,         /* the status page's static files: no token */
};

/* Reads management_token_file (if set); a missing or invalid file is a
 * logged error, and the scheduler does not start. */
int auth_setup(Manager *m);
/* Reads it again (SIGHUP); on failure the tokens read before stay. */
int auth_reload(Manager *m);
void auth_done(Manager *m);
bool auth_enabled(const Manager *m);

/* The REST port's authorize hook (http_server_set_authorize()): answers
 * 401 without a valid token, 403 with a reader's on an operator's route,
 * each logged (rate-limited) with the call and the peer. */
bool auth_check_rest(HttpRequest *req, int access, void *userdata);
