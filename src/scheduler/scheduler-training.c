/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "conn.h"
#include "digest.h"
#include "fl-messages.h"
#include "json-util.h"
#include "log.h"
#include "scheduler-manager.h"
#include "store.h"
#include "wire-protocol.h"

/* The training job on the scheduler: admissions and updates asked for by the
 * servers, the iteration's windows, and the aggregation that ends it. The
 * counting rules are in scheduler-iteration.c; this file wires them to the
 * links, the timers and the database. */

#define AGGREGATE_TIMEOUT_USEC (120 * USEC_PER_SEC)

static void log_iteration(int level, uint32_t iteration, const char *format, ...) _printf_(3, 4);
static void log_iteration(int level, uint32_t iteration, const char *format, ...) {
        char field[48], msg[512];
        va_list ap;

        va_start(ap, format);
        vsnprintf(msg, sizeof msg, format, ap);
        va_end(ap);
        snprintf(field, sizeof field, "FL_ITERATION=%u", iteration);
        log_struct(level, FIELDS(field), "%s", msg);
}

static int training_save(Manager *m) {
        char buf[16];
        int r;

        snprintf(buf, sizeof buf, "%u", m->iteration.number);
        r = store_meta_set(m->db, "iteration", buf);
        if (r >= 0)
                r = store_meta_set(m->db, "iteration_phase", iteration_phase_to_string(m->iteration.phase));
        if (r < 0)
                return log_error_errno(r, "Failed to store iteration %u in %s: %m", m->iteration.number, m->db_path);
        return 0;
}

static void training_arm_timer(Manager *m) {
        uint64_t deadline = iteration_next_deadline(&m->iteration);

        if (m->iteration.number == 0 || deadline == UINT64_MAX || m->fl_disabled) {
                (void) sd_event_source_set_enabled(m->iteration_timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(m->iteration_timer, deadline * USEC_PER_MSEC);
        (void) sd_event_source_set_enabled(m->iteration_timer, SD_EVENT_ONESHOT);
}

static json_object *iteration_json(Manager *m, uint32_t abandoned) {
        json_object *o = json_object_new_object();
        uint64_t now = now_msec_realtime();

        json_object_object_add(o, "iteration", json_object_new_int64(m->iteration.number));
        json_object_object_add(o, "phase", json_object_new_string(iteration_phase_to_string(m->iteration.phase)));
        json_object_object_add(o, "abandoned", json_object_new_int64(abandoned));
        json_object_object_add(o, "next_req_time",
                               json_object_new_int64((int64_t) iteration_next_req_time(&m->iteration, &m->job, now)));
        json_object_object_add(o, "job", job_to_json(&m->job));
        json_object_object_add(o, "model_iteration", json_object_new_int64(m->model_iteration));
        json_object_object_add(o, "model_checksum", json_object_new_string(m->model_checksum));
        json_object_object_add(o, "state_checksum", json_object_new_string(m->state_checksum));
        return o;
}

static void training_broadcast(Manager *m, Link *only, uint32_t abandoned) {
        _cleanup_(json_object_putp) json_object *o = NULL;

        if (m->iteration.number == 0)
                return;  /* not started: servers answer safemode until the cluster is READY */
        o = iteration_json(m, abandoned);
        for (Link *l = m->links; l; l = l->next)
                if (l->node && (!only || l == only))
                        (void) conn_send_json(l->conn, WIRE_ITERATION, o);
}

void training_send_iteration(Manager *m, Link *only) {
        training_broadcast(m, only, 0);
}

static void training_ring_forget(Manager *m) {
        m->ring = mfree(m->ring);
        m->n_ring = 0;
        m->ring_checksum[0] = '\0';
        m->ring_state_checksum[0] = '\0';
}

static void training_ring_clear(Manager *m) {
        training_ring_forget(m);
        m->waiting_logged = false;
        (void) sd_event_source_set_enabled(m->aggregate_timer, SD_EVENT_OFF);
}

/* Starts iteration `number`, or ends the job after the last one. */
static void training_next(Manager *m, uint32_t abandoned) {
        uint32_t done = m->iteration.number;

        history_iteration_ended(m, abandoned != 0);     /* before it is forgotten */
        training_ring_clear(m);
        if (instance_take_pending(m)) {
                iteration_begin(&m->iteration, &m->job, 1, now_msec_realtime());
                log_iteration(LOG_NOTICE, 1, "New instance of %s: %u iterations, %u devices per iteration; the count restarts at 1.",
                              m->job.fl_name, m->job.fl_iteration_num, m->job.start_fl_job_threshold);
        } else if (done >= m->job.fl_iteration_num) {
                iteration_finish_job(&m->iteration);
                log_iteration(LOG_NOTICE, done, "The training job %s finished after %u iterations.",
                              m->job.fl_name, done);
        } else
                iteration_begin(&m->iteration, &m->job, done + 1, now_msec_realtime());
        ledger_iteration_began(m);

        (void) training_save(m);
        training_arm_timer(m);
        training_broadcast(m, NULL, abandoned);
        manager_bus_emit_state(m);
        scale_on_boundary(m);
}

static void training_abandon(Manager *m, const char *reason) {
        uint32_t n = m->iteration.number;

        log_iteration(LOG_WARNING, n, "Iteration %u abandoned, the model is unchanged: %s.", n, reason);
        training_next(m, n);
}

static int training_on_iteration_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        char buf[160];
        const char *reason;

        reason = iteration_expired(&m->iteration, &m->job, now_msec_realtime(), buf, sizeof buf);
        if (reason)
                training_abandon(m, reason);
        else
                training_arm_timer(m);
        return 0;
}

static int training_on_retry_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        training_after_commit(userdata);
        return 0;
}

