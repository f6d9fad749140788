/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "conf.h"
#include "json-util.h"
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

static void test_booleans(void **state) {
        FlConfig c;

        assert_int_equal(conf_init(&c), 0);
        assert_true(c.durable_updates);
        assert_int_equal(conf_set(&c, "durable_updates", "false"), 0);
        assert_false(c.durable_updates);
        assert_int_equal(conf_set(&c, "durable_updates", "1"), 0);
        assert_true(c.durable_updates);
        assert_true(conf_set(&c, "durable_updates", "maybe") < 0);
        assert_true(c.durable_updates);
        assert_int_equal(conf_apply_json_text(&c, "{\"durable_updates\": false}", "x"), 0);
        assert_false(c.durable_updates);
        /* JSON says true or false, not strings or numbers. */
        assert_true(conf_apply_json_text(&c, "{\"durable_updates\": \"true\"}", "x") < 0);
        assert_true(conf_apply_json_text(&c, "{\"durable_updates\": 1}", "x") < 0);
        assert_false(c.durable_updates);
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

static void test_recovery_section(void **state) {
        _cleanup_free_ char *p = NULL;
        FlConfig c;

        /* Without the section: the state directory, as before. */
        assert_int_equal(conf_init(&c), 0);
        assert_int_equal(conf_set(&c, "state_dir", "/srv/fl"), 0);
        assert_int_equal(c.recovery_storage_type, 0);
        assert_int_equal(conf_scheduler_db_path(&c, &p), 0);
        assert_string_equal(p, "/srv/fl/scheduler.db");
        p = mfree(p);
        assert_int_equal(conf_server_db_path(&c, 6668, &p), 0);
        assert_string_equal(p, "/srv/fl/server-6668.db");
        p = mfree(p);

        /* MindSpore's guide's spelling; each server of a host its own file, by port. */
        assert_int_equal(conf_apply_json_text(&c, "{\"recovery\": {\"storage_type\": 1, "
                                              "\"storge_file_path\": \"/var/lib/flcluster/recovery.db\"}}", "x"), 0);
        assert_int_equal(c.recovery_storage_type, 1);
        assert_string_equal(c.recovery_file_path, "/var/lib/flcluster/recovery.db");
        assert_null(c.scheduler_storage_file_path);
        assert_int_equal(conf_server_db_path(&c, 6668, &p), 0);
        assert_string_equal(p, "/var/lib/flcluster/recovery-6668.db");
        p = mfree(p);
        assert_int_equal(conf_server_db_path(&c, 6669, &p), 0);
        assert_string_equal(p, "/var/lib/flcluster/recovery-6669.db");
        p = mfree(p);
        assert_int_equal(conf_scheduler_db_path(&c, &p), 0);
        assert_string_equal(p, "/srv/fl/scheduler.db");
        p = mfree(p);

        /* Its code's spelling, both spellings of one file, the scheduler's file. */
        assert_int_equal(conf_apply_json_text(&c, "{\"recovery\": {\"storage_type\": 1, "
                                              "\"storage_file_path\": \"/d/r.sqlite\", "
                                              "\"storge_file_path\": \"/d/r.sqlite\", "
                                              "\"scheduler_storage_file_path\": \"/e/sched.db\"}}", "x"), 0);
        assert_int_equal(conf_server_db_path(&c, 7000, &p), 0);
        assert_string_equal(p, "/d/r-7000.sqlite");
        p = mfree(p);
        assert_int_equal(conf_scheduler_db_path(&c, &p), 0);
        assert_string_equal(p, "/e/sched.db");
        p = mfree(p);
        conf_done(&c);
        assert_null(c.recovery_file_path);
        assert_null(c.scheduler_storage_file_path);
}

static void test_recovery_path_with_port(void **state) {
        static const struct {
                const char *path, *expected;
        } cases[] = {
                { "/var/lib/flcluster/recovery.db", "/var/lib/flcluster/recovery-6668.db" },
                { "/d/recovery", "/d/recovery-6668" },
                { "/d.x/recovery", "/d.x/recovery-6668" },
                { "/d/.recovery", "/d/.recovery-6668" },
                { "/d/a.tar.gz", "/d/a.tar-6668.gz" },
                { "/r.db", "/r-6668.db" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *p = NULL;

                assert_int_equal(conf_path_with_port(cases[i].path, 6668, &p), 0);
                assert_string_equal(p, cases[i].expected);
        }
}

static void test_recovery_refusals(void **state) {
        static const struct {
                const char *text, *named;
        } bad[] = {
                { "{\"recovery\": {\"storage_type\": 2, \"storge_file_path\": \"/d/r.db\"}}", "storage_type" },
                { "{\"recovery\": {\"storage_type\": 0}}", "storage_type" },
                { "{\"recovery\": {\"storage_type\": \"1\"}}", "storage_type" },
                { "{\"recovery\": {\"storage_type\": 1.0}}", "storage_type" },
                { "{\"recovery\": {\"storge_file_path\": \"/d/a.db\", \"storage_file_path\": \"/d/b.db\"}}",
                  "storage_file_path" },
                { "{\"recovery\": {\"storge_file_path\": 5}}", "storge_file_path" },
                { "{\"recovery\": {\"storge_file_path\": \"\"}}", "storge_file_path" },
                { "{\"recovery\": {\"storge_file_path\": \"relative.db\"}}", "storge_file_path" },
                { "{\"recovery\": {\"storge_file_path\": \"/d/\"}}", "storge_file_path" },
                { "{\"recovery\": {\"storge_file_path\": \"/d/..\"}}", "storge_file_path" },
                { "{\"recovery\": {\"scheduler_storage_file_path\": [\"/d\"]}}", "scheduler_storage_file_path" },
                { "{\"recovery\": {\"storage_typo\": 1}}", "storage_typo" },
                { "{\"recovery\": 1}", "recovery" },
                { "{\"recovery\": \"/d/r.db\"}", "recovery" },
        };
        json_object *o;
        char error[256];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(json_object_putp) json_object *root = json_tokener_parse(bad[i].text);
                FlConfig c;

                assert_non_null(root);
                assert_true(json_object_object_get_ex(root, "recovery", &o));
                assert_int_equal(conf_init(&c), 0);
                error[0] = 0;
                if (conf_apply_recovery(&c, o, error, sizeof error) >= 0)
                        fail_msg("recovery %zu (%s) was not refused", i, bad[i].text);
                if (!strstr(error, bad[i].named))
                        fail_msg("refusal of %s does not name %s: %s", bad[i].text, bad[i].named, error);
                assert_int_equal(conf_apply_json_text(&c, bad[i].text, "x"), conf_apply_recovery(&c, o, error, sizeof error));
                assert_null(c.recovery_file_path);
                conf_done(&c);
        }

        /* Not a command-line option: only the file's section. */
        {
                const char *argv[] = { "test", "--storge_file_path=/d/r.db", NULL };
                FlConfig c;

                assert_int_equal(conf_init(&c), 0);
                assert_int_equal(parse(&c, CONF_ROLE_ALL, 2, argv), -EINVAL);
                conf_done(&c);
        }
}

static void test_recovery_file(void **state) {
        const char *path = write_conf("rec.json", "{\"server_num\": 2, \"recovery\": {\"storage_type\": 1, "
                                      "\"storge_file_path\": \"/var/lib/flcluster/recovery.db\"}}");
        char arg[300];
        const char *argv[] = { "test", arg, "--fl_server_port=6670", NULL };
        _cleanup_free_ char *p = NULL;
        FlConfig c;

        snprintf(arg, sizeof arg, "--config_file_path=%s", path);
        assert_int_equal(conf_init(&c), 0);
        assert_int_equal(parse(&c, CONF_ROLE_SERVER, 3, argv), 0);
        assert_int_equal(conf_server_db_path(&c, (uint16_t) c.fl_server_port, &p), 0);
        assert_string_equal(p, "/var/lib/flcluster/recovery-6670.db");
        conf_done(&c);

        path = write_conf("rec-bad.json", "{\"recovery\": {\"storage_type\": 3}}");
        snprintf(arg, sizeof arg, "--config_file_path=%s", path);
        assert_int_equal(conf_init(&c), 0);
        assert_int_equal(parse(&c, CONF_ROLE_SERVER, 3, argv), -EINVAL);
        conf_done(&c);
}

static void test_ssl_section(void **state) {
        FlConfig c;

        assert_int_equal(conf_init(&c), 0);
        assert_false(c.enable_ssl);
        assert_null(c.ssl.server_cert_path);
        assert_int_equal(c.ssl.cert_expire_warning_time_in_day, 90);
        assert_int_equal(conf_apply_json_text(&c, "{\"enable_ssl\": true, \"ssl\": {"
                                              "\"server_cert_path\": \"/etc/fl/server.p12\", "
                                              "\"server_password\": \"pw\", \"crl_path\": \"\", "
                                              "\"ca_cert_path\": \"/etc/fl/ca.pem\", "
                                              "\"cipher_list\": \"SECURE256\", "
                                              "\"cert_expire_warning_time_in_day\": 30}}", "x"), 0);
        assert_true(c.enable_ssl);
        assert_string_equal(c.ssl.server_cert_path, "/etc/fl/server.p12");
        assert_string_equal(c.ssl.server_password, "pw");
        assert_string_equal(c.ssl.ca_cert_path, "/etc/fl/ca.pem");
        assert_string_equal(c.ssl.cipher_list, "SECURE256");
        assert_null(c.ssl.crl_path);            /* MindSpore's "" is none */
        assert_null(c.ssl.client_cert_path);
        assert_int_equal(c.ssl.cert_expire_warning_time_in_day, 30);
        assert_int_equal(c.ssl.cert_check_interval_in_hour, 24);

        /* A second section replaces the first whole. */
        assert_int_equal(conf_apply_json_text(&c, "{\"ssl\": {\"client_cert_path\": \"/c.pem\", "
                                              "\"client_key_path\": \"/c-key.pem\"}}", "x"), 0);
        assert_null(c.ssl.server_cert_path);
        assert_string_equal(c.ssl.client_key_path, "/c-key.pem");
        assert_int_equal(c.ssl.cert_expire_warning_time_in_day, 90);
        conf_done(&c);
}

static void test_ssl_refusals(void **state) {
        static const struct {
                const char *text, *named;
        } bad[] = {
                { "{\"ssl\": {\"server_cert_path\": 1}}", "server_cert_path" },
                { "{\"ssl\": {\"cert_expire_warning_time_in_day\": 6}}", "cert_expire_warning_time_in_day" },
                { "{\"ssl\": {\"cert_expire_warning_time_in_day\": 181}}", "cert_expire_warning_time_in_day" },
                { "{\"ssl\": {\"cert_expire_warning_time_in_day\": \"90\"}}", "cert_expire_warning_time_in_day" },
                { "{\"ssl\": {\"cert_check_interval_in_hour\": 0}}", "cert_check_interval_in_hour" },
                { "{\"ssl\": {\"client_key_path\": \"/k.pem\"}}", "client_key_path" },
                { "{\"ssl\": {\"server_cert\": \"/s.pem\"}}", "server_cert" },
                { "{\"ssl\": [\"/s.pem\"]}", "ssl" },
        };
        json_object *o;
        char error[512];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_(json_object_putp) json_object *root = json_tokener_parse(bad[i].text);
                FlConfig c;

                assert_non_null(root);
                assert_true(json_object_object_get_ex(root, "ssl", &o));
                assert_int_equal(conf_init(&c), 0);
                assert_int_equal(conf_apply_json_text(&c, "{\"ssl\": {\"ca_cert_path\": \"/ca.pem\"}}", "x"), 0);
                error[0] = 0;
                if (conf_apply_ssl(&c, o, error, sizeof error) >= 0)
                        fail_msg("ssl %zu (%s) was not refused", i, bad[i].text);
                if (!strstr(error, bad[i].named))
                        fail_msg("refusal of %s does not name %s: %s", bad[i].text, bad[i].named, error);
                /* Nothing of a refused section is taken. */
                assert_string_equal(c.ssl.ca_cert_path, "/ca.pem");
                conf_done(&c);
        }

        /* enable_ssl is a boolean option; the section's keys are not options. */
        {
                const char *argv[] = { "test", "--enable_ssl=true", "--cluster_secret_file=/etc/fl/secret", NULL };
                const char *bad_argv[] = { "test", "--ca_cert_path=/ca.pem", NULL };
                FlConfig c;

                assert_int_equal(conf_init(&c), 0);
                assert_int_equal(parse(&c, CONF_ROLE_SERVER, 3, argv), 0);
                assert_true(c.enable_ssl);
                assert_string_equal(c.cluster_secret_file, "/etc/fl/secret");
                assert_int_equal(parse(&c, CONF_ROLE_SCHEDULER, 2, bad_argv), -EINVAL);
                conf_done(&c);
        }
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
                cmocka_unit_test(test_booleans),
                cmocka_unit_test(test_state_dir),
                cmocka_unit_test(test_recovery_section),
                cmocka_unit_test(test_recovery_path_with_port),
                cmocka_unit_test(test_recovery_refusals),
                cmocka_unit_test(test_recovery_file),
                cmocka_unit_test(test_ssl_section),
                cmocka_unit_test(test_ssl_refusals),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
