/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fl-messages.h"
#include "scheduler-iteration.h"

static Job test_job(uint32_t threshold, double ratio) {
        return (Job) {
                .fl_name = "Lenet",
                .fl_iteration_num = 5,
                .start_fl_job_threshold = threshold,
                .start_fl_job_time_window = 1000,
                .update_model_ratio = ratio,
                .update_model_time_window = 2000,
                .global_iteration_time_window = 10000,
                .client_epoch_num = 1,
                .client_batch_size = 32,
                .client_learning_rate = 0.01,
        };
}

static const char *gone_server;

static bool is_gone(const char *node_id, void *userdata) {
        return gone_server && streq(node_id, gone_server);
}

/* An update of fl_id with digest, asked for by server; stale: the device's
 * request is outside the servers' replay window. */
static int update_ask(Iteration *it, const Job *job, const char *fl_id, uint32_t iteration, uint64_t digest,
                      const char *server, uint64_t now, bool stale, Verdict *v) {
        UpdateAsk ask = {
                .fl_id = fl_id,
                .iteration = iteration,
                .digest = digest,
                .server = server,
                .server_gone = is_gone,
                .stale = stale,
        };

        return iteration_update(it, job, &ask, now, v);
}

static int update(Iteration *it, const Job *job, const char *fl_id, uint32_t iteration, uint64_t digest,
                  const char *server, uint64_t now, Verdict *v) {
        return update_ask(it, job, fl_id, iteration, digest, server, now, false, v);
}

static int update_stale(Iteration *it, const Job *job, const char *fl_id, uint32_t iteration, uint64_t digest,
                        const char *server, uint64_t now, Verdict *v) {
        return update_ask(it, job, fl_id, iteration, digest, server, now, true, v);
}

/* A stale request counts nothing new, but a copy of a counted update keeps
 * its exactly-once SUCCEED, on the server that holds it and on another. */
static void test_stale_updates(void **state) {
        Job job = test_job(3, 1.0);
        Iteration it;
        Verdict v;

        iteration_init(&it);
        iteration_begin(&it, &job, 1, 100000);
        assert_int_equal(iteration_admit(&it, &job, "a", 10, 100001, &v), 0);
        assert_int_equal(iteration_admit(&it, &job, "b", 20, 100002, &v), 0);

        assert_int_equal(update_stale(&it, &job, "a", 1, 0xa1, "s1", 100010, &v), 0);
        assert_int_equal(v.retcode, FL_REQUEST_ERROR);
        assert_false(v.keep || v.changed);
        assert_non_null(strstr(v.reason, "replay window"));
        assert_int_equal(it.n_updated, 0);

        assert_int_equal(update(&it, &job, "a", 1, 0xa1, "s1", 100011, &v), 0);
        assert_int_equal(v.retcode, FL_SUCCEED);
        assert_int_equal(it.n_updated, 1);

        assert_int_equal(update_stale(&it, &job, "a", 1, 0xa1, "s1", 100012, &v), 0);
        assert_int_equal(v.retcode, FL_SUCCEED);
        assert_true(v.keep);
        assert_int_equal(update_stale(&it, &job, "a", 1, 0xa1, "s2", 100013, &v), 0);
        assert_int_equal(v.retcode, FL_SUCCEED);
        assert_false(v.keep || v.changed);
        /* A different update of a counted device, or one of another device: refused, nothing counted. */
        assert_int_equal(update_stale(&it, &job, "a", 1, 0xa2, "s2", 100014, &v), 0);
        assert_int_equal(v.retcode, FL_REQUEST_ERROR);
        assert_int_equal(update_stale(&it, &job, "b", 1, 0xb1, "s2", 100015, &v), 0);
        assert_int_equal(v.retcode, FL_REQUEST_ERROR);
        assert_int_equal(it.n_updated, 1);
        iteration_done(&it);
}

