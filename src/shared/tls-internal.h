/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What tls.c (the material and its credentials) and tls-load.c (reading
 * and checking the files) share. */

#include "tls.h"

#define TLS_FILE_MAX (1024U * 1024U)

/* A certificate chain (leaf first) and its private key. */
typedef struct TlsKeyPair {
        gnutls_x509_crt_t *chain;
        unsigned n_chain;
        gnutls_x509_privkey_t key;
} TlsKeyPair;

void tls_key_pair_done(TlsKeyPair *p);

/* cert_key/key_key/password_key: the ssl keys naming the files, for error
 * messages. key_path may be NULL for a PKCS#12 certificate file, which
 * holds its key (opened with password). */
int tls_key_pair_load(TlsKeyPair *ret, const char *cert_key, const char *cert_path, const char *key_key,
                      const char *key_path, const char *password_key, const char *password,
                      char *error, size_t size);

typedef struct TlsTrust {
        gnutls_x509_crt_t *cas;
        unsigned n_cas;
        gnutls_x509_crl_t *crls;
        unsigned n_crls;
} TlsTrust;

void tls_trust_done(TlsTrust *t);
/* ca_cert_path (PEM, one CA or more) and crl_path (PEM, may be NULL); each
 * CRL must be signed by one of the CAs. */
int tls_trust_load(TlsTrust *ret, const char *ca_path, const char *crl_path, char *error, size_t size);

/* Checks the chain against the trust as a peer would: for purpose (a
 * GNUTLS_KP_* OID), now. */
int tls_trust_check_chain(const TlsTrust *t, const TlsKeyPair *p, const char *purpose, const char *cert_key,
                          const char *cert_path, char *error, size_t size);

/* The DN of a certificate, or "?". */
void tls_crt_subject(gnutls_x509_crt_t crt, char *buf, size_t size);
