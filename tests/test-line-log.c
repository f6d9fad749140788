/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "line-log.h"
#include "util.h"

#define MAX_BYTES (2 * LINE_LOG_LINE_MAX)

typedef struct Dir {
        char path[64];
        char file[128];
} Dir;

static int setup(void **state) {
        Dir *d = calloc(1, sizeof *d);

        assert_non_null(d);
        strcpy(d->path, "/tmp/test-line-log.XXXXXX");
        assert_non_null(mkdtemp(d->path));
        snprintf(d->file, sizeof d->file, "%s/sub/metrics.json", d->path);
        *state = d;
        return 0;
}

static int teardown(void **state) {
        Dir *d = *state;
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
        assert_int_equal(system(cmd), 0);
        free(d);
        return 0;
}

static char *slurp(const char *path) {
        char *text = NULL;

        if (read_full_file(path, &text, NULL, 64 * 1024 * 1024) < 0)
                return NULL;
        return text;
}

static void put(const char *path, const char *data, size_t n) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, data, n), (ssize_t) n);
        close(fd);
}

static void test_append(void **state) {
        Dir *d = *state;
        _cleanup_(line_log_freep) LineLog *l = NULL;
        _cleanup_free_ char *text = NULL;
        static char big[LINE_LOG_LINE_MAX + 2];
        struct stat st;

        assert_int_equal(line_log_open(&l, d->file, MAX_BYTES, 3), 0);
        assert_int_equal(stat(d->file, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0640);
        assert_int_equal(line_log_append(l, "{\"a\":1}"), 0);
        assert_int_equal(line_log_append(l, ""), 0);
        assert_int_equal(line_log_append(l, "{\"b\":2}"), 0);
        assert_int_equal(line_log_append(l, "two\nlines"), -EINVAL);
        memset(big, 'x', sizeof big - 1);
        assert_int_equal(line_log_append(l, big), -EINVAL);
        assert_int_equal(line_log_sync(l), 0);
        /* In the file as soon as append returned: no sync needed to read it. */
        text = slurp(d->file);
        assert_string_equal(text, "{\"a\":1}\n\n{\"b\":2}\n");
        assert_int_equal(line_log_repaired(l), 0);
}

/* A file holding data (n bytes) is opened: `cut` bytes go, `left` stays. */
static void check_repair(const Dir *d, const char *data, size_t n, uint64_t cut, const char *left) {
        LineLog *l = NULL;
        char *text;

        put(d->file, data, n);
        assert_int_equal(line_log_open(&l, d->file, MAX_BYTES, 3), 0);
        assert_int_equal(line_log_repaired(l), cut);
        l = line_log_free(l);
        text = slurp(d->file);
        assert_string_equal(text, left);
        free(text);
}

static void test_repairs_torn_tail(void **state) {
        Dir *d = *state;
        LineLog *l = NULL;
        char *text;

        assert_int_equal(mkdir_parents(d->file, 0755), 0);
        put(d->file, "a\nb\npartial", 11);
        assert_int_equal(line_log_open(&l, d->file, MAX_BYTES, 3), 0);
        assert_int_equal(line_log_repaired(l), 7);
        assert_int_equal(line_log_append(l, "c"), 0);
        l = line_log_free(l);
        text = slurp(d->file);
        assert_string_equal(text, "a\nb\nc\n");
        free(text);

        /* Zeros after a power loss; a file without any newline at all. */
        check_repair(d, "a\n\0\0\0", 5, 3, "a\n");
        check_repair(d, "torn", 4, 4, "");
}

static void test_rotation(void **state) {
        Dir *d = *state;
        _cleanup_(line_log_freep) LineLog *l = NULL;
        char line[1001], name[160];
        unsigned files = 0, total = 0, last = 0;
        struct stat st;

        assert_int_equal(line_log_open(&l, d->file, MAX_BYTES, 2), 0);
        /* 1000 lines of 1001 bytes: about 7.6 files' worth. */
        for (unsigned i = 0; i < 1000; i++) {
                memset(line, 'a' + i % 26, sizeof line - 1);
                line[sizeof line - 1] = '\0';
                snprintf(line, 12, "%010u", i);
                line[10] = ' ';
                assert_int_equal(line_log_append(l, line), 0);
        }
        assert_int_equal(line_log_sync(l), 0);

        /* PATH, PATH.1, PATH.2; PATH.3 was never made or is gone. Each at most
         * MAX_BYTES, whole lines, and together the newest lines in order. */
        for (int i = 2; i >= 0; i--) {
                _cleanup_free_ char *text = NULL;
                const char *p;

                if (i == 0)
                        snprintf(name, sizeof name, "%s", d->file);
                else
                        snprintf(name, sizeof name, "%s.%d", d->file, i);
                assert_int_equal(stat(name, &st), 0);
                assert_true((uint64_t) st.st_size <= MAX_BYTES);
                assert_int_equal(st.st_size % 1001, 0);
                text = slurp(name);
                for (p = text; *p; p += 1001) {
                        unsigned v;

                        assert_int_equal(sscanf(p, "%10u", &v), 1);
                        if (total > 0)
                                assert_int_equal(v, last + 1);
                        last = v;
                        total++;
                }
                files++;
        }
        assert_int_equal(last, 999);
        assert_true(total >= 2 * (MAX_BYTES / 1001));
        snprintf(name, sizeof name, "%s.3", d->file);
        assert_int_equal(stat(name, &st), -1);
        assert_int_equal(files, 3);
}

static void test_moved_away(void **state) {
        Dir *d = *state;
        _cleanup_(line_log_freep) LineLog *l = NULL;
        _cleanup_free_ char *old = NULL, *text = NULL;
        char moved[160];

        assert_int_equal(line_log_open(&l, d->file, MAX_BYTES, 3), 0);
        assert_int_equal(line_log_append(l, "before"), 0);
        snprintf(moved, sizeof moved, "%s.moved", d->file);
        assert_int_equal(rename(d->file, moved), 0);
        assert_int_equal(line_log_append(l, "after"), 0);
        assert_int_equal(line_log_sync(l), 0);
        old = slurp(moved);
        text = slurp(d->file);
        assert_string_equal(old, "before\n");
        assert_string_equal(text, "after\n");
}

static void test_read_tail(void **state) {
        Dir *d = *state;
        char **lines = NULL;
        size_t n;

        assert_int_equal(line_log_read_tail(d->file, 10, MAX_BYTES, &lines, &n), 0);
        assert_int_equal(n, 0);

        assert_int_equal(mkdir_parents(d->file, 0755), 0);
        put(d->file, "one\ntwo\nthree\nfour\nfive\ntorn", 29);
        assert_int_equal(line_log_read_tail(d->file, 2, MAX_BYTES, &lines, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(lines[0], "four");
        assert_string_equal(lines[1], "five");
        line_log_lines_free(lines, n);

        assert_int_equal(line_log_read_tail(d->file, 10, MAX_BYTES, &lines, &n), 0);
        assert_int_equal(n, 5);
        assert_string_equal(lines[0], "one");
        line_log_lines_free(lines, n);

        /* Only the last 12 bytes ("ive\ntorn" and before it): from a line start on. */
        assert_int_equal(line_log_read_tail(d->file, 10, 13, &lines, &n), 0);
        assert_int_equal(n, 1);
        assert_string_equal(lines[0], "five");
        line_log_lines_free(lines, n);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_append, setup, teardown),
                cmocka_unit_test_setup_teardown(test_repairs_torn_tail, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
                cmocka_unit_test_setup_teardown(test_moved_away, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_tail, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
