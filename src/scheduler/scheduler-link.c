/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "conn.h"
#include "json-util.h"
#include "log.h"
#include "scheduler-manager.h"
#include "scheduler-link.h"
#include "wire-protocol.h"

static void link_unlink(Link *l) {
        Manager *m = l->manager;

        if (l->prev)
                l->prev->next = l->next;
        else if (m->links == l)
                m->links = l->next;
        if (l->next)
                l->next->prev = l->prev;
        l->prev = l->next = NULL;
}

Link *link_free(Link *l) {
        if (!l)
                return NULL;
        if (l->node) {
                l->node->connected = false;
                l->node->link = NULL;
        }
        link_unlink(l);
        conn_free(l->conn);
        free(l);
        return NULL;
}

static void link_refuse(Link *l, const char *error, bool retry) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        json_object_object_add(o, "ok", json_object_new_boolean(false));
        json_object_object_add(o, "error", json_object_new_string(error));
        json_object_object_add(o, "retry", json_object_new_boolean(retry));
        (void) conn_send_json(l->conn, WIRE_REGISTER_REPLY, o);
        conn_close_after_flush(l->conn);
}

static int link_handle_register(Link *l, json_object *msg) {
        Manager *m = l->manager;
        const char *node_id, *role, *address;
        uint32_t port, pid, server_num, peer_port = 0;
        _cleanup_(json_object_putp) json_object *reply = NULL;
        char error[256];
        bool returning, retry = false;
        Node *n;
        int r;

        if (json_get_string(msg, "node_id", &node_id) < 0 ||
            json_get_string(msg, "role", &role) < 0 ||
            json_get_string(msg, "address", &address) < 0 ||
            json_get_u32(msg, "fl_server_port", &port) < 0 ||
            json_get_u32(msg, "pid", &pid) < 0 ||
            json_get_u32(msg, "server_num", &server_num) < 0)
                return log_warning_errno(-EBADMSG, "Malformed registration from %s, disconnecting.", conn_peer(l->conn));
        /* Optional: a server without one cannot take part in the all-reduce. */
        (void) json_get_u32(msg, "peer_port", &peer_port);

        if (!streq(role, "SERVER")) {
                snprintf(error, sizeof error, "The role %s is not supported: only SERVER nodes may register.", role);
                goto refuse;
        }
        if (port == 0 || port > 65535 || peer_port > 65535 || !node_id_is_valid(node_id)) {
                snprintf(error, sizeof error, "The node id or port of the registration is illegal.");
                goto refuse;
        }
        if (m->finishing || m->state == CLUSTER_EXIT) {
                snprintf(error, sizeof error, "The cluster is exiting; registration refused.");
                goto refuse;
        }

        r = registry_admit(&m->registry, node_id, address, port, pid, now_usec(CLOCK_MONOTONIC), &n, &returning);
        if (r == -EADDRINUSE) {
                snprintf(error, sizeof error, "The node id %s is already registered and alive (rank %u); refusing a second server with it.",
                         node_id, registry_find(&m->registry, node_id)->rank);
                goto refuse;
        }
        if (r == -EUSERS) {
                snprintf(error, sizeof error, "The cluster is full: all %u ranks of server_num are taken; refusing node %s.",
                         m->registry.server_num, node_id);
                goto refuse;
        }
        if (r < 0) {
                snprintf(error, sizeof error, "Registration of node %s failed: %s.", node_id, strerror(-r));
                goto refuse;
        }

        n->peer_port = peer_port;
        n->in_sync = false;     /* until it says WIRE_SYNCED */
        r = manager_save_node(m, n);
        if (r < 0) {
                /* Not durable, so not announced: the server retries. */
                n->connected = false;
                if (!returning)
                        (void) registry_remove(&m->registry, node_id);
                snprintf(error, sizeof error, "The scheduler could not store the registration; retry later.");
                retry = true;
                goto refuse;
        }

        l->node = n;
        n->link = l;
        training_on_node_registered(m, n);
        if (server_num != m->registry.server_num)
                log_warning("Server %s was started with server_num=%u, the cluster has %u.",
                            node_id, server_num, m->registry.server_num);

        reply = json_object_new_object();
        json_object_object_add(reply, "ok", json_object_new_boolean(true));
        json_object_object_add(reply, "rank", json_object_new_int64(n->rank));
        json_object_object_add(reply, "node_timeout", json_object_new_int64(m->config->node_timeout));
        r = conn_send_json(l->conn, WIRE_REGISTER_REPLY, reply);
        if (r < 0)
                return r;

        {
                char rank[16];
                snprintf(rank, sizeof rank, "FL_RANK=%u", n->rank);
                _cleanup_free_ char *id = NULL;
                if (asprintf(&id, "FL_NODE_ID=%s", n->node_id) >= 0)
                        log_struct(LOG_INFO, FIELDS(rank, id),
                                   "Server %s registered from %s:%u as rank %u%s.", n->node_id, n->address,
                                   n->fl_server_port, n->rank, returning ? " (returning)" : "");
        }
        manager_bus_emit_node(m, n, true, "registered");
        r = manager_update_state(m, true);
        if (r < 0)
                return r;
        training_send_iteration(m, l);
        scale_check(m);
        return 0;

refuse:
        log_warning("Refused registration from %s: %s", conn_peer(l->conn), error);
        link_refuse(l, error, retry);
        return 0;
}

