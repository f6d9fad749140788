/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "tls-issue.h"
#include "tls-test-util.h"
#include "tls.h"
#include "util.h"

/* The TLS material: what loads, what is refused and why (the words an
 * operator reads), and what a GnuTLS handshake on its credentials accepts. */

static char dir[256];
static TlsTestWorld w;

static int setup(void **state) {
        log_set_max_level(LOG_CRIT);
        tls_test_mkdir(dir);
        tls_test_world(dir, &w);
        return 0;
}

static int teardown(void **state) {
        tls_test_world_done(&w);
        tls_test_rmdir(dir);
        return 0;
}

/* Loads s and expects a refusal whose message has every one of words. */
static void expect_refused(const SslConfig *s, const char *word, const char *word2) {
        TlsMaterial *m = NULL;
        char error[512] = "";

        if (tls_material_load(s, &m, error, sizeof error) >= 0)
                fail_msg("loaded, expected a refusal with '%s'", word);
        if (!strstr(error, word) || (word2 && !strstr(error, word2)))
                fail_msg("the refusal does not say '%s'%s%s: %s", word, word2 ? " and " : "", word2 ?: "", error);
        assert_null(m);
}

static void test_load(void **state) {
        SslConfig s = tls_test_ssl(w.ca_path, &w.node, NULL);
        _cleanup_(tls_material_unrefp) TlsMaterial *m = NULL;
        gnutls_pcert_st *chain = NULL;
        gnutls_privkey_t key = NULL;
        const TlsExpiry *e;
        unsigned n = 0;
        char error[512] = "";
        size_t k;

        assert_int_equal(tls_material_load(&s, &m, error, sizeof error), 0);
        assert_int_equal(strlen(tls_material_fingerprint(m)), 64);
        assert_true(strlen(tls_material_serial(m)) == 32);
        assert_true(tls_material_names(m, "127.0.0.1"));
        assert_false(tls_material_names(m, "127.0.0.2"));
        assert_false(tls_material_names(m, "localhost"));
        assert_string_equal(tls_material_priority_string(m), CONF_SSL_DEFAULT_PRIORITY);
        /* Without a client pair, one set of credentials serves both ways. */
        assert_ptr_equal(tls_material_accept_credentials(m), tls_material_connect_credentials(m));

        k = tls_material_expiry(m, &e);
        assert_int_equal(k, 2);         /* the node certificate, the CA */
        assert_string_equal(e[0].what, "The server certificate");
        assert_string_equal(e[0].key, "server_cert_path");
        assert_non_null(strstr(e[0].subject, "CN=127.0.0.1"));
        assert_true(e[0].when > time(NULL) + 300 * TLS_TEST_DAY);
        assert_string_equal(e[1].key, "ca_cert_path");

        assert_int_equal(tls_material_server_copy(m, &chain, &n, &key), 0);
        assert_int_equal(n, 1);
        assert_non_null(key);
        gnutls_pcert_deinit(&chain[0]);
        gnutls_free(chain);
        gnutls_privkey_deinit(key);

        /* References: the material outlives its loader's handle. */
        tls_material_ref(m);
        tls_material_unref(m);
        assert_int_equal(strlen(tls_material_fingerprint(m)), 64);
}

