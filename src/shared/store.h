/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sqlite3.h>

#include "macro.h"

/* SQLite, the way every flcluster database is opened: WAL, synchronous=FULL
 * (a committed change survives power loss: the daemons announce a decision
 * only after it is committed), a bounded busy timeout, and a schema version
 * in user_version, upgraded by an ordered list of migrations. */

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt *, sqlite3_finalize);
#define _cleanup_stmt_ _cleanup_(sqlite3_finalizep)

static inline void sqlite3_closep(sqlite3 **db) {
        if (*db)
                sqlite3_close_v2(*db);
}

#define STORE_BUSY_TIMEOUT_MS 5000

/* Converts an SQLite result code into a negative errno. */
int store_errno(int rc);

/* migrations[i] moves the schema from version i to i+1. The file's integrity
 * is checked first (PRAGMA quick_check): -EUCLEAN when it is not an SQLite
 * database or is damaged (what SQLite found is logged as a warning). */
int store_open(sqlite3 **ret, const char *path, const char *const *migrations, size_t n_migrations);
typedef struct StoreOptions {
        uint32_t page_size;             /* for a new file: a power of two, 512 to 65536; 0: SQLite's */
        const char *journal_mode;       /* NULL: WAL */
} StoreOptions;

/* The same with options. */
int store_open_full(sqlite3 **ret, const char *path, const StoreOptions *o, const char *const *migrations,
                    size_t n_migrations);
/* Another connection to a database store_open*() has set up and migrated,
 * for another thread: the same durability, no checks. journal_mode: the
 * one it was opened with when that is not WAL (which the file keeps). */
int store_connect(sqlite3 **ret, const char *path, const char *journal_mode);

/* PRAGMA quick_check: 0 when sound, else a negative errno (-EUCLEAN: damaged
 * or not a database) and what SQLite says in *ret_problem (malloc()ed). */
int store_quick_check(sqlite3 *db, char **ret_problem);

/* Renames a damaged database, with its -wal and -shm files, to
 * <path>.corrupt-<unix time>, so that a fresh one can be created in its place
 * and nothing is lost for the operator. The new name in *ret_new_path. */
int store_move_aside(const char *path, char **ret_new_path);

int store_exec(sqlite3 *db, const char *sql);
int store_prepare(sqlite3 *db, sqlite3_stmt **ret, const char *sql);
int store_begin(sqlite3 *db);
int store_commit(sqlite3 *db);
void store_rollback(sqlite3 *db);

/* A small key/value table ("meta") every store has, for single values. */
int store_meta_set(sqlite3 *db, const char *key, const char *value);
/* Returns 0 and NULL in *ret when the key is absent. */
int store_meta_get(sqlite3 *db, const char *key, char **ret);
