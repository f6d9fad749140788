/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "conn-tls.h"
#include "conn.h"
#include "json-util.h"
#include "log.h"
#include "util.h"
#include "wire-protocol.h"

#define CONN_READ_CHUNK (64U * 1024U)
#define CONN_READS_PER_WAKEUP 16

/* The cluster secret's exchange (cluster-secret.h): our nonce goes out as
 * soon as the transport is up, our proof once the peer's nonce is in; the
 * peer is proven by its proof, and only then do the owner's frames flow. */
typedef struct ConnProof {
        ClusterSecret *secret;
        bool accepting;
        bool have_peer_nonce;
        uint8_t own_nonce[CLUSTER_NONCE_SIZE], peer_nonce[CLUSTER_NONCE_SIZE];
} ConnProof;

struct Conn {
        unsigned n_ref;
        sd_event *event;
        sd_event_source *io;
        sd_event_source *idle_timer;
        sd_event_source *pending_source;        /* TLS holds decrypted bytes: read on */
        int fd;
        bool connecting;        /* TCP connect() in progress */
        bool handshaking;       /* the TLS handshake runs */
        bool handshake_wants_write;
        bool ready;             /* transport up and the peer proven: the owner's frames flow */
        bool closing_after_flush;
        bool closed;
        bool used;              /* a frame went either way: too late for TLS or the secret */

        ConnTls *tls;           /* NULL: clear TCP */
        ConnProof *proof;       /* NULL: no cluster secret, or proven */
        char failure[256];
        bool refused;

        WireReader reader;
        uint8_t *wbuf;          /* what goes out as soon as it can */
        size_t wlen, wcap;
        uint8_t *held;          /* the owner's frames until ready */
        size_t hlen, hcap;

        uint64_t idle_usec;
        char peer[INET6_ADDRSTRLEN + 8];
        char host[INET6_ADDRSTRLEN];

        conn_frame_handler_t on_frame;
        conn_close_handler_t on_close;
        void *userdata;
};

static ConnProof *proof_free(ConnProof *p) {
        if (p) {
                cluster_secret_free(p->secret);
                explicit_bzero(p, sizeof *p);
                free(p);
        }
        return NULL;
}

static void conn_unref(Conn *c) {
        if (!c || --c->n_ref > 0)
                return;
        wire_reader_done(&c->reader);
        free(c->wbuf);
        free(c->held);
        free(c);
}

static void conn_release(Conn *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->idle_timer = sd_event_source_disable_unref(c->idle_timer);
        c->pending_source = sd_event_source_disable_unref(c->pending_source);
        c->tls = conn_tls_free(c->tls);
        c->proof = proof_free(c->proof);
        c->fd = safe_close(c->fd);
        c->closed = true;
}

Conn *conn_free(Conn *c) {
        if (!c)
                return NULL;
        conn_release(c);
        c->on_close = NULL;
        conn_unref(c);
        return NULL;
}

static void conn_fail(Conn *c, int error) {
        conn_close_handler_t cb = c->on_close;

        if (c->closed)
                return;
        /* The reason stays readable (conn_failure()) during the callback. */
        if (!c->failure[0] && conn_tls_reason(c->tls)) {
                snprintf(c->failure, sizeof c->failure, "%s", conn_tls_reason(c->tls));
                c->refused = conn_tls_refused(c->tls);
        }
        conn_release(c);
        c->on_close = NULL;
        if (cb)
                cb(c, error, c->userdata);
}

void conn_close(Conn *c) {
        if (!c || c->closed)
                return;
        c->on_close = NULL;
        conn_release(c);
}

static bool conn_transport_up(const Conn *c) {
        return !c->connecting && !c->handshaking;
}

static int conn_update_events(Conn *c) {
        uint32_t events = EPOLLIN;

        if (c->connecting || (c->handshaking && c->handshake_wants_write) || (conn_transport_up(c) && c->wlen > 0))
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io, events);
}

