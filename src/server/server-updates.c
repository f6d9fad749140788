/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "admissions.h"
#include "digest.h"
#include "json-util.h"
#include "log.h"
#include "server-log-writer.h"
#include "server-manager.h"
#include "server-rounds.h"
#include "server-store.h"
#include "server-updates.h"
#include "server-metrics.h"
#include "store.h"
#include "wire-protocol.h"

typedef struct Replay {
        uint32_t req;
        char *fl_id;
        uint64_t digest;
} Replay;

struct UpdateLog {
        Manager *manager;
        bool durable;
        sqlite3 *db;                    /* the loop's connection to the log (reads, replay) */
        char *db_path;

        /* The next group commit: rows to delete, updates to log (NULL once
         * forgotten), and whether rows of other iterations go. */
        sd_event_source *flush;
        Pending **batch;
        size_t n_batch, n_batch_alloc;
        LogRow *deletes;                /* their fl_ids are strdup()ed */
        size_t n_deletes;
        bool prune;
        uint32_t prune_keep;

        /* The commit the writer thread is doing: its updates wait for it. */
        LogWriter *writer;
        LogBatch flight;
        Pending **flight_pending;

        /* The updates in the running sum, by fl_id (digest, data_size). */
        Admissions held;
        uint32_t held_iteration;

        /* Naming the logged updates to the scheduler after a registration. */
        bool replay_due;
        Replay *replays;
        size_t n_replays, n_answered;
        uint32_t replay_iteration;
        uint32_t replay_kept;
        bool replay_dirty;              /* the sum holds the weights of a row not kept */
};

static void rows_free(LogRow *rows, size_t n) {
        for (size_t i = 0; i < n; i++)
                free((char *) rows[i].fl_id);
        free(rows);
}

static void replays_clear(UpdateLog *u) {
        for (size_t i = 0; i < u->n_replays; i++)
                free(u->replays[i].fl_id);
        u->replays = mfree(u->replays);
        u->n_replays = u->n_answered = 0;
}

static sqlite3 *log_db(const UpdateLog *u) {
        return u->durable ? u->db : NULL;
}

/* ---- Group commit ------------------------------------------------------------- */

static void flush_soon(UpdateLog *u);
static void send_update(UpdateLog *u, Pending *p);

static void flight_clear(UpdateLog *u) {
        rows_free(u->flight.deletes, u->flight.n_deletes);
        free(u->flight.puts);
        u->flight_pending = mfree(u->flight_pending);
        u->flight = (LogBatch) {};
}

/* Updates that will not be logged: their devices hear it and retry. */
static void fail_updates(Pending **ps, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (!ps[i])
                        continue;
                ps[i]->logged = false;
                (void) rounds_answer_failure(ps[i], FL_SYSTEM_ERROR, "The server could not store the update; "
                                             "retry later.");
                pending_free(ps[i]);
        }
}

static void on_committed(LogWriter *w, LogBatch *b, void *userdata) {
        UpdateLog *u = userdata;
        size_t n = b->n_puts;
        int r = b->result;

        if (r < 0) {
                fail_updates(u->flight_pending, n);
                log_error_errno(r, "Failed to write %zu update%s to the update log in %s; their devices were "
                                "answered SystemError: %m", n, n == 1 ? "" : "s", u->db_path);
        } else
                for (size_t i = 0; i < n; i++)
                        if (u->flight_pending[i]) {
                                u->flight_pending[i]->logged = false;
                                send_update(u, u->flight_pending[i]);
                        }
        flight_clear(u);
        if (u->n_batch > 0 || u->n_deletes > 0 || u->prune)
                flush_soon(u);
}

/* Hands what gathered since the last commit to the writer thread. */
static int flush_submit(UpdateLog *u) {
        LogBatch *b = &u->flight;
        size_t n = 0;
        int r;

        for (size_t i = 0; i < u->n_batch; i++)
                n += !!u->batch[i];
        *b = (LogBatch) { .prune = u->prune, .prune_keep = u->prune_keep };
        b->puts = calloc(MAX(n, (size_t) 1), sizeof *b->puts);
        u->flight_pending = calloc(MAX(n, (size_t) 1), sizeof *u->flight_pending);
        if (!b->puts || !u->flight_pending) {
                flight_clear(u);
                return -ENOMEM;
        }

        for (size_t i = 0; i < u->n_batch; i++) {
                Pending *p = u->batch[i];
                LogRow *row;

                if (!p)
                        continue;
                row = &b->puts[b->n_puts];
                *row = (LogRow) { .iteration = p->iteration, .fl_id = p->fl_id };
                digest_to_string(p->digest, row->digest);
                row->body = http_request_body(p->http, &row->size);
                u->flight_pending[b->n_puts++] = p;
        }
        /* The deletes go with the flight (and come back if it cannot leave). */
        b->deletes = TAKE_PTR(u->deletes);
        b->n_deletes = u->n_deletes;
        r = log_writer_submit(u->writer, b);
        if (r < 0) {
                u->deletes = TAKE_PTR(b->deletes);
                b->n_deletes = 0;
                flight_clear(u);
                return r;
        }
        u->n_deletes = 0;
        u->n_batch = 0;
        u->prune = false;
        return 0;
}

