/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "client-http.h"
#include "partition.h"

/* fl-client train: K simulated devices on Fashion-MNIST against a cluster,
 * one table row per iteration (see fl-client(1)).
 *
 * Partial participation, as phones take part: each iteration every device
 * asks to join, in an order drawn from the seed and the iteration's number
 * in this run, so that with the same seed the same devices are admitted.
 * They ask one at a time until one is turned away (the iteration is full),
 * except the first as many as were admitted last time, who ask together;
 * the rest then ask together and are turned away with a next_req_time. A
 * refused device comes back when next_req_time has passed or the iteration
 * that refused it is over, whichever is first (a simulation does not idle
 * through windows that closed early). */

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
        unsigned eval_every;            /* evaluate iterations that are multiples of it (and the last); >= 1 */
        const char *cacert;             /* https: the CA (PEM) instead of the system's */
} RunOptions;

/* Returns 0 when the job's iterations (or --iterations of them) are done;
 * a logged negative errno otherwise. */
int client_run(const RunOptions *o);
