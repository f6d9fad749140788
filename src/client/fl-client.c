/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client-central.h"
#include "client-plot.h"
#include "client-run.h"
#include "fashion-mnist.h"
#include "fl-model-io.h"
#include "lenet5.h"
#include "log.h"
#include "trainer.h"
#include "util.h"

/* Exit statuses: 0 done, 1 failed, 2 the command line was wrong. */
#define EXIT_USAGE 2
#define DEVICES_MAX 1000000
#define THREADS_MAX 1024
#define TIMEOUT_SEC_DEFAULT 600
#define TIMEOUT_SEC_MAX 86400
#define PLOT_WIDTH_DEFAULT 800
#define PLOT_HEIGHT_DEFAULT 500
#define PLOT_SIZE_MIN 200
#define PLOT_SIZE_MAX 8000
#define SAMPLES_MAX (UINT64_C(1) << 40)

typedef enum Verb {
        VERB_NONE,
        VERB_INIT_MODEL,
        VERB_TRAIN,
        VERB_PLOT,
        VERB_CENTRAL,
        _VERB_MAX,
} Verb;

/* Which verbs take an option (a bit per verb). */
#define FOR_INIT (1U << VERB_INIT_MODEL)
#define FOR_TRAIN (1U << VERB_TRAIN)
#define FOR_PLOT (1U << VERB_PLOT)
#define FOR_CENTRAL (1U << VERB_CENTRAL)

typedef struct Options {
        Verb verb;
        const char *arch;
        const char *output;
        uint64_t seed;
        const char *servers;
        size_t devices;
        PartitionSpec partition;
        const char *data_dir;
        unsigned iterations;
        const char *csv;
        size_t threads;
        const char *fl_name;
        double momentum;
        uint64_t timeout_sec;
        unsigned eval_every;
        const char *cacert;
        size_t width, height;           /* plot */
        const char *title;
        uint64_t samples;               /* central */
        double lr;
        size_t batch_size;
        const char *not_for[_VERB_MAX]; /* per verb: the first option given it does not take */
} Options;

static void help(void) {
        printf("%1$s init-model [--arch=lenet5] [--seed=N] -o FILE\n"
               "%1$s train --servers=URL[,URL...] --devices=K [OPTIONS...]\n"
               "%1$s plot --csv=FILE -o FILE.png [--width=N] [--height=N] [--title=TEXT]\n"
               "%1$s central [--samples=N] [OPTIONS...]\n"
               "\n"
               "Simulate federated-learning devices that train LeNet-5 on Fashion-MNIST\n"
               "through a flcluster (or MindSpore Federated) cluster.\n"
               "\n"
               "Verbs:\n"
               "  init-model            Write an initial model as a FeatureMapList file\n"
               "  train                 Run K devices for the job's iterations and print\n"
               "                        the test accuracy of each iteration's model (with a\n"
               "                        live progress line when the output is a terminal)\n"
               "  plot                  Draw the accuracy and loss of a --csv table as a PNG\n"
               "  central               Train one model on the whole training set with the\n"
               "                        devices' trainer, the reference for a federated run\n"
               "\n"
               "Options:\n"
               "  -h --help             Show this help and exit\n"
               "     --version          Show the version and exit\n"
               "     --arch=ARCH        init-model: the architecture (only lenet5)\n"
               "  -o --output=FILE      init-model: where to write the model;\n"
               "                        train: also write the last global model there;\n"
               "                        plot: the PNG to write; central: the trained model\n"
               "     --seed=N           Initial weights, data split, training and which\n"
               "                        devices take part (default 1)\n"
               "     --servers=URLS     train: the servers, http(s)://HOST:PORT, comma-separated\n"
               "     --devices=K        train: how many devices to simulate\n"
               "     --partition=SPLIT  train: iid or dirichlet:ALPHA (default iid)\n"
               "     --data=DIR         train, central: the Fashion-MNIST files\n"
               "                        (default %2$s)\n"
               "     --iterations=N     train: stop after N iterations (default: the job's)\n"
               "     --eval-every=N     train: evaluate the model of every Nth iteration\n"
               "                        (and the last; default 1)\n"
               "     --csv=FILE         train, central: append the table to FILE as CSV;\n"
               "                        plot: the table to draw\n"
               "     --width=N          plot: the picture's width in pixels (default %4$d)\n"
               "     --height=N         plot: its height (default %5$d)\n"
               "     --title=TEXT       plot: its title\n"
               "     --threads=N        train: devices that train at once (default: CPUs)\n"
               "     --fl-name=NAME     train: fl_name in the requests (default Lenet)\n"
               "     --momentum=M       train, central: SGD momentum (default 0.9)\n"
               "     --timeout=SEC      train: the longest wait for a server (default %3$d)\n"
               "     --samples=N        central: training samples in all (default 60000)\n"
               "     --lr=LR            central: SGD learning rate (default 0.01)\n"
               "     --batch-size=B     central: mini-batch size (default 32)\n"
               "     --cacert=FILE      train: check https:// servers against this CA (PEM)\n"
               "  -v --verbose          Log debug messages\n"
               "\n"
               "See the %1$s(1) man page for details.\n",
               program_invocation_short_name, FASHION_MNIST_DIR, TIMEOUT_SEC_DEFAULT, PLOT_WIDTH_DEFAULT,
               PLOT_HEIGHT_DEFAULT);
}