static json_object *update_json(uint32_t iteration, const char *fl_id, uint64_t digest) {
        char s[DIGEST_STRING_MAX];
        json_object *o = json_object_new_object();

        if (!o ||
            json_object_object_add(o, "fl_id", json_object_new_string(fl_id)) < 0 ||
            json_object_object_add(o, "iteration", json_object_new_int64(iteration)) < 0 ||
            json_object_object_add(o, "digest", json_object_new_string(digest_to_string(digest, s))) < 0)
                return json_object_put(o), NULL;
        return o;
}

static void send_update(UpdateLog *u, Pending *p) {
        _cleanup_(json_object_putp) json_object *o = update_json(p->iteration, p->fl_id, p->digest);

        if (o && p->stale && json_object_object_add(o, "stale", json_object_new_boolean(true)) < 0) {
                json_object_put(o);
                o = NULL;
        }
        if (!o) {
                (void) rounds_answer_failure(p, FL_SYSTEM_ERROR, "Out of memory.");
                pending_free(p);
                return;
        }
        pending_send(u->manager, p, WIRE_UPDATE, o);
}

static int on_flush(sd_event_source *s, void *userdata) {
        UpdateLog *u = userdata;
        int r;

        if (!log_db(u) || (u->n_batch == 0 && u->n_deletes == 0 && !u->prune))
                return 0;
        if (log_writer_busy(u->writer))
                return 0;       /* on_committed() flushes again */

        r = flush_submit(u);
        if (r < 0) {
                size_t n = u->n_batch;

                u->n_batch = 0;
                fail_updates(u->batch, n);
                log_error_errno(r, "Failed to hand %zu update%s to the update log writer: %m", n, n == 1 ? "" : "s");
        }
        return 0;
}

static void flush_soon(UpdateLog *u) {
        (void) sd_event_source_set_enabled(u->flush, SD_EVENT_ONESHOT);
}

static void queue_delete(UpdateLog *u, uint32_t iteration, const char *fl_id, uint64_t digest) {
        LogRow *d;

        if (!log_db(u))
                return;
        d = realloc(u->deletes, (u->n_deletes + 1) * sizeof *d);
        if (!d) {
                log_oom();
                return;         /* the row stays; a replay names it and the scheduler refuses it again */
        }
        u->deletes = d;
        d[u->n_deletes] = (LogRow) { .iteration = iteration, .fl_id = strdup(fl_id) };
        if (!d[u->n_deletes].fl_id) {
                log_oom();
                return;
        }
        digest_to_string(digest, d[u->n_deletes].digest);
        u->n_deletes++;
        flush_soon(u);
}

void update_log_submit(UpdateLog *u, Pending *p) {
        if (!log_db(u)) {
                send_update(u, p);
                return;
        }
        if (u->n_batch == u->n_batch_alloc) {
                size_t n = MAX(u->n_batch_alloc * 2, (size_t) 16);
                Pending **b = realloc(u->batch, n * sizeof *b);

                if (!b) {
                        (void) rounds_answer_failure(p, FL_SYSTEM_ERROR, "Out of memory.");
                        pending_free(p);
                        return;
                }
                u->batch = b;
                u->n_batch_alloc = n;
        }
        p->logged = true;
        u->batch[u->n_batch++] = p;
        flush_soon(u);
}

void update_log_forget(UpdateLog *u, Pending *p) {
        for (size_t i = 0; u && i < u->n_batch; i++)
                if (u->batch[i] == p)
                        u->batch[i] = NULL;
        for (size_t i = 0; u && i < u->flight.n_puts; i++)
                if (u->flight_pending[i] == p)
                        /* Its body is being written: only the teardown may get here, after the writer stopped. */
                        u->flight_pending[i] = NULL;
        p->logged = false;
}

