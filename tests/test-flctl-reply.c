/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "fl-bus.h"
#include "flctl-reply.h"
#include "json-util.h"

#define ID0 "c0ffee00-0000-4000-8000-000000000000"
#define ID1 "c0ffee00-0000-4000-8000-000000000001"
#define ID3 "c0ffee00-0000-4000-8000-000000000003"

static json_object *parse(const char *text) {
        json_object *o = NULL;

        assert_int_equal(json_parse_object(text, strlen(text), &o), 0);
        return o;
}

static int nodes_from_text(const char *text, NodeList *ret) {
        _cleanup_(json_object_putp) json_object *o = parse(text);

        return nodes_from_json(o, ret);
}

/* One /nodes entry from its seven raw JSON values, so that each malformed
 * case below differs from a good entry in exactly one field. */
#define NODE_FIELDS(node_id, rank_id, role, alive, address, port, pid)                          \
        "{\"node_id\":" node_id ",\"rank_id\":" rank_id ",\"role\":" role ",\"alive\":" alive  \
        ",\"address\":" address ",\"fl_server_port\":" port ",\"pid\":" pid "}"
#define GOOD_NODE NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "123")
#define NODES(...) "{\"message\":\"Get nodes info successful.\",\"code\":\"0\",\"node_ids\":[" __VA_ARGS__ "]}"

static void test_nodes_from_json(void **state) {
        _cleanup_(node_list_done) NodeList l = {};

        assert_int_equal(nodes_from_text(NODES(
                NODE_FIELDS("\"" ID3 "\"", "\"3\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6671", "123") ","
                NODE_FIELDS("\"" ID1 "\"", "\"\"", "\"SERVER\"", "false", "\"\"", "0", "0")), &l), 0);
        assert_int_equal(l.n, 2);
        assert_string_equal(l.nodes[0].node_id, ID3);
        assert_int_equal(l.nodes[0].rank, 3);
        assert_string_equal(l.nodes[0].role, "SERVER");
        assert_string_equal(l.nodes[0].address, "127.0.0.1");
        assert_int_equal(l.nodes[0].port, 6671);
        assert_true(l.nodes[0].alive);
        assert_int_equal(l.nodes[0].pid, 123);
        assert_int_equal(l.nodes[1].rank, FL_BUS_RANK_NONE);
        assert_false(l.nodes[1].alive);
        assert_string_equal(l.nodes[1].address, "");
}

static void test_nodes_from_json_extra_fields(void **state) {
        _cleanup_(node_list_done) NodeList l = {};

        /* "add fields freely, never rename these": unknown keys are fine. */
        assert_int_equal(nodes_from_text("{\"code\":\"0\",\"future\":[1,{}],\"node_ids\":["
                                         "{\"node_id\":\"" ID0 "\",\"rank_id\":\"0\",\"role\":\"SERVER\","
                                         "\"alive\":true,\"address\":\"::1\",\"fl_server_port\":1,\"pid\":2,"
                                         "\"iteration\":7}]}", &l), 0);
        assert_int_equal(l.n, 1);
        assert_string_equal(l.nodes[0].address, "::1");
}

static void test_nodes_from_json_empty(void **state) {
        _cleanup_(node_list_done) NodeList l = {};

        assert_int_equal(nodes_from_text(NODES(), &l), 0);
        assert_int_equal(l.n, 0);
}

