/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gnutls/pkcs12.h>
#include <stdio.h>
#include <string.h>

#include "tls-internal.h"
#include "util.h"

/* Reading the files of the ssl section. Every refusal names the ssl key and
 * the path, and says what to do where it can: an operator reads it in the
 * journal of a daemon that did not start (or did not reload). */

#define REFUSE(r, ...) (snprintf(error, size, __VA_ARGS__), (r))

static void datum_wipe_free(char **p, size_t n) {
        if (*p)
                explicit_bzero(*p, n);
        *p = mfree(*p);
}

static int read_file(const char *key, const char *path, char **ret, size_t *ret_size, char *error, size_t size) {
        int r;

        r = read_full_file(path, ret, ret_size, TLS_FILE_MAX);
        if (r == -EFBIG)
                return REFUSE(r, "ssl.%s: %s is larger than %u KiB; it is not a certificate file.", key, path,
                              TLS_FILE_MAX / 1024);
        if (r == -EBADFD)
                return REFUSE(r, "ssl.%s: %s is not a regular file.", key, path);
        if (r < 0)
                return REFUSE(r, "ssl.%s: cannot read %s: %s.", key, path, strerror(-r));
        return 0;
}

void tls_crt_subject(gnutls_x509_crt_t crt, char *buf, size_t size) {
        size_t n = size;

        if (gnutls_x509_crt_get_dn(crt, buf, &n) < 0)
                snprintf(buf, size, "?");
}

static void crt_list_free(gnutls_x509_crt_t *list, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                gnutls_x509_crt_deinit(list[i]);
        gnutls_free(list);
}

void tls_key_pair_done(TlsKeyPair *p) {
        crt_list_free(p->chain, p->n_chain);
        if (p->key)
                gnutls_x509_privkey_deinit(p->key);
        *p = (TlsKeyPair) {};
}

void tls_trust_done(TlsTrust *t) {
        crt_list_free(t->cas, t->n_cas);
        for (unsigned i = 0; i < t->n_crls; i++)
                gnutls_x509_crl_deinit(t->crls[i]);
        gnutls_free(t->crls);
        *t = (TlsTrust) {};
}

static bool is_pem(const char *data, size_t n) {
        return memmem(data, n, "-----BEGIN ", strlen("-----BEGIN ")) != NULL;
}

static int load_pkcs12(TlsKeyPair *p, const gnutls_datum_t *d, const char *cert_key, const char *path,
                       const char *password_key, const char *password, char *error, size_t size) {
        gnutls_pkcs12_t p12 = NULL;
        int r;

        r = gnutls_pkcs12_init(&p12);
        if (r < 0)
                return REFUSE(-ENOMEM, "Out of memory.");
        r = gnutls_pkcs12_import(p12, d, GNUTLS_X509_FMT_DER, 0);
        if (r < 0)
                r = gnutls_pkcs12_import(p12, d, GNUTLS_X509_FMT_PEM, 0);
        if (r < 0) {
                gnutls_pkcs12_deinit(p12);
                return REFUSE(-EBADMSG, "ssl.%s: %s is neither PEM certificates nor a PKCS#12 file.", cert_key, path);
        }
        if (password && gnutls_pkcs12_verify_mac(p12, password) < 0) {
                gnutls_pkcs12_deinit(p12);
                return REFUSE(-EKEYREJECTED, "ssl.%s: ssl.%s does not open the PKCS#12 file %s.", cert_key,
                              password_key, path);
        }
        r = gnutls_pkcs12_simple_parse(p12, password, &p->key, &p->chain, &p->n_chain, NULL, NULL, NULL, 0);
        gnutls_pkcs12_deinit(p12);
        if (r == GNUTLS_E_DECRYPTION_FAILED || (r < 0 && !password))
                return REFUSE(-EKEYREJECTED, "ssl.%s: cannot decrypt the PKCS#12 file %s%s.", cert_key, path,
                              password ? "" : " (is ssl.server_password/client_password missing?)");
        if (r < 0 || p->n_chain == 0 || !p->key)
                return REFUSE(-EBADMSG, "ssl.%s: the PKCS#12 file %s holds no certificate with its key: %s.",
                              cert_key, path, gnutls_strerror(r));
        return 0;
}

