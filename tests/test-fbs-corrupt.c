/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hostile buffers: every one must be refused with -EBADMSG (or decode into
 * something whose every pointer stays inside the buffer), never crash and
 * never read outside. Each buffer sits in an allocation of exactly its size,
 * so that valgrind or ASan catch the first byte read past it. */
#include <stdio.h>
#include <string.h>

#include "fbs.h"
#include "test-fbs.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void) {
        /* xorshift64: fixed seed, the same corruptions on every run. */
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void store_u32(uint8_t *p, uint32_t v) {
        memcpy(p, &v, 4);
}

static void store_u16(uint8_t *p, uint16_t v) {
        memcpy(p, &v, 2);
}

/* Decodes as type: a refusal, or a message that is safe to walk. */
static int decode_checked(const FlTableType *type, const uint8_t *buf, size_t size) {
        _cleanup_free_ void *msg = calloc(1, type->size);
        char reason[FL_REASON_MAX];
        int r;

        assert_non_null(msg);
        r = fl_message_decode(type, buf, size, msg, reason);
        if (r == -EBADMSG) {
                assert_true(reason[0] != 0);
                return r;
        }
        assert_int_equal(r, 0);
        (void) message_walk(type, msg);

        /* What decoded also re-encodes, and reads back the same. */
        {
                _cleanup_free_ void *again = calloc(1, type->size);
                _cleanup_free_ uint8_t *buf2 = NULL;
                size_t size2;

                assert_int_equal(fl_message_encode(type, msg, NULL, &buf2, &size2), 0);
                assert_int_equal(fl_message_decode(type, buf2, size2, again, NULL), 0);
                sample_assert_equal(type, msg, again);
                fl_message_done(type, again);
        }
        fl_message_done(type, msg);
        return 0;
}

static int decode_as(const FlTableType *type, const uint8_t *buf, size_t size) {
        _cleanup_free_ uint8_t *copy = exact_copy(buf, size);

        return decode_checked(type, copy, size);
}

static void test_truncated_every_length(void **state) {
        size_t refused = 0, total = 0;

        for (size_t i = 0; i < fl_n_table_types; i++) {
                _cleanup_free_ uint8_t *buf = NULL;
                size_t size;

                sample_encode(fl_table_types[i], 3, FL_FILE_IDENTIFIER, &buf, &size);
                for (size_t len = 0; len < size; len++) {
                        total++;
                        if (decode_as(fl_table_types[i], buf, len) < 0)
                                refused++;
                }
        }
        /* Back-to-front building puts the root table's children behind it:
         * nearly every cut loses something a field points at. */
        print_message("truncations: %zu of %zu refused\n", refused, total);
        assert_true(refused > total * 9 / 10);
}

static void test_random_corruption(void **state) {
        size_t refused = 0, iterations = 20000;

        for (size_t it = 0; it < iterations; it++) {
                const FlTableType *type = fl_table_types[rng() % fl_n_table_types];
                _cleanup_free_ uint8_t *buf = NULL;
                size_t size, flips = 1 + rng() % 8;

                sample_encode(type, (unsigned) (rng() % 32), rng() % 2 ? FL_FILE_IDENTIFIER : NULL, &buf, &size);
                for (size_t k = 0; k < flips; k++) {
                        size_t pos = rng() % size;

                        switch (rng() % 3) {
                        case 0: /* one bit */
                                buf[pos] ^= (uint8_t) (1u << (rng() % 8));
                                break;
                        case 1: /* any byte */
                                buf[pos] = (uint8_t) rng();
                                break;
                        default: /* an interesting u32 at an aligned place */
                                pos &= ~(size_t) 3;
                                if (pos + 4 <= size) {
                                        static const uint32_t v[] = { 0, 1, 4, 0x7fffffff, 0x80000000,
                                                                      0xffffffff, 0xfffffffc, 0x40000000 };
                                        store_u32(buf + pos, v[rng() % ELEMENTSOF(v)]);
                                }
                        }
                }

                if (decode_checked(type, buf, size) < 0)
                        refused++;
                /* And as some other table, as a confused server would. */
                (void) decode_checked(fl_table_types[rng() % fl_n_table_types], buf, size);
        }
        print_message("random corruption: %zu of %zu refused\n", refused, iterations);
}

