/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

/* The exposition text format, version 0.0.4: per family a # HELP and a
 * # TYPE line, then one line per sample, name{label="value",...} value.
 * Histograms give cumulative _bucket{le="..."} lines, _sum and _count. */

const char metric_labels_end[] = "metric_labels_end";

typedef struct MetricSeries {
        char *labels[METRICS_LABELS_MAX];
        double value;                   /* counter, gauge; a histogram's sum */
        uint64_t count;                 /* histogram */
        uint64_t *buckets;              /* histogram: per bucket, not cumulative */
} MetricSeries;

struct MetricFamily {
        MetricsRegistry *registry;
        MetricType type;
        char *name, *help;
        char *label_names[METRICS_LABELS_MAX];
        size_t n_labels;
        double *bounds;
        size_t n_bounds;
        MetricSeries **series;
        size_t n_series, n_allocated;
        bool misuse_logged, full_logged;
};

typedef struct Collector {
        metrics_collect_t collect;
        void *userdata;
} Collector;

struct MetricsRegistry {
        pthread_mutex_t lock;
        MetricFamily **families;
        size_t n_families;
        Collector *collectors;
        size_t n_collectors;
};

static MetricSeries *series_free(MetricSeries *s) {
        if (!s)
                return NULL;
        for (size_t i = 0; i < METRICS_LABELS_MAX; i++)
                free(s->labels[i]);
        free(s->buckets);
        free(s);
        return NULL;
}

static void family_free(MetricFamily *f) {
        if (!f)
                return;
        for (size_t i = 0; i < f->n_series; i++)
                series_free(f->series[i]);
        free(f->series);
        for (size_t i = 0; i < f->n_labels; i++)
                free(f->label_names[i]);
        free(f->bounds);
        free(f->name);
        free(f->help);
        free(f);
}

int metrics_registry_new(MetricsRegistry **ret) {
        MetricsRegistry *r = calloc(1, sizeof *r);

        if (!r)
                return -ENOMEM;
        pthread_mutex_init(&r->lock, NULL);
        *ret = r;
        return 0;
}

