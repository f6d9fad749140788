/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parts of elastic scaling on a server (server-sync.c): the model
 * the scheduler announces, "leaving" in the member list, when a server is in
 * sync, which peers it asks and how. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "conf.h"
#include "json-util.h"
#include "log.h"
#include "server-iteration.h"
#include "server-sync.h"

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

static void test_checksum_parse(void **state) {
        char c[MODEL_CHECKSUM_STRING_MAX];

        assert_int_equal(sync_checksum_parse("", c), 0);
        assert_string_equal(c, "");
        assert_int_equal(sync_checksum_parse("0123456789abcdef", c), 0);
        assert_string_equal(c, "0123456789abcdef");
        assert_int_equal(sync_checksum_parse("0123456789ABCDEF", c), 0);
        assert_string_equal(c, "0123456789abcdef");
        assert_int_equal(sync_checksum_parse("0123456789abcde", c), -EBADMSG);
        assert_int_equal(sync_checksum_parse("0123456789abcdef0", c), -EBADMSG);
        assert_int_equal(sync_checksum_parse("0123456789abcdeg", c), -EBADMSG);
        assert_int_equal(sync_checksum_parse("0123456789abcd f", c), -EBADMSG);
}

static void test_iteration_model(void **state) {
        IterationMsg msg;

        assert_int_equal(iteration("{\"iteration\":4,\"phase\":\"COLLECTING\",\"model_iteration\":3,"
                                   "\"model_checksum\":\"00000000deadBEEF\"}", &msg), 0);
        assert_true(msg.has_model);
        assert_int_equal(msg.model_iteration, 3);
        assert_string_equal(msg.model_checksum, "00000000deadbeef");

        assert_int_equal(iteration("{\"iteration\":1,\"phase\":\"COLLECTING\",\"model_iteration\":0,"
                                   "\"model_checksum\":\"\"}", &msg), 0);
        assert_true(msg.has_model);
        assert_int_equal(msg.model_iteration, 0);
        assert_string_equal(msg.model_checksum, "");

        /* A scheduler before elastic scaling names no model. */
        assert_int_equal(iteration("{\"iteration\":1,\"phase\":\"COLLECTING\"}", &msg), 0);
        assert_false(msg.has_model);

        assert_int_equal(iteration("{\"iteration\":1,\"phase\":\"COLLECTING\",\"model_checksum\":1}", &msg), -EBADMSG);
        assert_int_equal(iteration("{\"iteration\":1,\"phase\":\"COLLECTING\",\"model_checksum\":\"abc\"}", &msg),
                         -EBADMSG);
        assert_int_equal(iteration("{\"iteration\":1,\"phase\":\"COLLECTING\",\"model_checksum\":\"\","
                                   "\"model_iteration\":\"1\"}", &msg), -EBADMSG);
        assert_int_equal(iteration("{\"iteration\":1,\"phase\":\"COLLECTING\",\"model_checksum\":\"\","
                                   "\"model_iteration\":-1}", &msg), -EBADMSG);
        assert_int_equal(iteration("{\"iteration\":1,\"phase\":\"COLLECTING\",\"model_checksum\":\"\","
                                   "\"model_iteration\":4294967296}", &msg), -EBADMSG);
}

static int members(const char *text, ServerMembers *ret) {
        _cleanup_(json_object_putp) json_object *o = parse(text);

        return server_members_parse(o, ret);
}

#define MEMBER(rank, id, address, port, alive, extra) \
        "{\"rank\":" #rank ",\"node_id\":\"" id "\",\"address\":\"" address "\",\"fl_server_port\":" #port \
        ",\"alive\":" #alive extra "}"

static void test_members_leaving(void **state) {
        _cleanup_(server_members_done) ServerMembers v = {}, old = {};
        ServerMembers none;

        assert_int_equal(members("{\"cluster_state\":\"CLUSTER_SCALE_IN\",\"server_num\":2,\"members\":["
                                 MEMBER(0, "a", "10.0.0.1", 6668, true, ",\"leaving\":true") ","
                                 MEMBER(1, "b", "10.0.0.2", 6669, true, ",\"leaving\":false") ","
                                 MEMBER(2, "c", "10.0.0.3", 6670, true, "") "]}", &v), 0);
        assert_true(v.members[0].leaving);
        assert_false(v.members[1].leaving);
        assert_false(v.members[2].leaving);
        assert_ptr_equal(server_members_find(&v, "b"), &v.members[1]);
        assert_null(server_members_find(&v, "d"));

        assert_int_equal(members("{\"cluster_state\":\"CLUSTER_READY\",\"server_num\":3,\"members\":["
                                 MEMBER(0, "a", "10.0.0.1", 6668, true, "") "]}", &old), 0);
        server_members_log_changes(&old, &v);

        assert_int_equal(members("{\"cluster_state\":\"CLUSTER_READY\",\"server_num\":1,\"members\":["
                                 MEMBER(0, "a", "10.0.0.1", 6668, true, ",\"leaving\":1") "]}", &none), -EBADMSG);
}

