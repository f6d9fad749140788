/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "flctl-args.h"
#include "flctl-verbs.h"

/* Parses "flctl ARGS..."; getopt permutes argv, so each call gets its own
 * array (a compound literal). */
#define PARSE(o, idx, ...) ({                                                   \
        char **_argv = (char *[]) { "flctl", __VA_ARGS__, NULL };               \
        int _argc = 0;                                                          \
        while (_argv[_argc])                                                    \
                _argc++;                                                        \
        parse_argv(_argc, _argv, (o), (idx));                                   \
})

static void test_defaults(void **state) {
        char *argv[] = { "flctl", "nodes", NULL };
        FlctlOptions o;
        int idx;

        assert_int_equal(parse_argv(2, argv, &o, &idx), 1);
        assert_null(o.url);
        assert_false(o.json);
        assert_int_equal(o.timeout_usec, 0);
        assert_int_equal(idx, 1);
        assert_string_equal(argv[idx], "nodes");
}

static void test_options_anywhere(void **state) {
        char *argv[] = { "flctl", "nodes", "--json", "--url", "http://127.0.0.1:11202", "--timeout=2.5", NULL };
        FlctlOptions o;
        int idx;

        assert_int_equal(parse_argv(6, argv, &o, &idx), 1);
        assert_true(o.json);
        assert_string_equal(o.url, "http://127.0.0.1:11202");
        assert_int_equal(o.timeout_usec, 2500000);
        assert_int_equal(idx, 5);
        assert_string_equal(argv[idx], "nodes");
}

static void test_help_and_version(void **state) {
        FlctlOptions o;
        int idx;

        assert_int_equal(PARSE(&o, &idx, "--help"), 0);
        assert_int_equal(PARSE(&o, &idx, "-h", "nodes"), 0);
        assert_int_equal(PARSE(&o, &idx, "--version"), 0);
}

static void test_usage_errors(void **state) {
        FlctlOptions o;
        int idx;

        assert_int_equal(PARSE(&o, &idx, "--bogus", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "-x", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "--json=yes", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "nodes", "--url"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "--url=ftp://host", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "--url=http://", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "--url=127.0.0.1:11202", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "--timeout=0", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "--timeout=-1", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "--timeout=ten", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "--timeout=1e9", "nodes"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "--timeout=nan", "nodes"), -EINVAL);
        /* A good parse after the bad ones: getopt's state was reset. */
        assert_int_equal(PARSE(&o, &idx, "--url=HTTPS://h:1/", "--timeout", "60", "state"), 1);
        assert_int_equal(o.timeout_usec, 60000000);
}

static void test_verb_find(void **state) {
        const Verb *v = NULL;

        assert_int_equal(verb_find(0, NULL, &v), -EINVAL);
        assert_int_equal(verb_find(1, (char *[]) { "frobnicate", NULL }, &v), -EINVAL);
        assert_int_equal(verb_find(2, (char *[]) { "nodes", "extra", NULL }, &v), -EINVAL);
        assert_int_equal(verb_find(2, (char *[]) { "finish", "now", NULL }, &v), -EINVAL);
        assert_int_equal(verb_find(1, (char *[]) { "NODES", NULL }, &v), -EINVAL);

        assert_int_equal(verb_find(1, (char *[]) { "nodes", NULL }, &v), 0);
        assert_string_equal(v->name, "nodes");
        assert_int_equal(verb_find(1, (char *[]) { "state", NULL }, &v), 0);
        assert_string_equal(v->name, "state");
        assert_int_equal(verb_find(1, (char *[]) { "finish", NULL }, &v), 0);
        assert_string_equal(v->name, "finish");
        /* Finish waits for every server to stop: longer than the 10 s default. */
        assert_int_equal(v->timeout_usec, 60 * USEC_PER_SEC);
}

static void test_model_get(void **state) {
        const Verb *v = NULL;
        FlctlOptions o;
        int idx;

        /* -o and --iteration may stand anywhere, like every option. */
        assert_int_equal(PARSE(&o, &idx, "model", "get", "-o", "final.fl"), 1);
        assert_string_equal(o.output, "final.fl");
        assert_int_equal(o.iteration, -1);
        assert_int_equal(PARSE(&o, &idx, "--iteration=3", "model", "get", "--output=m.safetensors"), 1);
        assert_int_equal(o.iteration, 3);
        assert_string_equal(o.output, "m.safetensors");
        assert_int_equal(PARSE(&o, &idx, "model", "get", "--iteration=-1", "-o", "x"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "model", "get", "--iteration=three", "-o", "x"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "model", "get", "-o"), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "model", "get", "-o", ""), -EINVAL);

        assert_int_equal(verb_find(2, (char *[]) { "model", "get", NULL }, &v), 0);
        assert_string_equal(v->name, "model");
        assert_string_equal(v->sub, "get");
        assert_int_equal(verb_find(1, (char *[]) { "model", NULL }, &v), -EINVAL);
        assert_int_equal(verb_find(2, (char *[]) { "model", "put", NULL }, &v), -EINVAL);
        assert_int_equal(verb_find(3, (char *[]) { "model", "get", "extra", NULL }, &v), -EINVAL);

        /* Without -o it is a usage error, before any connection. */
        assert_int_equal(verb_find(2, (char *[]) { "model", "get", NULL }, &v), 0);
        assert_int_equal(PARSE(&o, &idx, "model", "get"), 1);
        assert_int_equal(verb_check_options(v, &o), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "model", "get", "-o", "f"), 1);
        assert_int_equal(verb_check_options(v, &o), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_options_anywhere),
                cmocka_unit_test(test_help_and_version),
                cmocka_unit_test(test_usage_errors),
                cmocka_unit_test(test_verb_find),
                cmocka_unit_test(test_model_get),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
