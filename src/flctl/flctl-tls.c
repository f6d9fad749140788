/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flctl-tls.h"
#include "json-util.h"
#include "log.h"
#include "tls-issue.h"
#include "tls.h"
#include "util.h"

/* The group the daemons run as (units/flcluster.sysusers.in): the node's
 * key is made readable to it when flctl runs as root and the group exists. */
#define DAEMON_GROUP "flcluster"
/* Certificates are valid from a little before now: clocks differ. */
#define CLOCK_SKEW_SEC 3600

typedef struct Paths {
        char *ca, *ca_key, *node, *node_key;
} Paths;

static void paths_done(Paths *p) {
        free(p->ca);
        free(p->ca_key);
        free(p->node);
        free(p->node_key);
}

static void strv_freep(char ***p) {
        if (*p)
                for (char **s = *p; *s; s++)
                        free(*s);
        free(*p);
}

static bool host_is_valid(const char *s) {
        unsigned char a[16];

        return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1 || tls_dns_name_is_valid(s);
}

int tls_init_parse_hosts(const char *s, char ***ret, size_t *ret_n) {
        _cleanup_(strv_freep) char **hosts = NULL;
        _cleanup_free_ char *copy = NULL;
        char *state = NULL;
        size_t n = 0;

        if (isempty(s))
                return log_error_errno(-EINVAL, "tls init needs --hosts ADDR[,ADDR...]: the addresses the nodes are "
                                       "reached at. See '%s --help'.", program_invocation_short_name);
        if (s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
                return log_error_errno(-EINVAL, "Invalid --hosts '%s': an empty entry.", s);
        copy = strdup(s);
        hosts = calloc(TLS_INIT_HOSTS_MAX + 1, sizeof *hosts);
        if (!copy || !hosts)
                return log_oom();
        for (char *h = strtok_r(copy, ",", &state); h; h = strtok_r(NULL, ",", &state)) {
                if (n >= TLS_INIT_HOSTS_MAX)
                        return log_error_errno(-EINVAL, "Too many --hosts: at most %u.", TLS_INIT_HOSTS_MAX);
                if (!host_is_valid(h))
                        return log_error_errno(-EINVAL, "Invalid --hosts entry '%s': neither an IP address nor a "
                                               "DNS name.", h);
                for (size_t i = 0; i < n; i++)
                        if (strcasecmp(hosts[i], h) == 0)
                                return log_error_errno(-EINVAL, "--hosts names %s twice.", h);
                hosts[n] = strdup(h);
                if (!hosts[n])
                        return log_oom();
                n++;
        }
        *ret = TAKE_PTR(hosts);
        *ret_n = n;
        return 0;
}

int check_tls_init(const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_(strv_freep) char **hosts = NULL;
        size_t n;

        if (!o->dir)
                return log_error_errno(-EINVAL, "tls init needs --dir DIR: where the files go. See '%s --help'.",
                                       program_invocation_short_name);
        return tls_init_parse_hosts(o->hosts, &hosts, &n);
}

static int path_join(const char *dir, const char *name, char **ret) {
        return asprintf(ret, "%s/%s", dir, name) < 0 ? -ENOMEM : 0;
}

/* Atomically, with its mode (and group) from the start: a key is never
 * readable by others, not even for a moment. */
static int write_private(const char *path, const char *text, mode_t mode, gid_t gid) {
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        size_t n = strlen(text), done = 0;

        if (asprintf(&tmp, "%s.tmp-XXXXXX", path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fchmod(fd, mode) < 0 || (gid != (gid_t) -1 && fchown(fd, (uid_t) -1, gid) < 0))
                goto fail;
        while (done < n) {
                ssize_t k = write(fd, text + done, n - done);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        goto fail;
                }
                done += (size_t) k;
        }
        if (fsync(fd) < 0 || rename(tmp, path) < 0)
                goto fail;
        return 0;

fail:
        {
                int r = -errno;

                (void) unlink(tmp);
                return r;
        }
}

static gid_t daemon_group(void) {
        struct group *g;

        if (geteuid() != 0)
                return (gid_t) -1;
        g = getgrnam(DAEMON_GROUP);
        return g ? g->gr_gid : (gid_t) -1;
}

static int refuse_existing(const char *path, const FlctlOptions *o) {
        if (o->force || access(path, F_OK) < 0)
                return 0;
        return log_error_errno(-EEXIST, "%s exists: flctl tls init does not replace TLS material. Use --force to "
                               "replace it%s.", path, o->keep_ca ? "" : " (all four files), or --keep-ca to issue "
                               "a new node certificate from the CA already there");
}

static void format_date(time_t t, char buf[static 32]) {
        struct tm tm;

        if (!gmtime_r(&t, &tm) || strftime(buf, 32, "%Y-%m-%d", &tm) == 0)
                snprintf(buf, 32, "?");
}

static int print_result(const FlctlOptions *o, const Paths *p, char *const *hosts, size_t n, const TlsIssued *node,
                        gid_t gid) {
        time_t until = gnutls_x509_crt_get_expiration_time(node->crt);
        unsigned char fp[32];
        size_t fp_size = sizeof fp;
        char date[32], hex[2 * sizeof fp + 1] = "";

        format_date(until, date);
        if (gnutls_x509_crt_get_fingerprint(node->crt, GNUTLS_DIG_SHA256, fp, &fp_size) >= 0)
                for (size_t i = 0; i < fp_size; i++)
                        sprintf(hex + 2 * i, "%02x", fp[i]);

        if (o->json) {
                _cleanup_(json_object_putp) json_object *j = json_object_new_object(), *a = json_object_new_array();

                if (!j || !a)
                        return log_oom();
                for (size_t i = 0; i < n; i++)
                        json_object_array_add(a, json_object_new_string(hosts[i]));
                json_object_object_add(j, "ca_cert_path", json_object_new_string(p->ca));
                json_object_object_add(j, "ca_key_path", json_object_new_string(p->ca_key));
                json_object_object_add(j, "server_cert_path", json_object_new_string(p->node));
                json_object_object_add(j, "server_key_path", json_object_new_string(p->node_key));
                json_object_object_add(j, "hosts", json_object_get(a));
                json_object_object_add(j, "not_after", json_object_new_string(date));
                json_object_object_add(j, "sha256", json_object_new_string(hex));
                json_object_object_add(j, "new_ca", json_object_new_boolean(!o->keep_ca));
                puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
                return 0;
        }

        printf("%s in %s:\n", o->keep_ca ? "Issued a node certificate from the CA" : "Made a CA and a node certificate",
               o->dir);
        printf("  ca.pem        the cluster's CA (ssl.ca_cert_path; --cacert of fl-client, flctl, curl)\n");
        printf("  ca-key.pem    the CA's key: only for issuing certificates; keep it off the nodes\n");
        printf("  node.pem      the node certificate (ssl.server_cert_path) for ");
        for (size_t i = 0; i < n; i++)
                printf("%s%s", i > 0 ? ", " : "", hosts[i]);
        printf(", valid until %s\n", date);
        printf("  node-key.pem  its key (ssl.server_key_path), mode 0640%s\n",
               gid != (gid_t) -1 ? ", group " DAEMON_GROUP : "");
        printf("SHA-256 of node.pem: %s\n", hex);
        printf("Configuration: \"enable_ssl\": true, \"ssl\": {\"server_cert_path\": \"%s\", \"server_key_path\": "
               "\"%s\", \"ca_cert_path\": \"%s\"}\n", p->node, p->node_key, p->ca);
        return 0;
}

int verb_tls_init(Backend *b, const FlctlOptions *o, int argc, char *argv[]) {
        _cleanup_(tls_issued_done) TlsIssued ca = {}, node = {};
        _cleanup_(strv_freep) char **hosts = NULL;
        _cleanup_free_ char *ca_pem = NULL, *ca_key_pem = NULL, *node_pem = NULL, *node_key_pem = NULL;
        _cleanup_(paths_done) Paths p = {};
        time_t now = time(NULL);
        gid_t gid = daemon_group();
        char error[512];
        size_t n;
        int r;

        r = tls_init_parse_hosts(o->hosts, &hosts, &n);
        if (r < 0)
                return r;
        if (path_join(o->dir, "ca.pem", &p.ca) < 0 || path_join(o->dir, "ca-key.pem", &p.ca_key) < 0 ||
            path_join(o->dir, "node.pem", &p.node) < 0 || path_join(o->dir, "node-key.pem", &p.node_key) < 0)
                return log_oom();

        if (o->keep_ca) {
                r = tls_issued_load_ca(p.ca, p.ca_key, &ca, error, sizeof error);
                if (r < 0)
                        return log_error_errno(r, "--keep-ca: %s", error);
        } else if ((r = refuse_existing(p.ca, o)) < 0 || (r = refuse_existing(p.ca_key, o)) < 0)
                return r;
        if ((r = refuse_existing(p.node, o)) < 0 || (r = refuse_existing(p.node_key, o)) < 0)
                return r;

        r = mkdir_p(o->dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s: %m", o->dir);
        if (!o->keep_ca) {
                r = tls_issue_ca("flcluster CA", now - CLOCK_SKEW_SEC, now + (time_t) TLS_ISSUE_CA_DAYS * 86400, &ca);
                if (r < 0)
                        return log_error_errno(r, "Failed to make the CA: %m");
        }
        r = tls_issue_node(&ca, hosts, n, now - CLOCK_SKEW_SEC, now + (time_t) TLS_ISSUE_NODE_DAYS * 86400, &node);
        if (r < 0)
                return log_error_errno(r, "Failed to make the node certificate: %m");

        if (tls_issued_cert_pem(&node, &node_pem) < 0 || tls_issued_key_pem(&node, &node_key_pem) < 0 ||
            (!o->keep_ca && (tls_issued_cert_pem(&ca, &ca_pem) < 0 || tls_issued_key_pem(&ca, &ca_key_pem) < 0)))
                return log_oom();

        /* The keys first: a certificate without its key is of no use. */
        if (!o->keep_ca) {
                r = write_private(p.ca_key, ca_key_pem, 0600, (gid_t) -1);
                if (r >= 0)
                        r = write_private(p.ca, ca_pem, 0644, (gid_t) -1);
                if (r < 0)
                        return log_error_errno(r, "Failed to write the CA into %s: %m", o->dir);
        }
        r = write_private(p.node_key, node_key_pem, 0640, gid);
        if (r >= 0)
                r = write_private(p.node, node_pem, 0644, (gid_t) -1);
        explicit_bzero(node_key_pem, strlen(node_key_pem));
        if (ca_key_pem)
                explicit_bzero(ca_key_pem, strlen(ca_key_pem));
        if (r < 0)
                return log_error_errno(r, "Failed to write the node certificate into %s: %m", o->dir);

        return print_result(o, &p, hosts, n, &node, gid);
}
