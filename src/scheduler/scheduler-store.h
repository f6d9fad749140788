/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sqlite3.h>

#include "cluster-state.h"
#include "scheduler-registry.h"

/* The scheduler's database (scheduler.db in the state directory): the node
 * registry and the cluster state. Every change is committed before the
 * scheduler announces it, so a restarted scheduler resumes from here. */

int scheduler_store_open(sqlite3 **ret, const char *path);

int scheduler_store_save_node(sqlite3 *db, const Node *n);
int scheduler_store_delete_node(sqlite3 *db, const char *node_id);
int scheduler_store_clear_nodes(sqlite3 *db);
/* Fills an empty registry from the store. */
int scheduler_store_load_nodes(sqlite3 *db, Registry *r, uint64_t now_usec);

int scheduler_store_save_cluster(sqlite3 *db, ClusterState state, uint32_t server_num);
/* Returns 0 and leaves the outputs untouched when nothing was saved yet. */
int scheduler_store_load_cluster(sqlite3 *db, ClusterState *ret_state, uint32_t *ret_server_num);
