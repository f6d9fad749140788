/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fbs.h"
#include "fl-model-io.h"
#include "test-fbs.h"
#include "util.h"

/* ---- The generic reader and builder ---------------------------------------- */

static void test_builder_reader_kinds(void **state) {
        static const float floats[] = { 1.0f, -2.5f, 3.25f };
        static const uint8_t bytes[] = { 0, 1, 255 };
        _cleanup_(fbs_builder_donep) FbsBuilder b;
        _cleanup_free_ uint8_t *buf = NULL;
        FbsRef s, fv, bv, sub, subs[2], strs[2], tv, sv, root;
        const uint8_t *bp;
        const float *fp;
        const char *str;
        FbsTable t, st;
        FbsVector v;
        uint32_t u32;
        int32_t i32;
        uint8_t u8;
        size_t size, n;
        bool bl;
        float f;

        fbs_builder_init(&b);
        s = fbs_builder_create_string(&b, "hello", 5);
        fv = fbs_builder_create_vector(&b, floats, ELEMENTSOF(floats), sizeof(float));
        bv = fbs_builder_create_vector(&b, bytes, ELEMENTSOF(bytes), 1);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(fbs_builder_start_table(&b), 0);
                fbs_builder_add_i32(&b, 0, 40 + i, 0);
                subs[i] = fbs_builder_end_table(&b);
        }
        tv = fbs_builder_create_offsets(&b, subs, 2);
        strs[0] = fbs_builder_create_string(&b, "a", 1);
        strs[1] = fbs_builder_create_string(&b, "", 0);
        sv = fbs_builder_create_offsets(&b, strs, 2);
        assert_int_equal(fbs_builder_start_table(&b), 0);
        fbs_builder_add_i32(&b, 0, 7, 0);
        sub = fbs_builder_end_table(&b);

        assert_int_equal(fbs_builder_start_table(&b), 0);
        fbs_builder_add_u8(&b, 0, 7, 0);
        fbs_builder_add_bool(&b, 1, true, false);
        fbs_builder_add_i32(&b, 2, -5, 0);
        fbs_builder_add_u32(&b, 3, 0xdeadbeefu, 0);
        fbs_builder_add_f32(&b, 4, 1.25f, 0.0f);
        fbs_builder_add_offset(&b, 5, s);
        fbs_builder_add_offset(&b, 6, fv);
        fbs_builder_add_offset(&b, 7, bv);
        fbs_builder_add_offset(&b, 8, sub);
        fbs_builder_add_offset(&b, 9, tv);
        fbs_builder_add_offset(&b, 10, sv);
        fbs_builder_add_i32(&b, 11, 3, 3);       /* the default: left out */
        fbs_builder_add_f32(&b, 12, -0.0f, 0.0f); /* not bitwise the default */
        root = fbs_builder_end_table(&b);
        assert_int_equal(fbs_builder_finish(&b, root, "TEST", &buf, &size), 0);
        assert_int_equal(size % 4, 0);

        assert_int_equal(fbs_root(buf, size, "TEST", &t), 1);
        assert_int_equal(fbs_root(buf, size, "NOPE", &t), 0);
        assert_int_equal(fbs_root(buf, size, NULL, &t), 0);

        assert_int_equal(fbs_table_get_u8(&t, 0, 0, &u8), 1);
        assert_int_equal(u8, 7);
        assert_int_equal(fbs_table_get_bool(&t, 1, false, &bl), 1);
        assert_true(bl);
        assert_int_equal(fbs_table_get_i32(&t, 2, 0, &i32), 1);
        assert_int_equal(i32, -5);
        assert_int_equal(fbs_table_get_u32(&t, 3, 0, &u32), 1);
        assert_int_equal(u32, 0xdeadbeefu);
        assert_int_equal(fbs_table_get_f32(&t, 4, 0, &f), 1);
        assert_true(f == 1.25f);
        assert_int_equal(fbs_table_get_string(&t, 5, &str, &n), 1);
        assert_int_equal(n, 5);
        assert_string_equal(str, "hello");
        assert_int_equal(fbs_table_get_floats(&t, 6, &fp, &n), 1);
        assert_int_equal(n, 3);
        assert_memory_equal(fp, floats, sizeof(floats));
        assert_true((const uint8_t *) fp > buf && (const uint8_t *) fp < buf + size);    /* in place */
        assert_int_equal((uintptr_t) fp % 4, 0);
        assert_int_equal(fbs_table_get_bytes(&t, 7, &bp, &n), 1);
        assert_int_equal(n, 3);
        assert_memory_equal(bp, bytes, 3);
        assert_int_equal(fbs_table_get_table(&t, 8, &st), 1);
        assert_int_equal(st.depth, 1);
        assert_int_equal(fbs_table_get_i32(&st, 0, 0, &i32), 1);
        assert_int_equal(i32, 7);
        assert_int_equal(fbs_table_get_offsets(&t, 9, &v), 1);
        assert_int_equal(v.n, 2);
        for (size_t i = 0; i < 2; i++) {
                assert_int_equal(fbs_vector_get_table(&v, i, &st), 0);
                assert_int_equal(fbs_table_get_i32(&st, 0, 0, &i32), 1);
                assert_int_equal(i32, 40 + (int) i);
        }
        assert_int_equal(fbs_vector_get_table(&v, 2, &st), -ERANGE);
        assert_int_equal(fbs_table_get_offsets(&t, 10, &v), 1);
        assert_int_equal(fbs_vector_get_string(&v, 0, &str, &n), 0);
        assert_string_equal(str, "a");
        assert_int_equal(fbs_vector_get_string(&v, 1, &str, &n), 0);
        assert_int_equal(n, 0);
        assert_int_equal(fbs_table_get_i32(&t, 11, 3, &i32), 0);
        assert_int_equal(i32, 3);
        assert_int_equal(fbs_table_get_f32(&t, 12, 0, &f), 1);
        assert_true(signbit(f));

        /* Slots past the vtable are absent and give the default. */
        assert_int_equal(fbs_table_get_i32(&t, 13, 99, &i32), 0);
        assert_int_equal(i32, 99);
        assert_int_equal(fbs_table_get_i32(&t, 60000, 98, &i32), 0);
        assert_int_equal(fbs_table_get_string(&t, 1000, &str, &n), 0);
        assert_null(str);
}

