/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "http.h"
#include "json-util.h"
#include "log.h"
#include "scheduler-auth.h"
#include "scheduler-manager.h"

/* The RESTful management port, with MindSpore's paths and messages
 * (docs/management-api.md): the requests' bodies (JSON objects) are parsed
 * here into the typed calls of the core. Who may call what is the
 * routes' access, checked by scheduler-auth.c before a body is read. */

#define REST_BODY_MAX (64U * 1024U)

static json_object *reply_new(const char *message) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "message", json_object_new_string(message));
        json_object_object_add(o, "code", json_object_new_string("0"));
        return o;
}

/* POST bodies are optional here, but what is sent must be a JSON object. */
static int request_check_json(HttpRequest *req) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *type = http_request_content_type(req);
        size_t size;
        const uint8_t *body = http_request_body(req, &size);

        if (size == 0)
                return 0;
        if (type && !strneq(type, "application/json", strlen("application/json")))
                return http_reply_error(req, 400, "The Content-Type must be application/json."), -EINVAL;
        if (json_parse_object((const char *) body, size, &o) < 0)
                return http_reply_error(req, 400, "The request body is not a valid JSON object."), -EINVAL;
        return 0;
}

static int rest_get_nodes(HttpRequest *req, void *userdata) {
        Manager *m = userdata;
        _cleanup_(json_object_putp) json_object *o = reply_new("Get nodes info successful.");

        json_object_object_add(o, "node_ids", manager_nodes_json(m));
        return http_reply_json(req, 200, o);
}

static int rest_get_state(HttpRequest *req, void *userdata) {
        Manager *m = userdata;
        _cleanup_(json_object_putp) json_object *o = reply_new("Get cluster state successful.");

        json_object_object_add(o, "cluster_state", json_object_new_string(cluster_state_to_string(m->state)));
        json_object_object_add(o, "server_num", json_object_new_int64(m->registry.server_num));
        json_object_object_add(o, "alive_server_num", json_object_new_int64((int64_t) registry_alive_count(&m->registry)));
        json_object_object_add(o, "iteration", json_object_new_int64(m->iteration.number));
        json_object_object_add(o, "iteration_phase", json_object_new_string(
                                       m->iteration.number > 0 ? iteration_phase_to_string(m->iteration.phase) : "WAITING"));
        json_object_object_add(o, "fl_iteration_num", json_object_new_int64(m->job.fl_iteration_num));
        /* The running iteration's counts: devices admitted, updates counted. */
        json_object_object_add(o, "admitted", json_object_new_int64((int64_t) m->iteration.admissions.n_entries));
        json_object_object_add(o, "updates", json_object_new_int64(m->iteration.n_updated));
        json_object_object_add(o, "update_threshold", json_object_new_int64(job_update_threshold(&m->job)));
        json_object_object_add(o, "auth", json_object_new_boolean(auth_enabled(m)));
        json_object_object_add(o, "tls", json_object_new_boolean(cluster_trust_tls(m->trust) != NULL));
        return http_reply_json(req, 200, o);
}

static int rest_post_finish(HttpRequest *req, void *userdata) {
        Manager *m = userdata;
        HttpRequest **a;
        int r;

        if (request_check_json(req) < 0)
                return 0;

        a = realloc(m->finish_requests, (m->n_finish_requests + 1) * sizeof *a);
        if (!a)
                return http_reply_error(req, 500, "Out of memory.");
        m->finish_requests = a;

        if (manager_finish_answered(m))
                return manager_rest_finish_reply(m, req);

        r = http_defer(req);
        if (r < 0)
                return http_reply_error(req, 500, "Failed to defer the answer: %s.", strerror(-r));
        m->finish_requests[m->n_finish_requests++] = req;

        r = manager_finish_begin(m);
        if (r < 0)
                log_error_errno(r, "Failed to finish the cluster: %m");
        return 0;
}

int manager_rest_finish_reply(Manager *m, HttpRequest *req) {
        _cleanup_(json_object_putp) json_object *o = reply_new("Cluster finished.");

        json_object_object_add(o, "stopped", json_object_get(m->stopped));
        return http_reply_json(req, 200, o);
}

/* The body of a POST that must carry a JSON object: NULL after answering. */
static json_object *request_json_object(HttpRequest *req, const char *what) {
        json_object *o = NULL;
        const char *type = http_request_content_type(req);
        const uint8_t *body;
        size_t size;

        body = http_request_body(req, &size);
        if (type && !strneq(type, "application/json", strlen("application/json")))
                return http_reply_error(req, 400, "The Content-Type must be application/json."), NULL;
        if (json_parse_object((const char *) body, size, &o) < 0)
                return http_reply_error(req, 400, "The request body must be a JSON object%s.", what), NULL;
        return o;
}

static int rest_post_new_instance(HttpRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *body = NULL, *o = NULL;
        Manager *m = userdata;
        JobParams params;
        char error[256];

        body = request_json_object(req, " of hyper-parameters");
        if (!body)
                return 0;
        if (job_params_from_json(&params, body, error, sizeof error) < 0)
                return http_reply_error(req, 400, "%s", error);
        if (instance_new(m, &params, error, sizeof error) < 0)
                return http_reply_error(req, 400, "%s", error);

        o = reply_new(NEW_INSTANCE_MESSAGE);
        json_object_object_add(o, "result", json_object_new_boolean(true));
        return http_reply_json(req, 200, o);
}

static int rest_get_query_instance(HttpRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *o = reply_new("Query Instance successful.");

        json_object_object_add(o, "result", instance_query(userdata));
        return http_reply_json(req, 200, o);
}

