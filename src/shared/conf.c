/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <string.h>

#include "conf.h"
#include "json-util.h"
#include "log.h"
#include "optimizer.h"
#include "util.h"

typedef enum ConfType {
        CONF_STRING,
        CONF_U32,
        CONF_DOUBLE,
        CONF_BOOL,
} ConfType;

typedef struct ConfOption {
        const char *name;
        ConfType type;
        size_t offset;
        uint32_t min, max;      /* integers */
        double lo, hi;          /* doubles: (lo, hi], or [lo if lo_closed, hi) if hi_open */
        bool lo_closed, hi_open;
        ConfRole roles;
        const char *help;
} ConfOption;

#define U32(n, lo, hi, r, h) { #n, CONF_U32, offsetof(FlConfig, n), lo, hi, 0, 0, false, false, r, h }
#define STR(n, r, h) { #n, CONF_STRING, offsetof(FlConfig, n), 0, 0, 0, 0, false, false, r, h }
/* (lo, hi] */
#define DBL(n, lo, hi, r, h) { #n, CONF_DOUBLE, offsetof(FlConfig, n), 0, 0, lo, hi, false, false, r, h }
/* [lo, hi) and [lo, hi] */
#define DBL_CO(n, lo, hi, r, h) { #n, CONF_DOUBLE, offsetof(FlConfig, n), 0, 0, lo, hi, true, true, r, h }
#define DBL_CC(n, lo, hi, r, h) { #n, CONF_DOUBLE, offsetof(FlConfig, n), 0, 0, lo, hi, true, false, r, h }
#define BOOL(n, r, h) { #n, CONF_BOOL, offsetof(FlConfig, n), 0, 1, 0, 0, false, false, r, h }

