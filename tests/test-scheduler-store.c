/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "scheduler-store.h"
#include "store.h"

static char tmpdir[] = "/tmp/test-store-XXXXXX";
static char path[300];

static void test_roundtrip_across_reopen(void **state) {
        sqlite3 *db;
        Registry r;
        Node *n;
        bool returning;
        ClusterState s = _CLUSTER_STATE_INVALID;
        uint32_t server_num = 0;

        assert_int_equal(scheduler_store_open(&db, path), 0);
        assert_int_equal(scheduler_store_load_cluster(db, &s, &server_num), 0);
        assert_int_equal(s, _CLUSTER_STATE_INVALID);   /* nothing saved yet */

        registry_init(&r, 3);
        assert_int_equal(registry_admit(&r, "alpha", "10.0.0.1", 6668, 11, 0, &n, &returning), 0);
        assert_int_equal(scheduler_store_save_node(db, n), 0);
        assert_int_equal(registry_admit(&r, "beta", "10.0.0.2", 6669, 12, 0, &n, &returning), 0);
        assert_int_equal(scheduler_store_save_node(db, n), 0);
        n->pid = 99;    /* an update, not a second row */
        assert_int_equal(scheduler_store_save_node(db, n), 0);
        assert_int_equal(scheduler_store_save_cluster(db, NODE_TIMEOUT, 3), 0);
        registry_done(&r);
        sqlite3_close_v2(db);

        assert_int_equal(scheduler_store_open(&db, path), 0);
        registry_init(&r, 3);
        assert_int_equal(scheduler_store_load_nodes(db, &r, 0), 0);
        assert_int_equal(r.n_nodes, 2);
        n = registry_find(&r, "beta");
        assert_non_null(n);
        assert_int_equal(n->rank, 1);
        assert_int_equal(n->pid, 99);
        assert_string_equal(n->address, "10.0.0.2");
        assert_int_equal(n->fl_server_port, 6669);
        assert_false(n->connected);
        assert_int_equal(scheduler_store_load_cluster(db, &s, &server_num), 0);
        assert_int_equal(s, NODE_TIMEOUT);
        assert_int_equal(server_num, 3);

        assert_int_equal(scheduler_store_delete_node(db, "alpha"), 0);
        registry_done(&r);
        registry_init(&r, 3);
        assert_int_equal(scheduler_store_load_nodes(db, &r, 0), 0);
        assert_int_equal(r.n_nodes, 1);
        registry_done(&r);
        sqlite3_close_v2(db);
}

static void test_wal_mode(void **state) {
        sqlite3 *db;
        sqlite3_stmt *st;

        assert_int_equal(scheduler_store_open(&db, path), 0);
        assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_string_equal((const char *) sqlite3_column_text(st, 0), "wal");
        sqlite3_finalize(st);
        sqlite3_close_v2(db);
}

static void test_damaged_rows_refused(void **state) {
        sqlite3 *db;
        Registry r;

        assert_int_equal(scheduler_store_open(&db, path), 0);
        assert_int_equal(store_exec(db, "DELETE FROM nodes"), 0);
        assert_int_equal(store_exec(db, "INSERT INTO nodes (node_id, rank, address, fl_server_port, pid, alive) "
                                        "VALUES ('bad id', 0, 'x', 1, 1, 1)"), 0);
        registry_init(&r, 2);
        assert_true(scheduler_store_load_nodes(db, &r, 0) < 0);
        registry_done(&r);

        assert_int_equal(store_exec(db, "DELETE FROM nodes"), 0);
        assert_int_equal(store_exec(db, "INSERT INTO nodes (node_id, rank, address, fl_server_port, pid, alive) "
                                        "VALUES ('ok', 0, 'x', 99999, 1, 1)"), 0);
        registry_init(&r, 2);
        assert_int_equal(scheduler_store_load_nodes(db, &r, 0), -EUCLEAN);
        registry_done(&r);
        assert_int_equal(store_meta_set(db, "cluster_state", "NOT_A_STATE"), 0);
        {
                ClusterState s;
                uint32_t n;
                assert_int_equal(scheduler_store_load_cluster(db, &s, &n), -EUCLEAN);
        }
        sqlite3_close_v2(db);
}

static void test_not_a_database(void **state) {
        char bad[320];
        FILE *f;
        sqlite3 *db = NULL;

        snprintf(bad, sizeof bad, "%s/garbage.db", tmpdir);
        f = fopen(bad, "we");
        assert_non_null(f);
        for (int i = 0; i < 512; i++)
                fputs("this is not an sqlite database ", f);
        fclose(f);
        assert_true(scheduler_store_open(&db, bad) < 0);
        assert_null(db);
}

static int setup(void **state) {
        log_set_max_level(LOG_CRIT);
        if (!mkdtemp(tmpdir))
                return -1;
        snprintf(path, sizeof path, "%s/scheduler.db", tmpdir);
        return 0;
}

static int teardown(void **state) {
        char cmd[300];

        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        return system(cmd);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip_across_reopen),
                cmocka_unit_test(test_wal_mode),
                cmocka_unit_test(test_damaged_rows_refused),
                cmocka_unit_test(test_not_a_database),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
