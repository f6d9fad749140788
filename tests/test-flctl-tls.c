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

#include "flctl-args.h"
#include "flctl-tls.h"
#include "log.h"
#include "tls.h"
#include "util.h"

/* flctl tls init: the hosts it takes, the four files it writes (modes,
 * contents a daemon loads), and what it refuses to overwrite. */

static char dir[256];

static void free_hosts(char **hosts) {
        for (char **h = hosts; h && *h; h++)
                free(*h);
        free(hosts);
}

static void test_hosts(void **state) {
        static const char *good[] = { "10.0.0.5", "10.0.0.5,10.0.0.6", "fl.example.org,::1,127.0.0.1" };
        static const char *bad[] = { "", ",10.0.0.5", "10.0.0.5,", "10.0.0.5,,10.0.0.6", "10.0.0.5,10.0.0.5",
                                     "Fl.Example.org,fl.example.org", "not a host", "10.0.0.5:6668", "a..b" };
        char **hosts;
        size_t n;

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                assert_int_equal(tls_init_parse_hosts(good[i], &hosts, &n), 0);
                assert_true(n >= 1);
                free_hosts(hosts);
        }
        assert_int_equal(tls_init_parse_hosts("fl.example.org,::1,127.0.0.1", &hosts, &n), 0);
        assert_int_equal(n, 3);
        assert_string_equal(hosts[1], "::1");
        assert_null(hosts[3]);
        free_hosts(hosts);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (tls_init_parse_hosts(bad[i], &hosts, &n) != -EINVAL)
                        fail_msg("--hosts '%s' was taken", bad[i]);
        assert_int_equal(tls_init_parse_hosts(NULL, &hosts, &n), -EINVAL);
}

static int parse(int argc, char **argv, FlctlOptions *o) {
        int verb;

        return parse_argv(argc, argv, o, &verb);
}

static mode_t mode_of(const char *path) {
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return st.st_mode & 07777;
}

static TlsMaterial *load(const char *d) {
        char cert[512], key[512], ca[512], error[512] = "";
        SslConfig s = {};
        TlsMaterial *m = NULL;

        snprintf(cert, sizeof cert, "%s/node.pem", d);
        snprintf(key, sizeof key, "%s/node-key.pem", d);
        snprintf(ca, sizeof ca, "%s/ca.pem", d);
        s.server_cert_path = cert;
        s.server_key_path = key;
        s.ca_cert_path = ca;
        if (tls_material_load(&s, &m, error, sizeof error) < 0)
                fail_msg("flctl's material does not load: %s", error);
        return m;
}

