/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

#include "macro.h"

/* Prometheus metrics of one process: counters, gauges and histograms with
 * fixed buckets, each family with a fixed list of label names, and the text
 * exposition format 0.0.4 (docs/operations.md lists what we export).
 *
 * Instrumentation is one call, safe from any thread and a no-op on a NULL
 * family (a module's unit test links the code without setting metrics up):
 *
 *     metric_inc(requests, "startFLJob", "SUCCEED");
 *     metric_observe(latency, 0.012, "startFLJob");
 *     metric_set(iteration, 7);
 *
 * The label values follow the value, as many as the family has label names;
 * a call with another number of them is a bug, logged once and ignored.
 * Label values are our own words (round and retcode names, states), never
 * strings from the network: every value makes a series, and a family takes
 * at most METRICS_SERIES_MAX of them.
 *
 * Gauges that mirror state are best set by a collector, which the registry
 * calls (under no lock of its own) before every exposition. */

#define METRICS_SERIES_MAX 1024U
#define METRICS_LABELS_MAX 4U
#define METRICS_BUCKETS_MAX 32U
/* The Content-Type of GET /metrics. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef enum MetricType {
        METRIC_COUNTER,
        METRIC_GAUGE,
        METRIC_HISTOGRAM,
} MetricType;

typedef struct MetricsRegistry MetricsRegistry;
typedef struct MetricFamily MetricFamily;

typedef void (*metrics_collect_t)(void *userdata);

int metrics_registry_new(MetricsRegistry **ret);
MetricsRegistry *metrics_registry_free(MetricsRegistry *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(MetricsRegistry *, metrics_registry_free);

/* A family named name (the registry takes it in the order of these calls).
 * labels is NULL or a NULL-terminated list of label names; buckets (upper
 * bounds, strictly increasing, +Inf implied) only for histograms. -EINVAL
 * for a name, label or bucket list Prometheus would refuse, -EEXIST for a
 * name taken. The family lives as long as the registry. */
int metrics_family_new(MetricsRegistry *r, MetricFamily **ret, MetricType type, const char *name,
                       const char *help, const char *const *labels, const double *buckets, size_t n_buckets);
int metrics_add_collector(MetricsRegistry *r, metrics_collect_t collect, void *userdata);

/* A daemon's families in one table: each is made (in this order) into
 * *family. On failure the name of the one refused is in *ret_failed. */
typedef struct MetricSpec {
        MetricFamily **family;
        MetricType type;
        const char *name, *help;
        const char *const *labels;
        const double *buckets;
        size_t n_buckets;
} MetricSpec;
#define METRIC_BUCKETS(b) (b), ELEMENTSOF(b)
int metrics_families_new(MetricsRegistry *r, const MetricSpec *specs, size_t n, const char **ret_failed);

extern const char metric_labels_end[];

void metric_add_(MetricFamily *f, double v, ...);
void metric_set_(MetricFamily *f, double v, ...);
void metric_observe_(MetricFamily *f, double v, ...);

/* Counters and gauges: += v (a counter refuses v < 0). */
#define metric_add(f, v, ...) metric_add_((f), (double) (v), ##__VA_ARGS__, metric_labels_end)
#define metric_inc(f, ...) metric_add_((f), 1.0, ##__VA_ARGS__, metric_labels_end)
/* Gauges only. */
#define metric_set(f, v, ...) metric_set_((f), (double) (v), ##__VA_ARGS__, metric_labels_end)
/* Histograms only. */
#define metric_observe(f, v, ...) metric_observe_((f), (double) (v), ##__VA_ARGS__, metric_labels_end)

/* Forgets every series of a family: for a gauge whose label values a
 * collector sets anew each time (e.g. node counts by state). */
void metric_clear(MetricFamily *f);

/* The value of a counter or gauge series (labels as above), or of a
 * histogram's count; NAN if there is no such series. For tests. */
double metric_value_(MetricFamily *f, ...);
#define metric_value(f, ...) metric_value_((f), ##__VA_ARGS__, metric_labels_end)

/* The whole registry in the text format, NUL-terminated, after running the
 * collectors. */
int metrics_expose(MetricsRegistry *r, char **ret, size_t *ret_size);

/* Shortest text that reads back as the same double, Prometheus-style
 * (+Inf, -Inf, NaN). buf must hold 32 bytes. */
const char *metrics_format_double(char buf[static 32], double v);
