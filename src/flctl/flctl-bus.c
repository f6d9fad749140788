/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <systemd/sd-bus.h>

#include "fl-bus.h"
#include "flctl-backend.h"
#include "log.h"
#include "util.h"

#define BUS_WHERE FL_BUS_NAME " on the system bus"

typedef struct BusBackend {
        Backend backend;
        sd_bus *bus;
} BusBackend;

/* Errors that mean nobody answered, rather than that the scheduler said no:
 * the bus daemon's, and sd-bus's own when the connection broke (those carry
 * errno names such as System.Error.ENOTCONN, hence the check of r). */
static bool bus_error_is_unreachable(const sd_bus_error *error, int r) {
        static const char *const names[] = {
                SD_BUS_ERROR_SERVICE_UNKNOWN,
                SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                SD_BUS_ERROR_NO_REPLY,
                SD_BUS_ERROR_DISCONNECTED,
                SD_BUS_ERROR_NO_SERVER,
        };

        if (!sd_bus_error_is_set(error) || r == -ENOTCONN || r == -ECONNRESET ||
            r == -ECONNREFUSED || r == -EPIPE)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (sd_bus_error_has_name(error, names[i]))
                        return true;
        return false;
}

/* Refusals (org.flcluster.Error.*) carry the REST error_message text and are
 * printed as they are; anything else gets said which step failed. */
static int log_bus_call_error(const char *member, uint64_t timeout_usec, uint64_t elapsed_usec,
                              const sd_bus_error *error, int r) {
        _cleanup_free_ char *message = NULL;

        if (sd_bus_error_is_set(error) && error->message)
                message = message_sanitize(error->message);
        else
                message = strdup(strerror(-r));
        if (!message)
                return log_oom();

        if (sd_bus_error_is_set(error) && strneq(error->name, FL_BUS_ERROR_PREFIX, strlen(FL_BUS_ERROR_PREFIX)))
                return log_error_errno(r, "%s", message);
        /* The bus answers NoReply both when the time is up and when the scheduler
         * went away before answering: only the clock tells them apart. */
        if (sd_bus_error_has_name(error, SD_BUS_ERROR_NO_REPLY) && elapsed_usec < timeout_usec)
                return log_error_errno(r, "The scheduler at %s exited before it answered %s.", BUS_WHERE, member);
        if (r == -ETIMEDOUT || sd_bus_error_has_name(error, SD_BUS_ERROR_TIMEOUT))
                return log_error_errno(r, "The scheduler at %s did not answer %s within %.3g s (see --timeout).",
                                       BUS_WHERE, member, (double) timeout_usec / (double) USEC_PER_SEC);
        if (bus_error_is_unreachable(error, r))
                return log_error_errno(r, "Failed to connect to the scheduler at %s: %s", BUS_WHERE, message);
        if (sd_bus_error_has_name(error, SD_BUS_ERROR_ACCESS_DENIED))
                return log_error_errno(r, "Not allowed to call %s on the scheduler (operators need root or "
                                       "membership of the group flcluster): %s", member, message);
        return log_error_errno(r, "The scheduler could not complete %s: %s", member, message);
}

static int bus_message_new(BusBackend *b, const char *member, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_method_call(b->bus, &m, FL_BUS_NAME, FL_BUS_PATH, FL_BUS_INTERFACE, member);
        if (r < 0)
                return log_error_errno(r, "Failed to create the %s call: %m", member);
        /* Asking a stopped cluster for its state (or to finish) must not start
         * a scheduler through D-Bus activation: report that none runs. */
        r = sd_bus_message_set_auto_start(m, false);
        if (r < 0)
                return log_error_errno(r, "Failed to prepare the %s call: %m", member);
        *ret = TAKE_PTR(m);
        return 0;
}