/* Byte for byte what the reference builder (flatbuffers Python 2.0.8) makes
 * of RequestPushMetrics { loss: 1.5, accuracy: -2.0 }. */
static void test_builder_layout_matches_reference(void **state) {
        static const uint8_t with_ident[] = {
                0x10, 0x00, 0x00, 0x00, 'F', 'L', 'J', '0', 0x08, 0x00, 0x0c, 0x00, 0x08, 0x00, 0x04, 0x00,
                0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0xc0, 0x3f,
        };
        static const uint8_t without_ident[] = {
                0x0c, 0x00, 0x00, 0x00, 0x08, 0x00, 0x0c, 0x00, 0x08, 0x00, 0x04, 0x00,
                0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0xc0, 0x3f,
        };
        FlRequestPushMetrics m = { .loss = 1.5f, .accuracy = -2.0f }, d;
        _cleanup_free_ uint8_t *buf = NULL, *buf2 = NULL, *aligned = NULL;
        size_t size;

        assert_int_equal(fl_request_push_metrics_encode(&m, &buf, &size), 0);
        assert_int_equal(size, sizeof(with_ident));
        assert_memory_equal(buf, with_ident, size);

        assert_int_equal(fl_message_encode(&fl_type_request_push_metrics, &m, NULL, &buf2, &size), 0);
        assert_int_equal(size, sizeof(without_ident));
        assert_memory_equal(buf2, without_ident, size);

        /* Readers accept both. */
        aligned = exact_copy(without_ident, sizeof(without_ident));
        assert_int_equal(fl_request_push_metrics_decode(aligned, sizeof(without_ident), &d, NULL), 0);
        assert_true(d.loss == 1.5f && d.accuracy == -2.0f);
}

