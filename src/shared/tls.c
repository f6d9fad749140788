/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "tls-internal.h"
#include "util.h"

#define REFUSE(r, ...) (snprintf(error, size, __VA_ARGS__), (r))

struct TlsMaterial {
        unsigned n_ref;
        gnutls_certificate_credentials_t accept_creds;
        gnutls_certificate_credentials_t connect_creds;         /* == accept_creds without a client pair */
        gnutls_priority_t priority;
        char *priority_string;

        /* The server pair again, as DER, for the copies each HTTPS session owns. */
        gnutls_datum_t *chain_der;
        unsigned n_chain;
        gnutls_datum_t key_der;
        gnutls_x509_crt_t leaf;

        char fingerprint[2 * 32 + 1];
        char serial[2 * 20 + 1];
        TlsExpiry expiry[TLS_EXPIRY_MAX];
        size_t n_expiry;
};

int tls_global_init(void) {
        static bool done = false;
        int r;

        if (done)
                return 0;
        r = gnutls_global_init();
        if (r < 0)
                return -EIO;
        done = true;
        return 0;
}

int tls_status_describe(unsigned status, char *buf, size_t size) {
        gnutls_datum_t text = {};

        if (status & GNUTLS_CERT_REVOKED) {
                snprintf(buf, size, "is revoked by the CRL (crl_path)");
                return -EKEYREVOKED;
        }
        if (status & GNUTLS_CERT_EXPIRED) {
                snprintf(buf, size, "has expired");
                return -EKEYEXPIRED;
        }
        if (status & GNUTLS_CERT_NOT_ACTIVATED) {
                snprintf(buf, size, "is not valid yet");
                return -EKEYEXPIRED;
        }
        if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA))
                snprintf(buf, size, "is not signed by the cluster's CA (ca_cert_path)");
        else if (status & GNUTLS_CERT_UNEXPECTED_OWNER)
                snprintf(buf, size, "does not name the address it was reached at");
        else if (status & GNUTLS_CERT_PURPOSE_MISMATCH)
                snprintf(buf, size, "is not meant for this use (its extended key usage)");
        else if (status & (GNUTLS_CERT_REVOCATION_DATA_SUPERSEDED | GNUTLS_CERT_REVOCATION_DATA_ISSUED_IN_FUTURE))
                snprintf(buf, size, "cannot be checked: the CRL is out of date");
        else if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) >= 0) {
                snprintf(buf, size, "is refused: %s", (const char *) text.data);
                gnutls_free(text.data);
        } else
                snprintf(buf, size, "is refused (status 0x%x)", status);
        return -EKEYREJECTED;
}

/* Every session on our credentials gets here once the peer's chain is in:
 * the chain must lead to the cluster's CA, be valid now, unrevoked, meant
 * for its side of TLS, and (for the server we connect to) name the address
 * we reached it at. */
static int verify_peer(gnutls_session_t session) {
        TlsPeerCheck *check = gnutls_session_get_ptr(session);
        gnutls_typed_vdata_st data[2];
        unsigned n = 0, status = 0;
        int r;

        if (!check)
                return GNUTLS_E_CERTIFICATE_ERROR;      /* not one of our sessions: nothing to check against */
        data[n++] = (gnutls_typed_vdata_st) {
                .type = GNUTLS_DT_KEY_PURPOSE_OID,
                .data = (unsigned char *) (check->accepting ? GNUTLS_KP_TLS_WWW_CLIENT : GNUTLS_KP_TLS_WWW_SERVER),
        };
        if (!check->accepting && check->expected_name)
                data[n++] = (gnutls_typed_vdata_st) {
                        .type = GNUTLS_DT_DNS_HOSTNAME,
                        .data = (unsigned char *) check->expected_name,
                };
        r = gnutls_certificate_verify_peers(session, data, n, &status);
        if (r < 0)
                status |= GNUTLS_CERT_INVALID;
        check->status = status;
        check->verified = status == 0;
        return status == 0 ? 0 : GNUTLS_E_CERTIFICATE_ERROR;
}

static void datum_list_free(gnutls_datum_t *list, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                gnutls_free(list[i].data);
        free(list);
}

static void material_free(TlsMaterial *m) {
        if (m->connect_creds && m->connect_creds != m->accept_creds)
                gnutls_certificate_free_credentials(m->connect_creds);
        if (m->accept_creds)
                gnutls_certificate_free_credentials(m->accept_creds);
        if (m->priority)
                gnutls_priority_deinit(m->priority);
        free(m->priority_string);
        datum_list_free(m->chain_der, m->n_chain);
        if (m->key_der.data) {
                explicit_bzero(m->key_der.data, m->key_der.size);
                gnutls_free(m->key_der.data);
        }
        if (m->leaf)
                gnutls_x509_crt_deinit(m->leaf);
        free(m);
}

TlsMaterial *tls_material_ref(TlsMaterial *m) {
        if (m)
                m->n_ref++;
        return m;
}

TlsMaterial *tls_material_unref(TlsMaterial *m) {
        if (m && --m->n_ref == 0)
                material_free(m);
        return NULL;
}

