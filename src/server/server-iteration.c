/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "json-util.h"
#include "log.h"
#include "server-iteration.h"
#include "server-manager.h"
#include "server-optimizer.h"
#include "server-updates.h"
#include "store.h"
#include "util.h"
#include "wire-protocol.h"

static const char *const phase_table[_TRAINING_PHASE_MAX] = {
        [TRAINING_COLLECTING] = "COLLECTING",
        [TRAINING_AGGREGATING] = "AGGREGATING",
        [TRAINING_FINISHED] = "FINISHED",
};

const char *training_phase_to_string(TrainingPhase p) {
        if (p < 0 || p >= _TRAINING_PHASE_MAX)
                return NULL;
        return phase_table[p];
}

TrainingPhase training_phase_from_string(const char *s) {
        for (int i = 0; s && i < _TRAINING_PHASE_MAX; i++)
                if (streq(phase_table[i], s))
                        return (TrainingPhase) i;
        return _TRAINING_PHASE_INVALID;
}

/* ---- Parsing what the scheduler sends -------------------------------------- */

/* -ENOENT when absent, so that optional keys keep their defaults. */
static int get_optional_u32(json_object *o, const char *key, uint32_t *ret) {
        if (!json_object_object_get_ex(o, key, NULL))
                return -ENOENT;
        return json_get_u32(o, key, ret);
}

static int get_optional_double(json_object *o, const char *key, double min, double max, double *ret) {
        json_object *v;
        double d;

        if (!json_object_object_get_ex(o, key, &v))
                return -ENOENT;
        if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
                return -EBADMSG;
        d = json_object_get_double(v);
        if (!(d >= min && d <= max))
                return -ERANGE;
        *ret = d;
        return 0;
}

static int job_parse(json_object *o, TrainingJob *job) {
        struct { const char *key; uint32_t *value; } u32s[] = {
                { "fl_iteration_num", &job->fl_iteration_num },
                { "start_fl_job_threshold", &job->start_fl_job_threshold },
                { "client_epoch_num", &job->client_epoch_num },
                { "client_batch_size", &job->client_batch_size },
        };
        const char *name;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        if (json_object_object_get_ex(o, "fl_name", NULL)) {
                if (json_get_string(o, "fl_name", &name) < 0 || strlen(name) >= sizeof job->fl_name)
                        return -EBADMSG;
                strcpy(job->fl_name, name);
        }
        for (size_t i = 0; i < ELEMENTSOF(u32s); i++) {
                r = get_optional_u32(o, u32s[i].key, u32s[i].value);
                if (r < 0 && r != -ENOENT)
                        return -EBADMSG;
        }
        r = get_optional_double(o, "update_model_ratio", 0, 1, &job->update_model_ratio);
        if (r < 0 && r != -ENOENT)
                return -EBADMSG;
        r = get_optional_double(o, "client_learning_rate", 0, 1e6, &job->client_learning_rate);
        if (r < 0 && r != -ENOENT)
                return -EBADMSG;
        r = get_optional_double(o, "fedprox_mu", 0, FEDPROX_MU_MAX, &job->fedprox_mu);
        if (r < 0 && r != -ENOENT)
                return -EBADMSG;
        return optimizer_params_from_json(o, &job->optimizer);
}

