/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "json-util.h"
#include "log.h"
#include "server-allreduce-internal.h"

/* The listener and the connections between servers. Every connection is a
 * Peer on AllReduce.peers; the running operation points at two of them (its
 * left and right neighbours). The others are connections that said nothing
 * yet, HELLOs held for an operation that has not started, and connections
 * flushing a last frame. */

int peer_new(AllReduce *a, PeerState state, Peer **ret) {
        Peer *p;

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->allreduce = a;
        p->state = state;
        p->prev = a->peers_tail;
        if (a->peers_tail)
                a->peers_tail->next = p;
        else
                a->peers = p;
        a->peers_tail = p;
        a->n_peers++;
        *ret = p;
        return 0;
}

void peer_free(Peer *p) {
        AllReduce *a;

        if (!p)
                return;
        a = p->allreduce;
        if (a->op.left == p)
                a->op.left = NULL;
        if (a->op.right == p)
                a->op.right = NULL;
        if (p->prev)
                p->prev->next = p->next;
        else
                a->peers = p->next;
        if (p->next)
                p->next->prev = p->prev;
        else
                a->peers_tail = p->prev;
        a->n_peers--;
        /* conn.c holds its own reference while it calls us, so this is
         * safe from inside the connection's callbacks. */
        conn_free(p->conn);
        free(p);
}

void peer_linger(Peer *p) {
        AllReduce *a = p->allreduce;

        if (a->op.left == p)
                a->op.left = NULL;
        if (a->op.right == p)
                a->op.right = NULL;
        p->state = PEER_LINGER;
        conn_set_idle_timeout(p->conn, ALLREDUCE_LINGER_USEC);
        /* Last: with nothing queued this closes at once, and peer_on_close()
         * frees p. */
        conn_close_after_flush(p->conn);
}

void peer_abort(Peer *p, int error, const char *text) {
        _cleanup_(json_object_putp) json_object *o = NULL;

        if (allreduce_abort_to_json(error, text, &o) >= 0)
                (void) conn_send_json(p->conn, ALLREDUCE_ABORT, o);   /* best effort: it is closed anyway */
        peer_linger(p);
}

/* Frees room for one more connection; false if all are in use. */
static bool peers_evict_one(AllReduce *a) {
        for (Peer *p = a->peers; p; p = p->next) {
                if (p->state == PEER_LEFT || p->state == PEER_RIGHT || p->state == PEER_RIGHT_CONNECTING)
                        continue;
                uint64_t now = now_usec(CLOCK_MONOTONIC);

                /* A flood must not flood the journal too. */
                if (now >= a->evict_logged_usec + ALLREDUCE_EVICT_LOG_INTERVAL_USEC) {
                        log_notice("Too many all-reduce peer connections (%u): dropping the oldest ones, from %s on.",
                                   ALLREDUCE_PEERS_MAX, conn_peer(p->conn));
                        a->evict_logged_usec = now;
                } else
                        log_debug("Too many all-reduce peer connections: dropping the oldest, from %s.",
                                  conn_peer(p->conn));
                peer_free(p);
                return true;
        }
        return false;
}

void peers_start_iteration(AllReduce *a) {
        Operation *op = &a->op;
        Peer *next;

        for (Peer *p = a->peers; p && !op->finished; p = next) {
                next = p->next;
                if (p->state != PEER_PENDING)
                        continue;
                if (p->hello.iteration < op->iteration) {
                        log_debug("Dropping a HELLO from %s for iteration %u: iteration %u has started.",
                                  conn_peer(p->conn), p->hello.iteration, op->iteration);
                        peer_abort(p, -ESTALE, "stale iteration");
                } else if (p->hello.iteration == op->iteration)
                        op_adopt_left(a, p);
        }
}

