/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "server-identity.h"
#include "util.h"

static char *dir_new(void) {
        char *d = strdup("/tmp/test-server-identity-XXXXXX");

        assert_non_null(d);
        assert_non_null(mkdtemp(d));
        return d;
}

static void dir_remove(char *d) {
        char cmd[256];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
        assert_int_equal(system(cmd), 0);
        free(d);
}

static void test_generated_and_kept(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL, *other = NULL, *state_dir = NULL, *path = NULL, *text = NULL;
        char *d = dir_new();

        /* The state directory does not exist yet: it is made. */
        assert_true(asprintf(&state_dir, "%s/a/b", d) > 0);
        assert_int_equal(server_identity_node_id(NULL, NULL, state_dir, 6668, 0, 1, &a), 0);
        assert_true(uuid_string_is_valid(a));

        assert_true(asprintf(&path, "%s/node-id-6668", state_dir) > 0);
        assert_int_equal(read_full_file(path, &text, NULL, 4096), 0);
        assert_int_equal(strncmp(text, a, 36), 0);
        assert_string_equal(text + 36, "\n");

        /* Kept across restarts, one per port. */
        assert_int_equal(server_identity_node_id(NULL, "", state_dir, 6668, 0, 1, &b), 0);
        assert_string_equal(a, b);
        assert_int_equal(server_identity_node_id(NULL, NULL, state_dir, 6669, 1, 4, &other), 0);
        assert_true(uuid_string_is_valid(other));
        assert_string_not_equal(a, other);
        dir_remove(d);
}

static void test_file_edited_or_corrupt(void **state) {
        _cleanup_free_ char *path = NULL, *id = NULL;
        char *d = dir_new();

        assert_true(asprintf(&path, "%s/node-id-7000", d) > 0);
        assert_int_equal(write_file_atomic(path, "server-a \n"), 0);
        assert_int_equal(server_identity_node_id(NULL, NULL, d, 7000, 0, 1, &id), 0);
        assert_string_equal(id, "server-a");

        /* Never silently replaced: a new id would be a new node. */
        assert_int_equal(write_file_atomic(path, "not a node id\n"), 0);
        assert_int_equal(server_identity_node_id(NULL, NULL, d, 7000, 0, 1, &id), -EBADMSG);
        dir_remove(d);
}

static void test_given(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *e = NULL;
        char *d = dir_new();
        char longest[NODE_ID_MAX + 1], *path = NULL;
        char *none = NULL;

        assert_int_equal(server_identity_node_id(NULL, "ms-node", d, 6668, 0, 1, &a), 0);
        assert_string_equal(a, "ms-node");
        /* --node_id wins over $MS_NODE_ID. */
        assert_int_equal(server_identity_node_id("cli-node", "ms-node", d, 6668, 0, 1, &b), 0);
        assert_string_equal(b, "cli-node");
        /* Several servers from one command: each gets its own suffix. */
        assert_int_equal(server_identity_node_id(NULL, "ms-node", d, 6670, 2, 4, &c), 0);
        assert_string_equal(c, "ms-node-2");
        assert_int_equal(server_identity_node_id("cli-node", NULL, d, 6668, 0, 4, &e), 0);
        assert_string_equal(e, "cli-node-0");
        /* No file is written for a given id. */
        assert_true(asprintf(&path, "%s/node-id-6668", d) > 0);
        assert_int_equal(access(path, F_OK), -1);
        free(path);

        assert_int_equal(server_identity_node_id(NULL, "bad id", d, 6668, 0, 1, &none), -EINVAL);
        memset(longest, 'x', NODE_ID_MAX);
        longest[NODE_ID_MAX] = '\0';
        assert_int_equal(server_identity_node_id(NULL, longest, d, 6668, 0, 1, &none), -EINVAL);
        /* Valid alone, too long with "-1". */
        longest[NODE_ID_MAX - 2] = '\0';
        assert_int_equal(server_identity_node_id(NULL, longest, d, 6669, 1, 2, &none), -ENAMETOOLONG);
        assert_null(none);
        dir_remove(d);
}

static void test_address(void **state) {
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *e = NULL, *f = NULL;
        char *none = NULL;
        char first[64];
        int r;

        assert_int_equal(server_identity_address("10.1.2.3", "127.0.0.1", &a), 0);
        assert_string_equal(a, "10.1.2.3");
        assert_int_equal(server_identity_address("fd00::1", "10.0.0.1", &b), 0);
        assert_string_equal(b, "fd00::1");
        assert_int_equal(server_identity_address("my-host", "10.0.0.1", &none), -EINVAL);

        assert_int_equal(server_identity_address(NULL, "127.0.0.1", &c), 0);
        assert_string_equal(c, "127.0.0.1");
        assert_int_equal(server_identity_address(NULL, "127.3.2.1", &e), 0);
        assert_string_equal(e, "127.0.0.1");

        /* A remote scheduler: the host's first non-loopback address, if it has one. */
        r = first_non_loopback_ipv4(first, sizeof first);
        if (r < 0)
                assert_int_equal(server_identity_address(NULL, "192.0.2.1", &none), r);
        else {
                assert_int_equal(server_identity_address(NULL, "192.0.2.1", &f), 0);
                assert_string_equal(f, first);
        }
        assert_null(none);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_generated_and_kept),
                cmocka_unit_test(test_file_edited_or_corrupt),
                cmocka_unit_test(test_given),
                cmocka_unit_test(test_address),
        };

        log_set_max_level(LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
