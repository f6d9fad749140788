/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fl-model-io.h"
#include "flctl-model.h"
#include "flctl-safetensors.h"
#include "json-util.h"
#include "util.h"

static const char *const lenet5_names[] = {
        "conv1.weight", "conv2.weight", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias",
};
static const size_t lenet5_sizes[] = { 150, 2400, 48000, 120, 10080, 84, 840, 10 };

static Model *make_model(const char *const *names, const size_t *sizes, size_t n) {
        Model *m = NULL;
        float v = 0.0f;

        assert_int_equal(model_new(&m, names, sizes, n), 0);
        for (size_t t = 0; t < n; t++)
                for (size_t i = 0; i < sizes[t]; i++) {
                        m->tensors[t].data[i] = v;
                        v += 0.25f;
                }
        return m;
}

static uint64_t read_le64(const uint8_t *p) {
        uint64_t v = 0;

        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

/* Parses buf as a safetensors file the way its readers do and checks it
 * holds m; returns the header for more checks. */
static json_object *check_file(const uint8_t *buf, size_t size, const Model *m) {
        uint64_t header_len;
        json_object *header = NULL, *entry, *v;
        size_t expect_from = 0;

        assert_true(size >= 8);
        header_len = read_le64(buf);
        assert_true(header_len <= size - 8);
        assert_int_equal((8 + header_len) % 8, 0);
        /* JSON first, then only spaces up to the data. */
        assert_int_equal(buf[8], '{');
        assert_int_equal(json_parse_object((const char *) buf + 8, header_len, &header), 0);

        for (size_t t = 0; t < m->n_tensors; t++) {
                const Tensor *tensor = m->tensors + t;
                size_t elements = 1, from, to;

                assert_true(json_object_object_get_ex(header, tensor->name, &entry));
                assert_true(json_object_object_get_ex(entry, "dtype", &v));
                assert_string_equal(json_object_get_string(v), "F32");
                assert_true(json_object_object_get_ex(entry, "shape", &v));
                for (size_t d = 0; d < json_object_array_length(v); d++)
                        elements *= (size_t) json_object_get_int64(json_object_array_get_idx(v, d));
                assert_int_equal(elements, tensor->size);
                assert_true(json_object_object_get_ex(entry, "data_offsets", &v));
                assert_int_equal(json_object_array_length(v), 2);
                from = (size_t) json_object_get_int64(json_object_array_get_idx(v, 0));
                to = (size_t) json_object_get_int64(json_object_array_get_idx(v, 1));
                /* In order, back to back, no hole: what safetensors' validation wants. */
                assert_int_equal(from, expect_from);
                assert_int_equal(to - from, tensor->size * sizeof(float));
                expect_from = to;
                assert_memory_equal(buf + 8 + header_len + from, tensor->data, to - from);
        }
        assert_int_equal(8 + header_len + expect_from, size);
        return header;
}

static void shape_of(json_object *header, const char *name, const int64_t *dims, size_t n) {
        json_object *entry, *shape;

        assert_true(json_object_object_get_ex(header, name, &entry));
        assert_true(json_object_object_get_ex(entry, "shape", &shape));
        assert_int_equal(json_object_array_length(shape), n);
        for (size_t d = 0; d < n; d++)
                assert_int_equal(json_object_get_int64(json_object_array_get_idx(shape, d)), dims[d]);
}

static void test_lenet5_shapes(void **state) {
        _cleanup_(model_freep) Model *m = make_model(lenet5_names, lenet5_sizes, ELEMENTSOF(lenet5_names));
        _cleanup_(json_object_putp) json_object *header = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        json_object *meta, *v;
        size_t size;

        assert_int_equal(safetensors_encode(m, (const char *const[]) { "format", "pt", NULL }, &buf, &size), 0);
        header = check_file(buf, size, m);

        shape_of(header, "conv1.weight", (const int64_t[]) { 6, 1, 5, 5 }, 4);
        shape_of(header, "conv2.weight", (const int64_t[]) { 16, 6, 5, 5 }, 4);
        shape_of(header, "fc1.weight", (const int64_t[]) { 120, 400 }, 2);
        shape_of(header, "fc1.bias", (const int64_t[]) { 120 }, 1);
        shape_of(header, "fc2.weight", (const int64_t[]) { 84, 120 }, 2);
        shape_of(header, "fc3.weight", (const int64_t[]) { 10, 84 }, 2);
        shape_of(header, "fc3.bias", (const int64_t[]) { 10 }, 1);

        assert_true(json_object_object_get_ex(header, "__metadata__", &meta));
        assert_true(json_object_object_get_ex(meta, "format", &v));
        assert_string_equal(json_object_get_string(v), "pt");
}

static void test_other_models_are_1d(void **state) {
        static const char *const names[] = { "w", "b/with \"quotes\" and \\" };
        static const size_t sizes[] = { 6, 3 };
        _cleanup_(model_freep) Model *m = make_model(names, sizes, 2);
        _cleanup_(json_object_putp) json_object *header = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size;

        assert_int_equal(safetensors_encode(m, NULL, &buf, &size), 0);
        header = check_file(buf, size, m);
        shape_of(header, "w", (const int64_t[]) { 6 }, 1);
        shape_of(header, names[1], (const int64_t[]) { 3 }, 1);
        assert_false(json_object_object_get_ex(header, "__metadata__", NULL));
}

static void test_lenet5_names_wrong_size(void **state) {
        size_t sizes[ELEMENTSOF(lenet5_sizes)];
        _cleanup_(model_freep) Model *m = NULL;
        _cleanup_(json_object_putp) json_object *header = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size;

        memcpy(sizes, lenet5_sizes, sizeof sizes);
        sizes[7] = 11;
        m = make_model(lenet5_names, sizes, ELEMENTSOF(sizes));
        assert_int_equal(safetensors_encode(m, NULL, &buf, &size), 0);
        header = check_file(buf, size, m);
        shape_of(header, "conv1.weight", (const int64_t[]) { 150 }, 1);
}

static void test_bad_names(void **state) {
        static const char *const control[] = { "a\x01" };
        static const char *const reserved[] = { "__metadata__" };
        static const char *const high[] = { "caf\xc3\xa9" };
        static const size_t sizes[] = { 2 };
        _cleanup_free_ uint8_t *buf = NULL;
        Model *m;
        size_t size;

        m = make_model(control, sizes, 1);
        assert_int_equal(safetensors_encode(m, NULL, &buf, &size), -EINVAL);
        model_free(m);
        m = make_model(reserved, sizes, 1);
        assert_int_equal(safetensors_encode(m, NULL, &buf, &size), -EINVAL);
        model_free(m);
        m = make_model(high, sizes, 1);
        assert_int_equal(safetensors_encode(m, NULL, &buf, &size), -EINVAL);
        model_free(m);
        assert_null(buf);
}

/* model_write(): the server's bytes as they came, or safetensors by name. */
static void test_model_write(void **state) {
        _cleanup_(model_freep) Model *m = make_model(lenet5_names, lenet5_sizes, ELEMENTSOF(lenet5_names));
        _cleanup_(model_freep) Model *back = NULL;
        _cleanup_(json_object_putp) json_object *header = NULL;
        _cleanup_free_ char *fl = NULL, *st = NULL, *content = NULL;
        char dir[] = "/tmp/test-safetensors.XXXXXX";
        ModelDownload d = { .model = m };
        json_object *meta, *v;
        size_t size;

        assert_non_null(mkdtemp(dir));
        assert_true(asprintf(&fl, "%s/model.fl", dir) > 0);
        assert_true(asprintf(&st, "%s/model.safetensors", dir) > 0);
        assert_int_equal(fl_model_encode(m, &d.data, &d.size), 0);

        assert_int_equal(model_write(fl, &d, MODEL_ITERATION_LATEST), 0);
        assert_int_equal(read_full_file(fl, &content, &size, FL_MODEL_FILE_MAX), 0);
        assert_int_equal(size, d.size);
        assert_memory_equal(content, d.data, size);
        assert_int_equal(fl_model_load_file(fl, 0, &back), 0);
        assert_true(model_same_shape(back, m));

        content = mfree(content);
        assert_int_equal(model_write(st, &d, 7), 0);
        assert_int_equal(read_full_file(st, &content, &size, FL_MODEL_FILE_MAX), 0);
        header = check_file((const uint8_t *) content, size, m);
        assert_true(json_object_object_get_ex(header, "__metadata__", &meta));
        assert_true(json_object_object_get_ex(meta, "iteration", &v));
        assert_string_equal(json_object_get_string(v), "7");

        free(d.data);
        assert_int_equal(unlink(fl), 0);
        assert_int_equal(unlink(st), 0);
        assert_int_equal(rmdir(dir), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lenet5_shapes),
                cmocka_unit_test(test_other_models_are_1d),
                cmocka_unit_test(test_lenet5_names_wrong_size),
                cmocka_unit_test(test_bad_names),
                cmocka_unit_test(test_model_write),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
