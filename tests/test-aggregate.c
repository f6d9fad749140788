/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <float.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "model.h"
#include "server-aggregate.h"

static const char *const names[] = { "conv1.weight", "fc1.bias", "fc3.weight" };
static const size_t sizes[] = { 7, 3, 11 };
#define N_TENSORS 3
#define TOTAL 21

static Model *shape(void) {
        Model *m = NULL;

        assert_int_equal(model_new(&m, names, sizes, N_TENSORS), 0);
        return m;
}

/* A device's upload: maps in the given order of tensor indices, pointing into data. */
typedef struct Update {
        float data[TOTAL];
        FlFeatureMap maps[N_TENSORS];
        uint32_t data_size;
} Update;

static size_t offset_of(size_t t) {
        size_t o = 0;

        for (size_t i = 0; i < t; i++)
                o += sizes[i];
        return o;
}

static void update_init(Update *u, const size_t order[N_TENSORS], uint32_t data_size, unsigned seed) {
        uint32_t x = seed * 2654435761U + 1;

        for (size_t i = 0; i < TOTAL; i++) {
                x = x * 1664525U + 1013904223U;
                /* weights times data_size, as devices upload them */
                u->data[i] = ((float) (x >> 8) / (float) (1U << 24) - 0.5f) * (float) data_size;
        }
        for (size_t i = 0; i < N_TENSORS; i++) {
                size_t t = order[i];

                u->maps[i] = (FlFeatureMap) { .name = names[t], .data = u->data + offset_of(t), .n = sizes[t] };
        }
        u->data_size = data_size;
}

static const size_t in_order[N_TENSORS] = { 0, 1, 2 };
static const size_t shuffled[N_TENSORS] = { 2, 0, 1 };

static void test_sum_and_average(void **state) {
        _cleanup_(model_freep) Model *s = shape(), *avg = NULL;
        _cleanup_(aggregate_freep) Aggregate *a = NULL;
        _cleanup_free_ double *vec = NULL;
        char reason[FL_REASON_MAX];
        Update u[3];
        uint64_t data_size;
        uint32_t updates;
        size_t n;

        assert_int_equal(aggregate_new(&a, s), 0);
        aggregate_reset(a, 4);
        assert_int_equal(a->total, TOTAL);
        update_init(&u[0], in_order, 10, 1);
        update_init(&u[1], shuffled, 30, 2);
        update_init(&u[2], in_order, 7, 3);
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(aggregate_add(a, u[i].maps, N_TENSORS, u[i].data_size, reason), 0);
        assert_int_equal(a->updates, 3);
        assert_int_equal(a->data_size, 47);
        assert_int_equal(a->iteration, 4);

        /* The sum in doubles is exact here: three floats of 24 bits fit in 53. */
        for (size_t i = 0; i < TOTAL; i++)
                assert_true(a->sum[i] == (double) u[0].data[i] + (double) u[1].data[i] + (double) u[2].data[i]);

        assert_int_equal(aggregate_export(a, &vec, &n), 0);
        assert_int_equal(n, TOTAL + 2);
        assert_true(vec[TOTAL] == 47.0);
        assert_true(vec[TOTAL + 1] == 3.0);
        assert_int_equal(aggregate_finish(s, vec, n, &avg, &data_size, &updates), 0);
        assert_int_equal(data_size, 47);
        assert_int_equal(updates, 3);
        for (size_t t = 0, k = 0; t < N_TENSORS; t++)
                for (size_t i = 0; i < sizes[t]; i++, k++) {
                        double expected = ((double) u[0].data[k] + (double) u[1].data[k] + (double) u[2].data[k]) / 47.0;

                        assert_true(avg->tensors[t].data[i] == (float) expected);
                }
        assert_string_equal(avg->tensors[1].name, "fc1.bias");
}

/* Many devices, summed in two different orders and split among three
 * "servers" whose partial sums are then added (what the all-reduce does):
 * the averaged floats agree with an exact reference. */
