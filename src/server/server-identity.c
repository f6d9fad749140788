/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "server-identity.h"
#include "util.h"

#define NODE_ID_FILE_MAX 4096

static int node_id_suffixed(const char *id, unsigned index, unsigned count, char **ret) {
        char *s;

        if (count <= 1)
                s = strdup(id);
        else if (asprintf(&s, "%s-%u", id, index) < 0)
                s = NULL;
        if (!s)
                return -ENOMEM;
        if (!node_id_is_valid(s)) {
                free(s);
                return -ENAMETOOLONG;
        }
        *ret = s;
        return 0;
}

static int node_id_load(const char *path, char **ret) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_full_file(path, &text, &size, NODE_ID_FILE_MAX);
        if (r < 0)
                return r;
        while (size > 0 && isspace((unsigned char) text[size - 1]))
                text[--size] = '\0';
        if (!node_id_is_valid(text))
                return -EBADMSG;
        *ret = TAKE_PTR(text);
        return 0;
}

static int node_id_create(const char *state_dir, const char *path, char **ret) {
        char uuid[UUID_STRING_MAX], line[UUID_STRING_MAX + 1];
        char *s;
        int r;

        r = mkdir_p(state_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create the state directory %s: %m", state_dir);
        r = uuid_generate_string(uuid);
        if (r < 0)
                return log_error_errno(r, "Failed to generate a node id: %m");
        snprintf(line, sizeof line, "%s\n", uuid);
        r = write_file_atomic(path, line);
        if (r < 0)
                return log_error_errno(r, "Failed to keep the node id in %s: %m", path);
        s = strdup(uuid);
        if (!s)
                return log_oom();
        log_info("Generated the node id %s, kept in %s.", s, path);
        *ret = s;
        return 0;
}

int server_identity_node_id(const char *explicit_id, const char *env_id, const char *state_dir,
                            uint16_t port, unsigned index, unsigned count, char **ret) {
        _cleanup_free_ char *path = NULL;
        const char *given = explicit_id ?: (isempty(env_id) ? NULL : env_id);
        int r;

        if (given) {
                if (!node_id_is_valid(given))
                        return log_error_errno(-EINVAL, "Invalid node id '%s'%s (use 1-127 letters, digits or -_.:@).",
                                               given, explicit_id ? "" : " in $MS_NODE_ID");
                r = node_id_suffixed(given, index, count, ret);
                if (r == -ENAMETOOLONG)
                        return log_error_errno(r, "The node id '%s' is too long to add the suffix -%u.", given, index);
                return r < 0 ? log_oom() : 0;
        }

        if (asprintf(&path, "%s/node-id-%u", state_dir, port) < 0)
                return log_oom();
        r = node_id_load(path, ret);
        if (r == -ENOENT)
                return node_id_create(state_dir, path, ret);
        if (r == -EBADMSG)
                return log_error_errno(r, "The file %s holds no valid node id; remove it (with the server "
                                       "stopped) to join as a new node.", path);
        if (r < 0)
                return log_error_errno(r, "Failed to read the node id from %s: %m", path);
        return 0;
}

static bool ipv4_is_loopback(const char *s) {
        struct in_addr a;

        return s && inet_pton(AF_INET, s, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

static bool ip_is_valid(const char *s) {
        struct in6_addr a;

        return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

int server_identity_address(const char *advertise_ip, const char *scheduler_ip, char **ret) {
        char buf[INET_ADDRSTRLEN];
        const char *chosen;
        char *s;
        int r;

        if (advertise_ip) {
                if (!ip_is_valid(advertise_ip))
                        return log_error_errno(-EINVAL, "Invalid advertise_ip '%s': not an IPv4 or IPv6 address.",
                                               advertise_ip);
                chosen = advertise_ip;
        } else if (ipv4_is_loopback(scheduler_ip))
                chosen = "127.0.0.1";
        else {
                r = first_non_loopback_ipv4(buf, sizeof buf);
                if (r < 0)
                        return log_error_errno(r, "Found no non-loopback IPv4 address to advertise (%m); "
                                               "set one with --advertise_ip.");
                chosen = buf;
        }
        s = strdup(chosen);
        if (!s)
                return log_oom();
        *ret = s;
        return 0;
}

static bool ip_is_wildcard(const char *s) {
        struct in6_addr a6;
        struct in_addr a;

        if (inet_pton(AF_INET, s, &a) == 1)
                return a.s_addr == htonl(INADDR_ANY);
        return inet_pton(AF_INET6, s, &a6) == 1 && IN6_IS_ADDR_UNSPECIFIED(&a6);
}

static bool ip_equal(const char *x, const char *y) {
        struct in6_addr a, b;

        if (inet_pton(AF_INET, x, &a) == 1)
                return inet_pton(AF_INET, y, &b) == 1 && memcmp(&a, &b, sizeof(struct in_addr)) == 0;
        return inet_pton(AF_INET6, x, &a) == 1 && inet_pton(AF_INET6, y, &b) == 1 && memcmp(&a, &b, sizeof a) == 0;
}

const char *server_identity_bind_address(const char *option, const char *value, const char *advertised) {
        if (!value)
                return advertised;
        if (!ip_is_wildcard(value) && !ip_equal(value, advertised))
                log_warning("%s=%s is not the advertised address %s: peers and flctl, which use the advertised "
                            "one, will not reach this listener unless %s routes to it.", option, value, advertised,
                            advertised);
        return value;
}