static void test_builder_misuse(void **state) {
        _cleanup_(fbs_builder_donep) FbsBuilder b;
        uint8_t *buf = NULL;
        size_t size;
        FbsRef r;

        fbs_builder_init(&b);
        assert_int_equal(fbs_builder_finish(&b, 0, NULL, &buf, &size), -EINVAL);

        fbs_builder_init(&b);
        assert_int_equal(fbs_builder_start_table(&b), 0);
        assert_int_equal(fbs_builder_start_table(&b), -EINVAL);        /* no nesting */
        assert_int_equal(fbs_builder_end_table(&b), 0);
        assert_int_equal(fbs_builder_finish(&b, 1, NULL, &buf, &size), -EINVAL);

        fbs_builder_init(&b);
        assert_int_equal(fbs_builder_start_table(&b), 0);
        fbs_builder_add_i32(&b, FBS_MAX_SLOTS, 1, 0);
        fbs_builder_end_table(&b);
        assert_int_equal(b.error, -E2BIG);
        fbs_builder_done(&b);

        /* Too big to ever fit: refused before allocating anything. */
        assert_int_equal(fbs_builder_create_vector(&b, "x", FBS_MAX_SIZE, 4), 0);
        assert_int_equal(b.error, -E2BIG);
        assert_null(b.buf);
        fbs_builder_done(&b);

        /* A child created inside its parent's construction. */
        assert_int_equal(fbs_builder_start_table(&b), 0);
        assert_int_equal(fbs_builder_create_string(&b, "x", 1), 0);
        assert_int_equal(b.error, -EINVAL);
        fbs_builder_done(&b);

        /* Refs from the future. */
        r = fbs_builder_create_string(&b, "x", 1);
        assert_int_equal(fbs_builder_start_table(&b), 0);
        fbs_builder_add_offset(&b, 0, r + 100);
        assert_int_equal(b.error, -EINVAL);
        assert_int_equal(fbs_builder_finish(&b, r, "FLJ0", &buf, &size), -EINVAL);
        assert_null(buf);
}

/* ---- Messages --------------------------------------------------------------- */

static void test_roundtrip_every_table(void **state) {
        for (size_t i = 0; i < fl_n_table_types; i++) {
                const FlTableType *type = fl_table_types[i];

                for (unsigned seed = 0; seed < 16; seed++) {
                        _cleanup_free_ uint8_t *buf = NULL, *buf2 = NULL, *plain = NULL;
                        _cleanup_free_ void *msg = calloc(1, type->size), *dec = calloc(1, type->size);
                        char reason[FL_REASON_MAX] = "unset";
                        size_t size, size2, plain_size;
                        Arena a = {};
                        FbsTable t;

                        assert_non_null(msg);
                        assert_non_null(dec);
                        sample_fill(type, msg, seed, &a);
                        assert_int_equal(fl_message_encode(type, msg, FL_FILE_IDENTIFIER, &buf, &size), 0);
                        assert_int_equal(fbs_root(buf, size, FL_FILE_IDENTIFIER, &t), 1);
                        assert_int_equal(fl_message_decode(type, buf, size, dec, reason), 0);
                        assert_string_equal(reason, "");
                        sample_assert_equal(type, msg, dec);

                        /* Deterministic: the decoded message encodes to the same bytes. */
                        assert_int_equal(fl_message_encode(type, dec, FL_FILE_IDENTIFIER, &buf2, &size2), 0);
                        assert_int_equal(size, size2);
                        assert_memory_equal(buf, buf2, size);
                        fl_message_done(type, dec);

                        /* Without the identifier. */
                        assert_int_equal(fl_message_encode(type, msg, NULL, &plain, &plain_size), 0);
                        assert_int_equal(plain_size + 4, size);
                        assert_int_equal(fbs_root(plain, plain_size, FL_FILE_IDENTIFIER, &t), 0);
                        assert_int_equal(fl_message_decode(type, plain, plain_size, dec, reason), 0);
                        sample_assert_equal(type, msg, dec);
                        fl_message_done(type, dec);
                        fl_message_done(type, dec);     /* idempotent */

                        arena_free(&a);
                }
        }
}

static void test_empty_messages(void **state) {
        for (size_t i = 0; i < fl_n_table_types; i++) {
                const FlTableType *type = fl_table_types[i];
                _cleanup_free_ void *msg = calloc(1, type->size), *dec = calloc(1, type->size);
                _cleanup_free_ uint8_t *buf = NULL;
                bool required = false;
                size_t size;

                for (size_t j = 0; j < type->n_fields; j++)
                        required = required || type->fields[j].required;
                if (required) {
                        assert_int_equal(fl_message_encode(type, msg, FL_FILE_IDENTIFIER, &buf, &size), -EINVAL);
                        continue;
                }
                assert_int_equal(fl_message_encode(type, msg, FL_FILE_IDENTIFIER, &buf, &size), 0);
                assert_int_equal(fl_message_decode(type, buf, size, dec, NULL), 0);
                assert_memory_equal(msg, dec, type->size);
        }
}

