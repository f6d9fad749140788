/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "scheduler-registry.h"

void registry_init(Registry *r, uint32_t server_num) {
        *r = (Registry) { .server_num = server_num };
}

void registry_done(Registry *r) {
        for (size_t i = 0; i < r->n_nodes; i++)
                free(r->nodes[i]);
        free(r->nodes);
        *r = (Registry) {};
}

Node *registry_find(const Registry *r, const char *node_id) {
        for (size_t i = 0; i < r->n_nodes; i++)
                if (streq(r->nodes[i]->node_id, node_id))
                        return r->nodes[i];
        return NULL;
}

Node *registry_find_rank(const Registry *r, uint32_t rank) {
        for (size_t i = 0; i < r->n_nodes; i++)
                if (r->nodes[i]->rank == rank)
                        return r->nodes[i];
        return NULL;
}

static int registry_free_rank(const Registry *r, uint32_t *ret) {
        for (uint32_t rank = 0; rank < r->server_num; rank++)
                if (!registry_find_rank(r, rank)) {
                        *ret = rank;
                        return 0;
                }
        return -EUSERS;
}

static int node_set(Node *n, const char *address, uint32_t fl_server_port, uint32_t pid) {
        if (strlen(address) >= sizeof n->address)
                return -ENAMETOOLONG;
        strcpy(n->address, address);
        n->fl_server_port = fl_server_port;
        n->pid = pid;
        return 0;
}

static int registry_add(Registry *r, const char *node_id, uint32_t rank, Node **ret) {
        _cleanup_free_ Node *n = NULL;
        Node **a;

        if (!node_id_is_valid(node_id))
                return -EINVAL;
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        a = realloc(r->nodes, (r->n_nodes + 1) * sizeof *a);
        if (!a)
                return -ENOMEM;
        r->nodes = a;
        strcpy(n->node_id, node_id);
        n->rank = rank;
        *ret = n;
        r->nodes[r->n_nodes++] = TAKE_PTR(n);
        return 0;
}

int registry_admit(Registry *r, const char *node_id, const char *address, uint32_t fl_server_port,
                   uint32_t pid, uint64_t now_usec, Node **ret, bool *ret_returning) {
        Node *n = registry_find(r, node_id);
        uint32_t rank;
        int q;

        if (n) {
                if (n->connected)
                        return -EADDRINUSE;
                q = node_set(n, address, fl_server_port, pid);
                if (q < 0)
                        return q;
                *ret_returning = true;
        } else {
                if (!node_id_is_valid(node_id))
                        return -EINVAL;
                if (strlen(address) >= ADDRESS_MAX)
                        return -ENAMETOOLONG;
                q = registry_free_rank(r, &rank);
                if (q < 0)
                        return q;
                q = registry_add(r, node_id, rank, &n);
                if (q < 0)
                        return q;
                (void) node_set(n, address, fl_server_port, pid);
                *ret_returning = false;
        }

        n->alive = true;
        n->connected = true;
        n->last_seen_usec = now_usec;
        *ret = n;
        return 0;
}

int registry_restore(Registry *r, const char *node_id, uint32_t rank, const char *address,
                     uint32_t fl_server_port, uint32_t pid, uint64_t now_usec, Node **ret) {
        Node *n;
        int q;

        if (registry_find(r, node_id) || registry_find_rank(r, rank))
                return -EEXIST;
        if (strlen(address) >= ADDRESS_MAX)
                return -ENAMETOOLONG;
        q = registry_add(r, node_id, rank, &n);
        if (q < 0)
                return q;
        (void) node_set(n, address, fl_server_port, pid);
        n->alive = true;
        n->last_seen_usec = now_usec;
        if (ret)
                *ret = n;
        return 0;
}

int registry_remove(Registry *r, const char *node_id) {
        for (size_t i = 0; i < r->n_nodes; i++)
                if (streq(r->nodes[i]->node_id, node_id)) {
                        free(r->nodes[i]);
                        memmove(r->nodes + i, r->nodes + i + 1, (r->n_nodes - i - 1) * sizeof *r->nodes);
                        r->n_nodes--;
                        return 0;
                }
        return -ENOENT;
}

size_t registry_expire(Registry *r, uint64_t now_usec, uint64_t timeout_usec, Node **changed) {
        size_t n = 0;

        for (size_t i = 0; i < r->n_nodes; i++) {
                Node *node = r->nodes[i];

                if (!node->alive || node->last_seen_usec + timeout_usec > now_usec)
                        continue;
                node->alive = false;
                changed[n++] = node;
        }
        return n;
}

size_t registry_alive_count(const Registry *r) {
        size_t n = 0;

        for (size_t i = 0; i < r->n_nodes; i++)
                if (r->nodes[i]->alive)
                        n++;
        return n;
}

ClusterState registry_state(const Registry *r) {
        size_t alive = registry_alive_count(r);

        if (alive < r->n_nodes)
                return NODE_TIMEOUT;
        if (alive >= r->server_num)
                return CLUSTER_READY;
        return CLUSTER_STARTING;
}

static int node_compare(const void *a, const void *b) {
        const Node *x = *(Node *const *) a, *y = *(Node *const *) b;

        return x->rank < y->rank ? -1 : x->rank > y->rank;
}

Node *const *registry_sorted(Registry *r) {
        qsort(r->nodes, r->n_nodes, sizeof *r->nodes, node_compare);
        return r->nodes;
}
