/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "http-internal.h"
#include "log.h"

/* HTTPS for http.c. libmicrohttpd asks for the server's certificate per
 * handshake (MHD_OPTION_HTTPS_CERT_CALLBACK2); each session gets its own
 * copy of the chain and key of the generation in force, which GnuTLS frees
 * with the session, so that a reload can drop the old generation at once.
 * The callback has no closure: it finds its server from the session, whose
 * pointer libmicrohttpd sets to the connection, among the servers of this
 * process that speak TLS. */

static HttpServer *tls_servers;

static HttpServer *server_of_session(gnutls_session_t session) {
        struct MHD_Connection *connection = gnutls_session_get_ptr(session);
        const union MHD_ConnectionInfo *info;

        if (!connection)
                return NULL;
        info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_DAEMON);
        if (!info)
                return NULL;
        for (HttpServer *s = tls_servers; s; s = s->tls_next)
                if (s->daemon == info->daemon)
                        return s;
        return NULL;
}

static int cert_callback(gnutls_session_t session, const struct gnutls_cert_retr_st *info, gnutls_pcert_st **certs,
                         unsigned *n_certs, gnutls_ocsp_data_st **ocsp, unsigned *n_ocsp, gnutls_privkey_t *key,
                         unsigned *flags) {
        HttpServer *s = server_of_session(session);
        int r;

        if (!s || !s->tls) {
                log_warning("An HTTPS handshake of no known server: refusing it.");
                return -1;
        }
        r = tls_material_server_copy(s->tls, certs, n_certs, key);
        if (r < 0) {
                log_warning_errno(r, "Failed to hand the certificate to an HTTPS handshake: %m");
                return -1;
        }
        *ocsp = NULL;
        *n_ocsp = 0;
        *flags = GNUTLS_CERT_RETR_DEINIT_ALL;
        return 0;
}

int http_tls_setup(HttpServer *s, TlsMaterial *tls, unsigned *flags, struct MHD_OptionItem opts[static 3]) {
        opts[0] = (struct MHD_OptionItem) { MHD_OPTION_END, 0, NULL };
        if (!tls)
                return 0;
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES ||
            MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK2) != MHD_YES)
                return log_error_errno(-EOPNOTSUPP, "This libmicrohttpd cannot serve HTTPS with a certificate "
                                       "callback (it needs GnuTLS 3.6.3 or newer).");
        s->tls = tls_material_ref(tls);
        *flags |= MHD_USE_TLS;
        opts[0] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_CERT_CALLBACK2, 0, (void *) cert_callback };
        opts[1] = (struct MHD_OptionItem) { MHD_OPTION_HTTPS_PRIORITIES, 0,
                                            (void *) tls_material_priority_string(tls) };
        opts[2] = (struct MHD_OptionItem) { MHD_OPTION_END, 0, NULL };

        s->tls_next = tls_servers;
        if (tls_servers)
                tls_servers->tls_prev = s;
        tls_servers = s;
        return 0;
}

void http_tls_done(HttpServer *s) {
        if (!s->tls)
                return;
        if (s->tls_prev)
                s->tls_prev->tls_next = s->tls_next;
        else if (tls_servers == s)
                tls_servers = s->tls_next;
        if (s->tls_next)
                s->tls_next->tls_prev = s->tls_prev;
        s->tls_prev = s->tls_next = NULL;
        s->tls = tls_material_unref(s->tls);
}

int http_server_set_tls(HttpServer *s, TlsMaterial *tls) {
        if (!s->tls || !tls)
                return -EINVAL;         /* HTTPS is decided at the start */
        tls_material_ref(tls);
        tls_material_unref(s->tls);
        s->tls = tls;
        return 0;
}

bool http_server_is_tls(const HttpServer *s) {
        return s && s->tls;
}
