/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "client-http.h"
#include "partition.h"

/* fl-client train: K simulated devices on Fashion-MNIST against a cluster,
 * one table row per iteration (see fl-client(1)). */

typedef struct RunOptions {
        ServerList servers;
        size_t n_devices;
        PartitionSpec partition;
        const char *data_dir;
        uint64_t seed;
        unsigned iterations;            /* 0: the plan's fl_iteration_num */
        const char *csv_path;           /* NULL: no CSV */
        const char *model_path;         /* NULL: do not save the last model */
        size_t threads;
        const char *fl_name;
        float momentum;
        uint64_t timeout_usec;          /* the longest any one wait may take */
} RunOptions;

/* Returns 0 when the job's iterations (or --iterations of them) are done;
 * a logged negative errno otherwise. */
int client_run(const RunOptions *o);
