/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "server-members.h"

void server_members_init(ServerMembers *v) {
        *v = (ServerMembers) { .cluster_state = _CLUSTER_STATE_INVALID };
}

void server_members_done(ServerMembers *v) {
        for (size_t i = 0; i < v->n_members; i++) {
                free(v->members[i].node_id);
                free(v->members[i].address);
        }
        free(v->members);
        server_members_init(v);
}

static int member_parse(json_object *o, ServerMember *ret) {
        const char *node_id, *address;
        ServerMember m = {};

        if (!json_object_is_type(o, json_type_object) ||
            json_get_u32(o, "rank", &m.rank) < 0 ||
            json_get_string(o, "node_id", &node_id) < 0 ||
            json_get_string(o, "address", &address) < 0 ||
            json_get_u32(o, "fl_server_port", &m.fl_server_port) < 0 ||
            json_get_bool(o, "alive", &m.alive) < 0)
                return -EBADMSG;
        /* Optional: schedulers before elastic scaling do not send it. */
        if (json_object_object_get_ex(o, "leaving", NULL) && json_get_bool(o, "leaving", &m.leaving) < 0)
                return -EBADMSG;
        m.node_id = strdup(node_id);
        m.address = strdup(address);
        if (!m.node_id || !m.address) {
                free(m.node_id);
                free(m.address);
                return -ENOMEM;
        }
        *ret = m;
        return 0;
}

int server_members_parse(json_object *o, ServerMembers *ret) {
        _cleanup_(server_members_done) ServerMembers v = { .cluster_state = _CLUSTER_STATE_INVALID };
        json_object *array;
        const char *state;
        size_t n;
        int r;

        if (!o ||
            json_get_string(o, "cluster_state", &state) < 0 ||
            json_get_u32(o, "server_num", &v.server_num) < 0 ||
            !json_object_object_get_ex(o, "members", &array) ||
            !json_object_is_type(array, json_type_array))
                return -EBADMSG;
        v.cluster_state = cluster_state_from_string(state);
        if (v.cluster_state < 0)
                return -EBADMSG;

        n = json_object_array_length(array);
        if (n > SERVER_MEMBERS_MAX)
                return -EBADMSG;
        v.members = calloc(MAX(n, (size_t) 1), sizeof *v.members);
        if (!v.members)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                r = member_parse(json_object_array_get_idx(array, i), &v.members[i]);
                if (r < 0)
                        return r;
                v.n_members++;
        }

        *ret = v;
        server_members_init(&v);
        return 0;
}

size_t server_members_alive(const ServerMembers *v) {
        size_t n = 0;

        for (size_t i = 0; i < v->n_members; i++)
                n += v->members[i].alive;
        return n;
}

const ServerMember *server_members_find(const ServerMembers *v, const char *node_id) {
        for (size_t i = 0; i < v->n_members; i++)
                if (streq(v->members[i].node_id, node_id))
                        return &v->members[i];
        return NULL;
}

void server_members_log_changes(const ServerMembers *old, const ServerMembers *new) {
        if (old->cluster_state != new->cluster_state) {
                char field[64];

                snprintf(field, sizeof field, "FL_CLUSTER_STATE=%s", cluster_state_to_string(new->cluster_state));
                log_struct(LOG_INFO, FIELDS(field), "Cluster state %s -> %s (%zu of %u servers alive).",
                           strna(cluster_state_to_string(old->cluster_state)),
                           cluster_state_to_string(new->cluster_state), server_members_alive(new), new->server_num);
        } else if (old->server_num != new->server_num)
                log_info("The cluster now has %u servers (was %u).", new->server_num, old->server_num);

        /* The first view lists everyone: worth a debug line each, not more. */
        int level = old->cluster_state == _CLUSTER_STATE_INVALID ? LOG_DEBUG : LOG_INFO;

        for (size_t i = 0; i < new->n_members; i++) {
                const ServerMember *m = &new->members[i], *was = server_members_find(old, m->node_id);

                if (!was)
                        log_full(level, "Server %s (rank %u, %s:%u) %s%s.", m->node_id, m->rank, m->address,
                                 m->fl_server_port, level == LOG_DEBUG ? "is a member" : "joined",
                                 m->alive ? "" : ", not alive");
                else if (was->rank != m->rank)
                        log_info("Server %s moved from rank %u to rank %u.", m->node_id, was->rank, m->rank);
                else if (was->alive != m->alive)
                        log_info("Server %s (rank %u, %s:%u) %s.", m->node_id, m->rank, m->address,
                                 m->fl_server_port, m->alive ? "is alive again" : "is not alive");
                else if (was->leaving != m->leaving)
                        log_info("Server %s (rank %u) %s.", m->node_id, m->rank,
                                 m->leaving ? "is leaving the cluster (scale-in)" : "is no longer leaving");
        }
        for (size_t i = 0; i < old->n_members; i++)
                if (!server_members_find(new, old->members[i].node_id))
                        log_info("Server %s (rank %u) left the cluster.", old->members[i].node_id, old->members[i].rank);
}