static void test_wrong_root_table(void **state) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size, refused = 0;

        for (size_t i = 0; i < fl_n_table_types; i++)
                for (size_t j = 0; j < fl_n_table_types; j++) {
                        _cleanup_free_ uint8_t *b = NULL;
                        size_t s;

                        sample_encode(fl_table_types[i], 5, FL_FILE_IDENTIFIER, &b, &s);
                        if (decode_checked(fl_table_types[j], b, s) < 0)
                                refused++;
                }
        print_message("wrong root table: %zu of %zu pairs refused\n", refused,
                      fl_n_table_types * fl_n_table_types);

        /* Floats where a string should be point far outside. */
        sample_encode(&fl_type_request_push_metrics, 1, FL_FILE_IDENTIFIER, &buf, &size);
        assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
}

/* The position of the inline field in slot of table t (must be present). */
static size_t field_at(const FbsTable *t, unsigned slot) {
        uint16_t off;

        assert_true(4 + 2 * (size_t) slot + 2 <= t->vtable_size);
        memcpy(&off, t->buf + t->vtable + 4 + 2 * slot, 2);
        assert_true(off != 0);
        return t->pos + off;
}

static uint32_t load_u32(const uint8_t *p) {
        uint32_t v;

        memcpy(&v, p, 4);
        return v;
}

/* A RequestGetModel buffer and its root table, to be patched. */
static uint8_t *get_model_buffer(size_t *ret_size, FbsTable *ret_root) {
        FlRequestGetModel m = { .fl_name = "lenet", .iteration = 3, .timestamp = "1" };
        uint8_t *buf, *copy;
        size_t size;

        assert_int_equal(fl_request_get_model_encode(&m, &buf, &size), 0);
        copy = exact_copy(buf, size);
        free(buf);
        assert_int_equal(fbs_root(copy, size, NULL, ret_root), 0);
        *ret_size = size;
        return copy;
}

static void test_header_and_vtable(void **state) {
        static const uint32_t roots[] = { 0xffffffff, 0x7fffffff, 0x80000000, 0, 2, 6 };
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t saved[64];
        FbsTable t;
        size_t size;

        buf = get_model_buffer(&size, &t);
        assert_true(size <= sizeof(saved));
        memcpy(saved, buf, size);

        /* Too short, too long (not even looked at), misaligned in memory. */
        for (size_t len = 0; len < 8; len++)
                assert_int_equal(fbs_root(buf, len, NULL, &t), -EBADMSG);
        assert_int_equal(fbs_root(buf, FBS_MAX_SIZE + 1, NULL, &t), -E2BIG);
        {
                char reason[FL_REASON_MAX];
                FlRequestGetModel m;

                assert_int_equal(fl_request_get_model_decode(buf, FBS_MAX_SIZE + 1, &m, reason), -EBADMSG);
                assert_string_equal(reason, "RequestGetModel: buffer too large");
                /* An empty body. */
                assert_int_equal(fl_request_get_model_decode(NULL, 0, &m, reason), -EBADMSG);
                assert_string_equal(reason, "RequestGetModel: not a FlatBuffers buffer");
        }
        {
                _cleanup_free_ uint8_t *shifted = malloc(size + 1);

                assert_non_null(shifted);
                memcpy(shifted + 1, buf, size);
                assert_int_equal(fbs_root(shifted + 1, size, NULL, &t), -EINVAL);
        }

        /* The root offset out of range or misaligned. */
        assert_int_equal(fbs_root(buf, size, NULL, &t), 0);
        for (size_t i = 0; i < ELEMENTSOF(roots); i++) {
                store_u32(buf, roots[i]);
                assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
        }
        store_u32(buf, (uint32_t) size);
        assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
        store_u32(buf, (uint32_t) size - 2);
        assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
        memcpy(buf, saved, size);

        /* The soffset sending the vtable outside, before 0, or to odd places. */
        {
                const int32_t soffsets[] = {
                        (int32_t) t.pos + 2, (int32_t) t.pos - (int32_t) size, INT32_MIN, INT32_MAX,
                        -(int32_t) size, 1, -1, 0x7ffffffe,
                };

                for (size_t i = 0; i < ELEMENTSOF(soffsets); i++) {
                        store_u32(buf + t.pos, (uint32_t) soffsets[i]);
                        assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
                }
                memcpy(buf, saved, size);
        }

        /* Vtable sizes: odd, smaller than its header, past the end; the
         * table's inline size: too small, past the end. */
        {
                const uint16_t vsizes[] = { 3, 2, 0, 0xfffe, (uint16_t) (size - t.vtable + 2) };
                const uint16_t isizes[] = { 0, 3, 0xffff, (uint16_t) (size - t.pos + 1) };

                for (size_t i = 0; i < ELEMENTSOF(vsizes); i++) {
                        store_u16(buf + t.vtable, vsizes[i]);
                        assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
                }
                memcpy(buf, saved, size);
                for (size_t i = 0; i < ELEMENTSOF(isizes); i++) {
                        store_u16(buf + t.vtable + 2, isizes[i]);
                        assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
                }
                memcpy(buf, saved, size);
        }

        /* A field offset past the table, over the soffset, or misaligned. */
        {
                const uint16_t offs[] = { (uint16_t) t.inline_size, (uint16_t) (t.inline_size - 2), 2, 1, 0xffff };

                for (size_t i = 0; i < ELEMENTSOF(offs); i++) {
                        store_u16(buf + t.vtable + 4 + 2 * 1, offs[i]);  /* iteration: int */
                        assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
                }
                memcpy(buf, saved, size);
        }
        assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), 0);
}