static int usage_error(const char *what, const char *arg) {
        return log_error_errno(-EINVAL, "%s '%s'. See '%s --help'.", what, arg, program_invocation_short_name);
}

static int parse_size(const char *s, size_t min, size_t max, size_t *ret) {
        uint64_t v;

        if (safe_atou64(s, &v) < 0 || v < min || v > max)
                return -EINVAL;
        *ret = (size_t) v;
        return 0;
}

static const char *option_name(const struct option *options, int c) {
        for (; options->name; options++)
                if (options->val == c)
                        return options->name;
        return "?";
}

static int parse_argv(int argc, char *argv[], Options *o) {
        enum {
                ARG_VERSION = 0x100,
                ARG_ARCH,
                ARG_SEED,
                ARG_SERVERS,
                ARG_DEVICES,
                ARG_PARTITION,
                ARG_DATA,
                ARG_ITERATIONS,
                ARG_CSV,
                ARG_THREADS,
                ARG_FL_NAME,
                ARG_MOMENTUM,
                ARG_TIMEOUT,
                ARG_CACERT,
                ARG_WIDTH,
                ARG_HEIGHT,
                ARG_TITLE,
                ARG_EVAL_EVERY,
                ARG_SAMPLES,
                ARG_LR,
                ARG_BATCH_SIZE,
        };
        static const struct option options[] = {
                { "help",       no_argument,       NULL, 'h'            },
                { "version",    no_argument,       NULL, ARG_VERSION    },
                { "verbose",    no_argument,       NULL, 'v'            },
                { "arch",       required_argument, NULL, ARG_ARCH       },
                { "output",     required_argument, NULL, 'o'            },
                { "seed",       required_argument, NULL, ARG_SEED       },
                { "servers",    required_argument, NULL, ARG_SERVERS    },
                { "devices",    required_argument, NULL, ARG_DEVICES    },
                { "partition",  required_argument, NULL, ARG_PARTITION  },
                { "data",       required_argument, NULL, ARG_DATA       },
                { "iterations", required_argument, NULL, ARG_ITERATIONS },
                { "csv",        required_argument, NULL, ARG_CSV        },
                { "threads",    required_argument, NULL, ARG_THREADS    },
                { "fl-name",    required_argument, NULL, ARG_FL_NAME    },
                { "momentum",   required_argument, NULL, ARG_MOMENTUM   },
                { "timeout",    required_argument, NULL, ARG_TIMEOUT    },
                { "cacert",     required_argument, NULL, ARG_CACERT     },
                { "width",      required_argument, NULL, ARG_WIDTH      },
                { "height",     required_argument, NULL, ARG_HEIGHT     },
                { "title",      required_argument, NULL, ARG_TITLE      },
                { "eval-every", required_argument, NULL, ARG_EVAL_EVERY },
                { "samples",    required_argument, NULL, ARG_SAMPLES    },
                { "lr",         required_argument, NULL, ARG_LR         },
                { "batch-size", required_argument, NULL, ARG_BATCH_SIZE },
                {}
        };
        /* The verbs each option is for; the others (-o, -v) are for every verb. */
        static const struct { int arg; unsigned verbs; } for_verbs[] = {
                { ARG_ARCH, FOR_INIT }, { ARG_SEED, FOR_INIT | FOR_TRAIN | FOR_CENTRAL },
                { ARG_SERVERS, FOR_TRAIN }, { ARG_DEVICES, FOR_TRAIN }, { ARG_PARTITION, FOR_TRAIN },
                { ARG_ITERATIONS, FOR_TRAIN }, { ARG_THREADS, FOR_TRAIN }, { ARG_FL_NAME, FOR_TRAIN },
                { ARG_TIMEOUT, FOR_TRAIN }, { ARG_EVAL_EVERY, FOR_TRAIN }, { ARG_CACERT, FOR_TRAIN },
                { ARG_DATA, FOR_TRAIN | FOR_CENTRAL }, { ARG_MOMENTUM, FOR_TRAIN | FOR_CENTRAL },
                { ARG_CSV, FOR_TRAIN | FOR_CENTRAL | FOR_PLOT },
                { ARG_WIDTH, FOR_PLOT }, { ARG_HEIGHT, FOR_PLOT }, { ARG_TITLE, FOR_PLOT },
                { ARG_SAMPLES, FOR_CENTRAL }, { ARG_LR, FOR_CENTRAL }, { ARG_BATCH_SIZE, FOR_CENTRAL },
        };
        size_t n;
        long cpus;
        int c;

        cpus = sysconf(_SC_NPROCESSORS_ONLN);
        *o = (Options) {
                .arch = "lenet5",
                .seed = 1,
                .partition = { .kind = PARTITION_IID },
                .data_dir = FASHION_MNIST_DIR,
                .threads = cpus > 0 ? (size_t) cpus : 1,
                .fl_name = "Lenet",
                .momentum = 0.9,
                .timeout_sec = TIMEOUT_SEC_DEFAULT,
                .width = PLOT_WIDTH_DEFAULT,
                .height = PLOT_HEIGHT_DEFAULT,
                .title = "fl-client: test accuracy and loss per iteration",
                .eval_every = 1,
                .samples = 60000,
                .lr = TRAIN_PLAN_DEFAULT.lr,
                .batch_size = TRAIN_PLAN_DEFAULT.mini_batch,
        };

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":hvo:", options, NULL)) >= 0) {
                for (size_t i = 0; i < ELEMENTSOF(for_verbs); i++)
                        for (Verb v = VERB_INIT_MODEL; for_verbs[i].arg == c && v < _VERB_MAX; v++)
                                if (!(for_verbs[i].verbs & (1U << v)) && !o->not_for[v])
                                        o->not_for[v] = option_name(options, c);
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("%s (%s) %s\n", program_invocation_short_name, PACKAGE_NAME, PACKAGE_VERSION);
                        return 0;
                case 'v':
                        log_set_max_level(LOG_DEBUG);
                        break;
                case ARG_ARCH:
                        if (!streq(optarg, "lenet5"))
                                return usage_error("Unknown architecture (only lenet5)", optarg);
                        o->arch = optarg;
                        break;
                case 'o':
                        o->output = optarg;
                        break;
                case ARG_SEED:
                        if (safe_atou64(optarg, &o->seed) < 0)
                                return usage_error("Invalid seed", optarg);
                        break;
                case ARG_SERVERS:
                        o->servers = optarg;
                        break;
                case ARG_DEVICES:
                        if (parse_size(optarg, 1, DEVICES_MAX, &o->devices) < 0)
                                return usage_error("Invalid number of devices (1 to 1000000)", optarg);
                        break;
                case ARG_PARTITION:
                        if (partition_spec_parse(optarg, &o->partition) < 0)
                                return usage_error("Invalid partition (iid or dirichlet:ALPHA)", optarg);
                        break;
                case ARG_DATA:
                        o->data_dir = optarg;
                        break;
                case ARG_ITERATIONS:
                        if (parse_size(optarg, 1, INT32_MAX, &n) < 0)
                                return usage_error("Invalid number of iterations", optarg);
                        o->iterations = (unsigned) n;
                        break;
                case ARG_CSV:
                        o->csv = optarg;
                        break;
                case ARG_THREADS:
                        if (parse_size(optarg, 1, THREADS_MAX, &o->threads) < 0)
                                return usage_error("Invalid number of threads (1 to 1024)", optarg);
                        break;
                case ARG_FL_NAME:
                        if (isempty(optarg))
                                return usage_error("Invalid fl_name", optarg);
                        o->fl_name = optarg;
                        break;
                case ARG_MOMENTUM:
                        if (safe_atod(optarg, &o->momentum) < 0 || o->momentum < 0 || o->momentum >= 1)
                                return usage_error("Invalid momentum (0 <= M < 1)", optarg);
                        break;
                case ARG_TIMEOUT:
                        if (safe_atou64(optarg, &o->timeout_sec) < 0 || o->timeout_sec < 1 ||
                            o->timeout_sec > TIMEOUT_SEC_MAX)
                                return usage_error("Invalid timeout (1 to 86400 seconds)", optarg);
                        break;
                case ARG_CACERT:
                        if (isempty(optarg) || access(optarg, R_OK) < 0)
                                return usage_error("Cannot read the CA file", optarg);
                        o->cacert = optarg;
                        break;
                case ARG_WIDTH:
                        if (parse_size(optarg, PLOT_SIZE_MIN, PLOT_SIZE_MAX, &o->width) < 0)
                                return usage_error("Invalid width (200 to 8000 pixels)", optarg);
                        break;
                case ARG_HEIGHT:
                        if (parse_size(optarg, PLOT_SIZE_MIN, PLOT_SIZE_MAX, &o->height) < 0)
                                return usage_error("Invalid height (200 to 8000 pixels)", optarg);
                        break;
                case ARG_TITLE:
                        o->title = optarg;
                        break;
                case ARG_EVAL_EVERY:
                        if (parse_size(optarg, 1, INT32_MAX, &n) < 0)
                                return usage_error("Invalid --eval-every (a positive number of iterations)", optarg);
                        o->eval_every = (unsigned) n;
                        break;
                case ARG_SAMPLES:
                        if (safe_atou64(optarg, &o->samples) < 0 || o->samples < 1 || o->samples > SAMPLES_MAX)
                                return usage_error("Invalid number of samples", optarg);
                        break;
                case ARG_LR:
                        if (safe_atod(optarg, &o->lr) < 0 || !(o->lr > 0) || o->lr > 1000)
                                return usage_error("Invalid learning rate (0 < LR <= 1000)", optarg);
                        break;
                case ARG_BATCH_SIZE:
                        if (parse_size(optarg, 1, 1000000, &o->batch_size) < 0)
                                return usage_error("Invalid batch size (1 to 1000000)", optarg);
                        break;
                case ':':
                        return usage_error("Option needs an argument", argv[optind - 1]);
                case '?':
                        /* optopt: a short option's letter, or the value of a long
                         * option that was given an argument it does not take. */
                        if (optopt != 0 && strneq(argv[optind - 1], "--", 2))
                                return usage_error("Option takes no argument", argv[optind - 1]);
                        if (optopt > 0 && optopt < 0x100) {
                                char opt[3] = { '-', (char) optopt, '\0' };
                                return usage_error("Unknown option", opt);
                        }
                        return usage_error("Unknown option", argv[optind - 1]);
                default:
                        return log_error_errno(-EINVAL, "Unhandled option %d.", c);
                }
        }

        if (optind >= argc)
                return log_error_errno(-EINVAL, "Missing verb. See '%s --help'.", program_invocation_short_name);
        if (optind + 1 < argc)
                return usage_error("Unexpected argument", argv[optind + 1]);
        if (streq(argv[optind], "init-model"))
                o->verb = VERB_INIT_MODEL;
        else if (streq(argv[optind], "train"))
                o->verb = VERB_TRAIN;
        else if (streq(argv[optind], "plot"))
                o->verb = VERB_PLOT;
        else if (streq(argv[optind], "central"))
                o->verb = VERB_CENTRAL;
        else
                return usage_error("Unknown verb", argv[optind]);

        if (o->not_for[o->verb])
                return log_error_errno(-EINVAL, "%s does not take --%s. See '%s --help'.", argv[optind],
                                       o->not_for[o->verb], program_invocation_short_name);
        if (o->verb == VERB_PLOT) {
                if (!o->csv || !o->output)
                        return log_error_errno(-EINVAL, "plot needs --csv FILE and -o FILE.png. See '%s --help'.",
                                               program_invocation_short_name);
        } else if (o->verb == VERB_INIT_MODEL) {
                if (!o->output)
                        return log_error_errno(-EINVAL, "init-model needs -o FILE. See '%s --help'.",
                                               program_invocation_short_name);
        } else if (o->verb == VERB_TRAIN) {
                if (!o->servers || o->devices == 0)
                        return log_error_errno(-EINVAL, "train needs --servers and --devices. See '%s --help'.",
                                               program_invocation_short_name);
        }
        return 1;
}

