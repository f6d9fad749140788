/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "flctl-args.h"
#include "json-util.h"
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
               "  scaleout N            Add N servers (then start them with server_num\n"
               "                        raised by N)\n"
               "  scalein NODE_ID...    Remove these servers from the cluster\n"
               "  instance show         Show the job's hyper-parameters\n"
               "  instance set KEY=VALUE...\n"
               "                        Start a new instance with these hyper-parameters\n"
               "                        from the next iteration on\n"
               "  enable                Let devices train again\n"
               "  disable               Stop admitting devices; the cluster stays up\n"
               "  finish                Stop every server, then the scheduler\n"
               "  model get -o FILE     Download the global model from a server\n"
               "                        (FILE.safetensors: in the safetensors format)\n"
               "  token create --role ROLE --into FILE\n"
               "                        Make a REST token of ROLE (operator or reader),\n"
               "                        add its hash to the token file FILE, print it\n"
               "  tls init --dir DIR --hosts ADDR[,ADDR...]\n"
               "                        Make a CA and a node certificate for these\n"
               "                        addresses in DIR (no scheduler needed)\n"
               "\n"
               "Options:\n"
               "  -h --help             Show this help and exit\n"
               "     --version          Show the version and exit\n"
               "     --url=URL          Talk REST to the scheduler at URL (http(s)://HOST:PORT)\n"
               "                        instead of D-Bus on the system bus\n"
               "     --token-file=FILE  REST: send the token in FILE (default $%2$s)\n"
               "     --json             Print JSON for scripts instead of text\n"
               "     --timeout=SEC      Wait at most SEC seconds for the scheduler\n"
               "                        (default: 60 for finish and model get, 10 otherwise)\n"
               "  -o --output=FILE      model get: the file to write\n"
               "     --iteration=N      model get: the model of iteration N, not the newest\n"
               "     --role=ROLE        token create: operator (may change the cluster) or\n"
               "                        reader (may only read)\n"
               "     --into=FILE        token create: the scheduler's management_token_file\n"
               "     --cacert=FILE      Check https:// schedulers and servers against this CA\n"
               "                        (PEM); model get then uses https:// too\n"
               "     --dir=DIR          tls init: where the files go\n"
               "     --hosts=ADDRS      tls init: the nodes' IP addresses and DNS names\n"
               "     --force            tls init: replace the files already in DIR\n"
               "     --keep-ca          tls init: sign with DIR/ca.pem and DIR/ca-key.pem\n"
               "\n"
               "See the %1$s(1) man page for details.\n",
               program_invocation_short_name, FLCTL_TOKEN_FILE_ENV);
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
                ARG_TOKEN_FILE,
                ARG_ROLE,
                ARG_INTO,
                ARG_CACERT,
                ARG_DIR,
                ARG_HOSTS,
                ARG_FORCE,
                ARG_KEEP_CA,
        };
        static const struct option options[] = {
                { "help",    no_argument,       NULL, 'h'         },
                { "version", no_argument,       NULL, ARG_VERSION },
                { "url",     required_argument, NULL, ARG_URL     },
                { "json",    no_argument,       NULL, ARG_JSON    },
                { "timeout", required_argument, NULL, ARG_TIMEOUT },
                { "output",    required_argument, NULL, 'o'           },
                { "iteration", required_argument, NULL, ARG_ITERATION },
                { "token-file", required_argument, NULL, ARG_TOKEN_FILE },
                { "role",       required_argument, NULL, ARG_ROLE       },
                { "into",       required_argument, NULL, ARG_INTO       },
                { "cacert",    required_argument, NULL, ARG_CACERT    },
                { "dir",       required_argument, NULL, ARG_DIR       },
                { "hosts",     required_argument, NULL, ARG_HOSTS     },
                { "force",     no_argument,       NULL, ARG_FORCE     },
                { "keep-ca",   no_argument,       NULL, ARG_KEEP_CA   },
                {}
        };
        const char *env = getenv(FLCTL_TOKEN_FILE_ENV);
        FlctlOptions o = { .iteration = -1, .token_file = isempty(env) ? NULL : env };
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
                                return log_error_errno(-EINVAL, "Invalid URL '%s': expected http(s)://HOST:PORT. "
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
                case ARG_TOKEN_FILE:
                        if (isempty(optarg))
                                return log_error_errno(-EINVAL, "Invalid token file ''. See '%s --help'.",
                                                       program_invocation_short_name);
                        o.token_file = optarg;
                        break;
                case ARG_ROLE:
                        o.role = optarg;
                        break;
                case ARG_INTO:
                        if (isempty(optarg))
                                return log_error_errno(-EINVAL, "Invalid token file ''. See '%s --help'.",
                                                       program_invocation_short_name);
                        o.into = optarg;
                        break;
                case ARG_CACERT:
                        if (isempty(optarg) || access(optarg, R_OK) < 0)
                                return log_error_errno(-EINVAL, "Cannot read the CA file '%s' (--cacert). "
                                                       "See '%s --help'.", optarg, program_invocation_short_name);
                        o.cacert = optarg;
                        break;
                case ARG_DIR:
                        if (isempty(optarg))
                                return log_error_errno(-EINVAL, "Invalid directory ''. See '%s --help'.",
                                                       program_invocation_short_name);
                        o.dir = optarg;
                        break;
                case ARG_HOSTS:
                        o.hosts = optarg;
                        break;
                case ARG_FORCE:
                        o.force = true;
                        break;
                case ARG_KEEP_CA:
                        o.keep_ca = true;
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

int parse_server_num(const char *s, uint32_t *ret) {
        uint32_t n;

        if (safe_atou32(s, &n) < 0 || n == 0)
                return log_error_errno(-EINVAL, "Invalid number of servers '%s': expected a positive integer. "
                                       "See '%s --help'.", s, program_invocation_short_name);
        *ret = n;
        return 0;
}

/* D-Bus carries only UTF-8 strings, and JSON is UTF-8: an argument that is
 * not is the command line's fault, whichever way flctl talks. Strict: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_is_valid(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        while (*p) {
                unsigned n;
                uint32_t c;

                if (*p < 0x80) {
                        p++;
                        continue;
                }
                if (*p >= 0xc2 && *p <= 0xdf)
                        n = 1, c = *p & 0x1f;
                else if (*p >= 0xe0 && *p <= 0xef)
                        n = 2, c = *p & 0x0f;
                else if (*p >= 0xf0 && *p <= 0xf4)
                        n = 3, c = *p & 0x07;
                else
                        return false;
                p++;
                for (unsigned i = 0; i < n; i++, p++) {
                        if ((*p & 0xc0) != 0x80)
                                return false;   /* also stops at the terminating NUL */
                        c = (c << 6) | (*p & 0x3f);
                }
                if ((n == 2 && c < 0x800) || (n == 3 && c < 0x10000) || c > 0x10ffff ||
                    (c >= 0xd800 && c <= 0xdfff))
                        return false;
        }
        return true;
}