static int conn_arm_idle(Conn *c) {
        uint64_t usec = c->idle_usec;

        /* A peer that has not proven itself gets a short bound, whatever the owner's. */
        if (!c->ready && (c->tls || c->proof) && (usec == 0 || usec > CONN_HANDSHAKE_TIMEOUT_USEC))
                usec = CONN_HANDSHAKE_TIMEOUT_USEC;
        if (usec == 0)
                return sd_event_source_set_enabled(c->idle_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_time_relative(c->idle_timer, usec);
        return sd_event_source_set_enabled(c->idle_timer, SD_EVENT_ONESHOT);
}

static int buffer_append(uint8_t **buf, size_t *len, size_t *cap, const uint8_t *header, const void *payload,
                         size_t size) {
        size_t need = *len + WIRE_HEADER_SIZE + size;

        if (need > *cap) {
                size_t n = MAX(need, *cap * 2);
                uint8_t *p = realloc(*buf, n);

                if (!p)
                        return -ENOMEM;
                *buf = p;
                *cap = n;
        }
        memcpy(*buf + *len, header, WIRE_HEADER_SIZE);
        if (size > 0)
                memcpy(*buf + *len + WIRE_HEADER_SIZE, payload, size);
        *len = need;
        return 0;
}

/* control: the exchange's own frames, which go out before the owner's. */
static int conn_queue(Conn *c, bool control, uint8_t type, const void *payload, size_t size) {
        uint8_t header[WIRE_HEADER_SIZE];

        if (size > UINT32_MAX)
                return -EMSGSIZE;
        if (c->wlen + c->hlen + WIRE_HEADER_SIZE + size > CONN_WRITE_QUEUE_MAX)
                return -ENOBUFS;
        wire_header_encode(header, type, (uint32_t) size);
        if (control || c->ready)
                return buffer_append(&c->wbuf, &c->wlen, &c->wcap, header, payload, size);
        return buffer_append(&c->held, &c->hlen, &c->hcap, header, payload, size);
}

static ssize_t conn_send_some(Conn *c, const uint8_t *p, size_t n) {
        ssize_t k;

        if (c->tls)
                return conn_tls_send(c->tls, p, n);
        k = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        return k < 0 ? -errno : k;
}

static int conn_flush(Conn *c) {
        size_t done = 0;

        while (done < c->wlen) {
                ssize_t k = conn_send_some(c, c->wbuf + done, c->wlen - done);

                if (k == -EINTR)
                        continue;
                if (k == -EAGAIN)
                        break;
                if (k < 0)
                        return (int) k;
                done += (size_t) k;
        }
        if (done > 0) {
                memmove(c->wbuf, c->wbuf + done, c->wlen - done);
                c->wlen -= done;
        }
        return conn_update_events(c);
}

/* The peer is proven (or nothing is asked of it): the held frames go out. */
static int conn_make_ready(Conn *c) {
        c->ready = true;
        if (c->hlen > 0) {
                if (c->wlen == 0) {
                        free(c->wbuf);
                        c->wbuf = TAKE_PTR(c->held);
                        c->wlen = c->hlen;
                        c->wcap = c->hcap;
                } else {
                        uint8_t *p = realloc(c->wbuf, c->wlen + c->hlen);

                        if (!p)
                                return -ENOMEM;
                        memcpy(p + c->wlen, c->held, c->hlen);
                        c->wbuf = p;
                        c->wlen += c->hlen;
                        c->wcap = c->wlen;
                        c->held = mfree(c->held);
                }
                c->hlen = c->hcap = 0;
        }
        (void) conn_arm_idle(c);
        return conn_update_events(c);
}

_printf_(4, 5)
static int conn_refuse(Conn *c, int error, const char *tell_peer, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(c->failure, sizeof c->failure, format, ap);
        va_end(ap);
        c->refused = true;
        /* An accepting end says why in a WIRE_ERROR, best effort, before it closes. */
        if (tell_peer && conn_transport_up(c)) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();
                const char *s;
                size_t n;

                if (o && json_object_object_add(o, "error", json_object_new_string(tell_peer)) >= 0 &&
                    (s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n)) &&
                    conn_queue(c, true, WIRE_ERROR, s, n) >= 0)
                        (void) conn_flush(c);
        }
        return error;
}

