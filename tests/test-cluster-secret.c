/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster-secret.h"
#include "log.h"
#include "tls-test-util.h"
#include "util.h"

static char dir[256];

static char *write_secret(const char *name, const char *text, mode_t mode) {
        static char path[512];

        snprintf(path, sizeof path, "%s/%s", dir, name);
        assert_int_equal(write_file_atomic(path, text), 0);
        assert_int_equal(chmod(path, mode), 0);
        return path;
}

static void test_load(void **state) {
        _cleanup_(cluster_secret_freep) ClusterSecret *s = NULL, *t = NULL;
        char error[512] = "";

        assert_int_equal(cluster_secret_load(write_secret("s", "0123456789abcdef\n\n", 0600), &s, error,
                                             sizeof error), 0);
        assert_int_equal(s->size, 16);          /* without the trailing newlines */
        assert_memory_equal(s->bytes, "0123456789abcdef", 16);
        assert_false(s->world_readable);
        assert_int_equal(cluster_secret_dup(s, &t), 0);
        assert_memory_equal(t->bytes, s->bytes, 16);

        s = cluster_secret_free(s);
        assert_int_equal(cluster_secret_load(write_secret("r", "0123456789abcdefXYZ", 0644), &s, error,
                                             sizeof error), 0);
        assert_true(s->world_readable);

        cluster_secret_free(t);
        t = NULL;
        assert_true(cluster_secret_load(write_secret("short", "0123456789abcde\n", 0600), &t, error,
                                        sizeof error) < 0);
        assert_non_null(strstr(error, "15 bytes"));
        assert_true(cluster_secret_load("/nonexistent/secret", &t, error, sizeof error) < 0);
        assert_non_null(strstr(error, "/nonexistent/secret"));
        assert_null(t);
}

static void test_proofs(void **state) {
        ClusterSecret a = { .bytes = (uint8_t *) "the cluster secret A", .size = 20 };
        ClusterSecret b = { .bytes = (uint8_t *) "the cluster secret B", .size = 20 };
        uint8_t cn[CLUSTER_NONCE_SIZE], sn[CLUSTER_NONCE_SIZE], sn2[CLUSTER_NONCE_SIZE];
        uint8_t pc[CLUSTER_PROOF_SIZE], ps[CLUSTER_PROOF_SIZE];

        assert_int_equal(cluster_secret_nonce(cn), 0);
        assert_int_equal(cluster_secret_nonce(sn), 0);
        assert_int_equal(cluster_secret_nonce(sn2), 0);
        assert_memory_not_equal(cn, sn, CLUSTER_NONCE_SIZE);

        assert_int_equal(cluster_secret_proof(&a, 'C', cn, sn, pc), 0);
        assert_int_equal(cluster_secret_proof(&a, 'S', cn, sn, ps), 0);
        assert_true(cluster_secret_check(&a, 'C', cn, sn, pc, sizeof pc));
        assert_true(cluster_secret_check(&a, 'S', cn, sn, ps, sizeof ps));
        /* Another secret, the other side's proof (reflection), another server
         * nonce (a replay into a new connection), a truncated proof, a flipped bit. */
        assert_false(cluster_secret_check(&b, 'C', cn, sn, pc, sizeof pc));
        assert_false(cluster_secret_check(&a, 'S', cn, sn, pc, sizeof pc));
        assert_false(cluster_secret_check(&a, 'C', cn, sn2, pc, sizeof pc));
        assert_false(cluster_secret_check(&a, 'C', sn, cn, pc, sizeof pc));
        assert_false(cluster_secret_check(&a, 'C', cn, sn, pc, sizeof pc - 1));
        pc[7] ^= 0x10;
        assert_false(cluster_secret_check(&a, 'C', cn, sn, pc, sizeof pc));
        assert_int_equal(cluster_secret_proof(&a, 'X', cn, sn, pc), -EINVAL);

        /* Fixed input, fixed output: the proof is HMAC-SHA256 over the label, side and nonces. */
        {
                /* Python's hmac.new(b"the cluster secret A", b"flcluster cluster secret v1\0C"
                 * + bytes(32) + b"\xff" * 32, hashlib.sha256).digest() */
                static const uint8_t expect[CLUSTER_PROOF_SIZE] = {
                        0xdd, 0xf9, 0xef, 0x8d, 0xa4, 0x3d, 0xe8, 0xd9, 0x53, 0xd1, 0xc2, 0x9e, 0x77, 0xe5, 0xac, 0x78,
                        0x04, 0x79, 0xe0, 0x08, 0xee, 0xa7, 0xc7, 0xca, 0xd4, 0x53, 0x86, 0xdc, 0xb0, 0x2a, 0x34, 0x68
                };
                uint8_t zero[CLUSTER_NONCE_SIZE] = {}, ones[CLUSTER_NONCE_SIZE];

                memset(ones, 0xff, sizeof ones);
                assert_int_equal(cluster_secret_proof(&a, 'C', zero, ones, pc), 0);
                assert_memory_equal(pc, expect, sizeof expect);
        }
}

static int setup(void **state) {
        log_set_max_level(LOG_CRIT);
        tls_test_mkdir(dir);
        return 0;
}

static int teardown(void **state) {
        tls_test_rmdir(dir);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_load),
                cmocka_unit_test(test_proofs),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
