/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <json-c/json.h>
#include <stdio.h>

#include "macro.h"

/* One configuration for every flcluster program. Keys keep MindSpore's names
 * and are the same on the command line (--server_num=4) and in the JSON file
 * named by --config_file_path; the command line wins over the file. A key
 * of the other daemon is accepted in the file (one file serves a host) but
 * an unknown key is refused with its name. */

typedef enum ConfRole {
        CONF_ROLE_SCHEDULER = 1 << 0,
        CONF_ROLE_SERVER = 1 << 1,
        CONF_ROLE_ALL = CONF_ROLE_SCHEDULER | CONF_ROLE_SERVER,
} ConfRole;

/* The configuration file's "ssl" section (MindSpore's keys; not command-line
 * options): the node's certificate and key, the cluster's CA and CRL. Paths
 * name PEM files; server_cert_path (and client_cert_path) may instead name a
 * PKCS#12 file holding the key, opened with server_password (client_password).
 * Unset strings are NULL. security.md has the whole story. */
typedef struct SslConfig {
        char *server_cert_path;
        char *server_key_path;
        char *server_password;
        char *client_cert_path;         /* NULL: the server certificate is the client one too */
        char *client_key_path;
        char *client_password;
        char *ca_cert_path;
        char *crl_path;
        char *cipher_list;              /* a GnuTLS priority string; NULL: CONF_SSL_DEFAULT_PRIORITY */
        uint32_t cert_expire_warning_time_in_day;
        uint32_t cert_check_interval_in_hour;
} SslConfig;

#define CONF_SSL_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define CONF_SSL_DEFAULT_WARNING_DAYS 90
#define CONF_SSL_DEFAULT_CHECK_HOURS 24

typedef struct FlConfig {
        char *scheduler_ip;
        uint32_t scheduler_port;
        uint32_t scheduler_manage_port;
        char *scheduler_manage_ip;      /* NULL: scheduler_ip */
        char *management_token_file;    /* NULL: no authentication */
        uint32_t fl_server_port;
        char *fl_server_ip;             /* NULL: the advertised address */
        char *tcp_server_ip;            /* NULL: the advertised address */
        uint32_t replay_attack_time_diff;       /* ms; 0: no freshness check */
        uint32_t server_num;
        uint32_t worker_num;
        uint32_t local_server_num;
        uint32_t node_timeout;          /* seconds */
        char *node_id;
        char *advertise_ip;
        char *state_dir;
        char *config_file_path;
        char *log_level;

        /* The training job (MindSpore's names and defaults). Times are in ms. */
        char *fl_name;
        uint32_t fl_iteration_num;
        uint32_t start_fl_job_threshold;
        uint32_t start_fl_job_time_window;
        double update_model_ratio;
        uint32_t update_model_time_window;
        uint32_t global_iteration_time_window;
        uint32_t client_epoch_num;
        uint32_t client_batch_size;
        double client_learning_rate;
        /* The server optimizer (optimizer.h): its name, and its parameters;
         * server_learning_rate 0 means the optimizer's default. */
        char *server_optimizer;
        double server_learning_rate;
        double server_momentum;
        double server_beta1;
        double server_beta2;
        double server_tau;
        double fedprox_mu;              /* sent to devices; 0: off */

        /* Servers: the model and its checkpoints, the device port's limit. */
        char *model_path;
        uint32_t checkpoint_keep;
        uint32_t max_request_size_mb;
        bool durable_updates;           /* the update log (server-updates.c) */

        /* What operators look at (docs/operations.md). */
        char *metrics_file;             /* scheduler: JSON line per iteration; NULL: <state dir>/metrics.json */
        char *status_page_dir;          /* scheduler: the status page's files; NULL: PKGDATADIR/status */
        uint32_t metrics_port;          /* server: GET /metrics; 0: off */
        char *metrics_ip;               /* server: its address; NULL: see conf_metrics_ip() */

        /* The file's "recovery" section (MindSpore's; not command-line options):
         * where the databases are. Without it, the state directory. */
        uint32_t recovery_storage_type;         /* 0: no section, 1: an SQLite file */
        char *recovery_file_path;               /* storge_file_path (or storage_file_path): the servers' */
        char *scheduler_storage_file_path;      /* the scheduler's */

        /* Trust between the nodes and towards devices and operators (security.md):
         * TLS on every port, or (TLS off) a shared secret proven at connection. */
        bool enable_ssl;
        char *cluster_secret_file;
        SslConfig ssl;
} FlConfig;

