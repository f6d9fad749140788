/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sys/types.h>

#include "tls.h"

/* The TLS transport under a Conn (conn.c): a non-blocking GnuTLS session on
 * the connection's socket, its handshake driven from the event loop, and
 * the record layer for the frames once it is done. Failures come with a
 * reason for the log line: what was wrong with the peer, in an operator's
 * words. */

typedef struct ConnTls ConnTls;

/* Takes a reference on m. peer_name: connecting, what the server's
 * certificate must name (the address dialled); accepting, NULL. */
int conn_tls_new(ConnTls **ret, TlsMaterial *m, bool accepting, const char *peer_name, int fd);
ConnTls *conn_tls_free(ConnTls *t);

/* One step: 1 when the handshake is done, 0 to be called again when the
 * socket is ready for *ret_want_write ? writing : reading, or a negative
 * errno with conn_tls_reason() set:
 *   -EKEYEXPIRED, -EKEYREVOKED, -EKEYREJECTED  the peer's certificate (or
 *                  its lack of one) was refused, or it refused ours
 *   -EPROTONOSUPPORT  the peer does not speak TLS (a clear-text frame)
 *   -ECONNRESET    it closed or broke the connection during the handshake
 *   -EPROTO        any other TLS failure */
int conn_tls_handshake(ConnTls *t, bool *ret_want_write);

/* Like recv()/send(): bytes moved, 0 at the end of the stream (recv), or a
 * negative errno: -EAGAIN, or a failure with conn_tls_reason() set. A send
 * that returned -EAGAIN must be repeated with the same bytes. */
ssize_t conn_tls_recv(ConnTls *t, void *buf, size_t size);
ssize_t conn_tls_send(ConnTls *t, const void *buf, size_t size);
/* Decrypted bytes GnuTLS holds that the socket will not announce again. */
bool conn_tls_pending(ConnTls *t);
/* Sends close_notify, best effort (never waits). */
void conn_tls_bye(ConnTls *t);

/* Why the last call failed, or NULL; and whether the failure is a refusal
 * worth a journal line (a certificate, not a peer that just went away). */
const char *conn_tls_reason(const ConnTls *t);
bool conn_tls_refused(const ConnTls *t);
/* "TLS1.3 ECDHE-ECDSA-AES-256-GCM" and the like, for debug lines. */
const char *conn_tls_describe(ConnTls *t, char *buf, size_t size);