static void test_strings(void **state) {
        _cleanup_free_ uint8_t *buf = NULL;
        uint8_t saved[64];
        size_t size, field, str;
        FbsTable t;

        buf = get_model_buffer(&size, &t);
        assert_true(size <= sizeof(saved));
        memcpy(saved, buf, size);
        field = field_at(&t, 0);        /* fl_name */
        str = field + load_u32(buf + field);
        assert_int_equal(load_u32(buf + str), 5);

        /* Offsets past the end, to the last bytes, misaligned. */
        const uint32_t offsets[] = { 0xffffffff, (uint32_t) (size - field), (uint32_t) (size - field - 2),
                                     (uint32_t) (str - field + 1), 0x80000000 };
        for (size_t i = 0; i < ELEMENTSOF(offsets); i++) {
                store_u32(buf + field, offsets[i]);
                assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
        }
        memcpy(buf, saved, size);

        /* Lengths past the end, or leaving no room for the NUL. */
        const uint32_t lengths[] = { 0xffffffff, 0xfffffffc, (uint32_t) (size - str - 4),
                                     (uint32_t) (size - str - 3), 0x7fffffff };
        for (size_t i = 0; i < ELEMENTSOF(lengths); i++) {
                store_u32(buf + str, lengths[i]);
                assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
        }
        memcpy(buf, saved, size);

        /* No terminating NUL. */
        buf[str + 4 + 5] = 'x';
        assert_int_equal(decode_checked(&fl_type_request_get_model, buf, size), -EBADMSG);
}

static void test_vectors(void **state) {
        FlFeatureMap maps[2] = {
                { .name = "a", .data = (const float[]) { 1, 2, 3 }, .n = 3 },
                { .name = "b", .data = (const float[]) { 4 }, .n = 1 },
        };
        FlFeatureMapList l = { .feature_map = maps, .n_feature_map = 2 };
        _cleanup_free_ uint8_t *buf = NULL, *tmp = NULL;
        size_t size, list, data;
        uint8_t saved[256];
        FbsTable t, fm;
        FbsVector v;

        assert_int_equal(fl_feature_map_list_encode(&l, &tmp, &size), 0);
        buf = exact_copy(tmp, size);
        assert_true(size <= sizeof(saved));
        memcpy(saved, buf, size);
        assert_int_equal(fbs_root(buf, size, FL_FILE_IDENTIFIER, &t), 1);
        assert_int_equal(fbs_table_get_offsets(&t, 0, &v), 1);
        list = v.pos - 4;
        assert_int_equal(fbs_vector_get_table(&v, 0, &fm), 0);
        data = field_at(&fm, 1);
        data += load_u32(buf + data);
        assert_int_equal(load_u32(buf + data), 3);

        /* Counts that would run past the end, wrap in 32 bits, or just
         * one element too many. */
        const uint32_t counts[] = { 0xffffffff, 0x40000001, 0x40000000, 0x3fffffff, 0 };
        for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
                store_u32(buf + data, counts[i] ?: (uint32_t) ((size - data - 4) / 4 + 1));
                assert_int_equal(decode_checked(&fl_type_feature_map_list, buf, size), -EBADMSG);
                memcpy(buf, saved, size);
                store_u32(buf + list, counts[i] ?: (uint32_t) ((size - list - 4) / 4 + 1));
                assert_int_equal(decode_checked(&fl_type_feature_map_list, buf, size), -EBADMSG);
                memcpy(buf, saved, size);
        }
        /* An element of the offset vector pointing outside. */
        store_u32(buf + list + 4, 0xfffffff0);
        assert_int_equal(decode_checked(&fl_type_feature_map_list, buf, size), -EBADMSG);
        memcpy(buf, saved, size);
        assert_int_equal(decode_checked(&fl_type_feature_map_list, buf, size), 0);
}

