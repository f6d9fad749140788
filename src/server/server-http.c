/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "json-util.h"
#include "log.h"
#include "server-manager.h"

/* The device port. Only the status for now; the rounds (startFLJob,
 * updateModel, getModel, pushMetrics) come with training. */

static int http_get_root(HttpRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        Manager *m = userdata;
        ServerLink *l = m->link;
        const char *state = cluster_state_to_string(l->view.cluster_state);

        if (!o ||
            json_object_object_add(o, "node_id", m->node_id ? json_object_new_string(m->node_id) : NULL) < 0 ||
            json_object_object_add(o, "rank", l->has_rank ? json_object_new_int64(l->rank) : NULL) < 0 ||
            json_object_object_add(o, "cluster_state", state ? json_object_new_string(state) : NULL) < 0 ||
            json_object_object_add(o, "fl_server_port", json_object_new_int64(m->port)) < 0)
                return http_reply_error(req, 500, "Out of memory.");
        return http_reply_json(req, 200, o);
}

static const HttpRoute routes[] = {
        { "GET", "/", http_get_root },
};

int manager_http_start(Manager *m) {
        int r;

        /* All addresses: the advertised one may be a NAT address this host does not have. */
        r = http_server_new(&m->http, m->event, NULL, m->port, routes, ELEMENTSOF(routes), SERVER_HTTP_MAX_BODY, m);
        if (r < 0)
                return log_error_errno(r, "Failed to serve devices on port %u: %m", m->port);
        return 0;
}