static int training_on_aggregate_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;

        training_abandon(m, "the servers did not finish the aggregation in time");
        return 0;
}

int training_setup(Manager *m) {
        _cleanup_free_ char *number = NULL, *phase = NULL;
        uint32_t n = 0;
        int r;

        r = job_from_config(&m->job, m->config);
        if (r == -ENAMETOOLONG)
                return log_error_errno(r, "Invalid fl_name: %m");
        if (r < 0)
                return log_error_errno(r, "Invalid server optimizer parameters: %m");
        iteration_init(&m->iteration);
        r = instance_setup(m);
        if (r < 0)
                return r;
        r = ledger_setup(m);
        if (r < 0)
                return r;

        r = sd_event_add_time(m->event, &m->iteration_timer, CLOCK_REALTIME, UINT64_MAX, 0,
                              training_on_iteration_timer, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->iteration_timer, SD_EVENT_OFF);
        r = sd_event_add_time(m->event, &m->aggregate_timer, CLOCK_MONOTONIC, UINT64_MAX, 0,
                              training_on_aggregate_timer, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->aggregate_timer, SD_EVENT_OFF);
        r = sd_event_add_time(m->event, &m->aggregate_retry_timer, CLOCK_MONOTONIC, UINT64_MAX, 0,
                              training_on_retry_timer, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->aggregate_retry_timer, SD_EVENT_OFF);

        {
                _cleanup_free_ char *checksum = NULL, *model_iteration = NULL, *attempt = NULL, *state = NULL;

                r = store_meta_get(m->db, "aggregate_attempt", &attempt);
                if (r >= 0 && attempt)
                        (void) safe_atou32(attempt, &m->aggregate_attempt);
                r = store_meta_get(m->db, "model_checksum", &checksum);
                if (r >= 0)
                        r = store_meta_get(m->db, "model_iteration", &model_iteration);
                if (r >= 0)
                        r = store_meta_get(m->db, "state_checksum", &state);
                if (r < 0)
                        return log_error_errno(r, "Failed to read the model checksum from %s: %m", m->db_path);
                if (checksum && strlen(checksum) < sizeof m->model_checksum)
                        strcpy(m->model_checksum, checksum);
                if (state && strlen(state) < sizeof m->state_checksum)
                        strcpy(m->state_checksum, state);
                if (model_iteration)
                        (void) safe_atou32(model_iteration, &m->model_iteration);
        }

        /* A restarted scheduler resumes at its iteration, with its devices, counts
         * and windows (scheduler-ledger.c). An aggregation that was running is
         * asked for again once the servers are back. */
        r = store_meta_get(m->db, "iteration", &number);
        if (r >= 0)
                r = store_meta_get(m->db, "iteration_phase", &phase);
        if (r < 0)
                return log_error_errno(r, "Failed to read the iteration from %s: %m", m->db_path);
        if (!number || safe_atou32(number, &n) < 0 || n == 0)
                return 0;

        if (iteration_phase_from_string(phase) == ITERATION_FINISHED) {
                m->iteration.number = n;
                iteration_finish_job(&m->iteration);
                log_notice("The training job %s already finished (iteration %u).", m->job.fl_name, n);
        } else {
                bool found;

                iteration_begin(&m->iteration, &m->job, n, now_msec_realtime());
                r = ledger_load(m, &m->iteration, &found);
                if (r < 0)
                        return log_error_errno(r, "Failed to read iteration %u from %s: %m", n, m->db_path);
                if (found)
                        log_notice("Resuming the training job %s in iteration %u: %zu devices admitted, %u updates counted, "
                                   "its windows as they were.", m->job.fl_name, n, m->iteration.admissions.n_entries,
                                   m->iteration.n_updated);
                else {
                        ledger_iteration_began(m);
                        log_notice("Resuming the training job %s at iteration %u.", m->job.fl_name, n);
                }
        }
        training_arm_timer(m);
        return 0;
}