/* ---- The updates in the sum --------------------------------------------------- */

static int take_logged(UpdateLog *u, uint32_t iteration, const char *fl_id, uint64_t digest, uint32_t data_size);

static void held_reset(UpdateLog *u, uint32_t iteration) {
        admissions_clear(&u->held);
        u->held_iteration = iteration;
}

int update_log_lookup(UpdateLog *u, uint32_t iteration, const char *fl_id, uint64_t digest) {
        const Admission *a;

        if (iteration != u->held_iteration)
                return 0;
        a = admissions_find(&u->held, fl_id);
        if (!a)
                return 0;
        return a->digest == digest ? 1 : -EEXIST;
}

/* Adds a checked update to the sum, once. */
static int held_add(UpdateLog *u, const char *fl_id, uint64_t digest, const float *const *ordered,
                    uint32_t data_size) {
        Aggregate *a = u->manager->aggregate;
        Admission *e;
        int r;

        if (!a || a->iteration != u->held_iteration)
                return -ESTALE;
        e = admissions_find(&u->held, fl_id);
        if (e)
                return e->digest == digest ? 0 : -EEXIST;

        r = aggregate_add_checked(a, ordered, data_size);
        if (r < 0)
                return r;
        r = admissions_add(&u->held, fl_id, data_size, &e);
        if (r < 0)
                /* In the sum but not in the table: a retry of it would be summed twice. */
                return log_oom();
        e->digest = digest;
        e->updated = true;
        return 1;
}

int32_t update_log_verdict(UpdateLog *u, Pending *p, const SchedulerReply *reply) {
        int r;

        if (reply->retcode != FL_SUCCEED || !reply->keep) {
                /* Not this server's to sum: the row goes (unless the same update is held here). */
                if (update_log_lookup(u, p->iteration, p->fl_id, p->digest) != 1)
                        queue_delete(u, p->iteration, p->fl_id, p->digest);
                return (int32_t) reply->retcode;
        }
        if (reply->iteration != p->iteration || reply->data_size == 0) {
                log_error("The scheduler accepted the update of device %s for iteration %u (data_size %u), but it was "
                          "checked for iteration %u; the update is not in the sum.", p->fl_id, reply->iteration,
                          reply->data_size, p->iteration);
                return FL_SYSTEM_ERROR;
        }
        if (!p->ordered)
                /* Its device was answered at the deadline: the update is in the log. */
                r = take_logged(u, p->iteration, p->fl_id, p->digest, reply->data_size);
        else
                r = held_add(u, p->fl_id, p->digest, p->ordered, reply->data_size);
        if (r < 0) {
                log_error_errno(r, "Failed to add the update of device %s to the sum of iteration %u: %m", p->fl_id,
                                p->iteration);
                return FL_SYSTEM_ERROR;
        }
        if (r > 0)
                log_debug("Update of device %s added to iteration %u (%u updates, data_size %" PRIu64 ").", p->fl_id,
                          p->iteration, u->manager->aggregate->updates, u->manager->aggregate->data_size);
        return FL_SUCCEED;
}

void update_log_on_iteration(UpdateLog *u, uint32_t iteration, uint32_t abandoned) {
        if (iteration == u->held_iteration && abandoned != iteration)
                return;
        held_reset(u, iteration);
        if (!log_db(u))
                return;
        /* The scheduler moved on: what the rows were for is committed or abandoned. */
        u->prune = true;
        u->prune_keep = abandoned == iteration ? UINT32_MAX : iteration;
        flush_soon(u);
}

/* ---- Replay after a registration ---------------------------------------------- */

typedef struct Checked {
        FlRequestUpdateModel msg;
        const float **ordered;
        uint8_t *body;
} Checked;

static void checked_done(Checked *c) {
        fl_request_update_model_done(&c->msg);
        free(c->ordered);
        free(c->body);
}