static int link_on_frame(Conn *c, uint8_t type, const uint8_t *payload, size_t size, void *userdata) {
        _cleanup_(json_object_putp) json_object *msg = NULL;
        Link *l = userdata;
        Manager *m = l->manager;
        uint32_t pid;
        int r;

        r = json_parse_object((const char *) payload, size, &msg);
        if (r < 0)
                return log_warning_errno(r, "Frame of type %u from %s is not a JSON object, disconnecting.",
                                         type, conn_peer(c));

        if (!l->node) {
                if (type == WIRE_FINISH_ACK)
                        return 0;  /* a server that was scaled in, on its way out */
                if (type != WIRE_REGISTER)
                        return log_warning_errno(-EPROTO, "Frame of type %u from unregistered %s, disconnecting.",
                                                 type, conn_peer(c));
                return link_handle_register(l, msg);
        }

        switch (type) {
        case WIRE_HEARTBEAT:
                l->node->last_seen_usec = now_usec(CLOCK_MONOTONIC);
                if (!l->node->alive) {
                        l->node->alive = true;
                        log_info("Server rank %u (node %s) is heard from again.", l->node->rank, l->node->node_id);
                        (void) manager_save_node(m, l->node);
                        (void) manager_update_state(m, true);
                }
                return conn_send(c, WIRE_HEARTBEAT, "{}", 2);

        case WIRE_ADMIT:
                return training_handle_admit(m, l, msg);

        case WIRE_UPDATE:
                return training_handle_update(m, l, msg);

        case WIRE_AGGREGATE_DONE:
                return training_handle_aggregate_done(m, l, msg);

        case WIRE_SYNCED:
                return training_handle_synced(m, l, msg);

        case WIRE_REPLAYED:
                return training_handle_replayed(m, l, msg);

        case WIRE_REPORT:
                return history_handle_report(m, l, msg);

        case WIRE_FINISH_ACK:
                if (json_get_u32(msg, "pid", &pid) < 0)
                        return log_warning_errno(-EBADMSG, "Malformed FINISH_ACK from %s.", conn_peer(c));
                manager_finish_node_stopped(m, l->node, pid);
                return 0;

        default:
                return log_warning_errno(-EPROTO, "Unexpected frame of type %u from rank %u (%s), disconnecting.",
                                         type, l->node->rank, conn_peer(c));
        }
}

static void link_on_close(Conn *c, int error, void *userdata) {
        Link *l = userdata;
        Manager *m = l->manager;
        Node *n = l->node;

        if (n) {
                training_on_node_lost(m, n);
                if (m->finishing && error == 0)
                        /* Closed in order without its ack in our hands: it stopped. */
                        manager_finish_node_stopped(m, n, n->pid);
                else if (m->finishing)
                        log_warning_errno(error, "Server rank %u (node %s, pid %u) did not stop in order (%m); not counted as stopped.",
                                          n->rank, n->node_id, n->pid);
                else if (error < 0)
                        log_warning_errno(error, "Lost server rank %u (node %s): %m. It is declared dead after %us unless it returns.",
                                          n->rank, n->node_id, m->config->node_timeout);
                else
                        log_notice("Server rank %u (node %s) disconnected. It is declared dead after %us unless it returns.",
                                   n->rank, n->node_id, m->config->node_timeout);
        } else if (conn_refused(c))
                /* Without the cluster's certificate or secret: once per address and reason. */
                (void) refusals_log(m->refusals, conn_peer_host(c), conn_failure(c), now_usec(CLOCK_MONOTONIC));
        else if (error < 0)
                log_debug_errno(error, "Connection from %s closed: %s", conn_peer(c), conn_failure(c) ?: strerror(-error));

        link_free(l);
        manager_finish_check(m);
}

static int link_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Manager *m = userdata;
        _cleanup_close_ int cfd = -EBADF;
        Link *l;
        int r;

        cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                        log_warning_errno(-errno, "Failed to accept a connection, ignoring: %m");
                return 0;
        }

        l = calloc(1, sizeof *l);
        if (!l)
                return log_oom(), 0;
        l->manager = m;
        r = conn_new(&l->conn, m->event, TAKE_FD(cfd), WIRE_CONTROL_MAX,
                     (uint64_t) m->config->node_timeout * USEC_PER_SEC, link_on_frame, link_on_close, l);
        if (r >= 0)
                r = cluster_trust_secure(m->trust, l->conn, true, NULL);
        if (r < 0) {
                conn_free(l->conn);
                free(l);
                log_warning_errno(r, "Failed to set up a connection, ignoring: %m");
                return 0;
        }
        l->next = m->links;
        if (m->links)
                m->links->prev = l;
        m->links = l;
        log_debug("Connection from %s.", conn_peer(l->conn));
        return 0;
}

int link_listen(Manager *m) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_in sa = {
                .sin_family = AF_INET,
                .sin_port = htons((uint16_t) m->config->scheduler_port),
        };
        int one = 1, r;

        if (inet_pton(AF_INET, m->config->scheduler_ip, &sa.sin_addr) != 1)
                return log_error_errno(-EINVAL, "Invalid scheduler_ip '%s': an IPv4 address is needed.", m->config->scheduler_ip);

        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *) &sa, sizeof sa) < 0)
                return log_error_errno(-errno, "Failed to listen on %s:%u: %m", m->config->scheduler_ip, m->config->scheduler_port);
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;

        r = sd_event_add_io(m->event, &m->listen_source, fd, EPOLLIN, link_accept, m);
        if (r < 0)
                return r;
        m->listen_fd = TAKE_FD(fd);
        return 0;
}