void training_done(Manager *m) {
        ledger_done(m);
        iteration_done(&m->iteration);
        m->ring = mfree(m->ring);
        m->iteration_timer = sd_event_source_disable_unref(m->iteration_timer);
        m->aggregate_timer = sd_event_source_disable_unref(m->aggregate_timer);
        m->aggregate_retry_timer = sd_event_source_disable_unref(m->aggregate_retry_timer);
}

void training_on_state(Manager *m) {
        if (m->state != CLUSTER_READY)
                return;
        if (m->iteration.number != 0) {
                /* Resumed with enough updates in: ask for the aggregation now. */
                training_after_commit(m);
                return;
        }
        iteration_begin(&m->iteration, &m->job, 1, now_msec_realtime());
        ledger_iteration_began(m);
        log_iteration(LOG_NOTICE, 1, "The training job %s starts: %u iterations, %u devices per iteration, %u updates end one.",
                      m->job.fl_name, m->job.fl_iteration_num, m->job.start_fl_job_threshold,
                      job_update_threshold(&m->job));
        (void) training_save(m);
        training_arm_timer(m);
        training_broadcast(m, NULL, 0);
}

/* ---- requests from the servers ---- */

static const char *training_gate(Manager *m) {
        if (m->fl_disabled || (m->iteration.phase == ITERATION_FINISHED && m->iteration.number > 0))
                return "disabled";
        /* Devices keep being served while the cluster scales, and while a dead
         * server is awaited: the iteration completes without it. */
        if (!IN_SET(m->state, CLUSTER_READY, CLUSTER_SCALE_OUT, CLUSTER_SCALE_IN, NODE_TIMEOUT) ||
            m->iteration.number == 0)
                return "safemode";
        return "ok";
}

/* Every reply goes through the ledger, so that replies leave in request order
 * and only once what they say is committed. */
static int training_reply(Manager *m, Link *l, const char *changed_fl_id, uint8_t type, uint32_t req,
                          const char *state, const Verdict *v, uint32_t iteration, bool update) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        json_object_object_add(o, "req", json_object_new_int64(req));
        json_object_object_add(o, "state", json_object_new_string(state));
        json_object_object_add(o, "retcode", json_object_new_int64(v->retcode));
        json_object_object_add(o, "reason", json_object_new_string(v->reason));
        json_object_object_add(o, "iteration", json_object_new_int64(iteration));
        json_object_object_add(o, "next_req_time", json_object_new_int64((int64_t) v->next_req_time));
        if (update) {
                json_object_object_add(o, "data_size", json_object_new_int64(v->data_size));
                json_object_object_add(o, "keep", json_object_new_boolean(v->keep));
        }
        return ledger_record(m, changed_fl_id, l, type, o);
}

