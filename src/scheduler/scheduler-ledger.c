/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "digest.h"
#include "log.h"
#include "scheduler-manager.h"
#include "store.h"

/* The running iteration on disk: who was admitted, whose update was
 * counted, and the deadlines of its windows. A decision is answered only
 * once it is committed, and the commits of one turn of the event loop are
 * one transaction (group commit): admissions and updates arriving together
 * cost one fsync, not one each. A scheduler restarted from here resumes the
 * iteration where it was. If a commit fails the scheduler stops: what was
 * not committed was not answered, so devices retry, and systemd restarts
 * the scheduler from the last good state. */

typedef struct LedgerReply {
        char node_id[NODE_ID_MAX];
        uint8_t type;
        json_object *msg;
} LedgerReply;

struct Ledger {
        sd_event_source *flush;
        char **dirty;                   /* fl_ids whose admission changed */
        size_t n_dirty;
        bool reset;                     /* a new iteration: forget the old rows */
        bool windows;                   /* the deadlines changed */
        LedgerReply *replies;
        size_t n_replies;
};

static int ledger_write(Manager *m) {
        Ledger *g = m->ledger;
        _cleanup_stmt_ sqlite3_stmt *up = NULL;
        const Iteration *it = &m->iteration;
        int r;

        r = store_begin(m->db);
        if (r < 0)
                return r;
        if (g->reset) {
                r = store_exec(m->db, "DELETE FROM admissions");
                if (r < 0)
                        goto fail;
        }
        if (g->reset || g->windows) {
                char buf[128];

                snprintf(buf, sizeof buf, "%u %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64, it->number,
                         it->start_ms, it->start_deadline_ms, it->update_deadline_ms, it->global_deadline_ms);
                r = store_meta_set(m->db, "iteration_windows", buf);
                if (r < 0)
                        goto fail;
        }
        if (g->n_dirty > 0) {
                r = store_prepare(m->db, &up, "INSERT INTO admissions (fl_id, data_size, updated, owner, digest) "
                                              "VALUES (?, ?, ?, ?, ?) "
                                              "ON CONFLICT(fl_id) DO UPDATE SET data_size = excluded.data_size, "
                                              "updated = excluded.updated, owner = excluded.owner, "
                                              "digest = excluded.digest");
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < g->n_dirty; i++) {
                const Admission *a = admissions_find(&it->admissions, g->dirty[i]);
                char digest[DIGEST_STRING_MAX] = "";

                if (!a)
                        continue;       /* of an iteration that ended meanwhile */
                if (a->updated)
                        digest_to_string(a->digest, digest);
                sqlite3_reset(up);
                sqlite3_bind_text(up, 1, a->fl_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(up, 2, a->data_size);
                sqlite3_bind_int(up, 3, a->updated);
                sqlite3_bind_text(up, 4, a->updated ? it->owners[a->owner - 1] : "", -1, SQLITE_STATIC);
                sqlite3_bind_text(up, 5, digest, -1, SQLITE_TRANSIENT);
                r = store_errno(sqlite3_step(up));
                if (r < 0)
                        goto fail;
        }
        return store_commit(m->db);
fail:
        store_rollback(m->db);
        return r;
}

static int ledger_on_flush(sd_event_source *s, void *userdata) {
        Manager *m = userdata;
        Ledger *g = m->ledger;
        int r;

        r = ledger_write(m);
        if (r < 0) {
                log_error_errno(r, "Failed to commit the iteration to %s, stopping (devices retry, the "
                                "restarted scheduler resumes from the last commit): %m", m->db_path);
                (void) sd_event_exit(m->event, r);
        } else
                for (size_t i = 0; i < g->n_replies; i++) {
                        Node *n = registry_find(&m->registry, g->replies[i].node_id);

                        if (n && n->link)
                                (void) conn_send_json(((Link *) n->link)->conn, g->replies[i].type, g->replies[i].msg);
                }

        for (size_t i = 0; i < g->n_dirty; i++)
                free(g->dirty[i]);
        for (size_t i = 0; i < g->n_replies; i++)
                json_object_put(g->replies[i].msg);
        g->n_dirty = g->n_replies = 0;
        g->reset = g->windows = false;

        /* After the replies: a server adds the updates it was told about before
         * it reads the AGGREGATE that ends the iteration. */
        if (r >= 0)
                training_after_commit(m);
        return 0;
}

static int ledger_arm(Manager *m) {
        return sd_event_source_set_enabled(m->ledger->flush, SD_EVENT_ONESHOT);
}

int ledger_setup(Manager *m) {
        _cleanup_free_ Ledger *g = calloc(1, sizeof *g);
        int r;

        if (!g)
                return -ENOMEM;
        r = sd_event_add_defer(m->event, &g->flush, ledger_on_flush, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(g->flush, SD_EVENT_OFF);
        m->ledger = TAKE_PTR(g);
        return 0;
}

void ledger_done(Manager *m) {
        Ledger *g = m->ledger;

        if (!g)
                return;
        /* What is still queued was never committed, so never answered. */
        for (size_t i = 0; i < g->n_dirty; i++)
                free(g->dirty[i]);
        for (size_t i = 0; i < g->n_replies; i++)
                json_object_put(g->replies[i].msg);
        free(g->dirty);
        free(g->replies);
        sd_event_source_disable_unref(g->flush);
        m->ledger = mfree(g);
}

void ledger_iteration_began(Manager *m) {
        Ledger *g = m->ledger;

        /* Rows of the old iteration go with the reset. */
        for (size_t i = 0; i < g->n_dirty; i++)
                free(g->dirty[i]);
        g->n_dirty = 0;
        g->reset = true;
        (void) ledger_arm(m);
}

void ledger_windows_changed(Manager *m) {
        m->ledger->windows = true;
        (void) ledger_arm(m);
}

int ledger_mark(Manager *m, const char *fl_id) {
        Ledger *g = m->ledger;
        char **d;

        d = realloc(g->dirty, (g->n_dirty + 1) * sizeof *d);
        if (!d)
                return -ENOMEM;
        g->dirty = d;
        g->dirty[g->n_dirty] = strdup(fl_id);
        if (!g->dirty[g->n_dirty])
                return -ENOMEM;
        g->n_dirty++;
        return ledger_arm(m);
}

void ledger_flush_soon(Manager *m) {
        (void) ledger_arm(m);
}

int ledger_record(Manager *m, const char *fl_id, Link *l, uint8_t type, json_object *reply) {
        Ledger *g = m->ledger;
        LedgerReply *rp;
        int r;

        if (fl_id) {
                r = ledger_mark(m, fl_id);
                if (r < 0)
                        return r;
        }
        rp = realloc(g->replies, (g->n_replies + 1) * sizeof *rp);
        if (!rp)
                return -ENOMEM;
        g->replies = rp;
        g->replies[g->n_replies] = (LedgerReply) { .type = type, .msg = json_object_get(reply) };
        strcpy(g->replies[g->n_replies].node_id, l->node->node_id);
        g->n_replies++;
        return ledger_arm(m);
}

int ledger_load(Manager *m, Iteration *it, bool *ret_found) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        _cleanup_free_ char *windows = NULL;
        unsigned number;
        uint64_t start, sd, ud, gd;
        int rc, r;

        *ret_found = false;
        r = store_meta_get(m->db, "iteration_windows", &windows);
        if (r < 0 || !windows)
                return r;
        if (sscanf(windows, "%u %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64, &number, &start, &sd, &ud, &gd) != 5)
                return -EUCLEAN;
        if (number != it->number)
                return 0;       /* written for another iteration: start it afresh */

        it->start_ms = start;
        it->start_deadline_ms = sd;
        it->update_deadline_ms = ud;
        it->global_deadline_ms = gd;

        r = store_prepare(m->db, &st, "SELECT fl_id, data_size, updated, owner, digest FROM admissions");
        if (r < 0)
                return r;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
                const char *fl_id = (const char *) sqlite3_column_text(st, 0);
                sqlite3_int64 ds = sqlite3_column_int64(st, 1);
                Admission *a;

                if (!fl_id_is_valid(fl_id) || ds < 1 || ds > UINT32_MAX)
                        return -EUCLEAN;
                r = admissions_add(&it->admissions, fl_id, (uint32_t) ds, &a);
                if (r < 0)
                        return r;
                if (sqlite3_column_int(st, 2)) {
                        const char *owner = (const char *) sqlite3_column_text(st, 3);
                        uint64_t digest;

                        /* A row without its holder (written by an older version) stays
                         * uncounted: the server that holds it names it again. */
                        if (digest_from_string((const char *) sqlite3_column_text(st, 4), &digest) < 0 ||
                            !node_id_is_valid(owner))
                                continue;
                        r = iteration_restore_update(it, a, owner, digest);
                        if (r < 0)
                                return r;
                }
        }
        r = store_errno(rc);
        if (r >= 0)
                *ret_found = true;
        return r;
}
