/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "metrics.h"

static const char *const round_retcode[] = { "round", "retcode", NULL };
static const char *const round_only[] = { "round", NULL };

static char *expose(MetricsRegistry *r) {
        char *text = NULL;
        size_t size = 0;

        assert_int_equal(metrics_expose(r, &text, &size), 0);
        assert_non_null(text);
        assert_int_equal(strlen(text), size);
        return text;
}

static void test_counter_and_gauge_text(void **state) {
        _cleanup_(metrics_registry_freep) MetricsRegistry *r = NULL;
        _cleanup_free_ char *text = NULL;
        MetricFamily *requests, *iteration;

        assert_int_equal(metrics_registry_new(&r), 0);
        assert_int_equal(metrics_family_new(r, &requests, METRIC_COUNTER, "fl_requests_total", "Requests by round.",
                                            round_retcode, NULL, 0), 0);
        assert_int_equal(metrics_family_new(r, &iteration, METRIC_GAUGE, "fl_iteration", "The iteration.",
                                            NULL, NULL, 0), 0);

        metric_inc(requests, "startFLJob", "SUCCEED");
        metric_inc(requests, "startFLJob", "SUCCEED");
        metric_add(requests, 3, "updateModel", "OutOfTime");
        metric_set(iteration, 7);
        metric_add(iteration, -2);

        assert_true(metric_value(requests, "startFLJob", "SUCCEED") == 2);
        assert_true(metric_value(requests, "updateModel", "OutOfTime") == 3);
        assert_true(isnan(metric_value(requests, "getModel", "SUCCEED")));
        assert_true(metric_value(iteration) == 5);

        text = expose(r);
        assert_string_equal(text,
                            "# HELP fl_requests_total Requests by round.\n"
                            "# TYPE fl_requests_total counter\n"
                            "fl_requests_total{round=\"startFLJob\",retcode=\"SUCCEED\"} 2\n"
                            "fl_requests_total{round=\"updateModel\",retcode=\"OutOfTime\"} 3\n"
                            "# HELP fl_iteration The iteration.\n"
                            "# TYPE fl_iteration gauge\n"
                            "fl_iteration 5\n");
}

static void test_histogram_buckets_are_cumulative(void **state) {
        _cleanup_(metrics_registry_freep) MetricsRegistry *r = NULL;
        _cleanup_free_ char *text = NULL;
        static const double bounds[] = { 0.01, 0.1, 1 };
        MetricFamily *h;

        assert_int_equal(metrics_registry_new(&r), 0);
        assert_int_equal(metrics_family_new(r, &h, METRIC_HISTOGRAM, "fl_duration_seconds", "Durations.",
                                            round_only, bounds, ELEMENTSOF(bounds)), 0);
        metric_observe(h, 0.005, "getModel");
        metric_observe(h, 0.01, "getModel");     /* on the bound: in that bucket (le) */
        metric_observe(h, 0.5, "getModel");
        metric_observe(h, 7, "getModel");        /* only in +Inf */

        assert_true(metric_value(h, "getModel") == 4);
        text = expose(r);
        assert_string_equal(text,
                            "# HELP fl_duration_seconds Durations.\n"
                            "# TYPE fl_duration_seconds histogram\n"
                            "fl_duration_seconds_bucket{round=\"getModel\",le=\"0.01\"} 2\n"
                            "fl_duration_seconds_bucket{round=\"getModel\",le=\"0.1\"} 2\n"
                            "fl_duration_seconds_bucket{round=\"getModel\",le=\"1\"} 3\n"
                            "fl_duration_seconds_bucket{round=\"getModel\",le=\"+Inf\"} 4\n"
                            "fl_duration_seconds_sum{round=\"getModel\"} 7.515\n"
                            "fl_duration_seconds_count{round=\"getModel\"} 4\n");
}

static void test_escaping(void **state) {
        _cleanup_(metrics_registry_freep) MetricsRegistry *r = NULL;
        _cleanup_free_ char *text = NULL;
        MetricFamily *g;

        assert_int_equal(metrics_registry_new(&r), 0);
        assert_int_equal(metrics_family_new(r, &g, METRIC_GAUGE, "fl_info", "Line one\nback\\slash \"quoted\".",
                                            round_only, NULL, 0), 0);
        metric_set(g, 1, "a\"b\\c\nd");
        text = expose(r);
        assert_string_equal(text,
                            "# HELP fl_info Line one\\nback\\\\slash \"quoted\".\n"
                            "# TYPE fl_info gauge\n"
                            "fl_info{round=\"a\\\"b\\\\c\\nd\"} 1\n");
}

