/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "flctl-model.h"
#include "flctl-tls.h"
#include "json-util.h"
#include "flctl-output.h"
#include "flctl-token.h"
#include "flctl-verbs.h"
#include "log.h"

#define DEFAULT_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* Finish waits for every server to stop before the scheduler answers. */
#define FINISH_TIMEOUT_USEC (60 * USEC_PER_SEC)
/* A model may be tens of MB. */
#define MODEL_TIMEOUT_USEC (60 * USEC_PER_SEC)

static int verb_nodes(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_(node_list_done) NodeList nodes = {};
        _cleanup_free_ char *text = NULL;
        int r;

        r = b->vtable->list_nodes(b, &nodes);
        if (r < 0)
                return r;
        node_list_sort_by_rank(&nodes);
        r = o->json ? nodes_format_json(&nodes, &text) : nodes_format_table(&nodes, &text);
        if (r < 0)
                return log_oom();
        fputs(text, stdout);    /* main() checks that stdout got written */
        return 0;
}

static int verb_state(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_free_ char *state = NULL, *text = NULL;
        int r;

        r = b->vtable->get_state(b, &state);
        if (r < 0)
                return r;
        if (!o->json) {
                puts(state);
                return 0;
        }
        r = state_format_json(state, &text);
        if (r < 0)
                return log_oom();
        fputs(text, stdout);
        return 0;
}

static int verb_finish(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_(node_list_done) NodeList stopped = {};
        _cleanup_free_ char *text = NULL;
        int r;

        r = b->vtable->finish(b, &stopped);
        if (r < 0)
                return r;
        node_list_move_scheduler_last(&stopped);
        r = o->json ? stopped_format_json(&stopped, &text) : stopped_format_lines(&stopped, &text);
        if (r < 0)
                return log_oom();
        fputs(text, stdout);
        return 0;
}

static int check_model_get(const FlctlOptions *o, int argc, char *argv[]) {
        if (!o->output)
                return log_error_errno(-EINVAL, "'model get' needs -o FILE. See '%s --help'.",
                                       program_invocation_short_name);
        return 0;
}

/* The servers' own device ports serve the model; the scheduler only says
 * where they are. */
static int verb_model_get(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_(model_download_done) ModelDownload d = {};
        _cleanup_(node_list_done) NodeList nodes = {};
        _cleanup_free_ char *text = NULL;
        int r;

        r = b->vtable->list_nodes(b, &nodes);
        if (r < 0)
                return r;
        node_list_sort_by_rank(&nodes);
        /* The servers speak HTTPS when the scheduler does (or a CA was given for them). */
        r = model_download(&nodes, o->iteration, b->timeout_usec, o->cacert,
                           o->cacert || (o->url && strncasecmp(o->url, "https://", 8) == 0), &d);
        if (r < 0)
                return r;
        r = model_write(o->output, &d, o->iteration);
        if (r < 0)
                return r;
        r = o->json ? model_format_json(o->output, d.url, d.model, &text)
                    : model_format_line(o->output, d.url, d.model, &text);
        if (r < 0)
                return log_oom();
        fputs(text, stdout);
        return 0;
}

/* What the verbs that change the cluster print: the scheduler's message. */
static int print_message(const FlctlOptions *o, const char *message) {
        _cleanup_free_ char *text = NULL;

        if (!o->json) {
                puts(message);
                return 0;
        }
        if (message_format_json(message, &text) < 0)
                return log_oom();
        fputs(text, stdout);
        return 0;
}

static int check_scale_out(const FlctlOptions *o, int argc, char *argv[]) {
        uint32_t n;

        return parse_server_num(argv[1], &n);
}

static int verb_scale_out(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_free_ char *message = NULL;
        uint32_t n;
        int r;

        r = parse_server_num(argv[1], &n);
        if (r < 0)
                return r;
        r = b->vtable->scale_out(b, n, &message);
        if (r < 0)
                return r;
        return print_message(o, message);
}

static int check_scale_in(const FlctlOptions *o, int argc, char *argv[]) {
        return check_node_ids(argc - 1, argv + 1);
}

static int verb_scale_in(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_free_ char *message = NULL;
        int r;

        r = b->vtable->scale_in(b, argv + 1, (size_t) argc - 1, &message);
        if (r < 0)
                return r;
        return print_message(o, message);
}

static int verb_instance_show(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_(json_object_putp) json_object *instance = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        r = b->vtable->query_instance(b, &instance);
        if (r < 0)
                return r;
        r = o->json ? instance_format_json(instance, &text) : instance_format_table(instance, &text);
        if (r < 0)
                return log_oom();
        fputs(text, stdout);
        return 0;
}