#define DEFAULT_SCHEDULER_PORT 6667
#define DEFAULT_MANAGE_PORT 11202
#define DEFAULT_FL_SERVER_PORT 6668
#define DEFAULT_NODE_TIMEOUT_SEC 30
#define DEFAULT_STATE_DIR LOCALSTATEDIR "/lib/flcluster"
#define DEFAULT_STATUS_PAGE_DIR PKGDATADIR "/status"
#define CONF_FILE_MAX (1024 * 1024)

/* The number of accepted updates that ends an iteration:
 * ceil(start_fl_job_threshold * update_model_ratio), at least 1. */
uint32_t conf_update_threshold(const FlConfig *c);

int conf_init(FlConfig *c);
void conf_done(FlConfig *c);

/* Sets one key from its textual form, as given on the command line. */
int conf_set(FlConfig *c, const char *key, const char *value);
/* Sets one key from a JSON value, checking its type and range; on refusal a
 * message naming the key is put in error (nothing is logged). */
int conf_apply_json_value(FlConfig *c, const char *key, json_object *value, char *error, size_t size);
/* Applies a JSON object, as found in a configuration file. */
int conf_apply_json_text(FlConfig *c, const char *text, const char *origin);
int conf_load_file(FlConfig *c, const char *path);

/* Parses argv: the configuration file first, then every option over it.
 * Returns 0 to go on, 1 when --help or --version was answered, -EINVAL
 * after logging what is wrong with the command line or the file. */
int conf_parse_argv(FlConfig *c, int argc, char *argv[], ConfRole role,
                    const char *program, const char *summary);

void conf_help(FILE *f, ConfRole role, const char *program, const char *summary);

/* The state directory: --state_dir, else $STATE_DIRECTORY (first entry), else
 * the compiled-in default. */
const char *conf_state_dir(const FlConfig *c);

/* The recovery section's storage_type for an SQLite file, the only one. */
#define CONF_RECOVERY_STORAGE_FILE 1

/* Sets the recovery section from its JSON object (the value of "recovery");
 * on refusal a message naming the key is put in error. */
int conf_apply_recovery(FlConfig *c, json_object *section, char *error, size_t size);

/* Sets the ssl section from its JSON object (conf-ssl.c); on refusal a
 * message naming the key is put in error. */
int conf_apply_ssl(FlConfig *c, json_object *section, char *error, size_t size);
void conf_ssl_done(SslConfig *s);

/* The scheduler's database: recovery.scheduler_storage_file_path, else
 * <state dir>/scheduler.db. */
int conf_scheduler_db_path(const FlConfig *c, char **ret);
/* A server's database: the recovery file with the port before its extension
 * (/d/recovery.db, 6668 -> /d/recovery-6668.db), so that the servers of one
 * host sharing one file keep one database each; else <state dir>/server-<port>.db. */
int conf_server_db_path(const FlConfig *c, uint16_t port, char **ret);
/* <dir>/<stem>-<port><ext>: the extension is the last dot of the file name
 * and what follows, unless the name starts with it. */
int conf_path_with_port(const char *path, uint16_t port, char **ret);

/* The scheduler's metrics file: metrics_file, else <state dir>/metrics.json. */
int conf_metrics_file_path(const FlConfig *c, char **ret);
/* The status page's directory: status_page_dir, else the installed one. */
const char *conf_status_page_dir(const FlConfig *c);
/* Where a server serves GET /metrics: metrics_ip, else the advertised
 * address (as the device and peer ports). */
const char *conf_metrics_ip(const FlConfig *c, const char *advertised);

/* Heartbeats go out often enough that node_timeout spans three of them. */
uint64_t conf_heartbeat_usec(const FlConfig *c);
