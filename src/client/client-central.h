/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "trainer.h"

/* fl-client central: the reference a federated run is measured against.
 * One model, trained by the devices' own trainer (device_train()) on the
 * whole training set, as one machine would, for a given number of samples:
 * passes over the training set in a new order each, the last one cut
 * short. The model starts from the weights init-model writes for the same
 * seed. One table row after each pass (see fl-client(1)). */

typedef struct CentralOptions {
        const char *data_dir;
        uint64_t seed;
        uint64_t samples;               /* > 0 */
        TrainPlan plan;                 /* epochs is ignored: one per pass */
        const char *csv_path;           /* NULL: no CSV */
        const char *model_path;         /* NULL: do not save the model */
} CentralOptions;

/* 0, or a logged negative errno. */
int client_central(const CentralOptions *o);
