/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "json-util.h"
#include "line-log.h"
#include "log.h"
#include "scheduler-manager.h"
#include "store.h"
#include "util.h"

/* The iterations as they ended: one JSON line per iteration in the metrics
 * file, with MindSpore's field names (its metrics.json), kept in memory for
 * GET /iterations and the status page; and what the servers report of their
 * devices (WIRE_REPORT), summed into the line of the iteration it belongs to.
 * docs/operations.md, "The metrics file", says what holds across crashes. */

#define METRICS_FILE_MAX_BYTES ((uint64_t) 16 * 1024 * 1024)
#define METRICS_FILE_KEEP 3U
/* Iterations kept in memory (and read back from the file at start). */
#define HISTORY_MAX 1000U
#define INSTANCE_NAME_MAX 192
#define TIME_STRING_MAX 32

typedef enum Round {
        ROUND_START_FL_JOB,
        ROUND_UPDATE_MODEL,
        ROUND_GET_MODEL,
        ROUND_PUSH_METRICS,
        _ROUND_MAX,
} Round;

static const char *const round_names[_ROUND_MAX] = {
        [ROUND_START_FL_JOB] = "startFLJob",
        [ROUND_UPDATE_MODEL] = "updateModel",
        [ROUND_GET_MODEL] = "getModel",
        [ROUND_PUSH_METRICS] = "pushMetrics",
};

typedef struct Counts {
        uint64_t total[_ROUND_MAX], accepted[_ROUND_MAX];
        uint64_t metrics;
        double loss_sum, accuracy_sum;
} Counts;

typedef struct NodeReport {
        char node_id[NODE_ID_MAX];
        uint32_t iteration;
        Counts counts;
} NodeReport;

struct History {
        LineLog *file;
        json_object *entries;           /* array, oldest first */
        NodeReport *reports;
        size_t n_reports;
        char instance_name[INSTANCE_NAME_MAX];
        /* The last line in the file: a resumed iteration's second end is not
         * written again. */
        char last_instance[INSTANCE_NAME_MAX];
        uint32_t last_iteration;
        uint64_t model_changed_ms;
        bool has_device_metrics;
        double last_loss, last_accuracy;
        bool write_failed;              /* logged once until a write works again */
};

static const char *format_time(char buf[static TIME_STRING_MAX], uint64_t ms) {
        time_t t = (time_t) (ms / 1000);
        struct tm tm;
        size_t n;

        /* MindSpore's: local time with milliseconds, "2022-01-10 20:22:20.067". */
        if (!localtime_r(&t, &tm) || (n = strftime(buf, TIME_STRING_MAX, "%Y-%m-%d %H:%M:%S", &tm)) == 0)
                return strcpy(buf, "");
        snprintf(buf + n, TIME_STRING_MAX - n, ".%03u", (unsigned) (ms % 1000));
        return buf;
}

static json_object *double_json(double v) {
        char buf[40];

        if (!isfinite(v))
                return NULL;    /* JSON has no NaN: null */
        metrics_format_double(buf, v);
        if (!strpbrk(buf, ".e"))
                strcat(buf, ".0");      /* a float field stays one: 2.0, not 2 */
        return json_object_new_double_s(v, buf);
}

/* ---- the servers' reports ---- */

static void counts_add(Counts *sum, const Counts *c) {
        for (size_t i = 0; i < _ROUND_MAX; i++) {
                sum->total[i] += c->total[i];
                sum->accepted[i] += c->accepted[i];
        }
        sum->metrics += c->metrics;
        sum->loss_sum += c->loss_sum;
        sum->accuracy_sum += c->accuracy_sum;
}

static Counts counts_of(const History *h, uint32_t iteration) {
        Counts sum = {};

        for (size_t i = 0; i < h->n_reports; i++)
                if (h->reports[i].iteration == iteration)
                        counts_add(&sum, &h->reports[i].counts);
        return sum;
}

static int get_number(json_object *o, const char *key, double *ret) {
        json_object *v;

        if (!json_object_object_get_ex(o, key, &v) ||
            (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int)))
                return -EBADMSG;
        *ret = json_object_get_double(v);
        return isfinite(*ret) ? 0 : -ERANGE;
}