static void test_dns_names(void **state) {
        _cleanup_(tls_issued_done) TlsIssued n = {};
        _cleanup_(tls_material_unrefp) TlsMaterial *m = NULL;
        _cleanup_free_ char *cert = NULL, *key = NULL;
        char *hosts[] = { "10.0.0.5", "fl.example.org", "::1" };
        TlsTestNode files;
        SslConfig s;
        time_t now = time(NULL);
        char error[512];

        assert_int_equal(tls_issue_node(&w.ca, hosts, 3, now - 60, now + TLS_TEST_DAY, &n), 0);
        assert_int_equal(tls_issued_cert_pem(&n, &cert), 0);
        assert_int_equal(tls_issued_key_pem(&n, &key), 0);
        snprintf(files.cert, sizeof files.cert, "%s/multi.pem", dir);
        snprintf(files.key, sizeof files.key, "%s/multi-key.pem", dir);
        assert_int_equal(write_file_atomic(files.cert, cert), 0);
        assert_int_equal(write_file_atomic(files.key, key), 0);
        s = tls_test_ssl(w.ca_path, &files, NULL);
        assert_int_equal(tls_material_load(&s, &m, error, sizeof error), 0);
        assert_true(tls_material_names(m, "10.0.0.5"));
        assert_true(tls_material_names(m, "fl.example.org"));
        assert_true(tls_material_names(m, "::1"));
        assert_false(tls_material_names(m, "10.0.0.6"));
        assert_false(tls_material_names(m, "example.org"));

        assert_true(tls_dns_name_is_valid("a.b-c.example"));
        assert_true(tls_dns_name_is_valid("*.example.org"));
        assert_false(tls_dns_name_is_valid(""));
        assert_false(tls_dns_name_is_valid("a..b"));
        assert_false(tls_dns_name_is_valid("-a.b"));
        assert_false(tls_dns_name_is_valid("a-.b"));
        assert_false(tls_dns_name_is_valid("a b"));
        assert_false(tls_dns_name_is_valid("a.b."));
        {
                char *bad[] = { "10.0.0.5", "not a name" };

                tls_issued_done(&n);
                assert_int_equal(tls_issue_node(&w.ca, bad, 2, now - 60, now + TLS_TEST_DAY, &n), -EINVAL);
                assert_int_equal(tls_issue_node(&w.ca, bad, 0, now - 60, now + TLS_TEST_DAY, &n), -EINVAL);
        }
}

static void test_refusals(void **state) {
        time_t now = time(NULL);
        TlsTestNode expired, future, revoked, swapped;
        char crl[512], other_crl[512], missing[512];
        SslConfig s;

        /* Another CA's node, an expired one, one not valid yet. */
        s = tls_test_ssl(w.ca_path, &w.other_node, NULL);
        expect_refused(&s, "server_cert_path", "not signed by the cluster's CA");
        tls_test_node(dir, "expired", &w.ca, "127.0.0.1", now - 30 * TLS_TEST_DAY, now - TLS_TEST_DAY, &expired);
        s = tls_test_ssl(w.ca_path, &expired, NULL);
        expect_refused(&s, "has expired", expired.cert);
        tls_test_node(dir, "future", &w.ca, "127.0.0.1", now + TLS_TEST_DAY, now + 30 * TLS_TEST_DAY, &future);
        s = tls_test_ssl(w.ca_path, &future, NULL);
        expect_refused(&s, "is not valid yet", NULL);

        /* Revoked by the CRL; a CRL of another CA. */
        tls_test_node_now(dir, "revoked", &w.ca, "127.0.0.1", &revoked);
        tls_test_crl(dir, "crl", &w.ca, revoked.cert, crl);
        s = tls_test_ssl(w.ca_path, &revoked, crl);
        expect_refused(&s, "revoked", NULL);
        s = tls_test_ssl(w.ca_path, &w.node, crl);
        {
                _cleanup_(tls_material_unrefp) TlsMaterial *m = NULL;
                const TlsExpiry *e;
                char error[512];

                assert_int_equal(tls_material_load(&s, &m, error, sizeof error), 0);
                assert_int_equal(tls_material_expiry(m, &e), 3);
                assert_string_equal(e[2].key, "crl_path");
        }
        tls_test_crl(dir, "other-crl", &w.other_ca, NULL, other_crl);
        s = tls_test_ssl(w.ca_path, &w.node, other_crl);
        expect_refused(&s, "crl_path", "not signed by a CA");

        /* The key of another certificate; no key; files that are not there or not PEM. */
        swapped = w.node;
        snprintf(swapped.key, sizeof swapped.key, "%s", w.other_node.key);
        s = tls_test_ssl(w.ca_path, &swapped, NULL);
        expect_refused(&s, "does not belong to the certificate", NULL);
        s = tls_test_ssl(w.ca_path, &w.node, NULL);
        s.server_key_path = NULL;
        expect_refused(&s, "server_key_path is not set", NULL);
        s = tls_test_ssl(NULL, &w.node, NULL);
        expect_refused(&s, "ca_cert_path is not set", NULL);
        snprintf(missing, sizeof missing, "%s/missing.pem", dir);
        s = tls_test_ssl(missing, &w.node, NULL);
        expect_refused(&s, "cannot read", missing);
        s = tls_test_ssl(w.ca_path, &w.node, NULL);
        s.server_cert_path = (char *) w.node.key;          /* a key is not a certificate */
        s.server_key_path = NULL;
        expect_refused(&s, "server_cert_path", NULL);
        s = tls_test_ssl(w.node.key, &w.node, NULL);
        expect_refused(&s, "ca_cert_path", "no PEM certificate");
        s = tls_test_ssl(w.ca_path, &w.node, NULL);
        s.cipher_list = (char *) "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256";
        expect_refused(&s, "cipher_list", "GnuTLS priority string");

        /* A separate client pair is checked too. */
        s = tls_test_ssl(w.ca_path, &w.node, NULL);
        s.client_cert_path = (char *) expired.cert;
        s.client_key_path = (char *) expired.key;
        expect_refused(&s, "client_cert_path", "has expired");
}