int check_node_ids(int n, char *const *node_ids) {
        if (n <= 0)
                return log_error_errno(-EINVAL, "No node id given. See '%s --help'.", program_invocation_short_name);
        for (int i = 0; i < n; i++) {
                if (isempty(node_ids[i]))
                        return log_error_errno(-EINVAL, "Invalid node id '': see '%s nodes' for the ids.",
                                               program_invocation_short_name);
                if (!utf8_is_valid(node_ids[i]))
                        return log_error_errno(-EINVAL, "Invalid node id: not UTF-8. See '%s nodes' for the ids.",
                                               program_invocation_short_name);
        }
        return 0;
}

/* -?[0-9]+: 1 and the value, 0 when s is not an integer, -ERANGE when it is
 * one that int64_t cannot hold. */
static int value_as_integer(const char *s, int64_t *ret) {
        const char *digits = s[0] == '-' ? s + 1 : s;
        char *end;
        long long v;

        if (digits[0] == '\0' || strspn(digits, "0123456789") != strlen(digits))
                return 0;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        *ret = v;
        return 1;
}

/* A decimal number with a dot or an exponent ("0.01", "1e-3", "-2.5E2"):
 * the same three answers. Letters other than e are left out, so that
 * neither "nan" nor "0x1p3" becomes a number. */
static int value_as_double(const char *s, double *ret) {
        char *end;
        double v;

        if (strspn(s, "0123456789.eE+-") != strlen(s) || !strpbrk(s, ".eE") || !strpbrk(s, "0123456789"))
                return 0;
        errno = 0;
        v = strtod(s, &end);
        if (end == s || *end != '\0')
                return 0;               /* "1.2.3", "e5", "1e": a string, for the scheduler to refuse */
        if (errno == ERANGE)
                return -ERANGE;
        *ret = v;
        return 1;
}

static json_object *value_to_json(const char *s, int *ret_error) {
        int64_t i;
        double d;
        int r;

        *ret_error = 0;
        r = value_as_integer(s, &i);
        if (r > 0)
                return json_object_new_int64(i);
        if (r == 0) {
                r = value_as_double(s, &d);
                if (r > 0)
                        return json_object_new_double(d);
                if (r == 0)
                        return json_object_new_string(s);
        }
        *ret_error = r;
        return NULL;
}

int instance_params_from_args(int n, char *const *args, json_object **ret) {
        _cleanup_(json_object_putp) json_object *params = json_object_new_object();

        if (!params)
                return log_oom();
        if (n <= 0)
                return log_error_errno(-EINVAL, "No KEY=VALUE given. See '%s --help'.",
                                       program_invocation_short_name);
        for (int i = 0; i < n; i++) {
                _cleanup_free_ char *key = NULL;
                const char *eq = strchr(args[i], '=');
                json_object *value;
                int r;

                if (!utf8_is_valid(args[i]))
                        return log_error_errno(-EINVAL, "Invalid hyper-parameter: argument %d is not UTF-8.",
                                               i + 1);
                if (!eq || eq == args[i] || eq[1] == '\0')
                        return log_error_errno(-EINVAL, "Invalid hyper-parameter '%s': expected KEY=VALUE. "
                                               "See '%s --help'.", args[i], program_invocation_short_name);
                key = strndup(args[i], eq - args[i]);
                if (!key)
                        return log_oom();
                if (json_object_object_get_ex(params, key, NULL))
                        return log_error_errno(-EINVAL, "The hyper-parameter %s is given twice.", key);

                value = value_to_json(eq + 1, &r);
                if (r == -ERANGE)
                        return log_error_errno(-EINVAL, "The value of %s is out of range: '%s'.", key, eq + 1);
                if (!value || json_object_object_add(params, key, value) < 0) {
                        json_object_put(value);
                        return log_oom();
                }
        }
        *ret = TAKE_PTR(params);
        return 0;
}
