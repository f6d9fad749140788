/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "log.h"
#include "scheduler-manager.h"
#include "util.h"

/* GET /metrics on the management port: the cluster as the scheduler sees it
 * (docs/operations.md, "Metrics"). Events are counted where they happen;
 * the state gauges are set from the Manager right before each scrape. */

static const double iteration_buckets[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600 };
static const double sync_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1 };

static const char *const labels_result[] = { "result", NULL };
static const char *const labels_operation_result[] = { "operation", "result", NULL };
static const char *const labels_reason[] = { "reason", NULL };
static const char *const labels_state[] = { "state", NULL };
static const char *const labels_phase[] = { "phase", NULL };
static const char *const labels_window[] = { "window", NULL };
static const char *const labels_version[] = { "version", NULL };

/* Seconds left in a window (0 once it is over or not open). */
static double seconds_left(uint64_t deadline_ms, uint64_t now_ms) {
        return deadline_ms > now_ms ? (double) (deadline_ms - now_ms) / 1000.0 : 0;
}

static void collect(void *userdata) {
        Manager *m = userdata;
        SchedulerMetrics *sm = &m->metrics;
        const Iteration *it = &m->iteration;
        unsigned serving = 0, syncing = 0, leaving = 0, dead = 0;
        uint64_t now = now_msec_realtime(), changed = history_model_changed_ms(m);
        double loss, accuracy;

        metric_clear(sm->cluster_state);
        metric_set(sm->cluster_state, 1, strna(cluster_state_to_string(m->state)));
        metric_set(sm->server_num, m->registry.server_num);
        for (size_t i = 0; i < m->registry.n_nodes; i++) {
                const Node *n = m->registry.nodes[i];

                if (!n->alive)
                        dead++;
                else if (n->leaving)
                        leaving++;
                else if (!node_in_sync(m, n))
                        syncing++;
                else
                        serving++;
        }
        metric_set(sm->nodes, serving, "serving");
        metric_set(sm->nodes, syncing, "syncing");
        metric_set(sm->nodes, leaving, "leaving");
        metric_set(sm->nodes, dead, "dead");

        metric_set(sm->iteration, it->number);
        metric_clear(sm->phase);
        metric_set(sm->phase, 1, it->number > 0 ? iteration_phase_to_string(it->phase) : "WAITING");
        metric_set(sm->fl_iteration_num, m->job.fl_iteration_num);
        metric_set(sm->enabled, !m->fl_disabled);
        metric_set(sm->admitted, it->admissions.n_entries);
        metric_set(sm->admission_threshold, m->job.start_fl_job_threshold);
        metric_set(sm->updates, it->n_updated);
        metric_set(sm->update_threshold, job_update_threshold(&m->job));
        metric_set(sm->window_seconds, it->update_deadline_ms == 0 ? seconds_left(it->start_deadline_ms, now) : 0,
                   "startFLJob");
        metric_set(sm->window_seconds, seconds_left(it->update_deadline_ms, now), "updateModel");
        metric_set(sm->window_seconds, seconds_left(it->global_deadline_ms, now), "global");
        metric_set(sm->model_iteration, m->model_iteration);
        if (changed > 0)
                metric_set(sm->model_age, now > changed ? (double) (now - changed) / 1000.0 : 0);
        if (history_last_device_metrics(m, &loss, &accuracy)) {
                metric_set(sm->device_loss, loss);
                metric_set(sm->device_accuracy, accuracy);
        }
}

