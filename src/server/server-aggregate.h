/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "fl-messages.h"
#include "model.h"

/* The running sum of one iteration on one server: every accepted update is
 * added as it arrives, so memory stays one vector of the model's size
 * however many devices send. Devices upload their weights already
 * multiplied by their data_size (device-protocol.md); the new model is
 * sum / total data_size (FedAvg).
 *
 * The sum is kept in doubles. Each float update is exact in a double, and a
 * double's 53-bit mantissa leaves 29 bits above a float's: the rounding of a
 * sum of up to millions of float terms stays far below the last bit of the
 * float it is finally rounded to. So the averaged model does not depend on
 * the order the updates arrived in, nor on which server summed which part
 * (within 1e-6 relative; almost always bit for bit), which a float sum
 * could not promise. Cancellation (a sum near zero of large terms) is the
 * one case where the relative error grows; it stays bounded by the sum of
 * the terms' magnitudes times n * 2^-53.
 *
 * Not BLAS: there is no mixed float-into-double axpy, and converting each
 * update to doubles first would double the memory traffic of what is a
 * memory-bound loop; the plain loop below is vectorized by the compiler. */

typedef struct Aggregate {
        size_t n_tensors;
        char **names;                   /* the model's, in model order */
        size_t *sizes;
        size_t *offsets;                /* of each tensor in sum */
        size_t *by_name;                /* tensor indices sorted by name */
        size_t total;                   /* floats in the model */

        uint32_t iteration;             /* the sum belongs to this iteration */
        double *sum;                    /* total values */
        uint64_t data_size;             /* sum of the accepted devices' data_size */
        uint32_t updates;               /* accepted updates */
} Aggregate;

/* An empty sum shaped like the model. */
int aggregate_new(Aggregate **ret, const Model *shape);
Aggregate *aggregate_free(Aggregate *a);
DEFINE_TRIVIAL_CLEANUP_FUNC(Aggregate *, aggregate_free);

/* Zeroes the sum and starts collecting for iteration. */
void aggregate_reset(Aggregate *a, uint32_t iteration);

/* Checks an update against the model: each of the model's tensors exactly
 * once, by name and in any order, with its size, and only finite values.
 * ordered (n_tensors entries) receives each tensor's data in model order.
 * -EBADMSG with a reason for the device when the update does not fit. */
int aggregate_check(const Aggregate *a, const FlFeatureMap *maps, size_t n, const float **ordered,
                    char reason[static FL_REASON_MAX]);
/* The digest (digest.h) of a checked update: its tensors in model order, so
 * that a device sending the same weights again is recognised. */
uint64_t aggregate_digest(const Aggregate *a, const float *const *ordered);
/* Adds an update that aggregate_check() has accepted (ordered as it
 * returned). -EINVAL for data_size 0, -EOVERFLOW past 2^53 in total. */
int aggregate_add_checked(Aggregate *a, const float *const *ordered, uint32_t data_size);
/* The two halves of aggregate_add_checked(), for a server replaying its log:
 * the weights as soon as an update is read, the count once the scheduler
 * says it is this server's. */
void aggregate_add_weights(Aggregate *a, const float *const *ordered);
int aggregate_count(Aggregate *a, uint32_t data_size);
/* Both: the sum is untouched unless it returns 0. */
int aggregate_add(Aggregate *a, const FlFeatureMap *maps, size_t n, uint32_t data_size,
                  char reason[static FL_REASON_MAX]);

/* The vector the servers all-reduce: [sum..., data_size, updates], total+2
 * doubles, malloc()ed (the sum itself stays untouched during the reduce). */
int aggregate_export(const Aggregate *a, double **ret, size_t *ret_n);

/* The counts at the end of an all-reduced vector (as aggregate_export()
 * shapes it), checked: 0, -ENODATA when no data was summed, -EBADMSG when
 * the vector has the wrong length or a count that is not a whole number. */
int aggregate_sum_counts(const Model *shape, const double *vec, size_t n, uint64_t *ret_data_size,
                         uint32_t *ret_updates);

/* The new model from an all-reduced vector (as aggregate_export() shapes it):
 * sum / data_size, rounded to floats. -ENODATA when no data was summed (keep
 * the old model), -EBADMSG when the vector cannot be a sum of valid
 * updates (wrong length, a non-finite value, a data_size that is not a
 * whole number): it came from the network. */
int aggregate_finish(const Model *shape, const double *vec, size_t n, Model **ret, uint64_t *ret_data_size,
                     uint32_t *ret_updates);
