/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "cluster-state.h"
#include "macro.h"

/* The cluster as the scheduler last described it (WIRE_MEMBERS). */

typedef struct ServerMember {
        uint32_t rank;
        char *node_id;
        char *address;
        uint32_t fl_server_port;
        bool alive;
        bool leaving;                   /* named in a scale-in ("leaving", false when absent) */
} ServerMember;

typedef struct ServerMembers {
        ClusterState cluster_state;     /* _CLUSTER_STATE_INVALID: not known yet */
        uint32_t server_num;
        ServerMember *members;
        size_t n_members;
} ServerMembers;

#define SERVER_MEMBERS_MAX 65536U

void server_members_init(ServerMembers *v);
void server_members_done(ServerMembers *v);
/* -EBADMSG when a required key is missing or mistyped, or the state unknown. */
int server_members_parse(json_object *o, ServerMembers *ret);
size_t server_members_alive(const ServerMembers *v);
const ServerMember *server_members_find(const ServerMembers *v, const char *node_id);
/* Logs what changed from old to new: the state, joins, leaves, liveness. */
void server_members_log_changes(const ServerMembers *old, const ServerMembers *new);