static void test_nodes_from_json_malformed(void **state) {
        static const char *const bad[] = {
                "{\"code\":\"0\"}",
                "{\"code\":\"0\",\"node_ids\":{}}",
                "{\"code\":\"0\",\"node_ids\":\"x\"}",
                NODES("1"),
                NODES("[]"),
                NODES(GOOD_NODE ",null"),
                /* rank_id must be a string, as MindSpore sends it */
                NODES(NODE_FIELDS("\"" ID0 "\"", "0", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"-1\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"1x\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"4294967296\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"has space\"", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"esc\\u001b[2J\"", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"\"", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("7", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"server\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"\"", "true", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "\"true\"", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "1", "\"127.0.0.1\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "true", "\"a b\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "true", "\"a\\nb\"", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "true", "null", "6668", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "65536", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "\"6668\"", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668.5", "1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "-1")),
                NODES(NODE_FIELDS("\"" ID0 "\"", "\"0\"", "\"SERVER\"", "true", "\"127.0.0.1\"", "6668", "4294967296")),
                NODES("{\"rank_id\":\"0\",\"role\":\"SERVER\",\"alive\":true,\"address\":\"h\",\"fl_server_port\":1,\"pid\":1}"),
                NODES("{\"node_id\":\"" ID0 "\",\"rank_id\":\"0\",\"role\":\"SERVER\",\"address\":\"h\",\"fl_server_port\":1,\"pid\":1}"),
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                NodeList l = {};

                if (nodes_from_text(bad[i], &l) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
                assert_int_equal(l.n, 0);
                assert_null(l.nodes);
        }
}

static void test_stopped_from_json(void **state) {
        _cleanup_(json_object_putp) json_object *o = parse(
                "{\"message\":\"Cluster finished.\",\"code\":\"0\",\"stopped\":["
                "{\"role\":\"SERVER\",\"rank_id\":\"0\",\"node_id\":\"" ID0 "\",\"pid\":123},"
                "{\"role\":\"SCHEDULER\",\"rank_id\":\"\",\"node_id\":\"scheduler\",\"pid\":456}]}");
        _cleanup_(json_object_putp) json_object *bad = parse(
                "{\"code\":\"0\",\"stopped\":[{\"role\":\"SERVER\",\"rank_id\":\"0\",\"node_id\":\"" ID0 "\"}]}");
        _cleanup_(node_list_done) NodeList l = {};

        assert_int_equal(stopped_from_json(o, &l), 0);
        assert_int_equal(l.n, 2);
        assert_string_equal(l.nodes[0].role, "SERVER");
        assert_int_equal(l.nodes[0].rank, 0);
        assert_int_equal(l.nodes[0].pid, 123);
        assert_null(l.nodes[0].address);
        assert_string_equal(l.nodes[1].node_id, "scheduler");
        assert_int_equal(l.nodes[1].rank, FL_BUS_RANK_NONE);

        node_list_done(&l);
        assert_int_equal(stopped_from_json(bad, &l), -EBADMSG);
}

static void test_state_from_json(void **state) {
        static const char *const bad[] = {
                "{\"code\":\"0\"}",
                "{\"code\":\"0\",\"cluster_state\":5}",
                "{\"code\":\"0\",\"cluster_state\":\"\"}",
                "{\"code\":\"0\",\"cluster_state\":\"CLUSTER READY\"}",
                "{\"code\":\"0\",\"cluster_state\":\"cluster_ready\"}",
                "{\"code\":\"0\",\"cluster_state\":\"CLUSTER_READY\\u001b\"}",
        };
        _cleanup_(json_object_putp) json_object *o = parse(
                "{\"message\":\"Get cluster state successful.\",\"code\":\"0\","
                "\"cluster_state\":\"CLUSTER_READY\",\"server_num\":4,\"alive_server_num\":4}");
        _cleanup_free_ char *s = NULL;

        assert_int_equal(state_from_json(o, &s), 0);
        assert_string_equal(s, "CLUSTER_READY");

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(json_object_putp) json_object *b = parse(bad[i]);
                char *t = NULL;

                if (state_from_json(b, &t) != -EBADMSG)
                        fail_msg("accepted: %s", bad[i]);
                assert_null(t);
        }
}

static void test_rank_from_string(void **state) {
        uint32_t r;

        assert_int_equal(rank_from_string("", &r), 0);
        assert_int_equal(r, FL_BUS_RANK_NONE);
        assert_int_equal(rank_from_string("0", &r), 0);
        assert_int_equal(r, 0);
        assert_int_equal(rank_from_string("4294967294", &r), 0);
        assert_int_equal(r, 4294967294U);
        assert_int_equal(rank_from_string("-1", &r), -EBADMSG);
        assert_int_equal(rank_from_string(" 1", &r), -EBADMSG);
        assert_int_equal(rank_from_string("1 ", &r), -EBADMSG);
        assert_int_equal(rank_from_string("0x1", &r), -EBADMSG);
        assert_int_equal(rank_from_string("4294967296", &r), -EBADMSG);
}

static void add(NodeList *l, const char *id, uint32_t rank, const char *role) {
        assert_int_equal(node_list_add(l, id, rank, role, NULL, 0, false, 0), 0);
}

static void test_sort_by_rank(void **state) {
        _cleanup_(node_list_done) NodeList l = {};

        add(&l, "b", FL_BUS_RANK_NONE, "SERVER");
        add(&l, "z", 2, "SERVER");
        add(&l, "a", FL_BUS_RANK_NONE, "SERVER");
        add(&l, "y", 0, "SERVER");
        add(&l, "x", 10, "SERVER");
        node_list_sort_by_rank(&l);

        assert_string_equal(l.nodes[0].node_id, "y");
        assert_string_equal(l.nodes[1].node_id, "z");
        assert_string_equal(l.nodes[2].node_id, "x");
        assert_string_equal(l.nodes[3].node_id, "a");
        assert_string_equal(l.nodes[4].node_id, "b");
}

static void test_move_scheduler_last(void **state) {
        _cleanup_(node_list_done) NodeList l = {}, empty = {};

        add(&l, "s2", 2, "SERVER");
        add(&l, "scheduler", FL_BUS_RANK_NONE, "SCHEDULER");
        add(&l, "s0", 0, "SERVER");
        add(&l, "s1", 1, "SERVER");
        node_list_move_scheduler_last(&l);

        /* The servers keep the order they stopped in. */
        assert_string_equal(l.nodes[0].node_id, "s2");
        assert_string_equal(l.nodes[1].node_id, "s0");
        assert_string_equal(l.nodes[2].node_id, "s1");
        assert_string_equal(l.nodes[3].node_id, "scheduler");

        node_list_move_scheduler_last(&empty);
        assert_int_equal(empty.n, 0);
}

static void test_message_sanitize(void **state) {
        _cleanup_free_ char *a = message_sanitize("The node id:X is illegal.");
        _cleanup_free_ char *b = message_sanitize("bad\x1b[2J\r\nline\x7f");
        _cleanup_free_ char *c = message_sanitize("Zürich");
        _cleanup_free_ char *long_text = malloc(4000), *d = NULL, *e = NULL;

        assert_string_equal(a, "The node id:X is illegal.");
        assert_string_equal(b, "bad [2J  line ");
        assert_string_equal(c, "Zürich");

        assert_non_null(long_text);
        memset(long_text, 'x', 3999);
        long_text[3999] = '\0';
        d = message_sanitize(long_text);
        assert_int_equal(strlen(d), 1024);

        /* Bounded without splitting a two-byte character: "ü" at 1023..1024. */
        memcpy(long_text + 1023, "\xc3\xbc", 2);
        e = message_sanitize(long_text);
        assert_int_equal(strlen(e), 1023);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_nodes_from_json),
                cmocka_unit_test(test_nodes_from_json_extra_fields),
                cmocka_unit_test(test_nodes_from_json_empty),
                cmocka_unit_test(test_nodes_from_json_malformed),
                cmocka_unit_test(test_stopped_from_json),
                cmocka_unit_test(test_state_from_json),
                cmocka_unit_test(test_rank_from_string),
                cmocka_unit_test(test_sort_by_rank),
                cmocka_unit_test(test_move_scheduler_last),
                cmocka_unit_test(test_message_sanitize),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
