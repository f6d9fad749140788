/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <string.h>

#include "conn.h"
#include "json-util.h"
#include "log.h"
#include "server-manager.h"
#include "server-metrics.h"
#include "server-report.h"
#include "wire-protocol.h"

/* While devices keep coming, a report goes out at most this often. */
#define REPORT_INTERVAL_USEC (1U * USEC_PER_SEC)

static const char *const round_names[_REPORT_ROUND_MAX] = {
        [REPORT_START_FL_JOB] = "startFLJob",
        [REPORT_UPDATE_MODEL] = "updateModel",
        [REPORT_GET_MODEL] = "getModel",
        [REPORT_PUSH_METRICS] = "pushMetrics",
};

ReportRound report_round_from_string(const char *s) {
        if (s && s[0] == '/')
                s++;
        for (ReportRound r = 0; s && r < _REPORT_ROUND_MAX; r++)
                if (streq(round_names[r], s))
                        return r;
        return _REPORT_ROUND_INVALID;
}

const char *report_round_to_string(ReportRound r) {
        return r >= 0 && r < _REPORT_ROUND_MAX ? round_names[r] : NULL;
}

static uint32_t current_iteration(const Manager *m) {
        return m->training.seen ? m->training.current.iteration : 0;
}

static json_object *report_json(const ServerReport *r) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        json_object *rounds = json_object_new_object(), *metrics = json_object_new_object();

        if (!o || json_object_object_add(o, "rounds", rounds) < 0) {
                json_object_put(rounds);
                json_object_put(metrics);
                return NULL;
        }
        if (json_object_object_add(o, "metrics", metrics) < 0) {
                json_object_put(metrics);
                return NULL;
        }
        if (!rounds || !metrics ||
            json_object_object_add(o, "iteration", json_object_new_int64(r->iteration)) < 0 ||
            json_object_object_add(metrics, "count", json_object_new_int64((int64_t) r->metrics)) < 0 ||
            json_object_object_add(metrics, "loss_sum", json_object_new_double(r->loss_sum)) < 0 ||
            json_object_object_add(metrics, "accuracy_sum", json_object_new_double(r->accuracy_sum)) < 0)
                return NULL;
        for (ReportRound i = 0; i < _REPORT_ROUND_MAX; i++) {
                json_object *c = json_object_new_object();

                if (!c || json_object_object_add(rounds, round_names[i], c) < 0) {
                        json_object_put(c);
                        return NULL;
                }
                if (json_object_object_add(c, "total", json_object_new_int64((int64_t) r->total[i])) < 0 ||
                    json_object_object_add(c, "accepted", json_object_new_int64((int64_t) r->accepted[i])) < 0)
                        return NULL;
        }
        return TAKE_PTR(o);
}

static void report_send(Manager *m) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        ServerReport *r = &m->report;
        ServerLink *l = m->link;
        int k;

        if (!l || !l->conn || !l->registered || r->iteration == 0 || (!r->dirty && r->sent_on == l->conn))
                return;
        o = report_json(r);
        if (!o) {
                log_oom();
                return;
        }
        k = conn_send_json(l->conn, WIRE_REPORT, o);
        if (k < 0) {
                log_debug_errno(k, "Failed to send the report of iteration %u, ignoring: %m", r->iteration);
                return;
        }
        r->dirty = false;
        r->sent_on = l->conn;
}

/* A new iteration: the old one's last counts go out, then they start over. */
static void report_roll(Manager *m) {
        ServerReport *r = &m->report;
        uint32_t now = current_iteration(m);

        if (now == r->iteration)
                return;
        report_send(m);
        memset(r->total, 0, sizeof r->total);
        memset(r->accepted, 0, sizeof r->accepted);
        r->metrics = 0;
        r->loss_sum = r->accuracy_sum = 0;
        r->dirty = false;
        r->sent_on = NULL;
        r->iteration = now;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        server_report_flush(userdata);
        return 0;
}

static void report_changed(Manager *m) {
        ServerReport *r = &m->report;
        int enabled = SD_EVENT_OFF;

        r->dirty = true;
        if (!r->timer || sd_event_source_get_enabled(r->timer, &enabled) < 0 || enabled != SD_EVENT_OFF)
                return;
        (void) sd_event_source_set_time_relative(r->timer, REPORT_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(r->timer, SD_EVENT_ONESHOT);
}

int server_report_start(Manager *m) {
        int k;

        k = sd_event_add_time_relative(m->event, &m->report.timer, CLOCK_MONOTONIC, REPORT_INTERVAL_USEC,
                                       100 * USEC_PER_MSEC, on_timer, m);
        if (k < 0)
                return k;
        (void) sd_event_source_set_description(m->report.timer, "report");
        return sd_event_source_set_enabled(m->report.timer, SD_EVENT_OFF);
}

void server_report_stop(Manager *m) {
        m->report.timer = sd_event_source_disable_unref(m->report.timer);
}

void server_report_request(Manager *m, ReportRound round, bool accepted) {
        ServerReport *r = &m->report;

        if (round < 0 || round >= _REPORT_ROUND_MAX)
                return;
        report_roll(m);
        r->total[round]++;
        r->accepted[round] += accepted;
        report_changed(m);
}

void server_report_push_metrics(Manager *m, double loss, double accuracy) {
        ServerReport *r = &m->report;

        report_roll(m);
        /* A device's NaN or infinity would poison the sums: counted as a request only. */
        if (!isfinite(loss) || !isfinite(accuracy))
                return;
        metric_inc(server_metrics.device_metrics);
        r->metrics++;
        r->loss_sum += loss;
        r->accuracy_sum += accuracy;
        report_changed(m);
}

void server_report_flush(Manager *m) {
        report_roll(m);
        report_send(m);
}
