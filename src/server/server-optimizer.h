/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "model.h"
#include "optimizer.h"

/* The server optimizer's step (optimizer.h has the kinds and parameters,
 * docs/training.md the formulas): once per iteration, after the all-reduce,
 * from the model the iteration started from, its state, and the reduced sum
 * of the devices' uploads (aggregate_export()'s layout), to the next model
 * and the next state.
 *
 * Every server computes it alone and all must agree bit for bit (the
 * scheduler compares the checksums): each value is computed by itself, in
 * doubles, with +, -, *, / and sqrt only (correctly rounded in IEEE 754;
 * no pow, no library call that may differ between hosts), and this file is
 * compiled without contraction into fused multiply-adds (server.am), then
 * rounded once to float. The state is kept in floats, like the model.
 *
 * The state is a Model of its own: one tensor per model tensor and slot,
 * named "<kind>/<slot>/<tensor name>" ("fedadam/m/conv1.weight",
 * "fedadam/v/conv1.weight"), all of slot m in model order, then all of v.
 * So it travels and is stored as a FeatureMapList, with the checksum of
 * model_checksum(), and tells its kind by itself. FedAvg keeps none (NULL).
 * A state of another kind than the one in force (newInstance changed
 * server_optimizer) is not used: the new kind starts from zero moments,
 * v from tau^2 (Reddi et al.'s v_{-1} >= tau^2). */

/* The slots a kind keeps per model tensor: 0 (fedavg), 1 (fedavgm: m),
 * 2 (fedadam, fedyogi, fedadagrad: m and v). */
size_t optimizer_state_slots(OptimizerKind k);

/* Whether state is a well-formed state for model: 0 and its kind, else
 * -EBADMSG (names, sizes or values that a step never writes: non-finite
 * numbers, a negative second moment). */
int optimizer_state_check(const Model *state, const Model *model, OptimizerKind *ret_kind);

/* One step. sum holds model_total_size(old) values in model order, summed
 * uploads that data_size (> 0) divides into the average. state may be NULL
 * or of another kind (then the kind starts afresh). *ret_state is NULL when
 * the kind keeps no state. -EBADMSG when the average is not finite or no
 * float can hold it, -ERANGE when the step leaves a value no float holds
 * (the learning rate is too large for this model), -EINVAL for bad
 * arguments. */
int optimizer_step(const OptimizerParams *p, const Model *old, const Model *state, const double *sum,
                   double data_size, Model **ret_model, Model **ret_state);