static const ConfOption options[] = {
        STR(scheduler_ip, CONF_ROLE_ALL, "Address of the scheduler (default 127.0.0.1)"),
        U32(scheduler_port, 1, 65535, CONF_ROLE_ALL, "TCP port servers register on (default 6667)"),
        U32(scheduler_manage_port, 1, 65535, CONF_ROLE_SCHEDULER, "RESTful management port (default 11202)"),
        STR(scheduler_manage_ip, CONF_ROLE_SCHEDULER, "Address the management port binds (default: scheduler_ip)"),
        STR(management_token_file, CONF_ROLE_SCHEDULER, "REST tokens: their roles and hashes (default none: no authentication)"),
        U32(fl_server_port, 1, 65535, CONF_ROLE_SERVER, "HTTP port devices talk to (default 6668)"),
        STR(fl_server_ip, CONF_ROLE_SERVER, "Address the device port binds (default: the advertised address)"),
        STR(tcp_server_ip, CONF_ROLE_SERVER, "Address the all-reduce peer port binds (default: the advertised address)"),
        U32(replay_attack_time_diff, 0, 604800000, CONF_ROLE_SERVER, "Max ms between a device request's timestamp and now (default 0: off)"),
        U32(server_num, 1, 4096, CONF_ROLE_ALL, "Number of servers in the cluster (default 1)"),
        U32(worker_num, 0, 0, CONF_ROLE_ALL, "Number of workers; must be 0 (workers are not supported)"),
        U32(local_server_num, 1, 256, CONF_ROLE_SERVER, "Servers this command starts on consecutive ports (default 1)"),
        U32(node_timeout, 1, 86400, CONF_ROLE_ALL, "Seconds of silence before a node is declared dead (default 30)"),
        STR(node_id, CONF_ROLE_SERVER, "Node id (default $MS_NODE_ID, else a UUID kept in the state directory)"),
        STR(advertise_ip, CONF_ROLE_SERVER, "Address announced to peers (default: first non-loopback address)"),
        STR(state_dir, CONF_ROLE_ALL, "State directory (default $STATE_DIRECTORY, else " DEFAULT_STATE_DIR ")"),
        STR(config_file_path, CONF_ROLE_ALL, "JSON configuration file with the same keys"),
        STR(log_level, CONF_ROLE_ALL, "Maximum log level: err, warning, notice, info, debug (default info)"),

        STR(fl_name, CONF_ROLE_SCHEDULER, "Name of the training job (default Lenet)"),
        U32(fl_iteration_num, 1, 10000000, CONF_ROLE_SCHEDULER, "Iterations of the job (default 20)"),
        U32(start_fl_job_threshold, 1, 100000000, CONF_ROLE_ALL, "Devices admitted per iteration (default 1)"),
        U32(start_fl_job_time_window, 1, 86400000, CONF_ROLE_SCHEDULER, "startFLJob window in ms (default 300000)"),
        DBL(update_model_ratio, 0, 1, CONF_ROLE_SCHEDULER, "Share of admitted devices whose updates end an iteration (default 1.0)"),
        U32(update_model_time_window, 1, 86400000, CONF_ROLE_SCHEDULER, "updateModel window in ms (default 300000)"),
        U32(global_iteration_time_window, 1, 604800000, CONF_ROLE_SCHEDULER, "Longest iteration in ms (default 3600000)"),
        U32(client_epoch_num, 1, 100000, CONF_ROLE_SCHEDULER, "Local epochs per iteration, sent to devices (default 25)"),
        U32(client_batch_size, 1, 1000000, CONF_ROLE_SCHEDULER, "Local mini-batch size, sent to devices (default 32)"),
        DBL(client_learning_rate, 0, 1000, CONF_ROLE_SCHEDULER, "Local learning rate, sent to devices (default 0.001)"),
        /* The server optimizer (optimizer.h, docs/training.md) and FedProx. */
        STR(server_optimizer, CONF_ROLE_SCHEDULER, "Server optimizer: " OPTIMIZER_KIND_NAMES " (default fedavg)"),
        DBL_CC(server_learning_rate, 0, OPTIMIZER_LEARNING_RATE_MAX, CONF_ROLE_SCHEDULER,
               "Server learning rate; 0: the optimizer's default (see flcluster.conf(5))"),
        DBL_CO(server_momentum, 0, 1, CONF_ROLE_SCHEDULER, "fedavgm's momentum (default 0.9)"),
        DBL_CO(server_beta1, 0, 1, CONF_ROLE_SCHEDULER, "First-moment decay of fedadam, fedyogi, fedadagrad (default 0.9)"),
        DBL_CO(server_beta2, 0, 1, CONF_ROLE_SCHEDULER, "Second-moment decay of fedadam, fedyogi (default 0.99)"),
        DBL(server_tau, 0, OPTIMIZER_TAU_MAX, CONF_ROLE_SCHEDULER, "Adaptivity of fedadam, fedyogi, fedadagrad (default 0.001)"),
        DBL_CC(fedprox_mu, 0, FEDPROX_MU_MAX, CONF_ROLE_SCHEDULER, "FedProx proximal term, sent to devices (default 0: off)"),

        STR(model_path, CONF_ROLE_SERVER, "Initial model, a FeatureMapList file (fl-client init-model writes one)"),
        U32(checkpoint_keep, 1, 100000, CONF_ROLE_SERVER, "Model checkpoints kept (default 3)"),
        U32(max_request_size_mb, 1, 4096, CONF_ROLE_SERVER, "Largest device request body in MiB (default 64)"),
        BOOL(durable_updates, CONF_ROLE_SERVER, "Log each update durably before acknowledging it (default true)"),

        STR(metrics_file, CONF_ROLE_SCHEDULER, "Per-iteration metrics, a JSON line each (default <state_dir>/metrics.json)"),
        STR(status_page_dir, CONF_ROLE_SCHEDULER, "Directory of the status page served at / (default " DEFAULT_STATUS_PAGE_DIR ")"),
        U32(metrics_port, 0, 65535, CONF_ROLE_SERVER, "Port of GET /metrics, plus the server's index (default 0: off)"),
        STR(metrics_ip, CONF_ROLE_SERVER, "Address the metrics port binds (default: the advertised address)"),
        BOOL(enable_ssl, CONF_ROLE_ALL, "TLS on every port, with the file's \"ssl\" section (default false)"),
        STR(cluster_secret_file, CONF_ROLE_ALL, "With TLS off: a secret every node proves when it connects"),
};

