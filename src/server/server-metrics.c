/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "fl-messages.h"
#include "log.h"
#include "server-manager.h"
#include "server-metrics.h"
#include "server-report.h"

ServerMetrics server_metrics;

/* Device requests take from a millisecond (a refusal) to minutes (a
 * deferred startFLJob, a model download over a slow link). */
static const double request_buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
                                           30, 60, 120 };
static const double commit_buckets[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5 };
static const double batch_buckets[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024 };
static const double allreduce_buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 };

static const char *const labels_round_retcode[] = { "round", "retcode", NULL };
static const char *const labels_round[] = { "round", NULL };
static const char *const labels_result[] = { "result", NULL };
static const char *const labels_version[] = { "version", NULL };

const char *server_retcode_label(int32_t retcode) {
        return fl_retcode_to_string(retcode) ?: "other";
}

/* The route's path as the round label: "/startFLJob" -> "startFLJob",
 * "/" -> "status", "/model" -> "model". */
static const char *round_label(const char *path) {
        return streq(path, "/") ? "status" : path + 1;
}

static void on_device_request(const HttpRequestInfo *info, void *userdata) {
        Manager *m = userdata;
        const char *round = round_label(info->path);
        ServerMetrics *sm = &server_metrics;

        metric_inc(sm->requests, round, info->label ?: "none");
        metric_observe(sm->request_seconds, (double) info->duration_usec / USEC_PER_SEC, round);
        metric_add(sm->received_bytes, info->bytes_in, round);
        metric_add(sm->sent_bytes, info->bytes_out, round);
        server_report_request(m, report_round_from_string(info->path), info->label && streq(info->label, "SUCCEED"));
}

static void collect(void *userdata) {
        Manager *m = userdata;
        ServerMetrics *sm = &server_metrics;
        const ServerLink *l = m->link;

        metric_set(sm->iteration, m->training.seen ? m->training.current.iteration : 0);
        metric_set(sm->model_iteration, m->model.model ? m->model.iteration : 0);
        metric_set(sm->in_sync, manager_model_in_sync(m));
        metric_set(sm->rank, l && l->has_rank ? (double) l->rank : -1);
        metric_set(sm->iteration_updates, m->aggregate ? m->aggregate->updates : 0);
        metric_set(sm->waiting, m->pending.n);
        if (m->n_metrics > 0) {
                metric_set(sm->last_loss, m->last_loss);
                metric_set(sm->last_accuracy, m->last_accuracy);
        }
}

static int families_new(MetricsRegistry *r) {
        ServerMetrics *sm = &server_metrics;
        const MetricSpec specs[] = {
                { &sm->requests, METRIC_COUNTER, "flcluster_device_requests_total",
                  "Device requests answered, by round and retcode.", labels_round_retcode },
                { &sm->request_seconds, METRIC_HISTOGRAM, "flcluster_device_request_duration_seconds",
                  "Time from a device request's headers until it was answered, by round.", labels_round,
                  METRIC_BUCKETS(request_buckets) },
                { &sm->received_bytes, METRIC_COUNTER, "flcluster_device_received_bytes_total",
                  "Request body bytes received from devices, by round.", labels_round },
                { &sm->sent_bytes, METRIC_COUNTER, "flcluster_device_sent_bytes_total",
                  "Answer body bytes sent to devices, by round.", labels_round },
                { &sm->log_commit_seconds, METRIC_HISTOGRAM, "flcluster_update_log_commit_duration_seconds",
                  "Duration of each update log commit (one durable write of a batch).", NULL,
                  METRIC_BUCKETS(commit_buckets) },
                { &sm->log_commit_updates, METRIC_HISTOGRAM, "flcluster_update_log_commit_updates",
                  "Updates written by each update log commit (the batch size).", NULL, METRIC_BUCKETS(batch_buckets) },
                { &sm->allreduces, METRIC_COUNTER, "flcluster_allreduces_total",
                  "All-reduces among the servers this server took part in, by result.", labels_result },
                { &sm->allreduce_seconds, METRIC_HISTOGRAM, "flcluster_allreduce_duration_seconds",
                  "Duration of each successful all-reduce, from its start to the last acknowledgement.", NULL,
                  METRIC_BUCKETS(allreduce_buckets) },
                { &sm->allreduce_sent_bytes, METRIC_COUNTER, "flcluster_allreduce_sent_bytes_total",
                  "Vector bytes sent to the right neighbour in all-reduces.", NULL },
                { &sm->allreduce_received_bytes, METRIC_COUNTER, "flcluster_allreduce_received_bytes_total",
                  "Vector bytes received from the left neighbour in all-reduces.", NULL },
                { &sm->replays, METRIC_COUNTER, "flcluster_update_log_replays_total",
                  "Replays of the update log to the scheduler (one after each registration).", NULL },
                { &sm->replayed_updates, METRIC_COUNTER, "flcluster_update_log_replayed_updates_total",
                  "Logged updates named to the scheduler again by replays.", NULL },
                { &sm->device_metrics, METRIC_COUNTER, "flcluster_device_metrics_total",
                  "pushMetrics requests with a finite loss and accuracy.", NULL },
                { &sm->iteration, METRIC_GAUGE, "flcluster_iteration",
                  "The iteration this server was last told of (0: none yet).", NULL },
                { &sm->model_iteration, METRIC_GAUGE, "flcluster_model_iteration",
                  "The iteration that produced the model this server serves (0: the initial model).", NULL },
                { &sm->in_sync, METRIC_GAUGE, "flcluster_model_in_sync",
                  "1 when this server serves the cluster's model, 0 while it takes it from a peer.", NULL },
                { &sm->rank, METRIC_GAUGE, "flcluster_server_rank",
                  "This server's rank (-1 before it first registered).", NULL },
                { &sm->iteration_updates, METRIC_GAUGE, "flcluster_server_iteration_updates",
                  "Updates in this server's running sum of the current iteration.", NULL },
                { &sm->waiting, METRIC_GAUGE, "flcluster_server_waiting_requests",
                  "Device requests waiting for the scheduler's answer.", NULL },
                { &sm->last_loss, METRIC_GAUGE, "flcluster_device_last_loss",
                  "The loss in the last pushMetrics a device sent here.", NULL },
                { &sm->last_accuracy, METRIC_GAUGE, "flcluster_device_last_accuracy_ratio",
                  "The accuracy (0..1) in the last pushMetrics a device sent here.", NULL },
                { &sm->build_info, METRIC_GAUGE, "flcluster_build_info", "Always 1; the version as a label.",
                  labels_version },
        };
        const char *failed = NULL;
        int k;

        k = metrics_families_new(r, specs, ELEMENTSOF(specs), &failed);
        if (k < 0)
                return log_error_errno(k, "Failed to set up the metric %s: %m", strna(failed));
        metric_set(sm->build_info, 1, PACKAGE_VERSION);
        return 0;
}