static int report_parse(json_object *msg, uint32_t *ret_iteration, Counts *ret) {
        json_object *rounds = NULL, *metrics = NULL;
        Counts c = {};

        if (json_get_u32(msg, "iteration", ret_iteration) < 0)
                return -EBADMSG;
        if (json_object_object_get_ex(msg, "rounds", &rounds) && !json_object_is_type(rounds, json_type_object))
                return -EBADMSG;
        for (size_t i = 0; rounds && i < _ROUND_MAX; i++) {
                json_object *r;

                if (!json_object_object_get_ex(rounds, round_names[i], &r))
                        continue;
                if (!json_object_is_type(r, json_type_object) || json_get_u64(r, "total", &c.total[i]) < 0 ||
                    json_get_u64(r, "accepted", &c.accepted[i]) < 0 || c.accepted[i] > c.total[i])
                        return -EBADMSG;
        }
        if (json_object_object_get_ex(msg, "metrics", &metrics)) {
                if (!json_object_is_type(metrics, json_type_object) || json_get_u64(metrics, "count", &c.metrics) < 0 ||
                    get_number(metrics, "loss_sum", &c.loss_sum) < 0 ||
                    get_number(metrics, "accuracy_sum", &c.accuracy_sum) < 0)
                        return -EBADMSG;
        }
        *ret = c;
        return 0;
}

int history_handle_report(Manager *m, Link *l, json_object *msg) {
        History *h = m->history;
        NodeReport *r = NULL, *a;
        uint32_t iteration;
        Counts c;

        if (report_parse(msg, &iteration, &c) < 0)
                return log_warning_errno(-EBADMSG, "Malformed REPORT from rank %u, disconnecting.", l->node->rank);
        /* Late for an iteration already written down, or before any: dropped. */
        if (!h || iteration != m->iteration.number || m->iteration.phase == ITERATION_FINISHED)
                return 0;

        for (size_t i = 0; i < h->n_reports; i++)
                if (streq(h->reports[i].node_id, l->node->node_id))
                        r = &h->reports[i];
        if (!r) {
                a = realloc(h->reports, (h->n_reports + 1) * sizeof *a);
                if (!a)
                        return log_oom();
                h->reports = a;
                r = &h->reports[h->n_reports++];
                *r = (NodeReport) {};
                strcpy(r->node_id, l->node->node_id);
        }
        r->iteration = iteration;
        r->counts = c;
        return 0;
}

/* ---- the lines ---- */

static json_object *client_visited_json(const Counts *c) {
        static const struct {
                Round round;
                const char *prefix;
        } rounds[] = {
                { ROUND_START_FL_JOB, "startFLJob" },
                { ROUND_UPDATE_MODEL, "updateModel" },
                { ROUND_GET_MODEL, "getModel" },
        };
        json_object *o = json_object_new_object();
        char key[64];

        for (size_t i = 0; o && i < ELEMENTSOF(rounds); i++) {
                uint64_t total = c->total[rounds[i].round], accepted = c->accepted[rounds[i].round];

                snprintf(key, sizeof key, "%sTotalClientNum", rounds[i].prefix);
                json_object_object_add(o, key, json_object_new_int64((int64_t) total));
                snprintf(key, sizeof key, "%sAcceptClientNum", rounds[i].prefix);
                json_object_object_add(o, key, json_object_new_int64((int64_t) accepted));
                snprintf(key, sizeof key, "%sRejectClientNum", rounds[i].prefix);
                json_object_object_add(o, key, json_object_new_int64((int64_t) (total - accepted)));
        }
        return o;
}

static const char *instance_status(const Manager *m) {
        if (m->fl_disabled)
                return "disable";
        if (m->has_pending_job || m->iteration.number >= m->job.fl_iteration_num)
                return "finish";
        return "running";
}

