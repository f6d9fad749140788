/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "partition.h"
#include "rng.h"

#define N 6000
#define CLASSES 10

static uint8_t labels[N];

static int setup(void **state) {
        /* Balanced classes in a scrambled order. */
        for (size_t i = 0; i < N; i++)
                labels[i] = (uint8_t) ((i * 7919) % CLASSES);
        return 0;
}

/* Every example exactly once, indices ascending within a device. */
static void assert_is_partition(const Partition *p, size_t n) {
        _cleanup_free_ uint8_t *seen = calloc(n, 1);

        assert_int_equal(p->offsets[0], 0);
        assert_int_equal(p->offsets[p->n_devices], n);
        for (size_t k = 0; k < p->n_devices; k++) {
                size_t m;
                const uint32_t *idx = partition_device(p, k, &m);

                assert_true(m >= 1);
                for (size_t j = 0; j < m; j++) {
                        assert_true(idx[j] < n);
                        assert_false(seen[idx[j]]);
                        seen[idx[j]] = 1;
                        if (j > 0)
                                assert_true(idx[j - 1] < idx[j]);
                }
        }
}

static bool same_partition(const Partition *a, const Partition *b) {
        return a->n_devices == b->n_devices &&
               memcmp(a->offsets, b->offsets, (a->n_devices + 1) * sizeof(size_t)) == 0 &&
               memcmp(a->indices, b->indices, a->offsets[a->n_devices] * sizeof(uint32_t)) == 0;
}

static void test_spec_parse(void **state) {
        PartitionSpec s;

        assert_int_equal(partition_spec_parse("iid", &s), 0);
        assert_int_equal(s.kind, PARTITION_IID);
        assert_int_equal(partition_spec_parse("dirichlet:0.5", &s), 0);
        assert_int_equal(s.kind, PARTITION_DIRICHLET);
        assert_true(s.alpha == 0.5);
        assert_int_equal(partition_spec_parse("dirichlet:100", &s), 0);
        assert_true(s.alpha == 100.0);

        assert_int_equal(partition_spec_parse("", &s), -EINVAL);
        assert_int_equal(partition_spec_parse("IID", &s), -EINVAL);
        assert_int_equal(partition_spec_parse("iid:1", &s), -EINVAL);
        assert_int_equal(partition_spec_parse("dirichlet", &s), -EINVAL);
        assert_int_equal(partition_spec_parse("dirichlet:", &s), -EINVAL);
        assert_int_equal(partition_spec_parse("dirichlet:0", &s), -EINVAL);
        assert_int_equal(partition_spec_parse("dirichlet:-1", &s), -EINVAL);
        assert_int_equal(partition_spec_parse("dirichlet:nan", &s), -EINVAL);
        assert_int_equal(partition_spec_parse("dirichlet:inf", &s), -EINVAL);
        assert_int_equal(partition_spec_parse("dirichlet:0.5x", &s), -EINVAL);
        assert_int_equal(partition_spec_parse(NULL, &s), -EINVAL);
}

static void test_iid_sizes(void **state) {
        const PartitionSpec iid = { .kind = PARTITION_IID };
        _cleanup_(partition_freep) Partition *p = NULL, *q = NULL, *r = NULL;

        /* 6000 over 7: 857 or 858 each. */
        assert_int_equal(partition_new(&p, &iid, labels, N, CLASSES, 7, 1), 0);
        assert_is_partition(p, N);
        for (size_t k = 0; k < 7; k++) {
                size_t m;

                (void) partition_device(p, k, &m);
                assert_true(m == N / 7 || m == N / 7 + 1);
        }

        /* Shuffled: device 0 is not simply the first examples, and every
         * device sees every class about equally. */
        assert_int_equal(partition_new(&q, &iid, labels, N, CLASSES, 8, 1), 0);
        assert_is_partition(q, N);
        assert_true(q->indices[749] > 750);
        for (size_t k = 0; k < 8; k++) {
                size_t m, count[CLASSES] = {};
                const uint32_t *idx = partition_device(q, k, &m);

                assert_int_equal(m, 750);
                for (size_t j = 0; j < m; j++)
                        count[labels[idx[j]]]++;
                for (size_t c = 0; c < CLASSES; c++)
                        assert_true(count[c] > 40 && count[c] < 110);
        }

        /* As many devices as examples: one each. */
        assert_int_equal(partition_new(&r, &iid, labels, 10, CLASSES, 10, 1), 0);
        assert_is_partition(r, 10);
}

static void test_deterministic(void **state) {
        const PartitionSpec specs[] = {
                { .kind = PARTITION_IID },
                { .kind = PARTITION_DIRICHLET, .alpha = 0.5 },
        };

        for (size_t s = 0; s < ELEMENTSOF(specs); s++) {
                _cleanup_(partition_freep) Partition *a = NULL, *b = NULL, *c = NULL;

                assert_int_equal(partition_new(&a, &specs[s], labels, N, CLASSES, 8, 42), 0);
                assert_int_equal(partition_new(&b, &specs[s], labels, N, CLASSES, 8, 42), 0);
                assert_int_equal(partition_new(&c, &specs[s], labels, N, CLASSES, 8, 43), 0);
                assert_true(same_partition(a, b));
                assert_false(same_partition(a, c));
        }
}

/* Mean over devices of the share of a device's examples in its most
 * frequent class: 0.1 is perfectly balanced, 1.0 one class per device. */
