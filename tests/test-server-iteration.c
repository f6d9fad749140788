/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The server's parsers of the scheduler's training messages (wire-protocol.h):
 * WIRE_ITERATION, WIRE_AGGREGATE, WIRE_ADMIT_REPLY / WIRE_UPDATE_REPLY. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "conf.h"
#include "json-util.h"
#include "server-iteration.h"
#include "server-pending.h"

static json_object *parse(const char *text) {
        json_object *o = NULL;

        assert_int_equal(json_parse_object(text, strlen(text), &o), 0);
        return o;
}

static int iteration(const char *text, IterationMsg *ret) {
        _cleanup_(conf_done) FlConfig c = {};
        _cleanup_(json_object_putp) json_object *o = parse(text);

        assert_int_equal(conf_init(&c), 0);
        return iteration_msg_parse(o, &c, ret);
}

static void test_iteration(void **state) {
        IterationMsg msg;

        assert_int_equal(iteration("{\"iteration\":3,\"phase\":\"COLLECTING\",\"abandoned\":2,"
                                   "\"next_req_time\":1700000000123,\"extra\":[1],"
                                   "\"job\":{\"fl_name\":\"Mnist\",\"fl_iteration_num\":10,"
                                   "\"start_fl_job_threshold\":8,\"update_model_ratio\":0.5,"
                                   "\"client_epoch_num\":2,\"client_batch_size\":32,"
                                   "\"client_learning_rate\":0.01,\"global_iteration_time_window\":5}}", &msg), 0);
        assert_int_equal(msg.iteration, 3);
        assert_int_equal(msg.phase, TRAINING_COLLECTING);
        assert_int_equal(msg.abandoned, 2);
        assert_true(msg.next_req_time == UINT64_C(1700000000123));
        assert_string_equal(msg.job.fl_name, "Mnist");
        assert_int_equal(msg.job.fl_iteration_num, 10);
        assert_int_equal(msg.job.start_fl_job_threshold, 8);
        assert_true(msg.job.update_model_ratio == 0.5);
        assert_int_equal(msg.job.client_epoch_num, 2);
        assert_int_equal(msg.job.client_batch_size, 32);
        assert_true(msg.job.client_learning_rate == 0.01);

        /* Without a job: the server's own defaults (MindSpore's). */
        assert_int_equal(iteration("{\"iteration\":1,\"phase\":\"FINISHED\",\"client_learning_rate\":1}", &msg), 0);
        assert_int_equal(msg.phase, TRAINING_FINISHED);
        assert_int_equal(msg.abandoned, 0);
        assert_string_equal(msg.job.fl_name, "Lenet");
        assert_true(msg.job.client_learning_rate == 0.001);
        /* An integer learning rate is a number too. */
        assert_int_equal(iteration("{\"iteration\":1,\"phase\":\"AGGREGATING\",\"job\":{\"client_learning_rate\":1}}",
                                   &msg), 0);
        assert_int_equal(msg.phase, TRAINING_AGGREGATING);
        assert_true(msg.job.client_learning_rate == 1.0);
        assert_int_equal(msg.job.optimizer.kind, OPTIMIZER_FEDAVG);
        assert_false(msg.has_state);

        /* The server optimizer and FedProx in the job, the state's checksum beside the model's. */
        assert_int_equal(iteration("{\"iteration\":4,\"phase\":\"COLLECTING\",\"model_iteration\":3,"
                                   "\"model_checksum\":\"00112233445566AA\",\"state_checksum\":\"ffeeddccbbaa9988\","
                                   "\"job\":{\"server_optimizer\":\"fedyogi\",\"server_learning_rate\":0,"
                                   "\"server_tau\":0.01,\"fedprox_mu\":0.25}}", &msg), 0);
        assert_int_equal(msg.job.optimizer.kind, OPTIMIZER_FEDYOGI);
        assert_true(optimizer_learning_rate(&msg.job.optimizer) == optimizer_default_learning_rate(OPTIMIZER_FEDYOGI));
        assert_true(msg.job.optimizer.tau == 0.01 && msg.job.optimizer.beta2 == OPTIMIZER_DEFAULT_BETA2);
        assert_true(msg.job.fedprox_mu == 0.25);
        assert_true(msg.has_model && msg.has_state);
        assert_string_equal(msg.model_checksum, "00112233445566aa");
        assert_string_equal(msg.state_checksum, "ffeeddccbbaa9988");
        /* None: an empty checksum. */
        assert_int_equal(iteration("{\"iteration\":4,\"phase\":\"COLLECTING\",\"model_checksum\":\"\","
                                   "\"state_checksum\":\"\"}", &msg), 0);
        assert_true(msg.has_state);
        assert_string_equal(msg.state_checksum, "");
}