/* An instance is named by its job and when its first iteration started. */
static void instance_name_update(Manager *m) {
        History *h = m->history;
        const Iteration *it = &m->iteration;
        time_t t = (time_t) (it->start_ms / 1000);
        char stamp[32] = "";
        struct tm tm;
        int r;

        if (!isempty(h->instance_name) &&
            (it->number != 1 || (h->last_iteration == 1 && streq(h->last_instance, h->instance_name))))
                return;
        if (localtime_r(&t, &tm))
                (void) strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(h->instance_name, sizeof h->instance_name, "%.128s-%s", m->job.fl_name, stamp);
        r = store_meta_set(m->db, "instance_name", h->instance_name);
        if (r < 0)
                log_warning_errno(r, "Failed to store the instance name in %s, ignoring: %m", m->db_path);
}

static json_object *line_json(Manager *m, bool abandoned, uint64_t end_ms, const Counts *c) {
        const Iteration *it = &m->iteration;
        json_object *o = json_object_new_object();
        char start_s[TIME_STRING_MAX], end_s[TIME_STRING_MAX];

        if (!o)
                return NULL;
        json_object_object_add(o, "instanceName", json_object_new_string(m->history->instance_name));
        json_object_object_add(o, "flName", json_object_new_string(m->job.fl_name));
        json_object_object_add(o, "instanceStatus", json_object_new_string(instance_status(m)));
        json_object_object_add(o, "flIterationNum", json_object_new_int64(m->job.fl_iteration_num));
        json_object_object_add(o, "currentIteration", json_object_new_int64(it->number));
        json_object_object_add(o, "startTime", json_object_new_string(format_time(start_s, it->start_ms)));
        json_object_object_add(o, "endTime", json_object_new_string(format_time(end_s, end_ms)));
        json_object_object_add(o, "metricsAuc", c->metrics > 0 ? double_json(c->accuracy_sum / (double) c->metrics) : NULL);
        json_object_object_add(o, "metricsLoss", c->metrics > 0 ? double_json(c->loss_sum / (double) c->metrics) : NULL);
        json_object_object_add(o, "iterationExecutionTime",
                               json_object_new_int64(end_ms > it->start_ms ? (int64_t) (end_ms - it->start_ms) : 0));
        json_object_object_add(o, "clientVisitedInfo", client_visited_json(c));
        json_object_object_add(o, "iterationResult", json_object_new_string(abandoned ? "fail" : "success"));
        return o;
}

static void entries_add(History *h, json_object *line) {
        if (json_object_array_length(h->entries) >= HISTORY_MAX)
                json_object_array_del_idx(h->entries, 0, 1);
        if (json_object_array_add(h->entries, line) < 0)
                json_object_put(line);
}

static void remember_last(History *h, json_object *line) {
        json_object *v;

        if (json_object_object_get_ex(line, "instanceName", &v) && json_object_is_type(v, json_type_string))
                snprintf(h->last_instance, sizeof h->last_instance, "%s", json_object_get_string(v));
        if (json_object_object_get_ex(line, "currentIteration", &v) && json_object_is_type(v, json_type_int))
                h->last_iteration = (uint32_t) json_object_get_int64(v);
}