#define IN_SET_STR(s, ...) ({                                            \
                        const char *_s = (s);                           \
                        bool _found = false;                            \
                        const char *const _set[] = { __VA_ARGS__ };     \
                        for (size_t _i = 0; _i < ELEMENTSOF(_set); _i++) \
                                if (streq(_s, _set[_i]))                \
                                        _found = true;                  \
                        _found;                                         \
                })

static bool ip_address_is_valid(const char *s) {
        struct in6_addr a;

        return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

static const ConfOption *option_find(const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(options); i++)
                if (streq(options[i].name, key))
                        return &options[i];
        return NULL;
}

int conf_init(FlConfig *c) {
        *c = (FlConfig) {
                .scheduler_port = DEFAULT_SCHEDULER_PORT,
                .scheduler_manage_port = DEFAULT_MANAGE_PORT,
                .fl_server_port = DEFAULT_FL_SERVER_PORT,
                .server_num = 1,
                .local_server_num = 1,
                .node_timeout = DEFAULT_NODE_TIMEOUT_SEC,
                .fl_iteration_num = 20,
                .start_fl_job_threshold = 1,
                .start_fl_job_time_window = 300000,
                .update_model_ratio = 1.0,
                .update_model_time_window = 300000,
                .global_iteration_time_window = 3600000,
                .client_epoch_num = 25,
                .client_batch_size = 32,
                .client_learning_rate = 0.001,
                .server_momentum = OPTIMIZER_DEFAULT_MOMENTUM,
                .server_beta1 = OPTIMIZER_DEFAULT_BETA1,
                .server_beta2 = OPTIMIZER_DEFAULT_BETA2,
                .server_tau = OPTIMIZER_DEFAULT_TAU,
                .checkpoint_keep = 3,
                .max_request_size_mb = 64,
                .durable_updates = true,
                .ssl.cert_expire_warning_time_in_day = CONF_SSL_DEFAULT_WARNING_DAYS,
                .ssl.cert_check_interval_in_hour = CONF_SSL_DEFAULT_CHECK_HOURS,
        };
        c->scheduler_ip = strdup("127.0.0.1");
        c->fl_name = strdup("Lenet");
        c->server_optimizer = strdup("fedavg");
        return c->scheduler_ip && c->fl_name && c->server_optimizer ? 0 : -ENOMEM;
}

void conf_done(FlConfig *c) {
        for (size_t i = 0; i < ELEMENTSOF(options); i++)
                if (options[i].type == CONF_STRING) {
                        char **p = (char **) ((uint8_t *) c + options[i].offset);
                        free(*p);
                        *p = NULL;
                }
        c->recovery_file_path = mfree(c->recovery_file_path);
        c->scheduler_storage_file_path = mfree(c->scheduler_storage_file_path);
        conf_ssl_done(&c->ssl);
}

/* The setters say what is wrong in error (no logging): the command line and
 * the configuration file log it, the management API answers it. */
#define REFUSE(r, ...) (snprintf(error, size, __VA_ARGS__), (r))

