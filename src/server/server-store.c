/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "fl-model-io.h"
#include "log.h"
#include "server-store.h"
#include "store.h"
#include "util.h"

static const char *const migrations[] = {
        /* saved orders the checkpoints by when they were written: a job started
         * anew (newInstance) writes iteration 1 after iteration 20 of the last
         * one, and the newest is the one to keep and to restore. */
        "CREATE TABLE checkpoints ("
        "  iteration INTEGER PRIMARY KEY CHECK (iteration >= 0),"
        "  model BLOB NOT NULL,"
        "  checksum TEXT NOT NULL,"
        "  created_ms INTEGER NOT NULL,"
        "  saved INTEGER NOT NULL)",
        /* The update log moved to a database of its own (below). */
        "DROP TABLE IF EXISTS updates",
        /* The server optimizer's state after each checkpointed model, written
         * in the same transaction and pruned with it. */
        "CREATE TABLE optimizer_states ("
        "  iteration INTEGER PRIMARY KEY CHECK (iteration >= 0),"
        "  state BLOB NOT NULL,"
        "  checksum TEXT NOT NULL)",
};

/* The update log (server-updates.c): every update this server took in the
 * iterations the scheduler has not moved on from, durable before the
 * scheduler counts it. In a file of its own with a rollback journal: a new
 * body is written once, into pages the journal need not save, where WAL
 * would write it twice (the log, then the checkpoint). */
static const char *const update_migrations[] = {
        "CREATE TABLE updates ("
        "  iteration INTEGER NOT NULL,"
        "  fl_id TEXT NOT NULL,"
        "  digest TEXT NOT NULL,"
        "  body BLOB NOT NULL,"
        "  PRIMARY KEY (iteration, fl_id, digest))",
};

void server_store_name(char ret[static SERVER_STORE_NAME_MAX], uint16_t port) {
        snprintf(ret, SERVER_STORE_NAME_MAX, "server-%u.db", port);
}

int server_store_open(sqlite3 **ret, const char *path) {
        /* Whole models go through it: large pages cut the pages, frames and
         * write calls per model by 16. */
        StoreOptions o = { .page_size = SERVER_STORE_PAGE_SIZE };

        return store_open_full(ret, path, &o, migrations, ELEMENTSOF(migrations));
}

int server_store_open_updates(sqlite3 **ret, const char *path) {
        StoreOptions o = { .page_size = SERVER_STORE_PAGE_SIZE, .journal_mode = SERVER_STORE_UPDATES_JOURNAL };

        return store_open_full(ret, path, &o, update_migrations, ELEMENTSOF(update_migrations));
}

char *server_store_updates_path(const char *path) {
        char *p;

        return asprintf(&p, "%s-updates", path) < 0 ? NULL : p;
}

void checkpoint_done(Checkpoint *c) {
        free(c->model);
        free(c->state);
        *c = (Checkpoint) {};
}

/* The state row of a checkpoint: replaced by state, or deleted without one. */
static int save_state_locked(sqlite3 *db, uint32_t iteration, const CheckpointState *state) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        if (!state || !state->bytes)
                r = store_prepare(db, &st, "DELETE FROM optimizer_states WHERE iteration = ?");
        else
                r = store_prepare(db, &st, "INSERT OR REPLACE INTO optimizer_states (iteration, state, checksum) "
                                           "VALUES (?, ?, ?)");
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, iteration);
        if (state && state->bytes) {
                sqlite3_bind_blob64(st, 2, state->bytes, state->size, SQLITE_STATIC);
                sqlite3_bind_text(st, 3, state->checksum, -1, SQLITE_STATIC);
        }
        return store_errno(sqlite3_step(st));
}

