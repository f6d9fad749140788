/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "macro.h"

/* Exit statuses: 0 done, 1 refused or unreachable, 2 the command line was wrong. */
#define FLCTL_EXIT_USAGE 2

typedef struct FlctlOptions {
        const char *url;                /* NULL: D-Bus on the system bus */
        bool json;
        uint64_t timeout_usec;          /* 0: the verb's own default */
        const char *output;             /* -o: model get's file */
        int64_t iteration;              /* --iteration; -1: the newest */
        const char *token_file;         /* --token-file, else $FLCTL_TOKEN_FILE; NULL: none */
        const char *role;               /* --role: token create's */
        const char *into;               /* --into: token create's file */
        const char *cacert;             /* --cacert: the cluster's CA for https:// */
        /* tls init */
        const char *dir;                /* --dir */
        const char *hosts;              /* --hosts, as given */
        bool force;                     /* --force */
        bool keep_ca;                   /* --keep-ca */
} FlctlOptions;

/* The environment variable --token-file defaults to. */
#define FLCTL_TOKEN_FILE_ENV "FLCTL_TOKEN_FILE"

/* Global options may stand anywhere (`flctl nodes --json`), as with
 * systemctl; later verbs' options join the same table. Returns 1 and the
 * index of the verb in the permuted argv to go on, 0 when --help or
 * --version was answered, or a logged -EINVAL for a usage error. */
int parse_argv(int argc, char *argv[], FlctlOptions *ret, int *ret_verb_index);

/* The verbs' own arguments; each logs its usage error and returns -EINVAL.
 *
 * scaleout N: a positive integer (D-Bus carries it as a u). */
int parse_server_num(const char *s, uint32_t *ret);
/* scalein NODE_ID...: none may be empty or other than UTF-8; the
 * scheduler judges the rest. */
int check_node_ids(int n, char *const *node_ids);
/* instance set KEY=VALUE...: a JSON object of hyper-parameters (UTF-8,
 * KEY and VALUE not empty, no KEY twice). A VALUE that is an integer
 * becomes a JSON integer, a decimal number with a dot or an exponent a
 * double, anything else a string (fl_name); the scheduler checks names,
 * types and ranges. */
int instance_params_from_args(int n, char *const *args, json_object **ret);