static int credentials_new(gnutls_certificate_credentials_t *ret, const TlsKeyPair *p, const TlsTrust *t) {
        gnutls_certificate_credentials_t c = NULL;
        int r;

        r = gnutls_certificate_allocate_credentials(&c);
        if (r < 0)
                return -ENOMEM;
        /* Each of these copies what it is given. */
        r = gnutls_certificate_set_x509_key(c, p->chain, p->n_chain, p->key);
        if (r >= 0)
                r = gnutls_certificate_set_x509_trust(c, t->cas, (int) t->n_cas);
        if (r >= 0 && t->n_crls > 0)
                r = gnutls_certificate_set_x509_crl(c, t->crls, (int) t->n_crls);
        if (r < 0) {
                gnutls_certificate_free_credentials(c);
                return -EIO;
        }
        gnutls_certificate_set_verify_function(c, verify_peer);
        *ret = c;
        return 0;
}

static void expiry_add(TlsMaterial *m, const char *what, const char *key, gnutls_x509_crt_t crt, time_t when) {
        TlsExpiry *e;

        if (m->n_expiry >= TLS_EXPIRY_MAX || when == (time_t) -1)
                return;
        e = &m->expiry[m->n_expiry++];
        *e = (TlsExpiry) { .what = what, .key = key, .when = when };
        if (crt)
                tls_crt_subject(crt, e->subject, sizeof e->subject);
}

static void expiry_add_chain(TlsMaterial *m, const char *what, const char *key, const TlsKeyPair *p) {
        for (unsigned i = 0; i < p->n_chain; i++)
                expiry_add(m, i == 0 ? what : "An intermediate CA certificate", key, p->chain[i],
                           gnutls_x509_crt_get_expiration_time(p->chain[i]));
}

static void hex(const unsigned char *b, size_t n, char *out) {
        for (size_t i = 0; i < n; i++)
                sprintf(out + 2 * i, "%02x", b[i]);
        out[2 * n] = 0;
}

static int material_keep_server_pair(TlsMaterial *m, const TlsKeyPair *p) {
        unsigned char buf[64];
        size_t n;
        int r;

        m->chain_der = calloc(p->n_chain, sizeof *m->chain_der);
        if (!m->chain_der)
                return -ENOMEM;
        for (unsigned i = 0; i < p->n_chain; i++) {
                r = gnutls_x509_crt_export2(p->chain[i], GNUTLS_X509_FMT_DER, &m->chain_der[i]);
                if (r < 0)
                        return -ENOMEM;
                m->n_chain++;
        }
        r = gnutls_x509_privkey_export2_pkcs8(p->key, GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN, &m->key_der);
        if (r < 0)
                return -EIO;
        r = gnutls_x509_crt_init(&m->leaf);
        if (r >= 0)
                r = gnutls_x509_crt_import(m->leaf, &m->chain_der[0], GNUTLS_X509_FMT_DER);
        if (r < 0)
                return -EIO;

        n = 32;
        if (gnutls_x509_crt_get_fingerprint(m->leaf, GNUTLS_DIG_SHA256, buf, &n) >= 0 && n == 32)
                hex(buf, n, m->fingerprint);
        n = 20;
        if (gnutls_x509_crt_get_serial(m->leaf, buf, &n) >= 0 && n <= 20)
                hex(buf, n, m->serial);
        return 0;
}

int tls_material_load(const SslConfig *s, TlsMaterial **ret, char *error, size_t size) {
        _cleanup_(tls_key_pair_done) TlsKeyPair server = {}, client = {};
        _cleanup_(tls_trust_done) TlsTrust trust = {};
        TlsMaterial *m;
        const char *priority = s->cipher_list ?: CONF_SSL_DEFAULT_PRIORITY, *errpos = NULL;
        int r;

        r = tls_global_init();
        if (r < 0)
                return REFUSE(r, "GnuTLS cannot be initialized.");
        r = tls_trust_load(&trust, s->ca_cert_path, s->crl_path, error, size);
        if (r < 0)
                return r;
        r = tls_key_pair_load(&server, "server_cert_path", s->server_cert_path, "server_key_path", s->server_key_path,
                              "server_password", s->server_password, error, size);
        if (r < 0)
                return r;
        r = tls_trust_check_chain(&trust, &server, GNUTLS_KP_TLS_WWW_SERVER, "server_cert_path",
                                  s->server_cert_path, error, size);
        /* Without a client pair the server one serves as client certificate too. */
        if (r >= 0 && !s->client_cert_path)
                r = tls_trust_check_chain(&trust, &server, GNUTLS_KP_TLS_WWW_CLIENT, "server_cert_path",
                                          s->server_cert_path, error, size);
        if (r < 0)
                return r;
        if (s->client_cert_path) {
                r = tls_key_pair_load(&client, "client_cert_path", s->client_cert_path, "client_key_path",
                                      s->client_key_path, "client_password", s->client_password, error, size);
                if (r < 0)
                        return r;
                r = tls_trust_check_chain(&trust, &client, GNUTLS_KP_TLS_WWW_CLIENT, "client_cert_path",
                                          s->client_cert_path, error, size);
                if (r < 0)
                        return r;
        }

        m = calloc(1, sizeof *m);
        if (!m)
                return REFUSE(-ENOMEM, "Out of memory.");
        m->n_ref = 1;

        r = gnutls_priority_init(&m->priority, priority, &errpos);
        if (r < 0) {
                material_free(m);
                return REFUSE(-EINVAL, "ssl.cipher_list '%s' is not a GnuTLS priority string (at '%s'); for "
                              "instance %s. (An OpenSSL cipher list, as MindSpore takes, does not apply.)",
                              priority, strna(errpos), CONF_SSL_DEFAULT_PRIORITY);
        }
        m->priority_string = strdup(priority);
        r = m->priority_string ? credentials_new(&m->accept_creds, &server, &trust) : -ENOMEM;
        if (r >= 0 && s->client_cert_path)
                r = credentials_new(&m->connect_creds, &client, &trust);
        else
                m->connect_creds = m->accept_creds;
        if (r >= 0)
                r = material_keep_server_pair(m, &server);
        if (r < 0) {
                material_free(m);
                return REFUSE(r, "Failed to set up the TLS credentials: %s.", strerror(-r));
        }

        expiry_add_chain(m, "The server certificate", "server_cert_path", &server);
        if (s->client_cert_path)
                expiry_add_chain(m, "The client certificate", "client_cert_path", &client);
        for (unsigned i = 0; i < trust.n_cas; i++)
                expiry_add(m, "A CA certificate", "ca_cert_path", trust.cas[i],
                           gnutls_x509_crt_get_expiration_time(trust.cas[i]));
        for (unsigned i = 0; i < trust.n_crls; i++)
                expiry_add(m, "The CRL", "crl_path", NULL,
                           gnutls_x509_crl_get_next_update(trust.crls[i]));

        *ret = m;
        return 0;
}

