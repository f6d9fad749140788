/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "json-util.h"
#include "log.h"
#include "server-allreduce-internal.h"
#include "server-metrics.h"

/* The ring's schedule (server-allreduce-proto.h has the frames). With the
 * ring's positions 0..k-1 and the vector split into k segments, step t of
 * 2(k-1) sends segment (self - t) mod k to the right neighbour and receives
 * segment (self - t - 1) mod k from the left one: added during the first
 * k-1 steps (reduce-scatter; after them each server holds the complete sum
 * of one segment), copied during the others (all-gather). What a server
 * sends in step t+1 is what it received in step t, so every chunk is sent
 * on as soon as it has arrived: the steps pipeline chunk by chunk.
 *
 * Receiving never waits: a chunk is applied to the vector the moment it
 * arrives, which is safe because a segment is only overwritten in the
 * all-gather by its final sum, and that sum cannot exist before this
 * server's own partial sum of it has been sent. So no data is ever
 * buffered beyond the frame being read, and the sender is only held back
 * by the receiver's window (ACKs). */

/* conn_peer(): an address and a port. */
#define PEER_NAME_MAX 80

static void op_finish(AllReduce *a, int error);

static const char *peer_name(const Peer *p) {
        return p && p->conn ? conn_peer(p->conn) : "-";
}

_printf_(3, 4)
static void op_fail(AllReduce *a, int error, const char *format, ...) {
        char text[256];
        va_list ap;

        va_start(ap, format);
        vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        log_warning_errno(error, "All-reduce of iteration %u failed: %s", a->op.iteration, text);
        op_finish(a, error);
}

static int op_send_chunk(AllReduce *a, size_t step, uint64_t offset, uint64_t count) {
        Operation *op = &a->op;

        allreduce_data_header_encode(a->frame, op->iteration, (uint32_t) step, offset);
        allreduce_values_store(a->frame + ALLREDUCE_DATA_HEADER_SIZE, op->vec + offset, count);
        return conn_send(op->right->conn, ALLREDUCE_DATA, a->frame,
                         ALLREDUCE_DATA_HEADER_SIZE + count * sizeof(double));
}

/* Sends whatever is ready and fits in the window, lowest step first. */
static int op_pump(AllReduce *a) {
        Operation *op = &a->op;
        int r;

        if (!op->right || op->right->state != PEER_RIGHT)
                return 0;

        for (size_t t = op->send_lo; t < op->n_steps; t++) {
                size_t segment = allreduce_step_send_segment(op->n_ring, op->self, t);
                uint64_t start = allreduce_segment_start(op->n, op->n_ring, segment);
                uint64_t length = allreduce_segment_length(op->n, op->n_ring, segment);
                /* Step t sends what step t-1 received (the same segment). */
                uint64_t ready = t == 0 ? length : op->recv_done[t - 1];

                while (op->sent_done[t] < ready) {
                        uint64_t count = MIN((uint64_t) op->chunk, ready - op->sent_done[t]);

                        /* Whole chunks only, but for the segment's last one. */
                        if (count < op->chunk && op->sent_done[t] + count < length)
                                break;
                        if (op->sent - op->acked + count > op->window)
                                return 0;   /* an ACK pumps again */
                        r = op_send_chunk(a, t, start + op->sent_done[t], count);
                        if (r < 0) {
                                op_fail(a, r, "could not send to the right neighbour %s: %s",
                                        peer_name(op->right), strerror(-r));
                                return r;
                        }
                        op->sent_done[t] += count;
                        op->sent += count;
                }
                if (t == op->send_lo && op->sent_done[t] == length)
                        op->send_lo++;
        }
        return 0;
}

static void op_check_complete(AllReduce *a) {
        Operation *op = &a->op;

        if (!op->running || op->finished)
                return;
        if (op->adopted && op->accepted && op->received == op->recv_total && op->acked == op->send_total)
                op_finish(a, 0);
}