static void test_admission_threshold_and_repeats(void **state) {
        Job job = test_job(3, 1.0);
        Iteration it;
        Verdict v;

        iteration_init(&it);
        iteration_begin(&it, &job, 1, 100000);

        assert_int_equal(iteration_admit(&it, &job, "a", 10, 100001, &v), 0);
        assert_int_equal(v.retcode, FL_SUCCEED);
        assert_int_equal(iteration_admit(&it, &job, "b", 20, 100002, &v), 0);
        /* The same device again: answered, not counted twice. */
        assert_int_equal(iteration_admit(&it, &job, "a", 10, 100003, &v), 0);
        assert_int_equal(v.retcode, FL_SUCCEED);
        assert_int_equal(it.admissions.n_entries, 2);
        assert_int_equal(it.update_deadline_ms, 0);

        assert_int_equal(iteration_admit(&it, &job, "c", 30, 100004, &v), 0);
        assert_int_equal(v.retcode, FL_SUCCEED);
        assert_int_equal(it.update_deadline_ms, 100004 + 2000);

        /* Past the threshold: out of time, told to come back after the windows. */
        assert_int_equal(iteration_admit(&it, &job, "d", 40, 100005, &v), 0);
        assert_int_equal(v.retcode, FL_OUT_OF_TIME);
        assert_int_equal(v.next_req_time, 100004 + 2000);

        assert_int_equal(iteration_admit(&it, &job, "", 40, 100005, &v), -EINVAL);
        assert_int_equal(iteration_admit(&it, &job, "tab\there", 40, 100005, &v), -EINVAL);
        iteration_done(&it);
}

static void test_updates(void **state) {
        Job job = test_job(4, 0.5);    /* two updates end the iteration */
        Iteration it;
        Verdict v;

        iteration_init(&it);
        iteration_begin(&it, &job, 3, 0);
        for (const char *const *id = (const char *const[]) { "a", "b", "c", NULL }; *id; id++)
                assert_int_equal(iteration_admit(&it, &job, *id, 100, 1, &v), 0);

        assert_int_equal(update(&it, &job, "zz", 3, 0x1234, "s0", 2, &v), 0);
        assert_int_equal(v.retcode, FL_NOT_SELECTED);
        assert_int_equal(update(&it, &job, "a", 2, 0x1234, "s0", 2, &v), 0);
        assert_int_equal(v.retcode, FL_OUT_OF_TIME);       /* wrong iteration */

        assert_int_equal(update(&it, &job, "a", 3, 0x1234, "s0", 2, &v), 0);
        assert_int_equal(v.retcode, FL_SUCCEED);
        assert_int_equal(v.data_size, 100);
        assert_int_equal(update(&it, &job, "a", 3, 0x5678, "s0", 3, &v), 0);
        assert_int_equal(v.retcode, FL_REPEAT_REQUEST);
        assert_false(iteration_ready_to_aggregate(&it, &job));

        assert_int_equal(update(&it, &job, "b", 3, 0x1234, "s0", 4, &v), 0);
        assert_int_equal(v.retcode, FL_SUCCEED);
        assert_int_equal(it.n_updated, 2);
        assert_int_equal(it.data_size_updated, 200);
        assert_true(iteration_ready_to_aggregate(&it, &job));
        iteration_done(&it);
}