static void test_response_fl_job_typed(void **state) {
        static const float w1[] = { 0.5f, -1.0f, 2.0f, 1e-30f }, w2[] = { 3.0f }, agg_w[] = { 0.25f, 0.75f };
        static const uint8_t metrics[] = { FL_METRICS_ACCURACY, FL_METRICS_FBETA };
        FlEarlyStop es = { .early_stop_type = FL_EARLY_STOP_WEIGHT_DIFF, .weight = 0.5f, .rounds = 3 };
        FlAggregation agg = { .type = FL_AGGREGATION_FED_ADAM, .weights = agg_w, .n_weights = 2 };
        FlCipherPublicParams cipher = { .t = 2, .g = 5, .dp_eps = 50.0f, .encrypt_type = 1 };
        FlFLPlan plan = {
                .fl_name = "lenet", .iterations = 10, .epochs = 1, .early_stop = &es, .mini_batch = 32,
                .shuffle = true, .lr = 0.01f, .aggregation = &agg, .metrics = metrics, .n_metrics = 2,
                .cipher = &cipher,
        };
        FlFeatureMap maps[] = {
                { .name = "conv1.weight", .data = w1, .n = ELEMENTSOF(w1) },
                { .name = "fc3.bias", .data = w2, .n = ELEMENTSOF(w2) },
        };
        FlResponseFLJob m = {
                .retcode = FL_SUCCEED, .reason = "ok", .iteration = 4, .is_selected = true,
                .next_req_time = "1700000000000", .fl_plan_config = &plan,
                .feature_map = maps, .n_feature_map = 2, .timestamp = "1700000000001",
        };
        _cleanup_(fl_response_fl_job_done) FlResponseFLJob d = {};
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size;

        assert_int_equal(fl_response_fl_job_encode(&m, &buf, &size), 0);
        assert_int_equal(fl_response_fl_job_decode(buf, size, &d, NULL), 0);

        assert_int_equal(d.retcode, 200);
        assert_string_equal(d.reason, "ok");
        assert_int_equal(d.iteration, 4);
        assert_true(d.is_selected);
        assert_string_equal(d.next_req_time, "1700000000000");
        assert_string_equal(d.timestamp, "1700000000001");
        assert_non_null(d.fl_plan_config);
        assert_string_equal(d.fl_plan_config->fl_name, "lenet");
        assert_int_equal(d.fl_plan_config->iterations, 10);
        assert_int_equal(d.fl_plan_config->mini_batch, 32);
        assert_true(d.fl_plan_config->shuffle);
        assert_true(d.fl_plan_config->lr == 0.01f);
        assert_int_equal(d.fl_plan_config->early_stop->early_stop_type, FL_EARLY_STOP_WEIGHT_DIFF);
        assert_int_equal(d.fl_plan_config->early_stop->rounds, 3);
        assert_int_equal(d.fl_plan_config->aggregation->type, FL_AGGREGATION_FED_ADAM);
        assert_int_equal(d.fl_plan_config->aggregation->n_weights, 2);
        assert_true(d.fl_plan_config->aggregation->weights[1] == 0.75f);
        assert_int_equal(d.fl_plan_config->n_metrics, 2);
        assert_int_equal(d.fl_plan_config->metrics[1], FL_METRICS_FBETA);
        assert_int_equal(d.fl_plan_config->cipher->g, 5);
        assert_null(d.fl_plan_config->cipher->p);
        assert_int_equal(d.n_feature_map, 2);
        assert_string_equal(d.feature_map[0].name, "conv1.weight");
        assert_int_equal(d.feature_map[0].name_len, strlen("conv1.weight"));
        assert_int_equal(d.feature_map[0].n, 4);
        assert_memory_equal(d.feature_map[0].data, w1, sizeof(w1));
        assert_string_equal(d.feature_map[1].name, "fc3.bias");
        assert_true(d.feature_map[1].data[0] == 3.0f);
        /* Read in place, aligned. */
        for (size_t i = 0; i < 2; i++) {
                const uint8_t *p = (const uint8_t *) d.feature_map[i].data;

                assert_true(p > buf && p + d.feature_map[i].n * 4 <= buf + size);
                assert_int_equal((uintptr_t) p % 4, 0);
        }
}

static void test_return_client_list_typed(void **state) {
        const char *clients[] = { "dev-1", "dev-2", "" };
        FlReturnClientList m = { .retcode = FL_SUCCEED, .clients = clients, .n_clients = 3, .iteration = 1 };
        _cleanup_(fl_return_client_list_done) FlReturnClientList d = {};
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size;

        assert_int_equal(fl_return_client_list_encode(&m, &buf, &size), 0);
        assert_int_equal(fl_return_client_list_decode(buf, size, &d, NULL), 0);
        assert_int_equal(d.n_clients, 3);
        assert_string_equal(d.clients[0], "dev-1");
        assert_string_equal(d.clients[1], "dev-2");
        assert_string_equal(d.clients[2], "");
        assert_null(d.reason);
}