static void test_init(void **state) {
        char sub[300], path[400], arg_dir[320];
        char *argv[] = { "flctl", "tls", "init", arg_dir, "--hosts=127.0.0.1,fl.example.org", NULL };
        _cleanup_free_ char *ca_before = NULL, *ca_after = NULL, *node_before = NULL, *node_after = NULL;
        FlctlOptions o;
        TlsMaterial *m;

        snprintf(sub, sizeof sub, "%s/made/here", dir);
        snprintf(arg_dir, sizeof arg_dir, "--dir=%s", sub);
        assert_int_equal(parse(5, argv, &o), 1);
        assert_int_equal(check_tls_init(&o, 0, NULL), 0);
        assert_int_equal(verb_tls_init(NULL, &o, 0, NULL), 0);

        snprintf(path, sizeof path, "%s/ca-key.pem", sub);
        assert_int_equal(mode_of(path), 0600);
        snprintf(path, sizeof path, "%s/node-key.pem", sub);
        assert_int_equal(mode_of(path), 0640);
        snprintf(path, sizeof path, "%s/node.pem", sub);
        assert_int_equal(mode_of(path), 0644);
        assert_int_equal(read_full_file(path, &node_before, NULL, 1 << 20), 0);
        snprintf(path, sizeof path, "%s/ca.pem", sub);
        assert_int_equal(read_full_file(path, &ca_before, NULL, 1 << 20), 0);

        /* What it wrote is what a daemon loads: valid, signed by the CA, for both names. */
        m = load(sub);
        assert_true(tls_material_names(m, "127.0.0.1"));
        assert_true(tls_material_names(m, "fl.example.org"));
        assert_false(tls_material_names(m, "10.0.0.1"));
        tls_material_unref(m);

        /* Again: refused, nothing changed. */
        assert_int_equal(verb_tls_init(NULL, &o, 0, NULL), -EEXIST);
        assert_int_equal(read_full_file(path, &ca_after, NULL, 1 << 20), 0);
        assert_string_equal(ca_after, ca_before);

        /* --keep-ca without --force: the node files are there, refused too. (getopt
         * permutes argv: each parse gets an array of its own.) */
        {
                char *argv1[] = { "flctl", "tls", "init", arg_dir, "--hosts=127.0.0.1", "--keep-ca", NULL };

                assert_int_equal(parse(6, argv1, &o), 1);
                assert_int_equal(verb_tls_init(NULL, &o, 0, NULL), -EEXIST);
        }

        /* --keep-ca --force: a new node certificate from the same CA. */
        {
                char *argv2[] = { "flctl", "tls", "init", arg_dir, "--hosts=127.0.0.1", "--keep-ca", "--force", NULL };

                assert_int_equal(parse(7, argv2, &o), 1);
                assert_true(o.keep_ca && o.force);
                assert_int_equal(verb_tls_init(NULL, &o, 0, NULL), 0);
        }
        free(ca_after);
        ca_after = NULL;
        assert_int_equal(read_full_file(path, &ca_after, NULL, 1 << 20), 0);
        assert_string_equal(ca_after, ca_before);
        snprintf(path, sizeof path, "%s/node.pem", sub);
        assert_int_equal(read_full_file(path, &node_after, NULL, 1 << 20), 0);
        assert_string_not_equal(node_after, node_before);
        m = load(sub);
        assert_false(tls_material_names(m, "fl.example.org"));
        tls_material_unref(m);

        /* --force alone: a new CA as well. */
        {
                char *argv3[] = { "flctl", "tls", "init", arg_dir, "--hosts=127.0.0.1", "--force", NULL };

                assert_int_equal(parse(6, argv3, &o), 1);
                assert_false(o.keep_ca);
                assert_int_equal(verb_tls_init(NULL, &o, 0, NULL), 0);
        }
        free(ca_after);
        ca_after = NULL;
        snprintf(path, sizeof path, "%s/ca.pem", sub);
        assert_int_equal(read_full_file(path, &ca_after, NULL, 1 << 20), 0);
        assert_string_not_equal(ca_after, ca_before);
        tls_material_unref(load(sub));

        /* --keep-ca where there is no CA. */
        {
                char other[320], *argv4[] = { "flctl", "tls", "init", other, "--hosts=127.0.0.1", "--keep-ca", NULL };

                snprintf(other, sizeof other, "--dir=%s/empty", dir);
                assert_int_equal(parse(6, argv4, &o), 1);
                assert_true(verb_tls_init(NULL, &o, 0, NULL) < 0);
        }
}

static void test_usage(void **state) {
        char *no_dir[] = { "flctl", "tls", "init", "--hosts=127.0.0.1", NULL };
        char *no_hosts[] = { "flctl", "tls", "init", "--dir=/tmp/x", NULL };
        char *bad_ca[] = { "flctl", "--cacert=/nonexistent/ca.pem", "nodes", NULL };
        FlctlOptions o;

        assert_int_equal(parse(4, no_dir, &o), 1);
        assert_int_equal(check_tls_init(&o, 0, NULL), -EINVAL);
        assert_int_equal(parse(4, no_hosts, &o), 1);
        assert_int_equal(check_tls_init(&o, 0, NULL), -EINVAL);
        assert_int_equal(parse(3, bad_ca, &o), -EINVAL);
}

static int setup(void **state) {
        log_set_max_level(LOG_CRIT);
        snprintf(dir, sizeof dir, "/tmp/fl-test-flctl-tls-XXXXXX");
        assert_non_null(mkdtemp(dir));
        return 0;
}

static int teardown(void **state) {
        char cmd[300];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        return system(cmd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hosts),
                cmocka_unit_test(test_init),
                cmocka_unit_test(test_usage),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
