/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "fl-bus.h"
#include "flctl-output.h"
#include "flctl-table.h"
#include "json-util.h"

#define ID0 "c0ffee00-0000-4000-8000-000000000000"
#define ID1 "c0ffee00-0000-4000-8000-000000000001"

static void test_table_format(void **state) {
        static const char *const headers[] = { "A", "LONG-HEADER", "C" };
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *s = NULL;

        assert_int_equal(table_new(&t, headers, ELEMENTSOF(headers)), 0);
        assert_int_equal(table_add_row(t, (const char *[]) { "wide-cell", "x", "last" }, 3), 0);
        assert_int_equal(table_add_row(t, (const char *[]) { "", NULL, "z" }, 3), 0);
        assert_int_equal(table_format(t, &s), 0);
        assert_string_equal(s,
                            "A          LONG-HEADER  C\n"
                            "wide-cell  x            last\n"
                            "                        z\n");
}

static void test_table_header_only(void **state) {
        static const char *const headers[] = { "ONE", "TWO" };
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *s = NULL;

        assert_int_equal(table_new(&t, headers, ELEMENTSOF(headers)), 0);
        assert_int_equal(table_format(t, &s), 0);
        assert_string_equal(s, "ONE  TWO\n");
}

static void test_table_column_count(void **state) {
        static const char *const headers[] = { "ONE", "TWO" };
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_(table_freep) Table *none = NULL;

        assert_int_equal(table_new(&none, headers, 0), -EINVAL);
        assert_int_equal(table_new(&t, headers, ELEMENTSOF(headers)), 0);
        assert_int_equal(table_add_row(t, (const char *[]) { "a" }, 1), -EINVAL);
        assert_int_equal(table_add_row(t, (const char *[]) { "a", "b", "c" }, 3), -EINVAL);
}

static void sample_nodes(NodeList *l) {
        /* Out of rank order, as a reply may come: the formatters must not sort. */
        assert_int_equal(node_list_add(l, ID1, 1, "SERVER", "10.0.0.7", 6669, false, 4242), 0);
        assert_int_equal(node_list_add(l, ID0, 0, "SERVER", "127.0.0.1", 6668, true, 1234), 0);
        assert_int_equal(node_list_add(l, "joining", FL_BUS_RANK_NONE, "SERVER", "", 0, true, 0), 0);
}

static void test_nodes_format_table(void **state) {
        _cleanup_(node_list_done) NodeList l = {};
        _cleanup_free_ char *s = NULL;

        sample_nodes(&l);
        assert_int_equal(nodes_format_table(&l, &s), 0);
        assert_string_equal(s,
                            "RANK  NODE-ID                               ROLE    ADDRESS    PORT  ALIVE  PID\n"
                            "1     " ID1 "  SERVER  10.0.0.7   6669  no     4242\n"
                            "0     " ID0 "  SERVER  127.0.0.1  6668  yes    1234\n"
                            "-     joining                               SERVER  -          -     yes    -\n");
}

static void test_nodes_format_table_empty(void **state) {
        NodeList l = {};
        _cleanup_free_ char *s = NULL;

        assert_int_equal(nodes_format_table(&l, &s), 0);
        assert_string_equal(s, "RANK  NODE-ID  ROLE  ADDRESS  PORT  ALIVE  PID\n");
}

static void test_nodes_format_json(void **state) {
        _cleanup_(node_list_done) NodeList l = {}, again = {};
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *s = NULL;

        sample_nodes(&l);
        assert_int_equal(nodes_format_json(&l, &s), 0);
        assert_string_equal(s,
                            "{\"node_ids\":["
                            "{\"node_id\":\"" ID1 "\",\"rank_id\":\"1\",\"role\":\"SERVER\",\"alive\":false,"
                            "\"address\":\"10.0.0.7\",\"fl_server_port\":6669,\"pid\":4242},"
                            "{\"node_id\":\"" ID0 "\",\"rank_id\":\"0\",\"role\":\"SERVER\",\"alive\":true,"
                            "\"address\":\"127.0.0.1\",\"fl_server_port\":6668,\"pid\":1234},"
                            "{\"node_id\":\"joining\",\"rank_id\":\"\",\"role\":\"SERVER\",\"alive\":true,"
                            "\"address\":\"\",\"fl_server_port\":0,\"pid\":0}]}\n");

        /* What flctl prints for scripts parses back like a REST reply does. */
        assert_int_equal(json_parse_object(s, strlen(s) - 1, &o), 0);
        assert_int_equal(nodes_from_json(o, &again), 0);
        assert_int_equal(again.n, 3);
        assert_string_equal(again.nodes[1].node_id, ID0);
        assert_int_equal(again.nodes[2].rank, FL_BUS_RANK_NONE);
        assert_int_equal(again.nodes[0].port, 6669);
}

static void sample_stopped(NodeList *l) {
        assert_int_equal(node_list_add(l, ID0, 0, "SERVER", NULL, 0, false, 1234), 0);
        assert_int_equal(node_list_add(l, ID1, 1, "SERVER", NULL, 0, false, 0), 0);
        assert_int_equal(node_list_add(l, "scheduler", FL_BUS_RANK_NONE, "SCHEDULER", NULL, 0, false, 456), 0);
}

static void test_stopped_format_lines(void **state) {
        _cleanup_(node_list_done) NodeList l = {};
        _cleanup_free_ char *s = NULL;

        sample_stopped(&l);
        assert_int_equal(stopped_format_lines(&l, &s), 0);
        assert_string_equal(s,
                            "Stopped SERVER rank 0 node " ID0 " pid 1234\n"
                            "Stopped SERVER rank 1 node " ID1 "\n"
                            "Stopped SCHEDULER node scheduler pid 456\n");
}

static void test_stopped_format_json(void **state) {
        _cleanup_(node_list_done) NodeList l = {}, empty = {};
        _cleanup_free_ char *s = NULL, *e = NULL;

        sample_stopped(&l);
        assert_int_equal(stopped_format_json(&l, &s), 0);
        assert_string_equal(s,
                            "{\"stopped\":["
                            "{\"role\":\"SERVER\",\"rank_id\":\"0\",\"node_id\":\"" ID0 "\",\"pid\":1234},"
                            "{\"role\":\"SERVER\",\"rank_id\":\"1\",\"node_id\":\"" ID1 "\",\"pid\":0},"
                            "{\"role\":\"SCHEDULER\",\"rank_id\":\"\",\"node_id\":\"scheduler\",\"pid\":456}]}\n");

        assert_int_equal(stopped_format_json(&empty, &e), 0);
        assert_string_equal(e, "{\"stopped\":[]}\n");
}

static void test_state_format_json(void **state) {
        _cleanup_free_ char *s = NULL;

        assert_int_equal(state_format_json("CLUSTER_READY", &s), 0);
        assert_string_equal(s, "{\"cluster_state\":\"CLUSTER_READY\"}\n");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_table_format),
                cmocka_unit_test(test_table_header_only),
                cmocka_unit_test(test_table_column_count),
                cmocka_unit_test(test_nodes_format_table),
                cmocka_unit_test(test_nodes_format_table_empty),
                cmocka_unit_test(test_nodes_format_json),
                cmocka_unit_test(test_stopped_format_lines),
                cmocka_unit_test(test_stopped_format_json),
                cmocka_unit_test(test_state_format_json),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