static void op_finish(AllReduce *a, int error) {
        Operation *op = &a->op;

        if (!op->running || op->finished)
                return;
        op->finished = true;
        op->error = error;
        server_metrics_allreduce_done(error, op->sent * sizeof(double), op->received * sizeof(double),
                                      now_usec(CLOCK_MONOTONIC) - op->started_usec);
        op->deadline = sd_event_source_disable_unref(op->deadline);
        op->retry = sd_event_source_disable_unref(op->retry);

        if (error < 0) {
                /* Tell both neighbours why, so that the ring fails now and
                 * with this cause rather than at everybody's deadline. */
                char text[256];

                snprintf(text, sizeof text, "all-reduce of iteration %u failed on node %s: %s",
                         op->iteration, op->ring[op->self].node_id, strerror(-error));
                if (op->left)
                        peer_abort(op->left, error, text);
                if (op->right)
                        peer_abort(op->right, error, text);
        } else {
                /* The right neighbour has acknowledged everything; the left
                 * one still needs our last ACK, so that one is flushed. */
                peer_free(op->right);
                if (op->left)
                        peer_linger(op->left);
        }
        (void) sd_event_source_set_enabled(a->done_source, SD_EVENT_ONESHOT);
}

static void op_reset(AllReduce *a) {
        Operation *op = &a->op;

        op->deadline = sd_event_source_disable_unref(op->deadline);
        op->retry = sd_event_source_disable_unref(op->retry);
        free(op->ring);
        free(op->recv_done);
        free(op->sent_done);
        *op = (Operation) {};
}

static int on_done(sd_event_source *s, void *userdata) {
        AllReduce *a = userdata;
        Operation *op = &a->op;
        allreduce_done_t done = op->done;
        void *done_userdata = op->userdata;
        uint32_t iteration = op->iteration;
        int error = op->error;

        if (!op->running || !op->finished)
                return 0;
        /* Reset first: done() may start the next operation or free us. */
        op_reset(a);
        done(a, error, iteration, done_userdata);
        return 0;
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        AllReduce *a = userdata;
        Operation *op = &a->op;

        op_fail(a, -ETIMEDOUT,
                "no result within %" PRIu64 " ms (left neighbour %s: %s, %" PRIu64 "/%" PRIu64
                " elements received; right neighbour %s: %s, %" PRIu64 "/%" PRIu64 " acknowledged)",
                a->timeout_usec / USEC_PER_MSEC,
                op->ring[op->left_pos].node_id, op->adopted ? "connected" : "never connected",
                op->received, op->recv_total,
                op->ring[op->right_pos].node_id, op->accepted ? "accepted" : "not accepted",
                op->acked, op->send_total);
        return 0;
}

/* ---- the left neighbour: data in, ACKs out ---- */

static void op_on_abort(AllReduce *a, Peer *p, const char *side, const uint8_t *payload, size_t size) {
        char text[160], name[PEER_NAME_MAX];
        int error;

        error = allreduce_abort_parse(payload, size, text, sizeof text);
        snprintf(name, sizeof name, "%s", peer_name(p));
        /* It closes: forget it first, so that op_finish() does not answer. */
        peer_free(p);
        op_fail(a, error, "the %s neighbour %s gave up: %s", side, name, text);
}

void op_adopt_left(AllReduce *a, Peer *p) {
        Operation *op = &a->op;
        const RingMember *m = &op->ring[op->left_pos];
        const AllReduceHello *h = &p->hello;
        _cleanup_(json_object_putp) json_object *o = NULL;
        int r;

        if (h->position != op->left_pos || h->rank != m->rank || !streq(h->node_id, m->node_id)) {
                log_warning("Refusing all-reduce peer %s for iteration %u: it is position %" PRIu32
                            " (rank %" PRIu32 ", node %s), the left neighbour is position %zu (rank %" PRIu32 ", node %s).",
                            peer_name(p), op->iteration, h->position, h->rank, h->node_id,
                            op->left_pos, m->rank, m->node_id);
                peer_abort(p, -ECONNREFUSED, "not this server's left neighbour in this ring");
                return;
        }
        if (op->adopted) {
                log_warning("Refusing a second connection from the left neighbour %s (node %s) for iteration %u.",
                            peer_name(p), h->node_id, op->iteration);
                peer_abort(p, -EALREADY, "already connected for this iteration");
                return;
        }
        if (h->n_ring != op->n_ring || h->n != op->n) {
                /* The right peer with another view of the ring or of the
                 * model: waiting cannot help. */
                op_fail(a, -EBADMSG, "the left neighbour %s (node %s) has a ring of %" PRIu32 " and a vector of %"
                        PRIu64 " elements, this server %zu and %zu",
                        peer_name(p), h->node_id, h->n_ring, h->n, op->n_ring, op->n);
                peer_abort(p, -EBADMSG, "the ring's length or the vector's length differs");   /* frees p and h */
                return;
        }

        p->state = PEER_LEFT;
        op->left = p;
        op->adopted = true;
        /* The operation's deadline governs from now on. */
        conn_set_idle_timeout(p->conn, a->timeout_usec + USEC_PER_SEC);

        r = allreduce_accept_to_json(op->iteration, ALLREDUCE_WINDOW_ELEMENTS, &o);
        if (r >= 0)
                r = conn_send_json(p->conn, ALLREDUCE_ACCEPT, o);
        if (r < 0) {
                op_fail(a, r, "could not accept the left neighbour %s: %s", peer_name(p), strerror(-r));
                return;
        }
        log_debug("All-reduce of iteration %u: left neighbour %s (node %s) accepted.",
                  op->iteration, peer_name(p), h->node_id);
        op_check_complete(a);
}

