/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "server-link.h"
#include "server-manager.h"
#include "wire-protocol.h"

uint64_t server_link_backoff_next(uint64_t usec) {
        if (usec < LINK_BACKOFF_MIN_USEC)
                return LINK_BACKOFF_MIN_USEC;
        return MIN(usec * 2, (uint64_t) LINK_BACKOFF_MAX_USEC);
}

uint64_t server_link_jitter(uint64_t usec, uint32_t random) {
        /* Spreads out the servers that all lost a restarted scheduler at once. */
        return usec / 4 * 3 + (((usec / 2) * random) >> 32);
}

static const char *format_delay(char buf[static 32], uint64_t usec) {
        if (usec < USEC_PER_SEC)
                snprintf(buf, 32, "%" PRIu64 "ms", usec / USEC_PER_MSEC);
        else
                snprintf(buf, 32, "%.1fs", (double) usec / USEC_PER_SEC);
        return buf;
}

static bool error_is_unreachable(int error) {
        switch (-error) {
        case ECONNREFUSED: case EHOSTUNREACH: case ENETUNREACH: case EHOSTDOWN: case ENETDOWN: case EADDRNOTAVAIL:
                return true;
        default:
                return false;
        }
}

/* failure: conn_failure()'s words (a certificate, the cluster secret), or NULL. */
static void link_schedule_reconnect(ServerLink *l, int error, bool was_registered, const char *failure) {
        Manager *m = l->manager;
        const char *reason = failure ?: error == 0 ? "closed by the scheduler" : strerror(-error);
        uint64_t delay;
        char d[32];

        l->backoff_usec = server_link_backoff_next(l->backoff_usec);
        delay = server_link_jitter(l->backoff_usec, (uint32_t) random());
        format_delay(d, delay);

        if (was_registered)
                log_warning("Lost the scheduler %s (%s); still serving devices, reconnecting in %s.",
                            m->scheduler, reason, d);
        else if (failure)
                log_warning("Could not join the scheduler %s: %s; retrying in %s.", m->scheduler, failure, d);
        else if (error == -ETIMEDOUT)
                log_warning("Scheduler %s did not answer within %" PRIu64 "s, retrying in %s.", m->scheduler,
                            l->idle_usec / USEC_PER_SEC, d);
        else if (error == 0)
                log_warning("Scheduler %s closed the connection before answering the registration, retrying in %s.",
                            m->scheduler, d);
        else if (error_is_unreachable(error))
                log_warning("Scheduler %s unreachable (%s), retrying in %s.", m->scheduler, reason, d);
        else
                log_warning("Disconnected from the scheduler %s (%s), retrying in %s.", m->scheduler, reason, d);
        manager_status(m, "Not connected to the scheduler %s (%s); serving devices, retrying.", m->scheduler, reason);

        (void) sd_event_source_set_time_relative(l->reconnect_timer, delay);
        (void) sd_event_source_set_enabled(l->reconnect_timer, SD_EVENT_ONESHOT);
}

static void link_drop(ServerLink *l) {
        l->conn = conn_free(l->conn);           /* no close callback for this one */
        l->registered = false;
        (void) sd_event_source_set_enabled(l->heartbeat_timer, SD_EVENT_OFF);
        /* Devices waiting for the scheduler's verdict get theirs now. */
        manager_link_lost(l->manager);
}

static int link_send_register(ServerLink *l) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        Manager *m = l->manager;

        if (!o ||
            json_object_object_add(o, "node_id", json_object_new_string(m->node_id)) < 0 ||
            json_object_object_add(o, "role", json_object_new_string("SERVER")) < 0 ||
            json_object_object_add(o, "address", json_object_new_string(m->address)) < 0 ||
            json_object_object_add(o, "fl_server_port", json_object_new_int64(m->port)) < 0 ||
            json_object_object_add(o, "pid", json_object_new_int64(getpid())) < 0 ||
            json_object_object_add(o, "server_num", json_object_new_int64(m->config->server_num)) < 0 ||
            json_object_object_add(o, "peer_port",
                                   json_object_new_int64(m->allreduce ? allreduce_port(m->allreduce) : 0)) < 0)
                return -ENOMEM;
        /* The model this server holds (none: the keys are left out); WIRE_SYNCED follows the first
         * WIRE_ITERATION when it is the cluster's. */
        if (m->model.model &&
            (json_object_object_add(o, "model_iteration", json_object_new_int64(m->model.iteration)) < 0 ||
             json_object_object_add(o, "model_checksum", json_object_new_string(m->model.checksum)) < 0))
                return -ENOMEM;
        return conn_send_json(l->conn, WIRE_REGISTER, o);
}