static int option_set_string(FlConfig *c, const ConfOption *o, const char *value, char *error, size_t size) {
        char **p = (char **) ((uint8_t *) c + o->offset);
        char *copy;

        if (isempty(value))
                return REFUSE(-EINVAL, "Invalid value for %s: must not be empty.", o->name);
        if (streq(o->name, "node_id") && !node_id_is_valid(value))
                return REFUSE(-EINVAL, "Invalid value for %s: '%s' (use 1-127 letters, digits or -_.:@).", o->name, value);
        if (streq(o->name, "log_level") && log_parse_level(value) < 0)
                return REFUSE(-EINVAL, "Invalid value for %s: '%s'.", o->name, value);
        if (IN_SET_STR(o->name, "scheduler_manage_ip", "fl_server_ip", "tcp_server_ip", "metrics_ip") && !ip_address_is_valid(value))
                return REFUSE(-EINVAL, "Invalid value for %s: '%s' is not a numeric IPv4 or IPv6 address "
                              "(0.0.0.0 or :: for every address).", o->name, value);
        if (streq(o->name, "server_optimizer") && optimizer_kind_from_string(value) < 0)
                return REFUSE(-EINVAL, "Invalid value for %s: '%s' (use one of " OPTIMIZER_KIND_NAMES ").",
                              o->name, value);

        copy = strdup(value);
        if (!copy)
                return REFUSE(-ENOMEM, "Out of memory.");
        free(*p);
        *p = copy;
        return 0;
}

static int option_set_u32(FlConfig *c, const ConfOption *o, uint64_t v, char *error, size_t size) {
        if (v < o->min || v > o->max) {
                if (streq(o->name, "worker_num"))
                        return REFUSE(-ERANGE, "The worker_num must be 0: workers are not supported.");
                return REFUSE(-ERANGE, "Invalid value for %s: %" PRIu64 " is outside %u..%u.", o->name, v, o->min, o->max);
        }
        *(uint32_t *) ((uint8_t *) c + o->offset) = (uint32_t) v;
        return 0;
}

static int option_set_double(FlConfig *c, const ConfOption *o, double v, char *error, size_t size) {
        bool above = o->lo_closed ? v >= o->lo : v > o->lo, below = o->hi_open ? v < o->hi : v <= o->hi;

        if (!(above && below))  /* NaN fails both */
                return REFUSE(-ERANGE, "Invalid value for %s: %g is outside %c%g, %g%c.", o->name, v,
                              o->lo_closed ? '[' : '(', o->lo, o->hi, o->hi_open ? ')' : ']');
        *(double *) ((uint8_t *) c + o->offset) = v;
        return 0;
}

int conf_set(FlConfig *c, const char *key, const char *value) {
        const ConfOption *o = option_find(key);
        char error[256];
        uint64_t v;
        double d;
        int r;

        if (!o)
                return log_error_errno(-ENOENT, "Unknown option '%s'.", key);
        if (o->type == CONF_STRING)
                r = option_set_string(c, o, value, error, sizeof error);
        else if (o->type == CONF_BOOL) {
                bool *p = (bool *) ((uint8_t *) c + o->offset);

                if (streq(value, "true") || streq(value, "yes") || streq(value, "1"))
                        *p = true;
                else if (streq(value, "false") || streq(value, "no") || streq(value, "0"))
                        *p = false;
                else
                        return log_error_errno(-EINVAL, "Invalid value for %s: '%s' is not true or false.", key, value);
                r = 0;
        } else if (o->type == CONF_DOUBLE) {
                if (safe_atod(value, &d) < 0)
                        return log_error_errno(-EINVAL, "Invalid value for %s: '%s' is not a number.", key, value);
                r = option_set_double(c, o, d, error, sizeof error);
        } else {
                if (safe_atou64(value, &v) < 0)
                        return log_error_errno(-EINVAL, "Invalid value for %s: '%s' is not a non-negative integer.", key, value);
                r = option_set_u32(c, o, v, error, sizeof error);
        }
        if (r < 0)
                return log_error_errno(r, "%s", error);
        return 0;
}

