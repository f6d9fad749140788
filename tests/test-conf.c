/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "conf.h"
#include "log.h"

static char tmpdir[] = "/tmp/test-conf-XXXXXX";

static const char *write_conf(const char *name, const char *text) {
        static char path[256];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        return path;
}

static int parse(FlConfig *c, ConfRole role, int argc, const char **argv) {
        return conf_parse_argv(c, argc, (char **) argv, role, "test", "test");
}

static void test_defaults(void **state) {
        FlConfig c;

        assert_int_equal(conf_init(&c), 0);
        assert_string_equal(c.scheduler_ip, "127.0.0.1");
        assert_int_equal(c.scheduler_port, 6667);
        assert_int_equal(c.scheduler_manage_port, 11202);
        assert_int_equal(c.fl_server_port, 6668);
        assert_int_equal(c.node_timeout, 30);
        assert_int_equal(c.local_server_num, 1);
        assert_int_equal(conf_heartbeat_usec(&c), 3 * USEC_PER_SEC);
        c.node_timeout = 3;
        assert_int_equal(conf_heartbeat_usec(&c), USEC_PER_SEC);
        conf_done(&c);
}

static void test_command_line_wins_over_file(void **state) {
        const char *path = write_conf("a.json", "{\"server_num\": 3, \"scheduler_port\": 7000, \"node_id\": \"from-file\"}");
        char arg[300];
        const char *argv[] = { "test", arg, "--server_num=2", NULL };
        FlConfig c;

        snprintf(arg, sizeof arg, "--config_file_path=%s", path);
        assert_int_equal(conf_init(&c), 0);
        assert_int_equal(parse(&c, CONF_ROLE_SERVER, 3, argv), 0);
        assert_int_equal(c.server_num, 2);              /* command line */
        assert_int_equal(c.scheduler_port, 7000);       /* file */
        assert_string_equal(c.node_id, "from-file");
        assert_string_equal(c.config_file_path, path);
        conf_done(&c);
}

static void test_file_refusals(void **state) {
        static const struct {
                const char *text;
        } bad[] = {
                { "{\"bogus_key\": 1}" },               /* unknown key */
                { "{\"server_num\": \"4\"}" },          /* wrong type */
                { "{\"server_num\": -1}" },             /* negative */
                { "{\"server_num\": 0}" },              /* out of range */
                { "{\"scheduler_port\": 70000}" },      /* out of range */
                { "{\"worker_num\": 1}" },              /* workers unsupported */
                { "{\"server_num\": 4" },               /* malformed */
                { "[1, 2]" },                           /* not an object */
                { "" },                                 /* empty */
                { "{\"node_id\": \"has space\"}" },     /* invalid id */
        };
        char arg[300];
        const char *argv[] = { "test", arg, NULL };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                const char *path = write_conf("bad.json", bad[i].text);
                FlConfig c;

                snprintf(arg, sizeof arg, "--config_file_path=%s", path);
                assert_int_equal(conf_init(&c), 0);
                if (parse(&c, CONF_ROLE_ALL, 2, argv) != -EINVAL)
                        fail_msg("config %zu (%s) was not refused", i, bad[i].text);
                conf_done(&c);
        }
}

static void test_argv_refusals(void **state) {
        static const char *bad[] = {
                "--server_num=abc", "--server_num=", "--server_num=-3", "--bogus=1",
                "--scheduler_port=65536", "--log_level=loud", "positional",
        };

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                const char *argv[] = { "test", bad[i], NULL };
                FlConfig c;

                assert_int_equal(conf_init(&c), 0);
                if (parse(&c, CONF_ROLE_ALL, 2, argv) != -EINVAL)
                        fail_msg("%s was not refused", bad[i]);
                conf_done(&c);
        }
}

static void test_role_options(void **state) {
        const char *argv[] = { "test", "--fl_server_port=7000", NULL };
        FlConfig c;

        /* A server option is not a scheduler command-line option ... */
        assert_int_equal(conf_init(&c), 0);
        assert_int_equal(parse(&c, CONF_ROLE_SCHEDULER, 2, argv), -EINVAL);
        conf_done(&c);

        /* ... but a shared file may hold it. */
        assert_int_equal(conf_init(&c), 0);
        assert_int_equal(conf_apply_json_text(&c, "{\"fl_server_port\": 7000, \"scheduler_manage_port\": 9}", "x"), 0);
        assert_int_equal(c.fl_server_port, 7000);
        conf_done(&c);
}

static void test_job_parameters(void **state) {
        const char *argv[] = { "test", "--update_model_ratio=0.5", "--start_fl_job_threshold=7",
                               "--client_learning_rate=0.01", NULL };
        FlConfig c;

        assert_int_equal(conf_init(&c), 0);
        assert_string_equal(c.fl_name, "Lenet");
        assert_int_equal(c.fl_iteration_num, 20);
        assert_int_equal(c.client_epoch_num, 25);
        assert_int_equal(c.start_fl_job_time_window, 300000);
        assert_int_equal(conf_update_threshold(&c), 1);
        assert_int_equal(parse(&c, CONF_ROLE_SCHEDULER, 4, argv), 0);
        assert_true(c.update_model_ratio == 0.5);
        assert_true(c.client_learning_rate == 0.01);
        assert_int_equal(conf_update_threshold(&c), 4);        /* ceil(7 * 0.5) */
        c.update_model_ratio = 1.0;
        assert_int_equal(conf_update_threshold(&c), 7);
        c.start_fl_job_threshold = 10;
        c.update_model_ratio = 0.3;     /* 3.0000000000000004: still 3 */
        assert_int_equal(conf_update_threshold(&c), 3);

        /* Integers are numbers too; the range is (0, 1]. */
        assert_int_equal(conf_apply_json_text(&c, "{\"update_model_ratio\": 1}", "x"), 0);
        assert_true(c.update_model_ratio == 1.0);
        assert_true(conf_apply_json_text(&c, "{\"update_model_ratio\": 0}", "x") < 0);
        assert_true(conf_apply_json_text(&c, "{\"update_model_ratio\": 1.5}", "x") < 0);
        assert_true(conf_apply_json_text(&c, "{\"update_model_ratio\": \"1\"}", "x") < 0);
        assert_true(conf_set(&c, "client_learning_rate", "nan") < 0);
        assert_true(conf_set(&c, "client_learning_rate", "-1") < 0);
        conf_done(&c);
}

static void test_state_dir(void **state) {
        FlConfig c;

        assert_int_equal(conf_init(&c), 0);
        unsetenv("STATE_DIRECTORY");
        assert_string_equal(conf_state_dir(&c), DEFAULT_STATE_DIR);
        setenv("STATE_DIRECTORY", "/var/lib/flcluster:/var/lib/other", 1);
        assert_string_equal(conf_state_dir(&c), "/var/lib/flcluster");
        assert_int_equal(conf_set(&c, "state_dir", "/tmp/x"), 0);
        assert_string_equal(conf_state_dir(&c), "/tmp/x");
        unsetenv("STATE_DIRECTORY");
        conf_done(&c);
}

static int setup(void **state) {
        log_set_max_level(LOG_CRIT);    /* refusals are expected here */
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[300];

        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        return system(cmd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_command_line_wins_over_file),
                cmocka_unit_test(test_file_refusals),
                cmocka_unit_test(test_argv_refusals),
                cmocka_unit_test(test_role_options),
                cmocka_unit_test(test_job_parameters),
                cmocka_unit_test(test_state_dir),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
