/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "store.h"

int store_errno(int rc) {
        switch (rc & 0xff) {
        case SQLITE_OK:
        case SQLITE_ROW:
        case SQLITE_DONE:
                return 0;
        case SQLITE_NOMEM:
                return -ENOMEM;
        case SQLITE_BUSY:
        case SQLITE_LOCKED:
                return -EBUSY;
        case SQLITE_READONLY:
        case SQLITE_PERM:
        case SQLITE_AUTH:
                return -EACCES;
        case SQLITE_FULL:
                return -ENOSPC;
        case SQLITE_CANTOPEN:
                return -ENOENT;
        case SQLITE_CORRUPT:
        case SQLITE_NOTADB:
                return -EUCLEAN;
        case SQLITE_CONSTRAINT:
                return -EEXIST;
        case SQLITE_TOOBIG:
                return -E2BIG;
        case SQLITE_IOERR:
        default:
                return -EIO;
        }
}

int store_exec(sqlite3 *db, const char *sql) {
        char *err = NULL;
        int rc;

        rc = sqlite3_exec(db, sql, NULL, NULL, &err);
        if (rc != SQLITE_OK) {
                log_debug("SQL failed (%s): %s", strna(err), sql);
                sqlite3_free(err);
                return store_errno(rc);
        }
        return 0;
}

int store_prepare(sqlite3 *db, sqlite3_stmt **ret, const char *sql) {
        int rc = sqlite3_prepare_v2(db, sql, -1, ret, NULL);

        if (rc != SQLITE_OK) {
                log_debug("Failed to prepare SQL (%s): %s", sqlite3_errmsg(db), sql);
                return store_errno(rc);
        }
        return 0;
}

int store_begin(sqlite3 *db) {
        return store_exec(db, "BEGIN IMMEDIATE");
}

int store_commit(sqlite3 *db) {
        return store_exec(db, "COMMIT");
}

void store_rollback(sqlite3 *db) {
        (void) store_exec(db, "ROLLBACK");
}

static int store_migrate(sqlite3 *db, const char *const *migrations, size_t n) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int version, r;

        r = store_prepare(db, &st, "PRAGMA user_version");
        if (r < 0)
                return r;
        if (sqlite3_step(st) != SQLITE_ROW)
                return -EIO;
        version = sqlite3_column_int(st, 0);
        if (version < 0 || (size_t) version > n)
                return -EPROTONOSUPPORT;   /* written by a newer flcluster */

        for (size_t i = (size_t) version; i < n; i++) {
                char pragma[64];

                r = store_begin(db);
                if (r < 0)
                        return r;
                r = store_exec(db, migrations[i]);
                if (r >= 0) {
                        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %zu", i + 1);
                        r = store_exec(db, pragma);
                }
                if (r < 0) {
                        store_rollback(db);
                        return r;
                }
                r = store_commit(db);
                if (r < 0)
                        return r;
        }
        return 0;
}

int store_quick_check(sqlite3 *db, char **ret_problem) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const char *text;
        int rc, r;

        if (ret_problem)
                *ret_problem = NULL;
        r = store_prepare(db, &st, "PRAGMA quick_check(1)");
        if (r < 0)
                rc = sqlite3_errcode(db);
        else
                rc = sqlite3_step(st);
        if (rc != SQLITE_ROW) {
                /* Not a database at all, or too damaged to even be checked. */
                if (ret_problem)
                        *ret_problem = strdup(sqlite3_errmsg(db));
                r = store_errno(rc);
                return r < 0 ? r : -EIO;
        }
        text = (const char *) sqlite3_column_text(st, 0);
        if (text && streq(text, "ok"))
                return 0;
        if (ret_problem)
                *ret_problem = strdup(strna(text));
        return -EUCLEAN;
}