static int http_get_metrics(HttpRequest *req, void *userdata) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int k;

        k = metrics_expose(server_metrics.registry, &text, &size);
        if (k < 0)
                return http_reply_error(req, 500, "Failed to write the metrics: %s.", strerror(-k));
        return http_reply(req, 200, METRICS_CONTENT_TYPE, text, size);
}

static const HttpRoute metrics_routes[] = {
        { "GET", "/metrics", http_get_metrics },
};

int server_metrics_start(Manager *m) {
        const FlConfig *c = m->config;
        const char *address;
        uint32_t port;
        int k;

        k = metrics_registry_new(&server_metrics.registry);
        if (k < 0)
                return log_oom();
        k = families_new(server_metrics.registry);
        if (k < 0)
                return k;
        k = metrics_add_collector(server_metrics.registry, collect, m);
        if (k < 0)
                return log_oom();
        http_server_set_observer(m->http, on_device_request, m);
        k = server_report_start(m);
        if (k < 0)
                return log_error_errno(k, "Failed to set up the reports to the scheduler: %m");

        if (c->metrics_port == 0)
                return 0;
        port = c->metrics_port + m->index;
        address = conf_metrics_ip(c, m->address);
        if (port > UINT16_MAX)
                return log_error_errno(-ERANGE, "The metrics port %u of server %u does not exist; lower metrics_port.",
                                       port, m->index);
        /* With enable_ssl nothing listens in clear text: HTTPS for the scraper too. */
        k = http_server_new_tls(&m->metrics_http, m->event, address, (uint16_t) port, metrics_routes,
                                ELEMENTSOF(metrics_routes), 0, cluster_trust_tls(m->trust), m);
        if (k < 0)
                return log_error_errno(k, "Failed to serve metrics on %s:%u: %m", address ?: "*", port);
        log_info("Serving Prometheus metrics on %s://%s:%u/metrics.", cluster_trust_tls(m->trust) ? "https" : "http",
                 address ?: "*", port);
        return 0;
}

void server_metrics_stop(Manager *m) {
        m->metrics_http = http_server_free(m->metrics_http);
        server_report_stop(m);
        server_metrics.registry = metrics_registry_free(server_metrics.registry);
        server_metrics = (ServerMetrics) {};
}

void server_metrics_log_commit(uint64_t updates, uint64_t duration_usec) {
        metric_observe(server_metrics.log_commit_seconds, (double) duration_usec / USEC_PER_SEC);
        metric_observe(server_metrics.log_commit_updates, updates);
}

void server_metrics_allreduce_done(int error, uint64_t sent_bytes, uint64_t received_bytes, uint64_t duration_usec) {
        metric_inc(server_metrics.allreduces, error < 0 ? "failed" : "completed");
        if (error >= 0)
                metric_observe(server_metrics.allreduce_seconds, (double) duration_usec / USEC_PER_SEC);
        metric_add(server_metrics.allreduce_sent_bytes, sent_bytes);
        metric_add(server_metrics.allreduce_received_bytes, received_bytes);
}

void server_metrics_replayed(uint64_t updates) {
        metric_inc(server_metrics.replays);
        metric_add(server_metrics.replayed_updates, updates);
}
