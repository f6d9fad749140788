/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster-trust.h"
#include "log.h"
#include "tls-test-util.h"
#include "util.h"

/* A daemon's trust: what it loads from the configuration, what a reload
 * changes (and what a broken reload leaves alone), the expiry warnings. */

static char dir[256];
static TlsIssued ca;
static char ca_path[512];

static void copy_file(const char *from, const char *to) {
        _cleanup_free_ char *text = NULL;

        assert_int_equal(read_full_file(from, &text, NULL, 1 << 20), 0);
        assert_int_equal(write_file_atomic(to, text), 0);
}

static void config_for(FlConfig *c, const char *cert, const char *key) {
        assert_int_equal(conf_init(c), 0);
        c->enable_ssl = true;
        c->ssl.server_cert_path = strdup(cert);
        c->ssl.server_key_path = strdup(key);
        c->ssl.ca_cert_path = strdup(ca_path);
}

typedef struct Run {
        sd_event *event;
        FlConfig *config;
        ClusterTrust *trust;
        int r;
} Run;

static void run_new(void *userdata) {
        Run *run = userdata;

        run->r = cluster_trust_new(&run->trust, run->event, run->config);
}

static void run_reload(void *userdata) {
        Run *run = userdata;

        run->r = cluster_trust_reload(run->trust);
}

static void test_load_and_reload(void **state) {
        TlsTestNode first, second, live;
        _cleanup_free_ char *out = NULL, *serial1 = NULL;
        FlConfig c;
        Run run = { .config = &c };

        tls_test_node_now(dir, "first", &ca, "127.0.0.1", &first);
        tls_test_node_now(dir, "second", &ca, "127.0.0.1", &second);
        snprintf(live.cert, sizeof live.cert, "%s/live.pem", dir);
        snprintf(live.key, sizeof live.key, "%s/live-key.pem", dir);
        copy_file(first.cert, live.cert);
        copy_file(first.key, live.key);
        config_for(&c, live.cert, live.key);
        assert_int_equal(sd_event_new(&run.event), 0);

        out = test_capture_stderr(run_new, &run);
        assert_int_equal(run.r, 0);
        assert_non_null(cluster_trust_tls(run.trust));
        assert_false(cluster_trust_has_secret(run.trust));
        assert_non_null(strstr(out, "Loaded the TLS material: certificate serial"));
        /* A certificate of a year does not warn at 90 days. */
        assert_null(strstr(out, "expires in"));
        serial1 = strdup(tls_material_serial(cluster_trust_tls(run.trust)));

        /* New files at the same paths: the next generation. */
        copy_file(second.cert, live.cert);
        copy_file(second.key, live.key);
        free(out);
        out = test_capture_stderr(run_reload, &run);
        assert_int_equal(run.r, 0);
        assert_non_null(strstr(out, "Reloaded the TLS material"));
        assert_string_not_equal(tls_material_serial(cluster_trust_tls(run.trust)), serial1);

        /* A key that does not belong: the reload fails, the material in force stays. */
        {
                _cleanup_free_ char *serial2 = strdup(tls_material_serial(cluster_trust_tls(run.trust)));

                copy_file(first.key, live.key);
                free(out);
                out = test_capture_stderr(run_reload, &run);
                assert_true(run.r < 0);
                assert_non_null(strstr(out, "does not belong to the certificate"));
                assert_non_null(strstr(out, "Reload failed"));
                assert_string_equal(tls_material_serial(cluster_trust_tls(run.trust)), serial2);
        }

        cluster_trust_free(run.trust);
        sd_event_unref(run.event);
        conf_done(&c);
}

static void test_expiry_warning_and_secret(void **state) {
        TlsTestNode soon;
        _cleanup_free_ char *out = NULL;
        char secret[512];
        time_t now = time(NULL);
        FlConfig c;
        Run run = { .config = &c };

        tls_test_node(dir, "soon", &ca, "127.0.0.1", now - TLS_TEST_DAY, now + 20 * TLS_TEST_DAY + 3600, &soon);
        config_for(&c, soon.cert, soon.key);
        c.ssl.cert_expire_warning_time_in_day = 30;
        snprintf(secret, sizeof secret, "%s/secret", dir);
        assert_int_equal(write_file_atomic(secret, "a secret of the cluster\n"), 0);
        assert_int_equal(chmod(secret, 0600), 0);
        c.cluster_secret_file = strdup(secret);
        assert_int_equal(sd_event_new(&run.event), 0);

        out = test_capture_stderr(run_new, &run);
        assert_int_equal(run.r, 0);
        assert_true(cluster_trust_has_secret(run.trust));
        if (!strstr(out, "The server certificate (ssl.server_cert_path, ") || !strstr(out, "expires in 20 days"))
                fail_msg("no expiry warning: %s", out);
        assert_non_null(strstr(out, "Loaded the cluster secret from"));
        cluster_trust_free(run.trust);

        /* A file that is not there: refused, and said so. */
        free(c.cluster_secret_file);
        c.cluster_secret_file = strdup("/nonexistent/secret");
        free(out);
        out = test_capture_stderr(run_new, &run);
        assert_int_equal(run.r, -EINVAL);
        assert_non_null(strstr(out, "/nonexistent/secret"));
        sd_event_unref(run.event);
        conf_done(&c);
}

static int setup(void **state) {
        log_set_max_level(LOG_INFO);
        tls_test_mkdir(dir);
        tls_test_ca(dir, "ca", &ca, ca_path);
        return 0;
}

static int teardown(void **state) {
        tls_issued_done(&ca);
        tls_test_rmdir(dir);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_load_and_reload),
                cmocka_unit_test(test_expiry_warning_and_secret),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