static int central(const Options *o) {
        TrainPlan plan = TRAIN_PLAN_DEFAULT;
        CentralOptions co;

        plan.lr = (float) o->lr;
        plan.mini_batch = (unsigned) o->batch_size;
        plan.momentum = (float) o->momentum;
        co = (CentralOptions) {
                .data_dir = o->data_dir,
                .seed = o->seed,
                .samples = o->samples,
                .plan = plan,
                .csv_path = o->csv,
                .model_path = o->output,
        };
        trainer_blas_single_thread();
        return client_central(&co);
}

static int init_model(const Options *o) {
        _cleanup_(model_freep) Model *m = NULL;
        int r;

        r = lenet5_init(&m, o->seed);
        if (r < 0)
                return log_error_errno(r, "Failed to initialize LeNet-5: %m");
        r = fl_model_save_file(o->output, m);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", o->output);
        log_info("Wrote LeNet-5 (%zu parameters, seed %" PRIu64 ") to %s.", model_total_size(m), o->seed, o->output);
        return 0;
}

static int plot(const Options *o) {
        _cleanup_free_ PlotRow *rows = NULL;
        char error[256] = "";
        size_t n;
        int r;

        r = plot_read_csv(o->csv, &rows, &n, error, sizeof error);
        if (r < 0)
                return log_error_errno(r, "Cannot plot %s: %s.", o->csv, error);
        r = plot_write_png(rows, n, o->title, (unsigned) o->width, (unsigned) o->height, o->output);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", o->output);
        log_info("Drew %zu rows of %s into %s (%zux%zu).", n, o->csv, o->output, o->width, o->height);
        return 0;
}