static void model_of(ServerModel *sm, float value, uint32_t iteration) {
        const char *names[] = { "w", "b" };
        const size_t sizes[] = { 3, 1 };
        Model *model = NULL;

        assert_int_equal(model_new(&model, names, sizes, 2), 0);
        for (size_t i = 0; i < model->n_tensors; i++)
                for (size_t j = 0; j < model->tensors[i].size; j++)
                        model->tensors[i].data[j] = value + (float) j;
        assert_int_equal(server_model_set(sm, model, iteration, NULL, 0), 0);
}

static void test_compare(void **state) {
        ServerModel none = {}, a3 = {}, b4 = {}, a2 = {}, prev = {};

        model_of(&a3, 1.0f, 3);
        model_of(&a2, 1.0f, 2);
        model_of(&b4, 2.0f, 4);

        /* The initial model: anyone with a model is in sync; without one it cannot be checked. */
        assert_int_equal(sync_compare(&a3, &none, 4, 0, "", NULL), SYNC_IN_SYNC);
        assert_int_equal(sync_compare(&none, &none, 1, 0, "", NULL), SYNC_NO_MODEL);

        assert_int_equal(sync_compare(&a3, &none, 4, 3, a3.checksum, NULL), SYNC_IN_SYNC);
        assert_int_equal(sync_compare(&a3, &none, 5, 4, b4.checksum, NULL), SYNC_FETCH);
        assert_int_equal(sync_compare(&none, &none, 5, 4, b4.checksum, NULL), SYNC_FETCH);
        /* The same bytes under another iteration (an iteration without updates). */
        assert_int_equal(sync_compare(&a2, &none, 4, 3, a3.checksum, NULL), SYNC_RELABEL);

        /* Aggregated iteration 4 here, the scheduler still names the model of 3: in sync. */
        model_of(&prev, 1.0f, 3);
        assert_int_equal(sync_compare(&b4, &prev, 4, 3, a3.checksum, NULL), SYNC_IN_SYNC);
        /* But not once the scheduler has moved past iteration 4 without committing it. */
        assert_int_equal(sync_compare(&b4, &prev, 5, 3, a3.checksum, NULL), SYNC_FETCH);

        /* With an optimizer state: the model alone is not enough. */
        {
                const char *names[] = { "fedavgm/m/w", "fedavgm/m/b" };
                const size_t sizes[] = { 3, 1 };
                Model *st = NULL;
                char want[MODEL_CHECKSUM_STRING_MAX];

                assert_int_equal(model_new(&st, names, sizes, 2), 0);
                st->tensors[0].data[1] = 0.5f;
                model_checksum_string(st, want);
                /* No state here, the cluster's has one: model and state come from a peer. */
                assert_int_equal(sync_compare(&a3, &none, 4, 3, a3.checksum, want), SYNC_FETCH);
                assert_int_equal(sync_compare(&a2, &none, 4, 3, a3.checksum, want), SYNC_FETCH);
                assert_int_equal(server_model_set_state(&a3, st, NULL, 0), 0);
                assert_string_equal(a3.state_checksum, want);
                assert_int_equal(sync_compare(&a3, &none, 4, 3, a3.checksum, want), SYNC_IN_SYNC);
                /* The cluster keeps none (fedavg): a state here is not the cluster's. */
                assert_int_equal(sync_compare(&a3, &none, 4, 3, a3.checksum, ""), SYNC_FETCH);
                /* The previous model's state counts when it is the announced model. */
                assert_int_equal(sync_compare(&b4, &prev, 4, 3, a3.checksum, want), SYNC_FETCH);
                assert_int_equal(sync_compare(&b4, &prev, 4, 3, a3.checksum, ""), SYNC_IN_SYNC);
                /* The initial model carries no state to check. */
                assert_int_equal(sync_compare(&a2, &none, 1, 0, "", want), SYNC_IN_SYNC);
        }

        server_model_done(&a3);
        server_model_done(&a2);
        server_model_done(&b4);
        server_model_done(&prev);
}

