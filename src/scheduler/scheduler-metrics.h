/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>

#include "http.h"
#include "metrics.h"

/* What operators look at, on the scheduler (docs/operations.md): the
 * Prometheus metrics of GET /metrics (scheduler-metrics.c), the iteration
 * history - the metrics file of a JSON line per iteration, GET /iterations,
 * GET /iteration, and the servers' reports they are summed from
 * (scheduler-history.c) - and the status page at GET / (scheduler-status.c). */

typedef struct Manager Manager;
typedef struct Link Link;
typedef struct History History;

/* The families counted at events; gauges are set from the Manager by a
 * collector. All NULL until scheduler_metrics_setup(): no-ops in unit tests. */
typedef struct SchedulerMetrics {
        MetricsRegistry *registry;
        MetricFamily *iterations;               /* {result} */
        MetricFamily *iteration_seconds;        /* {result} */
        MetricFamily *scale_operations;         /* {operation, result} */
        MetricFamily *replays;
        MetricFamily *dropped_updates;          /* {reason} */
        MetricFamily *metrics_file_sync_seconds;
        /* Set by the collector. */
        MetricFamily *cluster_state, *server_num, *nodes, *iteration, *phase, *fl_iteration_num, *enabled,
                *admitted, *admission_threshold, *updates, *update_threshold, *window_seconds, *model_iteration,
                *model_age, *device_loss, *device_accuracy, *build_info;
} SchedulerMetrics;

int scheduler_metrics_setup(Manager *m);
void scheduler_metrics_done(Manager *m);
int rest_get_metrics(HttpRequest *req, void *userdata);

/* scheduler-history.c */
int history_setup(Manager *m);
void history_done(Manager *m);
/* The running iteration ended (abandoned: without a new model): its line. */
void history_iteration_ended(Manager *m, bool abandoned);
int history_handle_report(Manager *m, Link *l, json_object *msg);
/* When the cluster's model last changed (Unix ms), for its age. */
uint64_t history_model_changed_ms(const Manager *m);
/* The mean loss and accuracy devices pushed in the last ended iteration
 * that had any; false when none. */
bool history_last_device_metrics(const Manager *m, double *ret_loss, double *ret_accuracy);
int rest_get_iterations(HttpRequest *req, void *userdata);
int rest_get_iteration(HttpRequest *req, void *userdata);

/* scheduler-status.c */
int rest_get_status_page(HttpRequest *req, void *userdata);
int rest_get_status_js(HttpRequest *req, void *userdata);
int rest_get_status_css(HttpRequest *req, void *userdata);
