/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "json-util.h"
#include "scheduler-job-params.h"

static json_object *parse_json(const char *text) {
        json_object *o = NULL;

        assert_int_equal(json_parse_object(text, strlen(text), &o), 0);
        return o;
}

static Job base_job(void) {
        FlConfig c;
        Job job;

        assert_int_equal(conf_init(&c), 0);
        assert_int_equal(job_from_config(&job, &c), 0);
        conf_done(&c);
        return job;
}

/* Only the given keys change; the others keep the base job's values. */
static void test_given_keys_only(void **state) {
        _cleanup_(json_object_putp) json_object *o =
                parse_json("{\"start_fl_job_threshold\": 8, \"client_learning_rate\": 0.01, \"fl_name\": \"Mnist\"}");
        Job base = base_job(), job;
        JobParams p;
        char error[256] = "";

        base.fl_iteration_num = 7;
        assert_int_equal(job_params_from_json(&p, o, error, sizeof error), 0);
        assert_int_equal(p.set, JOB_PARAM_START_FL_JOB_THRESHOLD | JOB_PARAM_CLIENT_LEARNING_RATE | JOB_PARAM_FL_NAME);
        job_params_apply(&job, &base, &p);
        assert_int_equal(job.start_fl_job_threshold, 8);
        assert_true(job.client_learning_rate == 0.01);
        assert_string_equal(job.fl_name, "Mnist");
        assert_int_equal(job.fl_iteration_num, 7);
        assert_int_equal(job.client_batch_size, base.client_batch_size);
        assert_int_equal(job.update_model_time_window, base.update_model_time_window);
}

/* The server optimizer's keys; another optimizer without a learning rate
 * of its own gets its default (0), the same one keeps its rate. */
static void test_server_optimizer(void **state) {
        _cleanup_(json_object_putp) json_object *a =
                parse_json("{\"server_optimizer\": \"fedadam\", \"server_learning_rate\": 0.05, "
                           "\"server_beta2\": 0.999, \"server_tau\": 0.01, \"fedprox_mu\": 0.1}"),
                *b = parse_json("{\"server_optimizer\": \"fedyogi\"}"),
                *c = parse_json("{\"server_optimizer\": \"fedadam\", \"server_momentum\": 0.5}");
        Job base = base_job(), job, next;
        JobParams p;
        char error[256] = "";

        assert_int_equal(job_params_from_json(&p, a, error, sizeof error), 0);
        assert_int_equal(p.set, JOB_PARAM_SERVER_OPTIMIZER | JOB_PARAM_SERVER_LEARNING_RATE | JOB_PARAM_SERVER_BETA2 |
                         JOB_PARAM_SERVER_TAU | JOB_PARAM_FEDPROX_MU);
        job_params_apply(&job, &base, &p);
        assert_int_equal(job.optimizer.kind, OPTIMIZER_FEDADAM);
        assert_true(job.optimizer.learning_rate == 0.05 && job.optimizer.beta2 == 0.999 &&
                    job.optimizer.tau == 0.01 && job.fedprox_mu == 0.1);
        assert_true(job.optimizer.beta1 == base.optimizer.beta1 && job.optimizer.momentum == base.optimizer.momentum);

        assert_int_equal(job_params_from_json(&p, b, error, sizeof error), 0);
        job_params_apply(&next, &job, &p);
        assert_int_equal(next.optimizer.kind, OPTIMIZER_FEDYOGI);
        assert_true(next.optimizer.learning_rate == 0 && next.optimizer.tau == 0.01 && next.fedprox_mu == 0.1);

        assert_int_equal(job_params_from_json(&p, c, error, sizeof error), 0);
        job_params_apply(&next, &job, &p);
        assert_true(next.optimizer.learning_rate == 0.05 && next.optimizer.momentum == 0.5);

        /* What is stored comes back the same, the default rate too. */
        next.optimizer.learning_rate = 0;
        {
                _cleanup_(json_object_putp) json_object *stored = job_to_json(&next);
                Job again;

                assert_int_equal(job_params_from_json(&p, stored, error, sizeof error), 0);
                job_params_apply(&again, &job, &p);
                assert_true(again.optimizer.learning_rate == 0 && again.optimizer.kind == OPTIMIZER_FEDADAM &&
                            again.optimizer.momentum == 0.5);
        }
}

static void test_empty_object_changes_nothing(void **state) {
        _cleanup_(json_object_putp) json_object *o = parse_json("{}");
        Job base = base_job(), job;
        JobParams p;
        char error[256] = "";

        assert_int_equal(job_params_from_json(&p, o, error, sizeof error), 0);
        assert_int_equal(p.set, 0);
        job_params_apply(&job, &base, &p);
        {
                _cleanup_(json_object_putp) json_object *a = job_to_json(&job), *b = job_to_json(&base);

                assert_string_equal(json_object_to_json_string(a), json_object_to_json_string(b));
        }
}

static void refused(const char *text, const char *needle) {
        _cleanup_(json_object_putp) json_object *o = parse_json(text);
        JobParams p;
        char error[256] = "";

        assert_true(job_params_from_json(&p, o, error, sizeof error) < 0);
        if (!strstr(error, needle))
                fail_msg("'%s' refused with '%s', expected it to mention '%s'", text, error, needle);
}

static void test_refusals_name_the_key(void **state) {
        refused("{\"bogus_key\": 1}", "bogus_key");
        /* A configuration key that newInstance may not change. */
        refused("{\"server_num\": 3}", "server_num");
        refused("{\"start_fl_job_threshold\": \"8\"}", "start_fl_job_threshold");
        refused("{\"start_fl_job_threshold\": 0}", "start_fl_job_threshold");
        refused("{\"update_model_ratio\": 1.5}", "update_model_ratio");
        refused("{\"client_epoch_num\": -1}", "client_epoch_num");
        refused("{\"fl_name\": \"\"}", "fl_name");
        refused("{\"server_optimizer\": \"adam\"}", "server_optimizer");
        refused("{\"server_optimizer\": 1}", "server_optimizer");
        refused("{\"server_learning_rate\": -0.1}", "server_learning_rate");
        refused("{\"server_learning_rate\": 1001}", "server_learning_rate");
        refused("{\"server_momentum\": 1}", "server_momentum");
        refused("{\"server_beta1\": -0.5}", "server_beta1");
        refused("{\"server_beta2\": 1.0}", "server_beta2");
        refused("{\"server_tau\": 0}", "server_tau");
        refused("{\"fedprox_mu\": 1000.5}", "fedprox_mu");
}

static void test_long_fl_name(void **state) {
        char text[400], name[200];
        Job job;

        memset(name, 'n', sizeof job.fl_name);
        name[sizeof job.fl_name] = '\0';
        snprintf(text, sizeof text, "{\"fl_name\": \"%s\"}", name);
        refused(text, "fl_name");
}

static void test_not_an_object(void **state) {
        _cleanup_(json_object_putp) json_object *a = json_object_new_array();
        JobParams p;
        char error[256] = "";

        assert_int_equal(job_params_from_json(&p, a, error, sizeof error), -EINVAL);
        assert_non_null(strstr(error, "JSON object"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_given_keys_only),
                cmocka_unit_test(test_server_optimizer),
                cmocka_unit_test(test_empty_object_changes_nothing),
                cmocka_unit_test(test_refusals_name_the_key),
                cmocka_unit_test(test_long_fl_name),
                cmocka_unit_test(test_not_an_object),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
