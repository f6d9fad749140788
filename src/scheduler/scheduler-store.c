/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>

#include "scheduler-store.h"
#include "store.h"

static const char *const migrations[] = {
        "CREATE TABLE nodes ("
        "  node_id TEXT PRIMARY KEY,"
        "  rank INTEGER NOT NULL UNIQUE CHECK (rank >= 0),"
        "  role TEXT NOT NULL DEFAULT 'SERVER',"
        "  address TEXT NOT NULL,"
        "  fl_server_port INTEGER NOT NULL,"
        "  pid INTEGER NOT NULL,"
        "  alive INTEGER NOT NULL)",
        "ALTER TABLE nodes ADD COLUMN peer_port INTEGER NOT NULL DEFAULT 0",
        /* The devices of the running iteration (scheduler-ledger.c). */
        "CREATE TABLE admissions ("
        "  fl_id TEXT PRIMARY KEY,"
        "  data_size INTEGER NOT NULL CHECK (data_size >= 1),"
        "  updated INTEGER NOT NULL)",
        /* Which server holds a counted update, and what it was (exactly-once
         * across crashes: scheduler-iteration.c). */
        "ALTER TABLE admissions ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE admissions ADD COLUMN digest TEXT NOT NULL DEFAULT ''",
};

int scheduler_store_open(sqlite3 **ret, const char *path) {
        return store_open(ret, path, migrations, ELEMENTSOF(migrations));
}

int scheduler_store_save_node(sqlite3 *db, const Node *n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(db, &st,
                          "INSERT INTO nodes (node_id, rank, address, fl_server_port, pid, alive, peer_port) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(node_id) DO UPDATE SET "
                          "rank = excluded.rank, address = excluded.address, "
                          "fl_server_port = excluded.fl_server_port, pid = excluded.pid, "
                          "alive = excluded.alive, peer_port = excluded.peer_port");
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, n->node_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, n->rank);
        sqlite3_bind_text(st, 3, n->address, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, n->fl_server_port);
        sqlite3_bind_int64(st, 5, n->pid);
        sqlite3_bind_int(st, 6, n->alive);
        sqlite3_bind_int64(st, 7, n->peer_port);
        return store_errno(sqlite3_step(st));
}

int scheduler_store_delete_node(sqlite3 *db, const char *node_id) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(db, &st, "DELETE FROM nodes WHERE node_id = ?");
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, node_id, -1, SQLITE_STATIC);
        return store_errno(sqlite3_step(st));
}

int scheduler_store_clear_nodes(sqlite3 *db) {
        return store_exec(db, "DELETE FROM nodes");
}

int scheduler_store_load_nodes(sqlite3 *db, Registry *reg, uint64_t now_usec) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = store_prepare(db, &st, "SELECT node_id, rank, address, fl_server_port, pid, peer_port FROM nodes ORDER BY rank");
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *node_id = (const char *) sqlite3_column_text(st, 0);
                const char *address = (const char *) sqlite3_column_text(st, 2);
                sqlite3_int64 rank = sqlite3_column_int64(st, 1);
                sqlite3_int64 port = sqlite3_column_int64(st, 3);
                sqlite3_int64 pid = sqlite3_column_int64(st, 4);
                sqlite3_int64 peer_port = sqlite3_column_int64(st, 5);
                Node *n;

                /* The file is ours, but a damaged one must not become a damaged registry. */
                if (!node_id || !address || rank < 0 || rank > UINT32_MAX || port < 0 || port > 65535 ||
                    pid < 0 || pid > UINT32_MAX || peer_port < 0 || peer_port > 65535)
                        return -EUCLEAN;
                r = registry_restore(reg, node_id, (uint32_t) rank, address, (uint32_t) port,
                                     (uint32_t) pid, now_usec, &n);
                if (r < 0)
                        return r == -EEXIST ? -EUCLEAN : r;
                /* Alive until proven otherwise: every node gets node_timeout to come back. */
                n->peer_port = (uint32_t) peer_port;
        }
        return store_errno(rc);
}

int scheduler_store_save_cluster(sqlite3 *db, ClusterState state, uint32_t server_num) {
        char buf[16];
        int r;

        r = store_meta_set(db, "cluster_state", cluster_state_to_string(state));
        if (r < 0)
                return r;
        snprintf(buf, sizeof buf, "%u", server_num);
        return store_meta_set(db, "server_num", buf);
}

int scheduler_store_load_cluster(sqlite3 *db, ClusterState *ret_state, uint32_t *ret_server_num) {
        _cleanup_free_ char *state = NULL, *server_num = NULL;
        ClusterState s;
        uint32_t n;
        int r;

        r = store_meta_get(db, "cluster_state", &state);
        if (r < 0)
                return r;
        r = store_meta_get(db, "server_num", &server_num);
        if (r < 0)
                return r;
        if (!state || !server_num)
                return 0;

        s = cluster_state_from_string(state);
        if (s < 0 || safe_atou32(server_num, &n) < 0 || n == 0)
                return -EUCLEAN;
        *ret_state = s;
        *ret_server_num = n;
        return 0;
}