void op_on_left_frame(AllReduce *a, Peer *p, uint8_t type, const uint8_t *payload, size_t size) {
        Operation *op = &a->op;
        uint64_t start, length, done;
        AllReduceData d;
        size_t segment;
        int r;

        if (type == ALLREDUCE_ABORT) {
                op_on_abort(a, p, "left", payload, size);
                return;
        }
        if (type != ALLREDUCE_DATA || allreduce_data_parse(payload, size, &d) < 0) {
                op_fail(a, -EBADMSG, "the left neighbour %s sent a frame of type %u and %zu bytes, expected data",
                        peer_name(p), type, size);
                return;
        }
        if (d.iteration != op->iteration || d.step >= op->n_steps) {
                op_fail(a, -EBADMSG, "the left neighbour %s sent data for iteration %" PRIu32 " step %" PRIu32
                        ", expected iteration %u and a step below %zu",
                        peer_name(p), d.iteration, d.step, op->iteration, op->n_steps);
                return;
        }

        segment = allreduce_step_recv_segment(op->n_ring, op->self, d.step);
        start = allreduce_segment_start(op->n, op->n_ring, segment);
        length = allreduce_segment_length(op->n, op->n_ring, segment);
        done = op->recv_done[d.step];
        /* In order, no gap, no overlap, inside the step's segment: so each
         * element is applied exactly once. */
        if (d.offset != start + done || d.count > length - done) {
                op_fail(a, -EBADMSG, "the left neighbour %s sent elements [%" PRIu64 ", +%zu) in step %" PRIu32
                        ", expected the next ones from %" PRIu64 " up to %" PRIu64,
                        peer_name(p), d.offset, d.count, d.step, start + done, start + length);
                return;
        }
        if (op->received - op->acked_to_left + d.count > ALLREDUCE_WINDOW_ELEMENTS) {
                op_fail(a, -EBADMSG, "the left neighbour %s overran the window", peer_name(p));
                return;
        }

        if (d.step + 1 < op->n_ring)
                allreduce_values_add(op->vec + d.offset, d.values, d.count);
        else
                allreduce_values_copy(op->vec + d.offset, d.values, d.count);
        op->recv_done[d.step] += d.count;
        op->received += d.count;

        /* Acknowledge in batches, and at once at the end: the left
         * neighbour's completion waits for it. */
        if ((op->received - op->acked_to_left) * 4 >= ALLREDUCE_WINDOW_ELEMENTS || op->received == op->recv_total) {
                uint8_t ack[ALLREDUCE_ACK_SIZE];

                allreduce_ack_encode(ack, op->iteration, op->received);
                r = conn_send(p->conn, ALLREDUCE_ACK, ack, sizeof ack);
                if (r < 0) {
                        op_fail(a, r, "could not acknowledge to the left neighbour %s: %s",
                                peer_name(p), strerror(-r));
                        return;
                }
                op->acked_to_left = op->received;
        }

        if (op_pump(a) < 0)
                return;
        op_check_complete(a);
}