static int load_key(TlsKeyPair *p, const char *key_key, const char *path, const char *password_key,
                    const char *password, char *error, size_t size) {
        _cleanup_free_ char *data = NULL;
        gnutls_datum_t d;
        size_t n;
        int r;

        r = read_file(key_key, path, &data, &n, error, size);
        if (r < 0)
                return r;
        d = (gnutls_datum_t) { .data = (unsigned char *) data, .size = (unsigned) n };
        r = gnutls_x509_privkey_init(&p->key);
        if (r < 0) {
                datum_wipe_free(&data, n);
                return REFUSE(-ENOMEM, "Out of memory.");
        }
        /* PKCS#1, SEC1 or PKCS#8, encrypted with the password or not. */
        r = gnutls_x509_privkey_import2(p->key, &d, is_pem(data, n) ? GNUTLS_X509_FMT_PEM : GNUTLS_X509_FMT_DER,
                                        password, 0);
        datum_wipe_free(&data, n);
        if (r == GNUTLS_E_DECRYPTION_FAILED)
                return REFUSE(-EKEYREJECTED, "ssl.%s: %s is encrypted and ssl.%s %s.", key_key, path,
                              password_key, password ? "does not decrypt it" : "is not set");
        if (r < 0)
                return REFUSE(-EBADMSG, "ssl.%s: %s is not a private key: %s.", key_key, path, gnutls_strerror(r));
        return 0;
}

static bool key_matches(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key) {
        unsigned char a[64], b[64];
        size_t na = sizeof a, nb = sizeof b;

        return gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &na) >= 0 &&
               gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &nb) >= 0 &&
               na == nb && memcmp(a, b, na) == 0;
}

int tls_key_pair_load(TlsKeyPair *ret, const char *cert_key, const char *cert_path, const char *key_key,
                      const char *key_path, const char *password_key, const char *password,
                      char *error, size_t size) {
        _cleanup_(tls_key_pair_done) TlsKeyPair p = {};
        _cleanup_free_ char *data = NULL;
        gnutls_datum_t d;
        size_t n;
        int r;

        if (!cert_path)
                return REFUSE(-EINVAL, "ssl.%s is not set.", cert_key);
        r = read_file(cert_key, cert_path, &data, &n, error, size);
        if (r < 0)
                return r;
        d = (gnutls_datum_t) { .data = (unsigned char *) data, .size = (unsigned) n };

        if (!is_pem(data, n) || memmem(data, n, "-----BEGIN PKCS12", 17)) {
                if (key_path)
                        return REFUSE(-EINVAL, "ssl.%s: %s is a PKCS#12 file, which holds its own key: "
                                      "remove ssl.%s.", cert_key, cert_path, key_key);
                r = load_pkcs12(&p, &d, cert_key, cert_path, password_key, password, error, size);
                explicit_bzero(data, n);
                if (r < 0)
                        return r;
        } else {
                r = gnutls_x509_crt_list_import2(&p.chain, &p.n_chain, &d, GNUTLS_X509_FMT_PEM,
                                                 GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED);
                if (r < 0 || p.n_chain == 0)
                        return REFUSE(-EBADMSG, "ssl.%s: %s holds no PEM certificate chain (leaf first): %s.",
                                      cert_key, cert_path, gnutls_strerror(r));
                if (!key_path)
                        return REFUSE(-EINVAL, "ssl.%s is not set: the PEM certificate %s needs its key file.",
                                      key_key, cert_path);
                r = load_key(&p, key_key, key_path, password_key, password, error, size);
                if (r < 0)
                        return r;
        }

        if (!key_matches(p.chain[0], p.key))
                return REFUSE(-EKEYREJECTED, "ssl.%s: the key does not belong to the certificate in %s.",
                              key_path ? key_key : cert_key, cert_path);
        *ret = p;
        p = (TlsKeyPair) {};
        return 0;
}