/* A FeatureMap written by hand with its data vector at vector_pos. */
static size_t handmade_feature_map(uint8_t *buf, size_t vector_pos) {
        memset(buf, 0, 64);
        store_u32(buf + 0, 12);                 /* root table */
        store_u16(buf + 4, 8);                  /* vtable: 8 bytes */
        store_u16(buf + 6, 12);                 /* table: 12 bytes */
        store_u16(buf + 8, 8);                  /* weight_fullname at +8 */
        store_u16(buf + 10, 4);                 /* data at +4 */
        store_u32(buf + 12, 8);                 /* soffset: vtable at 4 */
        store_u32(buf + 16, (uint32_t) (vector_pos - 16));
        store_u32(buf + 20, 24 - 20);           /* string at 24 */
        store_u32(buf + 24, 1);
        buf[28] = 'w';
        store_u32(buf + vector_pos, 2);
        float f[2] = { 1.5f, 2.5f };
        memcpy(buf + vector_pos + 4, f, sizeof(f));
        return vector_pos + 12;
}

static void test_misaligned_float_vector(void **state) {
        _cleanup_(fl_feature_map_done) FlFeatureMap m = {};
        uint8_t tmp[64];
        size_t size;

        size = handmade_feature_map(tmp, 32);
        {
                _cleanup_free_ uint8_t *buf = exact_copy(tmp, size);

                assert_int_equal(fl_feature_map_decode(buf, size, &m, NULL), 0);
                assert_string_equal(m.name, "w");
                assert_int_equal(m.n, 2);
                assert_true(m.data[1] == 2.5f);
        }

        for (size_t pos = 30; pos < 36; pos++) {
                _cleanup_free_ uint8_t *buf = NULL;
                char reason[FL_REASON_MAX];

                if (pos % 4 == 0)
                        continue;
                size = handmade_feature_map(tmp, pos);
                buf = exact_copy(tmp, size);
                assert_int_equal(fl_feature_map_decode(buf, size, &m, reason), -EBADMSG);
                assert_string_equal(reason, "FeatureMap.data: malformed");
        }
}

static void test_deep_nesting(void **state) {
        _cleanup_(fbs_builder_donep) FbsBuilder b;
        _cleanup_free_ uint8_t *buf = NULL, *copy = NULL;
        FbsRef child = 0;
        FbsTable t, next;
        size_t size;
        unsigned depth = 0;

        fbs_builder_init(&b);
        for (int i = 0; i < 100; i++) {
                assert_int_equal(fbs_builder_start_table(&b), 0);
                fbs_builder_add_offset(&b, 0, child);
                fbs_builder_add_i32(&b, 1, i + 1, 0);
                child = fbs_builder_end_table(&b);
        }
        assert_int_equal(fbs_builder_finish(&b, child, NULL, &buf, &size), 0);
        copy = exact_copy(buf, size);

        assert_int_equal(fbs_root(copy, size, NULL, &t), 0);
        while (fbs_table_get_table(&t, 0, &next) > 0) {
                t = next;
                depth++;
        }
        assert_int_equal(depth, FBS_MAX_DEPTH);
        assert_int_equal(fbs_table_get_table(&t, 0, &next), -EBADMSG);
}

const struct CMUnitTest corrupt_tests[] = {
        cmocka_unit_test(test_header_and_vtable),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_misaligned_float_vector),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_wrong_root_table),
        cmocka_unit_test(test_truncated_every_length),
        cmocka_unit_test(test_random_corruption),
};
const size_t n_corrupt_tests = ELEMENTSOF(corrupt_tests);
