/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "digest.h"

static uint64_t once(const void *p, size_t n) {
        Digest d;

        digest_init(&d);
        digest_add(&d, p, n);
        return digest_final(&d);
}

static void test_streaming_is_chunk_independent(void **state) {
        uint8_t buf[1000];

        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = (uint8_t) (i * 131 + 7);

        /* Every split point, and byte by byte: the same digest as all at once. */
        for (size_t n = 0; n <= 100; n++) {
                uint64_t want = once(buf, n);

                for (size_t k = 0; k <= n; k++) {
                        Digest d;

                        digest_init(&d);
                        digest_add(&d, buf, k);
                        digest_add(&d, buf + k, n - k);
                        assert_true(digest_final(&d) == want);
                }
        }
        {
                Digest d;

                digest_init(&d);
                for (size_t i = 0; i < sizeof buf; i++)
                        digest_add(&d, buf + i, 1);
                assert_true(digest_final(&d) == once(buf, sizeof buf));
        }
}

static void test_changes_show(void **state) {
        float a[4096], b[4096];
        uint64_t base;

        for (size_t i = 0; i < 4096; i++)
                a[i] = (float) i / 3.0f;
        base = once(a, sizeof a);
        assert_true(base != 0);

        /* One flipped bit anywhere, and the length, change it. */
        for (size_t byte = 0; byte < sizeof a; byte += 97)
                for (unsigned bit = 0; bit < 8; bit += 3) {
                        memcpy(b, a, sizeof a);
                        ((uint8_t *) b)[byte] ^= (uint8_t) (1u << bit);
                        assert_true(once(b, sizeof b) != base);
                }
        assert_true(once(a, sizeof a - 1) != base);
        assert_true(once("", 0) != once("\0", 1));
}

static void test_vectors_keep_boundaries(void **state) {
        const char *x = "abcdef";
        const void *v1[] = { x, x + 2 }, *v2[] = { x, x + 3 };
        size_t s1[] = { 2, 4 }, s2[] = { 3, 3 };

        assert_true(digest_vectors(v1, s1, 2) != digest_vectors(v2, s2, 2));
        assert_true(digest_vectors(v1, s1, 2) == digest_vectors(v1, s1, 2));
}

static void test_strings(void **state) {
        char s[DIGEST_STRING_MAX];
        uint64_t v;

        assert_string_equal(digest_to_string(UINT64_C(0x0123456789abcdef), s), "0123456789abcdef");
        assert_int_equal(digest_from_string(s, &v), 0);
        assert_true(v == UINT64_C(0x0123456789abcdef));
        assert_int_equal(digest_from_string("0123456789ABCDEF", &v), -EINVAL);  /* lowercase only */
        assert_int_equal(digest_from_string("0123456789abcde", &v), -EINVAL);
        assert_int_equal(digest_from_string("0123456789abcdef0", &v), -EINVAL);
        assert_int_equal(digest_from_string("0123456789abcdeg", &v), -EINVAL);
        assert_int_equal(digest_from_string("0000000000000000", &v), -EINVAL);  /* 0 is none */
        assert_int_equal(digest_from_string("", &v), -EINVAL);
        assert_int_equal(digest_from_string(NULL, &v), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_streaming_is_chunk_independent),
                cmocka_unit_test(test_changes_show),
                cmocka_unit_test(test_vectors_keep_boundaries),
                cmocka_unit_test(test_strings),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