static void test_windows(void **state) {
        Job job = test_job(2, 1.0);
        Iteration it;
        Verdict v;
        char buf[160];

        iteration_init(&it);

        /* Nobody comes: the startFLJob window abandons the iteration. */
        iteration_begin(&it, &job, 1, 0);
        assert_int_equal(iteration_next_deadline(&it), 1000);
        assert_null(iteration_expired(&it, &job, 999, buf, sizeof buf));
        assert_non_null(iteration_expired(&it, &job, 1000, buf, sizeof buf));
        assert_non_null(strstr(buf, "start_fl_job_time_window"));
        assert_int_equal(iteration_admit(&it, &job, "late", 1, 1000, &v), 0);
        assert_int_equal(v.retcode, FL_OUT_OF_TIME);

        /* Admitted but the updates do not come: the updateModel window does. */
        iteration_begin(&it, &job, 2, 5000);
        assert_int_equal(iteration_admit(&it, &job, "a", 1, 5100, &v), 0);
        assert_int_equal(iteration_admit(&it, &job, "b", 1, 5200, &v), 0);
        assert_int_equal(iteration_next_deadline(&it), 7200);
        assert_null(iteration_expired(&it, &job, 7000, buf, sizeof buf));   /* start window over, threshold met */
        assert_int_equal(update(&it, &job, "a", 2, 0x1234, "s0", 7100, &v), 0);
        assert_int_equal(v.retcode, FL_SUCCEED);
        assert_non_null(iteration_expired(&it, &job, 7200, buf, sizeof buf));
        assert_non_null(strstr(buf, "1 of 2 updates"));
        assert_int_equal(update(&it, &job, "b", 2, 0x1234, "s0", 7200, &v), 0);
        assert_int_equal(v.retcode, FL_OUT_OF_TIME);

        /* The global window caps everything, aggregation included. */
        iteration_begin(&it, &job, 3, 20000);
        it.phase = ITERATION_AGGREGATING;
        assert_int_equal(iteration_next_deadline(&it), 30000);
        assert_null(iteration_expired(&it, &job, 29999, buf, sizeof buf));
        assert_non_null(iteration_expired(&it, &job, 30000, buf, sizeof buf));
        assert_int_equal(iteration_admit(&it, &job, "x", 1, 20001, &v), 0);
        assert_int_equal(v.retcode, FL_OUT_OF_TIME);

        iteration_finish_job(&it);
        assert_int_equal(iteration_next_deadline(&it), UINT64_MAX);
        assert_null(iteration_expired(&it, &job, UINT64_MAX - 1, buf, sizeof buf));
        iteration_done(&it);
}

