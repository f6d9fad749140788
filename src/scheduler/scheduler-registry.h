/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "cluster-state.h"
#include "macro.h"
#include "util.h"

/* The node registry: who is in the cluster, with which rank, and whether it
 * is alive. Pure bookkeeping, no I/O, so the rules are unit-tested alone:
 *
 * - A returning node id gets its previous rank; a new one the lowest rank
 *   below server_num that no known node holds.
 * - A node id whose previous incarnation is still connected is refused
 *   (-EADDRINUSE); a new node when every rank is taken is refused (-EUSERS).
 * - "alive" means heard from within node_timeout. A node whose connection
 *   dropped stays alive until then, so a restart does not flap the state. */

#define ADDRESS_MAX 64

typedef struct Node {
        char node_id[NODE_ID_MAX];
        uint32_t rank;
        char address[ADDRESS_MAX];
        uint32_t fl_server_port;
        uint32_t peer_port;             /* all-reduce connections from peers */
        uint32_t pid;
        bool alive;
        bool connected;
        bool leaving;                   /* named by a scale-in */
        bool in_sync;                   /* holds the cluster's model (WIRE_SYNCED) */
        bool replayed;                  /* named its updates since registering (WIRE_REPLAYED) */
        uint64_t last_seen_usec;        /* CLOCK_MONOTONIC */
        void *link;                     /* the connection, while connected */
} Node;

typedef struct Registry {
        Node **nodes;
        size_t n_nodes;
        uint32_t server_num;
} Registry;

void registry_init(Registry *r, uint32_t server_num);
void registry_done(Registry *r);

Node *registry_find(const Registry *r, const char *node_id);
Node *registry_find_rank(const Registry *r, uint32_t rank);

/* Admits a registering server. *ret_returning tells whether it was known. */
int registry_admit(Registry *r, const char *node_id, const char *address, uint32_t fl_server_port,
                   uint32_t pid, uint64_t now_usec, Node **ret, bool *ret_returning);

/* Adds a node as loaded from the store (not connected, alive until proven
 * otherwise). -EEXIST for a duplicate id or rank. */
int registry_restore(Registry *r, const char *node_id, uint32_t rank, const char *address,
                     uint32_t fl_server_port, uint32_t pid, uint64_t now_usec, Node **ret);

int registry_remove(Registry *r, const char *node_id);

/* Marks dead every node not heard from within timeout; returns how many
 * changed (their pointers in changed[], which holds n_nodes entries). */
size_t registry_expire(Registry *r, uint64_t now_usec, uint64_t timeout_usec, Node **changed);

size_t registry_alive_count(const Registry *r);

/* STARTING while ranks are still free, NODE_TIMEOUT while a known node is
 * dead, READY when server_num nodes are alive. */
ClusterState registry_state(const Registry *r);

/* Nodes sorted by rank, for listings. The array is owned by the registry
 * and valid until the next change. */
Node *const *registry_sorted(Registry *r);