static int save_locked(sqlite3 *db, uint32_t iteration, const uint8_t *model, size_t size, const char *checksum,
                       const CheckpointState *state, uint32_t keep) {
        _cleanup_stmt_ sqlite3_stmt *ins = NULL, *del = NULL, *prune = NULL;
        int r;

        r = store_prepare(db, &ins, "INSERT INTO checkpoints (iteration, model, checksum, created_ms, saved) "
                                    "VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(saved), 0) + 1 FROM checkpoints)) "
                                    "ON CONFLICT(iteration) DO UPDATE SET model = excluded.model, "
                                    "checksum = excluded.checksum, created_ms = excluded.created_ms, "
                                    "saved = excluded.saved");
        if (r < 0)
                return r;
        sqlite3_bind_int64(ins, 1, iteration);
        sqlite3_bind_blob64(ins, 2, model, size, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, checksum, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 4, (sqlite3_int64) now_msec_realtime());
        r = store_errno(sqlite3_step(ins));
        if (r < 0)
                return r;

        r = save_state_locked(db, iteration, state);
        if (r < 0)
                return r;

        r = store_prepare(db, &del, "DELETE FROM checkpoints WHERE iteration NOT IN "
                                    "(SELECT iteration FROM checkpoints ORDER BY saved DESC LIMIT ?)");
        if (r < 0)
                return r;
        sqlite3_bind_int64(del, 1, keep);
        r = store_errno(sqlite3_step(del));
        if (r < 0)
                return r;
        /* As deep as the checkpoints. */
        r = store_prepare(db, &prune, "DELETE FROM optimizer_states WHERE iteration NOT IN "
                                      "(SELECT iteration FROM checkpoints)");
        if (r < 0)
                return r;
        return store_errno(sqlite3_step(prune));
}

static bool state_is_valid(const CheckpointState *state) {
        return !state || !state->bytes || (state->size > 0 && state->checksum);
}

int server_store_save_checkpoint(sqlite3 *db, uint32_t iteration, const uint8_t *model, size_t size,
                                 const char *checksum, const CheckpointState *state, uint32_t keep) {
        int r;

        if (!db || !model || size == 0 || !checksum || keep == 0 || !state_is_valid(state))
                return -EINVAL;

        r = store_begin(db);
        if (r < 0)
                return r;
        r = save_locked(db, iteration, model, size, checksum, state, keep);
        if (r < 0) {
                store_rollback(db);
                return r;
        }
        return store_commit(db);
}

int server_store_rollback(sqlite3 *db, uint32_t drop, uint32_t iteration, const uint8_t *model, size_t size,
                          const char *checksum, const CheckpointState *state, uint32_t keep) {
        _cleanup_stmt_ sqlite3_stmt *del = NULL;
        int r;

        if (!db || !model || size == 0 || !checksum || keep == 0 || !state_is_valid(state))
                return -EINVAL;

        r = store_begin(db);
        if (r < 0)
                return r;
        r = store_prepare(db, &del, "DELETE FROM checkpoints WHERE iteration = ?");
        if (r >= 0) {
                sqlite3_bind_int64(del, 1, drop);
                r = store_errno(sqlite3_step(del));
        }
        /* Written again, so that it is the newest even if keep had pruned it;
         * the dropped one's state goes with the prune. */
        if (r >= 0)
                r = save_locked(db, iteration, model, size, checksum, state, keep);
        if (r < 0) {
                store_rollback(db);
                return r;
        }
        return store_commit(db);
}

/* What load_row() reads, in its order: a checkpoint and its state, if any. */
#define CHECKPOINT_COLUMNS                                                              \
        "c.iteration, c.model, c.checksum, c.created_ms, s.state, s.checksum "          \
        "FROM checkpoints c LEFT JOIN optimizer_states s ON s.iteration = c.iteration"