/* RequestFLJob built field by field, with fl_id as given (NULL: absent). */
static uint8_t *raw_request_fl_job(const char *fl_id, size_t fl_id_len, size_t *ret_size) {
        _cleanup_(fbs_builder_donep) FbsBuilder b;
        uint8_t *buf = NULL, *copy;
        FbsRef name, id = 0, root;
        size_t size;

        fbs_builder_init(&b);
        name = fbs_builder_create_string(&b, "lenet", 5);
        if (fl_id)
                id = fbs_builder_create_string(&b, fl_id, fl_id_len);
        fbs_builder_start_table(&b);
        fbs_builder_add_offset(&b, 0, name);
        fbs_builder_add_offset(&b, 1, id);
        fbs_builder_add_i32(&b, 3, 100, 0);
        root = fbs_builder_end_table(&b);
        assert_int_equal(fbs_builder_finish(&b, root, FL_FILE_IDENTIFIER, &buf, &size), 0);
        copy = exact_copy(buf, size);
        free(buf);
        *ret_size = size;
        return copy;
}

static void test_required_and_nul(void **state) {
        FlRequestFLJob m = { .fl_name = "lenet", .data_size = 1 }, d;
        char reason[FL_REASON_MAX];
        uint8_t *buf = NULL;
        size_t size;

        assert_int_equal(fl_request_fl_job_encode(&m, &buf, &size), -EINVAL);
        assert_null(buf);

        buf = raw_request_fl_job(NULL, 0, &size);
        assert_int_equal(fl_request_fl_job_decode(buf, size, &d, reason), -EBADMSG);
        assert_string_equal(reason, "RequestFLJob.fl_id: missing");
        assert_null(d.fl_name);         /* nothing half-decoded is left */
        free(buf);

        buf = raw_request_fl_job("dev\0ice", 7, &size);
        assert_int_equal(fl_request_fl_job_decode(buf, size, &d, reason), -EBADMSG);
        assert_string_equal(reason, "RequestFLJob.fl_id: string contains a NUL byte");
        free(buf);

        buf = raw_request_fl_job("device", 6, &size);
        assert_int_equal(fl_request_fl_job_decode(buf, size, &d, NULL), 0);
        assert_string_equal(d.fl_id, "device");
        assert_int_equal(d.data_size, 100);
        free(buf);

        /* A required field inside a vector of tables. */
        FlFeatureMap nameless = { .data = (const float[]) { 1.0f }, .n = 1 };
        FlRequestUpdateModel u = { .fl_id = "x", .feature_map = &nameless, .n_feature_map = 1 };
        assert_int_equal(fl_request_update_model_encode(&u, &buf, &size), -EINVAL);
}

/* ---- Models ------------------------------------------------------------------ */

static Model *make_model(void) {
        static const char *const names[] = { "conv1.weight", "conv1.bias", "fc.weight" };
        static const size_t sizes[] = { 150, 6, 1000 };
        Model *m = NULL;

        assert_int_equal(model_new(&m, names, sizes, 3), 0);
        for (size_t i = 0; i < m->n_tensors; i++)
                for (size_t j = 0; j < m->tensors[i].size; j++)
                        m->tensors[i].data[j] = (float) (i * 1000 + j) / 7.0f;
        return m;
}

static void assert_models_equal(const Model *a, const Model *b) {
        assert_true(model_same_shape(a, b));
        for (size_t i = 0; i < a->n_tensors; i++)
                assert_memory_equal(a->tensors[i].data, b->tensors[i].data, a->tensors[i].size * sizeof(float));
}