int conf_apply_json_value(FlConfig *c, const char *key, json_object *value, char *error, size_t size) {
        const ConfOption *o = option_find(key);

        if (!o)
                return REFUSE(-ENOENT, "Unknown key '%s'.", key);
        if (streq(key, "config_file_path"))
                return REFUSE(-EINVAL, "Key '%s': a configuration file cannot name another.", key);

        if (o->type == CONF_STRING) {
                if (!json_object_is_type(value, json_type_string))
                        return REFUSE(-EINVAL, "The value of %s must be a string.", key);
                return option_set_string(c, o, json_object_get_string(value), error, size);
        }
        if (o->type == CONF_BOOL) {
                if (!json_object_is_type(value, json_type_boolean))
                        return REFUSE(-EINVAL, "The value of %s must be true or false.", key);
                *(bool *) ((uint8_t *) c + o->offset) = json_object_get_boolean(value);
                return 0;
        }
        if (o->type == CONF_DOUBLE) {
                if (!json_object_is_type(value, json_type_double) && !json_object_is_type(value, json_type_int))
                        return REFUSE(-EINVAL, "The value of %s must be a number.", key);
                return option_set_double(c, o, json_object_get_double(value), error, size);
        }
        if (!json_object_is_type(value, json_type_int))
                return REFUSE(-EINVAL, "The value of %s must be an integer.", key);
        if (json_object_get_int64(value) < 0)
                return REFUSE(-ERANGE, "The value of %s must not be negative.", key);
        return option_set_u32(c, o, (uint64_t) json_object_get_int64(value), error, size);
}

int conf_apply_json_text(FlConfig *c, const char *text, const char *origin) {
        _cleanup_(json_object_putp) json_object *root = NULL;
        enum json_tokener_error jerr;
        char error[256];
        int r;

        root = json_tokener_parse_verbose(text, &jerr);
        if (!root)
                return log_error_errno(-EINVAL, "Failed to parse %s: %s.", origin, json_tokener_error_desc(jerr));
        if (!json_object_is_type(root, json_type_object))
                return log_error_errno(-EINVAL, "Failed to parse %s: the top level must be a JSON object.", origin);

        json_object_object_foreach(root, key, value) {
                if (streq(key, "recovery"))
                        r = conf_apply_recovery(c, value, error, sizeof error);
                else if (streq(key, "ssl"))
                        r = conf_apply_ssl(c, value, error, sizeof error);
                else
                        r = conf_apply_json_value(c, key, value, error, sizeof error);
                if (r < 0)
                        return log_error_errno(r, "%s: %s", origin, error);
        }
        return 0;
}

static bool path_names_directory(const char *s) {
        size_t n = strlen(s);
        const char *base = strrchr(s, '/') + 1;

        return n == 0 || s[n - 1] == '/' || streq(base, ".") || streq(base, "..");
}

/* A database path: absolute, and naming a file rather than a directory. */
static int recovery_path_check(const char *key, json_object *value, char *error, size_t size) {
        const char *s;

        if (!json_object_is_type(value, json_type_string))
                return REFUSE(-EINVAL, "The value of recovery.%s must be a string.", key);
        s = json_object_get_string(value);
        if (isempty(s))
                return REFUSE(-EINVAL, "Invalid value for recovery.%s: must not be empty.", key);
        if (s[0] != '/')
                return REFUSE(-EINVAL, "Invalid value for recovery.%s: '%s' is not an absolute path.", key, s);
        if (path_names_directory(s))
                return REFUSE(-EINVAL, "Invalid value for recovery.%s: '%s' names a directory, not a file.", key, s);
        if (strlen(s) >= PATH_MAX - 16)
                return REFUSE(-EINVAL, "Invalid value for recovery.%s: the path is too long.", key);
        return 0;
}

