/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "flctl-args.h"
#include "flctl-verbs.h"
#include "log.h"

/* A full disk or a closed pipe must not look like success to a script. */
static int flush_stdout(void) {
        if (fflush(stdout) != 0 || ferror(stdout))
                return log_error_errno(negative_errno(), "Failed to write the output: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        FlctlOptions options;
        const Verb *verb;
        int verb_index, r;

        log_set_ident(program_invocation_short_name);
        log_set_plain(true);

        r = parse_argv(argc, argv, &options, &verb_index);
        if (r < 0)
                return FLCTL_EXIT_USAGE;
        if (r == 0)
                return flush_stdout() < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = verb_find(argc - verb_index, argv + verb_index, &verb);
        if (r < 0 || verb_check(verb, &options, argc - verb_index, argv + verb_index) < 0)
                return FLCTL_EXIT_USAGE;

        r = verb_run(verb, &options, argc - verb_index, argv + verb_index);
        if (flush_stdout() < 0 || r < 0)
                return EXIT_FAILURE;
        return EXIT_SUCCESS;
}