static void test_iteration_refusals(void **state) {
        static const char *const bad[] = {
                "{\"phase\":\"COLLECTING\"}",
                "{\"iteration\":1}",
                "{\"iteration\":-1,\"phase\":\"COLLECTING\"}",
                "{\"iteration\":\"1\",\"phase\":\"COLLECTING\"}",
                "{\"iteration\":1,\"phase\":\"collecting\"}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"abandoned\":true}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"next_req_time\":-5}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"job\":[]}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"job\":{\"fl_name\":7}}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"job\":{\"fl_iteration_num\":4294967296}}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"job\":{\"update_model_ratio\":1.5}}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"job\":{\"client_learning_rate\":\"x\"}}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"job\":{\"server_optimizer\":\"sgd\"}}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"job\":{\"server_beta1\":1}}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"job\":{\"server_tau\":0}}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"job\":{\"fedprox_mu\":-1}}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"state_checksum\":\"xyz\"}",
                "{\"iteration\":1,\"phase\":\"COLLECTING\",\"state_checksum\":5}",
        };
        IterationMsg msg;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(iteration(bad[i], &msg), -EBADMSG);
}

static int aggregate(const char *text, AggregateMsg *ret) {
        _cleanup_(json_object_putp) json_object *o = parse(text);

        return aggregate_msg_parse(o, ret);
}

static void test_aggregate(void **state) {
        _cleanup_(aggregate_msg_done) AggregateMsg msg = {};
        static const char *const bad[] = {
                "{\"ring\":[]}",
                "{\"iteration\":2,\"ring\":[]}",
                "{\"iteration\":2,\"ring\":{}}",
                "{\"iteration\":2,\"ring\":[{\"rank\":0,\"node_id\":\"a\",\"address\":\"10.0.0.1\"}]}",
                "{\"iteration\":2,\"ring\":[{\"rank\":0,\"node_id\":\"a\",\"address\":\"10.0.0.1\",\"peer_port\":0}]}",
                "{\"iteration\":2,\"ring\":[{\"rank\":0,\"node_id\":\"a\",\"address\":\"10.0.0.1\",\"peer_port\":70000}]}",
                "{\"iteration\":2,\"ring\":[{\"rank\":0,\"node_id\":\"a b\",\"address\":\"10.0.0.1\",\"peer_port\":1}]}",
                "{\"iteration\":2,\"ring\":[{\"rank\":0,\"node_id\":\"a\",\"address\":\"\",\"peer_port\":1}]}",
                "{\"iteration\":2,\"ring\":[7]}",
                "{\"iteration\":2,\"optimizer\":[],\"ring\":[{\"rank\":0,\"node_id\":\"a\",\"address\":\"10.0.0.1\",\"peer_port\":1}]}",
                "{\"iteration\":2,\"optimizer\":{\"server_optimizer\":\"x\"},\"ring\":[{\"rank\":0,\"node_id\":\"a\",\"address\":\"10.0.0.1\",\"peer_port\":1}]}",
                "{\"iteration\":2,\"optimizer\":{\"server_learning_rate\":-1},\"ring\":[{\"rank\":0,\"node_id\":\"a\",\"address\":\"10.0.0.1\",\"peer_port\":1}]}",
        };

        assert_int_equal(aggregate("{\"iteration\":2,\"ring\":["
                                   "{\"rank\":0,\"node_id\":\"a\",\"address\":\"10.0.0.1\",\"peer_port\":40001},"
                                   "{\"rank\":1,\"node_id\":\"b\",\"address\":\"10.0.0.2\",\"peer_port\":40002}]}",
                                   &msg), 0);
        assert_int_equal(msg.iteration, 2);
        assert_int_equal(msg.n_ring, 2);
        assert_int_equal(msg.ring[1].rank, 1);
        assert_string_equal(msg.ring[1].node_id, "b");
        assert_string_equal(msg.ring[1].address, "10.0.0.2");
        assert_int_equal(msg.ring[1].peer_port, 40002);
        assert_false(msg.has_optimizer);
        aggregate_msg_done(&msg);

        /* The step to apply, as the scheduler names it. */
        assert_int_equal(aggregate("{\"iteration\":3,\"optimizer\":{\"server_optimizer\":\"fedadam\","
                                   "\"server_learning_rate\":0.02,\"server_beta1\":0.8},\"ring\":["
                                   "{\"rank\":0,\"node_id\":\"a\",\"address\":\"10.0.0.1\",\"peer_port\":40001}]}",
                                   &msg), 0);
        assert_true(msg.has_optimizer);
        assert_int_equal(msg.optimizer.kind, OPTIMIZER_FEDADAM);
        assert_true(msg.optimizer.learning_rate == 0.02 && msg.optimizer.beta1 == 0.8 &&
                    msg.optimizer.tau == OPTIMIZER_DEFAULT_TAU);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                AggregateMsg m = {};

                assert_int_equal(aggregate(bad[i], &m), -EBADMSG);
                assert_null(m.ring);
        }
}

