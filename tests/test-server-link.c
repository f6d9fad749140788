/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <string.h>
#include <cmocka.h>

#include "json-util.h"
#include "log.h"
#include "server-link.h"

static void test_backoff(void **state) {
        static const uint64_t expected_ms[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000 };
        uint64_t usec = 0;

        for (size_t i = 0; i < ELEMENTSOF(expected_ms); i++) {
                usec = server_link_backoff_next(usec);
                assert_int_equal(usec, expected_ms[i] * USEC_PER_MSEC);
        }
}

static void test_jitter(void **state) {
        uint64_t base = 400 * USEC_PER_MSEC;

        assert_int_equal(server_link_jitter(base, 0), 300 * USEC_PER_MSEC);
        assert_int_equal(server_link_jitter(base, UINT32_C(1) << 31), 400 * USEC_PER_MSEC);
        assert_true(server_link_jitter(base, UINT32_MAX) < 500 * USEC_PER_MSEC);
        assert_true(server_link_jitter(LINK_BACKOFF_MAX_USEC, UINT32_MAX) < LINK_BACKOFF_MAX_USEC / 4 * 5);
}

static int parse(const char *text, ServerMembers *ret) {
        _cleanup_(json_object_putp) json_object *o = NULL;

        assert_int_equal(json_parse_object(text, strlen(text), &o), 0);
        return server_members_parse(o, ret);
}

static void test_members(void **state) {
        ServerMembers none, unknown, v, w;

        assert_int_equal(parse("{\"cluster_state\":\"CLUSTER_READY\",\"server_num\":2,\"extra\":1,\"members\":["
                               "{\"rank\":0,\"node_id\":\"a\",\"address\":\"10.0.0.1\",\"fl_server_port\":6668,\"alive\":true},"
                               "{\"rank\":1,\"node_id\":\"b\",\"address\":\"10.0.0.2\",\"fl_server_port\":6669,\"alive\":false}]}",
                               &v), 0);
        assert_int_equal(v.cluster_state, CLUSTER_READY);
        assert_int_equal(v.server_num, 2);
        assert_int_equal(v.n_members, 2);
        assert_string_equal(v.members[1].node_id, "b");
        assert_string_equal(v.members[1].address, "10.0.0.2");
        assert_int_equal(v.members[1].fl_server_port, 6669);
        assert_int_equal(server_members_alive(&v), 1);

        assert_int_equal(parse("{\"cluster_state\":\"CLUSTER_SCALE_IN\",\"server_num\":1,\"members\":["
                               "{\"rank\":0,\"node_id\":\"b\",\"address\":\"10.0.0.2\",\"fl_server_port\":6669,\"alive\":true}]}",
                               &w), 0);
        /* The change log copes with an unknown start and with departures. */
        server_members_init(&unknown);
        server_members_log_changes(&unknown, &v);
        server_members_log_changes(&v, &w);
        server_members_done(&v);
        server_members_done(&w);

        assert_int_equal(parse("{\"cluster_state\":\"NO_SUCH_STATE\",\"server_num\":1,\"members\":[]}", &none), -EBADMSG);
        assert_int_equal(parse("{\"cluster_state\":\"CLUSTER_READY\",\"members\":[]}", &none), -EBADMSG);
        assert_int_equal(parse("{\"cluster_state\":\"CLUSTER_READY\",\"server_num\":1,\"members\":{}}", &none), -EBADMSG);
        assert_int_equal(parse("{\"cluster_state\":\"CLUSTER_READY\",\"server_num\":1,\"members\":[1]}", &none), -EBADMSG);
        assert_int_equal(parse("{\"cluster_state\":\"CLUSTER_READY\",\"server_num\":1,\"members\":["
                               "{\"rank\":0,\"node_id\":\"a\",\"address\":\"x\",\"fl_server_port\":1,\"alive\":\"yes\"}]}",
                               &none), -EBADMSG);
        assert_int_equal(server_members_parse(NULL, &none), -EBADMSG);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_backoff),
                cmocka_unit_test(test_jitter),
                cmocka_unit_test(test_members),
        };

        log_set_max_level(LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