int tls_trust_load(TlsTrust *ret, const char *ca_path, const char *crl_path, char *error, size_t size) {
        _cleanup_(tls_trust_done) TlsTrust t = {};
        _cleanup_free_ char *data = NULL, *crl_data = NULL;
        gnutls_datum_t d;
        size_t n;
        int r;

        if (!ca_path)
                return REFUSE(-EINVAL, "ssl.ca_cert_path is not set: the cluster's CA is needed to check its nodes.");
        r = read_file("ca_cert_path", ca_path, &data, &n, error, size);
        if (r < 0)
                return r;
        d = (gnutls_datum_t) { .data = (unsigned char *) data, .size = (unsigned) n };
        r = gnutls_x509_crt_list_import2(&t.cas, &t.n_cas, &d, GNUTLS_X509_FMT_PEM, 0);
        if (r < 0 || t.n_cas == 0)
                return REFUSE(-EBADMSG, "ssl.ca_cert_path: %s holds no PEM certificate: %s.", ca_path,
                              r < 0 ? gnutls_strerror(r) : "empty");

        if (!crl_path) {
                *ret = t;
                t = (TlsTrust) {};
                return 0;
        }
        r = read_file("crl_path", crl_path, &crl_data, &n, error, size);
        if (r < 0)
                return r;
        d = (gnutls_datum_t) { .data = (unsigned char *) crl_data, .size = (unsigned) n };
        r = gnutls_x509_crl_list_import2(&t.crls, &t.n_crls, &d, GNUTLS_X509_FMT_PEM, 0);
        if (r < 0 || t.n_crls == 0)
                return REFUSE(-EBADMSG, "ssl.crl_path: %s holds no PEM CRL: %s (a DER one converts with "
                              "'certtool --crl-info --inder --infile IN --outfile OUT').", crl_path,
                              r < 0 ? gnutls_strerror(r) : "empty");
        for (unsigned i = 0; i < t.n_crls; i++) {
                unsigned status = 0;

                r = gnutls_x509_crl_verify(t.crls[i], t.cas, t.n_cas, 0, &status);
                if (r < 0 || status != 0)
                        return REFUSE(-EKEYREJECTED, "ssl.crl_path: CRL %u of %s is not signed by a CA of "
                                      "ssl.ca_cert_path (%s).", i + 1, crl_path, ca_path);
        }
        *ret = t;
        t = (TlsTrust) {};
        return 0;
}

int tls_trust_check_chain(const TlsTrust *t, const TlsKeyPair *p, const char *purpose, const char *cert_key,
                          const char *cert_path, char *error, size_t size) {
        gnutls_x509_trust_list_t list = NULL;
        gnutls_typed_vdata_st data = {
                .type = GNUTLS_DT_KEY_PURPOSE_OID,
                .data = (unsigned char *) purpose,
        };
        unsigned status = 0;
        char reason[256];
        int r;

        r = gnutls_x509_trust_list_init(&list, 0);
        if (r < 0)
                return REFUSE(-ENOMEM, "Out of memory.");
        /* Borrowed: the list is deinitialized without its members below. */
        r = gnutls_x509_trust_list_add_cas(list, t->cas, t->n_cas, 0);
        if (r >= 0 && t->n_crls > 0)
                r = gnutls_x509_trust_list_add_crls(list, t->crls, t->n_crls, 0, 0);   /* verified at load */
        if (r >= 0)
                r = gnutls_x509_trust_list_verify_crt2(list, p->chain, p->n_chain, &data, 1, 0, &status, NULL);
        gnutls_x509_trust_list_deinit(list, 0);
        if (r < 0)
                return REFUSE(-EKEYREJECTED, "ssl.%s: cannot check %s against ssl.ca_cert_path: %s.", cert_key,
                              cert_path, gnutls_strerror(r));
        if (status != 0) {
                r = tls_status_describe(status, reason, sizeof reason);
                return REFUSE(r, "ssl.%s: the certificate in %s %s; no peer would accept it.", cert_key,
                              cert_path, reason);
        }
        return 0;
}