int store_move_aside(const char *path, char **ret_new_path) {
        static const char *const suffixes[] = { "", "-wal", "-shm" };
        _cleanup_free_ char *target = NULL;

        if (asprintf(&target, "%s.corrupt-%llu", path, (unsigned long long) time(NULL)) < 0)
                return -ENOMEM;
        /* The database first: its -wal must not be replayed into a fresh one, so it goes along. */
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *from = NULL, *to = NULL;

                if (asprintf(&from, "%s%s", path, suffixes[i]) < 0 || asprintf(&to, "%s%s", target, suffixes[i]) < 0)
                        return -ENOMEM;
                if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) < 0 && (errno != ENOENT || i == 0))
                        return -errno;
        }
        if (ret_new_path)
                *ret_new_path = TAKE_PTR(target);
        return 0;
}

static const char meta_schema[] =
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)";

int store_open(sqlite3 **ret, const char *path, const char *const *migrations, size_t n_migrations) {
        return store_open_full(ret, path, NULL, migrations, n_migrations);
}

int store_open_full(sqlite3 **ret, const char *path, const StoreOptions *o, const char *const *migrations,
                    size_t n_migrations) {
        const char *journal = o && o->journal_mode ? o->journal_mode : "WAL";
        char pragma[64];
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        _cleanup_free_ char *problem = NULL;
        int rc, r;

        rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
        sqlite3_extended_result_codes(db, 1);
        /* Until the file passed its check, closing must not write a -wal into it: a damaged file is
         * the operator's evidence, and is moved aside as it is. */
        (void) sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);

        if (o && o->page_size > 0) {
                /* Only a new file takes it (a no-op on an existing one). */
                snprintf(pragma, sizeof pragma, "PRAGMA page_size = %" PRIu32, o->page_size);
                r = store_exec(db, pragma);
                if (r < 0)
                        return r;
        }
        /* The first read: a file that is not SQLite fails here (SQLITE_NOTADB, -EUCLEAN). */
        snprintf(pragma, sizeof pragma, "PRAGMA journal_mode = %s", journal);
        r = store_exec(db, pragma);
        if (r < 0)
                return r;
        r = store_quick_check(db, &problem);
        if (r < 0) {
                if (r == -EUCLEAN)
                        log_warning("The integrity check of %s failed: %s", path, strna(problem));
                return r;
        }
        (void) sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
        r = store_exec(db, "PRAGMA synchronous = FULL");
        if (r < 0)
                return r;
        r = store_exec(db, "PRAGMA foreign_keys = ON");
        if (r < 0)
                return r;
        /* A server's update log passes whole models through the WAL: give the
         * disk back after each checkpoint instead of keeping the largest. */
        r = store_exec(db, "PRAGMA journal_size_limit = 67108864");
        if (r < 0)
                return r;
        r = store_exec(db, meta_schema);
        if (r < 0)
                return r;
        r = store_migrate(db, migrations, n_migrations);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(db);
        return 0;
}

int store_connect(sqlite3 **ret, const char *path, const char *journal_mode) {
        _cleanup_(sqlite3_closep) sqlite3 *db = NULL;
        char pragma[64];
        int rc, r;

        rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
        if (rc != SQLITE_OK)
                return store_errno(rc);
        sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
        sqlite3_extended_result_codes(db, 1);
        if (journal_mode) {
                snprintf(pragma, sizeof pragma, "PRAGMA journal_mode = %s", journal_mode);
                r = store_exec(db, pragma);
                if (r < 0)
                        return r;
        }
        r = store_exec(db, "PRAGMA synchronous = FULL");
        if (r < 0)
                return r;
        r = store_exec(db, "PRAGMA journal_size_limit = 67108864");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(db);
        return 0;
}

int store_meta_set(sqlite3 *db, const char *key, const char *value) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = store_prepare(db, &st, "INSERT INTO meta (key, value) VALUES (?, ?) "
                                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        return store_errno(sqlite3_step(st));
}

int store_meta_get(sqlite3 *db, const char *key, char **ret) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int rc, r;

        r = store_prepare(db, &st, "SELECT value FROM meta WHERE key = ?");
        if (r < 0)
                return r;
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE) {
                *ret = NULL;
                return 0;
        }
        if (rc != SQLITE_ROW)
                return store_errno(rc);
        *ret = strdup((const char *) sqlite3_column_text(st, 0));
        return *ret ? 0 : -ENOMEM;
}