static int link_on_register_reply(ServerLink *l, json_object *o) {
        Manager *m = l->manager;
        const char *error = NULL;
        uint32_t rank, timeout;
        bool ok;

        if (l->registered)
                return 0;
        if (!o || json_get_bool(o, "ok", &ok) < 0)
                return log_warning_errno(-EBADMSG, "The scheduler %s answered the registration without \"ok\".",
                                         m->scheduler);
        if (!ok) {
                bool retry = false;

                (void) json_get_string(o, "error", &error);
                (void) json_get_bool(o, "retry", &retry);
                if (retry) {
                        /* The scheduler could not take us just now (e.g. its disk): try again later. */
                        log_warning("The scheduler %s cannot register this server yet: %s",
                                    m->scheduler, error ?: "no reason given");
                        link_drop(l);
                        link_schedule_reconnect(l, -EAGAIN, false, NULL);
                        return 0;
                }

                /* Retrying cannot help (the node id is alive elsewhere, the cluster is full):
                 * exit with FL_EXIT_REFUSED, which the unit does not restart. */
                log_error("The scheduler %s refused this server (node id %s, port %u): %s", m->scheduler,
                          m->node_id, m->port, error ?: "no reason given");
                l->refused = true;
                link_drop(l);
                manager_exit(m, FL_EXIT_REFUSED);
                return 0;
        }
        if (json_get_u32(o, "rank", &rank) < 0)
                return log_warning_errno(-EBADMSG, "The scheduler %s accepted the registration without a rank.",
                                         m->scheduler);
        if (json_get_u32(o, "node_timeout", &timeout) >= 0 && timeout > 0) {
                /* The scheduler's node_timeout decides when we are declared dead. */
                l->idle_usec = (uint64_t) timeout * USEC_PER_SEC;
                l->heartbeat_usec = MIN(l->idle_usec / 3, 3 * USEC_PER_SEC);
                conn_set_idle_timeout(l->conn, l->idle_usec);
        }

        if (l->has_rank && rank != l->rank)
                log_notice("The scheduler moved this server from rank %u to rank %u.", l->rank, rank);
        l->registered = l->has_rank = true;
        l->rank = rank;
        l->backoff_usec = 0;
        log_info("Registered with the scheduler %s as rank %u (node id %s, %s:%u).", m->scheduler, rank,
                 m->node_id, m->address, m->port);

        (void) sd_event_source_set_time_relative(l->heartbeat_timer, l->heartbeat_usec);
        (void) sd_event_source_set_enabled(l->heartbeat_timer, SD_EVENT_ONESHOT);
        /* The scheduler must hear again which updates this server holds. */
        update_log_link_registered(m->updates);
        manager_link_changed(m);
        return 0;
}

/* This server's own entry: its rank (made contiguous after a scale-in) and
 * whether it is leaving. */
static void link_adopt_self(ServerLink *l) {
        const ServerMember *self = server_members_find(&l->view, l->manager->node_id);

        if (!self)
                return;
        if (l->has_rank && self->rank != l->rank)
                log_notice("Rank changed from %u to %u.", l->rank, self->rank);
        l->rank = self->rank;
        l->has_rank = true;
        if (self->leaving != l->leaving)
                log_notice(self->leaving ? "This server is leaving the cluster (scale-in): no new devices; it takes "
                           "the updates of the devices already admitted and the aggregation of this iteration, "
                           "then exits." : "This server is no longer leaving the cluster.");
        l->leaving = self->leaving;
}

static int link_on_members(ServerLink *l, json_object *o) {
        ServerMembers v;
        int r;

        r = server_members_parse(o, &v);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_warning_errno(r, "The scheduler %s sent a member list that cannot be read.",
                                         l->manager->scheduler);
        server_members_log_changes(&l->view, &v);
        server_members_done(&l->view);
        l->view = v;
        link_adopt_self(l);
        manager_link_changed(l->manager);
        return 0;
}

static int link_on_finish(ServerLink *l) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        Manager *m = l->manager;
        int r = -ENOMEM;

        if (l->leaving) {
                log_info("Scaled in: leaving the cluster.");
                manager_status(m, "Scaled in: leaving the cluster.");
        } else {
                log_info("The scheduler %s finished the cluster; stopping this server.", m->scheduler);
                manager_status(m, "Finishing: the scheduler finished the cluster.");
        }
        if (o && json_object_object_add(o, "pid", json_object_new_int64(getpid())) >= 0)
                r = conn_send_json(l->conn, WIRE_FINISH_ACK, o);
        if (r < 0)
                log_warning_errno(r, "Failed to acknowledge the finish, exiting without: %m");

        l->finishing = true;
        (void) sd_event_source_set_time_relative(l->finish_timer, LINK_FINISH_TIMEOUT_USEC);
        (void) sd_event_source_set_enabled(l->finish_timer, SD_EVENT_ONESHOT);
        conn_close_after_flush(l->conn);        /* may call link_on_close() right away */
        return 0;
}