static int check_instance_set(const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_(json_object_putp) json_object *params = NULL;

        return instance_params_from_args(argc - 2, argv + 2, &params);
}

static int verb_instance_set(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_(json_object_putp) json_object *params = NULL;
        _cleanup_free_ char *message = NULL;
        int r;

        r = instance_params_from_args(argc - 2, argv + 2, &params);
        if (r < 0)
                return r;
        r = b->vtable->new_instance(b, params, &message);
        if (r < 0)
                return r;
        return print_message(o, message);
}

static int set_enabled(Backend *b, const FlctlOptions *o, bool enable) {
        _cleanup_free_ char *message = NULL;
        int r;

        r = b->vtable->set_enabled(b, enable, &message);
        if (r < 0)
                return r;
        return print_message(o, message);
}

static int verb_enable(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        return set_enabled(b, o, true);
}

static int verb_disable(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        return set_enabled(b, o, false);
}

static int check_token_create(const FlctlOptions *o, int argc, char *argv[]) {
        return flctl_token_create_check(o);
}

static int verb_token_create(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        return flctl_token_create(o);
}

static const Verb verbs[] = {
        { "nodes",  0, 0, verb_nodes,     0                   },
        { "state",  0, 0, verb_state,     0                   },
        { "finish", 0, 0, verb_finish,    FINISH_TIMEOUT_USEC },
        { "model",  0, 0, verb_model_get, MODEL_TIMEOUT_USEC, "get", check_model_get },
        { "scaleout", 1, 1,        verb_scale_out,     0, NULL,   check_scale_out    },
        { "scalein",  1, VERB_ANY, verb_scale_in,      0, NULL,   check_scale_in     },
        { "instance", 0, 0,        verb_instance_show, 0, "show", NULL               },
        { "instance", 1, VERB_ANY, verb_instance_set,  0, "set",  check_instance_set },
        { "enable",   0, 0,        verb_enable,        0                             },
        { "disable",  0, 0,        verb_disable,       0                             },
        { "token",    0, 0,        verb_token_create,  0, "create", check_token_create, .local = true },
        { "tls",      0, 0,        verb_tls_init,      0, "init", check_tls_init, .local = true },
};

int verb_find(int argc, char *argv[], const Verb **ret) {
        const char *name = argc > 0 ? argv[0] : NULL;
        unsigned n_args = argc > 0 ? (unsigned) argc - 1 : 0;

        if (!name)
                return log_error_errno(-EINVAL, "Missing verb. See '%s --help'.", program_invocation_short_name);

        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                const Verb *v = verbs + i;

                if (!streq(v->name, name))
                        continue;
                if (v->sub) {
                        if (n_args == 0 || !streq(argv[1], v->sub))
                                continue;
                        n_args--;
                }
                if (n_args < v->min_args)
                        return log_error_errno(-EINVAL, "Too few arguments for '%s%s%s'. See '%s --help'.",
                                               name, v->sub ? " " : "", v->sub ?: "",
                                               program_invocation_short_name);
                if (v->max_args != VERB_ANY && n_args > v->max_args)
                        return log_error_errno(-EINVAL, "Too many arguments for '%s%s%s'. See '%s --help'.",
                                               name, v->sub ? " " : "", v->sub ?: "",
                                               program_invocation_short_name);
                *ret = v;
                return 0;
        }
        if (argc > 1)
                return log_error_errno(-EINVAL, "Unknown verb '%s %s'. See '%s --help'.", name, argv[1],
                                       program_invocation_short_name);
        return log_error_errno(-EINVAL, "Unknown verb '%s'. See '%s --help'.", name, program_invocation_short_name);
}

int verb_check(const Verb *verb, const FlctlOptions *o, int argc, char *argv[]) {
        return verb->check ? verb->check(o, argc, argv) : 0;
}

int verb_run(const Verb *verb, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_(backend_freep) Backend *b = NULL;
        _cleanup_free_ char *token = NULL;
        int r;

        if (verb->local)
                return verb->run(NULL, o, argc, argv);
        /* D-Bus has its own policy (the group flcluster): tokens are REST's. */
        if (o->url && o->token_file) {
                r = flctl_token_read(o->token_file, &token);
                if (r < 0)
                        return r;
        }
        r = o->url ? rest_backend_new(o->url, token, &b) : bus_backend_new(&b);
        if (token)
                explicit_bzero(token, strlen(token));
        if (r < 0)
                return r;
        b->timeout_usec = o->timeout_usec ?: verb->timeout_usec ?: DEFAULT_TIMEOUT_USEC;
        b->cacert = o->cacert;

        return verb->run(b, o, argc, argv);
}