static int conn_proof_frame(Conn *c, uint8_t type, const uint8_t *payload, size_t size) {
        ConnProof *p = c->proof;
        const uint8_t *cn, *sn;
        uint8_t proof[CLUSTER_PROOF_SIZE];
        int r;

        if (type == WIRE_SECRET_NONCE) {
                if (p->have_peer_nonce || size != CLUSTER_NONCE_SIZE)
                        return conn_refuse(c, -EPROTO, NULL, "%s a malformed or second nonce in the cluster secret's "
                                           "exchange", p->accepting ? "it sent" : "the peer sent");
                memcpy(p->peer_nonce, payload, CLUSTER_NONCE_SIZE);
                p->have_peer_nonce = true;
                cn = p->accepting ? p->peer_nonce : p->own_nonce;
                sn = p->accepting ? p->own_nonce : p->peer_nonce;
                r = cluster_secret_proof(p->secret, p->accepting ? 'S' : 'C', cn, sn, proof);
                if (r >= 0)
                        r = conn_queue(c, true, WIRE_SECRET_PROOF, proof, sizeof proof);
                explicit_bzero(proof, sizeof proof);
                /* Out now: should the peer's proof turn out wrong, ours still tells it so. */
                return r < 0 ? r : conn_flush(c);
        }

        if (!p->have_peer_nonce)
                return conn_refuse(c, -EPROTO, NULL, "%s its proof of the cluster secret before its nonce",
                                   p->accepting ? "it sent" : "the peer sent");
        cn = p->accepting ? p->peer_nonce : p->own_nonce;
        sn = p->accepting ? p->own_nonce : p->peer_nonce;
        if (!cluster_secret_check(p->secret, p->accepting ? 'C' : 'S', cn, sn, payload, size)) {
                if (p->accepting)
                        return conn_refuse(c, -EACCES, "The proof of the cluster secret is wrong.",
                                           "its proof of the cluster secret is wrong (another cluster_secret_file)");
                return conn_refuse(c, -EACCES, NULL, "%s proved another cluster secret than this node's "
                                   "cluster_secret_file", c->peer);
        }
        c->proof = proof_free(c->proof);
        log_debug("%s proved the cluster secret.", c->peer);
        return conn_make_ready(c);
}

static int conn_dispatch(Conn *c, uint8_t type, const uint8_t *payload, size_t size) {
        c->used = true;
        if (type == WIRE_SECRET_NONCE || type == WIRE_SECRET_PROOF) {
                if (!c->proof)
                        return conn_refuse(c, -EACCES, NULL, "%s asks for the cluster secret, and this node has no "
                                           "cluster_secret_file", c->peer);
                return conn_proof_frame(c, type, payload, size);
        }
        if (c->ready)
                return c->on_frame(c, type, payload, size, c->userdata);

        /* Still proving the secret: only its frames, or the peer's refusal. */
        if (!c->proof)
                return -EPROTO;
        if (type == WIRE_ERROR && !c->proof->accepting) {
                _cleanup_(json_object_putp) json_object *o = NULL;
                const char *error = NULL;
                char text[160];
                size_t n;

                if (json_parse_object((const char *) payload, size, &o) >= 0)
                        (void) json_get_string(o, "error", &error);
                /* The peer's words go into our journal: no control characters. */
                n = (size_t) snprintf(text, sizeof text, "%s", error ?: "no reason given");
                for (size_t i = 0; i < MIN(n, sizeof text - 1); i++)
                        if ((unsigned char) text[i] < ' ' || text[i] == 0x7f)
                                text[i] = ' ';
                return conn_refuse(c, -EACCES, NULL, "%s refused this node: %s", c->peer, text);
        }
        return conn_refuse(c, -EACCES, "This cluster requires the cluster secret (cluster_secret_file).",
                           "it sent a frame (type %u) without proving the cluster secret (is cluster_secret_file "
                           "set on it?)", type);
}