static void test_model_roundtrip_and_files(void **state) {
        _cleanup_(model_freep) Model *m = make_model(), *d = NULL, *f = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        char dir[] = "/tmp/test-fbs-XXXXXX", path[64];
        size_t size;
        struct stat st;

        assert_int_equal(fl_model_encode(m, &buf, &size), 0);
        assert_int_equal(fl_model_decode(buf, size, &d), 0);
        assert_models_equal(m, d);

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/model.fl", dir);
        assert_int_equal(fl_model_save_file(path, m), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal((size_t) st.st_size, size);
        assert_int_equal(fl_model_load_file(path, 0, &f), 0);
        assert_models_equal(m, f);
        model_free(f);
        f = NULL;
        assert_int_equal(fl_model_load_file(path, size - 1, &f), -EFBIG);
        assert_null(f);

        /* Not a model. */
        assert_int_equal(write_file_atomic(path, "hello, this is not a FlatBuffer"), 0);
        assert_int_equal(fl_model_load_file(path, 0, &f), -EBADMSG);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(fl_model_load_file(path, 0, &f), -ENOENT);
        assert_int_equal(rmdir(dir), 0);
}

static uint8_t *feature_map_list_sharing(size_t n_maps, size_t n_floats, bool dup_names, size_t *ret_size) {
        _cleanup_(fbs_builder_donep) FbsBuilder b;
        _cleanup_free_ float *data = calloc(n_floats, sizeof(float));
        _cleanup_free_ FbsRef *maps = calloc(n_maps, sizeof(FbsRef));
        uint8_t *buf = NULL, *copy;
        FbsRef dv, list, root;
        size_t size;

        assert_non_null(data);
        assert_non_null(maps);
        fbs_builder_init(&b);
        dv = fbs_builder_create_vector(&b, data, n_floats, sizeof(float));
        for (size_t i = 0; i < n_maps; i++) {
                char name[32];
                FbsRef s;

                snprintf(name, sizeof(name), "w%zu", dup_names ? 0 : i);
                s = fbs_builder_create_string(&b, name, strlen(name));
                fbs_builder_start_table(&b);
                fbs_builder_add_offset(&b, 0, s);
                fbs_builder_add_offset(&b, 1, dv);       /* all share one vector */
                maps[i] = fbs_builder_end_table(&b);
        }
        list = fbs_builder_create_offsets(&b, maps, n_maps);
        fbs_builder_start_table(&b);
        fbs_builder_add_offset(&b, 0, list);
        root = fbs_builder_end_table(&b);
        assert_int_equal(fbs_builder_finish(&b, root, NULL, &buf, &size), 0);
        copy = exact_copy(buf, size);
        free(buf);
        *ret_size = size;
        return copy;
}

static void test_model_refusals(void **state) {
        _cleanup_(fl_feature_map_list_done) FlFeatureMapList l = {};
        Model *m = NULL;
        uint8_t *buf;
        size_t size;

        /* 1000 maps sharing one 10000-float vector: a valid FlatBuffer (and
         * decoded in place without cost), but 40 MB of floats from 80 KB. */
        buf = feature_map_list_sharing(1000, 10000, false, &size);
        assert_true(size < 100000);
        assert_int_equal(fl_feature_map_list_decode(buf, size, &l, NULL), 0);
        assert_int_equal(l.n_feature_map, 1000);
        assert_ptr_equal(l.feature_map[0].data, l.feature_map[999].data);
        assert_int_equal(fl_model_decode(buf, size, &m), -EBADMSG);
        assert_null(m);
        free(buf);

        /* Sharing that does not amplify is legal... */
        buf = feature_map_list_sharing(2, 10, false, &size);
        assert_int_equal(fl_model_decode(buf, size, &m), 0);
        assert_int_equal(m->n_tensors, 2);
        m = model_free(m);
        free(buf);

        /* ...duplicate names are not. */
        buf = feature_map_list_sharing(2, 10, true, &size);
        assert_int_equal(fl_model_decode(buf, size, &m), -EBADMSG);
        free(buf);

        /* Nor empty tensors. */
        buf = feature_map_list_sharing(1, 0, false, &size);
        assert_int_equal(fl_model_decode(buf, size, &m), -EBADMSG);
        free(buf);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_builder_reader_kinds),
                cmocka_unit_test(test_builder_layout_matches_reference),
                cmocka_unit_test(test_builder_misuse),
                cmocka_unit_test(test_roundtrip_every_table),
                cmocka_unit_test(test_empty_messages),
                cmocka_unit_test(test_response_fl_job_typed),
                cmocka_unit_test(test_return_client_list_typed),
                cmocka_unit_test(test_required_and_nul),
                cmocka_unit_test(test_model_roundtrip_and_files),
                cmocka_unit_test(test_model_refusals),
        };
        int r;

        r = cmocka_run_group_tests_name("fbs", tests, NULL, NULL);
        r += _cmocka_run_group_tests("fbs-corrupt", corrupt_tests, n_corrupt_tests, NULL, NULL);
        return r;
}
