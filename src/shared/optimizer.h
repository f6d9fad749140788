/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* The server optimizer of a job (docs/training.md): what the servers apply,
 * once per iteration after the all-reduce, to the averaged update. Its
 * names, defaults and ranges live here, for the configuration (conf.c), the
 * scheduler's job, the messages to the servers and the servers' step
 * (server-optimizer.c).
 *
 *   fedavg      x + lr * delta (lr 1: the average itself, plain FedAvg)
 *   fedavgm     m = momentum * m + delta; x + lr * m
 *   fedadam     Reddi et al. 2021, Algorithm 2 (no bias correction):
 *   fedyogi       m = beta1 * m + (1 - beta1) * delta, v per the kind,
 *   fedadagrad    x + lr * m / (sqrt(v) + tau)
 *
 * delta is the average of the devices' models minus the model they started
 * from. */

typedef enum OptimizerKind {
        OPTIMIZER_FEDAVG,
        OPTIMIZER_FEDAVGM,
        OPTIMIZER_FEDADAM,
        OPTIMIZER_FEDYOGI,
        OPTIMIZER_FEDADAGRAD,
        _OPTIMIZER_KIND_MAX,
        _OPTIMIZER_KIND_INVALID = -1,
} OptimizerKind;

typedef struct OptimizerParams {
        OptimizerKind kind;             /* server_optimizer */
        double learning_rate;           /* server_learning_rate; 0: the kind's default */
        double momentum;                /* server_momentum (fedavgm) */
        double beta1, beta2;            /* server_beta1, server_beta2 (fedadam, fedyogi, fedadagrad) */
        double tau;                     /* server_tau (fedadam, fedyogi, fedadagrad) */
} OptimizerParams;

/* The ranges, checked at start (conf.c), by newInstance and on every
 * message that carries them. */
#define OPTIMIZER_LEARNING_RATE_MAX 1000.0      /* [0, 1000], 0: the kind's default */
#define OPTIMIZER_TAU_MAX 1.0                   /* (0, 1] */
/* server_momentum, server_beta1, server_beta2: [0, 1) */
#define FEDPROX_MU_MAX 1000.0                   /* fedprox_mu: [0, 1000] */

#define OPTIMIZER_DEFAULT_MOMENTUM 0.9
#define OPTIMIZER_DEFAULT_BETA1 0.9
#define OPTIMIZER_DEFAULT_BETA2 0.99
#define OPTIMIZER_DEFAULT_TAU 1e-3

#define OPTIMIZER_PARAMS_DEFAULT                        \
        ((OptimizerParams) {                            \
                .kind = OPTIMIZER_FEDAVG,               \
                .momentum = OPTIMIZER_DEFAULT_MOMENTUM, \
                .beta1 = OPTIMIZER_DEFAULT_BETA1,       \
                .beta2 = OPTIMIZER_DEFAULT_BETA2,       \
                .tau = OPTIMIZER_DEFAULT_TAU,           \
        })

const char *optimizer_kind_to_string(OptimizerKind k);
OptimizerKind optimizer_kind_from_string(const char *s);
/* "fedavg, fedavgm, fedadam, fedyogi, fedadagrad", for messages. */
#define OPTIMIZER_KIND_NAMES "fedavg, fedavgm, fedadam, fedyogi, fedadagrad"

/* server_learning_rate when it is not given. */
double optimizer_default_learning_rate(OptimizerKind k);
/* The learning rate in force: the given one, else the kind's default. */
double optimizer_learning_rate(const OptimizerParams *p);
/* Whether a step does anything but take the average: FedAvg at rate 1 is
 * the average itself (and keeps no state). */
bool optimizer_is_plain_fedavg(const OptimizerParams *p);

/* Every value in its range (and a known kind); else -ERANGE with what is
 * wrong in error. */
int optimizer_params_check(const OptimizerParams *p, char *error, size_t size);

/* Adds server_optimizer and the server_* keys to o, the learning rate as in
 * force (explicit), or as given when as_given (0 for the default). */
int optimizer_params_to_json(const OptimizerParams *p, json_object *o, bool as_given);
/* Reads the keys optimizer_params_to_json() writes over *p (absent keys keep
 * their values), checked: -EBADMSG for a wrong type, a value out of range or
 * an unknown kind. For messages from the scheduler. */
int optimizer_params_from_json(json_object *o, OptimizerParams *p);

/* The FLPlan's Aggregation.type for devices of MindSpore 1.3's generation
 * (device-protocol.md, AggregationType FedAvg=0, FedAdam=1, FedAdagrag=2):
 * the nearest name 1.3 has for what the servers do. FedProx has no 1.3
 * type: fedprox_mu travels in Aggregation.weights (docs/training.md). */
uint8_t optimizer_plan_aggregation_type(const OptimizerParams *p, double fedprox_mu);
