/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fl-messages.h"
#include "scheduler-iteration.h"

/* While the servers aggregate, devices are told to come back this soon. */
#define AGGREGATING_RETRY_MS 1000

int job_from_config(Job *job, const FlConfig *c) {
        char error[128];

        if (strlen(c->fl_name) >= sizeof job->fl_name)
                return -ENAMETOOLONG;
        *job = (Job) {
                .fl_iteration_num = c->fl_iteration_num,
                .start_fl_job_threshold = c->start_fl_job_threshold,
                .start_fl_job_time_window = c->start_fl_job_time_window,
                .update_model_ratio = c->update_model_ratio,
                .update_model_time_window = c->update_model_time_window,
                .global_iteration_time_window = c->global_iteration_time_window,
                .client_epoch_num = c->client_epoch_num,
                .client_batch_size = c->client_batch_size,
                .client_learning_rate = c->client_learning_rate,
                .optimizer = {
                        .kind = optimizer_kind_from_string(c->server_optimizer),
                        .learning_rate = c->server_learning_rate,
                        .momentum = c->server_momentum,
                        .beta1 = c->server_beta1,
                        .beta2 = c->server_beta2,
                        .tau = c->server_tau,
                },
                .fedprox_mu = c->fedprox_mu,
        };
        strcpy(job->fl_name, c->fl_name);
        /* conf.c checked each value; this is the one place that sees them together. */
        return optimizer_params_check(&job->optimizer, error, sizeof error);
}

uint32_t job_update_threshold(const Job *job) {
        double t = ceil((double) job->start_fl_job_threshold * job->update_model_ratio - 1e-9);

        return t < 1 ? 1 : (uint32_t) t;
}

json_object *job_to_json(const Job *job) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "fl_name", json_object_new_string(job->fl_name));
        json_object_object_add(o, "fl_iteration_num", json_object_new_int64(job->fl_iteration_num));
        json_object_object_add(o, "start_fl_job_threshold", json_object_new_int64(job->start_fl_job_threshold));
        json_object_object_add(o, "start_fl_job_time_window", json_object_new_int64(job->start_fl_job_time_window));
        json_object_object_add(o, "update_model_ratio", json_object_new_double(job->update_model_ratio));
        json_object_object_add(o, "update_model_time_window", json_object_new_int64(job->update_model_time_window));
        json_object_object_add(o, "global_iteration_time_window", json_object_new_int64(job->global_iteration_time_window));
        json_object_object_add(o, "client_epoch_num", json_object_new_int64(job->client_epoch_num));
        json_object_object_add(o, "client_batch_size", json_object_new_int64(job->client_batch_size));
        json_object_object_add(o, "client_learning_rate", json_object_new_double(job->client_learning_rate));
        /* As given: a learning rate left to the optimizer's default stays 0
         * (the stored job; queryInstance adds the one in force). */
        (void) optimizer_params_to_json(&job->optimizer, o, true);
        json_object_object_add(o, "fedprox_mu", json_object_new_double(job->fedprox_mu));
        return o;
}

static const char *const phase_table[_ITERATION_PHASE_MAX] = {
        [ITERATION_COLLECTING] = "COLLECTING",
        [ITERATION_AGGREGATING] = "AGGREGATING",
        [ITERATION_FINISHED] = "FINISHED",
};

const char *iteration_phase_to_string(IterationPhase p) {
        if (p < 0 || p >= _ITERATION_PHASE_MAX)
                return NULL;
        return phase_table[p];
}

IterationPhase iteration_phase_from_string(const char *s) {
        for (int i = 0; s && i < _ITERATION_PHASE_MAX; i++)
                if (streq(phase_table[i], s))
                        return (IterationPhase) i;
        return _ITERATION_PHASE_INVALID;
}

void iteration_init(Iteration *it) {
        *it = (Iteration) {};
        admissions_init(&it->admissions);
}

