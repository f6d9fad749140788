/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fl-bus.h"
#include "flctl-output.h"
#include "flctl-table.h"
#include "json-util.h"

/* Big enough for any uint32_t in decimal. */
#define DECIMAL_MAX sizeof("4294967295")

static const char *rank_to_string(uint32_t rank, char buf[static DECIMAL_MAX]) {
        if (rank == FL_BUS_RANK_NONE)
                return NULL;
        snprintf(buf, DECIMAL_MAX, "%" PRIu32, rank);
        return buf;
}

/* 0 means "not known" for ports and pids; a dash says so in a table. */
static const char *nonzero_to_string(uint32_t v, char buf[static DECIMAL_MAX]) {
        if (v == 0)
                return "-";
        snprintf(buf, DECIMAL_MAX, "%" PRIu32, v);
        return buf;
}

int nodes_format_table(const NodeList *l, char **ret) {
        static const char *const headers[] = { "RANK", "NODE-ID", "ROLE", "ADDRESS", "PORT", "ALIVE", "PID" };
        _cleanup_(table_freep) Table *t = NULL;
        int r;

        r = table_new(&t, headers, ELEMENTSOF(headers));
        if (r < 0)
                return r;
        for (size_t i = 0; i < l->n; i++) {
                const NodeInfo *n = l->nodes + i;
                char rank[DECIMAL_MAX], port[DECIMAL_MAX], pid[DECIMAL_MAX];
                const char *cells[] = {
                        rank_to_string(n->rank, rank) ?: "-",
                        n->node_id,
                        n->role,
                        isempty(n->address) ? "-" : n->address,
                        nonzero_to_string(n->port, port),
                        n->alive ? "yes" : "no",
                        nonzero_to_string(n->pid, pid),
                };

                r = table_add_row(t, cells, ELEMENTSOF(cells));
                if (r < 0)
                        return r;
        }
        return table_format(t, ret);
}

/* json-c's adders only fail on allocation; one check per object keeps the
 * builders readable. */
static int json_add(json_object *o, const char *key, json_object *v) {
        if (!v || json_object_object_add(o, key, v) < 0) {
                json_object_put(v);
                return -ENOMEM;
        }
        return 0;
}

static int json_format(json_object *o, char **ret) {
        const char *s;
        char *line;

        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!s || asprintf(&line, "%s\n", s) < 0)
                return -ENOMEM;
        *ret = line;
        return 0;
}

/* A node as REST shows it, keys in the same order: every field for /nodes
 * (full), the four of /finish otherwise. */
static int node_to_json(const NodeInfo *n, bool full, json_object **ret) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        char buf[DECIMAL_MAX];
        const char *rank = rank_to_string(n->rank, buf) ?: "";

        if (!o)
                return -ENOMEM;
        if (full) {
                if (json_add(o, "node_id", json_object_new_string(n->node_id)) < 0 ||
                    json_add(o, "rank_id", json_object_new_string(rank)) < 0 ||
                    json_add(o, "role", json_object_new_string(n->role)) < 0 ||
                    json_add(o, "alive", json_object_new_boolean(n->alive)) < 0 ||
                    json_add(o, "address", json_object_new_string(n->address ?: "")) < 0 ||
                    json_add(o, "fl_server_port", json_object_new_int(n->port)) < 0)
                        return -ENOMEM;
        } else if (json_add(o, "role", json_object_new_string(n->role)) < 0 ||
                   json_add(o, "rank_id", json_object_new_string(rank)) < 0 ||
                   json_add(o, "node_id", json_object_new_string(n->node_id)) < 0)
                return -ENOMEM;
        if (json_add(o, "pid", json_object_new_int64(n->pid)) < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(o);
        return 0;
}

static int node_list_format_json(const NodeList *l, const char *key, bool full, char **ret) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();
        json_object *array;
        int r;

        if (!root)
                return -ENOMEM;
        array = json_object_new_array();
        if (json_add(root, key, array) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++) {
                json_object *node;

                r = node_to_json(l->nodes + i, full, &node);
                if (r < 0)
                        return r;
                if (json_object_array_add(array, node) < 0) {
                        json_object_put(node);
                        return -ENOMEM;
                }
        }
        return json_format(root, ret);
}

int nodes_format_json(const NodeList *l, char **ret) {
        return node_list_format_json(l, "node_ids", true, ret);
}

int stopped_format_json(const NodeList *l, char **ret) {
        return node_list_format_json(l, "stopped", false, ret);
}

