/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sqlite3.h>
#include <stdint.h>

#include "macro.h"
#include "model.h"

/* The server's database, one per server: server-<port>.db in the state
 * directory, or <stem>-<port><ext> from the configuration file's recovery
 * section (conf_server_db_path()). It holds the model checkpoints: the model each finished
 * iteration produced, as FeatureMapList bytes, the newest `checkpoint_keep`
 * of them. A checkpoint is committed (synchronous=FULL) before the server
 * tells the scheduler it holds the model. Beside it, in FILE-updates, the
 * update log (server-updates.c): the bodies of the updates taken in the
 * current iteration, keyed by iteration, fl_id and digest. The schemas move
 * by migrations. */

#define SERVER_STORE_NAME_MAX 64
#define SERVER_STORE_PAGE_SIZE 65536U
#define SERVER_STORE_UPDATES_JOURNAL "TRUNCATE"

/* "server-<port>.db" */
void server_store_name(char ret[static SERVER_STORE_NAME_MAX], uint16_t port);
int server_store_open(sqlite3 **ret, const char *path);

typedef struct Checkpoint {
        uint32_t iteration;
        uint8_t *model;                 /* FeatureMapList bytes, malloc()ed (so 4-byte aligned) */
        size_t size;
        char checksum[MODEL_CHECKSUM_STRING_MAX];
        uint64_t created_ms;            /* Unix ms */
        /* The server optimizer's state after this model (server-optimizer.h),
         * FeatureMapList bytes like the model; NULL when it keeps none. */
        uint8_t *state;
        size_t state_size;
        char state_checksum[MODEL_CHECKSUM_STRING_MAX];     /* "" without a state */
} Checkpoint;

void checkpoint_done(Checkpoint *c);

/* The optimizer's state to store with a checkpoint, in the same transaction
 * (a row of its own table, optimizer_states, beside the checkpoint's);
 * NULL: none. */
typedef struct CheckpointState {
        const uint8_t *bytes;
        size_t size;
        const char *checksum;
} CheckpointState;

/* Stores the model of an iteration and its state (replacing those of the
 * same iteration) and deletes all but the newest `keep` checkpoints with
 * their states, in one transaction. Newest means last written, which is
 * also the highest iteration unless a job was started anew. */
int server_store_save_checkpoint(sqlite3 *db, uint32_t iteration, const uint8_t *model, size_t size,
                                 const char *checksum, const CheckpointState *state, uint32_t keep);
/* Undoes a checkpoint the scheduler did not commit (its iteration was
 * abandoned after this server aggregated it): deletes `drop` and writes the
 * model of `iteration` (and its state) again as the newest, in one
 * transaction. */
int server_store_rollback(sqlite3 *db, uint32_t drop, uint32_t iteration, const uint8_t *model, size_t size,
                          const char *checksum, const CheckpointState *state, uint32_t keep);
/* 1 and the checkpoint, or 0 when there is none (of that iteration). */
int server_store_load_newest(sqlite3 *db, Checkpoint *ret);
int server_store_load_checkpoint(sqlite3 *db, uint32_t iteration, Checkpoint *ret);
/* Whether a checkpoint's bytes decode into a model whose checksum is the stored
 * one, and so do its state's: 0 and the model (when ret_model) and the
 * state (when ret_state; NULL without one), else -EUCLEAN with what is
 * wrong in problem, or -ENOMEM. */
int checkpoint_verify(const Checkpoint *c, Model **ret_model, char *problem, size_t size);
int checkpoint_verify_full(const Checkpoint *c, Model **ret_model, Model **ret_state, char *problem, size_t size);
/* The newest checkpoint that passes checkpoint_verify(): 1, it and its decoded
 * model; 0 when none does. Each damaged one passed over is logged as a warning
 * naming its iteration (and path, the database's name in the messages); it is
 * left in place, for the operator, until a newer model replaces it. */
int server_store_load_newest_good(sqlite3 *db, const char *path, Checkpoint *ret, Model **ret_model);
/* The iterations held, last written first (malloc()ed; NULL when none). */
int server_store_list_checkpoints(sqlite3 *db, uint32_t **ret, size_t *ret_n);

/* ---- The update log ---- */

/* "<path>-updates" (malloc()ed; NULL when out of memory), its own database. */
char *server_store_updates_path(const char *path);
int server_store_open_updates(sqlite3 **ret, const char *path);

/* Within a transaction the caller holds; *cache keeps the statement. */
int server_store_put_update(sqlite3 *db, sqlite3_stmt **cache, uint32_t iteration, const char *fl_id,
                            const char *digest, const uint8_t *body, size_t size);
int server_store_delete_update(sqlite3 *db, uint32_t iteration, const char *fl_id, const char *digest);
/* Deletes the updates of every other iteration. */
int server_store_keep_updates_of(sqlite3 *db, uint32_t iteration);
typedef int (*server_store_update_t)(const char *fl_id, const char *digest, const void *body, size_t size,
                                     void *userdata);
/* Calls f for each update of iteration in the order they were logged; a
 * negative return stops and is returned. */
int server_store_foreach_update(sqlite3 *db, uint32_t iteration, server_store_update_t f, void *userdata);
/* 1 and a malloc()ed copy of the body, 0 when there is no such row. */
int server_store_load_update(sqlite3 *db, uint32_t iteration, const char *fl_id, const char *digest,
                             uint8_t **ret, size_t *ret_size);