int training_handle_admit(Manager *m, Link *l, json_object *msg) {
        const char *fl_id, *state;
        uint32_t req, data_size;
        Verdict v = {};
        int r;

        if (json_get_u32(msg, "req", &req) < 0 || json_get_string(msg, "fl_id", &fl_id) < 0 ||
            json_get_u32(msg, "data_size", &data_size) < 0)
                return log_warning_errno(-EBADMSG, "Malformed ADMIT from rank %u, disconnecting.", l->node->rank);

        state = training_gate(m);
        if (streq(state, "ok")) {
                uint64_t update_deadline = m->iteration.update_deadline_ms;

                r = iteration_admit(&m->iteration, &m->job, fl_id, data_size, now_msec_realtime(), &v);
                if (m->iteration.update_deadline_ms != update_deadline) {
                        /* The threshold was reached: the update window opened. */
                        ledger_windows_changed(m);
                        training_arm_timer(m);
                }
                if (r == -EINVAL) {
                        v.retcode = FL_REQUEST_ERROR;
                        snprintf(v.reason, sizeof v.reason, "The fl_id is empty, too long or not printable.");
                } else if (r < 0)
                        return log_error_errno(r, "Failed to admit a device: %m");
                else if (v.retcode == FL_SUCCEED)
                        log_debug("Iteration %u: device %s admitted via rank %u (%zu of %u).", m->iteration.number,
                                  fl_id, l->node->rank, m->iteration.admissions.n_entries,
                                  m->job.start_fl_job_threshold);
        }
        return training_reply(m, l, v.retcode == FL_SUCCEED ? fl_id : NULL, WIRE_ADMIT_REPLY, req, state, &v,
                              m->iteration.number, false);
}

/* Numbers each AGGREGATE, across restarts too, so that servers tell a new
 * ring of the same iteration from the one they run. */
static uint32_t training_next_attempt(Manager *m) {
        char buf[16];
        int r;

        m->aggregate_attempt++;
        snprintf(buf, sizeof buf, "%u", m->aggregate_attempt);
        r = store_meta_set(m->db, "aggregate_attempt", buf);
        if (r < 0)
                log_warning_errno(r, "Failed to store the aggregation attempt in %s: %m", m->db_path);
        return m->aggregate_attempt;
}

/* In a ring: connected, holding the cluster's model, and done naming its
 * updates (so that its sum is exactly what is counted for it). */
static bool node_can_aggregate(const Manager *m, const Node *node) {
        return node->link && node->alive && node->replayed && node->peer_port != 0 && node_in_sync(m, node);
}

/* NULL when every server holding counted updates can aggregate, else the
 * first that cannot: the aggregation waits for it (or for its death). */
static const Node *training_missing_owner(const Manager *m) {
        const Iteration *it = &m->iteration;

        for (size_t i = 0; i < it->n_owners; i++) {
                const Node *node;

                if (it->owner_updates[i] == 0)
                        continue;
                node = registry_find(&m->registry, it->owners[i]);
                /* Not in the registry: it left by scale-in, after the iteration
                 * its updates were aggregated in; nothing to wait for. */
                if (node && !node_can_aggregate(m, node))
                        return node;
        }
        return NULL;
}

static void training_aggregate_begin(Manager *m) {
        _cleanup_(json_object_putp) json_object *msg = json_object_new_object();
        json_object *ring = json_object_new_array();
        Node *const *nodes = registry_sorted(&m->registry);
        uint32_t n = m->iteration.number;

        training_ring_clear(m);
        m->ring = calloc(m->registry.n_nodes, sizeof *m->ring);
        if (!m->ring) {
                log_oom();
                training_abandon(m, "out of memory");
                return;
        }
        for (size_t i = 0; i < m->registry.n_nodes; i++) {
                const Node *node = nodes[i];
                json_object *o;

                if (!node_can_aggregate(m, node))
                        continue;
                o = json_object_new_object();
                json_object_object_add(o, "rank", json_object_new_int64(node->rank));
                json_object_object_add(o, "node_id", json_object_new_string(node->node_id));
                json_object_object_add(o, "address", json_object_new_string(node->address));
                json_object_object_add(o, "peer_port", json_object_new_int64(node->peer_port));
                json_object_array_add(ring, o);
                strcpy(m->ring[m->n_ring].node_id, node->node_id);
                m->ring[m->n_ring++].rank = node->rank;
        }
        json_object_object_add(msg, "iteration", json_object_new_int64(n));
        json_object_object_add(msg, "attempt", json_object_new_int64(training_next_attempt(m)));
        json_object_object_add(msg, "ring", ring);
        {
                /* The step every server applies to this iteration's average:
                 * the job's, with the learning rate in force spelled out. */
                json_object *opt = json_object_new_object();

                if (opt && optimizer_params_to_json(&m->job.optimizer, opt, false) >= 0)
                        json_object_object_add(msg, "optimizer", opt);
                else
                        json_object_put(opt);
        }

        if (m->n_ring == 0) {
                training_abandon(m, "no server is left to aggregate");
                return;
        }

        m->iteration.phase = ITERATION_AGGREGATING;
        (void) training_save(m);
        training_arm_timer(m);
        training_broadcast(m, NULL, 0);
        log_iteration(LOG_INFO, n, "Iteration %u: %u updates (data_size %" PRIu64 ") are in; %zu servers aggregate.",
                      n, m->iteration.n_updated, m->iteration.data_size_updated, m->n_ring);

        for (Link *l = m->links; l; l = l->next)
                for (size_t i = 0; l->node && i < m->n_ring; i++)
                        if (streq(m->ring[i].node_id, l->node->node_id))
                                (void) conn_send_json(l->conn, WIRE_AGGREGATE, msg);

        (void) sd_event_source_set_time_relative(m->aggregate_timer, AGGREGATE_TIMEOUT_USEC);
        (void) sd_event_source_set_enabled(m->aggregate_timer, SD_EVENT_ONESHOT);
}