gnutls_certificate_credentials_t tls_material_accept_credentials(const TlsMaterial *m) {
        return m->accept_creds;
}

gnutls_certificate_credentials_t tls_material_connect_credentials(const TlsMaterial *m) {
        return m->connect_creds;
}

gnutls_priority_t tls_material_priority(const TlsMaterial *m) {
        return m->priority;
}

const char *tls_material_priority_string(const TlsMaterial *m) {
        return m->priority_string;
}

int tls_session_new(const TlsMaterial *m, bool accepting, TlsPeerCheck *check, gnutls_session_t *ret) {
        gnutls_session_t s = NULL;
        unsigned char a[16];
        int r;

        r = gnutls_init(&s, (accepting ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
        if (r < 0)
                return -ENOMEM;
        check->accepting = accepting;
        gnutls_session_set_ptr(s, check);
        r = gnutls_priority_set(s, m->priority);
        if (r >= 0)
                r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE,
                                           accepting ? m->accept_creds : m->connect_creds);
        if (r >= 0 && accepting)
                gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
        /* SNI carries names, never addresses. */
        if (r >= 0 && !accepting && check->expected_name && inet_pton(AF_INET, check->expected_name, a) != 1 &&
            inet_pton(AF_INET6, check->expected_name, a) != 1)
                r = gnutls_server_name_set(s, GNUTLS_NAME_DNS, check->expected_name, strlen(check->expected_name));
        if (r < 0) {
                gnutls_deinit(s);
                return -EIO;
        }
        *ret = s;
        return 0;
}

int tls_material_server_copy(const TlsMaterial *m, gnutls_pcert_st **ret_chain, unsigned *ret_n,
                             gnutls_privkey_t *ret_key) {
        gnutls_pcert_st *chain;
        gnutls_privkey_t key = NULL;
        unsigned n = 0;
        int r;

        /* gnutls_free()d with the session. */
        chain = gnutls_malloc(m->n_chain * sizeof *chain);
        if (!chain)
                return -ENOMEM;
        for (; n < m->n_chain; n++) {
                r = gnutls_pcert_import_x509_raw(&chain[n], &m->chain_der[n], GNUTLS_X509_FMT_DER, 0);
                if (r < 0)
                        goto fail;
        }
        r = gnutls_privkey_init(&key);
        if (r >= 0)
                r = gnutls_privkey_import_x509_raw(key, &m->key_der, GNUTLS_X509_FMT_DER, NULL, 0);
        if (r < 0)
                goto fail;
        *ret_chain = chain;
        *ret_n = n;
        *ret_key = key;
        return 0;

fail:
        for (unsigned i = 0; i < n; i++)
                gnutls_pcert_deinit(&chain[i]);
        gnutls_free(chain);
        if (key)
                gnutls_privkey_deinit(key);
        return -EIO;
}

const char *tls_material_fingerprint(const TlsMaterial *m) {
        return m->fingerprint;
}

const char *tls_material_serial(const TlsMaterial *m) {
        return m->serial;
}

bool tls_material_names(const TlsMaterial *m, const char *host) {
        return gnutls_x509_crt_check_hostname2(m->leaf, host, 0) != 0;
}

size_t tls_material_expiry(const TlsMaterial *m, const TlsExpiry **ret) {
        *ret = m->expiry;
        return m->n_expiry;
}