static void test_misuse_is_ignored(void **state) {
        _cleanup_(metrics_registry_freep) MetricsRegistry *r = NULL;
        static const double bounds[] = { 1 };
        MetricFamily *c, *h;
        int level = log_get_max_level();

        log_set_max_level(LOG_CRIT);    /* the misuse is logged once; not here */
        assert_int_equal(metrics_registry_new(&r), 0);
        assert_int_equal(metrics_family_new(r, &c, METRIC_COUNTER, "fl_things_total", "Things.", round_only,
                                            NULL, 0), 0);
        assert_int_equal(metrics_family_new(r, &h, METRIC_HISTOGRAM, "fl_h_seconds", "H.", NULL, bounds, 1), 0);

        metric_inc(c, "a");
        metric_inc(c);                          /* too few labels */
        metric_inc(c, "a", "b");                /* too many */
        metric_add(c, -1, "a");                 /* counters only go up */
        metric_add(c, NAN, "a");
        metric_set(c, 10, "a");                 /* not a gauge */
        metric_observe(c, 1, "a");              /* not a histogram */
        metric_inc(h);                          /* not a counter */
        assert_true(metric_value(c, "a") == 1);
        assert_true(metric_value(h) == 0 || isnan(metric_value(h)));

        /* A NULL family: instrumentation in code whose metrics are not set up. */
        metric_inc(NULL, "a");
        metric_observe(NULL, 1);
        assert_true(isnan(metric_value(NULL)));
        log_set_max_level(level);
}

static void test_names_and_buckets_checked(void **state) {
        _cleanup_(metrics_registry_freep) MetricsRegistry *r = NULL;
        static const double bad[] = { 1, 1 }, good[] = { 1, 2 };
        static const char *const le[] = { "le", NULL }, *const dup[] = { "a", "a", NULL },
                                 *const reserved[] = { "__x", NULL }, *const dash[] = { "a-b", NULL };
        MetricFamily *f;

        assert_int_equal(metrics_registry_new(&r), 0);
        assert_int_equal(metrics_family_new(r, &f, METRIC_COUNTER, "9lives_total", "x", NULL, NULL, 0), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_COUNTER, "a-b_total", "x", NULL, NULL, 0), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_COUNTER, "", "x", NULL, NULL, 0), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_COUNTER, "c_total", "x", dup, NULL, 0), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_COUNTER, "c_total", "x", reserved, NULL, 0), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_COUNTER, "c_total", "x", dash, NULL, 0), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_HISTOGRAM, "h", "x", le, good, 2), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_HISTOGRAM, "h", "x", NULL, bad, 2), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_HISTOGRAM, "h", "x", NULL, NULL, 0), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_GAUGE, "g", "x", NULL, good, 2), -EINVAL);
        assert_int_equal(metrics_family_new(r, &f, METRIC_HISTOGRAM, "h", "x", NULL, good, 2), 0);
        assert_int_equal(metrics_family_new(r, &f, METRIC_GAUGE, "h", "x", NULL, NULL, 0), -EEXIST);
        assert_int_equal(metrics_family_new(r, &f, METRIC_GAUGE, "ns:h", "x", NULL, NULL, 0), 0);
}

static void test_family_table(void **state) {
        _cleanup_(metrics_registry_freep) MetricsRegistry *r = NULL;
        static const double bounds[] = { 1, 2 };
        MetricFamily *a = NULL, *b = NULL, *c = NULL;
        const MetricSpec good[] = {
                { &a, METRIC_COUNTER, "t_a_total", "A.", round_only },
                { &b, METRIC_HISTOGRAM, "t_b_seconds", "B.", NULL, METRIC_BUCKETS(bounds) },
        }, bad[] = {
                { &c, METRIC_GAUGE, "t_c", "C." },
                { &c, METRIC_GAUGE, "t_a_total", "Taken." },
        };
        const char *failed = NULL;

        assert_int_equal(metrics_registry_new(&r), 0);
        assert_int_equal(metrics_families_new(r, good, ELEMENTSOF(good), &failed), 0);
        assert_non_null(a);
        assert_non_null(b);
        metric_observe(b, 1.5);
        assert_true(metric_value(b) == 1);
        assert_int_equal(metrics_families_new(r, bad, ELEMENTSOF(bad), &failed), -EEXIST);
        assert_string_equal(failed, "t_a_total");
}

