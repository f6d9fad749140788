/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "conn.h"
#include "log.h"
#include "util.h"

#define CONN_READ_CHUNK (64U * 1024U)
#define CONN_READS_PER_WAKEUP 16

struct Conn {
        unsigned n_ref;
        sd_event *event;
        sd_event_source *io;
        sd_event_source *idle_timer;
        int fd;
        bool connecting;
        bool closing_after_flush;
        bool closed;

        WireReader reader;
        uint8_t *wbuf;
        size_t wlen, wcap;

        uint64_t idle_usec;
        char peer[INET6_ADDRSTRLEN + 8];

        conn_frame_handler_t on_frame;
        conn_close_handler_t on_close;
        void *userdata;
};

static void conn_unref(Conn *c) {
        if (!c || --c->n_ref > 0)
                return;
        wire_reader_done(&c->reader);
        free(c->wbuf);
        free(c);
}

static void conn_release(Conn *c) {
        c->io = sd_event_source_disable_unref(c->io);
        c->idle_timer = sd_event_source_disable_unref(c->idle_timer);
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

static int conn_update_events(Conn *c) {
        uint32_t events = EPOLLIN;

        if (c->connecting || c->wlen > 0)
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(c->io, events);
}

static int conn_arm_idle(Conn *c) {
        if (c->idle_usec == 0)
                return sd_event_source_set_enabled(c->idle_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_time_relative(c->idle_timer, c->idle_usec);
        return sd_event_source_set_enabled(c->idle_timer, SD_EVENT_ONESHOT);
}

static int conn_flush(Conn *c) {
        size_t done = 0;

        while (done < c->wlen) {
                ssize_t k = send(c->fd, c->wbuf + done, c->wlen - done, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                done += (size_t) k;
        }
        memmove(c->wbuf, c->wbuf + done, c->wlen - done);
        c->wlen -= done;
        return conn_update_events(c);
}

static int conn_read(Conn *c) {
        uint8_t buf[CONN_READ_CHUNK];

        for (unsigned n = 0; n < CONN_READS_PER_WAKEUP && !c->closed; n++) {
                ssize_t k = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
                size_t off = 0;

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
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
                        r = c->on_frame(c, c->reader.current.type, c->reader.payload,
                                        c->reader.current.length, c->userdata);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
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
        }

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                r = conn_read(c);
                if (r < 0 || c->closed)
                        goto finish;
        }

        if (!c->closed && !c->connecting) {
                r = conn_flush(c);
                if (r >= 0 && c->closing_after_flush && c->wlen == 0)
                        r = -ECONNRESET;
        }

finish:
        if (r == -ECONNRESET && (c->closing_after_flush || !wire_reader_in_frame(&c->reader))) {
                r = 0;   /* an orderly end: still an end (else EOF keeps the fd readable forever) */
                ended = true;
        }
        if ((r < 0 || ended || (c->closing_after_flush && c->wlen == 0)) && !c->closed)
                conn_fail(c, r);
        conn_unref(c);
        return 0;
}

static int conn_idle_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Conn *c = userdata;

        c->n_ref++;
        conn_fail(c, -ETIMEDOUT);
        conn_unref(c);
        return 0;
}

static void conn_describe_peer(Conn *c) {
        struct sockaddr_storage sa;
        socklen_t len = sizeof sa;
        char host[INET6_ADDRSTRLEN] = "?";
        uint16_t port = 0;

        if (getpeername(c->fd, (struct sockaddr *) &sa, &len) < 0)
                return;
        if (sa.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *) &sa;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                port = ntohs(in->sin_port);
        } else if (sa.ss_family == AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                port = ntohs(in6->sin6_port);
        }
        snprintf(c->peer, sizeof c->peer, "%s:%u", host, port);
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
        snprintf(c->peer, sizeof c->peer, "%s:%u", host, port);
        r = conn_update_events(c);
        if (r < 0) {
                conn_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int conn_send(Conn *c, uint8_t type, const void *payload, size_t size) {
        size_t need;

        if (c->closed || c->closing_after_flush)
                return -ENOTCONN;
        if (size > UINT32_MAX)
                return -EMSGSIZE;
        need = c->wlen + WIRE_HEADER_SIZE + size;
        if (need > CONN_WRITE_QUEUE_MAX)
                return -ENOBUFS;
        if (need > c->wcap) {
                size_t cap = MAX(need, c->wcap * 2);
                uint8_t *p = realloc(c->wbuf, cap);
                if (!p)
                        return -ENOMEM;
                c->wbuf = p;
                c->wcap = cap;
        }
        wire_header_encode(c->wbuf + c->wlen, type, (uint32_t) size);
        if (size > 0)
                memcpy(c->wbuf + c->wlen + WIRE_HEADER_SIZE, payload, size);
        c->wlen = need;

        if (c->connecting)
                return 0;
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
        if (c->wlen == 0 && !c->connecting) {
                conn_fail(c, 0);
                return;
        }
        (void) conn_update_events(c);
}

const char *conn_peer(const Conn *c) {
        return c->peer;
}

void conn_set_idle_timeout(Conn *c, uint64_t idle_usec) {
        c->idle_usec = idle_usec;
        (void) conn_arm_idle(c);
}