static int link_on_frame(Conn *c, uint8_t type, const uint8_t *payload, size_t size, void *userdata) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        ServerLink *l = userdata;
        const char *error = NULL;

        if (l->finishing)
                return 0;
        if (size > 0 && json_parse_object((const char *) payload, size, &o) < 0)
                return log_warning_errno(-EBADMSG, "The scheduler %s sent a frame of type %u that is not "
                                         "a JSON object.", l->manager->scheduler, type);

        switch (type) {
        case WIRE_REGISTER_REPLY:
                return link_on_register_reply(l, o);
        case WIRE_MEMBERS:
                return link_on_members(l, o);
        case WIRE_HEARTBEAT:
                return 0;       /* the connection's idle timer has been reset */
        case WIRE_FINISH:
                return link_on_finish(l);
        case WIRE_ADMIT_REPLY:
        case WIRE_UPDATE_REPLY:
                return pending_on_reply(l->manager, type, o);
        case WIRE_ITERATION:
                return manager_on_iteration(l->manager, o);
        case WIRE_AGGREGATE:
                return manager_on_aggregate(l->manager, o);
        case WIRE_ERROR:
                if (o)
                        (void) json_get_string(o, "error", &error);
                log_warning("The scheduler %s reported: %s", l->manager->scheduler, error ?: "an unnamed error");
                return 0;
        default:
                log_debug("Ignoring a frame of unknown type %u from the scheduler.", type);
                return 0;
        }
}

static void link_on_close(Conn *c, int error, void *userdata) {
        ServerLink *l = userdata;
        bool was_registered = l->registered;
        char failure[256] = "";

        if (conn_failure(c))
                snprintf(failure, sizeof failure, "%s", conn_failure(c));
        link_drop(l);
        if (l->finishing) {
                manager_exit(l->manager, EXIT_SUCCESS);
                return;
        }
        if (l->refused)
                return;
        if (was_registered)
                manager_link_changed(l->manager);
        link_schedule_reconnect(l, error, was_registered, failure[0] ? failure : NULL);
}

static void link_connect(ServerLink *l) {
        Manager *m = l->manager;
        int r;

        r = conn_connect(&l->conn, m->event, m->config->scheduler_ip, (uint16_t) m->config->scheduler_port,
                         WIRE_CONTROL_MAX, l->idle_usec, link_on_frame, link_on_close, l);
        if (r >= 0) {
                /* TLS and/or the cluster secret first; the registration is held until they are done. */
                r = cluster_trust_secure(m->trust, l->conn, false, m->config->scheduler_ip);
                if (r >= 0)
                        r = link_send_register(l);
                if (r >= 0)
                        return;
                link_drop(l);
        }
        link_schedule_reconnect(l, r, false, NULL);
}

static int link_reconnect_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        link_connect(userdata);
        return 0;
}

static int link_heartbeat_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        ServerLink *l = userdata;
        int r;

        if (!l->conn || !l->registered)
                return 0;
        r = conn_send(l->conn, WIRE_HEARTBEAT, "{}", 2);
        if (r < 0)      /* a dead link is noticed by the connection itself */
                log_debug_errno(r, "Failed to send a heartbeat: %m");
        (void) sd_event_source_set_time_relative(s, l->heartbeat_usec);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static int link_finish_timeout_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        ServerLink *l = userdata;

        log_warning("The finish acknowledgement did not leave within %" PRIu64 "s; exiting anyway.",
                    (uint64_t) LINK_FINISH_TIMEOUT_USEC / USEC_PER_SEC);
        link_drop(l);
        manager_exit(l->manager, EXIT_SUCCESS);
        return 0;
}

static int link_add_timer(ServerLink *l, sd_event_source **ret, sd_event_time_handler_t handler, const char *name) {
        int r;

        /* 1ms accuracy: sd-event's default 250ms would dwarf the first back-off steps. */
        r = sd_event_add_time_relative(l->manager->event, ret, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, handler, l);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(*ret, name);
        return sd_event_source_set_enabled(*ret, SD_EVENT_OFF);
}

int server_link_new(ServerLink **ret, Manager *m) {
        _cleanup_(server_link_freep) ServerLink *l = NULL;
        int r;

        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->manager = m;
        server_members_init(&l->view);
        l->heartbeat_usec = conf_heartbeat_usec(m->config);
        l->idle_usec = (uint64_t) m->config->node_timeout * USEC_PER_SEC;

        r = link_add_timer(l, &l->reconnect_timer, link_reconnect_handler, "link-reconnect");
        if (r >= 0)
                r = link_add_timer(l, &l->heartbeat_timer, link_heartbeat_handler, "link-heartbeat");
        if (r >= 0)
                r = link_add_timer(l, &l->finish_timer, link_finish_timeout_handler, "link-finish");
        if (r < 0)
                return r;

        *ret = TAKE_PTR(l);
        return 0;
}

ServerLink *server_link_free(ServerLink *l) {
        if (!l)
                return NULL;
        link_drop(l);
        sd_event_source_disable_unref(l->reconnect_timer);
        sd_event_source_disable_unref(l->heartbeat_timer);
        sd_event_source_disable_unref(l->finish_timer);
        server_members_done(&l->view);
        free(l);
        return NULL;
}

void server_link_start(ServerLink *l) {
        log_info("Connecting to the scheduler %s.", l->manager->scheduler);
        manager_status(l->manager, "Connecting to the scheduler %s; serving devices.", l->manager->scheduler);
        link_connect(l);
}

void server_link_reconnect(ServerLink *l) {
        link_drop(l);
        link_schedule_reconnect(l, -EPROTO, true, NULL);
}

void server_link_stop(ServerLink *l) {
        link_drop(l);
        (void) sd_event_source_set_enabled(l->reconnect_timer, SD_EVENT_OFF);
}
