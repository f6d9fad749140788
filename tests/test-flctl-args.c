/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "flctl-args.h"
#include "flctl-verbs.h"
#include "json-util.h"

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
        assert_int_equal(verb_check(v, &o, 2, (char *[]) { "model", "get", NULL }), -EINVAL);
        assert_int_equal(PARSE(&o, &idx, "model", "get", "-o", "f"), 1);
        assert_int_equal(verb_check(v, &o, 2, (char *[]) { "model", "get", NULL }), 0);
}

/* verb_find() and verb_check() as main() calls them: 0, or -EINVAL for a
 * usage error (exit status 2). */
#define VERB(...) ({                                                            \
        char **_argv = (char *[]) { __VA_ARGS__, NULL };                        \
        int _argc = 0, _r;                                                      \
        const Verb *_v = NULL;                                                  \
        FlctlOptions _o = { .iteration = -1 };                                  \
        while (_argv[_argc])                                                    \
                _argc++;                                                        \
        _r = verb_find(_argc, _argv, &_v);                                      \
        if (_r >= 0)                                                            \
                _r = verb_check(_v, &_o, _argc, _argv);                         \
        _r;                                                                     \
})

static void test_scale(void **state) {
        const Verb *v = NULL;
        FlctlOptions o;
        uint32_t n;
        int idx;

        assert_int_equal(parse_server_num("2", &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(parse_server_num("4294967295", &n), 0);
        assert_int_equal(n, UINT32_MAX);
        assert_int_equal(parse_server_num("0", &n), -EINVAL);
        assert_int_equal(parse_server_num("-1", &n), -EINVAL);
        assert_int_equal(parse_server_num("+1", &n), -EINVAL);
        assert_int_equal(parse_server_num(" 1", &n), -EINVAL);
        assert_int_equal(parse_server_num("1.5", &n), -EINVAL);
        assert_int_equal(parse_server_num("two", &n), -EINVAL);
        assert_int_equal(parse_server_num("", &n), -EINVAL);
        assert_int_equal(parse_server_num("4294967296", &n), -EINVAL);

        assert_int_equal(verb_find(2, (char *[]) { "scaleout", "2", NULL }, &v), 0);
        assert_string_equal(v->name, "scaleout");
        assert_null(v->sub);
        assert_int_equal(VERB("scaleout", "2"), 0);
        assert_int_equal(VERB("scaleout"), -EINVAL);
        assert_int_equal(VERB("scaleout", "0"), -EINVAL);
        assert_int_equal(VERB("scaleout", "x"), -EINVAL);
        assert_int_equal(VERB("scaleout", "1", "2"), -EINVAL);

        assert_int_equal(verb_find(2, (char *[]) { "scalein", "a", NULL }, &v), 0);
        assert_string_equal(v->name, "scalein");
        assert_int_equal(VERB("scalein", "3f0c2a9e-5d7b-4c1e-9a63-0b8e2f4d6a11"), 0);
        assert_int_equal(VERB("scalein", "a", "b", "c"), 0);
        assert_int_equal(VERB("scalein"), -EINVAL);
        assert_int_equal(VERB("scalein", "a", ""), -EINVAL);
        /* D-Bus and JSON carry UTF-8 only: the command line's fault, not a refusal. */
        assert_int_equal(VERB("scalein", "caf\xc3\xa9"), 0);
        assert_int_equal(VERB("scalein", "caf\xe9"), -EINVAL);
        assert_int_equal(VERB("scalein", "\xc0\xaf"), -EINVAL);             /* overlong '/' */
        assert_int_equal(VERB("scalein", "\xed\xa0\x80"), -EINVAL);         /* a surrogate */
        assert_int_equal(VERB("scalein", "\xf4\x90\x80\x80"), -EINVAL);     /* above U+10FFFF */
        assert_int_equal(VERB("scalein", "\xe2\x82"), -EINVAL);             /* cut short */
        assert_int_equal(VERB("scalein", "\xf0\x9f\x98\x80"), 0);
        assert_int_equal(check_node_ids(0, NULL), -EINVAL);

        /* Options among the node ids are still options. */
        char *argv[] = { "flctl", "scalein", "id-1", "--json", "id-2", NULL };
        assert_int_equal(parse_argv(5, argv, &o, &idx), 1);
        assert_true(o.json);
        assert_int_equal(idx, 2);
        assert_string_equal(argv[idx], "scalein");
        assert_string_equal(argv[idx + 1], "id-1");
        assert_string_equal(argv[idx + 2], "id-2");
}

static void test_instance_verbs(void **state) {
        const Verb *v = NULL;

        assert_int_equal(verb_find(2, (char *[]) { "instance", "show", NULL }, &v), 0);
        assert_string_equal(v->name, "instance");
        assert_string_equal(v->sub, "show");
        assert_int_equal(verb_find(3, (char *[]) { "instance", "set", "a=1", NULL }, &v), 0);
        assert_string_equal(v->sub, "set");

        assert_int_equal(VERB("instance", "show"), 0);
        assert_int_equal(VERB("instance", "show", "extra"), -EINVAL);
        assert_int_equal(VERB("instance"), -EINVAL);
        assert_int_equal(VERB("instance", "get"), -EINVAL);
        assert_int_equal(VERB("instance", "set"), -EINVAL);
        assert_int_equal(VERB("instance", "set", "fl_iteration_num=7", "fl_name=Lenet"), 0);
        assert_int_equal(VERB("instance", "set", "fl_iteration_num"), -EINVAL);
        assert_int_equal(VERB("instance", "set", "=7"), -EINVAL);
        assert_int_equal(VERB("instance", "set", "fl_iteration_num="), -EINVAL);
        assert_int_equal(VERB("instance", "set", "a=1", "a=2"), -EINVAL);
        assert_int_equal(VERB("instance", "set", "fl_name=caf\xe9"), -EINVAL);
        assert_int_equal(VERB("instance", "set", "fl_name=caf\xc3\xa9"), 0);
        /* Names and ranges are the scheduler's to judge. */
        assert_int_equal(VERB("instance", "set", "bogus_key=1"), 0);
        assert_int_equal(VERB("instance", "set", "fl_iteration_num=-2"), 0);

        assert_int_equal(VERB("enable"), 0);
        assert_int_equal(VERB("disable"), 0);
        assert_int_equal(VERB("enable", "now"), -EINVAL);
        assert_int_equal(VERB("disable", "x"), -EINVAL);
        assert_int_equal(VERB("enabled"), -EINVAL);
}

/* The JSON text instance set sends for these arguments. */
static void assert_params(const char *want, int n, char *const *args) {
        _cleanup_(json_object_putp) json_object *params = NULL;

        assert_int_equal(instance_params_from_args(n, args, &params), 0);
        assert_string_equal(json_object_to_json_string_ext(params, JSON_C_TO_STRING_PLAIN), want);
}

static void test_instance_values(void **state) {
        _cleanup_(json_object_putp) json_object *params = NULL;
        json_object *v;

        /* Integers, doubles, strings; the command line's order. */
        assert_params("{\"fl_iteration_num\":7,\"update_model_ratio\":0.5,\"client_learning_rate\":0.001,"
                      "\"fl_name\":\"Lenet\"}",
                      4, (char *[]) { "fl_iteration_num=7", "update_model_ratio=0.5", "client_learning_rate=1e-3",
                                      "fl_name=Lenet" });
        assert_params("{\"a\":-2,\"b\":0,\"c\":9223372036854775807}",
                      3, (char *[]) { "a=-2", "b=-0", "c=9223372036854775807" });
        assert_params("{\"a\":250.0,\"b\":5.0,\"c\":0.5,\"d\":-0.25}",
                      4, (char *[]) { "a=2.5E2", "b=5.", "c=.5", "d=-0.25" });
        /* Anything else is a string, for the scheduler to accept or refuse. */
        assert_params("{\"a\":\"1.2.3\",\"b\":\"nan\",\"c\":\"0x10\",\"d\":\"+5\",\"e\":\"e5\",\"f\":\"-\",\"g\":\"true\"}",
                      7, (char *[]) { "a=1.2.3", "b=nan", "c=0x10", "d=+5", "e=e5", "f=-", "g=true" });
        /* Only the first '=' splits: the value may hold more. */
        assert_params("{\"fl_name\":\"a=b\"}", 1, (char *[]) { "fl_name=a=b" });

        assert_int_equal(instance_params_from_args(1, (char *[]) { "a=1.5" }, &params), 0);
        assert_true(json_object_object_get_ex(params, "a", &v));
        assert_true(json_object_is_type(v, json_type_double));
        json_object_put(TAKE_PTR(params));
        assert_int_equal(instance_params_from_args(1, (char *[]) { "a=15" }, &params), 0);
        assert_true(json_object_object_get_ex(params, "a", &v));
        assert_true(json_object_is_type(v, json_type_int));
        json_object_put(TAKE_PTR(params));

        /* Usage errors. */
        assert_int_equal(instance_params_from_args(0, NULL, &params), -EINVAL);
        assert_int_equal(instance_params_from_args(1, (char *[]) { "novalue" }, &params), -EINVAL);
        assert_int_equal(instance_params_from_args(1, (char *[]) { "=1" }, &params), -EINVAL);
        assert_int_equal(instance_params_from_args(1, (char *[]) { "a=" }, &params), -EINVAL);
        assert_int_equal(instance_params_from_args(2, (char *[]) { "a=1", "a=1" }, &params), -EINVAL);
        assert_int_equal(instance_params_from_args(1, (char *[]) { "a=99999999999999999999" }, &params), -EINVAL);
        assert_int_equal(instance_params_from_args(1, (char *[]) { "a=-99999999999999999999" }, &params), -EINVAL);
        assert_int_equal(instance_params_from_args(1, (char *[]) { "a=1e999" }, &params), -EINVAL);
        assert_null(params);
}

static void test_token_options(void **state) {
        const Verb *v = NULL;
        FlctlOptions o;
        int idx;

        assert_int_equal(unsetenv(FLCTL_TOKEN_FILE_ENV), 0);
        assert_int_equal(PARSE(&o, &idx, "nodes"), 1);
        assert_null(o.token_file);

        /* The environment gives the default, the option wins over it; an empty variable is none. */
        assert_int_equal(setenv(FLCTL_TOKEN_FILE_ENV, "/env/token", 1), 0);
        assert_int_equal(PARSE(&o, &idx, "nodes"), 1);
        assert_string_equal(o.token_file, "/env/token");
        assert_int_equal(PARSE(&o, &idx, "--token-file", "/opt/token", "nodes"), 1);
        assert_string_equal(o.token_file, "/opt/token");
        assert_int_equal(setenv(FLCTL_TOKEN_FILE_ENV, "", 1), 0);
        assert_int_equal(PARSE(&o, &idx, "nodes"), 1);
        assert_null(o.token_file);
        assert_int_equal(unsetenv(FLCTL_TOKEN_FILE_ENV), 0);
        assert_int_equal(PARSE(&o, &idx, "--token-file=", "nodes"), -EINVAL);

        /* token create: a verb that needs no scheduler, checked before it runs. */
        assert_int_equal(PARSE(&o, &idx, "token", "create", "--role", "reader", "--into=/x/tokens"), 1);
        assert_string_equal(o.role, "reader");
        assert_string_equal(o.into, "/x/tokens");
        assert_int_equal(verb_find(2, (char *[]) { "token", "create", NULL }, &v), 0);
        assert_true(v->local);
        assert_int_equal(verb_check(v, &o, 2, (char *[]) { "token", "create", NULL }), 0);
        o.role = "admin";
        assert_int_equal(verb_check(v, &o, 2, (char *[]) { "token", "create", NULL }), -EINVAL);
        o.role = NULL;
        assert_int_equal(verb_check(v, &o, 2, (char *[]) { "token", "create", NULL }), -EINVAL);
        o.role = "operator";
        o.into = NULL;
        assert_int_equal(verb_check(v, &o, 2, (char *[]) { "token", "create", NULL }), -EINVAL);
        assert_int_equal(verb_find(1, (char *[]) { "token", NULL }, &v), -EINVAL);
        assert_int_equal(verb_find(3, (char *[]) { "token", "create", "x", NULL }, &v), -EINVAL);
        assert_int_equal(verb_find(1, (char *[]) { "nodes", NULL }, &v), 0);
        assert_false(v->local);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_token_options),
                cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_options_anywhere),
                cmocka_unit_test(test_help_and_version),
                cmocka_unit_test(test_usage_errors),
                cmocka_unit_test(test_verb_find),
                cmocka_unit_test(test_model_get),
                cmocka_unit_test(test_scale),
                cmocka_unit_test(test_instance_verbs),
                cmocka_unit_test(test_instance_values),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
