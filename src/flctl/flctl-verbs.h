/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <limits.h>

#include "flctl-args.h"
#include "flctl-backend.h"

#define VERB_ANY UINT_MAX

/* One line of the verb table. argv[0] is the verb itself (argv[1] too for
 * a two-word verb such as "model get"); min_args and max_args count what
 * follows. */
typedef struct Verb {
        const char *name;
        unsigned min_args, max_args;
        int (*run)(Backend *b, const FlctlOptions *o, int argc, char *argv[]);
        uint64_t timeout_usec;  /* how long the scheduler may take; 0: the default */
        const char *sub;        /* the second word, or NULL */
        /* The options and arguments (argv as run() gets it) the verb needs,
         * checked before any connection; a logged -EINVAL is a usage error. */
        int (*check)(const FlctlOptions *o, int argc, char *argv[]);
        bool local;             /* needs no scheduler: run() gets no backend */
} Verb;

/* Finds the verb in argv[0] (and argv[1]) and checks its argument count;
 * verb_check() then checks the options and the arguments themselves. A
 * logged -EINVAL is a usage error. */
int verb_find(int argc, char *argv[], const Verb **ret);
int verb_check(const Verb *verb, const FlctlOptions *o, int argc, char *argv[]);

/* Connects the backend --url chose and runs the verb; the failure, if any,
 * is already logged. */
int verb_run(const Verb *verb, const FlctlOptions *o, int argc, char *argv[]);