void history_iteration_ended(Manager *m, bool abandoned) {
        History *h = m->history;
        const Iteration *it = &m->iteration;
        uint64_t end = now_msec_realtime();
        const char *result = abandoned ? "abandoned" : "completed";
        json_object *line;
        Counts c;
        int r;

        if (!h || it->number == 0 || it->phase == ITERATION_FINISHED)
                return;
        metric_inc(m->metrics.iterations, result);
        metric_observe(m->metrics.iteration_seconds, end > it->start_ms ? (double) (end - it->start_ms) / 1000.0 : 0,
                       result);

        c = counts_of(h, it->number);
        h->n_reports = 0;
        if (c.metrics > 0) {
                h->has_device_metrics = true;
                h->last_loss = c.loss_sum / (double) c.metrics;
                h->last_accuracy = c.accuracy_sum / (double) c.metrics;
        }
        if (!abandoned) {
                char buf[32];

                h->model_changed_ms = end;
                snprintf(buf, sizeof buf, "%" PRIu64, end);
                r = store_meta_set(m->db, "model_changed_ms", buf);
                if (r < 0)
                        log_warning_errno(r, "Failed to store when the model changed in %s, ignoring: %m", m->db_path);
        }

        instance_name_update(m);
        if (it->number == h->last_iteration && streq(h->instance_name, h->last_instance)) {
                /* Written before a crash that came before the iteration's end was
                 * stored; the scheduler resumed it and it ended again. */
                log_debug("The metrics file has iteration %u of %s already; not writing it again.", it->number,
                          h->instance_name);
                return;
        }

        line = line_json(m, abandoned, end, &c);
        if (!line) {
                log_oom();
                return;
        }
        r = line_log_append(h->file, json_object_to_json_string_ext(line, JSON_C_TO_STRING_PLAIN |
                                                                          JSON_C_TO_STRING_NOSLASHESCAPE));
        if (r < 0) {
                if (!h->write_failed)
                        log_error_errno(r, "Failed to write iteration %u to the metrics file %s, going on without "
                                        "it: %m", it->number, line_log_path(h->file));
                h->write_failed = true;
        } else {
                if (h->write_failed)
                        log_notice("Writing the metrics file %s works again.", line_log_path(h->file));
                h->write_failed = false;
        }
        remember_last(h, line);
        entries_add(h, line);
}

uint64_t history_model_changed_ms(const Manager *m) {
        return m->history ? m->history->model_changed_ms : 0;
}

bool history_last_device_metrics(const Manager *m, double *ret_loss, double *ret_accuracy) {
        const History *h = m->history;

        if (!h || !h->has_device_metrics)
                return false;
        *ret_loss = h->last_loss;
        *ret_accuracy = h->last_accuracy;
        return true;
}

/* ---- set-up ---- */

static void history_load(Manager *m) {
        History *h = m->history;
        char **lines = NULL;
        size_t n = 0, bad = 0;
        int r;

        r = line_log_read_tail(line_log_path(h->file), HISTORY_MAX, METRICS_FILE_MAX_BYTES, &lines, &n);
        if (r < 0) {
                log_warning_errno(r, "Failed to read the metrics file %s back, the history starts empty: %m",
                                  line_log_path(h->file));
                return;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *o = NULL;

                if (json_parse_object(lines[i], strlen(lines[i]), &o) < 0) {
                        bad++;
                        continue;
                }
                remember_last(h, o);
                entries_add(h, o);
        }
        line_log_lines_free(lines, n);
        if (bad > 0)
                log_warning("%zu lines of the metrics file %s are not JSON objects; the status page leaves them out.",
                            bad, line_log_path(h->file));
}

int history_setup(Manager *m) {
        _cleanup_free_ char *path = NULL, *name = NULL, *changed = NULL;
        History *h;
        int r;

        h = m->history = calloc(1, sizeof *h);
        if (!h)
                return log_oom();
        h->entries = json_object_new_array();
        if (!h->entries)
                return log_oom();
        r = conf_metrics_file_path(m->config, &path);
        if (r < 0)
                return log_oom();
        r = line_log_open(&h->file, path, METRICS_FILE_MAX_BYTES, METRICS_FILE_KEEP);
        if (r < 0)
                return log_error_errno(r, "Failed to open the metrics file %s (metrics_file): %m", path);
        line_log_set_sync_metric(h->file, m->metrics.metrics_file_sync_seconds);
        if (line_log_repaired(h->file) > 0)
                log_warning("The metrics file %s ended in a torn line (a crash while it was written): cut off "
                            "its last %" PRIu64 " bytes.", path, line_log_repaired(h->file));
        history_load(m);

        r = store_meta_get(m->db, "instance_name", &name);
        if (r >= 0)
                r = store_meta_get(m->db, "model_changed_ms", &changed);
        if (r < 0)
                return log_error_errno(r, "Failed to read %s: %m", m->db_path);
        if (name)
                snprintf(h->instance_name, sizeof h->instance_name, "%s", name);
        if (!changed || safe_atou64(changed, &h->model_changed_ms) < 0)
                h->model_changed_ms = now_msec_realtime();      /* not known: since this start */
        return 0;
}