/* Back to collecting updates after a ring broke and the updates of a dead
 * server were uncounted below the threshold, while the window is open. */
static void training_reopen(Manager *m) {
        Iteration *it = &m->iteration;
        uint64_t now = now_msec_realtime();

        training_ring_clear(m);
        if (it->update_deadline_ms != 0 && now >= it->update_deadline_ms) {
                training_abandon(m, "a server holding updates died and the updateModel window is over");
                return;
        }
        it->phase = ITERATION_COLLECTING;
        (void) training_save(m);
        training_arm_timer(m);
        training_broadcast(m, NULL, 0);
        log_iteration(LOG_NOTICE, it->number, "Iteration %u collects updates again: %u of %u are counted.",
                      it->number, it->n_updated, job_update_threshold(&m->job));
}

void training_after_commit(Manager *m) {
        Iteration *it = &m->iteration;
        bool ring_broken = it->phase == ITERATION_AGGREGATING && m->n_ring == 0;
        const Node *missing;

        if (!streq(training_gate(m), "ok"))
                return;
        if (ring_broken && it->n_updated < job_update_threshold(&m->job)) {
                training_reopen(m);
                return;
        }
        if (!ring_broken && !iteration_ready_to_aggregate(it, &m->job))
                return;

        /* Every acknowledged update is in the aggregate: its holder must be in the ring. */
        missing = training_missing_owner(m);
        if (missing) {
                if (!m->waiting_logged)
                        log_iteration(LOG_NOTICE, it->number, "Iteration %u has its %u updates; waiting for server "
                                      "rank %u (node %s), which holds some of them, before aggregating (it is "
                                      "declared dead after %us).", it->number, it->n_updated, missing->rank,
                                      missing->node_id, m->config->node_timeout);
                m->waiting_logged = true;
                return;
        }
        training_aggregate_begin(m);
}

static bool server_gone(const char *node_id, void *userdata) {
        Manager *m = userdata;
        const Node *n = registry_find(&m->registry, node_id);

        return !n || !n->link;
}

int training_handle_update(Manager *m, Link *l, json_object *msg) {
        const char *fl_id, *state, *digest_s;
        uint32_t req, iteration;
        uint64_t digest;
        bool replay = false, stale = false;
        Verdict v = {};
        int r;

        if (json_get_u32(msg, "req", &req) < 0 || json_get_string(msg, "fl_id", &fl_id) < 0 ||
            json_get_u32(msg, "iteration", &iteration) < 0 || json_get_string(msg, "digest", &digest_s) < 0 ||
            digest_from_string(digest_s, &digest) < 0)
                return log_warning_errno(-EBADMSG, "Malformed UPDATE from rank %u, disconnecting.", l->node->rank);

        state = training_gate(m);
        /* A server naming what its log holds is answered whatever the cluster's
         * state: it cannot serve devices before it knows. */
        (void) json_get_bool(msg, "replay", &replay);
        (void) json_get_bool(msg, "stale", &stale);
        if (replay && streq(state, "safemode") && m->iteration.number > 0)
                state = "ok";
        if (streq(state, "ok")) {
                UpdateAsk ask = {
                        .fl_id = fl_id,
                        .iteration = iteration,
                        .digest = digest,
                        .server = l->node->node_id,
                        .server_gone = server_gone,
                        .userdata = m,
                        .stale = stale,
                };

                r = iteration_update(&m->iteration, &m->job, &ask, now_msec_realtime(), &v);
                if (r == -EINVAL) {
                        v.retcode = FL_REQUEST_ERROR;
                        snprintf(v.reason, sizeof v.reason, "The fl_id is empty, too long or not printable.");
                } else if (r < 0)
                        return log_error_errno(r, "Failed to count an update: %m");
        }
        /* The AGGREGATE that ends the iteration follows the commit and the
         * replies (training_after_commit). */
        return training_reply(m, l, v.changed ? fl_id : NULL, WIRE_UPDATE_REPLY, req, state, &v,
                              m->iteration.number, true);
}