int conf_apply_recovery(FlConfig *c, json_object *section, char *error, size_t size) {
        const char *file = NULL, *file_key = NULL, *scheduler = NULL;
        _cleanup_free_ char *file_copy = NULL, *scheduler_copy = NULL;
        int64_t type = CONF_RECOVERY_STORAGE_FILE;
        int r;

        if (!json_object_is_type(section, json_type_object))
                return REFUSE(-EINVAL, "The value of recovery must be a JSON object.");

        json_object_object_foreach(section, key, value) {
                if (streq(key, "storage_type")) {
                        if (!json_object_is_type(value, json_type_int))
                                return REFUSE(-EINVAL, "The value of recovery.storage_type must be an integer.");
                        type = json_object_get_int64(value);
                        if (type != CONF_RECOVERY_STORAGE_FILE)
                                return REFUSE(-EINVAL, "Invalid value for recovery.storage_type: %" PRIi64
                                              " (only 1, a file, is supported).", type);
                } else if (streq(key, "storge_file_path") || streq(key, "storage_file_path")) {
                        r = recovery_path_check(key, value, error, size);
                        if (r < 0)
                                return r;
                        /* MindSpore's guide spells it storge_, its code storage_: either, but not two files. */
                        if (file && !streq(file, json_object_get_string(value)))
                                return REFUSE(-EINVAL, "recovery.%s and recovery.%s name different files "
                                              "('%s', '%s'): give one of them.", file_key, key, file,
                                              json_object_get_string(value));
                        file = json_object_get_string(value);
                        file_key = key;
                } else if (streq(key, "scheduler_storage_file_path")) {
                        r = recovery_path_check(key, value, error, size);
                        if (r < 0)
                                return r;
                        scheduler = json_object_get_string(value);
                } else
                        return REFUSE(-ENOENT, "Unknown key '%s' in recovery (known: storage_type, storge_file_path, "
                                      "storage_file_path, scheduler_storage_file_path).", key);
        }

        if (file) {
                file_copy = strdup(file);
                if (!file_copy)
                        return REFUSE(-ENOMEM, "Out of memory.");
        }
        if (scheduler) {
                scheduler_copy = strdup(scheduler);
                if (!scheduler_copy)
                        return REFUSE(-ENOMEM, "Out of memory.");
        }
        c->recovery_storage_type = (uint32_t) type;
        free(c->recovery_file_path);
        c->recovery_file_path = TAKE_PTR(file_copy);
        free(c->scheduler_storage_file_path);
        c->scheduler_storage_file_path = TAKE_PTR(scheduler_copy);
        return 0;
}

int conf_path_with_port(const char *path, uint16_t port, char **ret) {
        const char *base, *dot;
        int k;

        if (isempty(path))
                return -EINVAL;
        base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (isempty(base))
                return -EINVAL;
        dot = strrchr(base, '.');
        if (!dot || dot == base)
                dot = base + strlen(base);
        k = asprintf(ret, "%.*s-%u%s", (int) (dot - path), path, port, dot);
        return k < 0 ? -ENOMEM : 0;
}

/* path when given, else the file name in the state directory. */
static int path_or_state_file(const FlConfig *c, const char *path, const char *name, char **ret) {
        char *p;

        if (path)
                p = strdup(path);
        else if (asprintf(&p, "%s/%s", conf_state_dir(c), name) < 0)
                p = NULL;
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

int conf_scheduler_db_path(const FlConfig *c, char **ret) {
        return path_or_state_file(c, c->scheduler_storage_file_path, "scheduler.db", ret);
}

int conf_server_db_path(const FlConfig *c, uint16_t port, char **ret) {
        if (c->recovery_file_path)
                return conf_path_with_port(c->recovery_file_path, port, ret);
        return asprintf(ret, "%s/server-%u.db", conf_state_dir(c), port) < 0 ? -ENOMEM : 0;
}

int conf_load_file(FlConfig *c, const char *path) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_full_file(path, &text, NULL, CONF_FILE_MAX);
        if (r < 0)
                return log_error_errno(r, "Failed to read configuration file %s: %m", path);
        if (strlen(text) == 0)
                return log_error_errno(-EINVAL, "Configuration file %s is empty.", path);
        return conf_apply_json_text(c, text, path);
}

void conf_help(FILE *f, ConfRole role, const char *program, const char *summary) {
        fprintf(f, "%s [OPTIONS...]\n\n%s\n\nOptions:\n", program, summary);
        fprintf(f, "  -h --help                        Show this help\n");
        fprintf(f, "     --version                     Show the version\n");
        for (size_t i = 0; i < ELEMENTSOF(options); i++) {
                if (!(options[i].roles & role))
                        continue;
                fprintf(f, "     --%s=%-*s %s\n", options[i].name,
                        (int) (28 - strlen(options[i].name)),
                        options[i].type == CONF_STRING ? "STR" : options[i].type == CONF_DOUBLE ? "X" :
                        options[i].type == CONF_BOOL ? "BOOL" : "N",
                        options[i].help);
        }
        fprintf(f, "\nSee %s(8) and flcluster.conf(5).\n", program);
}

