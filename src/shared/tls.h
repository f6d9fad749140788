/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <time.h>

#include "conf.h"
#include "macro.h"

/* A node's TLS material, loaded with GnuTLS from the files of the ssl
 * section (docs/security.md): its certificate chain and key, presented when
 * it accepts a connection and when it connects (client_cert_path may name
 * another pair for the latter), the cluster's CA certificates every peer's
 * chain must lead to, the CRL, and the priority string (cipher_list).
 *
 * A TlsMaterial is one generation of it, immutable and reference-counted:
 * every session holds the generation it started with, so a reload (which
 * loads a new generation) changes what new connections use and never what
 * a running one uses. */

typedef struct TlsMaterial TlsMaterial;

/* What one session checks its peer against. The connection sets it as the
 * GnuTLS session's pointer (gnutls_session_set_ptr) before the handshake;
 * the credentials' verify function fills in status when it refuses. */
typedef struct TlsPeerCheck {
        bool accepting;                 /* we are the TLS server: the peer shows a client certificate */
        const char *expected_name;      /* a client's: the server's certificate must name it (IP or DNS) */
        unsigned status;                /* gnutls_certificate_status_t bits of a refused peer */
        bool verified;                  /* the peer's chain was checked and accepted */
} TlsPeerCheck;

/* A date worth a journal warning before it passes. */
typedef struct TlsExpiry {
        const char *what;               /* "The server certificate", "A CA certificate", "The CRL" */
        const char *key;                /* the ssl key naming the file */
        char subject[192];              /* the certificate's DN (empty for a CRL) */
        time_t when;                    /* not after (for the CRL: its next update) */
} TlsExpiry;

#define TLS_EXPIRY_MAX 16

/* Loads and checks everything: each key belongs to its certificate, each
 * chain leads to a CA of ca_cert_path, is valid now and not revoked by the
 * CRL, which must itself be signed by one of those CAs. On failure error
 * says which file (by its ssl key) and what is wrong; nothing is logged. */
int tls_material_load(const SslConfig *s, TlsMaterial **ret, char *error, size_t size);
TlsMaterial *tls_material_ref(TlsMaterial *m);
TlsMaterial *tls_material_unref(TlsMaterial *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(TlsMaterial *, tls_material_unref);

/* For a session that accepts a node (a client certificate from the CA is
 * required) and for one that connects to a node. */
gnutls_certificate_credentials_t tls_material_accept_credentials(const TlsMaterial *m);
gnutls_certificate_credentials_t tls_material_connect_credentials(const TlsMaterial *m);
gnutls_priority_t tls_material_priority(const TlsMaterial *m);
const char *tls_material_priority_string(const TlsMaterial *m);

/* A non-blocking session on this material: accepting (a client certificate
 * from the CA is required) or connecting (the server's certificate must
 * name check->expected_name when it is set; a DNS name also goes out as
 * SNI). check stays the session's pointer and must outlive it; the caller
 * sets the transport. */
int tls_session_new(const TlsMaterial *m, bool accepting, TlsPeerCheck *check, gnutls_session_t *ret);

/* A copy of the server chain and key that the session owns and frees
 * (GNUTLS_CERT_RETR_DEINIT_ALL): how libmicrohttpd's certificate callback
 * hands out the generation in force without tying its lifetime to MHD's. */
int tls_material_server_copy(const TlsMaterial *m, gnutls_pcert_st **ret_chain, unsigned *ret_n,
                             gnutls_privkey_t *ret_key);

/* The SHA-256 fingerprint of the server certificate (hex), for log lines. */
const char *tls_material_fingerprint(const TlsMaterial *m);
/* The certificate's serial number, hex. */
const char *tls_material_serial(const TlsMaterial *m);
/* Whether the server certificate is valid for host (an IP address or DNS name). */
bool tls_material_names(const TlsMaterial *m, const char *host);
size_t tls_material_expiry(const TlsMaterial *m, const TlsExpiry **ret);

/* Why a peer's certificate was refused, for a log line: "its certificate
 * has expired", "its certificate is not signed by the cluster's CA", ...
 * Returns the matching negative errno: -EKEYEXPIRED, -EKEYREVOKED or
 * -EKEYREJECTED. */
int tls_status_describe(unsigned status, char *buf, size_t size);

/* gnutls_global_init() once per process; the library also does it itself,
 * this only turns its failure into an error. */
int tls_global_init(void);
