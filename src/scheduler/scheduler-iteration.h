/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#include "conf.h"
#include "admissions.h"
#include "optimizer.h"

/* One training iteration, as the scheduler counts it (architecture.md, "One
 * iteration"). Pure bookkeeping with the time passed in, so the rules are
 * unit-tested without clocks:
 *
 * - startFLJob admits distinct fl_ids until start_fl_job_threshold of them
 *   are in, inside start_fl_job_time_window from the iteration's start; a
 *   repeated fl_id is answered again, not counted again.
 * - Reaching the threshold opens update_model_time_window. Updates are
 *   taken from admitted devices, once each, for this iteration only; when
 *   ceil(threshold * update_model_ratio) are in, the iteration aggregates.
 * - A window that expires first, or global_iteration_time_window, abandons
 *   the iteration with the model unchanged.
 * - Exactly once across crashes: a counted update remembers the server that
 *   holds it (its owner) and its digest. The same update asked for again
 *   (a device retrying an answer it never got, a restarted server replaying
 *   its log) is answered SUCCEED and not counted again; the owner is told
 *   to keep it, another server that it is held elsewhere - unless the owner
 *   is down while updates are still collected, then the asking server takes
 *   it over. A different update of a counted device is a RepeatRequest. An
 *   owner that is declared dead, or comes back without an update it held,
 *   loses it: the update is no longer counted (its device may send it
 *   again), so that the counts are always what the servers can sum. */

typedef struct Job {
        char fl_name[128];
        uint32_t fl_iteration_num;
        uint32_t start_fl_job_threshold;
        uint32_t start_fl_job_time_window;      /* ms */
        double update_model_ratio;
        uint32_t update_model_time_window;      /* ms */
        uint32_t global_iteration_time_window;  /* ms */
        uint32_t client_epoch_num;
        uint32_t client_batch_size;
        double client_learning_rate;
        OptimizerParams optimizer;              /* server_optimizer, server_* */
        double fedprox_mu;
} Job;

/* -ENAMETOOLONG for an fl_name too long, -ERANGE for a server optimizer
 * that optimizer_params_check() refuses. */
int job_from_config(Job *job, const FlConfig *c);
uint32_t job_update_threshold(const Job *job);
json_object *job_to_json(const Job *job);

typedef enum IterationPhase {
        ITERATION_COLLECTING,
        ITERATION_AGGREGATING,
        ITERATION_FINISHED,
        _ITERATION_PHASE_MAX,
        _ITERATION_PHASE_INVALID = -1,
} IterationPhase;

const char *iteration_phase_to_string(IterationPhase p);
IterationPhase iteration_phase_from_string(const char *s);

typedef struct Iteration {
        uint32_t number;                /* 1-based */
        IterationPhase phase;
        uint64_t start_ms;              /* Unix ms */
        uint64_t start_deadline_ms;
        uint64_t update_deadline_ms;    /* 0 until the admission threshold is reached */
        uint64_t global_deadline_ms;
        Admissions admissions;
        uint32_t n_updated;
        uint64_t data_size_updated;
        /* The servers holding counted updates: Admission.owner - 1 indexes these. */
        char **owners;
        uint32_t *owner_updates;        /* counted updates each holds */
        size_t n_owners;
} Iteration;

/* A verdict for a device, in the device protocol's terms. */
typedef struct Verdict {
        uint32_t retcode;               /* FL_SUCCEED, FL_OUT_OF_TIME, ... */
        char reason[160];
        uint64_t next_req_time;         /* Unix ms */
        uint32_t data_size;             /* of the device, for an accepted update */
        bool keep;                      /* update: the asking server holds it and sums it */
        bool changed;                   /* update: what is stored for the device changed */
} Verdict;

/* A server asking about an update (WIRE_UPDATE). */
typedef struct UpdateAsk {
        const char *fl_id;
        uint32_t iteration;
        uint64_t digest;                /* aggregate_digest() of what the device sent, not 0 */
        const char *server;             /* node id of the asking server */
        /* Whether the server holding an update is down (no connection): then
         * another may take it over. */
        bool (*server_gone)(const char *node_id, void *userdata);
        void *userdata;
        /* The device's request is outside the servers' replay window: the same
         * update counted already is answered as always, anything else is a
         * RequestError and nothing is counted. */
        bool stale;
} UpdateAsk;

void iteration_init(Iteration *it);
void iteration_done(Iteration *it);
/* Starts iteration `number` now, forgetting the previous one's devices. */
void iteration_begin(Iteration *it, const Job *job, uint32_t number, uint64_t now_ms);
void iteration_finish_job(Iteration *it);

int iteration_admit(Iteration *it, const Job *job, const char *fl_id, uint32_t data_size, uint64_t now_ms,
                    Verdict *ret);
int iteration_update(Iteration *it, const Job *job, const UpdateAsk *ask, uint64_t now_ms, Verdict *ret);

/* 1 + the index of node_id in it->owners, adding it (-ENOMEM, -E2BIG). */
int iteration_owner(Iteration *it, const char *node_id);
/* Marks counted updates of node_id unconfirmed (it registered again: it
 * must name them again). */
void iteration_unconfirm(Iteration *it, const char *node_id);
typedef void (*iteration_changed_t)(const char *fl_id, void *userdata);
/* Uncounts the updates node_id holds (all, or only the unconfirmed ones),
 * calling changed for each; returns how many. */
uint32_t iteration_drop_owner(Iteration *it, const char *node_id, bool only_unconfirmed, iteration_changed_t changed,
                              void *userdata);
/* Counts an update loaded from the store. */
int iteration_restore_update(Iteration *it, Admission *a, const char *owner, uint64_t digest);

bool iteration_ready_to_aggregate(const Iteration *it, const Job *job);
/* The reason the iteration must be abandoned at now, or NULL. */
const char *iteration_expired(const Iteration *it, const Job *job, uint64_t now_ms, char *buf, size_t size);
/* The earliest pending deadline (Unix ms), or UINT64_MAX. */
uint64_t iteration_next_deadline(const Iteration *it);
/* When a device turned away now should come back (Unix ms). */
uint64_t iteration_next_req_time(const Iteration *it, const Job *job, uint64_t now_ms);
