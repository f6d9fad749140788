/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "flctl-token.h"
#include "token.h"
#include "util.h"

static char tmpdir[] = "/tmp/test-flctl-token-XXXXXX";

static void parses(const char *text, const char *want) {
        _cleanup_free_ char *t = NULL;

        assert_int_equal(flctl_token_parse(text, strlen(text), &t), 0);
        assert_string_equal(t, want);
}

static void refused(const char *text, size_t n) {
        char *t = NULL;

        assert_int_equal(flctl_token_parse(text, n, &t), -EINVAL);
        assert_null(t);
}

#define REFUSED(s) refused((s), sizeof(s) - 1)

static void test_parse(void **state) {
        parses("flc_00ff\n", "flc_00ff");
        parses("flc_00ff", "flc_00ff");
        parses("abc-._~+/==\n", "abc-._~+/==");
        REFUSED("");
        REFUSED("\n");
        REFUSED("flc_00ff\n\n");
        REFUSED("flc_00ff\nsecond\n");
        REFUSED(" flc_00ff\n");
        REFUSED("flc_00ff \n");
        REFUSED("flc_00ff\r\n");
        REFUSED("Bearer flc_00ff\n");
        REFUSED("flc_00ff=x\n");
        REFUSED("flc\0_00ff\n");
}

/* Runs token create with stdout in a file; returns what it printed. */
static char *create(const char *role, const char *into, int *ret_r) {
        char out[256];
        FlctlOptions o = { .role = role, .into = into };
        FILE *saved;
        char *text = NULL;
        int fd;

        snprintf(out, sizeof out, "%s/stdout", tmpdir);
        fflush(stdout);
        fd = dup(STDOUT_FILENO);
        assert_true(fd >= 0);
        saved = freopen(out, "w", stdout);
        assert_non_null(saved);
        *ret_r = flctl_token_create(&o);
        fflush(stdout);
        assert_true(dup2(fd, STDOUT_FILENO) >= 0);
        close(fd);
        assert_int_equal(read_full_file(out, &text, NULL, 4096), 0);
        unlink(out);
        return text;
}

static void test_create(void **state) {
        _cleanup_free_ char *op = NULL, *rd = NULL, *file = NULL, *again = NULL, *tok_op = NULL, *tok_rd = NULL;
        _cleanup_(token_table_done) TokenTable t = {};
        char path[256], error[256] = "";
        struct stat st;
        int r;

        snprintf(path, sizeof path, "%s/tokens", tmpdir);
        op = create("operator", path, &r);
        assert_int_equal(r, 0);
        rd = create("reader", path, &r);
        assert_int_equal(r, 0);

        /* Printed once, one line each: what --token-file reads back. */
        assert_int_equal(flctl_token_parse(op, strlen(op), &tok_op), 0);
        assert_int_equal(flctl_token_parse(rd, strlen(rd), &tok_rd), 0);
        assert_string_not_equal(tok_op, tok_rd);

        assert_int_equal(stat(path, &st), 0);
        /* Root on a host with the group flcluster (the units' account) makes it 0640 root:flcluster. */
        if (geteuid() == 0 && getgrnam("flcluster")) {
                assert_int_equal(st.st_mode & 07777, 0640);
                assert_int_equal(st.st_gid, getgrnam("flcluster")->gr_gid);
        } else
                assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(read_full_file(path, &file, NULL, TOKEN_FILE_MAX), 0);
        assert_null(strstr(file, tok_op + strlen(TOKEN_PREFIX)));      /* the hash, never the token */
        assert_int_equal(token_table_load(path, &t, error, sizeof error), 0);
        assert_int_equal(t.n, 2);
        assert_int_equal(token_table_lookup(&t, tok_op, strlen(tok_op)), TOKEN_ROLE_OPERATOR);
        assert_int_equal(token_table_lookup(&t, tok_rd, strlen(tok_rd)), TOKEN_ROLE_READER);

        /* A file the scheduler would refuse is left alone. */
        {
                FILE *f = fopen(path, "ae");

                assert_non_null(f);
                fputs("garbage\n", f);
                fclose(f);
        }
        again = create("reader", path, &r);
        assert_int_equal(r, -EBADMSG);
        assert_string_equal(again, "");
        free(file);
        assert_int_equal(read_full_file(path, &file, NULL, TOKEN_FILE_MAX), 0);
        assert_non_null(strstr(file, "reader sha256:"));
        assert_int_equal(strlen(strstr(file, "garbage\n")), strlen("garbage\n"));
        assert_int_equal(unlink(path), 0);
}

static void test_create_world_writable(void **state) {
        _cleanup_free_ char *out = NULL;
        char path[256];
        FILE *f;
        int r;

        snprintf(path, sizeof path, "%s/open", tmpdir);
        f = fopen(path, "we");
        assert_non_null(f);
        fclose(f);
        assert_int_equal(chmod(path, 0666), 0);
        out = create("operator", path, &r);
        assert_int_equal(r, -EPERM);
        assert_string_equal(out, "");
        assert_int_equal(unlink(path), 0);
}

static void test_read(void **state) {
        _cleanup_free_ char *t = NULL;
        char path[256];
        FILE *f;

        snprintf(path, sizeof path, "%s/mine", tmpdir);
        assert_int_equal(flctl_token_read(path, &t), -ENOENT);
        f = fopen(path, "we");
        assert_non_null(f);
        fputs("flc_1234\n", f);
        fclose(f);
        assert_int_equal(flctl_token_read(path, &t), 0);
        assert_string_equal(t, "flc_1234");
        assert_int_equal(unlink(path), 0);
}

static int setup(void **state) {
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
        return rmdir(tmpdir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_create),
                cmocka_unit_test(test_create_world_writable),
                cmocka_unit_test(test_read),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
