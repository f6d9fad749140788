/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "wire.h"

/* A framed TCP connection on sd-event: non-blocking, with a bounded read
 * side (WireReader), a bounded write queue, and an idle timeout that closes
 * a peer which sends nothing - neither frames nor heartbeats - for too long,
 * or stops in the middle of a frame. Closing calls on_close exactly once. */

typedef struct Conn Conn;

typedef int (*conn_frame_handler_t)(Conn *c, uint8_t type, const uint8_t *payload, size_t size, void *userdata);
/* error is 0 for an orderly close by the peer, else a negative errno. */
typedef void (*conn_close_handler_t)(Conn *c, int error, void *userdata);

#define CONN_WRITE_QUEUE_MAX (64U * 1024U * 1024U)

/* Takes ownership of fd (non-blocking, possibly still connecting). */
int conn_new(Conn **ret, sd_event *e, int fd, size_t max_frame, uint64_t idle_usec,
             conn_frame_handler_t on_frame, conn_close_handler_t on_close, void *userdata);
Conn *conn_free(Conn *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Conn *, conn_free);

/* Starts a non-blocking connect to host:port (numeric IPv4/IPv6 address). */
int conn_connect(Conn **ret, sd_event *e, const char *host, uint16_t port, size_t max_frame,
                 uint64_t idle_usec, conn_frame_handler_t on_frame, conn_close_handler_t on_close,
                 void *userdata);

int conn_send(Conn *c, uint8_t type, const void *payload, size_t size);
int conn_send_json(Conn *c, uint8_t type, json_object *o);
/* Closes now; on_close is not called for a close the owner asked for. */
void conn_close(Conn *c);
/* Flushes what is queued, then closes (on_close called with 0). */
void conn_close_after_flush(Conn *c);

const char *conn_peer(const Conn *c);
void conn_set_idle_timeout(Conn *c, uint64_t idle_usec);
