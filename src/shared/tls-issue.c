/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <string.h>

#include "tls-issue.h"
#include "tls.h"
#include "util.h"

#define ORGANIZATION "flcluster"

void tls_issued_done(TlsIssued *i) {
        if (i->crt)
                gnutls_x509_crt_deinit(i->crt);
        if (i->key)
                gnutls_x509_privkey_deinit(i->key);
        *i = (TlsIssued) {};
}

bool tls_dns_name_is_valid(const char *s) {
        size_t n = strlen(s), label = 0;

        if (n == 0 || n > 253)
                return false;
        if (strneq(s, "*.", 2))
                s += 2;
        for (const char *p = s; ; p++) {
                if (*p == '.' || *p == '\0') {
                        /* No empty label, none over 63, none that starts or ends with '-'. */
                        if (label == 0 || label > 63 || p[-1] == '-' || p[-(ptrdiff_t) label] == '-')
                                return false;
                        if (*p == '\0')
                                return true;
                        label = 0;
                        continue;
                }
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
                label++;
        }
}

/* The common parts: version 3, a random positive serial, a fresh key, the
 * DN, the validity, the subject key id. */
static int issue_begin(const char *common_name, time_t not_before, time_t not_after, TlsIssued *i) {
        unsigned char serial[16];
        int r;

        r = tls_global_init();
        if (r < 0)
                return r;
        if (gnutls_x509_crt_init(&i->crt) < 0 || gnutls_x509_privkey_init(&i->key) < 0)
                return -ENOMEM;
        r = gnutls_x509_privkey_generate(i->key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
        if (r < 0)
                return -EIO;
        if (gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial) < 0)
                return -EIO;
        serial[0] &= 0x7f;      /* positive */
        serial[0] |= 0x40;      /* and of full length */

        if (gnutls_x509_crt_set_version(i->crt, 3) < 0 ||
            gnutls_x509_crt_set_serial(i->crt, serial, sizeof serial) < 0 ||
            gnutls_x509_crt_set_key(i->crt, i->key) < 0 ||
            gnutls_x509_crt_set_dn_by_oid(i->crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, ORGANIZATION,
                                          strlen(ORGANIZATION)) < 0 ||
            gnutls_x509_crt_set_dn_by_oid(i->crt, GNUTLS_OID_X520_COMMON_NAME, 0, common_name,
                                          strlen(common_name)) < 0 ||
            gnutls_x509_crt_set_activation_time(i->crt, not_before) < 0 ||
            gnutls_x509_crt_set_expiration_time(i->crt, not_after) < 0)
                return -EIO;

        {
                unsigned char id[64];
                size_t n = sizeof id;

                if (gnutls_x509_crt_get_key_id(i->crt, GNUTLS_KEYID_USE_SHA1, id, &n) < 0 ||
                    gnutls_x509_crt_set_subject_key_id(i->crt, id, n) < 0)
                        return -EIO;
        }
        return 0;
}

int tls_issue_ca(const char *common_name, time_t not_before, time_t not_after, TlsIssued *ret) {
        _cleanup_(tls_issued_done) TlsIssued i = {};
        int r;

        if (isempty(common_name) || not_after <= not_before)
                return -EINVAL;
        r = issue_begin(common_name, not_before, not_after, &i);
        if (r < 0)
                return r;
        if (gnutls_x509_crt_set_basic_constraints(i.crt, 1, 0) < 0 ||
            gnutls_x509_crt_set_key_usage(i.crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN) < 0 ||
            gnutls_x509_crt_sign2(i.crt, i.crt, i.key, GNUTLS_DIG_SHA256, 0) < 0)
                return -EIO;
        *ret = i;
        i = (TlsIssued) {};
        return 0;
}

static int add_host(gnutls_x509_crt_t crt, const char *host) {
        unsigned char a[sizeof(struct in6_addr)];
        int r;

        if (inet_pton(AF_INET, host, a) == 1)
                r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, a, 4, GNUTLS_FSAN_APPEND);
        else if (inet_pton(AF_INET6, host, a) == 1)
                r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, a, 16, GNUTLS_FSAN_APPEND);
        else if (tls_dns_name_is_valid(host))
                r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, host, (unsigned) strlen(host),
                                                         GNUTLS_FSAN_APPEND);
        else
                return -EINVAL;
        return r < 0 ? -EIO : 0;
}

