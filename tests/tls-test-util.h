/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* TLS material for the unit tests, made with GnuTLS in a scratch directory:
 * a CA, node certificates it signs (valid, expired, not yet valid, from
 * another CA), a CRL, a PKCS#12 file. Each helper aborts the test on a
 * failure (they are not what is being tested). */

#include <time.h>

#include "conf.h"
#include "tls-issue.h"

#define TLS_TEST_DAY ((time_t) 86400)

typedef struct TlsTestNode {
        char cert[512];
        char key[512];
} TlsTestNode;

/* mkdtemp() under /tmp; the caller removes it with tls_test_rmdir(). */
void tls_test_mkdir(char dir[static 256]);
void tls_test_rmdir(const char *dir);

/* dir/NAME.pem (and dir/NAME-key.pem): a CA valid from yesterday for ten years. */
void tls_test_ca(const char *dir, const char *name, TlsIssued *ret, char path[static 512]);
/* A node certificate for host, valid from not_before to not_after. */
void tls_test_node(const char *dir, const char *name, const TlsIssued *ca, const char *host, time_t not_before,
                   time_t not_after, TlsTestNode *ret);
/* A node valid now (yesterday to next year). */
void tls_test_node_now(const char *dir, const char *name, const TlsIssued *ca, const char *host, TlsTestNode *ret);
/* dir/NAME.pem: a CRL of ca revoking the certificate in revoked (a PEM path; NULL: an empty CRL). */
void tls_test_crl(const char *dir, const char *name, const TlsIssued *ca, const char *revoked, char path[static 512]);
/* dir/NAME.p12: the node's certificate and key, encrypted with password. */
void tls_test_pkcs12(const char *dir, const char *name, const TlsTestNode *node, const char *password,
                     char path[static 512]);

/* dir/NAME.pem: the certificates of the PEM files a and b, one after the other. */
void tls_test_bundle(const char *dir, const char *name, const char *a, const char *b, char path[static 512]);

/* The usual cast: the cluster's CA and a node of it, and another CA with a
 * node of its own, all for 127.0.0.1. */
typedef struct TlsTestWorld {
        TlsIssued ca, other_ca;
        char ca_path[512], other_ca_path[512];
        TlsTestNode node, other_node;
} TlsTestWorld;

void tls_test_world(const char *dir, TlsTestWorld *ret);
void tls_test_world_done(TlsTestWorld *w);

/* Runs fn with stderr going to a string, returned (malloc()ed). */
char *test_capture_stderr(void (*fn)(void *userdata), void *userdata);

/* An SslConfig naming them (strings owned by the caller's arrays). */
SslConfig tls_test_ssl(const char *ca, const TlsTestNode *node, const char *crl);