MetricsRegistry *metrics_registry_free(MetricsRegistry *r) {
        if (!r)
                return NULL;
        for (size_t i = 0; i < r->n_families; i++)
                family_free(r->families[i]);
        free(r->families);
        free(r->collectors);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* for metric names, without ':' for label names. */
static bool name_is_valid(const char *s, bool colon) {
        if (isempty(s))
                return false;
        for (size_t i = 0; s[i]; i++) {
                char c = s[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
                          (i > 0 && c >= '0' && c <= '9');
                if (!ok)
                        return false;
        }
        return true;
}

static int family_set_labels(MetricFamily *f, const char *const *labels) {
        for (size_t i = 0; labels && labels[i]; i++) {
                if (i >= METRICS_LABELS_MAX || !name_is_valid(labels[i], false) || strneq(labels[i], "__", 2) ||
                    (f->type == METRIC_HISTOGRAM && streq(labels[i], "le")))
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (streq(labels[i], labels[j]))
                                return -EINVAL;
                f->label_names[i] = strdup(labels[i]);
                if (!f->label_names[i])
                        return -ENOMEM;
                f->n_labels = i + 1;
        }
        return 0;
}

static int family_set_buckets(MetricFamily *f, const double *buckets, size_t n) {
        if (f->type != METRIC_HISTOGRAM)
                return n == 0 ? 0 : -EINVAL;
        if (n == 0 || n > METRICS_BUCKETS_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!isfinite(buckets[i]) || (i > 0 && buckets[i] <= buckets[i - 1]))
                        return -EINVAL;
        f->bounds = malloc(n * sizeof *f->bounds);
        if (!f->bounds)
                return -ENOMEM;
        memcpy(f->bounds, buckets, n * sizeof *f->bounds);
        f->n_bounds = n;
        return 0;
}

int metrics_family_new(MetricsRegistry *r, MetricFamily **ret, MetricType type, const char *name,
                       const char *help, const char *const *labels, const double *buckets, size_t n_buckets) {
        MetricFamily *f, **a;
        int k;

        if (!name_is_valid(name, true) || !help || (unsigned) type > METRIC_HISTOGRAM)
                return -EINVAL;
        f = calloc(1, sizeof *f);
        if (!f)
                return -ENOMEM;
        f->registry = r;
        f->type = type;
        f->name = strdup(name);
        f->help = strdup(help);
        k = f->name && f->help ? 0 : -ENOMEM;
        if (k >= 0)
                k = family_set_labels(f, labels);
        if (k >= 0)
                k = family_set_buckets(f, buckets, n_buckets);
        if (k < 0) {
                family_free(f);
                return k;
        }

        pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->n_families; i++)
                if (streq(r->families[i]->name, name))
                        k = -EEXIST;
        a = k < 0 ? NULL : realloc(r->families, (r->n_families + 1) * sizeof *a);
        if (a) {
                r->families = a;
                r->families[r->n_families++] = f;
        } else if (k >= 0)
                k = -ENOMEM;
        pthread_mutex_unlock(&r->lock);
        if (k < 0) {
                family_free(f);
                return k;
        }
        if (ret)
                *ret = f;
        return 0;
}

int metrics_families_new(MetricsRegistry *r, const MetricSpec *specs, size_t n, const char **ret_failed) {
        for (size_t i = 0; i < n; i++) {
                int k = metrics_family_new(r, specs[i].family, specs[i].type, specs[i].name, specs[i].help,
                                           specs[i].labels, specs[i].buckets, specs[i].n_buckets);
                if (k < 0) {
                        if (ret_failed)
                                *ret_failed = specs[i].name;
                        return k;
                }
        }
        return 0;
}

int metrics_add_collector(MetricsRegistry *r, metrics_collect_t collect, void *userdata) {
        Collector *a;

        pthread_mutex_lock(&r->lock);
        a = realloc(r->collectors, (r->n_collectors + 1) * sizeof *a);
        if (a) {
                r->collectors = a;
                r->collectors[r->n_collectors++] = (Collector) { collect, userdata };
        }
        pthread_mutex_unlock(&r->lock);
        return a ? 0 : -ENOMEM;
}

/* Reads exactly f->n_labels values and the end marker; false (logged once)
 * for any other number of arguments. Called with the lock held. */
static bool labels_read(MetricFamily *f, va_list ap, const char *ret[static METRICS_LABELS_MAX]) {
        size_t n = 0;
        const char *v;

        for (;;) {
                v = va_arg(ap, const char *);
                if (v == metric_labels_end)
                        break;
                if (n == f->n_labels || !v) {
                        n = SIZE_MAX;   /* too many, or a NULL value: stop reading */
                        break;
                }
                ret[n++] = v;
        }
        if (n == f->n_labels)
                return true;
        if (!f->misuse_logged)
                log_error("Metric %s used with a wrong number of label values (it has %zu); ignoring.", f->name,
                          f->n_labels);
        f->misuse_logged = true;
        return false;
}

static MetricSeries *series_find(MetricFamily *f, const char *const *labels) {
        for (size_t i = 0; i < f->n_series; i++) {
                size_t j = 0;

                while (j < f->n_labels && streq(f->series[i]->labels[j], labels[j]))
                        j++;
                if (j == f->n_labels)
                        return f->series[i];
        }
        return NULL;
}

static MetricSeries *series_get(MetricFamily *f, const char *const *labels) {
        MetricSeries *s = series_find(f, labels);

        if (s)
                return s;
        if (f->n_series >= METRICS_SERIES_MAX) {
                if (!f->full_logged)
                        log_warning("Metric %s has %u series already; dropping new ones.", f->name,
                                    METRICS_SERIES_MAX);
                f->full_logged = true;
                return NULL;
        }
        if (f->n_series == f->n_allocated) {
                size_t n = MAX(f->n_allocated * 2, (size_t) 4);
                MetricSeries **a = realloc(f->series, n * sizeof *a);

                if (!a)
                        return NULL;
                f->series = a;
                f->n_allocated = n;
        }
        s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        for (size_t j = 0; j < f->n_labels; j++)
                if (!(s->labels[j] = strdup(labels[j])))
                        return series_free(s);
        if (f->type == METRIC_HISTOGRAM && !(s->buckets = calloc(f->n_bounds, sizeof *s->buckets)))
                return series_free(s);
        f->series[f->n_series++] = s;
        return s;
}

typedef enum MetricOp {
        OP_ADD,
        OP_SET,
        OP_OBSERVE,
} MetricOp;

static void metric_apply(MetricFamily *f, MetricOp op, double v, va_list ap) {
        const char *labels[METRICS_LABELS_MAX];
        MetricSeries *s;
        bool ok;

        if (!f)
                return;
        pthread_mutex_lock(&f->registry->lock);
        ok = labels_read(f, ap, labels);
        if (ok && ((op == OP_OBSERVE) != (f->type == METRIC_HISTOGRAM) ||
                   (op == OP_SET && f->type != METRIC_GAUGE) ||
                   (op == OP_ADD && f->type == METRIC_COUNTER && !(v >= 0)))) {
                if (!f->misuse_logged)
                        log_error("Metric %s (%s) used with the wrong operation or a negative or NaN increment; "
                                  "ignoring.", f->name, f->type == METRIC_COUNTER ? "counter" :
                                  f->type == METRIC_GAUGE ? "gauge" : "histogram");
                f->misuse_logged = true;
                ok = false;
        }
        s = ok ? series_get(f, labels) : NULL;
        if (s) {
                if (op == OP_ADD)
                        s->value += v;
                else if (op == OP_SET)
                        s->value = v;
                else {
                        size_t i = 0;

                        while (i < f->n_bounds && !(v <= f->bounds[i]))
                                i++;
                        if (i < f->n_bounds)
                                s->buckets[i]++;
                        s->count++;
                        s->value += v;
                }
        }
        pthread_mutex_unlock(&f->registry->lock);
}

void metric_add_(MetricFamily *f, double v, ...) {
        va_list ap;

        va_start(ap, v);
        metric_apply(f, OP_ADD, v, ap);
        va_end(ap);
}

void metric_set_(MetricFamily *f, double v, ...) {
        va_list ap;

        va_start(ap, v);
        metric_apply(f, OP_SET, v, ap);
        va_end(ap);
}

void metric_observe_(MetricFamily *f, double v, ...) {
        va_list ap;

        va_start(ap, v);
        metric_apply(f, OP_OBSERVE, v, ap);
        va_end(ap);
}

void metric_clear(MetricFamily *f) {
        if (!f)
                return;
        pthread_mutex_lock(&f->registry->lock);
        for (size_t i = 0; i < f->n_series; i++)
                series_free(f->series[i]);
        f->n_series = 0;
        pthread_mutex_unlock(&f->registry->lock);
}

double metric_value_(MetricFamily *f, ...) {
        const char *labels[METRICS_LABELS_MAX];
        MetricSeries *s = NULL;
        double v = NAN;
        va_list ap;

        if (!f)
                return NAN;
        va_start(ap, f);
        pthread_mutex_lock(&f->registry->lock);
        if (labels_read(f, ap, labels))
                s = series_find(f, labels);
        if (s)
                v = f->type == METRIC_HISTOGRAM ? (double) s->count : s->value;
        pthread_mutex_unlock(&f->registry->lock);
        va_end(ap);
        return v;
}

/* ---- exposition ---- */

const char *metrics_format_double(char buf[static 32], double v) {
        if (isnan(v))
                return strcpy(buf, "NaN");
        if (isinf(v))
                return strcpy(buf, v > 0 ? "+Inf" : "-Inf");
        if (v == floor(v) && fabs(v) < 1e15) {
                snprintf(buf, 32, "%.0f", v);    /* counts: 20, not 2e+01 */
                return buf;
        }
        for (int precision = 1; precision <= 17; precision++) {
                snprintf(buf, 32, "%.*g", precision, v);
                if (strtod(buf, NULL) == v)
                        break;
        }
        return buf;
}

/* HELP text: backslash and newline escaped. Label values: also the quote. */
static void put_escaped(FILE *f, const char *s, bool quote) {
        for (; *s; s++) {
                if (*s == '\\')
                        fputs("\\\\", f);
                else if (*s == '\n')
                        fputs("\\n", f);
                else if (quote && *s == '"')
                        fputs("\\\"", f);
                else
                        fputc(*s, f);
        }
}

/* {a="x",b="y"[,le="..."]}, or nothing without labels. */
static void put_labels(FILE *f, const MetricFamily *fam, const MetricSeries *s, const char *le) {
        if (fam->n_labels == 0 && !le)
                return;
        fputc('{', f);
        for (size_t i = 0; i < fam->n_labels; i++) {
                fprintf(f, "%s%s=\"", i > 0 ? "," : "", fam->label_names[i]);
                put_escaped(f, s->labels[i], true);
                fputc('"', f);
        }
        if (le)
                fprintf(f, "%sle=\"%s\"", fam->n_labels > 0 ? "," : "", le);
        fputc('}', f);
}

static void put_family(FILE *f, const MetricFamily *fam) {
        static const char *const type_names[] = {
                [METRIC_COUNTER] = "counter",
                [METRIC_GAUGE] = "gauge",
                [METRIC_HISTOGRAM] = "histogram",
        };
        char num[32], le[32];

        fprintf(f, "# HELP %s ", fam->name);
        put_escaped(f, fam->help, false);
        fprintf(f, "\n# TYPE %s %s\n", fam->name, type_names[fam->type]);

        for (size_t i = 0; i < fam->n_series; i++) {
                const MetricSeries *s = fam->series[i];
                uint64_t cumulative = 0;

                if (fam->type != METRIC_HISTOGRAM) {
                        fputs(fam->name, f);
                        put_labels(f, fam, s, NULL);
                        fprintf(f, " %s\n", metrics_format_double(num, s->value));
                        continue;
                }
                for (size_t b = 0; b <= fam->n_bounds; b++) {
                        cumulative += b < fam->n_bounds ? s->buckets[b] : 0;
                        fprintf(f, "%s_bucket", fam->name);
                        put_labels(f, fam, s, b < fam->n_bounds ? metrics_format_double(le, fam->bounds[b]) : "+Inf");
                        fprintf(f, " %" PRIu64 "\n", b < fam->n_bounds ? cumulative : s->count);
                }
                fprintf(f, "%s_sum", fam->name);
                put_labels(f, fam, s, NULL);
                fprintf(f, " %s\n", metrics_format_double(num, s->value));
                fprintf(f, "%s_count", fam->name);
                put_labels(f, fam, s, NULL);
                fprintf(f, " %" PRIu64 "\n", s->count);
        }
}

int metrics_expose(MetricsRegistry *r, char **ret, size_t *ret_size) {
        Collector *collectors = NULL;
        size_t n_collectors, size = 0;
        char *buf = NULL;
        FILE *f;
        int k = 0;

        /* Collectors set metrics themselves: run them from a copy, unlocked. */
        pthread_mutex_lock(&r->lock);
        n_collectors = r->n_collectors;
        if (n_collectors > 0) {
                collectors = malloc(n_collectors * sizeof *collectors);
                if (collectors)
                        memcpy(collectors, r->collectors, n_collectors * sizeof *collectors);
        }
        pthread_mutex_unlock(&r->lock);
        if (n_collectors > 0 && !collectors)
                return -ENOMEM;
        for (size_t i = 0; i < n_collectors; i++)
                collectors[i].collect(collectors[i].userdata);
        free(collectors);

        f = open_memstream(&buf, &size);
        if (!f)
                return -ENOMEM;
        pthread_mutex_lock(&r->lock);
        for (size_t i = 0; i < r->n_families; i++)
                put_family(f, r->families[i]);
        pthread_mutex_unlock(&r->lock);
        if (fflush(f) != 0 || ferror(f))
                k = -ENOMEM;
        fclose(f);
        if (k < 0) {
                free(buf);
                return k;
        }
        *ret = buf;
        if (ret_size)
                *ret_size = size;
        return 0;
}
