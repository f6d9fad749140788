/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "metrics.h"

/* A server's Prometheus metrics (docs/operations.md has the list): what its
 * devices asked and how it went, its update log, its all-reduces and
 * replays; served on metrics_port (off by default, so that the device port
 * stays the protocol's). One set per process: each server is a process. The
 * families are NULL until server_metrics_start(), which makes every call
 * below a no-op in the unit tests. */

typedef struct Manager Manager;

typedef struct ServerMetrics {
        MetricsRegistry *registry;
        MetricFamily *requests;                 /* {round, retcode} */
        MetricFamily *request_seconds;          /* {round} */
        MetricFamily *received_bytes;           /* {round} */
        MetricFamily *sent_bytes;               /* {round} */
        MetricFamily *log_commit_seconds;
        MetricFamily *log_commit_updates;
        MetricFamily *allreduces;               /* {result} */
        MetricFamily *allreduce_seconds;
        MetricFamily *allreduce_sent_bytes;
        MetricFamily *allreduce_received_bytes;
        MetricFamily *replays;
        MetricFamily *replayed_updates;
        MetricFamily *device_metrics;           /* pushMetrics received */
        /* Set by the collector, from the Manager. */
        MetricFamily *iteration, *model_iteration, *in_sync, *rank, *iteration_updates, *waiting, *last_loss,
                *last_accuracy, *build_info;
} ServerMetrics;

extern ServerMetrics server_metrics;

/* The families, the device port's observer and, with metrics_port, the
 * metrics port (metrics_port + the server's index). Logs its failures. */
int server_metrics_start(Manager *m);
void server_metrics_stop(Manager *m);

/* One-line hooks for the modules that know what happened. */
void server_metrics_log_commit(uint64_t updates, uint64_t duration_usec);
void server_metrics_allreduce_done(int error, uint64_t sent_bytes, uint64_t received_bytes, uint64_t duration_usec);
void server_metrics_replayed(uint64_t updates);

/* The device protocol's name of a retcode ("SUCCEED", "OutOfTime", ...). */
const char *server_retcode_label(int32_t retcode);
