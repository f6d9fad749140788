/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "fl-model-io.h"
#include "server-store.h"
#include "store.h"
#include "util.h"

typedef struct Fixture {
        char dir[64];
        char path[128];
} Fixture;

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        if (!f)
                return -1;
        strcpy(f->dir, "/tmp/test-server-store-XXXXXX");
        if (!mkdtemp(f->dir))
                return -1;
        snprintf(f->path, sizeof f->path, "%s/server-6668.db", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
        if (system(cmd) != 0)
                return -1;
        free(f);
        return 0;
}

/* A model whose values say which iteration it is, encoded. */
static void model_bytes(uint32_t iteration, uint8_t **ret, size_t *ret_size, char checksum[static MODEL_CHECKSUM_STRING_MAX]) {
        static const char *const names[] = { "fc.weight", "fc.bias" };
        static const size_t sizes[] = { 6, 2 };
        _cleanup_(model_freep) Model *m = NULL;

        assert_int_equal(model_new(&m, names, sizes, 2), 0);
        for (size_t i = 0; i < 6; i++)
                m->tensors[0].data[i] = (float) iteration + (float) i / 8;
        m->tensors[1].data[1] = -(float) iteration;
        model_checksum_string(m, checksum);
        assert_int_equal(fl_model_encode(m, ret, ret_size), 0);
}

static void save(sqlite3 *db, uint32_t iteration, uint32_t keep) {
        _cleanup_free_ uint8_t *buf = NULL;
        char checksum[MODEL_CHECKSUM_STRING_MAX];
        size_t size;

        model_bytes(iteration, &buf, &size, checksum);
        assert_int_equal(server_store_save_checkpoint(db, iteration, buf, size, checksum, NULL, keep), 0);
}

static void test_name(void **state) {
        char name[SERVER_STORE_NAME_MAX];

        server_store_name(name, 6669);
        assert_string_equal(name, "server-6669.db");
}

static void test_empty(void **state) {
        Fixture *f = *state;
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        _cleanup_free_ uint32_t *list = NULL;
        Checkpoint c = {};
        size_t n = 99;

        assert_int_equal(server_store_open(&db, f->path), 0);
        assert_int_equal(server_store_load_newest(db, &c), 0);
        assert_int_equal(server_store_load_checkpoint(db, 1, &c), 0);
        assert_null(c.model);
        assert_int_equal(server_store_list_checkpoints(db, &list, &n), 0);
        assert_int_equal(n, 0);
}