int tls_issue_node(const TlsIssued *ca, char *const *hosts, size_t n_hosts, time_t not_before, time_t not_after,
                   TlsIssued *ret) {
        _cleanup_(tls_issued_done) TlsIssued i = {};
        unsigned char id[64];
        size_t n = sizeof id;
        int r;

        if (n_hosts == 0 || not_after <= not_before)
                return -EINVAL;
        for (size_t k = 0; k < n_hosts; k++)
                if (isempty(hosts[k]) || strlen(hosts[k]) > 253)
                        return -EINVAL;
        r = issue_begin(hosts[0], not_before, not_after, &i);
        if (r < 0)
                return r;
        for (size_t k = 0; k < n_hosts; k++) {
                r = add_host(i.crt, hosts[k]);
                if (r < 0)
                        return r;
        }
        /* ECDSA signs; it never encrypts a key, so no keyEncipherment. */
        if (gnutls_x509_crt_set_basic_constraints(i.crt, 0, -1) < 0 ||
            gnutls_x509_crt_set_key_usage(i.crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
            gnutls_x509_crt_set_key_purpose_oid(i.crt, GNUTLS_KP_TLS_WWW_SERVER, 0) < 0 ||
            gnutls_x509_crt_set_key_purpose_oid(i.crt, GNUTLS_KP_TLS_WWW_CLIENT, 0) < 0 ||
            gnutls_x509_crt_get_subject_key_id(ca->crt, id, &n, NULL) < 0 ||
            gnutls_x509_crt_set_authority_key_id(i.crt, id, n) < 0 ||
            gnutls_x509_crt_sign2(i.crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0) < 0)
                return -EIO;
        *ret = i;
        i = (TlsIssued) {};
        return 0;
}

static int datum_to_string(gnutls_datum_t *d, char **ret) {
        char *s = malloc(d->size + 1);

        if (s) {
                memcpy(s, d->data, d->size);
                s[d->size] = 0;
        }
        explicit_bzero(d->data, d->size);
        gnutls_free(d->data);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int tls_issued_cert_pem(const TlsIssued *i, char **ret) {
        gnutls_datum_t d;

        if (gnutls_x509_crt_export2(i->crt, GNUTLS_X509_FMT_PEM, &d) < 0)
                return -EIO;
        return datum_to_string(&d, ret);
}

int tls_issued_key_pem(const TlsIssued *i, char **ret) {
        gnutls_datum_t d;

        if (gnutls_x509_privkey_export2_pkcs8(i->key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d) < 0)
                return -EIO;
        return datum_to_string(&d, ret);
}

int tls_issued_load_ca(const char *cert_path, const char *key_path, TlsIssued *ret, char *error, size_t size) {
        _cleanup_(tls_issued_done) TlsIssued i = {};
        _cleanup_free_ char *cert = NULL, *key = NULL;
        unsigned char a[64], b[64];
        size_t na = sizeof a, nb = sizeof b, n;
        gnutls_datum_t d;
        int r;

        r = tls_global_init();
        if (r < 0)
                return r;
        r = read_full_file(cert_path, &cert, &n, 1024 * 1024);
        if (r < 0)
                return snprintf(error, size, "Cannot read %s: %s.", cert_path, strerror(-r)), r;
        d = (gnutls_datum_t) { .data = (unsigned char *) cert, .size = (unsigned) n };
        if (gnutls_x509_crt_init(&i.crt) < 0 || gnutls_x509_privkey_init(&i.key) < 0)
                return -ENOMEM;
        if (gnutls_x509_crt_import(i.crt, &d, GNUTLS_X509_FMT_PEM) < 0)
                return snprintf(error, size, "%s is not a PEM certificate.", cert_path), -EBADMSG;
        if (gnutls_x509_crt_get_ca_status(i.crt, NULL) <= 0)
                return snprintf(error, size, "The certificate in %s is not a CA.", cert_path), -EBADMSG;

        r = read_full_file(key_path, &key, &n, 1024 * 1024);
        if (r < 0)
                return snprintf(error, size, "Cannot read %s: %s.", key_path, strerror(-r)), r;
        d = (gnutls_datum_t) { .data = (unsigned char *) key, .size = (unsigned) n };
        r = gnutls_x509_privkey_import2(i.key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
        explicit_bzero(key, n);
        if (r < 0)
                return snprintf(error, size, "%s is not an unencrypted PEM private key: %s.", key_path,
                                gnutls_strerror(r)), -EBADMSG;
        if (gnutls_x509_crt_get_key_id(i.crt, GNUTLS_KEYID_USE_SHA256, a, &na) < 0 ||
            gnutls_x509_privkey_get_key_id(i.key, GNUTLS_KEYID_USE_SHA256, b, &nb) < 0 || na != nb ||
            memcmp(a, b, na) != 0)
                return snprintf(error, size, "The key in %s is not the key of the CA in %s.", key_path, cert_path),
                       -EKEYREJECTED;
        *ret = i;
        i = (TlsIssued) {};
        return 0;
}