static int reply(const char *text, SchedulerReply *ret) {
        static char reason[64];
        _cleanup_(json_object_putp) json_object *o = parse(text);
        int r = scheduler_reply_parse(o, ret);

        /* reason points into o, which goes now: keep a copy. */
        if (r >= 0) {
                snprintf(reason, sizeof reason, "%s", ret->reason);
                ret->reason = reason;
        }
        return r;
}

static void test_reply(void **state) {
        SchedulerReply r;

        assert_int_equal(reply("{\"req\":7,\"state\":\"ok\",\"retcode\":200,\"reason\":\"in\",\"iteration\":3,"
                               "\"next_req_time\":1700000000000,\"data_size\":60}", &r), 0);
        assert_int_equal(r.req, 7);
        assert_int_equal(r.state, REPLY_OK);
        assert_int_equal(r.retcode, 200);
        assert_string_equal(r.reason, "in");
        assert_int_equal(r.iteration, 3);
        assert_true(r.next_req_time == UINT64_C(1700000000000));
        assert_int_equal(r.data_size, 60);

        /* safemode and disabled need no verdict. */
        assert_int_equal(reply("{\"req\":8,\"state\":\"safemode\"}", &r), 0);
        assert_int_equal(r.state, REPLY_SAFEMODE);
        assert_string_equal(r.reason, "");
        assert_int_equal(reply("{\"req\":9,\"state\":\"disabled\"}", &r), 0);
        assert_int_equal(r.state, REPLY_DISABLED);

        assert_int_equal(reply("{\"state\":\"ok\",\"retcode\":200}", &r), -EBADMSG);
        assert_int_equal(reply("{\"req\":1,\"retcode\":200}", &r), -EBADMSG);
        assert_int_equal(reply("{\"req\":1,\"state\":\"maybe\",\"retcode\":200}", &r), -EBADMSG);
        assert_int_equal(reply("{\"req\":1,\"state\":\"ok\"}", &r), -EBADMSG);
        assert_int_equal(reply("{\"req\":-1,\"state\":\"ok\",\"retcode\":200}", &r), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_iteration),
                cmocka_unit_test(test_iteration_refusals),
                cmocka_unit_test(test_aggregate),
                cmocka_unit_test(test_reply),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
