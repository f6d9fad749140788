/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "macro.h"

/* What the scheduler answers, in one shape for both backends. Everything in
 * here came from another process, possibly another host: it is validated on
 * the way in, so the printing code may trust it (ASCII, bounded, no control
 * characters). */

/* A node as ListNodes / GET /nodes describe it; Finish and POST /finish use
 * the same struct without address, port and alive. */
typedef struct NodeInfo {
        char *node_id;
        uint32_t rank;          /* FL_BUS_RANK_NONE: no rank (yet), or the scheduler */
        char *role;
        char *address;          /* NULL when the reply does not carry one */
        uint16_t port;          /* 0: unknown */
        bool alive;
        uint32_t pid;           /* 0: unknown */
} NodeInfo;

typedef struct NodeList {
        NodeInfo *nodes;
        size_t n;
} NodeList;

void node_list_done(NodeList *l);

/* Validates and copies; -EBADMSG when a field is not fit to print. */
int node_list_add(NodeList *l, const char *node_id, uint32_t rank, const char *role,
                  const char *address, uint16_t port, bool alive, uint32_t pid);

void node_list_sort_by_rank(NodeList *l);
void node_list_move_scheduler_last(NodeList *l);

/* REST rank_id: a decimal string, "" for none. */
int rank_from_string(const char *s, uint32_t *ret);
bool state_name_is_valid(const char *s);

/* Bodies of successful REST replies; -EBADMSG on any missing or mistyped field. */
int nodes_from_json(json_object *reply, NodeList *ret);
int stopped_from_json(json_object *reply, NodeList *ret);
int state_from_json(json_object *reply, char **ret);
/* REST's "result" of GET /queryInstance (a new reference), or the text of
 * D-Bus QueryInstance: a JSON object either way. */
int instance_from_json(json_object *reply, json_object **ret);
int instance_from_string(const char *text, json_object **ret);

/* The reply's "message" made safe to print: -EBADMSG when it has none. */
int message_from_json(json_object *reply, char **ret);

/* A remote error message made safe for a terminal: control characters become
 * blanks and the length is bounded. NULL only when out of memory. */
char *message_sanitize(const char *s);