/* ---- the right neighbour: HELLO and data out, ACCEPT and ACKs in ---- */

void op_on_right_frame(AllReduce *a, Peer *p, uint8_t type, const uint8_t *payload, size_t size) {
        Operation *op = &a->op;
        uint32_t iteration;
        uint64_t value;

        if (type == ALLREDUCE_ABORT) {
                op_on_abort(a, p, "right", payload, size);
                return;
        }

        if (p->state == PEER_RIGHT_CONNECTING) {
                if (type != ALLREDUCE_ACCEPT || allreduce_accept_parse(payload, size, &iteration, &value) < 0 ||
                    iteration != op->iteration || value == 0 || value > UINT32_MAX) {
                        op_fail(a, -EBADMSG, "the right neighbour %s answered the HELLO with a frame of type %u "
                                "and %zu bytes, not a valid ACCEPT", peer_name(p), type, size);
                        return;
                }
                p->state = PEER_RIGHT;
                op->accepted = true;
                op->window = value;
                /* Half the window per chunk at most, so that an ACK is due
                 * whenever the window is full. */
                op->chunk = MIN(ALLREDUCE_CHUNK_ELEMENTS, MAX(value / 2, 1));
                log_debug("All-reduce of iteration %u: right neighbour %s accepted (window %" PRIu64 ").",
                          op->iteration, peer_name(p), value);
        } else {
                if (type != ALLREDUCE_ACK || allreduce_ack_parse(payload, size, &iteration, &value) < 0 ||
                    iteration != op->iteration || value < op->acked || value > op->sent) {
                        op_fail(a, -EBADMSG, "the right neighbour %s sent a frame of type %u and %zu bytes, "
                                "not a valid ACK", peer_name(p), type, size);
                        return;
                }
                op->acked = value;
        }

        if (op_pump(a) < 0)
                return;
        op_check_complete(a);
}

static int op_connect_right(AllReduce *a);

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        AllReduce *a = userdata;
        int r;

        r = op_connect_right(a);
        if (r < 0)
                op_schedule_retry(a, r);
        return 0;
}