static void test_order_independent(void **state) {
        enum { DEVICES = 500 };
        _cleanup_(model_freep) Model *s = shape(), *m1 = NULL, *m3 = NULL;
        _cleanup_(aggregate_freep) Aggregate *one = NULL;
        Aggregate *part[3] = {};
        _cleanup_free_ double *v1 = NULL, *v3 = NULL;
        _cleanup_free_ Update *u = calloc(DEVICES, sizeof(Update));
        long double reference[TOTAL] = {};
        uint64_t total = 0;
        size_t n1, n3;
        int identical = 0;

        assert_non_null(u);
        assert_int_equal(aggregate_new(&one, s), 0);
        for (size_t p = 0; p < 3; p++)
                assert_int_equal(aggregate_new(&part[p], s), 0);
        for (size_t d = 0; d < DEVICES; d++) {
                update_init(&u[d], d % 2 ? shuffled : in_order, 1 + (uint32_t) (d * 37 % 600), (unsigned) d + 11);
                total += u[d].data_size;
                for (size_t i = 0; i < TOTAL; i++)
                        reference[i] += u[d].data[i];
        }
        for (size_t d = DEVICES; d-- > 0;)
                assert_int_equal(aggregate_add(one, u[d].maps, N_TENSORS, u[d].data_size, (char[FL_REASON_MAX]) {}), 0);
        for (size_t d = 0; d < DEVICES; d++)
                assert_int_equal(aggregate_add(part[(d * 7) % 3], u[d].maps, N_TENSORS, u[d].data_size,
                                               (char[FL_REASON_MAX]) {}), 0);

        assert_int_equal(aggregate_export(one, &v1, &n1), 0);
        assert_int_equal(aggregate_export(part[0], &v3, &n3), 0);
        for (size_t p = 1; p < 3; p++) {
                _cleanup_free_ double *v = NULL;
                size_t n;

                assert_int_equal(aggregate_export(part[p], &v, &n), 0);
                for (size_t i = 0; i < n; i++)
                        v3[i] += v[i];
        }
        assert_true(v3[TOTAL] == (double) total);
        assert_true(v3[TOTAL + 1] == DEVICES);
        assert_int_equal(aggregate_finish(s, v1, n1, &m1, NULL, NULL), 0);
        assert_int_equal(aggregate_finish(s, v3, n3, &m3, NULL, NULL), 0);

        for (size_t t = 0, k = 0; t < N_TENSORS; t++)
                for (size_t i = 0; i < sizes[t]; i++, k++) {
                        double exact = (double) (reference[k] / (long double) total);
                        float a = m1->tensors[t].data[i], b = m3->tensors[t].data[i];

                        assert_true(fabs((double) a - exact) <= 1e-6 * fabs(exact) + 1e-12);
                        assert_true(fabs((double) b - exact) <= 1e-6 * fabs(exact) + 1e-12);
                        identical += a == b;
                }
        /* Not promised bit for bit, but it is, with this many doubles of headroom. */
        assert_int_equal(identical, TOTAL);
        for (size_t p = 0; p < 3; p++)
                aggregate_free(part[p]);
}

static void assert_untouched(const Aggregate *a, const double *snapshot, uint64_t data_size, uint32_t updates) {
        assert_memory_equal(a->sum, snapshot, a->total * sizeof(double));
        assert_int_equal(a->data_size, data_size);
        assert_int_equal(a->updates, updates);
}

