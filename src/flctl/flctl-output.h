/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "flctl-reply.h"
#include "model.h"

/* What flctl prints, as strings (each ends in a newline) so that the unit
 * tests see exactly what an operator or a script would. The JSON keeps the
 * REST API's field names and types (rank_id a string) whichever backend
 * answered, so scripts need not care how flctl reached the scheduler. */

int nodes_format_table(const NodeList *l, char **ret);
int nodes_format_json(const NodeList *l, char **ret);

int stopped_format_lines(const NodeList *l, char **ret);
int stopped_format_json(const NodeList *l, char **ret);

int state_format_json(const char *state, char **ret);

/* {"message":...}: what the verbs that change the cluster print with --json. */
int message_format_json(const char *message, char **ret);

/* token create --json: {"token":...,"role":...,"file":...}. */
int token_format_json(const char *token, const char *role, const char *file, char **ret);

/* instance show: the job as the scheduler sent it (REST's "result"), or a
 * KEY VALUE table in the scheduler's order, nested objects (the pending
 * job) flattened to "pending.KEY". */
int instance_format_json(json_object *instance, char **ret);
int instance_format_table(json_object *instance, char **ret);

int model_format_line(const char *path, const char *url, const Model *m, char **ret);
int model_format_json(const char *path, const char *url, const Model *m, char **ret);
