/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gnutls/x509.h>
#include <time.h>

#include "macro.h"

/* Making a cluster's TLS material with GnuTLS's X.509 API (flctl tls init):
 * a CA, and node certificates it signs. Keys are ECDSA P-256, signatures
 * SHA-256, serial numbers 128 random bits. */

#define TLS_ISSUE_CA_DAYS 3650U
#define TLS_ISSUE_NODE_DAYS 730U

typedef struct TlsIssued {
        gnutls_x509_crt_t crt;
        gnutls_x509_privkey_t key;
} TlsIssued;

void tls_issued_done(TlsIssued *i);

/* A self-signed CA that signs certificates and CRLs (path length 0: it
 * signs node certificates only), valid from not_before to not_after. */
int tls_issue_ca(const char *common_name, time_t not_before, time_t not_after, TlsIssued *ret);

/* A certificate for a node reachable at hosts (IP addresses become IP
 * subject alternative names, anything else a DNS name), for TLS servers and
 * clients alike, signed by ca. -EINVAL for an empty list or a host that is
 * neither an address nor a DNS name. */
int tls_issue_node(const TlsIssued *ca, char *const *hosts, size_t n_hosts, time_t not_before, time_t not_after,
                   TlsIssued *ret);

/* Whether s can go into a certificate as a DNS name (letters, digits, '-'
 * and dots, a leading "*." allowed; 1-253 characters). */
bool tls_dns_name_is_valid(const char *s);

/* Reads a CA back (PEM certificate and unencrypted key, as tls_issued_*_pem()
 * write them): the key must be the certificate's and the certificate a CA.
 * On refusal error says why. */
int tls_issued_load_ca(const char *cert_path, const char *key_path, TlsIssued *ret, char *error, size_t size);

/* PEM text (NUL-terminated, malloc()ed) of the certificate, and of the key
 * as unencrypted PKCS#8. */
int tls_issued_cert_pem(const TlsIssued *i, char **ret);
int tls_issued_key_pem(const TlsIssued *i, char **ret);