static void peer_on_hello(AllReduce *a, Peer *p, uint8_t type, const uint8_t *payload, size_t size) {
        Operation *op = &a->op;
        AllReduceHello h;

        if (type != ALLREDUCE_HELLO || allreduce_hello_parse(payload, size, &h) < 0) {
                log_warning("Refusing all-reduce peer %s: its first frame (type %u, %zu bytes) is not a valid HELLO.",
                            conn_peer(p->conn), type, size);
                peer_abort(p, -EBADMSG, "the first frame must be a valid HELLO");
                return;
        }
        p->hello = h;

        if (a->started_once && h.iteration < a->last_iteration) {
                log_warning("Refusing all-reduce peer %s (node %s, rank %u): HELLO for iteration %u, "
                            "this server is at iteration %u.",
                            conn_peer(p->conn), h.node_id, h.rank, h.iteration, a->last_iteration);
                peer_abort(p, -ESTALE, "stale iteration");
                return;
        }
        if (op->running && !op->finished && h.iteration == op->iteration) {
                op_adopt_left(a, p);
                return;
        }

        /* An operation we have not started (yet): hold the HELLO. The peer
         * sends nothing more before our ACCEPT, so this costs no buffer. A
         * newer HELLO from the same sender (it reconnected) replaces older
         * ones. */
        for (Peer *q = a->peers, *next; q; q = next) {
                next = q->next;
                if (q != p && q->state == PEER_PENDING && q->hello.iteration == h.iteration &&
                    q->hello.position == h.position)
                        peer_free(q);
        }
        p->state = PEER_PENDING;
        conn_set_idle_timeout(p->conn, a->timeout_usec);
        log_debug("Holding a HELLO from %s (node %s) for iteration %u until it starts here.",
                  conn_peer(p->conn), h.node_id, h.iteration);
}

int peer_on_frame(Conn *c, uint8_t type, const uint8_t *payload, size_t size, void *userdata) {
        Peer *p = userdata;
        AllReduce *a = p->allreduce;

        switch (p->state) {
        case PEER_WAIT_HELLO:
                peer_on_hello(a, p, type, payload, size);
                break;
        case PEER_PENDING:
                if (type == ALLREDUCE_ABORT) {
                        /* Its operation failed before ours started: not our failure. */
                        log_debug("Held HELLO from %s (node %s) for iteration %u withdrawn.",
                                  conn_peer(c), p->hello.node_id, p->hello.iteration);
                        peer_free(p);
                        break;
                }
                log_warning("Dropping all-reduce peer %s (node %s): it sent a frame of type %u before it was accepted.",
                            conn_peer(c), p->hello.node_id, type);
                peer_abort(p, -EPROTO, "nothing may follow a HELLO before ACCEPT");
                break;
        case PEER_LEFT:
                op_on_left_frame(a, p, type, payload, size);
                break;
        case PEER_RIGHT_CONNECTING:
        case PEER_RIGHT:
                op_on_right_frame(a, p, type, payload, size);
                break;
        case PEER_LINGER:
                break;
        }
        /* Failures were dealt with above (p may be gone): never let conn.c
         * call us back for them. */
        return 0;
}

