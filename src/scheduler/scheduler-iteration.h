/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#include "conf.h"
#include "scheduler-admissions.h"

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
 *   the iteration with the model unchanged. */

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
} Job;

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
} Iteration;

/* A verdict for a device, in the device protocol's terms. */
typedef struct Verdict {
        uint32_t retcode;               /* FL_SUCCEED, FL_OUT_OF_TIME, ... */
        char reason[160];
        uint64_t next_req_time;         /* Unix ms */
        uint32_t data_size;             /* of the device, for an accepted update */
} Verdict;

void iteration_init(Iteration *it);
void iteration_done(Iteration *it);
/* Starts iteration `number` now, forgetting the previous one's devices. */
void iteration_begin(Iteration *it, const Job *job, uint32_t number, uint64_t now_ms);
void iteration_finish_job(Iteration *it);

int iteration_admit(Iteration *it, const Job *job, const char *fl_id, uint32_t data_size, uint64_t now_ms,
                    Verdict *ret);
int iteration_update(Iteration *it, const Job *job, const char *fl_id, uint32_t iteration, uint64_t now_ms,
                     Verdict *ret);

bool iteration_ready_to_aggregate(const Iteration *it, const Job *job);
/* The reason the iteration must be abandoned at now, or NULL. */
const char *iteration_expired(const Iteration *it, const Job *job, uint64_t now_ms, char *buf, size_t size);
/* The earliest pending deadline (Unix ms), or UINT64_MAX. */
uint64_t iteration_next_deadline(const Iteration *it);
/* When a device turned away now should come back (Unix ms). */
uint64_t iteration_next_req_time(const Iteration *it, const Job *job, uint64_t now_ms);