/* Decodes and checks a logged update as if a device had just sent it. */
static int check_row(UpdateLog *u, const void *body, size_t size, const char *fl_id, uint64_t want,
                     Checked *ret, char reason[static FL_REASON_MAX]) {
        Aggregate *a = u->manager->aggregate;
        int r;

        *ret = (Checked) {};
        ret->body = malloc(MAX(size, (size_t) 1));      /* malloc()ed: aligned for the reader */
        ret->ordered = calloc(a->n_tensors, sizeof(float *));
        if (!ret->body || !ret->ordered)
                return -ENOMEM;
        memcpy(ret->body, body, size);
        r = fl_request_update_model_decode(ret->body, size, &ret->msg, reason);
        if (r < 0)
                return r == -ENOMEM ? r : -EUCLEAN;
        if (!ret->msg.fl_id || !streq(ret->msg.fl_id, fl_id)) {
                snprintf(reason, FL_REASON_MAX, "it is not the update of device %.64s", fl_id);
                return -EUCLEAN;
        }
        r = aggregate_check(a, ret->msg.feature_map, ret->msg.n_feature_map, ret->ordered, reason);
        if (r < 0)
                return -EUCLEAN;
        if (aggregate_digest(a, ret->ordered) != want) {
                snprintf(reason, FL_REASON_MAX, "its weights do not match its digest");
                return -EUCLEAN;
        }
        return 0;
}

static int replay_add(UpdateLog *u, const char *fl_id, uint64_t digest) {
        Replay *rp;

        rp = realloc(u->replays, (u->n_replays + 1) * sizeof *rp);
        if (!rp)
                return -ENOMEM;
        u->replays = rp;
        rp[u->n_replays] = (Replay) { .fl_id = strdup(fl_id), .digest = digest };
        if (!rp[u->n_replays].fl_id)
                return -ENOMEM;
        u->n_replays++;
        return 0;
}

static int collect_row(const char *fl_id, const char *digest_s, const void *body, size_t size, void *userdata) {
        UpdateLog *u = userdata;
        _cleanup_(checked_done) Checked c = {};
        char reason[FL_REASON_MAX] = "";
        uint64_t digest;
        int r;

        if (digest_from_string(digest_s, &digest) < 0) {
                /* Not named, so not counted; the row goes with its iteration. */
                log_warning("The logged update of device %s in iteration %u has no valid digest ('%.20s'): "
                            "dropping it; the scheduler no longer counts it.", fl_id, u->replay_iteration, digest_s);
                return 0;
        }
        r = check_row(u, body, size, fl_id, digest, &c, reason);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                log_warning("The logged update of device %s in iteration %u is damaged (%s): dropping it; the "
                            "scheduler no longer counts it.", fl_id, u->replay_iteration, reason);
                queue_delete(u, u->replay_iteration, fl_id, digest);
                return 0;
        }
        r = replay_add(u, fl_id, digest);
        if (r < 0)
                return r;
        /* Summed now, read once; counted when the scheduler says it is ours
         * (almost always: the rare row that is not makes a rebuild). */
        aggregate_add_weights(u->manager->aggregate, c.ordered);
        return 0;
}