enum {
        ARG_VERSION = 0x100,
        ARG_CONF_BASE = 0x200,
};

int conf_parse_argv(FlConfig *c, int argc, char *argv[], ConfRole role,
                    const char *program, const char *summary) {
        struct option longopts[ELEMENTSOF(options) + 3];
        size_t n = 0;
        int opt, r;

        for (size_t i = 0; i < ELEMENTSOF(options); i++)
                if (options[i].roles & role)
                        longopts[n++] = (struct option) { options[i].name, required_argument, NULL, ARG_CONF_BASE + (int) i };
        longopts[n++] = (struct option) { "help", no_argument, NULL, 'h' };
        longopts[n++] = (struct option) { "version", no_argument, NULL, ARG_VERSION };
        longopts[n] = (struct option) {};

        /* First pass: only the configuration file, so that options win over it. */
        optind = 0;
        opterr = 0;
        while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                if (opt == 'h') {
                        conf_help(stdout, role, program, summary);
                        return 1;
                }
                if (opt == ARG_VERSION) {
                        printf("%s %s\n", program, PACKAGE_VERSION);
                        return 1;
                }
                if (opt >= ARG_CONF_BASE && streq(options[opt - ARG_CONF_BASE].name, "config_file_path")) {
                        r = conf_load_file(c, optarg);
                        if (r < 0)
                                return -EINVAL;
                        r = conf_set(c, "config_file_path", optarg);
                        if (r < 0)
                                return -EINVAL;
                }
        }

        optind = 0;
        opterr = 1;
        while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) >= 0) {
                if (opt == '?')
                        return log_error_errno(-EINVAL, "Invalid command line; see %s --help.", program);
                if (opt < ARG_CONF_BASE)
                        continue;
                if (streq(options[opt - ARG_CONF_BASE].name, "config_file_path"))
                        continue;
                r = conf_set(c, options[opt - ARG_CONF_BASE].name, optarg);
                if (r < 0)
                        return -EINVAL;
        }
        if (optind < argc)
                return log_error_errno(-EINVAL, "Unexpected argument '%s'; see %s --help.", argv[optind], program);

        if (c->log_level)
                log_set_max_level(log_parse_level(c->log_level));
        return 0;
}

const char *conf_state_dir(const FlConfig *c) {
        static char first[4096];
        const char *e;

        if (c->state_dir)
                return c->state_dir;
        e = getenv("STATE_DIRECTORY");
        if (!isempty(e)) {
                /* systemd lists several directories separated by colons. */
                size_t n = strcspn(e, ":");
                if (n < sizeof first) {
                        memcpy(first, e, n);
                        first[n] = '\0';
                        return first;
                }
        }
        return DEFAULT_STATE_DIR;
}

uint32_t conf_update_threshold(const FlConfig *c) {
        double t = ceil((double) c->start_fl_job_threshold * c->update_model_ratio - 1e-9);

        return t < 1 ? 1 : (uint32_t) t;
}

int conf_metrics_file_path(const FlConfig *c, char **ret) {
        return path_or_state_file(c, c->metrics_file, "metrics.json", ret);
}

const char *conf_status_page_dir(const FlConfig *c) {
        return c->status_page_dir ?: DEFAULT_STATUS_PAGE_DIR;
}

const char *conf_metrics_ip(const FlConfig *c, const char *advertised) {
        return c->metrics_ip ?: advertised;
}

uint64_t conf_heartbeat_usec(const FlConfig *c) {
        uint64_t t = (uint64_t) c->node_timeout * USEC_PER_SEC / 3;

        return MIN(t, 3 * USEC_PER_SEC);
}