int scheduler_metrics_setup(Manager *m) {
        SchedulerMetrics *sm = &m->metrics;
        const MetricSpec specs[] = {
                { &sm->iterations, METRIC_COUNTER, "flcluster_iterations_total",
                  "Iterations ended, by result: completed (a new model) or abandoned (the model unchanged).",
                  labels_result },
                { &sm->iteration_seconds, METRIC_HISTOGRAM, "flcluster_iteration_duration_seconds",
                  "Duration of each ended iteration, from its start to its end, by result.", labels_result,
                  METRIC_BUCKETS(iteration_buckets) },
                { &sm->scale_operations, METRIC_COUNTER, "flcluster_scale_operations_total",
                  "Scale operations by operation (scale_out, scale_in) and result (started, completed, "
                  "rolled_back).", labels_operation_result },
                { &sm->replays, METRIC_COUNTER, "flcluster_recovery_replays_total",
                  "Update log replays: a server (re)registered and named the updates it holds.", NULL },
                { &sm->dropped_updates, METRIC_COUNTER, "flcluster_recovery_dropped_updates_total",
                  "Acknowledged updates no longer counted, by reason: a server came back without them "
                  "(not_replayed) or was declared dead with them (server_dead).", labels_reason },
                { &sm->metrics_file_sync_seconds, METRIC_HISTOGRAM, "flcluster_metrics_file_sync_duration_seconds",
                  "Duration of each fdatasync of the metrics file (off the event loop).", NULL,
                  METRIC_BUCKETS(sync_buckets) },
                { &sm->cluster_state, METRIC_GAUGE, "flcluster_cluster_state",
                  "1 for the cluster's current state.", labels_state },
                { &sm->server_num, METRIC_GAUGE, "flcluster_server_num", "Servers the cluster is to have.", NULL },
                { &sm->nodes, METRIC_GAUGE, "flcluster_nodes",
                  "Registered servers by state: serving, syncing (fetching the model), leaving (scale-in), dead.",
                  labels_state },
                { &sm->iteration, METRIC_GAUGE, "flcluster_iteration", "The current iteration (0: none yet).", NULL },
                { &sm->phase, METRIC_GAUGE, "flcluster_iteration_phase", "1 for the current iteration's phase.",
                  labels_phase },
                { &sm->fl_iteration_num, METRIC_GAUGE, "flcluster_iteration_num",
                  "Iterations of the job (fl_iteration_num).", NULL },
                { &sm->enabled, METRIC_GAUGE, "flcluster_job_enabled",
                  "1 while the job's rounds are enabled, 0 after disableFLS.", NULL },
                { &sm->admitted, METRIC_GAUGE, "flcluster_iteration_admitted_devices",
                  "Devices admitted in the current iteration.", NULL },
                { &sm->admission_threshold, METRIC_GAUGE, "flcluster_iteration_admission_threshold_devices",
                  "Devices an iteration admits (start_fl_job_threshold).", NULL },
                { &sm->updates, METRIC_GAUGE, "flcluster_iteration_counted_updates",
                  "Updates counted in the current iteration.", NULL },
                { &sm->update_threshold, METRIC_GAUGE, "flcluster_iteration_update_threshold_updates",
                  "Updates that end an iteration: ceil(start_fl_job_threshold * update_model_ratio).", NULL },
                { &sm->window_seconds, METRIC_GAUGE, "flcluster_iteration_window_remaining_seconds",
                  "Time left in the current iteration's windows (0: over or not open).", labels_window },
                { &sm->model_iteration, METRIC_GAUGE, "flcluster_model_iteration",
                  "The iteration that produced the cluster's model (0: the initial model).", NULL },
                { &sm->model_age, METRIC_GAUGE, "flcluster_model_age_seconds",
                  "Time since the cluster's model checksum last changed.", NULL },
                { &sm->device_loss, METRIC_GAUGE, "flcluster_device_loss",
                  "Mean loss devices pushed in the last ended iteration that had any.", NULL },
                { &sm->device_accuracy, METRIC_GAUGE, "flcluster_device_accuracy_ratio",
                  "Mean accuracy (0..1) devices pushed in the last ended iteration that had any.", NULL },
                { &sm->build_info, METRIC_GAUGE, "flcluster_build_info", "Always 1; the version as a label.",
                  labels_version },
        };
        const char *failed = NULL;
        int r;

        r = metrics_registry_new(&sm->registry);
        if (r < 0)
                return log_oom();
        r = metrics_families_new(sm->registry, specs, ELEMENTSOF(specs), &failed);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the metric %s: %m", strna(failed));
        metric_set(sm->build_info, 1, PACKAGE_VERSION);
        r = metrics_add_collector(sm->registry, collect, m);
        if (r < 0)
                return log_oom();
        return 0;
}

void scheduler_metrics_done(Manager *m) {
        metrics_registry_free(m->metrics.registry);
        m->metrics = (SchedulerMetrics) {};
}

int rest_get_metrics(HttpRequest *req, void *userdata) {
        Manager *m = userdata;
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = metrics_expose(m->metrics.registry, &text, &size);
        if (r < 0)
                return http_reply_error(req, 500, "Failed to write the metrics: %s.", strerror(-r));
        return http_reply(req, 200, METRICS_CONTENT_TYPE, text, size);
}