static void mark_changed(const char *fl_id, void *userdata) {
        Manager *m = userdata;

        if (ledger_mark(m, fl_id) < 0)
                log_oom();
}

void training_on_node_registered(Manager *m, Node *n) {
        n->replayed = false;
        iteration_unconfirm(&m->iteration, n->node_id);
}

int training_handle_replayed(Manager *m, Link *l, json_object *msg) {
        Iteration *it = &m->iteration;
        uint32_t iteration, dropped = 0;

        if (json_get_u32(msg, "iteration", &iteration) < 0)
                return log_warning_errno(-EBADMSG, "Malformed REPLAYED from rank %u, disconnecting.", l->node->rank);

        /* What it did not name again it does not hold (its database was lost,
         * or it never made them durable): no longer counted. */
        metric_inc(m->metrics.replays);
        if (it->phase != ITERATION_FINISHED)
                dropped = iteration_drop_owner(it, l->node->node_id, true, mark_changed, m);
        metric_add(m->metrics.dropped_updates, dropped, "not_replayed");
        if (dropped > 0)
                log_iteration(LOG_WARNING, it->number, "Server rank %u (node %s) came back without %u update%s it "
                              "had acknowledged in iteration %u: no longer counted (%u of %u now); those devices "
                              "may send them again.", l->node->rank, l->node->node_id, dropped,
                              dropped == 1 ? "" : "s", it->number, it->n_updated, job_update_threshold(&m->job));
        l->node->replayed = true;
        log_debug("Server rank %u named its updates of iteration %u.", l->node->rank, iteration);
        ledger_flush_soon(m);
        return 0;
}

void training_on_node_dead(Manager *m, Node *n) {
        Iteration *it = &m->iteration;
        uint64_t data_size = it->data_size_updated;
        uint32_t dropped;

        if (it->phase == ITERATION_FINISHED)
                return;
        dropped = iteration_drop_owner(it, n->node_id, false, mark_changed, m);
        metric_add(m->metrics.dropped_updates, dropped, "server_dead");
        if (dropped == 0)
                return;
        log_iteration(LOG_WARNING, it->number, "Server rank %u (node %s) is dead with %u acknowledged update%s of "
                      "iteration %u (data_size %" PRIu64 "): they are lost with it and no longer counted (%u of %u "
                      "now); those devices may send them again to another server.", n->rank, n->node_id, dropped,
                      dropped == 1 ? "" : "s", it->number, data_size - it->data_size_updated, it->n_updated,
                      job_update_threshold(&m->job));
        m->waiting_logged = false;
        ledger_flush_soon(m);
}

/* The ring computed this model: its members hold it, everyone else must fetch it. */
static void training_commit_model(Manager *m, uint32_t iteration) {
        char buf[16];
        int r;

        strcpy(m->model_checksum, m->ring_checksum);
        strcpy(m->state_checksum, m->ring_state_checksum);
        m->model_iteration = iteration;
        for (size_t i = 0; i < m->registry.n_nodes; i++)
                m->registry.nodes[i]->in_sync = false;
        for (size_t i = 0; i < m->n_ring; i++) {
                Node *n = registry_find(&m->registry, m->ring[i].node_id);
                if (n)
                        n->in_sync = true;
        }
        snprintf(buf, sizeof buf, "%u", iteration);
        r = store_meta_set(m->db, "model_checksum", m->model_checksum);
        if (r >= 0)
                r = store_meta_set(m->db, "state_checksum", m->state_checksum);
        if (r >= 0)
                r = store_meta_set(m->db, "model_iteration", buf);
        if (r < 0)
                log_error_errno(r, "Failed to store the model checksum in %s: %m", m->db_path);
}

