/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "fl-bus.h"
#include "flctl-reply.h"
#include "json-util.h"
#include "util.h"

#define ROLE_MAX 32
#define STATE_MAX 64
#define ADDRESS_MAX 256         /* a DNS name (253) or any IP literal fits */
#define MESSAGE_MAX 1024

void node_list_done(NodeList *l) {
        for (size_t i = 0; i < l->n; i++) {
                free(l->nodes[i].node_id);
                free(l->nodes[i].role);
                free(l->nodes[i].address);
        }
        free(l->nodes);
        *l = (NodeList) {};
}

/* Roles and states are MindSpore's upper-case identifiers. */
static bool identifier_is_valid(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n == 0 || n >= max)
                return false;
        return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

/* Printable ASCII without blanks, so that table columns stay columns. */
static bool address_is_valid(const char *s) {
        size_t n = strlen(s);

        if (n >= ADDRESS_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] <= ' ' || s[i] > '~')
                        return false;
        return true;
}

bool state_name_is_valid(const char *s) {
        return s && identifier_is_valid(s, STATE_MAX);
}

int node_list_add(NodeList *l, const char *node_id, uint32_t rank, const char *role,
                  const char *address, uint16_t port, bool alive, uint32_t pid) {
        _cleanup_free_ char *id_copy = NULL, *role_copy = NULL, *address_copy = NULL;
        NodeInfo *grown;

        if (!node_id_is_valid(node_id) || !role || !identifier_is_valid(role, ROLE_MAX) ||
            (address && !address_is_valid(address)))
                return -EBADMSG;

        id_copy = strdup(node_id);
        role_copy = strdup(role);
        if (!id_copy || !role_copy)
                return -ENOMEM;
        if (address) {
                address_copy = strdup(address);
                if (!address_copy)
                        return -ENOMEM;
        }

        grown = reallocarray(l->nodes, l->n + 1, sizeof *grown);
        if (!grown)
                return -ENOMEM;
        l->nodes = grown;
        l->nodes[l->n++] = (NodeInfo) {
                .node_id = TAKE_PTR(id_copy),
                .rank = rank,
                .role = TAKE_PTR(role_copy),
                .address = TAKE_PTR(address_copy),
                .port = port,
                .alive = alive,
                .pid = pid,
        };
        return 0;
}

/* Unranked nodes (FL_BUS_RANK_NONE) sort last by value; the node id makes
 * the order total, so two runs print the same table. */
static int node_compare_by_rank(const void *a, const void *b) {
        const NodeInfo *x = a, *y = b;

        if (x->rank != y->rank)
                return x->rank < y->rank ? -1 : 1;
        return strcmp(x->node_id, y->node_id);
}

void node_list_sort_by_rank(NodeList *l) {
        if (l->n > 1)
                qsort(l->nodes, l->n, sizeof *l->nodes, node_compare_by_rank);
}

/* Keeps the scheduler's stop order otherwise (qsort is not stable), only
 * making sure the scheduler's own line comes last as promised. */
void node_list_move_scheduler_last(NodeList *l) {
        for (size_t i = 0; i + 1 < l->n; i++) {
                NodeInfo scheduler = l->nodes[i];

                if (!streq(scheduler.role, "SCHEDULER"))
                        continue;
                memmove(l->nodes + i, l->nodes + i + 1, (l->n - i - 1) * sizeof *l->nodes);
                l->nodes[l->n - 1] = scheduler;
                return;
        }
}

int rank_from_string(const char *s, uint32_t *ret) {
        if (isempty(s)) {
                *ret = FL_BUS_RANK_NONE;
                return 0;
        }
        return safe_atou32(s, ret) < 0 ? -EBADMSG : 0;
}

/* One entry of "node_ids" (full) or of "stopped" (!full). */
static int node_from_json(json_object *o, bool full, NodeList *l) {
        const char *node_id, *rank_id, *role, *address = NULL;
        uint32_t rank, pid, port = 0;
        bool alive = false;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (json_get_string(o, "node_id", &node_id) < 0 ||
            json_get_string(o, "rank_id", &rank_id) < 0 ||
            json_get_string(o, "role", &role) < 0 ||
            json_get_u32(o, "pid", &pid) < 0 ||
            rank_from_string(rank_id, &rank) < 0)
                return -EBADMSG;
        if (full &&
            (json_get_string(o, "address", &address) < 0 ||
             json_get_u32(o, "fl_server_port", &port) < 0 || port > UINT16_MAX ||
             json_get_bool(o, "alive", &alive) < 0))
                return -EBADMSG;

        return node_list_add(l, node_id, rank, role, address, (uint16_t) port, alive, pid);
}

static int node_array_from_json(json_object *reply, const char *key, bool full, NodeList *ret) {
        _cleanup_(node_list_done) NodeList l = {};
        json_object *array;
        size_t n;
        int r;

        if (!json_object_object_get_ex(reply, key, &array) || !json_object_is_type(array, json_type_array))
                return -EBADMSG;
        n = json_object_array_length(array);
        for (size_t i = 0; i < n; i++) {
                r = node_from_json(json_object_array_get_idx(array, i), full, &l);
                if (r < 0)
                        return r;
        }
        *ret = l;
        l = (NodeList) {};
        return 0;
}

int nodes_from_json(json_object *reply, NodeList *ret) {
        return node_array_from_json(reply, "node_ids", true, ret);
}

int stopped_from_json(json_object *reply, NodeList *ret) {
        return node_array_from_json(reply, "stopped", false, ret);
}

int state_from_json(json_object *reply, char **ret) {
        const char *state;
        char *copy;

        if (json_get_string(reply, "cluster_state", &state) < 0 || !state_name_is_valid(state))
                return -EBADMSG;
        copy = strdup(state);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

int instance_from_json(json_object *reply, json_object **ret) {
        json_object *result;

        if (!json_object_object_get_ex(reply, "result", &result) || !json_object_is_type(result, json_type_object))
                return -EBADMSG;
        *ret = json_object_get(result);
        return 0;
}

int instance_from_string(const char *text, json_object **ret) {
        return json_parse_object(text, strlen(text), ret);     /* -EBADMSG or -ENOMEM */
}

int message_from_json(json_object *reply, char **ret) {
        const char *message;
        char *copy;

        if (json_get_string(reply, "message", &message) < 0 || isempty(message))
                return -EBADMSG;
        copy = message_sanitize(message);
        if (!copy)
                return -ENOMEM;
        *ret = copy;
        return 0;
}

char *message_sanitize(const char *s) {
        size_t n = strnlen(s, MESSAGE_MAX);
        char *copy;

        /* Cut before a UTF-8 continuation byte rather than in the middle of a character. */
        if (s[n] != '\0')
                while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                        n--;
        copy = strndup(s, n);
        if (!copy)
                return NULL;
        /* A remote peer must not drive the operator's terminal (escape sequences). */
        for (char *p = copy; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f)
                        *p = ' ';
        return copy;
}