static int collect_held(UpdateLog *u) {
        for (size_t i = 0; i < u->held.n_slots; i++) {
                const Admission *a = &u->held.slots[i];
                int r;

                if (!a->fl_id)
                        continue;
                r = replay_add(u, a->fl_id, a->digest);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The sum again from the rows kept, when it took the weights of one that was not. */
static void replay_rebuild(UpdateLog *u) {
        Aggregate *a = u->manager->aggregate;
        Admissions kept = u->held;

        if (!a || a->iteration != u->replay_iteration || u->held_iteration != u->replay_iteration)
                return;         /* the scheduler moved on meanwhile: that sum is gone anyway */
        admissions_init(&u->held);
        aggregate_reset(a, u->replay_iteration);
        for (size_t i = 0; i < kept.n_slots; i++)
                if (kept.slots[i].fl_id)
                        (void) take_logged(u, u->replay_iteration, kept.slots[i].fl_id, kept.slots[i].digest,
                                           kept.slots[i].data_size);
        admissions_clear(&kept);
}

static void replay_finished(UpdateLog *u) {
        Aggregate *a = u->manager->aggregate;

        if (u->replay_dirty)
                replay_rebuild(u);

        if (u->n_replays > 0)
                log_info("Replayed %zu logged update%s of iteration %u: %u held here, the running sum holds %u "
                         "(data_size %" PRIu64 ").", u->n_replays, u->n_replays == 1 ? "" : "s", u->replay_iteration,
                         u->replay_kept, a ? a->updates : 0, a ? a->data_size : 0);
        replays_clear(u);
}

static int replay_start(UpdateLog *u) {
        Manager *m = u->manager;
        uint32_t iteration = m->training.current.iteration;
        _cleanup_(json_object_putp) json_object *done = NULL;
        int r;

        replays_clear(u);
        u->replay_iteration = iteration;
        u->replay_kept = 0;
        u->replay_dirty = false;

        if (m->training.current.phase != TRAINING_FINISHED && m->aggregate) {
                if (log_db(u)) {
                        /* Rebuilt from the log with what the scheduler says is ours. */
                        held_reset(u, iteration);
                        aggregate_reset(m->aggregate, iteration);
                        r = server_store_foreach_update(log_db(u), iteration, collect_row, u);
                } else
                        /* Nothing on disk: name what the sum holds, and keep it. */
                        r = iteration == u->held_iteration ? collect_held(u) : 0;
                if (r < 0)
                        return log_error_errno(r, "Failed to read the update log of iteration %u from %s: %m",
                                               iteration, u->db_path);
        }

        for (size_t i = 0; i < u->n_replays; i++) {
                _cleanup_(json_object_putp) json_object *o = update_json(iteration, u->replays[i].fl_id,
                                                                         u->replays[i].digest);

                if (!o || json_object_object_add(o, "replay", json_object_new_boolean(true)) < 0)
                        return log_oom();
                u->replays[i].req = m->pending.next_req++;
                if (json_object_object_add(o, "req", json_object_new_int64(u->replays[i].req)) < 0)
                        return log_oom();
                r = conn_send_json(m->link->conn, WIRE_UPDATE, o);
                if (r < 0)
                        return log_warning_errno(r, "Failed to replay the update log to the scheduler: %m");
        }
        done = json_object_new_object();
        if (!done || json_object_object_add(done, "iteration", json_object_new_int64(iteration)) < 0)
                return log_oom();
        r = conn_send_json(m->link->conn, WIRE_REPLAYED, done);
        if (r < 0)
                return log_warning_errno(r, "Failed to tell the scheduler the update log is replayed: %m");
        server_metrics_replayed(u->n_replays);
        if (u->n_replays > 0)
                log_info("Naming %zu logged update%s of iteration %u to the scheduler.", u->n_replays,
                         u->n_replays == 1 ? "" : "s", iteration);
        else
                replay_finished(u);
        return 0;
}

void update_log_link_registered(UpdateLog *u) {
        /* Replies to an earlier replay will not come on this connection. */
        replays_clear(u);
        u->replay_due = true;
}

void update_log_maybe_replay(UpdateLog *u) {
        Manager *m = u->manager;

        if (!u->replay_due || !m->training.known || !m->link->conn || !m->link->registered)
                return;
        u->replay_due = false;
        if (replay_start(u) < 0)
                /* Without it the scheduler cannot count on this server: start over. */
                server_link_reconnect(m->link);
}

bool update_log_replaying(const UpdateLog *u) {
        return u->replay_due || u->n_answered < u->n_replays;
}

/* Adds a logged update the scheduler counts for this server to the sum. */
static int take_logged(UpdateLog *u, uint32_t iteration, const char *fl_id, uint64_t digest, uint32_t data_size) {
        _cleanup_(checked_done) Checked c = {};
        _cleanup_free_ uint8_t *body = NULL;
        char reason[FL_REASON_MAX] = "", digest_s[DIGEST_STRING_MAX];
        size_t size;
        int r;

        if (!log_db(u))
                return -ENOENT;
        r = server_store_load_update(log_db(u), iteration, fl_id, digest_to_string(digest, digest_s), &body, &size);
        if (r == 0)
                r = -ENOENT;
        if (r >= 0)
                r = check_row(u, body, size, fl_id, digest, &c, reason);
        if (r >= 0)
                r = held_add(u, fl_id, digest, c.ordered, data_size);
        if (r < 0)
                /* Counted for us but not summable: the aggregate will not match the
                 * counts and the scheduler abandons the iteration rather than lose it quietly. */
                return log_error_errno(r, "Failed to add the logged update of device %s to the sum of iteration "
                                       "%u%s%s: %m", fl_id, iteration, reason[0] ? ": " : "", reason);
        return 0;
}

/* A replayed row the scheduler counts for us: its weights are in the sum already. */
static int replay_keep(UpdateLog *u, const Replay *rp, uint32_t data_size) {
        Aggregate *a = u->manager->aggregate;
        Admission *e;
        int r;

        if (!a || a->iteration != u->replay_iteration || a->iteration != u->held_iteration)
                return -ESTALE;
        e = admissions_find(&u->held, rp->fl_id);
        if (e) {
                /* Two rows of one device (a different update was sent too): only one is kept. */
                u->replay_dirty = true;
                return e->digest == rp->digest ? 0 : -EEXIST;
        }
        r = aggregate_count(a, data_size);
        if (r < 0)
                return log_error_errno(r, "Failed to count the logged update of device %s: %m", rp->fl_id);
        r = admissions_add(&u->held, rp->fl_id, data_size, &e);
        if (r < 0)
                return log_oom();
        e->digest = rp->digest;
        e->updated = true;
        return 0;
}

int update_log_on_reply(UpdateLog *u, const SchedulerReply *reply) {
        const Replay *rp;

        if (u->n_answered >= u->n_replays || u->replays[u->n_answered].req != reply->req)
                return 0;
        rp = &u->replays[u->n_answered++];

        if (reply->state == REPLY_OK && reply->retcode == FL_SUCCEED && reply->keep) {
                if (!log_db(u) || replay_keep(u, rp, reply->data_size) >= 0)
                        u->replay_kept++;
        } else if (log_db(u)) {
                queue_delete(u, u->replay_iteration, rp->fl_id, rp->digest);
                u->replay_dirty = true;
        }
        else
                log_warning("The scheduler no longer counts the update of device %s in iteration %u for this server, "
                            "but without durable_updates it cannot be taken out of the running sum.", rp->fl_id,
                            u->replay_iteration);

        if (u->n_answered == u->n_replays)
                replay_finished(u);
        return 1;
}

/* ---- Life cycle --------------------------------------------------------------- */

bool update_log_durable(const UpdateLog *u) {
        return u && log_db(u);
}

int update_log_open(UpdateLog *u, const char *store_path) {
        _cleanup_free_ char *aside = NULL;
        int r;

        if (!u->durable)
                return 0;
        free(u->db_path);
        u->db_path = server_store_updates_path(store_path);
        if (!u->db_path)
                return log_oom();
        r = server_store_open_updates(&u->db, u->db_path);
        if (r == -EUCLEAN) {
                /* What it held is lost: naming what it holds tells the scheduler so. */
                r = store_move_aside(u->db_path, &aside);
                if (r < 0)
                        return log_error_errno(r, "The update log %s is damaged, and moving it aside failed: %m. "
                                               "Move it away and start fl-serverd again.", u->db_path);
                log_struct(LOG_ERR, FIELDS("FL_ROLE=SERVER"), "The update log %s is damaged: moved it to %s and "
                           "starting with an empty one; the updates it held no longer count.", u->db_path, aside);
                r = server_store_open_updates(&u->db, u->db_path);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to open the update log %s: %m", u->db_path);
        r = log_writer_new(&u->writer, u->manager->event, u->db_path, on_committed, u);
        if (r < 0)
                return log_error_errno(r, "Failed to start the update log writer for %s: %m", u->db_path);
        return 0;
}

int update_log_new(UpdateLog **ret, Manager *m, bool durable) {
        _cleanup_(update_log_freep) UpdateLog *u = calloc(1, sizeof *u);
        int r;

        if (!u)
                return -ENOMEM;
        u->manager = m;
        u->durable = durable;
        admissions_init(&u->held);
        r = sd_event_add_defer(m->event, &u->flush, on_flush, u);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(u->flush, SD_EVENT_OFF);
        (void) sd_event_source_set_description(u->flush, "update-log-flush");
        *ret = TAKE_PTR(u);
        return 0;
}

UpdateLog *update_log_free(UpdateLog *u) {
        if (!u)
                return NULL;
        /* The writer finishes the commit in flight first: its bodies live until then. */
        u->writer = log_writer_free(u->writer);
        /* What is still in the batches was never acknowledged: their devices retry. */
        for (size_t i = 0; i < u->flight.n_puts; i++)
                if (u->flight_pending[i]) {
                        u->flight_pending[i]->logged = false;
                        pending_free(u->flight_pending[i]);
                }
        flight_clear(u);
        if (u->db)
                sqlite3_close_v2(u->db);
        free(u->db_path);
        for (size_t i = 0; i < u->n_batch; i++)
                if (u->batch[i]) {
                        u->batch[i]->logged = false;
                        pending_free(u->batch[i]);
                }
        free(u->batch);
        rows_free(u->deletes, u->n_deletes);
        replays_clear(u);
        admissions_clear(&u->held);
        sd_event_source_disable_unref(u->flush);
        return mfree(u);
}
