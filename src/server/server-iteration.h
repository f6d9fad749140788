/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdint.h>

#include "conf.h"
#include "model.h"
#include "optimizer.h"
#include "server-allreduce.h"

/* The iteration as the scheduler announces it (WIRE_ITERATION), and the end
 * of an iteration on this server (WIRE_AGGREGATE): all-reduce the running
 * sums over the ring, average, checkpoint, switch the model, answer
 * WIRE_AGGREGATE_DONE. */

typedef struct Manager Manager;

typedef enum TrainingPhase {
        TRAINING_COLLECTING,
        TRAINING_AGGREGATING,
        TRAINING_FINISHED,
        _TRAINING_PHASE_MAX,
        _TRAINING_PHASE_INVALID = -1,
} TrainingPhase;

const char *training_phase_to_string(TrainingPhase p);
TrainingPhase training_phase_from_string(const char *s);

/* The job parameters the devices are told (FLPlan) and checked against. */
typedef struct TrainingJob {
        char fl_name[128];
        uint32_t fl_iteration_num;
        uint32_t start_fl_job_threshold;
        double update_model_ratio;
        uint32_t client_epoch_num;
        uint32_t client_batch_size;
        double client_learning_rate;
        OptimizerParams optimizer;      /* what the servers apply (docs/training.md) */
        double fedprox_mu;              /* sent to devices in the plan */
} TrainingJob;

typedef struct IterationMsg {
        uint32_t iteration;
        TrainingPhase phase;
        uint32_t abandoned;             /* 0, or an iteration that ended without a model */
        uint64_t next_req_time;         /* Unix ms */
        TrainingJob job;
        /* The model the cluster last committed ("model_iteration",
         * "model_checksum"); has_model is false from a scheduler that does
         * not name it. The checksum is "" for the initial model. */
        bool has_model;
        uint32_t model_iteration;
        char model_checksum[MODEL_CHECKSUM_STRING_MAX];
        /* The checksum of the optimizer state that goes with that model
         * ("state_checksum", "" for none); has_state is false from a
         * scheduler that does not name it (then it is not compared). */
        bool has_state;
        char state_checksum[MODEL_CHECKSUM_STRING_MAX];
} IterationMsg;

typedef struct AggregateMsg {
        uint32_t iteration;
        uint32_t attempt;               /* 0 from a scheduler that does not number them */
        RingMember *ring;
        size_t n_ring;
        /* The step to apply after the all-reduce ("optimizer"); without it,
         * the one of the job last announced. */
        bool has_optimizer;
        OptimizerParams optimizer;
} AggregateMsg;

#define TRAINING_RING_MAX 65536U

/* Parsers of the scheduler's messages: -EBADMSG when a required key is
 * missing or mistyped or a value out of range. Keys the job leaves out keep
 * the values of defaults (the server's own configuration). */
int iteration_msg_parse(json_object *o, const FlConfig *defaults, IterationMsg *ret);
int aggregate_msg_parse(json_object *o, AggregateMsg *ret);
void aggregate_msg_done(AggregateMsg *msg);

typedef struct Training {
        bool known;                     /* a WIRE_ITERATION came on the current connection */
        IterationMsg current;           /* the last one, kept across reconnects */
        bool seen;                      /* current is set */

        uint32_t reducing;              /* the iteration being all-reduced, 0: none */
        uint32_t reducing_attempt;      /* its AGGREGATE's attempt */
        OptimizerParams reducing_optimizer; /* the step it ends with */
        double *reduce_vec;
        size_t reduce_n;
} Training;

void training_done(Training *t);

/* Frame handlers; a negative return closes the link (the message was bad). */
int manager_on_iteration(Manager *m, json_object *o);
int manager_on_aggregate(Manager *m, json_object *o);
/* The link to the scheduler is gone: the iteration is no longer known. */
void manager_training_link_lost(Manager *m);
/* The announced iteration, in and out of the server database. */
void training_save(Manager *m, json_object *o);
int training_load(Manager *m);

#define SERVER_ALLREDUCE_TIMEOUT_USEC (60U * USEC_PER_SEC)