static void test_refusals_leave_sum(void **state) {
        _cleanup_(model_freep) Model *s = shape();
        _cleanup_(aggregate_freep) Aggregate *a = NULL;
        double snapshot[TOTAL];
        char reason[FL_REASON_MAX];
        const float *ordered[N_TENSORS];
        Update good, bad;
        FlFeatureMap maps[N_TENSORS + 1];
        uint32_t nan_bits = UINT32_C(0x7fc00001);
        float nan_value;

        assert_int_equal(aggregate_new(&a, s), 0);
        update_init(&good, in_order, 5, 1);
        assert_int_equal(aggregate_add(a, good.maps, N_TENSORS, 5, reason), 0);
        memcpy(snapshot, a->sum, sizeof snapshot);

        /* Too few, too many weights. */
        assert_int_equal(aggregate_add(a, good.maps, N_TENSORS - 1, 5, reason), -EBADMSG);
        assert_non_null(strstr(reason, "has 2 weights"));
        memcpy(maps, good.maps, sizeof good.maps);
        maps[N_TENSORS] = good.maps[0];
        assert_int_equal(aggregate_add(a, maps, N_TENSORS + 1, 5, reason), -EBADMSG);
        assert_untouched(a, snapshot, 5, 1);

        /* A wrong name. */
        memcpy(maps, good.maps, sizeof good.maps);
        maps[1].name = "fc1.weight";
        assert_int_equal(aggregate_add(a, maps, N_TENSORS, 5, reason), -EBADMSG);
        assert_non_null(strstr(reason, "no weight named 'fc1.weight'"));
        /* A name twice (and so one missing), with the right count. */
        maps[1] = good.maps[0];
        assert_int_equal(aggregate_add(a, maps, N_TENSORS, 5, reason), -EBADMSG);
        assert_non_null(strstr(reason, "appears twice"));
        /* A wrong size. */
        memcpy(maps, good.maps, sizeof good.maps);
        maps[2].n = sizes[2] - 1;
        assert_int_equal(aggregate_add(a, maps, N_TENSORS, 5, reason), -EBADMSG);
        assert_non_null(strstr(reason, "has 10 values, the model 11"));
        assert_untouched(a, snapshot, 5, 1);

        /* NaN, +Inf, -Inf, in the last value of the last tensor checked. */
        memcpy(&nan_value, &nan_bits, sizeof nan_value);
        const float poison[] = { nan_value, INFINITY, -INFINITY };
        for (size_t i = 0; i < ELEMENTSOF(poison); i++) {
                update_init(&bad, shuffled, 5, 2);
                bad.data[TOTAL - 1] = poison[i];
                assert_int_equal(aggregate_add(a, bad.maps, N_TENSORS, 5, reason), -EBADMSG);
                assert_non_null(strstr(reason, "NaN or Inf"));
                assert_untouched(a, snapshot, 5, 1);
        }
        /* Largest finite floats are fine to check (and not added here). */
        update_init(&bad, in_order, 5, 2);
        bad.data[0] = FLT_MAX;
        bad.data[1] = -FLT_MAX;
        assert_int_equal(aggregate_check(a, bad.maps, N_TENSORS, ordered, reason), 0);
        assert_ptr_equal(ordered[0], bad.data);

        /* data_size 0 is refused before anything is added. */
        assert_int_equal(aggregate_add(a, good.maps, N_TENSORS, 0, reason), -EINVAL);
        assert_untouched(a, snapshot, 5, 1);
}

static void test_check_orders(void **state) {
        _cleanup_(model_freep) Model *s = shape();
        _cleanup_(aggregate_freep) Aggregate *a = NULL;
        const float *ordered[N_TENSORS];
        char reason[FL_REASON_MAX];
        Update u;

        assert_int_equal(aggregate_new(&a, s), 0);
        update_init(&u, shuffled, 3, 9);
        assert_int_equal(aggregate_check(a, u.maps, N_TENSORS, ordered, reason), 0);
        for (size_t t = 0; t < N_TENSORS; t++)
                assert_ptr_equal(ordered[t], u.data + offset_of(t));
}

static void test_halves(void **state) {
        _cleanup_(model_freep) Model *s = shape();
        _cleanup_(aggregate_freep) Aggregate *whole = NULL, *halves = NULL;
        const float *ordered[N_TENSORS];
        char reason[FL_REASON_MAX];
        Update u, v;

        assert_int_equal(aggregate_new(&whole, s), 0);
        assert_int_equal(aggregate_new(&halves, s), 0);
        update_init(&u, in_order, 5, 11);
        update_init(&v, shuffled, 8, 12);
        assert_int_equal(aggregate_add(whole, u.maps, N_TENSORS, 5, reason), 0);
        assert_int_equal(aggregate_add(whole, v.maps, N_TENSORS, 8, reason), 0);

        /* The weights first (a replayed log), the counts later: the same sum. */
        assert_int_equal(aggregate_check(halves, u.maps, N_TENSORS, ordered, reason), 0);
        aggregate_add_weights(halves, ordered);
        assert_int_equal(aggregate_check(halves, v.maps, N_TENSORS, ordered, reason), 0);
        aggregate_add_weights(halves, ordered);
        assert_int_equal(halves->updates, 0);
        assert_int_equal(aggregate_count(halves, 0), -EINVAL);
        assert_int_equal(aggregate_count(halves, 8), 0);
        assert_int_equal(aggregate_count(halves, 5), 0);
        assert_int_equal(halves->updates, 2);
        assert_int_equal(halves->data_size, 13);
        assert_memory_equal(halves->sum, whole->sum, TOTAL * sizeof(double));
}

