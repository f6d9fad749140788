/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "token.h"
#include "util.h"

/* SHA-256("abc"), FIPS 180-2's example: the hash is the one everybody computes. */
#define ABC_SHA256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static char tmpdir[] = "/tmp/test-token-XXXXXX";

static void test_hash_is_sha256(void **state) {
        uint8_t h[TOKEN_HASH_SIZE];
        char hex[2 * TOKEN_HASH_SIZE + 1];

        assert_int_equal(token_hash("abc", 3, h), 0);
        for (size_t i = 0; i < sizeof h; i++)
                sprintf(hex + 2 * i, "%02x", h[i]);
        assert_string_equal(hex, ABC_SHA256);
}

static void test_parse_and_lookup(void **state) {
        static const char text[] =
                "# operators of the cluster\n"
                "\n"
                "operator sha256:" ABC_SHA256 "\n"
                "#reader for the dashboard\n"
                "reader\tsha256:0000000000000000000000000000000000000000000000000000000000000000";
        TokenTable t = {};
        char error[256] = "";

        assert_int_equal(token_table_parse(text, strlen(text), &t, error, sizeof error), 0);
        assert_int_equal(t.n, 2);
        assert_int_equal(t.entries[0].role, TOKEN_ROLE_OPERATOR);
        assert_int_equal(t.entries[1].role, TOKEN_ROLE_READER);
        assert_int_equal(token_table_lookup(&t, "abc", 3), TOKEN_ROLE_OPERATOR);
        assert_int_equal(token_table_lookup(&t, "abd", 3), _TOKEN_ROLE_INVALID);
        assert_int_equal(token_table_lookup(&t, "ab", 2), _TOKEN_ROLE_INVALID);
        assert_int_equal(token_table_lookup(&t, "", 0), _TOKEN_ROLE_INVALID);
        token_table_done(&t);
        assert_int_equal(token_table_lookup(&t, "abc", 3), _TOKEN_ROLE_INVALID);
}

static void test_empty_file(void **state) {
        TokenTable t = {};
        char error[256] = "";

        assert_int_equal(token_table_parse("", 0, &t, error, sizeof error), 0);
        assert_int_equal(t.n, 0);
        assert_int_equal(token_table_parse("# none yet\n\n", 12, &t, error, sizeof error), 0);
        assert_int_equal(t.n, 0);
        assert_int_equal(token_table_lookup(&t, "abc", 3), _TOKEN_ROLE_INVALID);
}

static void refused(const char *text, size_t size, const char *needle) {
        TokenTable t = {};
        char error[256] = "";

        assert_int_equal(token_table_parse(text, size, &t, error, sizeof error), -EBADMSG);
        if (!strstr(error, needle))
                fail_msg("refused with '%s', expected it to mention '%s'", error, needle);
        assert_null(t.entries);
}

#define REFUSED(text, needle) refused((text), sizeof(text) - 1, (needle))

static void test_strict(void **state) {
        REFUSED("operator sha256:" ABC_SHA256 "\r\n", "carriage return");
        REFUSED("operator sha256:" ABC_SHA256 "\n\0", "NUL");
        REFUSED("admin sha256:" ABC_SHA256 "\n", "unknown role 'admin'");
        REFUSED("Operator sha256:" ABC_SHA256 "\n", "unknown role");
        REFUSED("operator md5:" ABC_SHA256 "\n", "sha256:");
        REFUSED("operator " ABC_SHA256 "\n", "sha256:");
        REFUSED("operator sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\n", "lowercase");
        REFUSED("operator sha256:ba7816bf\n", "64 lowercase");
        REFUSED("operator sha256:" ABC_SHA256 "00\n", "64 lowercase");
        REFUSED("operator sha256:zz7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n", "hexadecimal");
        REFUSED("operator\n", "one word");
        REFUSED("operator sha256:" ABC_SHA256 " alice\n", "more than two words");
        REFUSED(" operator sha256:" ABC_SHA256 "\n", "blanks");
        REFUSED("operator sha256:" ABC_SHA256 " \n", "blanks");
        REFUSED("   \n", "blanks");
        REFUSED("operator sha256:" ABC_SHA256 "\xc3\xa9\n", "0xc3");
        /* One token with two roles: which would win? Neither. */
        REFUSED("operator sha256:" ABC_SHA256 "\nreader sha256:" ABC_SHA256 "\n", "line 2: the same token");
        REFUSED("# fine\n\nreader sha256:" ABC_SHA256 "\nx\n", "line 4");
}

