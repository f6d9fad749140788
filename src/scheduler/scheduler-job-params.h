/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>

#include "scheduler-iteration.h"

/* The hyper-parameters a newInstance changes, typed: which ones are given
 * and their values. The management adapters (REST, D-Bus) build one from a
 * request, the scheduler's database from what it stored; the core applies
 * it over the job in force and never sees the JSON. */

typedef enum JobParam {
        JOB_PARAM_FL_NAME                       = 1U << 0,
        JOB_PARAM_FL_ITERATION_NUM              = 1U << 1,
        JOB_PARAM_START_FL_JOB_THRESHOLD        = 1U << 2,
        JOB_PARAM_START_FL_JOB_TIME_WINDOW      = 1U << 3,
        JOB_PARAM_UPDATE_MODEL_RATIO            = 1U << 4,
        JOB_PARAM_UPDATE_MODEL_TIME_WINDOW      = 1U << 5,
        JOB_PARAM_GLOBAL_ITERATION_TIME_WINDOW  = 1U << 6,
        JOB_PARAM_CLIENT_EPOCH_NUM              = 1U << 7,
        JOB_PARAM_CLIENT_BATCH_SIZE             = 1U << 8,
        JOB_PARAM_CLIENT_LEARNING_RATE          = 1U << 9,
        JOB_PARAM_SERVER_OPTIMIZER              = 1U << 10,
        JOB_PARAM_SERVER_LEARNING_RATE          = 1U << 11,
        JOB_PARAM_SERVER_MOMENTUM               = 1U << 12,
        JOB_PARAM_SERVER_BETA1                  = 1U << 13,
        JOB_PARAM_SERVER_BETA2                  = 1U << 14,
        JOB_PARAM_SERVER_TAU                    = 1U << 15,
        JOB_PARAM_FEDPROX_MU                    = 1U << 16,
} JobParam;

typedef struct JobParams {
        unsigned set;           /* JobParam bits: the fields of values that are given */
        Job values;
} JobParams;

/* From a JSON object of hyper-parameters (MindSpore's keys, as REST's
 * /newInstance body), each checked for its type and range by the
 * configuration's own table. On refusal (-EINVAL, -ERANGE, -ENOENT) a
 * message naming the key is put in error. */
int job_params_from_json(JobParams *ret, json_object *o, char *error, size_t size);

/* base with the given fields of p over it. Another server_optimizer
 * without a server_learning_rate gets its own default rate (0), not the
 * rate the last one was given. */
void job_params_apply(Job *ret, const Job *base, const JobParams *p);