void op_schedule_retry(AllReduce *a, int error) {
        Operation *op = &a->op;
        int r;

        if (!op->running || op->finished)
                return;
        /* Back-off doubling up to a bound; the deadline ends the retries. */
        op->retry_usec = op->retry_usec == 0 ? ALLREDUCE_RETRY_FIRST_USEC
                                             : MIN(op->retry_usec * 2, ALLREDUCE_RETRY_MAX_USEC);
        op->attempts++;
        log_debug_errno(error, "All-reduce of iteration %u: right neighbour %s:%u not reached (%m), attempt %u, "
                        "retrying in %" PRIu64 " ms.", op->iteration, op->ring[op->right_pos].address,
                        op->ring[op->right_pos].peer_port, op->attempts, op->retry_usec / USEC_PER_MSEC);

        if (op->retry) {
                r = sd_event_source_set_time_relative(op->retry, op->retry_usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(op->retry, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(a->event, &op->retry, CLOCK_MONOTONIC, op->retry_usec,
                                               ALLREDUCE_TIMER_ACCURACY_USEC, on_retry, a);
        if (r < 0)
                op_fail(a, r, "could not arm the reconnect timer: %s", strerror(-r));
}

static int op_connect_right(AllReduce *a) {
        Operation *op = &a->op;
        const RingMember *m = &op->ring[op->right_pos];
        const RingMember *me = &op->ring[op->self];
        _cleanup_(json_object_putp) json_object *o = NULL;
        AllReduceHello h = {
                .iteration = op->iteration,
                .position = (uint32_t) op->self,
                .rank = me->rank,
                .n_ring = (uint32_t) op->n_ring,
                .n = op->n,
        };
        Peer *p;
        int r;

        strcpy(h.node_id, me->node_id);   /* validated by allreduce_start() */
        r = allreduce_hello_to_json(&h, &o);
        if (r < 0)
                return r;
        r = peer_new(a, PEER_RIGHT_CONNECTING, &p);
        if (r < 0)
                return r;
        /* The deadline ends the operation; the connection's own timeout
         * only backs it up. */
        r = conn_connect(&p->conn, a->event, m->address, m->peer_port, ALLREDUCE_FRAME_MAX,
                         a->timeout_usec + USEC_PER_SEC, peer_on_frame, peer_on_close, p);
        if (r >= 0)
                r = cluster_trust_secure(a->trust, p->conn, false, m->address);
        if (r >= 0)
                r = conn_send_json(p->conn, ALLREDUCE_HELLO, o);
        if (r < 0) {
                peer_free(p);
                return r;
        }
        op->right = p;
        return 0;
}

/* Retrying cannot mend a certificate or a secret: the operation fails now, saying why. */
static bool error_is_trust(int error) {
        return IN_SET(error, -EKEYREJECTED, -EKEYEXPIRED, -EKEYREVOKED, -EACCES, -EPROTONOSUPPORT);
}

void op_on_peer_closed(AllReduce *a, Peer *p, int error) {
        Operation *op = &a->op;
        char name[PEER_NAME_MAX], failure[256] = "";
        PeerState state = p->state;

        snprintf(name, sizeof name, "%s", peer_name(p));
        if (p->conn && conn_failure(p->conn))
                snprintf(failure, sizeof failure, "%s", conn_failure(p->conn));
        peer_free(p);
        error = error ?: -ECONNRESET;

        switch (state) {
        case PEER_RIGHT_CONNECTING:
                if (error_is_trust(error) && failure[0]) {
                        op_fail(a, error, "the right neighbour %s could not be joined: %s", name, failure);
                        break;
                }
                /* Not listening yet, or restarted: try again. */
                op_schedule_retry(a, error);
                break;
        case PEER_RIGHT:
                if (op->acked < op->send_total)
                        op_fail(a, error, "the right neighbour %s closed the connection after %" PRIu64 " of %" PRIu64
                                " elements: %s", name, op->acked, op->send_total, strerror(-error));
                break;
        case PEER_LEFT:
                /* Once it has all our ACKs the left neighbour may be done
                 * before us: that close is its orderly end. */
                if (op->received < op->recv_total)
                        op_fail(a, error, "the left neighbour %s closed the connection after %" PRIu64 " of %" PRIu64
                                " elements: %s", name, op->received, op->recv_total, strerror(-error));
                break;
        default:
                break;
        }
}

/* ---- the API ---- */

int allreduce_new(AllReduce **ret, sd_event *e, const char *bind_address, uint16_t port, uint64_t timeout_usec) {
        _cleanup_(allreduce_freep) AllReduce *a = NULL;
        int r;

        if (!ret || !e)
                return -EINVAL;

        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->event = sd_event_ref(e);
        a->listen_fd = -EBADF;
        a->timeout_usec = timeout_usec ?: ALLREDUCE_TIMEOUT_DEFAULT_USEC;

        r = allreduce_listen(a, bind_address, port);
        if (r < 0)
                return r;
        r = sd_event_add_defer(e, &a->done_source, on_done, a);
        if (r < 0)
                return r;
        r = sd_event_source_set_enabled(a->done_source, SD_EVENT_OFF);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(a);
        return 0;
}

AllReduce *allreduce_free(AllReduce *a) {
        if (!a)
                return NULL;
        allreduce_cancel(a);
        while (a->peers)
                peer_free(a->peers);
        a->listen_source = sd_event_source_disable_unref(a->listen_source);
        a->done_source = sd_event_source_disable_unref(a->done_source);
        safe_close(a->listen_fd);
        refusals_free(a->refusals);
        free(a->frame);
        sd_event_unref(a->event);
        free(a);
        return NULL;
}

uint16_t allreduce_port(const AllReduce *a) {
        return a->port;
}

int allreduce_set_trust(AllReduce *a, ClusterTrust *trust) {
        if (!a->refusals) {
                int r = refusals_new(&a->refusals, "the peer port");
                if (r < 0)
                        return r;
        }
        a->trust = trust;
        return 0;
}

static bool address_is_numeric(const char *s) {
        union {
                struct in_addr in;
                struct in6_addr in6;
        } buf;

        return inet_pton(AF_INET, s, &buf) == 1 || inet_pton(AF_INET6, s, &buf) == 1;
}

static int ring_validate(const RingMember *ring, size_t n_ring, size_t self) {
        const RingMember *right = &ring[(self + 1) % n_ring];

        /* Node ids go into HELLOs and logs; only the right neighbour is dialled. */
        for (size_t i = 0; i < n_ring; i++)
                if (!memchr(ring[i].node_id, 0, sizeof ring[i].node_id) || !node_id_is_valid(ring[i].node_id) ||
                    !memchr(ring[i].address, 0, sizeof ring[i].address))
                        return -EINVAL;
        if (n_ring > 1 && (!address_is_numeric(right->address) || right->peer_port == 0))
                return -EINVAL;
        return 0;
}

int allreduce_start(AllReduce *a, uint32_t iteration, const RingMember *ring, size_t n_ring, size_t self,
                    double *vec, size_t n, allreduce_done_t done, void *userdata) {
        Operation *op;
        int r;

        if (!a || !ring || n_ring == 0 || self >= n_ring || (!vec && n > 0) || !done)
                return -EINVAL;
        if (n_ring > ALLREDUCE_RING_MAX || n > SIZE_MAX / sizeof(double))
                return -E2BIG;
        op = &a->op;
        if (op->running)
                return -EBUSY;
        r = ring_validate(ring, n_ring, self);
        if (r < 0)
                return r;
        if (n_ring > 1 && !a->frame) {
                a->frame = malloc(ALLREDUCE_DATA_HEADER_SIZE + ALLREDUCE_CHUNK_ELEMENTS * sizeof(double));
                if (!a->frame)
                        return -ENOMEM;
        }

        *op = (Operation) {
                .iteration = iteration,
                .n_ring = n_ring,
                .self = self,
                .left_pos = (self + n_ring - 1) % n_ring,
                .right_pos = (self + 1) % n_ring,
                .vec = vec,
                .n = n,
                .done = done,
                .userdata = userdata,
                .n_steps = 2 * (n_ring - 1),
                .started_usec = now_usec(CLOCK_MONOTONIC),
        };
        op->ring = calloc(n_ring, sizeof *ring);
        if (op->ring)
                memcpy(op->ring, ring, n_ring * sizeof *ring);
        op->recv_done = calloc(MAX(op->n_steps, 1), sizeof(uint64_t));
        op->sent_done = calloc(MAX(op->n_steps, 1), sizeof(uint64_t));
        if (!op->ring || !op->recv_done || !op->sent_done) {
                op_reset(a);
                return -ENOMEM;
        }
        for (size_t t = 0; t < op->n_steps; t++) {
                op->recv_total += allreduce_segment_length(n, n_ring, allreduce_step_recv_segment(n_ring, self, t));
                op->send_total += allreduce_segment_length(n, n_ring, allreduce_step_send_segment(n_ring, self, t));
        }
        op->running = true;
        a->started_once = true;
        a->last_iteration = iteration;

        if (n_ring == 1) {
                /* Nothing to exchange; done() still comes from the loop. */
                op_finish(a, 0);
                return 0;
        }

        r = sd_event_add_time_relative(a->event, &op->deadline, CLOCK_MONOTONIC, a->timeout_usec,
                                       ALLREDUCE_TIMER_ACCURACY_USEC, on_deadline, a);
        if (r < 0) {
                op_reset(a);
                return r;
        }

        /* The left neighbour may have said HELLO already. */
        peers_start_iteration(a);
        if (op->finished)
                return 0;

        r = op_connect_right(a);
        if (r < 0)
                op_schedule_retry(a, r);
        log_debug("All-reduce of iteration %u started: position %zu of %zu, %zu elements.", iteration, self, n_ring, n);
        return 0;
}

void allreduce_cancel(AllReduce *a) {
        Operation *op;

        if (!a || !a->op.running)
                return;
        op = &a->op;
        if (!op->finished) {
                char text[64];

                snprintf(text, sizeof text, "all-reduce of iteration %u cancelled", op->iteration);
                if (op->left)
                        peer_abort(op->left, -ECANCELED, text);
                if (op->right)
                        peer_abort(op->right, -ECANCELED, text);
        }
        (void) sd_event_source_set_enabled(a->done_source, SD_EVENT_OFF);
        op_reset(a);
}