/* Sends m, a call made by bus_message_new() with its arguments appended. */
static int bus_call_message(BusBackend *b, sd_bus_message *m, const char *member, sd_bus_message **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t start;
        int r;

        start = now_usec(CLOCK_MONOTONIC);
        r = sd_bus_call(b->bus, m, b->backend.timeout_usec, &error, ret);
        if (r < 0)
                return log_bus_call_error(member, b->backend.timeout_usec, now_usec(CLOCK_MONOTONIC) - start,
                                          &error, r);
        return 0;
}

static int bus_call(BusBackend *b, const char *member, sd_bus_message **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        int r;

        r = bus_message_new(b, member, &m);
        if (r < 0)
                return r;
        return bus_call_message(b, m, member, ret);
}

/* The arguments were checked (UTF-8 strings) before: only memory is left to fail. */
static int log_bus_append_error(const char *member, int r) {
        return log_error_errno(r, "Failed to build the %s call: %m", member);
}

static int log_bus_parse_error(const char *member, int r) {
        return log_error_errno(r, "Failed to parse the scheduler's reply to %s: %m", member);
}

/* The methods that change something answer the scheduler's message (a
 * string; what follows it, if anything, was read before). */
static int bus_reply_message(sd_bus_message *reply, const char *member, char **ret_message) {
        const char *text;
        char *message;
        int r;

        r = sd_bus_message_read(reply, "s", &text);
        if (r < 0)
                return log_bus_parse_error(member, r);
        if (isempty(text))
                return log_error_errno(-EBADMSG, "The scheduler's reply to %s carries no message.", member);
        message = message_sanitize(text);
        if (!message)
                return log_oom();
        *ret_message = message;
        return 0;
}

static int bus_list_nodes(Backend *backend, NodeList *ret) {
        BusBackend *b = (BusBackend *) backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(node_list_done) NodeList nodes = {};
        int r;

        r = bus_call(b, "ListNodes", &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_enter_container(reply, 'a', "(sussqbu)");
        if (r < 0)
                return log_bus_parse_error("ListNodes", r);
        for (;;) {
                const char *node_id, *role, *address;
                uint32_t rank, pid;
                uint16_t port;
                int alive;

                r = sd_bus_message_read(reply, "(sussqbu)", &node_id, &rank, &role, &address, &port, &alive, &pid);
                if (r < 0)
                        return log_bus_parse_error("ListNodes", r);
                if (r == 0)
                        break;
                r = node_list_add(&nodes, node_id, rank, role, address, port, alive, pid);
                if (r == -EBADMSG)
                        return log_error_errno(r, "The scheduler listed a node with a malformed field.");
                if (r < 0)
                        return log_oom();
        }
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return log_bus_parse_error("ListNodes", r);

        *ret = nodes;
        nodes = (NodeList) {};
        return 0;
}

static int bus_get_state(Backend *backend, char **ret) {
        BusBackend *b = (BusBackend *) backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *state;
        char *copy;
        int r;

        r = bus_call(b, "GetState", &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &state);
        if (r < 0)
                return log_bus_parse_error("GetState", r);
        if (!state_name_is_valid(state))
                return log_error_errno(-EBADMSG, "The scheduler reported a malformed cluster state.");

        copy = strdup(state);
        if (!copy)
                return log_oom();
        *ret = copy;
        return 0;
}

static int bus_finish(Backend *backend, NodeList *ret) {
        BusBackend *b = (BusBackend *) backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(node_list_done) NodeList stopped = {};
        int r;

        r = bus_call(b, "Finish", &reply);
        if (r < 0)
                return r;

        r = sd_bus_message_enter_container(reply, 'a', "(susu)");
        if (r < 0)
                return log_bus_parse_error("Finish", r);
        for (;;) {
                const char *role, *node_id;
                uint32_t rank, pid;

                r = sd_bus_message_read(reply, "(susu)", &role, &rank, &node_id, &pid);
                if (r < 0)
                        return log_bus_parse_error("Finish", r);
                if (r == 0)
                        break;
                r = node_list_add(&stopped, node_id, rank, role, NULL, 0, false, pid);
                if (r == -EBADMSG)
                        return log_error_errno(r, "The scheduler reported a stopped node with a malformed field.");
                if (r < 0)
                        return log_oom();
        }
        r = sd_bus_message_exit_container(reply);
        if (r < 0)
                return log_bus_parse_error("Finish", r);

        *ret = stopped;
        stopped = (NodeList) {};
        return 0;
}

static int bus_scale_out(Backend *backend, uint32_t server_num, char **ret_message) {
        BusBackend *b = (BusBackend *) backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = bus_message_new(b, "ScaleOut", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "u", server_num);
        if (r < 0)
                return log_bus_append_error("ScaleOut", r);
        r = bus_call_message(b, m, "ScaleOut", &reply);
        if (r < 0)
                return r;
        return bus_reply_message(reply, "ScaleOut", ret_message);
}

static int bus_scale_in(Backend *backend, char *const *node_ids, size_t n, char **ret_message) {
        BusBackend *b = (BusBackend *) backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        int r;

        r = bus_message_new(b, "ScaleIn", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "s");
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sd_bus_message_append(m, "s", node_ids[i]);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0)
                return log_bus_append_error("ScaleIn", r);
        r = bus_call_message(b, m, "ScaleIn", &reply);
        if (r < 0)
                return r;
        return bus_reply_message(reply, "ScaleIn", ret_message);
}