/* The optional "state_checksum" of a server's message: "" when absent (a
 * server without a server optimizer's state). */
static int get_state_checksum(json_object *msg, const char **ret) {
        *ret = "";
        if (!json_object_object_get_ex(msg, "state_checksum", NULL))
                return 0;
        return json_get_string(msg, "state_checksum", ret);
}

int training_handle_synced(Manager *m, Link *l, json_object *msg) {
        const char *checksum, *state;
        uint32_t iteration;
        bool was = node_in_sync(m, l->node);
        int r;

        if (json_get_u32(msg, "model_iteration", &iteration) < 0 || json_get_string(msg, "model_checksum", &checksum) < 0 ||
            get_state_checksum(msg, &state) < 0)
                return log_warning_errno(-EBADMSG, "Malformed SYNCED from rank %u, disconnecting.", l->node->rank);

        if (isempty(m->model_checksum) && !isempty(checksum)) {
                /* The initial model, as the first server to report loaded it: from now
                 * on a server with another one (or none) fetches it from a peer. The
                 * optimizer state it restored with it, if any, goes with it. */
                if (strlen(checksum) >= sizeof m->model_checksum || strlen(state) >= sizeof m->state_checksum)
                        return log_warning_errno(-EBADMSG, "Overlong checksum from rank %u, disconnecting.",
                                                 l->node->rank);
                strcpy(m->model_checksum, checksum);
                strcpy(m->state_checksum, state);
                m->model_iteration = iteration;
                r = store_meta_set(m->db, "model_checksum", m->model_checksum);
                if (r >= 0)
                        r = store_meta_set(m->db, "state_checksum", m->state_checksum);
                if (r < 0)
                        log_error_errno(r, "Failed to store the model checksum in %s: %m", m->db_path);
                log_info("The cluster's initial model is %s (reported by rank %u).", checksum, l->node->rank);
                training_broadcast(m, NULL, 0);
        }
        l->node->in_sync = !isempty(checksum) && streq(checksum, m->model_checksum) &&
                           streq(state, m->state_checksum);
        if (l->node->in_sync && !was)
                log_info("Server rank %u (node %s) holds the model of iteration %u.", l->node->rank,
                         l->node->node_id, iteration);
        else if (!l->node->in_sync)
                log_debug("Server rank %u reports model %s, the cluster's is %s.", l->node->rank, checksum,
                          m->model_checksum);
        scale_check(m);
        return 0;
}

static RingEntry *ring_find(Manager *m, const char *node_id) {
        for (size_t i = 0; i < m->n_ring; i++)
                if (streq(m->ring[i].node_id, node_id))
                        return &m->ring[i];
        return NULL;
}