int iteration_msg_parse(json_object *o, const FlConfig *defaults, IterationMsg *ret) {
        IterationMsg msg = {
                .job = {
                        .fl_iteration_num = defaults->fl_iteration_num,
                        .start_fl_job_threshold = defaults->start_fl_job_threshold,
                        .update_model_ratio = defaults->update_model_ratio,
                        .client_epoch_num = defaults->client_epoch_num,
                        .client_batch_size = defaults->client_batch_size,
                        .client_learning_rate = defaults->client_learning_rate,
                        .optimizer = OPTIMIZER_PARAMS_DEFAULT,
                },
        };
        json_object *job;
        const char *phase;

        if (defaults->fl_name && strlen(defaults->fl_name) < sizeof msg.job.fl_name)
                strcpy(msg.job.fl_name, defaults->fl_name);
        if (!o ||
            json_get_u32(o, "iteration", &msg.iteration) < 0 ||
            json_get_string(o, "phase", &phase) < 0)
                return -EBADMSG;
        msg.phase = training_phase_from_string(phase);
        if (msg.phase < 0)
                return -EBADMSG;
        if (get_optional_u32(o, "abandoned", &msg.abandoned) == -EBADMSG ||
            (json_object_object_get_ex(o, "next_req_time", NULL) && json_get_u64(o, "next_req_time", &msg.next_req_time) < 0))
                return -EBADMSG;
        if (json_object_object_get_ex(o, "job", &job) && job_parse(job, &msg.job) < 0)
                return -EBADMSG;
        if (json_object_object_get_ex(o, "model_checksum", NULL)) {
                const char *checksum;
                int r;

                if (json_get_string(o, "model_checksum", &checksum) < 0 ||
                    sync_checksum_parse(checksum, msg.model_checksum) < 0)
                        return -EBADMSG;
                r = get_optional_u32(o, "model_iteration", &msg.model_iteration);
                if (r < 0 && r != -ENOENT)
                        return -EBADMSG;
                msg.has_model = true;
        }
        if (json_object_object_get_ex(o, "state_checksum", NULL)) {
                const char *checksum;

                if (json_get_string(o, "state_checksum", &checksum) < 0 ||
                    sync_checksum_parse(checksum, msg.state_checksum) < 0)
                        return -EBADMSG;
                msg.has_state = true;
        }

        *ret = msg;
        return 0;
}

void aggregate_msg_done(AggregateMsg *msg) {
        free(msg->ring);
        *msg = (AggregateMsg) {};
}

static int ring_member_parse(json_object *o, RingMember *ret) {
        const char *node_id, *address;
        uint32_t port;

        if (!json_object_is_type(o, json_type_object) ||
            json_get_u32(o, "rank", &ret->rank) < 0 ||
            json_get_string(o, "node_id", &node_id) < 0 ||
            json_get_string(o, "address", &address) < 0 ||
            json_get_u32(o, "peer_port", &port) < 0)
                return -EBADMSG;
        if (!node_id_is_valid(node_id) || strlen(node_id) >= sizeof ret->node_id ||
            isempty(address) || strlen(address) >= sizeof ret->address || port == 0 || port > UINT16_MAX)
                return -EBADMSG;
        strcpy(ret->node_id, node_id);
        strcpy(ret->address, address);
        ret->peer_port = (uint16_t) port;
        return 0;
}

int aggregate_msg_parse(json_object *o, AggregateMsg *ret) {
        _cleanup_(aggregate_msg_done) AggregateMsg msg = {};
        json_object *ring, *optimizer;
        size_t n;

        if (!o ||
            json_get_u32(o, "iteration", &msg.iteration) < 0 ||
            get_optional_u32(o, "attempt", &msg.attempt) == -EBADMSG ||
            !json_object_object_get_ex(o, "ring", &ring) ||
            !json_object_is_type(ring, json_type_array))
                return -EBADMSG;
        if (json_object_object_get_ex(o, "optimizer", &optimizer)) {
                msg.optimizer = OPTIMIZER_PARAMS_DEFAULT;
                if (optimizer_params_from_json(optimizer, &msg.optimizer) < 0)
                        return -EBADMSG;
                msg.has_optimizer = true;
        }
        n = json_object_array_length(ring);
        if (n == 0 || n > TRAINING_RING_MAX)
                return -EBADMSG;
        msg.ring = calloc(n, sizeof(RingMember));
        if (!msg.ring)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (ring_member_parse(json_object_array_get_idx(ring, i), &msg.ring[i]) < 0)
                        return -EBADMSG;
                msg.n_ring++;
        }

        *ret = msg;
        msg = (AggregateMsg) {};
        return 0;
}

/* ---- The iteration on this server ------------------------------------------ */

static void training_stop_reduce(Training *t, AllReduce *a) {
        if (t->reducing != 0 && a)
                allreduce_cancel(a);
        t->reducing = 0;
        free(t->reduce_vec);
        t->reduce_vec = NULL;
        t->reduce_n = 0;
}

void training_done(Training *t) {
        /* The AllReduce is freed first by the manager: nothing runs any more. */
        free(t->reduce_vec);
        *t = (Training) {};
}