static ssize_t conn_recv_some(Conn *c, uint8_t *buf, size_t n) {
        ssize_t k;

        if (c->tls)
                return conn_tls_recv(c->tls, buf, n);
        k = recv(c->fd, buf, n, MSG_DONTWAIT);
        return k < 0 ? -errno : k;
}

static int conn_read(Conn *c) {
        uint8_t buf[CONN_READ_CHUNK];

        for (unsigned n = 0; n < CONN_READS_PER_WAKEUP && !c->closed; n++) {
                ssize_t k = conn_recv_some(c, buf, sizeof buf);
                size_t off = 0;

                if (k == -EINTR)
                        continue;
                if (k == -EAGAIN)
                        return 0;
                if (k < 0)
                        return (int) k;
                if (k == 0)
                        return wire_reader_in_frame(&c->reader) ? -EPIPE : -ECONNRESET;

                while (off < (size_t) k && !c->closed) {
                        size_t used;
                        bool done;
                        int r;

                        r = wire_reader_feed(&c->reader, buf + off, (size_t) k - off, &used, &done);
                        if (r < 0)
                                return r;
                        off += used;
                        if (!done)
                                continue;

                        (void) conn_arm_idle(c);
                        r = conn_dispatch(c, c->reader.current.type, c->reader.payload, c->reader.current.length);
                        if (r < 0)
                                return r;
                }
        }
        /* Bytes GnuTLS has already taken off the socket wake nobody up: come back for them. */
        if (c->tls && !c->closed && conn_tls_pending(c->tls))
                (void) sd_event_source_set_enabled(c->pending_source, SD_EVENT_ONESHOT);
        return 0;
}

/* TCP is up (the TLS handshake too): prove the secret, or be ready. */
static int conn_transport_ready(Conn *c) {
        int r;

        if (c->tls) {
                char desc[128];

                log_debug("TLS with %s: %s.", c->peer, conn_tls_describe(c->tls, desc, sizeof desc));
        }
        if (!c->proof)
                return conn_make_ready(c);
        r = conn_queue(c, true, WIRE_SECRET_NONCE, c->proof->own_nonce, CLUSTER_NONCE_SIZE);
        if (r < 0)
                return r;
        return conn_update_events(c);
}

static int conn_handshake_step(Conn *c) {
        int r;

        r = conn_tls_handshake(c->tls, &c->handshake_wants_write);
        if (r < 0)
                return r;
        if (r == 0)
                return conn_update_events(c);
        c->handshaking = false;
        return conn_transport_ready(c);
}

static int conn_io_handler(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Conn *c = userdata;
        bool ended = false;
        int r = 0;

        c->n_ref++;

        if (c->connecting) {
                int error = 0;
                socklen_t len = sizeof error;

                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
                        error = errno;
                if (error != 0) {
                        r = -error;
                        goto finish;
                }
                if (!(revents & (EPOLLOUT | EPOLLIN)))
                        goto finish;
                c->connecting = false;
                (void) conn_arm_idle(c);
                if (c->tls)
                        c->handshaking = true;
                else {
                        r = conn_transport_ready(c);
                        if (r < 0)
                                goto finish;
                }
        }

        if (c->handshaking) {
                r = conn_handshake_step(c);
                if (r < 0 || c->handshaking)
                        goto finish;
                revents |= EPOLLIN;     /* the last flight may have brought records along */
        }

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                r = conn_read(c);
                if (r < 0 || c->closed)
                        goto finish;
        }

        if (!c->closed && conn_transport_up(c)) {
                r = conn_flush(c);
                if (r >= 0 && c->closing_after_flush && c->wlen == 0 && c->hlen == 0) {
                        if (c->tls)
                                conn_tls_bye(c->tls);
                        r = -ECONNRESET;
                }
        }