static void owners_clear(Iteration *it) {
        for (size_t i = 0; i < it->n_owners; i++)
                free(it->owners[i]);
        it->owners = mfree(it->owners);
        it->owner_updates = mfree(it->owner_updates);
        it->n_owners = 0;
}

void iteration_done(Iteration *it) {
        admissions_clear(&it->admissions);
        owners_clear(it);
}

void iteration_begin(Iteration *it, const Job *job, uint32_t number, uint64_t now_ms) {
        admissions_clear(&it->admissions);
        owners_clear(it);
        *it = (Iteration) {
                .number = number,
                .phase = ITERATION_COLLECTING,
                .start_ms = now_ms,
                .start_deadline_ms = now_ms + job->start_fl_job_time_window,
                .global_deadline_ms = now_ms + job->global_iteration_time_window,
        };
}

void iteration_finish_job(Iteration *it) {
        admissions_clear(&it->admissions);
        owners_clear(it);
        it->phase = ITERATION_FINISHED;
        it->start_deadline_ms = it->update_deadline_ms = it->global_deadline_ms = 0;
        it->n_updated = 0;
        it->data_size_updated = 0;
}

uint64_t iteration_next_req_time(const Iteration *it, const Job *job, uint64_t now_ms) {
        uint64_t t;

        if (it->phase == ITERATION_AGGREGATING)
                return now_ms + AGGREGATING_RETRY_MS;
        if (it->phase != ITERATION_COLLECTING)
                return now_ms;
        /* The iteration's remaining windows: then the next one starts. */
        t = it->update_deadline_ms ?: it->start_deadline_ms + job->update_model_time_window;
        t = MIN(t, it->global_deadline_ms);
        return MAX(t, now_ms);
}

static void verdict(Verdict *v, uint32_t retcode, uint64_t next_req_time, const char *format, ...) _printf_(4, 5);
static void verdict(Verdict *v, uint32_t retcode, uint64_t next_req_time, const char *format, ...) {
        va_list ap;

        v->retcode = retcode;
        v->next_req_time = next_req_time;
        va_start(ap, format);
        vsnprintf(v->reason, sizeof v->reason, format, ap);
        va_end(ap);
}

int iteration_admit(Iteration *it, const Job *job, const char *fl_id, uint32_t data_size, uint64_t now_ms,
                    Verdict *v) {
        uint64_t next = iteration_next_req_time(it, job, now_ms);
        Admission *a;
        int r;

        *v = (Verdict) {};
        if (!fl_id_is_valid(fl_id))
                return -EINVAL;

        a = admissions_find(&it->admissions, fl_id);
        if (a) {
                /* A retry of a device already in: the same answer, counted once. */
                v->data_size = a->data_size;
                verdict(v, FL_SUCCEED, next, "Device %s is already selected in iteration %u.", fl_id, it->number);
                return 0;
        }
        if (it->phase != ITERATION_COLLECTING) {
                verdict(v, FL_OUT_OF_TIME, next, "Iteration %u is %s; startFLJob is closed.", it->number,
                        iteration_phase_to_string(it->phase));
                return 0;
        }
        if (it->admissions.n_entries >= job->start_fl_job_threshold) {
                verdict(v, FL_OUT_OF_TIME, next, "The startFLJob threshold %u of iteration %u is reached.",
                        job->start_fl_job_threshold, it->number);
                return 0;
        }
        if (now_ms >= it->start_deadline_ms) {
                verdict(v, FL_OUT_OF_TIME, next, "The startFLJob window of iteration %u is over.", it->number);
                return 0;
        }

        r = admissions_add(&it->admissions, fl_id, data_size, NULL);
        if (r < 0)
                return r;
        if (it->admissions.n_entries == job->start_fl_job_threshold)
                it->update_deadline_ms = now_ms + job->update_model_time_window;

        v->data_size = data_size;
        verdict(v, FL_SUCCEED, iteration_next_req_time(it, job, now_ms), "Device %s selected in iteration %u.",
                fl_id, it->number);
        return 0;
}

