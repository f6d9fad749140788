/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "model.h"

static const char *const names[] = { "a.weight", "a.bias", "b.weight" };
static const size_t sizes[] = { 6, 2, 5 };

static void test_new_zero_filled(void **state) {
        _cleanup_(model_freep) Model *m = NULL;

        assert_int_equal(model_new(&m, names, sizes, 3), 0);
        assert_int_equal(m->n_tensors, 3);
        assert_int_equal(model_total_size(m), 13);
        for (size_t i = 0; i < 3; i++) {
                assert_string_equal(m->tensors[i].name, names[i]);
                assert_int_equal(m->tensors[i].size, sizes[i]);
                assert_int_equal((uintptr_t) m->tensors[i].data % 64, 0);
                for (size_t j = 0; j < sizes[i]; j++)
                        assert_true(m->tensors[i].data[j] == 0.0f);
        }
}

static void test_refusals(void **state) {
        const char *dup[] = { "x", "y", "x" };
        const char *empty[] = { "x", "" };
        const char *null[] = { "x", NULL };
        const size_t zero[] = { 1, 0, 1 };
        const size_t huge[] = { SIZE_MAX / 2 };
        Model *m = NULL;

        assert_int_equal(model_new(&m, dup, sizes, 3), -EINVAL);
        assert_int_equal(model_new(&m, empty, sizes, 2), -EINVAL);
        assert_int_equal(model_new(&m, null, sizes, 2), -EINVAL);
        assert_int_equal(model_new(&m, names, zero, 3), -EINVAL);
        assert_int_equal(model_new(&m, names, huge, 1), -EOVERFLOW);
        assert_int_equal(model_new(NULL, names, sizes, 3), -EINVAL);
        assert_null(m);
}

static void test_empty_model(void **state) {
        _cleanup_(model_freep) Model *m = NULL, *c = NULL;

        assert_int_equal(model_new(&m, NULL, NULL, 0), 0);
        assert_int_equal(model_total_size(m), 0);
        assert_int_equal(model_copy(&c, m), 0);
        assert_true(model_same_shape(m, c));
        assert_null(model_find(m, "a"));
}

static void test_copy_like_find(void **state) {
        _cleanup_(model_freep) Model *m = NULL, *c = NULL, *z = NULL, *other = NULL;
        Tensor *t;

        assert_int_equal(model_new(&m, names, sizes, 3), 0);
        for (size_t i = 0; i < 3; i++)
                for (size_t j = 0; j < sizes[i]; j++)
                        m->tensors[i].data[j] = (float) (i * 10 + j) + 0.5f;

        assert_int_equal(model_copy(&c, m), 0);
        assert_true(model_same_shape(m, c));
        for (size_t i = 0; i < 3; i++) {
                assert_ptr_not_equal(c->tensors[i].data, m->tensors[i].data);
                assert_memory_equal(c->tensors[i].data, m->tensors[i].data, sizes[i] * sizeof(float));
        }

        assert_int_equal(model_new_like(&z, m), 0);
        assert_true(model_same_shape(m, z));
        assert_true(z->tensors[2].data[4] == 0.0f);

        t = model_find(m, "b.weight");
        assert_non_null(t);
        assert_ptr_equal(t, &m->tensors[2]);
        assert_true(t->data[1] == 21.5f);
        assert_null(model_find(m, "b.bias"));
        assert_null(model_find(m, NULL));

        /* Same sizes, other order: not the same shape. */
        {
                const char *swapped[] = { "a.bias", "a.weight", "b.weight" };
                const size_t swapped_sizes[] = { 2, 6, 5 };

                assert_int_equal(model_new(&other, swapped, swapped_sizes, 3), 0);
                assert_false(model_same_shape(m, other));
        }
        assert_false(model_same_shape(m, NULL));
        assert_null(model_free(NULL));
}

static void test_shape_differs(void **state) {
        _cleanup_(model_freep) Model *a = NULL, *b = NULL, *c = NULL;
        const size_t other_sizes[] = { 6, 2, 4 };
        const char *other_names[] = { "a.weight", "a.bias", "c.weight" };

        assert_int_equal(model_new(&a, names, sizes, 3), 0);
        assert_int_equal(model_new(&b, names, other_sizes, 3), 0);
        assert_int_equal(model_new(&c, other_names, sizes, 3), 0);
        assert_false(model_same_shape(a, b));
        assert_false(model_same_shape(a, c));
        assert_false(model_same_shape(a, NULL));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_zero_filled),
                cmocka_unit_test(test_refusals),
                cmocka_unit_test(test_empty_model),
                cmocka_unit_test(test_copy_like_find),
                cmocka_unit_test(test_shape_differs),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