finish:
        if (r == -ECONNRESET && (c->closing_after_flush || !wire_reader_in_frame(&c->reader))) {
                r = 0;   /* an orderly end: still an end (else EOF keeps the fd readable forever) */
                ended = true;
        }
        if ((r < 0 || ended || (c->closing_after_flush && c->wlen == 0 && c->hlen == 0)) && !c->closed)
                conn_fail(c, r);
        conn_unref(c);
        return 0;
}

static int conn_pending_handler(sd_event_source *s, void *userdata) {
        Conn *c = userdata;

        return conn_io_handler(c->io, c->fd, EPOLLIN, c);
}

static int conn_idle_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Conn *c = userdata;

        c->n_ref++;
        if (!c->ready && (c->tls || c->proof) && !c->failure[0]) {
                snprintf(c->failure, sizeof c->failure, "%s within %" PRIu64 "s",
                         c->connecting ? "the connection was not made" :
                         c->handshaking ? "the TLS handshake did not complete" :
                         "the cluster secret was not proven", CONN_HANDSHAKE_TIMEOUT_USEC / USEC_PER_SEC);
                c->refused = !c->connecting;
        }
        conn_fail(c, -ETIMEDOUT);
        conn_unref(c);
        return 0;
}

static void conn_describe_peer(Conn *c) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        uint16_t port = 0;

        snprintf(c->host, sizeof c->host, "?");
        if (getpeername(c->fd, (struct sockaddr *) &sa, &len) < 0)
                return;
        if (sa.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) &sa;
                inet_ntop(AF_INET, &in->sin_addr, c->host, sizeof c->host);
                port = ntohs(in->sin_port);
        } else if (sa.ss_family == AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;

                /* A dual-stack listener sees IPv4 peers as ::ffff:a.b.c.d: name them as IPv4. */
                if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
                        inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], c->host, sizeof c->host);
                else
                        inet_ntop(AF_INET6, &in6->sin6_addr, c->host, sizeof c->host);
                port = ntohs(in6->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%u", c->host, port);
}

