/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "flctl-args.h"
#include "log.h"
#include "util.h"

#define TIMEOUT_SEC_MAX 86400.0

static void help(void) {
        printf("%1$s [OPTIONS...] VERB [ARGS...]\n"
               "\n"
               "Manage a flcluster federated-learning cluster through its scheduler.\n"
               "\n"
               "Verbs:\n"
               "  nodes                 List the nodes, sorted by rank\n"
               "  state                 Show the cluster state\n"
               "  finish                Stop every server, then the scheduler\n"
               "  model get -o FILE     Download the global model from a server\n"
               "                        (FILE.safetensors: in the safetensors format)\n"
               "\n"
               "Options:\n"
               "  -h --help             Show this help and exit\n"
               "     --version          Show the version and exit\n"
               "     --url=URL          Talk REST to the scheduler at URL (http://HOST:PORT)\n"
               "                        instead of D-Bus on the system bus\n"
               "     --json             Print JSON for scripts instead of text\n"
               "     --timeout=SEC      Wait at most SEC seconds for the scheduler\n"
               "                        (default: 60 for finish and model get, 10 otherwise)\n"
               "  -o --output=FILE      model get: the file to write\n"
               "     --iteration=N      model get: the model of iteration N, not the newest\n"
               "\n"
               "See the %1$s(1) man page for details.\n",
               program_invocation_short_name);
}

static int parse_timeout(const char *s, uint64_t *ret) {
        double sec;

        /* Whole microseconds of at least a millisecond: libcurl counts in ms. */
        if (safe_atod(s, &sec) < 0 || sec < 0.001 || sec > TIMEOUT_SEC_MAX)
                return -EINVAL;
        *ret = (uint64_t) (sec * (double) USEC_PER_SEC);
        return 0;
}

/* Caught here so that a typo is a usage error, not a connection failure. */
static bool url_is_valid(const char *s) {
        const char *rest;

        if (strncasecmp(s, "http://", 7) == 0)
                rest = s + 7;
        else if (strncasecmp(s, "https://", 8) == 0)
                rest = s + 8;
        else
                return false;
        return rest[0] != '\0' && rest[0] != '/';
}

int parse_argv(int argc, char *argv[], FlctlOptions *ret, int *ret_verb_index) {
        enum {
                ARG_VERSION = 0x100,
                ARG_URL,
                ARG_JSON,
                ARG_TIMEOUT,
                ARG_ITERATION,
        };
        static const struct option options[] = {
                { "help",    no_argument,       NULL, 'h'         },
                { "version", no_argument,       NULL, ARG_VERSION },
                { "url",     required_argument, NULL, ARG_URL     },
                { "json",    no_argument,       NULL, ARG_JSON    },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "output",    required_argument, NULL, 'o'           },
                { "iteration", required_argument, NULL, ARG_ITERATION },
                {}
        };
        FlctlOptions o = { .iteration = -1 };
        uint32_t iteration;
        int c;

        /* 0, not 1: glibc then also forgets its state from an earlier parse
         * (the unit tests parse many command lines in one process). */
        optind = 0;
        /* Our own messages, through the log like every other error. */
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":ho:", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("%s (%s) %s\n", program_invocation_short_name, PACKAGE_NAME, PACKAGE_VERSION);
                        return 0;
                case ARG_URL:
                        if (!url_is_valid(optarg))
                                return log_error_errno(-EINVAL, "Invalid URL '%s': expected http://HOST:PORT. "
                                                       "See '%s --help'.", optarg, program_invocation_short_name);
                        o.url = optarg;
                        break;
                case ARG_JSON:
                        o.json = true;
                        break;
                case ARG_TIMEOUT:
                        if (parse_timeout(optarg, &o.timeout_usec) < 0)
                                return log_error_errno(-EINVAL, "Invalid timeout '%s': expected seconds, "
                                                       "at least 0.001 and at most %.0f. See '%s --help'.",
                                                       optarg, TIMEOUT_SEC_MAX, program_invocation_short_name);
                        break;
                case 'o':
                        if (isempty(optarg))
                                return log_error_errno(-EINVAL, "Invalid output file ''. See '%s --help'.",
                                                       program_invocation_short_name);
                        o.output = optarg;
                        break;
                case ARG_ITERATION:
                        if (safe_atou32(optarg, &iteration) < 0 || iteration > INT32_MAX)
                                return log_error_errno(-EINVAL, "Invalid iteration '%s': expected a number. "
                                                       "See '%s --help'.", optarg, program_invocation_short_name);
                        o.iteration = iteration;
                        break;
                case ':':
                        return log_error_errno(-EINVAL, "Option '%s' needs an argument. See '%s --help'.",
                                               argv[optind - 1], program_invocation_short_name);
                case '?':
                        /* optopt is a short option's letter, or the value of a long
                         * option that was given an argument it does not take. */
                        if (optopt >= ARG_VERSION)
                                return log_error_errno(-EINVAL, "Option '%s' takes no argument. See '%s --help'.",
                                                       argv[optind - 1], program_invocation_short_name);
                        if (optopt > 0)
                                return log_error_errno(-EINVAL, "Unknown option '-%c'. See '%s --help'.",
                                                       optopt, program_invocation_short_name);
                        return log_error_errno(-EINVAL, "Unknown option '%s'. See '%s --help'.",
                                               argv[optind - 1], program_invocation_short_name);
                default:
                        return log_error_errno(-EINVAL, "Unhandled option %d.", c);
                }

        *ret = o;
        *ret_verb_index = optind;
        return 1;
}