static void test_reset(void **state) {
        _cleanup_(model_freep) Model *s = shape();
        _cleanup_(aggregate_freep) Aggregate *a = NULL;
        char reason[FL_REASON_MAX];
        Update u;

        assert_int_equal(aggregate_new(&a, s), 0);
        update_init(&u, in_order, 9, 4);
        assert_int_equal(aggregate_add(a, u.maps, N_TENSORS, 9, reason), 0);
        aggregate_reset(a, 8);
        assert_int_equal(a->iteration, 8);
        assert_int_equal(a->updates, 0);
        assert_int_equal(a->data_size, 0);
        for (size_t i = 0; i < TOTAL; i++)
                assert_true(a->sum[i] == 0.0);
}

static void test_finish_refusals(void **state) {
        _cleanup_(model_freep) Model *s = shape();
        Model *m = NULL;
        double vec[TOTAL + 2] = {};
        uint64_t data_size = 99;
        uint32_t updates = 99;

        /* Nothing summed: the caller keeps its model. */
        assert_int_equal(aggregate_finish(s, vec, TOTAL + 2, &m, &data_size, &updates), -ENODATA);
        assert_int_equal(data_size, 0);
        assert_int_equal(updates, 0);
        assert_int_equal(aggregate_finish(s, vec, TOTAL + 1, &m, NULL, NULL), -EBADMSG);
        vec[TOTAL] = 2.5;
        assert_int_equal(aggregate_finish(s, vec, TOTAL + 2, &m, NULL, NULL), -EBADMSG);
        vec[TOTAL] = -1;
        assert_int_equal(aggregate_finish(s, vec, TOTAL + 2, &m, NULL, NULL), -EBADMSG);
        vec[TOTAL] = 2;
        vec[TOTAL + 1] = NAN;
        assert_int_equal(aggregate_finish(s, vec, TOTAL + 2, &m, NULL, NULL), -EBADMSG);
        vec[TOTAL + 1] = 1;
        vec[3] = NAN;
        assert_int_equal(aggregate_finish(s, vec, TOTAL + 2, &m, NULL, NULL), -EBADMSG);
        vec[3] = 1e300;
        assert_int_equal(aggregate_finish(s, vec, TOTAL + 2, &m, NULL, NULL), -EBADMSG);
        vec[3] = 3;
        assert_int_equal(aggregate_finish(s, vec, TOTAL + 2, &m, NULL, NULL), 0);
        assert_true(m->tensors[0].data[3] == 1.5f);
        model_free(m);
}

static void test_checksum(void **state) {
        static const char *const one_name[] = { "w" };
        static const size_t one_size[] = { 2 };
        _cleanup_(model_freep) Model *a = NULL, *b = NULL;
        char s1[MODEL_CHECKSUM_STRING_MAX], s2[MODEL_CHECKSUM_STRING_MAX];

        /* An independent computation (Python, FNV-1a 64 over b"w\0" + u64 LE 2 +
         * floats LE [1.0, -2.0]) gives this value. */
        assert_int_equal(model_new(&a, one_name, one_size, 1), 0);
        a->tensors[0].data[0] = 1.0f;
        a->tensors[0].data[1] = -2.0f;
        assert_string_equal(model_checksum_string(a, s1), "a8405038e5cc04fd");

        assert_int_equal(model_copy(&b, a), 0);
        assert_string_equal(model_checksum_string(b, s2), s1);
        b->tensors[0].data[1] = -2.0000002f;
        assert_string_not_equal(model_checksum_string(b, s2), s1);
        assert_int_equal(strlen(s2), 16);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sum_and_average),
                cmocka_unit_test(test_order_independent),
                cmocka_unit_test(test_refusals_leave_sum),
                cmocka_unit_test(test_check_orders),
                cmocka_unit_test(test_halves),
                cmocka_unit_test(test_reset),
                cmocka_unit_test(test_finish_refusals),
                cmocka_unit_test(test_checksum),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