static int owner_of(const Iteration *it, const char *node_id) {
        for (size_t i = 0; i < it->n_owners; i++)
                if (streq(it->owners[i], node_id))
                        return (int) i + 1;
        return 0;
}

int iteration_owner(Iteration *it, const char *node_id) {
        int owner = owner_of(it, node_id);
        char **owners;
        uint32_t *counts;

        if (owner > 0)
                return owner;
        if (it->n_owners >= UINT16_MAX)
                return -E2BIG;
        owners = realloc(it->owners, (it->n_owners + 1) * sizeof *owners);
        if (!owners)
                return -ENOMEM;
        it->owners = owners;
        counts = realloc(it->owner_updates, (it->n_owners + 1) * sizeof *counts);
        if (!counts)
                return -ENOMEM;
        it->owner_updates = counts;
        it->owners[it->n_owners] = strdup(node_id);
        if (!it->owners[it->n_owners])
                return -ENOMEM;
        it->owner_updates[it->n_owners] = 0;
        return (int) ++it->n_owners;
}

static void count_update(Iteration *it, Admission *a, int owner, uint64_t digest) {
        a->updated = a->confirmed = true;
        a->owner = (uint16_t) owner;
        a->digest = digest;
        it->owner_updates[owner - 1]++;
        it->n_updated++;
        it->data_size_updated += a->data_size;
}

static void uncount_update(Iteration *it, Admission *a) {
        it->owner_updates[a->owner - 1]--;
        it->n_updated--;
        it->data_size_updated -= a->data_size;
        a->updated = a->confirmed = false;
        a->owner = 0;
        a->digest = 0;
}

int iteration_update(Iteration *it, const Job *job, const UpdateAsk *ask, uint64_t now_ms, Verdict *v) {
        uint64_t next = iteration_next_req_time(it, job, now_ms);
        Admission *a;
        int owner;

        *v = (Verdict) {};
        if (!fl_id_is_valid(ask->fl_id) || ask->digest == 0 || isempty(ask->server))
                return -EINVAL;

        a = admissions_find(&it->admissions, ask->fl_id);
        if (a && a->updated && a->digest == ask->digest && ask->iteration == it->number &&
            it->phase != ITERATION_FINISHED) {
                /* The same update again: whoever asks, it is counted once. */
                const char *holder = it->owners[a->owner - 1];

                v->data_size = a->data_size;
                if (streq(holder, ask->server)) {
                        a->confirmed = true;
                        v->keep = true;
                        verdict(v, FL_SUCCEED, next, "The update of device %s in iteration %u is accepted.",
                                ask->fl_id, it->number);
                        return 0;
                }
                if (it->phase == ITERATION_COLLECTING && ask->server_gone &&
                    ask->server_gone(holder, ask->userdata)) {
                        owner = iteration_owner(it, ask->server);
                        if (owner < 0)
                                return owner;
                        uncount_update(it, a);
                        count_update(it, a, owner, ask->digest);
                        v->keep = v->changed = true;
                        verdict(v, FL_SUCCEED, next, "The update of device %s in iteration %u is accepted (taken "
                                "over from a server that is down).", ask->fl_id, it->number);
                        return 0;
                }
                verdict(v, FL_SUCCEED, next, "The update of device %s in iteration %u was already accepted.",
                        ask->fl_id, it->number);
                return 0;
        }
        if (ask->stale) {
                verdict(v, FL_REQUEST_ERROR, next, "The request of device %s is outside the replay window "
                        "(replay_attack_time_diff) and no identical update of it is counted in iteration %u.",
                        ask->fl_id, it->number);
                return 0;
        }

        if (it->phase != ITERATION_COLLECTING || ask->iteration != it->number) {
                verdict(v, FL_OUT_OF_TIME, next, "The update is for iteration %u, the cluster is in iteration %u (%s).",
                        ask->iteration, it->number, iteration_phase_to_string(it->phase));
                return 0;
        }
        if (!a) {
                verdict(v, FL_NOT_SELECTED, next, "Device %s was not selected in iteration %u.", ask->fl_id,
                        it->number);
                return 0;
        }
        if (a->updated) {
                v->data_size = a->data_size;
                verdict(v, FL_REPEAT_REQUEST, next, "Device %s already sent a different update in iteration %u.",
                        ask->fl_id, it->number);
                return 0;
        }
        if (it->update_deadline_ms != 0 && now_ms >= it->update_deadline_ms) {
                verdict(v, FL_OUT_OF_TIME, next, "The updateModel window of iteration %u is over.", it->number);
                return 0;
        }

        owner = iteration_owner(it, ask->server);
        if (owner < 0)
                return owner;
        count_update(it, a, owner, ask->digest);
        v->data_size = a->data_size;
        v->keep = v->changed = true;
        verdict(v, FL_SUCCEED, next, "Update of device %s accepted in iteration %u.", ask->fl_id, it->number);
        return 0;
}

