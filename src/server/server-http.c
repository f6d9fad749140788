/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "json-util.h"
#include "log.h"
#include "server-identity.h"
#include "server-manager.h"
#include "server-rounds.h"

/* The device port: the rounds of design/device-protocol.md (server-rounds.c),
 * the model (and the server optimizer's state after it) as a file, and a
 * small status object. */

static int add_string(json_object *o, const char *key, const char *value) {
        return json_object_object_add(o, key, value ? json_object_new_string(value) : NULL);
}

static int http_get_root(HttpRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        Manager *m = userdata;
        ServerLink *l = m->link;
        const Training *t = &m->training;
        const char *state = cluster_state_to_string(l->view.cluster_state);

        if (!o ||
            add_string(o, "node_id", m->node_id) < 0 ||
            json_object_object_add(o, "rank", l->has_rank ? json_object_new_int64(l->rank) : NULL) < 0 ||
            add_string(o, "cluster_state", state) < 0 ||
            json_object_object_add(o, "fl_server_port", json_object_new_int64(m->port)) < 0 ||
            json_object_object_add(o, "iteration", t->seen ? json_object_new_int64(t->current.iteration) : NULL) < 0 ||
            add_string(o, "phase", t->seen ? training_phase_to_string(t->current.phase) : NULL) < 0 ||
            json_object_object_add(o, "model_iteration",
                                   m->model.model ? json_object_new_int64(m->model.iteration) : NULL) < 0 ||
            add_string(o, "model_checksum", m->model.model ? m->model.checksum : NULL) < 0 ||
            add_string(o, "state_checksum", m->model.model ? m->model.state_checksum : NULL) < 0 ||
            add_string(o, "server_optimizer",
                       t->seen ? optimizer_kind_to_string(t->current.job.optimizer.kind) : NULL) < 0 ||
            json_object_object_add(o, "updates", json_object_new_int64(m->aggregate ? m->aggregate->updates : 0)) < 0 ||
            json_object_object_add(o, "data_size",
                                   json_object_new_int64(m->aggregate ? (int64_t) m->aggregate->data_size : 0)) < 0 ||
            json_object_object_add(o, "waiting", json_object_new_int64((int64_t) m->pending.n)) < 0 ||
            json_object_object_add(o, "in_sync", json_object_new_boolean(manager_model_in_sync(m))) < 0 ||
            json_object_object_add(o, "leaving", json_object_new_boolean(l->leaving)) < 0 ||
            json_object_object_add(o, "metrics_count", json_object_new_int64((int64_t) m->n_metrics)) < 0 ||
            json_object_object_add(o, "last_loss", m->n_metrics ? json_object_new_double(m->last_loss) : NULL) < 0 ||
            json_object_object_add(o, "last_accuracy",
                                   m->n_metrics ? json_object_new_double(m->last_accuracy) : NULL) < 0)
                return http_reply_error(req, 500, "Out of memory.");
        return http_reply_json(req, 200, o);
}

static const HttpRoute routes[] = {
        { "GET", "/", http_get_root },
        { "POST", "/startFLJob", rounds_start_fl_job },
        { "POST", "/updateModel", rounds_update_model },
        { "POST", "/getModel", rounds_get_model },
        { "POST", "/pushMetrics", rounds_push_metrics },
        { "GET", "/model", rounds_get_model_file },
        { "GET", "/model/state", rounds_get_state_file },
};

int manager_http_start(Manager *m) {
        size_t max_body = (size_t) m->config->max_request_size_mb * 1024U * 1024U;
        const char *address;
        int r;

        /* The advertised address, unless fl_server_ip says otherwise (0.0.0.0
         * when the advertised one is a NAT address this host does not have). */
        address = server_identity_bind_address("fl_server_ip", m->config->fl_server_ip, m->address);
        r = http_server_new_tls(&m->http, m->event, address, m->port, routes, ELEMENTSOF(routes), max_body,
                                cluster_trust_tls(m->trust), m);
        if (r < 0)
                return log_error_errno(r, "Failed to serve devices on %s port %u: %m%s", address, m->port,
                                       r == -EADDRNOTAVAIL ? " (no interface of this host has that address; set "
                                       "fl_server_ip, 0.0.0.0 for every address)" : "");
        return 0;
}
