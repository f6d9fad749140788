/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "macro.h"

/* Exit statuses: 0 done, 1 refused or unreachable, 2 the command line was wrong. */
#define FLCTL_EXIT_USAGE 2

typedef struct FlctlOptions {
        const char *url;                /* NULL: D-Bus on the system bus */
        bool json;
        uint64_t timeout_usec;          /* 0: the verb's own default */
        const char *output;             /* -o: model get's file */
        int64_t iteration;              /* --iteration; -1: the newest */
} FlctlOptions;

/* Global options may stand anywhere (`flctl nodes --json`), as with
 * systemctl; later verbs' options join the same table. Returns 1 and the
 * index of the verb in the permuted argv to go on, 0 when --help or
 * --version was answered, or a logged -EINVAL for a usage error. */
int parse_argv(int argc, char *argv[], FlctlOptions *ret, int *ret_verb_index);