static double skew(const Partition *p) {
        double total = 0.0;

        for (size_t k = 0; k < p->n_devices; k++) {
                size_t m, count[CLASSES] = {}, top = 0;
                const uint32_t *idx = partition_device(p, k, &m);

                for (size_t j = 0; j < m; j++)
                        count[labels[idx[j]]]++;
                for (size_t c = 0; c < CLASSES; c++)
                        top = MAX(top, count[c]);
                total += (double) top / (double) m;
        }
        return total / (double) p->n_devices;
}

static void test_dirichlet_coverage(void **state) {
        const double alphas[] = { 0.01, 0.1, 1.0, 1000.0 };
        double skews[ELEMENTSOF(alphas)];

        for (size_t a = 0; a < ELEMENTSOF(alphas); a++) {
                const PartitionSpec spec = { .kind = PARTITION_DIRICHLET, .alpha = alphas[a] };
                _cleanup_(partition_freep) Partition *p = NULL;

                assert_int_equal(partition_new(&p, &spec, labels, N, CLASSES, 20, 7), 0);
                assert_is_partition(p, N);                      /* everyone has >= 1 */
                skews[a] = skew(p);
                print_message("alpha %-7g skew %.3f\n", alphas[a], skews[a]);
        }
        /* Smaller alpha, more skew; a huge alpha is nearly iid. */
        for (size_t a = 1; a < ELEMENTSOF(alphas); a++)
                assert_true(skews[a] < skews[a - 1]);
        assert_true(skews[0] > 0.8);
        assert_true(skews[ELEMENTSOF(alphas) - 1] < 0.2);

        /* Many devices, few examples, tiny alpha: still nobody empty. */
        {
                const PartitionSpec spec = { .kind = PARTITION_DIRICHLET, .alpha = 0.001 };
                _cleanup_(partition_freep) Partition *p = NULL;

                assert_int_equal(partition_new(&p, &spec, labels, 100, CLASSES, 100, 3), 0);
                assert_is_partition(p, 100);
        }
}

static void test_refusals(void **state) {
        const PartitionSpec iid = { .kind = PARTITION_IID };
        const PartitionSpec bad_alpha = { .kind = PARTITION_DIRICHLET, .alpha = 0.0 };
        const PartitionSpec bad_kind = { .kind = 7 };
        const uint8_t bad_labels[] = { 0, 1, 10 };
        Partition *p = NULL;

        assert_int_equal(partition_new(&p, &iid, labels, 5, CLASSES, 6, 1), -EINVAL);   /* fewer than devices */
        assert_int_equal(partition_new(&p, &iid, labels, N, CLASSES, 0, 1), -EINVAL);
        assert_int_equal(partition_new(&p, &iid, labels, N, 0, 2, 1), -EINVAL);
        assert_int_equal(partition_new(&p, &bad_alpha, labels, N, CLASSES, 2, 1), -EINVAL);
        assert_int_equal(partition_new(&p, &bad_kind, labels, N, CLASSES, 2, 1), -EINVAL);
        assert_int_equal(partition_new(&p, &iid, bad_labels, 3, CLASSES, 2, 1), -EINVAL);
        assert_null(p);
}

static void test_rng(void **state) {
        Rng a, b;
        double sum = 0.0, sum_log_gamma = 0.0;
        uint64_t counts[3] = {};

        /* xoshiro256** seeded with splitmix64 from 0, computed independently
         * from the reference algorithms: the stream is part of what a
         * --seed promises. */
        rng_seed(&a, 0);
        assert_true(rng_next(&a) == UINT64_C(0x99ec5f36cb75f2b4));
        assert_true(rng_next(&a) == UINT64_C(0xbf6e1f784956452a));
        assert_true(rng_next(&a) == UINT64_C(0x1a5f849d4933e6e0));
        rng_seed(&a, 0);
        rng_seed(&b, 0);
        for (size_t i = 0; i < 100; i++)
                assert_true(rng_next(&a) == rng_next(&b));
        assert_true(rng_derive_seed(1, 0) != rng_derive_seed(1, 1));
        assert_true(rng_derive_seed(1, 0) != rng_derive_seed(2, 0));

        for (size_t i = 0; i < 30000; i++) {
                double u = rng_uniform(&a);

                assert_true(u >= 0.0 && u < 1.0);
                sum += u;
                counts[rng_bounded(&a, 3)]++;
        }
        assert_true(fabs(sum / 30000 - 0.5) < 0.01);
        for (size_t i = 0; i < 3; i++)
                assert_true(counts[i] > 9500 && counts[i] < 10500);

        /* E[Gamma(k)] = k: check the mean for a shape below and above 1. */
        for (size_t i = 0; i < 20000; i++)
                sum_log_gamma += exp(rng_log_gamma_variate(&a, 0.3));
        assert_true(fabs(sum_log_gamma / 20000 - 0.3) < 0.02);
        sum_log_gamma = 0.0;
        for (size_t i = 0; i < 20000; i++)
                sum_log_gamma += exp(rng_log_gamma_variate(&a, 4.0));
        assert_true(fabs(sum_log_gamma / 20000 - 4.0) < 0.1);
        /* Tiny shapes stay finite in log space. */
        assert_true(isfinite(rng_log_gamma_variate(&a, 1e-4)));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_spec_parse),
                cmocka_unit_test(test_iid_sizes),
                cmocka_unit_test(test_deterministic),
                cmocka_unit_test(test_dirichlet_coverage),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_rng),
        };

        return cmocka_run_group_tests(tests, setup, NULL);
}
