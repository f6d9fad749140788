/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <systemd/sd-event.h>

#include "cluster-secret.h"
#include "tls.h"
#include "wire.h"

/* A framed TCP connection on sd-event: non-blocking, with a bounded read
 * side (WireReader), a bounded write queue, and an idle timeout that closes
 * a peer which sends nothing - neither frames nor heartbeats - for too long,
 * or stops in the middle of a frame. Closing calls on_close exactly once. */

typedef struct Conn Conn;

/* With TLS or the cluster secret, a peer proves itself within this (and
 * within the owner's idle timeout, if shorter) or is dropped. */
#define CONN_HANDSHAKE_TIMEOUT_USEC (10U * USEC_PER_SEC)

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

/* Before any frame is sent or received: the connection speaks TLS on m (a
 * reference is taken). Accepting, the peer must show a client certificate
 * from the CA; connecting, the peer's certificate must name peer_name (the
 * address dialled). Frames sent meanwhile are held until the handshake (and
 * the secret's proof) is done; a failure closes the connection, with
 * conn_failure() and conn_refused() telling why. */
int conn_start_tls(Conn *c, TlsMaterial *m, bool accepting, const char *peer_name);
/* After conn_start_tls(), if both: each end proves it knows the cluster
 * secret (cluster-secret.h) before the owner's frames flow. */
int conn_start_secret(Conn *c, const ClusterSecret *secret, bool accepting);

int conn_send(Conn *c, uint8_t type, const void *payload, size_t size);
int conn_send_json(Conn *c, uint8_t type, json_object *o);
/* Closes now; on_close is not called for a close the owner asked for. */
void conn_close(Conn *c);
/* Flushes what is queued, then closes (on_close called with 0). */
void conn_close_after_flush(Conn *c);

const char *conn_peer(const Conn *c);
/* The peer's address alone (no port), for the refusal lines. */
const char *conn_peer_host(const Conn *c);
/* Why the TLS handshake or the secret's exchange failed (NULL: it did not),
 * readable in on_close; and whether that is a refusal of the peer (or by
 * it), worth a rate-limited journal line, rather than a peer that left. */
const char *conn_failure(const Conn *c);
bool conn_refused(const Conn *c);
/* The peer is proven and the owner's frames flow. */
bool conn_is_ready(const Conn *c);
void conn_set_idle_timeout(Conn *c, uint64_t idle_usec);