int stopped_format_lines(const NodeList *l, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f;

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++) {
                const NodeInfo *n = l->nodes + i;

                fprintf(f, "Stopped %s", n->role);
                if (n->rank != FL_BUS_RANK_NONE)
                        fprintf(f, " rank %" PRIu32, n->rank);
                fprintf(f, " node %s", n->node_id);
                if (n->pid != 0)
                        fprintf(f, " pid %" PRIu32, n->pid);
                fputc('\n', f);
        }
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

int state_format_json(const char *state, char **ret) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();

        if (!root || json_add(root, "cluster_state", json_object_new_string(state)) < 0)
                return -ENOMEM;
        return json_format(root, ret);
}

int message_format_json(const char *message, char **ret) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();

        if (!root || json_add(root, "message", json_object_new_string(message)) < 0)
                return -ENOMEM;
        return json_format(root, ret);
}

int token_format_json(const char *token, const char *role, const char *file, char **ret) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();

        if (!root ||
            json_add(root, "token", json_object_new_string(token)) < 0 ||
            json_add(root, "role", json_object_new_string(role)) < 0 ||
            json_add(root, "file", json_object_new_string(file)) < 0)
                return -ENOMEM;
        return json_format(root, ret);
}

int instance_format_json(json_object *instance, char **ret) {
        return json_format(instance, ret);
}

/* A value for people: strings without quotes, doubles without json-c's 17
 * digits (0.1, not 0.10000000000000001), the rest as JSON. Everything is
 * made safe for a terminal: it came from the scheduler. */
static char *instance_value_to_string(json_object *v) {
        char buf[64];

        switch (json_object_get_type(v)) {
        case json_type_null:
                return strdup("-");
        case json_type_string:
                return message_sanitize(json_object_get_string(v));
        case json_type_double:
                snprintf(buf, sizeof buf, "%.15g", json_object_get_double(v));
                return strdup(buf);
        default:
                return message_sanitize(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                                           JSON_C_TO_STRING_NOSLASHESCAPE) ?: "");
        }
}

static int instance_add_rows(Table *t, const char *prefix, json_object *o, unsigned depth) {
        int r;

        json_object_object_foreach(o, key, value) {
                _cleanup_free_ char *name = NULL, *safe_name = NULL, *text = NULL;

                if (asprintf(&name, "%s%s%s", prefix ?: "", prefix ? "." : "", key) < 0)
                        return -ENOMEM;
                /* Depth is bounded by the JSON parser already; two levels are all
                 * the scheduler sends, deeper ones stay one JSON cell. */
                if (json_object_is_type(value, json_type_object) && json_object_object_length(value) > 0 &&
                    depth < 2) {
                        r = instance_add_rows(t, name, value, depth + 1);
                        if (r < 0)
                                return r;
                        continue;
                }
                text = instance_value_to_string(value);
                safe_name = message_sanitize(name);
                if (!text || !safe_name)
                        return -ENOMEM;
                r = table_add_row(t, (const char *const[]) { safe_name, text }, 2);
                if (r < 0)
                        return r;
        }
        return 0;
}

int instance_format_table(json_object *instance, char **ret) {
        static const char *const headers[] = { "KEY", "VALUE" };
        _cleanup_(table_freep) Table *t = NULL;
        int r;

        r = table_new(&t, headers, ELEMENTSOF(headers));
        if (r < 0)
                return r;
        r = instance_add_rows(t, NULL, instance, 0);
        if (r < 0)
                return r;
        return table_format(t, ret);
}

/* model get: what was written, from where. The URL and the path are ours
 * (built from validated node fields, given on the command line). */
int model_format_line(const char *path, const char *url, const Model *m, char **ret) {
        return asprintf(ret, "Wrote the model from %s (%zu tensors, %zu parameters) to %s\n",
                        url, m->n_tensors, model_total_size(m), path) < 0 ? -ENOMEM : 0;
}

int model_format_json(const char *path, const char *url, const Model *m, char **ret) {
        _cleanup_(json_object_putp) json_object *root = json_object_new_object();

        if (!root ||
            json_add(root, "file", json_object_new_string(path)) < 0 ||
            json_add(root, "url", json_object_new_string(url)) < 0 ||
            json_add(root, "tensors", json_object_new_int64((int64_t) m->n_tensors)) < 0 ||
            json_add(root, "parameters", json_object_new_int64((int64_t) model_total_size(m))) < 0)
                return -ENOMEM;
        return json_format(root, ret);
}