int conn_new(Conn **ret, sd_event *e, int fd, size_t max_frame, uint64_t idle_usec,
             conn_frame_handler_t on_frame, conn_close_handler_t on_close, void *userdata) {
        _cleanup_(conn_freep) Conn *c = NULL;
        int one = 1, r;

        c = calloc(1, sizeof *c);
        if (!c) {
                safe_close(fd);
                return -ENOMEM;
        }
        c->n_ref = 1;
        c->fd = fd;
        c->event = e;
        c->ready = true;
        c->idle_usec = idle_usec;
        c->on_frame = on_frame;
        c->on_close = on_close;
        c->userdata = userdata;
        strcpy(c->peer, "?");
        wire_reader_init(&c->reader, max_frame);
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_describe_peer(c);

        r = sd_event_add_io(e, &c->io, fd, EPOLLIN, conn_io_handler, c);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(e, &c->idle_timer, CLOCK_MONOTONIC, idle_usec ?: USEC_PER_SEC,
                                       0, conn_idle_handler, c);
        if (r < 0)
                return r;
        r = sd_event_add_defer(e, &c->pending_source, conn_pending_handler, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->pending_source, SD_EVENT_OFF);
        if (r < 0)
                return r;
        r = conn_arm_idle(c);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

int conn_connect(Conn **ret, sd_event *e, const char *host, uint16_t port, size_t max_frame,
                 uint64_t idle_usec, conn_frame_handler_t on_frame, conn_close_handler_t on_close,
                 void *userdata) {
        _cleanup_close_ int fd = -EBADF;
        struct sockaddr_storage sa = {};
        socklen_t salen;
        Conn *c;
        int r;

        if (inet_pton(AF_INET, host, &((struct sockaddr_in *) &sa)->sin_addr) == 1) {
                ((struct sockaddr_in *) &sa)->sin_family = AF_INET;
                ((struct sockaddr_in *) &sa)->sin_port = htons(port);
                salen = sizeof(struct sockaddr_in);
        } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *) &sa)->sin6_addr) == 1) {
                ((struct sockaddr_in6 *) &sa)->sin6_family = AF_INET6;
                ((struct sockaddr_in6 *) &sa)->sin6_port = htons(port);
                salen = sizeof(struct sockaddr_in6);
        } else
                return -EINVAL;

        fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, salen) < 0 && errno != EINPROGRESS)
                return -errno;

        r = conn_new(&c, e, TAKE_FD(fd), max_frame, idle_usec, on_frame, on_close, userdata);
        if (r < 0)
                return r;
        c->connecting = true;
        c->ready = false;
        snprintf(c->peer, sizeof c->peer, "%s:%u", host, port);
        snprintf(c->host, sizeof c->host, "%s", host);
        r = conn_update_events(c);
        if (r < 0) {
                conn_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int conn_start_tls(Conn *c, TlsMaterial *m, bool accepting, const char *peer_name) {
        int r;

        /* Nothing may have gone out in clear text, and TLS comes before the secret. */
        if (!m || c->closed || c->used || c->tls || c->proof || c->wlen > 0 || accepting == c->connecting)
                return -EINVAL;
        r = conn_tls_new(&c->tls, m, accepting, peer_name, c->fd);
        if (r < 0)
                return r;
        c->ready = false;
        c->handshaking = !c->connecting;
        (void) conn_arm_idle(c);
        return conn_update_events(c);
}

int conn_start_secret(Conn *c, const ClusterSecret *secret, bool accepting) {
        ConnProof *p;
        int r;

        if (!secret || c->closed || c->used || c->proof || c->wlen > 0 || accepting == c->connecting)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->accepting = accepting;
        r = cluster_secret_dup(secret, &p->secret);
        if (r >= 0)
                r = cluster_secret_nonce(p->own_nonce);
        if (r < 0) {
                proof_free(p);
                return r;
        }
        c->proof = p;
        c->ready = false;
        (void) conn_arm_idle(c);
        if (conn_transport_up(c))
                return conn_transport_ready(c);
        return 0;
}

int conn_send(Conn *c, uint8_t type, const void *payload, size_t size) {
        int r;

        if (c->closed || c->closing_after_flush)
                return -ENOTCONN;
        c->used = true;
        r = conn_queue(c, false, type, payload, size);
        if (r < 0 || !c->ready || !conn_transport_up(c))
                return r;
        return conn_flush(c);
}

int conn_send_json(Conn *c, uint8_t type, json_object *o) {
        size_t len;
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);

        if (!s)
                return -ENOMEM;
        return conn_send(c, type, s, len);
}

void conn_close_after_flush(Conn *c) {
        if (!c || c->closed)
                return;
        c->closing_after_flush = true;
        /* Nothing of the owner's goes to a peer that has not proven itself. */
        if ((!c->ready && (c->tls || c->proof)) || (c->wlen == 0 && c->hlen == 0 && !c->connecting)) {
                conn_fail(c, 0);
                return;
        }
        (void) conn_update_events(c);
}

const char *conn_peer(const Conn *c) {
        return c->peer;
}

const char *conn_peer_host(const Conn *c) {
        return c->host;
}

const char *conn_failure(const Conn *c) {
        if (c->failure[0])
                return c->failure;
        return conn_tls_reason(c->tls);
}

bool conn_refused(const Conn *c) {
        return c->refused || conn_tls_refused(c->tls);
}

bool conn_is_ready(const Conn *c) {
        return c->ready && !c->closed;
}

void conn_set_idle_timeout(Conn *c, uint64_t idle_usec) {
        c->idle_usec = idle_usec;
        (void) conn_arm_idle(c);
}