static void test_format_double(void **state) {
        char buf[32];

        assert_string_equal(metrics_format_double(buf, 0), "0");
        assert_string_equal(metrics_format_double(buf, 3), "3");
        assert_string_equal(metrics_format_double(buf, 20), "20");
        assert_string_equal(metrics_format_double(buf, 123456789), "123456789");
        assert_string_equal(metrics_format_double(buf, -0.0), "-0");
        assert_string_equal(metrics_format_double(buf, 0.1), "0.1");
        assert_string_equal(metrics_format_double(buf, 0.005), "0.005");
        assert_string_equal(metrics_format_double(buf, 1e21), "1e+21");
        assert_string_equal(metrics_format_double(buf, -2.5), "-2.5");
        assert_string_equal(metrics_format_double(buf, INFINITY), "+Inf");
        assert_string_equal(metrics_format_double(buf, -INFINITY), "-Inf");
        assert_string_equal(metrics_format_double(buf, NAN), "NaN");
        /* Round trip for values that need all 17 digits. */
        for (double v = 1.0 / 3; v < 1e6; v *= 7.77) {
                metrics_format_double(buf, v);
                assert_true(strtod(buf, NULL) == v);
        }
}

typedef struct Nodes {
        MetricFamily *nodes;
        unsigned alive, dead, calls;
} Nodes;

static void collect_nodes(void *userdata) {
        Nodes *n = userdata;

        n->calls++;
        metric_clear(n->nodes);
        if (n->alive > 0)
                metric_set(n->nodes, n->alive, "alive");
        if (n->dead > 0)
                metric_set(n->nodes, n->dead, "dead");
}

static void test_collector_runs_before_each_exposition(void **state) {
        _cleanup_(metrics_registry_freep) MetricsRegistry *r = NULL;
        static const char *const labels[] = { "state", NULL };
        Nodes n = { .alive = 2, .dead = 1 };
        char *text;

        assert_int_equal(metrics_registry_new(&r), 0);
        assert_int_equal(metrics_family_new(r, &n.nodes, METRIC_GAUGE, "fl_nodes", "Nodes by state.", labels,
                                            NULL, 0), 0);
        assert_int_equal(metrics_add_collector(r, collect_nodes, &n), 0);

        text = expose(r);
        assert_non_null(strstr(text, "fl_nodes{state=\"alive\"} 2\n"));
        assert_non_null(strstr(text, "fl_nodes{state=\"dead\"} 1\n"));
        free(text);

        n.alive = 3;
        n.dead = 0;
        text = expose(r);
        assert_non_null(strstr(text, "fl_nodes{state=\"alive\"} 3\n"));
        assert_null(strstr(text, "dead"));
        free(text);
        assert_int_equal(n.calls, 2);
}

static void test_series_are_bounded(void **state) {
        _cleanup_(metrics_registry_freep) MetricsRegistry *r = NULL;
        MetricFamily *c;
        char label[32];
        int level = log_get_max_level();

        log_set_max_level(LOG_CRIT);
        assert_int_equal(metrics_registry_new(&r), 0);
        assert_int_equal(metrics_family_new(r, &c, METRIC_COUNTER, "fl_x_total", "X.", round_only, NULL, 0), 0);
        for (unsigned i = 0; i < METRICS_SERIES_MAX + 10; i++) {
                snprintf(label, sizeof label, "v%u", i);
                metric_inc(c, label);
        }
        assert_true(metric_value(c, "v0") == 1);
        snprintf(label, sizeof label, "v%u", METRICS_SERIES_MAX - 1);
        assert_true(metric_value(c, label) == 1);
        snprintf(label, sizeof label, "v%u", METRICS_SERIES_MAX);
        assert_true(isnan(metric_value(c, label)));
        log_set_max_level(level);
}

#define THREAD_INCREMENTS 100000

static void *bump(void *userdata) {
        for (unsigned i = 0; i < THREAD_INCREMENTS; i++)
                metric_inc(userdata, i % 2 ? "odd" : "even");
        return NULL;
}

static void test_threads(void **state) {
        _cleanup_(metrics_registry_freep) MetricsRegistry *r = NULL;
        pthread_t a, b;
        MetricFamily *c;

        assert_int_equal(metrics_registry_new(&r), 0);
        assert_int_equal(metrics_family_new(r, &c, METRIC_COUNTER, "fl_bumps_total", "Bumps.", round_only, NULL, 0),
                         0);
        assert_int_equal(pthread_create(&a, NULL, bump, c), 0);
        assert_int_equal(pthread_create(&b, NULL, bump, c), 0);
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        assert_true(metric_value(c, "odd") == THREAD_INCREMENTS);
        assert_true(metric_value(c, "even") == THREAD_INCREMENTS);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_counter_and_gauge_text),
                cmocka_unit_test(test_histogram_buckets_are_cumulative),
                cmocka_unit_test(test_escaping),
                cmocka_unit_test(test_misuse_is_ignored),
                cmocka_unit_test(test_names_and_buckets_checked),
                cmocka_unit_test(test_family_table),
                cmocka_unit_test(test_format_double),
                cmocka_unit_test(test_collector_runs_before_each_exposition),
                cmocka_unit_test(test_series_are_bounded),
                cmocka_unit_test(test_threads),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