void peer_on_close(Conn *c, int error, void *userdata) {
        Peer *p = userdata;
        AllReduce *a = p->allreduce;

        switch (p->state) {
        case PEER_WAIT_HELLO:
                if (conn_refused(c) && a->refusals)
                        /* Not a member: no certificate from the CA, no cluster secret, clear text on TLS. */
                        (void) refusals_log(a->refusals, conn_peer_host(c), conn_failure(c), now_usec(CLOCK_MONOTONIC));
                else if (error == -EBADMSG || error == -EMSGSIZE)   /* conn.c refused the framing */
                        log_warning_errno(error, "Dropped a connection to the all-reduce port from %s: "
                                          "not an flcluster peer (%m).", conn_peer(c));
                else
                        log_debug_errno(error, "Connection to the all-reduce port from %s closed before a HELLO: %m",
                                        conn_peer(c));
                peer_free(p);
                break;
        case PEER_PENDING:
                log_debug_errno(error, "Held HELLO from %s (node %s) for iteration %u closed: %m",
                                conn_peer(c), p->hello.node_id, p->hello.iteration);
                peer_free(p);
                break;
        case PEER_LINGER:
                peer_free(p);
                break;
        case PEER_LEFT:
        case PEER_RIGHT_CONNECTING:
        case PEER_RIGHT:
                op_on_peer_closed(a, p, error);
                break;
        }
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        AllReduce *a = userdata;

        for (unsigned i = 0; i < ALLREDUCE_ACCEPTS_PER_WAKEUP; i++) {
                _cleanup_close_ int cfd = -EBADF;
                Peer *p;
                int r;

                cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0) {
                        if (errno == EINTR || errno == ECONNABORTED)
                                continue;
                        if (errno != EAGAIN)
                                log_warning_errno(-errno, "Failed to accept an all-reduce connection, ignoring: %m");
                        return 0;
                }
                if (a->n_peers >= ALLREDUCE_PEERS_MAX && !peers_evict_one(a)) {
                        log_warning("Too many all-reduce peer connections: refusing a new one.");
                        continue;
                }

                r = peer_new(a, PEER_WAIT_HELLO, &p);
                if (r < 0)
                        return log_oom(), 0;
                r = conn_new(&p->conn, a->event, TAKE_FD(cfd), ALLREDUCE_FRAME_MAX,
                             MIN(a->timeout_usec, ALLREDUCE_HELLO_TIMEOUT_USEC), peer_on_frame, peer_on_close, p);
                if (r >= 0)
                        r = cluster_trust_secure(a->trust, p->conn, true, NULL);
                if (r < 0) {
                        peer_free(p);
                        log_warning_errno(r, "Failed to set up an all-reduce connection, ignoring: %m");
                        continue;
                }
                log_debug("All-reduce connection from %s.", conn_peer(p->conn));
        }
        return 0;
}

int allreduce_listen(AllReduce *a, const char *bind_address, uint16_t port) {
        union {
                struct sockaddr sa;
                struct sockaddr_in in;
                struct sockaddr_in6 in6;
                struct sockaddr_storage storage;
        } u = {};
        _cleanup_close_ int fd = -EBADF;
        socklen_t len;
        int one = 1, zero = 0, r;

        if (!bind_address) {
                /* Any address, IPv6 and IPv4 both where the host has IPv6. */
                u.in6 = (struct sockaddr_in6) {
                        .sin6_family = AF_INET6,
                        .sin6_addr = in6addr_any,
                        .sin6_port = htons(port),
                };
                len = sizeof u.in6;
                fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (fd >= 0)
                        (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
                else if (errno == EAFNOSUPPORT) {
                        u.in = (struct sockaddr_in) {
                                .sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_ANY),
                                .sin_port = htons(port),
                        };
                        len = sizeof u.in;
                }
        } else if (inet_pton(AF_INET, bind_address, &u.in.sin_addr) == 1) {
                u.in.sin_family = AF_INET;
                u.in.sin_port = htons(port);
                len = sizeof u.in;
        } else if (inet_pton(AF_INET6, bind_address, &u.in6.sin6_addr) == 1) {
                u.in6.sin6_family = AF_INET6;
                u.in6.sin6_port = htons(port);
                len = sizeof u.in6;
        } else
                return -EINVAL;

        if (fd < 0)
                fd = socket(u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* A restarted server takes its port back while old links linger. */
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, &u.sa, len) < 0)
                return -errno;
        if (listen(fd, SOMAXCONN) < 0)
                return -errno;

        len = sizeof u;
        if (getsockname(fd, &u.sa, &len) < 0)
                return -errno;
        a->port = ntohs(u.sa.sa_family == AF_INET6 ? u.in6.sin6_port : u.in.sin_port);

        r = sd_event_add_io(a->event, &a->listen_source, fd, EPOLLIN, on_accept, a);
        if (r < 0)
                return r;
        a->listen_fd = TAKE_FD(fd);
        return 0;
}