static int train(const Options *o, const ServerList *servers) {
        RunOptions ro = {
                .servers = *servers,
                .n_devices = o->devices,
                .partition = o->partition,
                .data_dir = o->data_dir,
                .seed = o->seed,
                .iterations = o->iterations,
                .csv_path = o->csv,
                .model_path = o->output,
                .threads = o->threads,
                .fl_name = o->fl_name,
                .momentum = (float) o->momentum,
                .timeout_usec = o->timeout_sec * USEC_PER_SEC,
                .eval_every = o->eval_every,
                .cacert = o->cacert,
        };

        return client_run(&ro);
}

int main(int argc, char *argv[]) {
        Options o;
        int r;

        log_set_ident(program_invocation_short_name);
        log_set_plain(true);

        r = parse_argv(argc, argv, &o);
        if (r < 0)
                return EXIT_USAGE;
        if (r == 0)
                return fflush(stdout) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;

        if (o.verb == VERB_TRAIN) {
                _cleanup_(server_list_done) ServerList servers = {};

                /* A bad URL is the command line's fault: exit 2, before any work. */
                r = server_list_parse(o.servers, &servers);
                if (r == -ENOMEM) {
                        (void) log_oom();
                        return EXIT_FAILURE;
                }
                if (r < 0) {
                        (void) usage_error("Invalid --servers list (http(s)://HOST:PORT,...)", o.servers);
                        return EXIT_USAGE;
                }
                /* Before any thread: libcurl's global state is not thread-safe to set up. */
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                        log_error("Failed to initialize libcurl.");
                        return EXIT_FAILURE;
                }
                trainer_blas_single_thread();
                r = train(&o, &servers);
                curl_global_cleanup();
        } else if (o.verb == VERB_PLOT)
                r = plot(&o);
        else if (o.verb == VERB_CENTRAL)
                r = central(&o);
        else
                r = init_model(&o);

        if (fflush(stdout) != 0 || ferror(stdout))
                r = log_error_errno(negative_errno(), "Failed to write the output: %m");
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
