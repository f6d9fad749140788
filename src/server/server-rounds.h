/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "http.h"
#include "server-pending.h"

/* The device rounds (design/device-protocol.md) on the device port:
 * startFLJob, updateModel, getModel, pushMetrics, and GET /model (the
 * FeatureMapList of a checkpoint, for `flctl model get`). */

#define FL_SAFEMODE_TEXT "The cluster is in safemode."
#define FL_DISABLED_TEXT "The server's training job is disabled or finished."
#define FL_LEAVING_REASON "This server is leaving the cluster."

int rounds_start_fl_job(HttpRequest *req, void *userdata);
int rounds_update_model(HttpRequest *req, void *userdata);
int rounds_get_model(HttpRequest *req, void *userdata);
int rounds_push_metrics(HttpRequest *req, void *userdata);
int rounds_get_model_file(HttpRequest *req, void *userdata);
/* GET /model/state[?iteration=N]: the server optimizer's state after that model. */
int rounds_get_state_file(HttpRequest *req, void *userdata);

/* The scheduler's verdict on a waiting request (server-pending.c). */
int rounds_answer_admit(Manager *m, Pending *p, const SchedulerReply *reply);
int rounds_answer_update(Manager *m, Pending *p, const SchedulerReply *reply);
/* A waiting request that gets no verdict: SystemError with reason. */
int rounds_answer_failure(Pending *p, int32_t retcode, const char *reason);
/* One of the plain-text answers above. */
int rounds_answer_text(HttpRequest *req, const char *text);