static int bus_new_instance(Backend *backend, json_object *params, char **ret_message) {
        BusBackend *b = (BusBackend *) backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *text;
        int result, r;

        text = json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN);
        if (!text)
                return log_oom();
        r = bus_message_new(b, "NewInstance", &m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "s", text);
        if (r < 0)
                return log_bus_append_error("NewInstance", r);
        r = bus_call_message(b, m, "NewInstance", &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "b", &result);
        if (r < 0)
                return log_bus_parse_error("NewInstance", r);
        /* REST's "result" likewise: a refusal comes as an error, not as false. */
        if (!result)
                return log_error_errno(-EREMOTEIO, "The scheduler did not accept the new instance.");
        return bus_reply_message(reply, "NewInstance", ret_message);
}

static int bus_query_instance(Backend *backend, json_object **ret) {
        BusBackend *b = (BusBackend *) backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        const char *text;
        int r;

        r = bus_call(b, "QueryInstance", &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "s", &text);
        if (r < 0)
                return log_bus_parse_error("QueryInstance", r);
        r = instance_from_string(text, ret);
        if (r == -EBADMSG)
                return log_error_errno(r, "The scheduler's reply to QueryInstance is not a JSON object.");
        if (r < 0)
                return log_oom();
        return 0;
}

static int bus_set_enabled(Backend *backend, bool enable, char **ret_message) {
        BusBackend *b = (BusBackend *) backend;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = bus_call(b, enable ? "EnableFLS" : "DisableFLS", &reply);
        if (r < 0)
                return r;
        return bus_reply_message(reply, enable ? "EnableFLS" : "DisableFLS", ret_message);
}

static void bus_backend_free(Backend *backend) {
        BusBackend *b = (BusBackend *) backend;

        sd_bus_flush_close_unref(b->bus);
        free(b);
}

static const BackendVTable bus_vtable = {
        .list_nodes = bus_list_nodes,
        .get_state = bus_get_state,
        .finish = bus_finish,
        .scale_out = bus_scale_out,
        .scale_in = bus_scale_in,
        .new_instance = bus_new_instance,
        .query_instance = bus_query_instance,
        .set_enabled = bus_set_enabled,
        .free = bus_backend_free,
};

int bus_backend_new(Backend **ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        BusBackend *b;
        int r;

        /* Honours DBUS_SYSTEM_BUS_ADDRESS, which is how the tests point us at a private bus. */
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the scheduler at %s: %m", BUS_WHERE);

        b = calloc(1, sizeof *b);
        if (!b)
                return log_oom();
        b->backend.vtable = &bus_vtable;
        b->bus = TAKE_PTR(bus);
        *ret = &b->backend;
        return 0;
}
