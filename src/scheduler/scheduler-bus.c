/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "fl-bus.h"
#include "json-util.h"
#include "log.h"
#include "scheduler-manager.h"

/* The D-Bus face of the management API (fl-bus.h has the interface). */

static int bus_list_nodes(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        Node *const *nodes = registry_sorted(&m->registry);
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(sussqbu)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->registry.n_nodes; i++) {
                const Node *n = nodes[i];

                r = sd_bus_message_append(reply, "(sussqbu)", n->node_id, n->rank, "SERVER", n->address,
                                          (uint16_t) n->fl_server_port, (int) n->alive, n->pid);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

static int bus_get_state(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_reply_method_return(call, "s", cluster_state_to_string(m->state));
}

static int bus_finish(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        sd_bus_message **a;
        int r;

        a = realloc(m->finish_calls, (m->n_finish_calls + 1) * sizeof *a);
        if (!a)
                return -ENOMEM;
        m->finish_calls = a;
        m->finish_calls[m->n_finish_calls++] = sd_bus_message_ref(call);

        /* Already done and on the way out: answer with what was stopped. */
        if (manager_finish_answered(m)) {
                m->n_finish_calls--;
                sd_bus_message_unref(call);
                r = manager_bus_finish_reply(m, call);
                return r < 0 ? r : 1;
        }

        r = manager_finish_begin(m);
        if (r < 0)
                return sd_bus_error_set_errnof(error, r, "Failed to finish the cluster: %m");
        return 1;  /* answered later, in manager_bus_finish_reply() */
}

int manager_bus_finish_reply(Manager *m, sd_bus_message *call) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        size_t n = json_object_array_length(m->stopped);
        int r;

        r = sd_bus_message_new_method_return(call, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(susu)");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                json_object *o = json_object_array_get_idx(m->stopped, i), *v;
                const char *role = "", *rank = "", *node_id = "";
                uint32_t rank_u = FL_BUS_RANK_NONE, pid = 0;

                if (json_object_object_get_ex(o, "role", &v))
                        role = json_object_get_string(v);
                if (json_object_object_get_ex(o, "rank_id", &v))
                        rank = json_object_get_string(v);
                if (json_object_object_get_ex(o, "node_id", &v))
                        node_id = json_object_get_string(v);
                if (json_object_object_get_ex(o, "pid", &v))
                        pid = (uint32_t) json_object_get_int64(v);
                if (!isempty(rank))
                        (void) safe_atou32(rank, &rank_u);

                r = sd_bus_message_append(reply, "(susu)", role, rank_u, node_id, pid);
                if (r < 0)
                        return r;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                return r;
        return sd_bus_flush(sd_bus_message_get_bus(call));
}

static int bus_property_state(sd_bus *bus, const char *path, const char *interface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "s", cluster_state_to_string(m->state));
}

static int bus_property_server_num(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "u", m->registry.server_num);
}

static int bus_property_iteration(sd_bus *bus, const char *path, const char *interface, const char *property,
                                  sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "u", m->iteration.number);
}

/* A refusal of the core, as the named error fl-bus.h gives for its errno. */
static int bus_refuse(sd_bus_error *error, int r, const char *msg) {
        const char *name = r == -EBUSY ? FL_BUS_ERROR_NOT_READY :
                           IN_SET(r, -EINVAL, -ERANGE, -ENOENT) ? FL_BUS_ERROR_INVALID : FL_BUS_ERROR_FAILED;

        return sd_bus_error_set(error, name, msg);
}

static int bus_new_instance(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        Manager *m = userdata;
        JobParams params;
        const char *text;
        char msg[256];
        int r;

        r = sd_bus_message_read(call, "s", &text);
        if (r < 0)
                return r;
        if (json_parse_object(text, strlen(text), &o) < 0)
                return sd_bus_error_set(error, FL_BUS_ERROR_INVALID,
                                        "The request body must be a JSON object of hyper-parameters.");
        r = job_params_from_json(&params, o, msg, sizeof msg);
        if (r >= 0)
                r = instance_new(m, &params, msg, sizeof msg);
        if (r < 0)
                return bus_refuse(error, r, msg);
        return sd_bus_reply_method_return(call, "bs", 1, NEW_INSTANCE_MESSAGE);
}

static int bus_scale_out(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        char msg[256];
        uint32_t k;
        int r;

        r = sd_bus_message_read(call, "u", &k);
        if (r < 0)
                return r;
        r = scale_out(userdata, k, msg, sizeof msg);
        if (r < 0)
                return bus_refuse(error, r, msg);
        return sd_bus_reply_method_return(call, "s", SCALE_OUT_MESSAGE);
}