static void log_iteration(Manager *m, const IterationMsg *old, bool had_old, const IterationMsg *new) {
        char field[32];

        if (had_old && old->iteration == new->iteration && old->phase == new->phase)
                return;
        snprintf(field, sizeof field, "FL_ITERATION=%u", new->iteration);
        if (new->abandoned != 0)
                log_struct(LOG_NOTICE, FIELDS(field), "Iteration %u was abandoned; the model stays that of "
                           "iteration %u.", new->abandoned, m->model.iteration);
        log_struct(LOG_INFO, FIELDS(field), "Iteration %u: %s.", new->iteration,
                   training_phase_to_string(new->phase));
        manager_status(m, "Iteration %u %s (job %s, %u iterations); model of iteration %u; serving devices on port %u.",
                       new->iteration, training_phase_to_string(new->phase), new->job.fl_name,
                       new->job.fl_iteration_num, m->model.iteration, m->port);
}

int manager_on_iteration(Manager *m, json_object *o) {
        Training *t = &m->training;
        IterationMsg msg, old = t->current;
        bool had = t->seen;
        int r;

        r = iteration_msg_parse(o, m->config, &msg);
        if (r < 0)
                return log_warning_errno(r, "The scheduler %s sent an iteration that cannot be read.", m->scheduler);

        t->current = msg;
        t->seen = t->known = true;
        if (!had || old.iteration != msg.iteration || old.phase != msg.phase)
                training_save(m, o);
        manager_settle_model(m, msg.iteration, msg.abandoned);
        log_iteration(m, &old, had, &msg);
        update_log_on_iteration(m->updates, msg.iteration, msg.abandoned);

        if (m->aggregate) {
                Aggregate *a = m->aggregate;

                /* The sum belongs to one iteration: a new number or an abandoned one drops it. */
                if (a->iteration != msg.iteration || msg.abandoned == a->iteration) {
                        if (a->updates > 0 && m->model.iteration != a->iteration)
                                log_notice("Dropping the sum of iteration %u (%u updates, data_size %" PRIu64 "): "
                                           "it was not aggregated.", a->iteration, a->updates, a->data_size);
                        aggregate_reset(a, msg.iteration);
                }
        }
        /* An all-reduce of another iteration, or of one now abandoned, is moot. */
        if (t->reducing != 0 && (t->reducing != msg.iteration || msg.abandoned == t->reducing)) {
                log_notice("Stopping the all-reduce of iteration %u: the scheduler moved on to iteration %u.",
                           t->reducing, msg.iteration);
                training_stop_reduce(t, m->allreduce);
        }
        /* Last: the rollback above may already have brought the model in line. */
        manager_sync_on_iteration(m);
        /* After a registration: tell the scheduler which updates this server holds. */
        update_log_maybe_replay(m->updates);
        return 0;
}

/* The iteration as last announced, kept in the server database: a server
 * restarted while the scheduler is away knows where the job was (and, once
 * it is finished, keeps serving its final model). */
void training_save(Manager *m, json_object *o) {
        int r;

        if (!m->store)
                return;
        r = store_meta_set(m->store, "iteration", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        if (r < 0)
                log_warning_errno(r, "Failed to store iteration %u in %s: %m", m->training.current.iteration,
                                  m->store_path);
}

int training_load(Manager *m) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ char *text = NULL;
        IterationMsg msg;
        int r;

        r = store_meta_get(m->store, "iteration", &text);
        if (r < 0)
                return log_error_errno(r, "Failed to read the last iteration from %s: %m", m->store_path);
        if (!text)
                return 0;
        if (json_parse_object(text, strlen(text), &o) < 0 || iteration_msg_parse(o, m->config, &msg) < 0) {
                log_warning("The last iteration stored in %s cannot be read; waiting for the scheduler's.",
                            m->store_path);
                return 0;
        }
        m->training.current = msg;
        m->training.seen = true;        /* not known: that takes the scheduler */
        log_info("The job %s was last in iteration %u (%s).", msg.job.fl_name, msg.iteration,
                 training_phase_to_string(msg.phase));
        return 0;
}

void manager_training_link_lost(Manager *m) {
        m->training.known = false;
}

/* The model an aggregation of iteration steps from: the one the cluster
 * committed last, as announced; by iteration number when it is not
 * announced (the initial model, or a scheduler that does not name it). A
 * server that aggregated this iteration already (the ring is asked again)
 * holds that result as its model and the announced one as the previous. */