static void test_peer_url(void **state) {
        char url[SYNC_URL_MAX];

        assert_int_equal(sync_peer_url("10.1.2.3", 6668, url), 0);
        assert_string_equal(url, "http://10.1.2.3:6668/model");
        assert_int_equal(sync_peer_state_url("10.1.2.3", 6668, 12, url), 0);
        assert_string_equal(url, "http://10.1.2.3:6668/model/state?iteration=12");
        assert_int_equal(sync_peer_state_url("host.example", 6668, 12, url), -EINVAL);
        assert_int_equal(sync_peer_url("fe80::1", 6668, url), 0);
        assert_string_equal(url, "http://[fe80::1]:6668/model");
        assert_int_equal(sync_peer_url("::ffff:10.0.0.1", 1, url), 0);
        assert_string_equal(url, "http://[::ffff:10.0.0.1]:1/model");
        assert_int_equal(sync_peer_url_scheme("10.1.2.3", 6668, true, url), 0);
        assert_string_equal(url, "https://10.1.2.3:6668/model");
        assert_int_equal(sync_peer_url_scheme("fe80::1", 6668, true, url), 0);
        assert_string_equal(url, "https://[fe80::1]:6668/model");
        assert_int_equal(sync_peer_url_scheme("example.com", 6668, true, url), -EINVAL);

        assert_int_equal(sync_peer_url("example.com", 6668, url), -EINVAL);
        assert_int_equal(sync_peer_url("10.1.2.3/x", 6668, url), -EINVAL);
        assert_int_equal(sync_peer_url("10.1.2.3:80@evil", 6668, url), -EINVAL);
        assert_int_equal(sync_peer_url("", 6668, url), -EINVAL);
        assert_int_equal(sync_peer_url(NULL, 6668, url), -EINVAL);
        assert_int_equal(sync_peer_url("10.1.2.3", 0, url), -EINVAL);
        assert_int_equal(sync_peer_url("10.1.2.3", 65536, url), -EINVAL);
}

static void test_peers(void **state) {
        _cleanup_(server_members_done) ServerMembers v = {};
        size_t idx[8], n;

        assert_int_equal(members("{\"cluster_state\":\"CLUSTER_SCALE_OUT\",\"server_num\":7,\"members\":["
                                 MEMBER(5, "e", "10.0.0.5", 6668, true, "") ","
                                 MEMBER(3, "self", "10.0.0.3", 6668, true, "") ","
                                 MEMBER(1, "b", "10.0.0.1", 6668, true, "") ","
                                 MEMBER(0, "dead", "10.0.0.9", 6668, false, "") ","
                                 MEMBER(2, "gone", "10.0.0.2", 6668, true, ",\"leaving\":true") ","
                                 MEMBER(4, "bad", "peer.example", 6668, true, "") ","
                                 MEMBER(6, "v6", "fd00::6", 6670, true, "") "]}", &v), 0);
        n = sync_peers(&v, "self", idx);
        assert_int_equal(n, 3);
        assert_string_equal(v.members[idx[0]].node_id, "b");
        assert_string_equal(v.members[idx[1]].node_id, "e");
        assert_string_equal(v.members[idx[2]].node_id, "v6");

        assert_int_equal(sync_peers(&(ServerMembers) {}, "self", idx), 0);
}

static void test_backoff(void **state) {
        static const uint64_t expected_ms[] = { 250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000 };
        uint64_t usec = 0;

        for (size_t i = 0; i < ELEMENTSOF(expected_ms); i++) {
                usec = sync_backoff_next(usec);
                assert_int_equal(usec, expected_ms[i] * USEC_PER_MSEC);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_checksum_parse),
                cmocka_unit_test(test_iteration_model),
                cmocka_unit_test(test_members_leaving),
                cmocka_unit_test(test_compare),
                cmocka_unit_test(test_peer_url),
                cmocka_unit_test(test_peers),
                cmocka_unit_test(test_backoff),
        };

        log_set_max_level(getenv("TEST_DEBUG") ? LOG_DEBUG : LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