/* What sd_bus_message_read_strv() allocates: a NULL-terminated array. */
static void strings_freep(char ***p) {
        for (char **s = *p; s && *s; s++)
                free(*s);
        free(*p);
}

static int bus_scale_in(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(strings_freep) char **node_ids = NULL;
        char msg[256];
        size_t n = 0;
        int r;

        r = sd_bus_message_read_strv(call, &node_ids);
        if (r < 0)
                return r;
        while (node_ids && node_ids[n])
                n++;
        r = scale_in(userdata, node_ids, n, msg, sizeof msg);
        if (r < 0)
                return bus_refuse(error, r, msg);
        return sd_bus_reply_method_return(call, "s", SCALE_IN_MESSAGE);
}

static int bus_query_instance(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        _cleanup_(json_object_putp) json_object *o = instance_query(userdata);

        return sd_bus_reply_method_return(call, "s", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

static int bus_set_enabled(sd_bus_message *call, Manager *m, bool enable, sd_bus_error *error) {
        char msg[256];

        int r;

        r = instance_set_enabled(m, enable, msg, sizeof msg);
        if (r < 0)
                return bus_refuse(error, r, msg);
        return sd_bus_reply_method_return(call, "s", enable ? ENABLE_MESSAGE : DISABLE_MESSAGE);
}

static int bus_enable(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return bus_set_enabled(call, userdata, true, error);
}

static int bus_disable(sd_bus_message *call, void *userdata, sd_bus_error *error) {
        return bus_set_enabled(call, userdata, false, error);
}

static int bus_property_fl_enabled(sd_bus *bus, const char *path, const char *interface, const char *property,
                                   sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;

        return sd_bus_message_append(reply, "b", !m->fl_disabled);
}

static const sd_bus_vtable scheduler_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("ClusterState", "s", bus_property_state, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("ServerNum", "u", bus_property_server_num, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_PROPERTY("Iteration", "u", bus_property_iteration, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ListNodes", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sussqbu)", nodes),
                                bus_list_nodes, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetState", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", state),
                                bus_get_state, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Finish", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(susu)", stopped),
                                bus_finish, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_PROPERTY("FlEnabled", "b", bus_property_fl_enabled, 0, SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("ScaleOut", SD_BUS_ARGS("u", server_num), SD_BUS_RESULT("s", message),
                                bus_scale_out, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ScaleIn", SD_BUS_ARGS("as", node_ids), SD_BUS_RESULT("s", message),
                                bus_scale_in, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("NewInstance", SD_BUS_ARGS("s", hyper_parameters_json),
                                SD_BUS_RESULT("b", result, "s", message),
                                bus_new_instance, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("QueryInstance", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", instance_json),
                                bus_query_instance, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("EnableFLS", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", message),
                                bus_enable, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("DisableFLS", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", message),
                                bus_disable, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("NodeJoined", SD_BUS_ARGS("s", node_id, "u", rank), 0),
        SD_BUS_SIGNAL_WITH_ARGS("NodeLeft", SD_BUS_ARGS("s", node_id, "u", rank, "s", reason), 0),
        SD_BUS_VTABLE_END,
};

int manager_bus_setup(Manager *m) {
        int r;

        r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(m->bus, NULL, FL_BUS_PATH, FL_BUS_INTERFACE, scheduler_vtable, m);
        if (r < 0)
                return r;
        r = sd_bus_request_name(m->bus, FL_BUS_NAME, 0);
        if (r < 0)
                return log_warning_errno(r, "Failed to acquire the bus name %s: %m", FL_BUS_NAME);
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        return 0;
}

void manager_bus_emit_state(Manager *m) {
        if (!m->bus)
                return;
        (void) sd_bus_emit_properties_changed(m->bus, FL_BUS_PATH, FL_BUS_INTERFACE, "ClusterState", "ServerNum",
                                              "Iteration", "FlEnabled", NULL);
}

void manager_bus_emit_node(Manager *m, const Node *n, bool joined, const char *reason) {
        if (!m->bus)
                return;
        if (joined)
                (void) sd_bus_emit_signal(m->bus, FL_BUS_PATH, FL_BUS_INTERFACE, "NodeJoined", "su", n->node_id, n->rank);
        else
                (void) sd_bus_emit_signal(m->bus, FL_BUS_PATH, FL_BUS_INTERFACE, "NodeLeft", "sus", n->node_id, n->rank, reason);
}