static const ServerModel *step_base(const Manager *m, uint32_t iteration) {
        const ServerSync *s = &m->sync;
        const ServerModel *prev = &m->previous_model;

        if (s->announced && !isempty(s->model_checksum)) {
                if (m->model.model && streq(m->model.checksum, s->model_checksum))
                        return &m->model;
                if (prev->model && streq(prev->checksum, s->model_checksum))
                        return prev;
        }
        return m->model.iteration == iteration && prev->model ? prev : &m->model;
}

/* The model and optimizer state after iteration, from the reduced vector:
 * the optimizer's step from base, or base unchanged when nothing was
 * summed. Logs what it refuses. */
static int next_model(Manager *m, const ServerModel *base, const OptimizerParams *opt, uint32_t iteration,
                      const double *vec, size_t n, Model **ret_model, Model **ret_state, uint64_t *ret_data_size,
                      uint32_t *ret_updates) {
        _cleanup_(model_freep) Model *model = NULL, *state = NULL;
        char field[32];
        int r;

        snprintf(field, sizeof field, "FL_ITERATION=%u", iteration);
        r = aggregate_sum_counts(base->model, vec, n, ret_data_size, ret_updates);
        if (r == -ENODATA) {
                /* Nothing accepted anywhere: the model and the state carry over unchanged. */
                r = model_copy(&model, base->model);
                if (r >= 0 && base->state)
                        r = model_copy(&state, base->state);
                if (r < 0)
                        return log_oom();
        } else if (r >= 0 && optimizer_is_plain_fedavg(opt))
                r = aggregate_finish(base->model, vec, n, &model, NULL, NULL);
        else if (r >= 0)
                r = optimizer_step(opt, base->model, base->state, vec, (double) *ret_data_size, &model, &state);
        if (r == -ENOMEM)
                return log_oom();
        if (r == -ERANGE) {
                log_struct(LOG_ERR, FIELDS(field), "The %s step of iteration %u leaves values no float holds; "
                           "keeping the model of iteration %u. Lower server_learning_rate (flctl instance set).",
                           optimizer_kind_to_string(opt->kind), iteration, m->model.iteration);
                return r;
        }
        if (r < 0) {
                log_struct(LOG_ERR, FIELDS(field), "The all-reduced sum of iteration %u is not a valid sum (%s); "
                           "keeping the model of iteration %u.", iteration, strerror(-r), m->model.iteration);
                return r;
        }
        *ret_model = TAKE_PTR(model);
        *ret_state = TAKE_PTR(state);
        return 0;
}

static int send_aggregate_done(Manager *m, uint32_t iteration, uint32_t attempt, uint64_t data_size,
                               uint32_t updates, int error) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        server_report_flush(m);         /* the scheduler ends the iteration with it */
        if (!m->link->conn || !m->link->registered)
                return -ENOTCONN;
        if (!o ||
            json_object_object_add(o, "iteration", json_object_new_int64(iteration)) < 0 ||
            json_object_object_add(o, "attempt", json_object_new_int64(attempt)) < 0)
                return -ENOMEM;
        if (error < 0) {
                if (json_object_object_add(o, "error", json_object_new_string(strerror(-error))) < 0)
                        return -ENOMEM;
        } else if (json_object_object_add(o, "checksum", json_object_new_string(m->model.checksum)) < 0 ||
                   json_object_object_add(o, "state_checksum", json_object_new_string(m->model.state_checksum)) < 0 ||
                   json_object_object_add(o, "data_size", json_object_new_int64((int64_t) data_size)) < 0 ||
                   json_object_object_add(o, "updates", json_object_new_int64(updates)) < 0)
                return -ENOMEM;
        return conn_send_json(m->link->conn, WIRE_AGGREGATE_DONE, o);
}

