/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "conn-tls.h"
#include "wire.h"

#define CONN_TLS_READ_AHEAD (64U * 1024U)

struct ConnTls {
        gnutls_session_t session;
        TlsMaterial *material;
        TlsPeerCheck check;
        char *peer_name;
        int fd;
        bool accepting;
        bool peeked;            /* the first bytes of an accepted connection were looked at */
        bool refused;
        char reason[256];

        /* Read ahead: GnuTLS asks for a record's header, then its body; one
         * recv() of up to this much serves many of those asks. */
        uint8_t rbuf[CONN_TLS_READ_AHEAD];
        size_t rpos, rlen;
};

ConnTls *conn_tls_free(ConnTls *t) {
        if (!t)
                return NULL;
        if (t->session)
                gnutls_deinit(t->session);
        tls_material_unref(t->material);
        free(t->peer_name);
        free(t);
        return NULL;
}

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t size) {
        ConnTls *t = ptr;
        size_t n;

        if (t->rpos == t->rlen) {
                ssize_t k = recv(t->fd, t->rbuf, sizeof t->rbuf, MSG_DONTWAIT);

                if (k <= 0) {
                        if (k < 0)
                                gnutls_transport_set_errno(t->session, errno);
                        return k;
                }
                t->rpos = 0;
                t->rlen = (size_t) k;
        }
        n = MIN(size, t->rlen - t->rpos);
        memcpy(data, t->rbuf + t->rpos, n);
        t->rpos += n;
        return (ssize_t) n;
}

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const giovec_t *iov, int iovcnt) {
        ConnTls *t = ptr;
        struct msghdr msg = {
                .msg_iov = (struct iovec *) iov,
                .msg_iovlen = (size_t) iovcnt,
        };
        ssize_t k = sendmsg(t->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (k < 0)
                gnutls_transport_set_errno(t->session, errno);
        return k;
}

int conn_tls_new(ConnTls **ret, TlsMaterial *m, bool accepting, const char *peer_name, int fd) {
        ConnTls *t;
        int r;

        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->material = tls_material_ref(m);
        t->accepting = accepting;
        t->fd = fd;
        if (!accepting && peer_name) {
                t->peer_name = strdup(peer_name);
                if (!t->peer_name) {
                        conn_tls_free(t);
                        return -ENOMEM;
                }
        }
        t->check.expected_name = t->peer_name;
        r = tls_session_new(m, accepting, &t->check, &t->session);
        if (r < 0) {
                conn_tls_free(t);
                return r;
        }
        gnutls_transport_set_ptr(t->session, t);
        gnutls_transport_set_pull_function(t->session, tls_pull);
        gnutls_transport_set_vec_push_function(t->session, tls_push);
        *ret = t;
        return 0;
}

_printf_(4, 5)
static int fail(ConnTls *t, int error, bool refused, const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vsnprintf(t->reason, sizeof t->reason, format, ap);
        va_end(ap);
        t->refused = refused;
        return error;
}

/* A client that is not TLS at all is told apart before GnuTLS sees it: a
 * clear-text frame of ours starts with the magic "FLC1", a TLS connection
 * with a handshake record (0x16). */
static int peek_first_bytes(ConnTls *t) {
        uint8_t b[4];
        ssize_t k;

        k = recv(t->fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
        if (k < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : fail(t, -errno, false, "%s", strerror(errno));
        if (k == 0)
                return fail(t, -ECONNRESET, false, "it closed the connection before the TLS handshake");
        t->peeked = true;
        if (b[0] == 0x16)
                return 1;
        if (b[0] == (uint8_t) (WIRE_MAGIC >> 24))
                return fail(t, -EPROTONOSUPPORT, true,
                            "it sent a clear-text flcluster frame; this port speaks only TLS (enable_ssl)");
        return fail(t, -EPROTONOSUPPORT, true, "it does not speak TLS (its first byte is 0x%02x)", b[0]);
}

static int handshake_failed(ConnTls *t, int r) {
        char status[160];
        int error;

        /* Tell the peer why (best effort), as GnuTLS leaves it to us. */
        if (r != GNUTLS_E_FATAL_ALERT_RECEIVED && r != GNUTLS_E_PREMATURE_TERMINATION && r != GNUTLS_E_PUSH_ERROR &&
            r != GNUTLS_E_PULL_ERROR)
                (void) gnutls_alert_send_appropriate(t->session, r);

        switch (r) {
        case GNUTLS_E_CERTIFICATE_ERROR:
        case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
                error = tls_status_describe(t->check.status, status, sizeof status);
                if (t->accepting)
                        return fail(t, error, true, "its certificate %s", status);
                return fail(t, error, true, "the certificate of %s %s", strna(t->peer_name), status);
        case GNUTLS_E_NO_CERTIFICATE_FOUND:
        case GNUTLS_E_CERTIFICATE_REQUIRED:
                if (t->accepting)
                        return fail(t, -EKEYREJECTED, true,
                                    "it presented no certificate from the cluster's CA (ca_cert_path)");
                return fail(t, -EKEYREJECTED, true, "%s presented no certificate", strna(t->peer_name));
        case GNUTLS_E_FATAL_ALERT_RECEIVED:
                return fail(t, -EKEYREJECTED, true, "%s ended the TLS handshake (alert: %s)",
                            t->accepting ? "it" : strna(t->peer_name),
                            strna(gnutls_alert_get_name(gnutls_alert_get(t->session))));
        case GNUTLS_E_PREMATURE_TERMINATION:
        case GNUTLS_E_PULL_ERROR:
        case GNUTLS_E_PUSH_ERROR:
                if (t->accepting)
                        return fail(t, -ECONNRESET, false, "it closed the connection during the TLS handshake");
                return fail(t, -ECONNRESET, true, "%s closed the connection during the TLS handshake "
                            "(does it have enable_ssl, and this node's CA?)", strna(t->peer_name));
        case GNUTLS_E_UNEXPECTED_PACKET_LENGTH:
        case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
        case GNUTLS_E_UNEXPECTED_PACKET:
        case GNUTLS_E_UNEXPECTED_HANDSHAKE_PACKET:
                return fail(t, -EPROTONOSUPPORT, true, "%s does not speak TLS as expected (%s)",
                            t->accepting ? "it" : strna(t->peer_name), gnutls_strerror(r));
        default:
                return fail(t, -EPROTO, true, "the TLS handshake failed: %s", gnutls_strerror(r));
        }
}

int conn_tls_handshake(ConnTls *t, bool *ret_want_write) {
        int r;

        *ret_want_write = false;
        if (t->accepting && !t->peeked) {
                r = peek_first_bytes(t);
                if (r <= 0)
                        return r;
        }
        r = gnutls_handshake(t->session);
        if (r == GNUTLS_E_SUCCESS)
                return 1;
        if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED || r == GNUTLS_E_WARNING_ALERT_RECEIVED) {
                *ret_want_write = gnutls_record_get_direction(t->session) == 1;
                return 0;
        }
        return handshake_failed(t, r);
}

ssize_t conn_tls_recv(ConnTls *t, void *buf, size_t size) {
        for (;;) {
                ssize_t k = gnutls_record_recv(t->session, buf, size);

                if (k >= 0)
                        return k;
                switch (k) {
                case GNUTLS_E_INTERRUPTED:
                case GNUTLS_E_WARNING_ALERT_RECEIVED:
                        continue;
                case GNUTLS_E_AGAIN:
                        return -EAGAIN;
                case GNUTLS_E_PREMATURE_TERMINATION:
                        return 0;       /* as a TCP close: the framing tells a cut frame */
                case GNUTLS_E_FATAL_ALERT_RECEIVED:
                        /* TLS 1.3: a server refuses our certificate after our handshake is done. */
                        return fail(t, -EKEYREJECTED, true, "%s refused this node (TLS alert: %s)",
                                    t->accepting ? "it" : strna(t->peer_name),
                                    strna(gnutls_alert_get_name(gnutls_alert_get(t->session))));
                case GNUTLS_E_REHANDSHAKE:
                        return fail(t, -EPROTO, true, "%s asked for a renegotiation, which is not supported",
                                    t->accepting ? "it" : strna(t->peer_name));
                default:
                        return fail(t, -ECONNRESET, false, "TLS: %s", gnutls_strerror((int) k));
                }
        }
}

ssize_t conn_tls_send(ConnTls *t, const void *buf, size_t size) {
        for (;;) {
                ssize_t k = gnutls_record_send(t->session, buf, size);

                if (k >= 0)
                        return k;
                if (k == GNUTLS_E_INTERRUPTED)
                        continue;
                if (k == GNUTLS_E_AGAIN)
                        return -EAGAIN;
                return fail(t, -ECONNRESET, false, "TLS: %s", gnutls_strerror((int) k));
        }
}

bool conn_tls_pending(ConnTls *t) {
        /* Decrypted bytes GnuTLS holds, or read-ahead bytes it has not asked for yet. */
        return gnutls_record_check_pending(t->session) > 0 || t->rpos < t->rlen;
}

void conn_tls_bye(ConnTls *t) {
        (void) gnutls_bye(t->session, GNUTLS_SHUT_WR);
}

const char *conn_tls_reason(const ConnTls *t) {
        return t && t->reason[0] ? t->reason : NULL;
}

bool conn_tls_refused(const ConnTls *t) {
        return t && t->refused;
}

const char *conn_tls_describe(ConnTls *t, char *buf, size_t size) {
        char *d = gnutls_session_get_desc(t->session);

        snprintf(buf, size, "%s", d ?: "TLS");
        gnutls_free(d);
        return buf;
}