static void test_keep_newest(void **state) {
        Fixture *f = *state;
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        _cleanup_free_ uint32_t *list = NULL;
        _cleanup_(checkpoint_done) Checkpoint c = {};
        _cleanup_(model_freep) Model *m = NULL;
        _cleanup_free_ uint8_t *expected = NULL;
        char checksum[MODEL_CHECKSUM_STRING_MAX];
        size_t n, size;

        assert_int_equal(server_store_open(&db, f->path), 0);
        for (uint32_t i = 1; i <= 5; i++)
                save(db, i, 3);
        assert_int_equal(server_store_list_checkpoints(db, &list, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(list[0], 5);
        assert_int_equal(list[1], 4);
        assert_int_equal(list[2], 3);

        assert_int_equal(server_store_load_checkpoint(db, 2, &c), 0);
        assert_int_equal(server_store_load_newest(db, &c), 1);
        assert_int_equal(c.iteration, 5);
        assert_true(c.created_ms > 0 && c.created_ms <= now_msec_realtime());
        model_bytes(5, &expected, &size, checksum);
        assert_int_equal(c.size, size);
        assert_memory_equal(c.model, expected, size);
        assert_string_equal(c.checksum, checksum);
        assert_int_equal((uintptr_t) c.model % 4, 0);
        assert_int_equal(fl_model_decode(c.model, c.size, &m), 0);
        assert_true(m->tensors[1].data[1] == -5.0f);
        checkpoint_done(&c);

        assert_int_equal(server_store_load_checkpoint(db, 4, &c), 1);
        assert_int_equal(c.iteration, 4);
        checkpoint_done(&c);

        /* A smaller keep prunes in the same save. */
        save(db, 6, 1);
        free(list);
        list = NULL;
        assert_int_equal(server_store_list_checkpoints(db, &list, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(list[0], 6);
}

/* A job started anew writes low iterations after high ones: the last written is the newest. */
static void test_new_job(void **state) {
        Fixture *f = *state;
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        _cleanup_(checkpoint_done) Checkpoint c = {};
        _cleanup_free_ uint32_t *list = NULL;
        size_t n;

        assert_int_equal(server_store_open(&db, f->path), 0);
        for (uint32_t i = 18; i <= 20; i++)
                save(db, i, 3);
        save(db, 1, 3);
        assert_int_equal(server_store_load_newest(db, &c), 1);
        assert_int_equal(c.iteration, 1);
        save(db, 2, 3);
        assert_int_equal(server_store_list_checkpoints(db, &list, &n), 0);
        assert_int_equal(n, 3);
        assert_int_equal(list[0], 2);
        assert_int_equal(list[1], 1);
        assert_int_equal(list[2], 20);
}

static void test_replace_and_reopen(void **state) {
        Fixture *f = *state;
        _cleanup_(checkpoint_done) Checkpoint c = {};
        sqlite3 *db = NULL;
        uint8_t junk[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

        assert_int_equal(server_store_open(&db, f->path), 0);
        save(db, 7, 3);
        /* The same iteration again (an aggregation repeated after a restart) replaces it. */
        assert_int_equal(server_store_save_checkpoint(db, 7, junk, sizeof junk, "0123456789abcdef", NULL, 3), 0);
        assert_int_equal(server_store_save_checkpoint(db, 8, junk, 0, "x", NULL, 3), -EINVAL);
        assert_int_equal(server_store_save_checkpoint(db, 8, junk, sizeof junk, "x", NULL, 0), -EINVAL);
        sqlite3_close_v2(db);

        /* Committed: another open (a restarted server) sees it. */
        assert_int_equal(server_store_open(&db, f->path), 0);
        assert_int_equal(server_store_load_newest(db, &c), 1);
        assert_int_equal(c.iteration, 7);
        assert_int_equal(c.size, sizeof junk);
        assert_string_equal(c.checksum, "0123456789abcdef");
        sqlite3_close_v2(db);
}

static void test_schema_version(void **state) {
        Fixture *f = *state;
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        assert_int_equal(server_store_open(&db, f->path), 0);
        assert_int_equal(store_prepare(db, &st, "PRAGMA user_version"), 0);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), 3);
}

static void corrupt(sqlite3 *db, const char *sql, uint32_t iteration) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        assert_int_equal(store_prepare(db, &st, sql), 0);
        sqlite3_bind_int64(st, 1, iteration);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        assert_int_equal(sqlite3_changes(db), 1);
}

/* Flips a bit of one float of a stored model, in place, with SQL. */
static void flip_value(sqlite3 *db, uint32_t iteration, float value) {
        _cleanup_stmt_ sqlite3_stmt *get = NULL, *put = NULL;
        _cleanup_free_ uint8_t *blob = NULL;
        size_t n, hits = 0;

        assert_int_equal(store_prepare(db, &get, "SELECT model FROM checkpoints WHERE iteration = ?"), 0);
        sqlite3_bind_int64(get, 1, iteration);
        assert_int_equal(sqlite3_step(get), SQLITE_ROW);
        n = (size_t) sqlite3_column_bytes(get, 0);
        blob = malloc(n);
        assert_non_null(blob);
        memcpy(blob, sqlite3_column_blob(get, 0), n);
        for (size_t off = 0; off + sizeof value <= n; off++)
                if (memcmp(blob + off, &value, sizeof value) == 0) {
                        blob[off] ^= 0x10;      /* the low mantissa bits: still a finite float */
                        hits++;
                }
        assert_int_equal(hits, 1);

        assert_int_equal(store_prepare(db, &put, "UPDATE checkpoints SET model = ? WHERE iteration = ?"), 0);
        sqlite3_bind_blob64(put, 1, blob, n, SQLITE_STATIC);
        sqlite3_bind_int64(put, 2, iteration);
        assert_int_equal(sqlite3_step(put), SQLITE_DONE);
}

/* Damaged checkpoints are passed over, newest first, down to none. */
static void test_fallback(void **state) {
        Fixture *f = *state;
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        char problem[160];

        assert_int_equal(server_store_open(&db, f->path), 0);
        for (uint32_t i = 1; i <= 4; i++)
                save(db, i, 5);

        for (uint32_t i = 4; i >= 1; i--) {
                _cleanup_(checkpoint_done) Checkpoint c = {};
                _cleanup_(model_freep) Model *m = NULL;

                assert_int_equal(server_store_load_newest_good(db, f->path, &c, &m), 1);
                assert_int_equal(c.iteration, i);
                assert_non_null(m);
                assert_true(m->tensors[1].data[1] == -(float) i);
                assert_int_equal(checkpoint_verify(&c, NULL, problem, sizeof problem), 0);

                /* Each a different damage. */
                if (i == 4)     /* one value's bits flipped: decodes, but not to its checksum */
                        flip_value(db, i, (float) i + 2.0f / 8);
                else if (i == 3) /* truncated: no longer a FeatureMapList */
                        corrupt(db, "UPDATE checkpoints SET model = substr(model, 1, 12) WHERE iteration = ?", i);
                else if (i == 2) /* garbage in place of the model */
                        corrupt(db, "UPDATE checkpoints SET model = randomblob(length(model)) WHERE iteration = ?", i);
                else             /* not a blob at all (a row the loader refuses) */
                        corrupt(db, "UPDATE checkpoints SET model = X'' WHERE iteration = ?", i);
        }
        {
                _cleanup_(checkpoint_done) Checkpoint c = {};
                Model *m = NULL;

                assert_int_equal(server_store_load_newest_good(db, f->path, &c, &m), 0);
                assert_null(m);
                assert_null(c.model);
        }

        /* The damaged ones stay (for the operator) until a good model replaces one. */
        save(db, 3, 5);
        {
                _cleanup_(checkpoint_done) Checkpoint c = {};
                _cleanup_(model_freep) Model *m = NULL;

                assert_int_equal(server_store_load_newest_good(db, f->path, &c, &m), 1);
                assert_int_equal(c.iteration, 3);
        }
}

static void test_verify(void **state) {
        _cleanup_(checkpoint_done) Checkpoint c = {};
        _cleanup_(model_freep) Model *m = NULL;
        char problem[160] = "";

        model_bytes(9, &c.model, &c.size, c.checksum);
        c.iteration = 9;
        assert_int_equal(checkpoint_verify(&c, &m, problem, sizeof problem), 0);
        assert_non_null(m);
        c.checksum[0] = c.checksum[0] == '0' ? '1' : '0';
        assert_int_equal(checkpoint_verify(&c, NULL, problem, sizeof problem), -EUCLEAN);
        assert_non_null(strstr(problem, "checksum"));
}

/* A state (any FeatureMapList will do here) whose values say which iteration it is. */
static void state_bytes(uint32_t iteration, uint8_t **ret, size_t *ret_size, char checksum[static MODEL_CHECKSUM_STRING_MAX]) {
        static const char *const names[] = { "fedadam/m/fc.weight", "fedadam/v/fc.weight" };
        static const size_t sizes[] = { 6, 6 };
        _cleanup_(model_freep) Model *m = NULL;

        assert_int_equal(model_new(&m, names, sizes, 2), 0);
        m->tensors[0].data[0] = (float) iteration;
        m->tensors[1].data[5] = 0.5f * (float) iteration;
        model_checksum_string(m, checksum);
        assert_int_equal(fl_model_encode(m, ret, ret_size), 0);
}

static void save_with_state(sqlite3 *db, uint32_t iteration, uint32_t keep) {
        _cleanup_free_ uint8_t *buf = NULL, *sbuf = NULL;
        char checksum[MODEL_CHECKSUM_STRING_MAX], schecksum[MODEL_CHECKSUM_STRING_MAX];
        size_t size, ssize;

        model_bytes(iteration, &buf, &size, checksum);
        state_bytes(iteration, &sbuf, &ssize, schecksum);
        assert_int_equal(server_store_save_checkpoint(db, iteration, buf, size, checksum,
                                                      &(CheckpointState) { sbuf, ssize, schecksum }, keep), 0);
}

static size_t count_states(sqlite3 *db) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;

        assert_int_equal(store_prepare(db, &st, "SELECT COUNT(*) FROM optimizer_states"), 0);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        return (size_t) sqlite3_column_int64(st, 0);
}

/* The optimizer's state is stored with its checkpoint, as deep as the
 * checkpoints, rolled back with them, and verified with them. */
static void test_state(void **state) {
        Fixture *f = *state;
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        char problem[160], schecksum[MODEL_CHECKSUM_STRING_MAX];

        assert_int_equal(server_store_open(&db, f->path), 0);
        for (uint32_t i = 1; i <= 4; i++)
                save_with_state(db, i, 3);
        assert_int_equal(count_states(db), 3);
        {
                _cleanup_(checkpoint_done) Checkpoint c = {};
                _cleanup_(model_freep) Model *m = NULL, *st = NULL;
                _cleanup_free_ uint8_t *want = NULL;
                size_t size;

                assert_int_equal(server_store_load_checkpoint(db, 3, &c), 1);
                state_bytes(3, &want, &size, schecksum);
                assert_int_equal(c.state_size, size);
                assert_memory_equal(c.state, want, size);
                assert_string_equal(c.state_checksum, schecksum);
                assert_int_equal((uintptr_t) c.state % 4, 0);
                assert_int_equal(checkpoint_verify_full(&c, &m, &st, problem, sizeof problem), 0);
                assert_true(st->tensors[0].data[0] == 3.0f);
                /* A state that is not its checksum's damages the checkpoint. */
                c.state_checksum[3] = c.state_checksum[3] == 'a' ? 'b' : 'a';
                assert_int_equal(checkpoint_verify(&c, NULL, problem, sizeof problem), -EUCLEAN);
                assert_non_null(strstr(problem, "optimizer state"));
        }

        /* A checkpoint without a state drops the row of its iteration. */
        save(db, 4, 3);
        assert_int_equal(count_states(db), 2);
        {
                _cleanup_(checkpoint_done) Checkpoint c = {};

                assert_int_equal(server_store_load_newest(db, &c), 1);
                assert_int_equal(c.iteration, 4);
                assert_null(c.state);
                assert_string_equal(c.state_checksum, "");
        }

        /* Rolled back: 4 goes, 3 comes again with its state. */
        {
                _cleanup_free_ uint8_t *buf = NULL, *sbuf = NULL;
                _cleanup_(checkpoint_done) Checkpoint c = {};
                char checksum[MODEL_CHECKSUM_STRING_MAX];
                size_t size, ssize;

                model_bytes(3, &buf, &size, checksum);
                state_bytes(3, &sbuf, &ssize, schecksum);
                assert_int_equal(server_store_rollback(db, 4, 3, buf, size, checksum,
                                                       &(CheckpointState) { sbuf, ssize, schecksum }, 3), 0);
                assert_int_equal(server_store_load_newest(db, &c), 1);
                assert_int_equal(c.iteration, 3);
                assert_string_equal(c.state_checksum, schecksum);
        }

        /* A damaged state row: the newest good checkpoint is the one before. */
        corrupt(db, "UPDATE optimizer_states SET state = randomblob(length(state)) WHERE iteration = ?", 3);
        {
                _cleanup_(checkpoint_done) Checkpoint c = {};
                _cleanup_(model_freep) Model *m = NULL;

                assert_int_equal(server_store_load_newest_good(db, f->path, &c, &m), 1);
                assert_int_equal(c.iteration, 2);
                assert_non_null(c.state);
        }
        /* Pruned with its checkpoint. */
        save(db, 5, 1);
        assert_int_equal(count_states(db), 0);
}

/* A file that is not SQLite, or a damaged one, is refused at open; it can be moved aside. */
static void test_not_a_database(void **state) {
        Fixture *f = *state;
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        _cleanup_free_ char *aside = NULL;
        char wal[160];
        FILE *file;

        file = fopen(f->path, "we");
        assert_non_null(file);
        for (int i = 0; i < 512; i++)
                fputs("garbage!", file);
        fclose(file);

        assert_int_equal(server_store_open(&db, f->path), -EUCLEAN);
        assert_null(db);
        /* A -wal beside it goes along (SQLite itself dropped this invalid one at open). */
        snprintf(wal, sizeof wal, "%s-wal", f->path);
        file = fopen(wal, "we");
        assert_non_null(file);
        fputs("stale", file);
        fclose(file);
        assert_int_equal(store_move_aside(f->path, &aside), 0);
        assert_non_null(strstr(aside, ".corrupt-"));
        assert_int_equal(access(f->path, F_OK), -1);
        assert_int_equal(access(wal, F_OK), -1);
        assert_int_equal(access(aside, F_OK), 0);
        snprintf(wal, sizeof wal, "%s-wal", aside);
        assert_int_equal(access(wal, F_OK), 0);

        assert_int_equal(server_store_open(&db, f->path), 0);
        save(db, 1, 3);
}

/* A database whose pages are damaged fails quick_check. */
static void test_damaged_database(void **state) {
        Fixture *f = *state;
        sqlite3 *db = NULL;
        uint8_t page[4096];
        FILE *file;
        long size;

        assert_int_equal(server_store_open(&db, f->path), 0);
        for (uint32_t i = 1; i <= 3; i++)
                save(db, i, 3);
        assert_int_equal(store_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)"), 0);
        sqlite3_close_v2(db);
        db = NULL;

        /* Overwrite every page after the first with garbage: the schema is readable, the tree is not. */
        file = fopen(f->path, "r+e");
        assert_non_null(file);
        assert_int_equal(fseek(file, 0, SEEK_END), 0);
        size = ftell(file);
        assert_true(size > 4096);
        memset(page, 0x5a, sizeof page);
        assert_int_equal(fseek(file, 4096, SEEK_SET), 0);
        for (long off = 4096; off < size; off += 4096)
                assert_int_equal(fwrite(page, 1, sizeof page, file), sizeof page);
        fclose(file);

        assert_int_equal(server_store_open(&db, f->path), -EUCLEAN);
        assert_null(db);
}

typedef struct Seen {
        char fl_ids[8][16];
        size_t n;
} Seen;

static int collect(const char *fl_id, const char *digest, const void *body, size_t size, void *userdata) {
        Seen *s = userdata;

        assert_true(s->n < 8);
        assert_int_equal(size, 5);
        assert_memory_equal(body, fl_id, 2);    /* each body starts with its fl_id */
        strcpy(s->fl_ids[s->n++], fl_id);
        return 0;
}

static void test_update_log(void **state) {
        Fixture *f = *state;
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        _cleanup_stmt_ sqlite3_stmt *put = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        _cleanup_free_ char *path = server_store_updates_path(f->path);
        Seen seen = {};
        size_t size;

        assert_string_equal(path + strlen(path) - strlen(".db-updates"), ".db-updates");
        assert_int_equal(server_store_open_updates(&db, path), 0);
        assert_int_equal(store_begin(db), 0);
        assert_int_equal(server_store_put_update(db, &put, 3, "d1", "00000000000000a1", (const uint8_t *) "d1-v1", 5), 0);
        assert_int_equal(server_store_put_update(db, &put, 3, "d2", "00000000000000b2", (const uint8_t *) "d2-v1", 5), 0);
        /* The same device with a different update is another row: both are named, the scheduler keeps one. */
        assert_int_equal(server_store_put_update(db, &put, 3, "d1", "00000000000000a2", (const uint8_t *) "d1-v2", 5), 0);
        /* The same update again replaces its row. */
        assert_int_equal(server_store_put_update(db, &put, 3, "d2", "00000000000000b2", (const uint8_t *) "d2-v1", 5), 0);
        assert_int_equal(server_store_put_update(db, &put, 2, "d9", "00000000000000c3", (const uint8_t *) "d9-v1", 5), 0);
        assert_int_equal(store_commit(db), 0);

        assert_int_equal(server_store_foreach_update(db, 3, collect, &seen), 0);
        assert_int_equal(seen.n, 3);
        assert_string_equal(seen.fl_ids[0], "d1");     /* in the order they were logged */

        assert_int_equal(server_store_load_update(db, 3, "d1", "00000000000000a2", &body, &size), 1);
        assert_int_equal(size, 5);
        assert_memory_equal(body, "d1-v2", 5);
        assert_int_equal(server_store_load_update(db, 3, "d1", "00000000000000ff", &body, &size), 0);

        assert_int_equal(server_store_delete_update(db, 3, "d1", "00000000000000a1"), 0);
        seen = (Seen) {};
        assert_int_equal(server_store_foreach_update(db, 3, collect, &seen), 0);
        assert_int_equal(seen.n, 2);

        /* A new iteration: the rows of the others go. */
        assert_int_equal(server_store_keep_updates_of(db, 3), 0);
        seen = (Seen) {};
        assert_int_equal(server_store_foreach_update(db, 2, collect, &seen), 0);
        assert_int_equal(seen.n, 0);
        assert_int_equal(server_store_keep_updates_of(db, 4), 0);
        assert_int_equal(server_store_foreach_update(db, 3, collect, &seen), 0);
        assert_int_equal(seen.n, 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_name),
                cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_keep_newest, setup, teardown),
                cmocka_unit_test_setup_teardown(test_new_job, setup, teardown),
                cmocka_unit_test_setup_teardown(test_replace_and_reopen, setup, teardown),
                cmocka_unit_test_setup_teardown(test_schema_version, setup, teardown),
                cmocka_unit_test_setup_teardown(test_fallback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_state, setup, teardown),
                cmocka_unit_test(test_verify),
                cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_database, setup, teardown),
                cmocka_unit_test_setup_teardown(test_update_log, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