static int rest_set_enabled(HttpRequest *req, Manager *m, bool enable) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        char error[256];

        if (request_check_json(req) < 0)
                return 0;
        if (instance_set_enabled(m, enable, error, sizeof error) < 0)
                return http_reply_error(req, 500, "%s", error);
        o = reply_new(enable ? ENABLE_MESSAGE : DISABLE_MESSAGE);
        return http_reply_json(req, 200, o);
}

static int rest_post_enable(HttpRequest *req, void *userdata) {
        return rest_set_enabled(req, userdata, true);
}

static int rest_post_disable(HttpRequest *req, void *userdata) {
        return rest_set_enabled(req, userdata, false);
}

/* MindSpore's body: {"worker_num":0,"server_num":K}. */
static int rest_post_scaleout(HttpRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *body = NULL, *o = NULL;
        Manager *m = userdata;
        char error[256];
        json_object *v;
        int64_t k;

        body = request_json_object(req, "");
        if (!body)
                return 0;
        if (json_object_object_get_ex(body, "worker_num", &v) &&
            (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != 0))
                return http_reply_error(req, 400, "The worker_num must be 0: workers are not supported.");
        if (!json_object_object_get_ex(body, "server_num", &v) || !json_object_is_type(v, json_type_int))
                return http_reply_error(req, 400, "The server_num must be a positive integer.");
        k = json_object_get_int64(v);
        if (k <= 0 || k > UINT32_MAX)
                return http_reply_error(req, 400, "The server_num must be a positive integer.");
        if (scale_out(m, (uint32_t) k, error, sizeof error) < 0)
                return http_reply_error(req, 400, "%s", error);
        o = reply_new(SCALE_OUT_MESSAGE);
        return http_reply_json(req, 200, o);
}

/* {"node_ids":["...", ...]} */
static int rest_post_scalein(HttpRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *body = NULL, *o = NULL;
        _cleanup_free_ char **node_ids = NULL;
        Manager *m = userdata;
        char error[256];
        json_object *ids;
        size_t n;

        body = request_json_object(req, "");
        if (!body)
                return 0;
        if (!json_object_object_get_ex(body, "node_ids", &ids) || !json_object_is_type(ids, json_type_array))
                return http_reply_error(req, 400, "The node_ids must be an array of node ids.");
        n = json_object_array_length(ids);
        node_ids = calloc(n + 1, sizeof *node_ids);
        if (!node_ids)
                return http_reply_error(req, 500, "Out of memory.");
        for (size_t i = 0; i < n; i++) {
                json_object *v = json_object_array_get_idx(ids, i);

                if (!json_object_is_type(v, json_type_string))
                        return http_reply_error(req, 400, "The node id:%s is illegal.", json_object_to_json_string(v));
                node_ids[i] = (char *) json_object_get_string(v);
        }
        if (scale_in(m, node_ids, n, error, sizeof error) < 0)
                return http_reply_error(req, 400, "%s", error);
        o = reply_new(SCALE_IN_MESSAGE);
        return http_reply_json(req, 200, o);
}

static const HttpRoute routes[] = {
        { "GET",  "/nodes",         rest_get_nodes,          REST_ACCESS_READER },
        { "GET",  "/state",         rest_get_state,          REST_ACCESS_READER },
        { "GET",  "/queryInstance", rest_get_query_instance, REST_ACCESS_READER },
        { "POST", "/finish",        rest_post_finish,        REST_ACCESS_OPERATOR },
        { "POST", "/scaleout",      rest_post_scaleout,      REST_ACCESS_OPERATOR },
        { "POST", "/scalein",       rest_post_scalein,       REST_ACCESS_OPERATOR },
        { "POST", "/newInstance",   rest_post_new_instance,  REST_ACCESS_OPERATOR },
        { "POST", "/enableFLS",     rest_post_enable,        REST_ACCESS_OPERATOR },
        { "POST", "/disableFLS",    rest_post_disable,       REST_ACCESS_OPERATOR },
        { "GET",  "/metrics",       rest_get_metrics,        REST_ACCESS_READER },
        { "GET",  "/iterations",    rest_get_iterations,     REST_ACCESS_READER },
        { "GET",  "/iteration",     rest_get_iteration,      REST_ACCESS_READER },
        /* The status page's own files: it must load to ask for a token. */
        { "GET",  "/",              rest_get_status_page,    REST_ACCESS_PUBLIC },
        { "GET",  "/status.js",     rest_get_status_js,      REST_ACCESS_PUBLIC },
        { "GET",  "/status.css",    rest_get_status_css,     REST_ACCESS_PUBLIC },
};

int manager_rest_setup(Manager *m) {
        /* The scheduler's own address unless told otherwise: never every interface by default. */
        const char *address = m->config->scheduler_manage_ip ?: m->config->scheduler_ip;
        int r;

        r = http_server_new_tls(&m->http, m->event, address, (uint16_t) m->config->scheduler_manage_port,
                                routes, ELEMENTSOF(routes), REST_BODY_MAX, cluster_trust_tls(m->trust), m);
        if (r < 0)
                return log_error_errno(r, "Failed to serve REST on %s:%u: %m%s", address,
                                       m->config->scheduler_manage_port,
                                       r == -EADDRNOTAVAIL ? " (no interface of this host has that address; "
                                       "set scheduler_manage_ip)" : "");
        http_server_set_authorize(m->http, auth_check_rest);
        return 0;
}
