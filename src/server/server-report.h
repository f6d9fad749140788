/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* What this server's devices did in the current iteration, reported to the
 * scheduler (WIRE_REPORT, wire-protocol.h) for its metrics file and status
 * page: requests and accepted ones per round, and the sums of the loss and
 * accuracy devices pushed. Counts restart with each iteration; a report
 * replaces the server's previous one of the same iteration. */

typedef struct Manager Manager;

typedef enum ReportRound {
        REPORT_START_FL_JOB,
        REPORT_UPDATE_MODEL,
        REPORT_GET_MODEL,
        REPORT_PUSH_METRICS,
        _REPORT_ROUND_MAX,
        _REPORT_ROUND_INVALID = -1,
} ReportRound;

typedef struct ServerReport {
        uint32_t iteration;
        uint64_t total[_REPORT_ROUND_MAX], accepted[_REPORT_ROUND_MAX];
        uint64_t metrics;                       /* pushMetrics with finite values */
        double loss_sum, accuracy_sum;
        bool dirty;                             /* changed since it was last sent */
        const void *sent_on;                    /* the connection it was last sent on */
        sd_event_source *timer;
} ServerReport;

/* "startFLJob" (or "/startFLJob") -> REPORT_START_FL_JOB, ... */
ReportRound report_round_from_string(const char *s);
const char *report_round_to_string(ReportRound r);

int server_report_start(Manager *m);
void server_report_stop(Manager *m);
/* A device's request of round was answered (accepted: SUCCEED). */
void server_report_request(Manager *m, ReportRound round, bool accepted);
void server_report_push_metrics(Manager *m, double loss, double accuracy);
/* Sends it now if it changed or was never sent on this connection (after
 * a registration, before AGGREGATE_DONE). */
void server_report_flush(Manager *m);
