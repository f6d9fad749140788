/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gnutls/pkcs12.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "tls-test-util.h"
#include "util.h"

void tls_test_mkdir(char dir[static 256]) {
        snprintf(dir, 256, "/tmp/fl-tls-test-XXXXXX");
        assert_non_null(mkdtemp(dir));
}

void tls_test_rmdir(const char *dir) {
        char cmd[300];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static void write_text(const char *path, const char *text) {
        assert_int_equal(write_file_atomic(path, text), 0);
}

void tls_test_ca(const char *dir, const char *name, TlsIssued *ret, char path[static 512]) {
        _cleanup_free_ char *pem = NULL;
        time_t now = time(NULL);

        assert_int_equal(tls_issue_ca(name, now - TLS_TEST_DAY, now + 3650 * TLS_TEST_DAY, ret), 0);
        assert_int_equal(tls_issued_cert_pem(ret, &pem), 0);
        snprintf(path, 512, "%s/%s.pem", dir, name);
        write_text(path, pem);
}

void tls_test_node(const char *dir, const char *name, const TlsIssued *ca, const char *host, time_t not_before,
                   time_t not_after, TlsTestNode *ret) {
        _cleanup_(tls_issued_done) TlsIssued node = {};
        _cleanup_free_ char *cert = NULL, *key = NULL;
        char *hosts[] = { (char *) host };

        assert_int_equal(tls_issue_node(ca, hosts, 1, not_before, not_after, &node), 0);
        assert_int_equal(tls_issued_cert_pem(&node, &cert), 0);
        assert_int_equal(tls_issued_key_pem(&node, &key), 0);
        snprintf(ret->cert, sizeof ret->cert, "%s/%s.pem", dir, name);
        snprintf(ret->key, sizeof ret->key, "%s/%s-key.pem", dir, name);
        write_text(ret->cert, cert);
        write_text(ret->key, key);
}

void tls_test_node_now(const char *dir, const char *name, const TlsIssued *ca, const char *host, TlsTestNode *ret) {
        time_t now = time(NULL);

        tls_test_node(dir, name, ca, host, now - TLS_TEST_DAY, now + 365 * TLS_TEST_DAY, ret);
}

static void load_crt(const char *path, gnutls_x509_crt_t *ret) {
        _cleanup_free_ char *text = NULL;
        gnutls_datum_t d;
        size_t n;

        assert_int_equal(read_full_file(path, &text, &n, 1 << 20), 0);
        d = (gnutls_datum_t) { .data = (unsigned char *) text, .size = (unsigned) n };
        assert_int_equal(gnutls_x509_crt_init(ret), 0);
        assert_int_equal(gnutls_x509_crt_import(*ret, &d, GNUTLS_X509_FMT_PEM), 0);
}

void tls_test_crl(const char *dir, const char *name, const TlsIssued *ca, const char *revoked, char path[static 512]) {
        gnutls_x509_crl_t crl;
        gnutls_datum_t out;
        time_t now = time(NULL);
        unsigned char id[64];
        size_t n = sizeof id;
        _cleanup_free_ char *pem = NULL;

        assert_int_equal(gnutls_x509_crl_init(&crl), 0);
        assert_int_equal(gnutls_x509_crl_set_version(crl, 2), 0);
        assert_int_equal(gnutls_x509_crl_set_this_update(crl, now - 60), 0);
        assert_int_equal(gnutls_x509_crl_set_next_update(crl, now + 30 * TLS_TEST_DAY), 0);
        if (revoked) {
                gnutls_x509_crt_t crt;

                load_crt(revoked, &crt);
                assert_int_equal(gnutls_x509_crl_set_crt(crl, crt, now - 60), 0);
                gnutls_x509_crt_deinit(crt);
        }
        assert_int_equal(gnutls_x509_crt_get_subject_key_id(ca->crt, id, &n, NULL), 0);
        assert_int_equal(gnutls_x509_crl_set_authority_key_id(crl, id, n), 0);
        assert_int_equal(gnutls_x509_crl_sign2(crl, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0), 0);
        assert_int_equal(gnutls_x509_crl_export2(crl, GNUTLS_X509_FMT_PEM, &out), 0);
        gnutls_x509_crl_deinit(crl);
        pem = strndup((const char *) out.data, out.size);
        gnutls_free(out.data);
        snprintf(path, 512, "%s/%s.pem", dir, name);
        write_text(path, pem);
}

void tls_test_pkcs12(const char *dir, const char *name, const TlsTestNode *node, const char *password,
                     char path[static 512]) {
        _cleanup_free_ char *key_text = NULL;
        gnutls_x509_crt_t crt;
        gnutls_x509_privkey_t key;
        gnutls_pkcs12_bag_t crt_bag, key_bag;
        gnutls_pkcs12_t p12;
        gnutls_datum_t d, out, id;
        unsigned char key_id[64];
        size_t n = sizeof key_id, size;

        load_crt(node->cert, &crt);
        assert_int_equal(read_full_file(node->key, &key_text, &size, 1 << 20), 0);
        d = (gnutls_datum_t) { .data = (unsigned char *) key_text, .size = (unsigned) size };
        assert_int_equal(gnutls_x509_privkey_init(&key), 0);
        assert_int_equal(gnutls_x509_privkey_import(key, &d, GNUTLS_X509_FMT_PEM), 0);
        assert_int_equal(gnutls_x509_crt_get_key_id(crt, 0, key_id, &n), 0);
        id = (gnutls_datum_t) { .data = key_id, .size = (unsigned) n };

        assert_int_equal(gnutls_pkcs12_bag_init(&crt_bag), 0);
        assert_true(gnutls_pkcs12_bag_set_crt(crt_bag, crt) >= 0);
        assert_int_equal(gnutls_pkcs12_bag_set_key_id(crt_bag, 0, &id), 0);
        assert_int_equal(gnutls_pkcs12_bag_encrypt(crt_bag, password, GNUTLS_PKCS_PBES2_AES_256), 0);
        assert_int_equal(gnutls_pkcs12_bag_init(&key_bag), 0);
        assert_true(gnutls_pkcs12_bag_set_privkey(key_bag, key, password, GNUTLS_PKCS_PBES2_AES_256) >= 0);
        assert_int_equal(gnutls_pkcs12_bag_set_key_id(key_bag, 0, &id), 0);

        assert_int_equal(gnutls_pkcs12_init(&p12), 0);
        assert_int_equal(gnutls_pkcs12_set_bag(p12, crt_bag), 0);
        assert_int_equal(gnutls_pkcs12_set_bag(p12, key_bag), 0);
        assert_int_equal(gnutls_pkcs12_generate_mac2(p12, GNUTLS_MAC_SHA256, password), 0);
        assert_int_equal(gnutls_pkcs12_export2(p12, GNUTLS_X509_FMT_DER, &out), 0);
        snprintf(path, 512, "%s/%s.p12", dir, name);
        assert_int_equal(write_data_atomic(path, out.data, out.size), 0);

        gnutls_free(out.data);
        gnutls_pkcs12_deinit(p12);
        gnutls_pkcs12_bag_deinit(crt_bag);
        gnutls_pkcs12_bag_deinit(key_bag);
        gnutls_x509_privkey_deinit(key);
        gnutls_x509_crt_deinit(crt);
}

SslConfig tls_test_ssl(const char *ca, const TlsTestNode *node, const char *crl) {
        return (SslConfig) {
                .server_cert_path = (char *) node->cert,
                .server_key_path = (char *) node->key,
                .ca_cert_path = (char *) ca,
                .crl_path = (char *) crl,
                .cert_expire_warning_time_in_day = CONF_SSL_DEFAULT_WARNING_DAYS,
                .cert_check_interval_in_hour = CONF_SSL_DEFAULT_CHECK_HOURS,
        };
}

void tls_test_bundle(const char *dir, const char *name, const char *a, const char *b, char path[static 512]) {
        _cleanup_free_ char *ta = NULL, *tb = NULL, *text = NULL;

        assert_int_equal(read_full_file(a, &ta, NULL, 1 << 20), 0);
        assert_int_equal(read_full_file(b, &tb, NULL, 1 << 20), 0);
        assert_true(asprintf(&text, "%s%s", ta, tb) > 0);
        snprintf(path, 512, "%s/%s.pem", dir, name);
        write_text(path, text);
}

void tls_test_world(const char *dir, TlsTestWorld *ret) {
        *ret = (TlsTestWorld) {};
        tls_test_ca(dir, "ca", &ret->ca, ret->ca_path);
        tls_test_ca(dir, "other-ca", &ret->other_ca, ret->other_ca_path);
        tls_test_node_now(dir, "node", &ret->ca, "127.0.0.1", &ret->node);
        tls_test_node_now(dir, "other", &ret->other_ca, "127.0.0.1", &ret->other_node);
}

void tls_test_world_done(TlsTestWorld *w) {
        tls_issued_done(&w->ca);
        tls_issued_done(&w->other_ca);
}

char *test_capture_stderr(void (*fn)(void *userdata), void *userdata) {
        char path[] = "/tmp/fl-test-stderr-XXXXXX";
        char *text = NULL;
        int fd, saved;

        fd = mkstemp(path);
        assert_true(fd >= 0);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        assert_true(saved >= 0 && dup2(fd, STDERR_FILENO) >= 0);
        fn(userdata);
        fflush(stderr);
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        close(fd);
        assert_int_equal(read_full_file(path, &text, NULL, 1 << 20), 0);
        unlink(path);
        return text;
}