void history_done(Manager *m) {
        History *h = m->history;

        if (!h)
                return;
        if (h->file) {
                int r = line_log_sync(h->file);
                if (r < 0)
                        log_warning_errno(r, "Failed to sync the metrics file %s: %m", line_log_path(h->file));
        }
        line_log_free(h->file);
        json_object_put(h->entries);
        free(h->reports);
        free(h);
        m->history = NULL;
}

/* ---- REST ---- */

static json_object *reply_new(const char *message) {
        json_object *o = json_object_new_object();

        json_object_object_add(o, "message", json_object_new_string(message));
        json_object_object_add(o, "code", json_object_new_string("0"));
        return o;
}

int rest_get_iterations(HttpRequest *req, void *userdata) {
        Manager *m = userdata;
        _cleanup_(json_object_putp) json_object *o = reply_new("Get iterations successful.");

        json_object_object_add(o, "instance_name", json_object_new_string(m->history->instance_name));
        json_object_object_add(o, "iterations", json_object_get(m->history->entries));
        return http_reply_json(req, 200, o);
}

static json_object *rounds_json(const Counts *c) {
        json_object *o = json_object_new_object();

        for (size_t i = 0; o && i < _ROUND_MAX; i++) {
                json_object *r = json_object_new_object();

                json_object_object_add(r, "total", json_object_new_int64((int64_t) c->total[i]));
                json_object_object_add(r, "accepted", json_object_new_int64((int64_t) c->accepted[i]));
                json_object_object_add(o, round_names[i], r);
        }
        return o;
}

int rest_get_iteration(HttpRequest *req, void *userdata) {
        Manager *m = userdata;
        const Iteration *it = &m->iteration;
        _cleanup_(json_object_putp) json_object *o = reply_new("Get iteration successful.");
        Counts c = counts_of(m->history, it->number);

        json_object_object_add(o, "fl_name", json_object_new_string(m->job.fl_name));
        json_object_object_add(o, "instance_name", json_object_new_string(m->history->instance_name));
        json_object_object_add(o, "iteration", json_object_new_int64(it->number));
        json_object_object_add(o, "phase", json_object_new_string(
                                       it->number > 0 ? iteration_phase_to_string(it->phase) : "WAITING"));
        json_object_object_add(o, "enabled", json_object_new_boolean(!m->fl_disabled));
        json_object_object_add(o, "fl_iteration_num", json_object_new_int64(m->job.fl_iteration_num));
        json_object_object_add(o, "admitted", json_object_new_int64((int64_t) it->admissions.n_entries));
        json_object_object_add(o, "start_fl_job_threshold", json_object_new_int64(m->job.start_fl_job_threshold));
        json_object_object_add(o, "updates", json_object_new_int64(it->n_updated));
        json_object_object_add(o, "update_threshold", json_object_new_int64(job_update_threshold(&m->job)));
        json_object_object_add(o, "start_fl_job_time_window", json_object_new_int64(m->job.start_fl_job_time_window));
        json_object_object_add(o, "update_model_time_window", json_object_new_int64(m->job.update_model_time_window));
        json_object_object_add(o, "global_iteration_time_window",
                               json_object_new_int64(m->job.global_iteration_time_window));
        json_object_object_add(o, "now_ms", json_object_new_int64((int64_t) now_msec_realtime()));
        json_object_object_add(o, "start_ms", json_object_new_int64((int64_t) it->start_ms));
        json_object_object_add(o, "start_fl_job_deadline_ms", json_object_new_int64((int64_t) it->start_deadline_ms));
        json_object_object_add(o, "update_model_deadline_ms", json_object_new_int64((int64_t) it->update_deadline_ms));
        json_object_object_add(o, "global_deadline_ms", json_object_new_int64((int64_t) it->global_deadline_ms));
        json_object_object_add(o, "rounds", rounds_json(&c));
        json_object_object_add(o, "device_metrics", json_object_new_int64((int64_t) c.metrics));
        return http_reply_json(req, 200, o);
}