static int load_row(sqlite3_stmt *st, Checkpoint *ret) {
        _cleanup_(checkpoint_done) Checkpoint c = {};
        sqlite3_int64 iteration, created;
        const char *checksum;
        const void *blob;
        int rc, n;

        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return 0;
        if (rc != SQLITE_ROW)
                return store_errno(rc);

        iteration = sqlite3_column_int64(st, 0);
        blob = sqlite3_column_blob(st, 1);
        n = sqlite3_column_bytes(st, 1);
        checksum = (const char *) sqlite3_column_text(st, 2);
        created = sqlite3_column_int64(st, 3);
        /* Our own file, but a damaged one must not become a model. */
        if (iteration < 0 || iteration > UINT32_MAX || !blob || n <= 0 || !checksum ||
            strlen(checksum) >= sizeof c.checksum || created < 0)
                return -EUCLEAN;

        /* The state, from the LEFT JOIN: NULL columns without one. */
        if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
                const void *sblob = sqlite3_column_blob(st, 4);
                const char *schecksum = (const char *) sqlite3_column_text(st, 5);
                int sn = sqlite3_column_bytes(st, 4);

                if (!sblob || sn <= 0 || !schecksum || strlen(schecksum) >= sizeof c.state_checksum)
                        return -EUCLEAN;
                c.state = malloc((size_t) sn);
                if (!c.state)
                        return -ENOMEM;
                memcpy(c.state, sblob, (size_t) sn);
                c.state_size = (size_t) sn;
                strcpy(c.state_checksum, schecksum);
        }

        /* A copy: SQLite's buffer is neither ours to keep nor aligned for the reader. */
        c.model = malloc((size_t) n);
        if (!c.model)
                return -ENOMEM;
        memcpy(c.model, blob, (size_t) n);
        c.size = (size_t) n;
        c.iteration = (uint32_t) iteration;
        c.created_ms = (uint64_t) created;
        strcpy(c.checksum, checksum);

        *ret = c;
        c = (Checkpoint) {};
        return 1;
}

int server_store_load_newest(sqlite3 *db, Checkpoint *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(db, &st, "SELECT " CHECKPOINT_COLUMNS " ORDER BY c.saved DESC LIMIT 1");
        if (r < 0)
                return r;
        return load_row(st, ret);
}

int server_store_load_checkpoint(sqlite3 *db, uint32_t iteration, Checkpoint *ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(db, &st, "SELECT " CHECKPOINT_COLUMNS " WHERE c.iteration = ?");
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, iteration);
        return load_row(st, ret);
}

int server_store_list_checkpoints(sqlite3 *db, uint32_t **ret, size_t *ret_n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ uint32_t *list = NULL;
        size_t n = 0, allocated = 0;
        int rc, r;

        r = store_prepare(db, &st, "SELECT iteration FROM checkpoints ORDER BY saved DESC");
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                sqlite3_int64 it = sqlite3_column_int64(st, 0);

                if (it < 0 || it > UINT32_MAX)
                        return -EUCLEAN;
                if (n == allocated) {
                        uint32_t *p;

                        allocated = MAX(allocated * 2, (size_t) 8);
                        p = realloc(list, allocated * sizeof(uint32_t));
                        if (!p)
                                return -ENOMEM;
                        list = p;
                }
                list[n++] = (uint32_t) it;
        }
        if (rc != SQLITE_DONE)
                return store_errno(rc);

        *ret = TAKE_PTR(list);
        *ret_n = n;
        return 0;
}

int checkpoint_verify_full(const Checkpoint *c, Model **ret_model, Model **ret_state, char *problem, size_t size) {
        _cleanup_(model_freep) Model *model = NULL, *state = NULL;
        char checksum[MODEL_CHECKSUM_STRING_MAX];
        int r;

        r = fl_model_decode(c->model, c->size, &model);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                snprintf(problem, size, "its %zu bytes are not a model", c->size);
                return -EUCLEAN;
        }
        model_checksum_string(model, checksum);
        if (!streq(checksum, c->checksum)) {
                snprintf(problem, size, "checksum %s, stored %s", checksum, c->checksum);
                return -EUCLEAN;
        }
        if (c->state) {
                r = fl_model_decode(c->state, c->state_size, &state);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        snprintf(problem, size, "its optimizer state's %zu bytes are not a state", c->state_size);
                        return -EUCLEAN;
                }
                model_checksum_string(state, checksum);
                if (!streq(checksum, c->state_checksum)) {
                        snprintf(problem, size, "optimizer state checksum %s, stored %s", checksum,
                                 c->state_checksum);
                        return -EUCLEAN;
                }
        }
        if (ret_model)
                *ret_model = TAKE_PTR(model);
        if (ret_state)
                *ret_state = TAKE_PTR(state);
        return 0;
}

int checkpoint_verify(const Checkpoint *c, Model **ret_model, char *problem, size_t size) {
        return checkpoint_verify_full(c, ret_model, NULL, problem, size);
}