static void on_reduced(AllReduce *a, int error, uint32_t iteration, void *userdata) {
        _cleanup_(model_freep) Model *model = NULL, *state = NULL;
        Manager *m = userdata;
        Training *t = &m->training;
        _cleanup_free_ double *vec = TAKE_PTR(t->reduce_vec);
        size_t n = t->reduce_n;
        uint32_t attempt = t->reducing_attempt;
        uint64_t data_size = 0;
        uint32_t updates = 0;
        char field[32];
        int r;

        t->reducing = 0;
        t->reduce_n = 0;
        snprintf(field, sizeof field, "FL_ITERATION=%u", iteration);
        if (error < 0) {
                /* The scheduler asks again (a member that left comes back, or is declared dead). */
                log_struct(LOG_WARNING, FIELDS(field), "The all-reduce of iteration %u failed (%s); keeping the "
                           "model of iteration %u until the scheduler asks again.", iteration, strerror(-error),
                           m->model.iteration);
                (void) send_aggregate_done(m, iteration, attempt, 0, 0, error);
                return;
        }

        r = next_model(m, step_base(m, iteration), &t->reducing_optimizer, iteration, vec, n, &model, &state,
                       &data_size, &updates);
        if (r < 0)
                return;

        r = manager_commit_model(m, TAKE_PTR(model), TAKE_PTR(state), iteration);
        if (r < 0) {
                log_struct(LOG_ERR, FIELDS(field), "Failed to checkpoint the model of iteration %u in %s (%s); "
                           "keeping the model of iteration %u.", iteration, m->store_path, strerror(-r),
                           m->model.iteration);
                return;
        }
        log_struct(LOG_INFO, FIELDS(field), "Iteration %u aggregated: %u updates, data_size %" PRIu64 ", model "
                   "checksum %s.", iteration, updates, data_size, m->model.checksum);

        r = send_aggregate_done(m, iteration, attempt, data_size, updates, 0);
        if (r < 0)
                log_warning_errno(r, "Failed to tell the scheduler that iteration %u is aggregated: %m", iteration);
}

static ssize_t ring_find_self(const Manager *m, const AggregateMsg *msg) {
        for (size_t i = 0; i < msg->n_ring; i++)
                if (streq(msg->ring[i].node_id, m->node_id))
                        return (ssize_t) i;
        return -1;
}

int manager_on_aggregate(Manager *m, json_object *o) {
        _cleanup_(aggregate_msg_done) AggregateMsg msg = {};
        Training *t = &m->training;
        ssize_t self;
        int r;

        r = aggregate_msg_parse(o, &msg);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return log_warning_errno(r, "The scheduler %s sent an aggregation request that cannot be read.",
                                         m->scheduler);

        self = ring_find_self(m, &msg);
        if (self < 0) {
                log_error("The scheduler asked to aggregate iteration %u on a ring without this server (%s); "
                          "ignoring it.", msg.iteration, m->node_id);
                return 0;
        }
        if (!m->aggregate) {
                log_error("The scheduler asked to aggregate iteration %u, but this server has no model: the "
                          "all-reduce cannot include it. Start fl-serverd with --model_path.", msg.iteration);
                return 0;
        }
        if (t->reducing == msg.iteration && t->reducing_attempt == msg.attempt) {
                log_debug("The all-reduce of iteration %u is already running.", msg.iteration);
                return 0;
        }
        training_stop_reduce(t, m->allreduce);

        if (m->aggregate->iteration != msg.iteration) {
                /* Keeps the ring whole for the others: this server adds nothing. */
                log_warning("Aggregating iteration %u while this server's sum is of iteration %u; it contributes "
                            "nothing.", msg.iteration, m->aggregate->iteration);
                aggregate_reset(m->aggregate, msg.iteration);
        }

        r = aggregate_export(m->aggregate, &t->reduce_vec, &t->reduce_n);
        if (r < 0)
                return log_error_errno(r, "Failed to prepare the all-reduce of iteration %u: %m", msg.iteration), 0;
        log_info("Aggregating iteration %u over a ring of %zu server%s: %u local updates, data_size %" PRIu64 ".",
                 msg.iteration, msg.n_ring, msg.n_ring == 1 ? "" : "s", m->aggregate->updates,
                 m->aggregate->data_size);

        r = allreduce_start(m->allreduce, msg.iteration, msg.ring, msg.n_ring, (size_t) self, t->reduce_vec,
                            t->reduce_n, on_reduced, m);
        if (r < 0) {
                log_error_errno(r, "Failed to start the all-reduce of iteration %u: %m", msg.iteration);
                training_stop_reduce(t, NULL);
                return 0;
        }
        t->reducing = msg.iteration;
        t->reducing_attempt = msg.attempt;
        t->reducing_optimizer = msg.has_optimizer ? msg.optimizer : m->training.current.job.optimizer;
        return 0;
}