void iteration_unconfirm(Iteration *it, const char *node_id) {
        int owner = owner_of(it, node_id);

        if (owner == 0 || it->owner_updates[owner - 1] == 0)
                return;
        for (size_t i = 0; i < it->admissions.n_slots; i++) {
                Admission *a = &it->admissions.slots[i];

                if (a->fl_id && a->updated && a->owner == owner)
                        a->confirmed = false;
        }
}

uint32_t iteration_drop_owner(Iteration *it, const char *node_id, bool only_unconfirmed, iteration_changed_t changed,
                              void *userdata) {
        int owner = owner_of(it, node_id);
        uint32_t n = 0;

        if (owner == 0 || it->owner_updates[owner - 1] == 0)
                return 0;
        for (size_t i = 0; i < it->admissions.n_slots; i++) {
                Admission *a = &it->admissions.slots[i];

                if (!a->fl_id || !a->updated || a->owner != owner || (only_unconfirmed && a->confirmed))
                        continue;
                uncount_update(it, a);
                n++;
                if (changed)
                        changed(a->fl_id, userdata);
        }
        return n;
}

int iteration_restore_update(Iteration *it, Admission *a, const char *owner, uint64_t digest) {
        int o;

        if (a->updated || digest == 0 || !node_id_is_valid(owner))
                return -EUCLEAN;
        o = iteration_owner(it, owner);
        if (o < 0)
                return o;
        count_update(it, a, o, digest);
        a->confirmed = false;   /* until its server registers and names it */
        return 0;
}

bool iteration_ready_to_aggregate(const Iteration *it, const Job *job) {
        return it->phase == ITERATION_COLLECTING && it->n_updated >= job_update_threshold(job);
}

const char *iteration_expired(const Iteration *it, const Job *job, uint64_t now_ms, char *buf, size_t size) {
        if (it->phase == ITERATION_FINISHED)
                return NULL;
        if (now_ms >= it->global_deadline_ms) {
                snprintf(buf, size, "global_iteration_time_window (%u ms) expired", job->global_iteration_time_window);
                return buf;
        }
        if (it->phase != ITERATION_COLLECTING || iteration_ready_to_aggregate(it, job))
                return NULL;
        if (it->update_deadline_ms == 0 && now_ms >= it->start_deadline_ms) {
                snprintf(buf, size, "start_fl_job_time_window (%u ms) expired with %zu of %u devices",
                         job->start_fl_job_time_window, it->admissions.n_entries, job->start_fl_job_threshold);
                return buf;
        }
        if (it->update_deadline_ms != 0 && now_ms >= it->update_deadline_ms) {
                snprintf(buf, size, "update_model_time_window (%u ms) expired with %u of %u updates",
                         job->update_model_time_window, it->n_updated, job_update_threshold(job));
                return buf;
        }
        return NULL;
}

uint64_t iteration_next_deadline(const Iteration *it) {
        uint64_t t = UINT64_MAX;

        if (it->phase == ITERATION_FINISHED)
                return t;
        t = it->global_deadline_ms;
        if (it->phase == ITERATION_COLLECTING)
                t = MIN(t, it->update_deadline_ms ?: it->start_deadline_ms);
        return t;
}