static void test_pkcs12_and_encrypted_keys(void **state) {
        char p12[512], enc_key[512];
        SslConfig s = tls_test_ssl(w.ca_path, &w.node, NULL);
        TlsMaterial *m = NULL;
        char error[512] = "";

        tls_test_pkcs12(dir, "node", &w.node, "s3cret", p12);
        s.server_cert_path = p12;
        s.server_key_path = NULL;
        s.server_password = (char *) "s3cret";
        assert_int_equal(tls_material_load(&s, &m, error, sizeof error), 0);
        assert_true(tls_material_names(m, "127.0.0.1"));
        m = tls_material_unref(m);

        s.server_password = (char *) "wrong";
        expect_refused(&s, "server_password", "does not open");
        s.server_password = NULL;
        expect_refused(&s, "cannot decrypt", NULL);
        s.server_password = (char *) "s3cret";
        s.server_key_path = (char *) w.node.key;
        expect_refused(&s, "PKCS#12", "remove ssl.server_key_path");

        /* A PEM key encrypted as PKCS#8 with the password. */
        {
                _cleanup_free_ char *text = NULL;
                gnutls_x509_privkey_t key;
                gnutls_datum_t d, out;
                size_t n;

                assert_int_equal(read_full_file(w.node.key, &text, &n, 1 << 20), 0);
                d = (gnutls_datum_t) { .data = (unsigned char *) text, .size = (unsigned) n };
                assert_int_equal(gnutls_x509_privkey_init(&key), 0);
                assert_int_equal(gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_PEM), 0);
                assert_int_equal(gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, "pw",
                                                                   GNUTLS_PKCS_PBES2_AES_256, &out), 0);
                snprintf(enc_key, sizeof enc_key, "%s/node-key-enc.pem", dir);
                assert_int_equal(write_data_atomic(enc_key, out.data, out.size), 0);
                gnutls_free(out.data);
                gnutls_x509_privkey_deinit(key);
        }
        s = tls_test_ssl(w.ca_path, &w.node, NULL);
        s.server_key_path = enc_key;
        s.server_password = (char *) "pw";
        assert_int_equal(tls_material_load(&s, &m, error, sizeof error), 0);
        m = tls_material_unref(m);
        s.server_password = NULL;
        expect_refused(&s, "encrypted", "server_password is not set");
}

/* A handshake between two sessions of ours over a socketpair, both driven
 * from this thread (non-blocking). Returns the server's and client's
 * results. */
static void handshake(TlsMaterial *server_m, TlsMaterial *client_m, const char *expected, TlsPeerCheck *sc,
                      TlsPeerCheck *cc, int *ret_server, int *ret_client) {
        gnutls_session_t s, c;
        int fds[2], rs = GNUTLS_E_AGAIN, rc = GNUTLS_E_AGAIN;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
        *sc = (TlsPeerCheck) {};
        *cc = (TlsPeerCheck) { .expected_name = expected };
        assert_int_equal(tls_session_new(server_m, true, sc, &s), 0);
        assert_int_equal(tls_session_new(client_m, false, cc, &c), 0);
        gnutls_transport_set_int(s, fds[0]);
        gnutls_transport_set_int(c, fds[1]);

        /* As a connection does: a side that fails says why with an alert. */
        for (int i = 0; i < 1000; i++) {
                bool s_done = rs == 0 || gnutls_error_is_fatal(rs), c_done = rc == 0 || gnutls_error_is_fatal(rc);

                if (s_done && c_done)
                        break;
                if (!s_done) {
                        rs = gnutls_handshake(s);
                        if (gnutls_error_is_fatal(rs))
                                (void) gnutls_alert_send_appropriate(s, rs);
                }
                if (!c_done) {
                        rc = gnutls_handshake(c);
                        if (gnutls_error_is_fatal(rc))
                                (void) gnutls_alert_send_appropriate(c, rc);
                }
        }
        gnutls_deinit(s);
        gnutls_deinit(c);
        close(fds[0]);
        close(fds[1]);
        *ret_server = rs;
        *ret_client = rc;
}