int server_store_load_newest_good(sqlite3 *db, const char *path, Checkpoint *ret, Model **ret_model) {
        _cleanup_free_ uint32_t *list = NULL;
        size_t n = 0;
        int r;

        r = server_store_list_checkpoints(db, &list, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                _cleanup_(checkpoint_done) Checkpoint c = {};
                _cleanup_(model_freep) Model *model = NULL;
                char problem[160];

                r = server_store_load_checkpoint(db, list[i], &c);
                if (r == 0)
                        continue;       /* gone meanwhile */
                if (r == -EUCLEAN)
                        snprintf(problem, sizeof problem, "its row is damaged");
                else if (r < 0)
                        return r;
                else
                        r = checkpoint_verify(&c, &model, problem, sizeof problem);
                if (r == -ENOMEM)
                        return r;
                if (r < 0) {
                        log_warning("The checkpoint of iteration %u in %s is damaged (%s)%s.", list[i], path, problem,
                                    i + 1 < n ? "; falling back to the next older one" : "; it was the oldest");
                        continue;
                }
                *ret = c;
                c = (Checkpoint) {};
                *ret_model = TAKE_PTR(model);
                return 1;
        }
        return 0;
}

/* ---- The update log ----------------------------------------------------------- */

int server_store_put_update(sqlite3 *db, sqlite3_stmt **cache, uint32_t iteration, const char *fl_id,
                            const char *digest, const uint8_t *body, size_t size) {
        int r;

        if (!*cache) {
                r = store_prepare(db, cache, "INSERT OR REPLACE INTO updates (iteration, fl_id, digest, body) "
                                             "VALUES (?, ?, ?, ?)");
                if (r < 0)
                        return r;
        }
        sqlite3_reset(*cache);
        sqlite3_bind_int64(*cache, 1, iteration);
        sqlite3_bind_text(*cache, 2, fl_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(*cache, 3, digest, -1, SQLITE_STATIC);
        sqlite3_bind_blob64(*cache, 4, body, size, SQLITE_STATIC);
        r = store_errno(sqlite3_step(*cache));
        sqlite3_clear_bindings(*cache);
        return r;
}

int server_store_delete_update(sqlite3 *db, uint32_t iteration, const char *fl_id, const char *digest) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(db, &st, "DELETE FROM updates WHERE iteration = ? AND fl_id = ? AND digest = ?");
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, iteration);
        sqlite3_bind_text(st, 2, fl_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, digest, -1, SQLITE_STATIC);
        return store_errno(sqlite3_step(st));
}

int server_store_keep_updates_of(sqlite3 *db, uint32_t iteration) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(db, &st, "DELETE FROM updates WHERE iteration != ?");
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, iteration);
        return store_errno(sqlite3_step(st));
}

int server_store_foreach_update(sqlite3 *db, uint32_t iteration, server_store_update_t f, void *userdata) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = store_prepare(db, &st, "SELECT fl_id, digest, body FROM updates WHERE iteration = ? ORDER BY rowid");
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, iteration);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *fl_id = (const char *) sqlite3_column_text(st, 0);
                const char *digest = (const char *) sqlite3_column_text(st, 1);
                const void *body = sqlite3_column_blob(st, 2);
                int size = sqlite3_column_bytes(st, 2);

                r = f(fl_id ?: "", digest ?: "", body, size > 0 ? (size_t) size : 0, userdata);
                if (r < 0)
                        return r;
        }
        return store_errno(rc);
}

int server_store_load_update(sqlite3 *db, uint32_t iteration, const char *fl_id, const char *digest,
                             uint8_t **ret, size_t *ret_size) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const void *body;
        uint8_t *copy;
        int rc, r, size;

        r = store_prepare(db, &st, "SELECT body FROM updates WHERE iteration = ? AND fl_id = ? AND digest = ?");
        if (r < 0)
                return r;
        sqlite3_bind_int64(st, 1, iteration);
        sqlite3_bind_text(st, 2, fl_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, digest, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
                return 0;
        if (rc != SQLITE_ROW)
                return store_errno(rc);
        body = sqlite3_column_blob(st, 0);
        size = sqlite3_column_bytes(st, 0);
        if (!body || size <= 0)
                return -EUCLEAN;
        /* malloc()ed: the FlatBuffers reader wants an aligned buffer. */
        copy = malloc((size_t) size);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, body, (size_t) size);
        *ret = copy;
        *ret_size = (size_t) size;
        return 1;
}