static void test_exactly_once(void **state) {
        Job job = test_job(3, 1.0);
        Iteration it;
        Verdict v;

        iteration_init(&it);
        iteration_begin(&it, &job, 1, 0);
        for (const char *const *id = (const char *const[]) { "a", "b", "c", NULL }; *id; id++)
                assert_int_equal(iteration_admit(&it, &job, *id, 10, 1, &v), 0);

        assert_int_equal(update(&it, &job, "a", 1, 0, "s0", 2, &v), -EINVAL);   /* no digest */
        assert_int_equal(update(&it, &job, "a", 1, 0xa, "s0", 2, &v), 0);
        assert_true(v.retcode == FL_SUCCEED && v.keep && v.changed);

        /* The same update again at the same server (a retry, a replay): kept, counted once. */
        assert_int_equal(update(&it, &job, "a", 1, 0xa, "s0", 3, &v), 0);
        assert_true(v.retcode == FL_SUCCEED && v.keep && !v.changed);
        assert_int_equal(it.n_updated, 1);

        /* At another server while the holder is up: answered, not kept there. */
        gone_server = NULL;
        assert_int_equal(update(&it, &job, "a", 1, 0xa, "s1", 4, &v), 0);
        assert_true(v.retcode == FL_SUCCEED && !v.keep && !v.changed);
        assert_int_equal(it.n_updated, 1);

        /* A different update of a counted device: RepeatRequest, from anywhere. */
        assert_int_equal(update(&it, &job, "a", 1, 0xb, "s1", 5, &v), 0);
        assert_int_equal(v.retcode, FL_REPEAT_REQUEST);

        /* The holder is down: the other server takes it over, still once. */
        gone_server = "s0";
        assert_int_equal(update(&it, &job, "a", 1, 0xa, "s1", 6, &v), 0);
        assert_true(v.retcode == FL_SUCCEED && v.keep && v.changed);
        assert_int_equal(it.n_updated, 1);
        assert_int_equal(it.data_size_updated, 10);
        /* ... and the old holder, back, is told to drop it. */
        gone_server = NULL;
        assert_int_equal(update(&it, &job, "a", 1, 0xa, "s0", 7, &v), 0);
        assert_true(v.retcode == FL_SUCCEED && !v.keep);

        /* A server that registers again must name its updates; the others are dropped. */
        assert_int_equal(update(&it, &job, "b", 1, 0xb, "s0", 8, &v), 0);
        assert_int_equal(update(&it, &job, "c", 1, 0xc, "s0", 8, &v), 0);
        assert_int_equal(it.n_updated, 3);
        assert_true(iteration_ready_to_aggregate(&it, &job));
        iteration_unconfirm(&it, "s0");
        assert_int_equal(update(&it, &job, "b", 1, 0xb, "s0", 9, &v), 0);
        assert_true(v.keep);
        assert_int_equal(iteration_drop_owner(&it, "s0", true, NULL, NULL), 1);     /* c */
        assert_int_equal(it.n_updated, 2);
        assert_int_equal(it.data_size_updated, 20);
        assert_false(iteration_ready_to_aggregate(&it, &job));

        /* c is free again: its device (or the replay of another server) counts it anew. */
        assert_int_equal(update(&it, &job, "c", 1, 0xc, "s1", 10, &v), 0);
        assert_true(v.retcode == FL_SUCCEED && v.keep);
        assert_int_equal(it.n_updated, 3);

        /* A dead server's updates all go. */
        assert_int_equal(iteration_drop_owner(&it, "s1", false, NULL, NULL), 2);      /* a, c */
        assert_int_equal(it.n_updated, 1);
        assert_int_equal(it.data_size_updated, 10);
        assert_int_equal(it.owner_updates[0] + it.owner_updates[1], 1);

        /* Once the iteration is aggregating, a replay of a counted update is still kept. */
        it.phase = ITERATION_AGGREGATING;
        assert_int_equal(update(&it, &job, "b", 1, 0xb, "s0", 11, &v), 0);
        assert_true(v.retcode == FL_SUCCEED && v.keep);
        assert_int_equal(update(&it, &job, "a", 1, 0xa, "s0", 11, &v), 0);
        assert_int_equal(v.retcode, FL_OUT_OF_TIME);
        iteration_done(&it);
}

static void test_many_devices(void **state) {
        Job job = test_job(100000, 1.0);
        Iteration it;
        Verdict v;
        char id[32];

        iteration_init(&it);
        iteration_begin(&it, &job, 1, 0);
        for (unsigned i = 0; i < 100000; i++) {
                snprintf(id, sizeof id, "device-%u", i);
                assert_int_equal(iteration_admit(&it, &job, id, 1, 1, &v), 0);
                assert_int_equal(v.retcode, FL_SUCCEED);
        }
        assert_int_equal(it.admissions.n_entries, 100000);
        for (unsigned i = 0; i < 100000; i += 7) {
                snprintf(id, sizeof id, "device-%u", i);
                assert_non_null(admissions_find(&it.admissions, id));
        }
        assert_null(admissions_find(&it.admissions, "device-100000"));
        iteration_done(&it);
}

static void test_update_threshold(void **state) {
        Job job = test_job(8, 1.0);

        assert_int_equal(job_update_threshold(&job), 8);
        job.update_model_ratio = 0.5;
        assert_int_equal(job_update_threshold(&job), 4);
        job.update_model_ratio = 0.01;
        assert_int_equal(job_update_threshold(&job), 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_stale_updates),
                cmocka_unit_test(test_admission_threshold_and_repeats),
                cmocka_unit_test(test_updates),
                cmocka_unit_test(test_exactly_once),
                cmocka_unit_test(test_windows),
                cmocka_unit_test(test_many_devices),
                cmocka_unit_test(test_update_threshold),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