static TlsMaterial *load(const char *ca_file, const TlsTestNode *n, const char *crl) {
        SslConfig s = tls_test_ssl(ca_file, n, crl);
        TlsMaterial *m = NULL;
        char error[512] = "";

        if (tls_material_load(&s, &m, error, sizeof error) < 0)
                fail_msg("cannot load %s: %s", n->cert, error);
        return m;
}

static void test_handshakes(void **state) {
        _cleanup_(tls_material_unrefp) TlsMaterial *good = load(w.ca_path, &w.node, NULL);
        _cleanup_(tls_material_unrefp) TlsMaterial *rogue = load(w.other_ca_path, &w.other_node, NULL);
        _cleanup_(tls_material_unrefp) TlsMaterial *rogue_trusting = NULL;
        _cleanup_(tls_material_unrefp) TlsMaterial *with_crl = NULL, *revoked_m = NULL;
        TlsTestNode revoked;
        TlsPeerCheck sc, cc;
        char crl[512], reason[256], both[512];
        int rs, rc;

        tls_test_bundle(dir, "both-cas", w.other_ca_path, w.ca_path, both);
        rogue_trusting = load(both, &w.other_node, NULL);

        /* Two members: both sides verified, the server by its address. */
        handshake(good, good, "127.0.0.1", &sc, &cc, &rs, &rc);
        assert_int_equal(rs, 0);
        assert_int_equal(rc, 0);
        assert_true(sc.verified);
        assert_true(cc.verified);

        /* A rogue client (a certificate of its own CA; it trusts the cluster's,
         * which is public) is refused by the member... */
        handshake(good, rogue_trusting, NULL, &sc, &cc, &rs, &rc);
        assert_true(rs < 0);            /* (in TLS 1.3 the client is done first, and hears it after) */
        assert_false(sc.verified);
        assert_true(cc.verified);

        /* ...and a member refuses a rogue server. */
        handshake(rogue, good, "127.0.0.1", &sc, &cc, &rs, &rc);
        assert_true(rc < 0);
        assert_true(rs < 0);
        assert_true(cc.status & GNUTLS_CERT_SIGNER_NOT_FOUND);
        assert_int_equal(tls_status_describe(cc.status, reason, sizeof reason), -EKEYREJECTED);
        assert_non_null(strstr(reason, "not signed by the cluster's CA"));

        /* The server must carry the address the client dialled. */
        handshake(good, good, "127.0.0.2", &sc, &cc, &rs, &rc);
        assert_true(rc < 0);
        assert_true(cc.status & GNUTLS_CERT_UNEXPECTED_OWNER);

        /* A revoked member is refused by one that has the CRL. */
        tls_test_node_now(dir, "revoked2", &w.ca, "127.0.0.1", &revoked);
        tls_test_crl(dir, "crl2", &w.ca, revoked.cert, crl);
        with_crl = load(w.ca_path, &w.node, crl);
        revoked_m = load(w.ca_path, &revoked, NULL);
        handshake(with_crl, revoked_m, NULL, &sc, &cc, &rs, &rc);
        assert_true(rs < 0);
        assert_true(sc.status & GNUTLS_CERT_REVOKED);
        assert_int_equal(tls_status_describe(sc.status, reason, sizeof reason), -EKEYREVOKED);
        handshake(with_crl, good, NULL, &sc, &cc, &rs, &rc);
        assert_int_equal(rs, 0);
}

static void test_describe(void **state) {
        char buf[256];

        assert_int_equal(tls_status_describe(GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED, buf, sizeof buf), -EKEYEXPIRED);
        assert_string_equal(buf, "has expired");
        assert_int_equal(tls_status_describe(GNUTLS_CERT_INVALID | GNUTLS_CERT_NOT_ACTIVATED, buf, sizeof buf),
                         -EKEYEXPIRED);
        assert_int_equal(tls_status_describe(GNUTLS_CERT_INVALID | GNUTLS_CERT_PURPOSE_MISMATCH, buf, sizeof buf),
                         -EKEYREJECTED);
        assert_non_null(strstr(buf, "key usage"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_load),
                cmocka_unit_test(test_dns_names),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_pkcs12_and_encrypted_keys),
                cmocka_unit_test(test_handshakes),
                cmocka_unit_test(test_describe),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