static void test_long_line_and_many_entries(void **state) {
        _cleanup_free_ char *text = NULL;
        TokenTable t = {};
        char error[256] = "";
        size_t n = 0, alloc = (TOKEN_ENTRIES_MAX + 1) * 90;

        text = malloc(alloc);
        assert_non_null(text);
        memset(text, '#', TOKEN_LINE_MAX + 1);
        text[TOKEN_LINE_MAX + 1] = '\n';
        refused(text, TOKEN_LINE_MAX + 2, "longer than");

        for (unsigned i = 0; i <= TOKEN_ENTRIES_MAX; i++)
                n += (size_t) sprintf(text + n, "reader sha256:%064x\n", i);
        refused(text, n, "more than");
        /* One fewer is fine. */
        n -= 80;
        assert_int_equal(token_table_parse(text, n, &t, error, sizeof error), 0);
        assert_int_equal(t.n, TOKEN_ENTRIES_MAX);
        token_table_done(&t);
}

static void test_generate_format_lookup(void **state) {
        char a[TOKEN_STRING_MAX], b[TOKEN_STRING_MAX], line[TOKEN_ENTRY_MAX], text[2 * TOKEN_ENTRY_MAX];
        TokenTable t = {};
        char error[256] = "";

        assert_int_equal(token_generate(a), 0);
        assert_int_equal(token_generate(b), 0);
        assert_int_equal(strlen(a), strlen(TOKEN_PREFIX) + 2 * TOKEN_RANDOM_BYTES);
        assert_true(strneq(a, TOKEN_PREFIX, strlen(TOKEN_PREFIX)));
        assert_int_equal(strspn(a + strlen(TOKEN_PREFIX), "0123456789abcdef"), 2 * TOKEN_RANDOM_BYTES);
        assert_string_not_equal(a, b);

        assert_int_equal(token_entry_format(TOKEN_ROLE_READER, a, line), 0);
        assert_true(strneq(line, "reader sha256:", 14));
        assert_null(strstr(line, a + strlen(TOKEN_PREFIX)));   /* never the token itself */
        strcpy(text, line);
        assert_int_equal(token_entry_format(TOKEN_ROLE_OPERATOR, b, line), 0);
        strcat(text, line);
        assert_int_equal(token_table_parse(text, strlen(text), &t, error, sizeof error), 0);
        assert_int_equal(token_table_lookup(&t, a, strlen(a)), TOKEN_ROLE_READER);
        assert_int_equal(token_table_lookup(&t, b, strlen(b)), TOKEN_ROLE_OPERATOR);
        a[10] ^= 1;
        assert_int_equal(token_table_lookup(&t, a, strlen(a)), _TOKEN_ROLE_INVALID);
        token_table_done(&t);
        assert_int_equal(token_entry_format(_TOKEN_ROLE_INVALID, b, line), -EINVAL);
}

static void test_load(void **state) {
        char path[256], error[256] = "";
        TokenTable t = {};
        FILE *f;

        snprintf(path, sizeof path, "%s/tokens", tmpdir);
        assert_int_equal(token_table_load(path, &t, error, sizeof error), -ENOENT);

        f = fopen(path, "we");
        assert_non_null(f);
        fputs("operator sha256:" ABC_SHA256 "\n", f);
        fclose(f);
        assert_int_equal(chmod(path, 0640), 0);
        assert_int_equal(token_table_load(path, &t, error, sizeof error), 0);
        assert_int_equal(token_table_lookup(&t, "abc", 3), TOKEN_ROLE_OPERATOR);
        token_table_done(&t);

        assert_int_equal(chmod(path, 0646), 0);
        assert_int_equal(token_table_load(path, &t, error, sizeof error), -EPERM);
        assert_non_null(strstr(error, "writable by every user"));
        assert_int_equal(unlink(path), 0);

        assert_true(token_table_load(tmpdir, &t, error, sizeof error) < 0);
        assert_non_null(strstr(error, "not a regular file"));
}

static void test_roles(void **state) {
        assert_int_equal(token_role_from_string("operator"), TOKEN_ROLE_OPERATOR);
        assert_int_equal(token_role_from_string("reader"), TOKEN_ROLE_READER);
        assert_int_equal(token_role_from_string("root"), _TOKEN_ROLE_INVALID);
        assert_int_equal(token_role_from_string(NULL), _TOKEN_ROLE_INVALID);
        assert_string_equal(token_role_to_string(TOKEN_ROLE_READER), "reader");
        assert_null(token_role_to_string(_TOKEN_ROLE_MAX));
}

static int setup(void **state) {
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
        return rmdir(tmpdir);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_hash_is_sha256),
                cmocka_unit_test(test_parse_and_lookup),
                cmocka_unit_test(test_empty_file),
                cmocka_unit_test(test_strict),
                cmocka_unit_test(test_long_line_and_many_entries),
                cmocka_unit_test(test_generate_format_lookup),
                cmocka_unit_test(test_load),
                cmocka_unit_test(test_roles),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