int training_handle_aggregate_done(Manager *m, Link *l, json_object *msg) {
        const char *checksum, *state, *error;
        uint32_t iteration, updates, attempt = 0;
        uint64_t data_size;
        RingEntry *e;
        char reason[256];

        if (json_get_u32(msg, "iteration", &iteration) < 0)
                return log_warning_errno(-EBADMSG, "Malformed AGGREGATE_DONE from rank %u, disconnecting.",
                                         l->node->rank);
        (void) json_get_u32(msg, "attempt", &attempt);
        if (json_get_string(msg, "error", &error) >= 0) {
                if (m->iteration.phase != ITERATION_AGGREGATING || iteration != m->iteration.number ||
                    attempt != m->aggregate_attempt || !ring_find(m, l->node->node_id))
                        return 0;       /* of a ring given up already */
                /* Each member reports it; the first one starts the next attempt. */
                log_iteration(LOG_WARNING, iteration, "The all-reduce of iteration %u failed on rank %u (%s); "
                              "aggregating again in 1s.", iteration, l->node->rank, error);
                training_ring_forget(m);
                (void) sd_event_source_set_time_relative(m->aggregate_retry_timer, USEC_PER_SEC);
                (void) sd_event_source_set_enabled(m->aggregate_retry_timer, SD_EVENT_ONESHOT);
                return 0;
        }
        if (json_get_string(msg, "checksum", &checksum) < 0 ||
            strlen(checksum) >= sizeof m->ring_checksum || json_get_u32(msg, "updates", &updates) < 0 ||
            json_get_u64(msg, "data_size", &data_size) < 0 || get_state_checksum(msg, &state) < 0 ||
            strlen(state) >= sizeof m->ring_state_checksum)
                return log_warning_errno(-EBADMSG, "Malformed AGGREGATE_DONE from rank %u, disconnecting.",
                                         l->node->rank);

        if (m->iteration.phase != ITERATION_AGGREGATING || iteration != m->iteration.number ||
            (attempt != 0 && attempt != m->aggregate_attempt)) {
                log_debug("Late AGGREGATE_DONE for iteration %u from rank %u, ignoring.", iteration, l->node->rank);
                return 0;
        }
        e = ring_find(m, l->node->node_id);
        if (!e || e->done)
                return 0;

        /* The aggregate must be exactly the counted updates: none lost, none twice. */
        if (updates != m->iteration.n_updated || data_size != m->iteration.data_size_updated) {
                snprintf(reason, sizeof reason, "rank %u aggregated %u updates (data_size %" PRIu64 "), but %u "
                         "(data_size %" PRIu64 ") are counted", l->node->rank, updates, data_size,
                         m->iteration.n_updated, m->iteration.data_size_updated);
                training_abandon(m, reason);
                return 0;
        }

        if (isempty(m->ring_checksum)) {
                strcpy(m->ring_checksum, checksum);
                strcpy(m->ring_state_checksum, state);
        } else if (!streq(m->ring_checksum, checksum)) {
                snprintf(reason, sizeof reason, "rank %u computed model %s, others %s", l->node->rank, checksum,
                         m->ring_checksum);
                training_abandon(m, reason);
                return 0;
        } else if (!streq(m->ring_state_checksum, state)) {
                snprintf(reason, sizeof reason, "rank %u computed optimizer state %.32s, others %.32s", l->node->rank,
                         isempty(state) ? "(none)" : state, isempty(m->ring_state_checksum) ? "(none)" :
                         m->ring_state_checksum);
                training_abandon(m, reason);
                return 0;
        }
        e->done = true;

        for (size_t i = 0; i < m->n_ring; i++)
                if (!m->ring[i].done)
                        return 0;

        log_iteration(LOG_NOTICE, iteration, "Iteration %u finished: %u updates, data_size %" PRIu64 ", model %s.",
                      iteration, m->iteration.n_updated, m->iteration.data_size_updated, m->ring_checksum);
        training_commit_model(m, iteration);
        training_next(m, 0);
        return 0;
}

void training_apply_pending(Manager *m) {
        uint32_t n = m->iteration.number;

        if (n == 0) {
                /* Not started yet: it simply is the job. */
                (void) instance_take_pending(m);
                return;
        }
        if (m->iteration.phase != ITERATION_FINISHED)
                return;  /* at the end of the running iteration */
        training_next(m, 0);
}

void training_on_enabled(Manager *m) {
        uint32_t n = m->iteration.number;

        if (n == 0 || m->iteration.phase == ITERATION_FINISHED) {
                manager_bus_emit_state(m);
                return;
        }
        if (m->fl_disabled) {
                /* Nothing runs out while disabled; the devices hear "disabled". */
                training_ring_clear(m);
                training_arm_timer(m);
                manager_bus_emit_state(m);
                return;
        }
        /* Enabled again: the interrupted iteration starts over with fresh windows
         * and no devices, and the servers drop what they had summed for it. */
        iteration_begin(&m->iteration, &m->job, n, now_msec_realtime());
        ledger_iteration_began(m);
        log_iteration(LOG_NOTICE, n, "Iteration %u starts over after the job was enabled again.", n);
        (void) training_save(m);
        training_arm_timer(m);
        training_broadcast(m, NULL, n);
        manager_bus_emit_state(m);
}

void training_on_node_lost(Manager *m, Node *n) {
        RingEntry *e;

        n->replayed = false;
        if (m->iteration.phase != ITERATION_AGGREGATING)
                return;
        e = ring_find(m, n->node_id);
        if (!e || e->done)
                return;
        /* The others' all-reduce fails without it. The iteration waits for it
         * to come back (its updates are in its database), or for it to be
         * declared dead; the aggregate timer still bounds the wait. */
        log_iteration(LOG_WARNING, m->iteration.number, "Server rank %u (node %s) left during the aggregation of "
                      "iteration %u; aggregating again once it is back (or declared dead after %us).", n->rank,
                      n->node_id, m->iteration.number, m->config->node_timeout);
        training_ring_forget(m);
        m->waiting_logged = false;
}
