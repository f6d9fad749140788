/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "server-freshness.h"
#include "server-manager.h"
#include "server-metrics.h"
#include "server-rounds.h"
#include "server-store.h"
#include "server-updates.h"
#include "util.h"
#include "wire-protocol.h"

#define MS_STRING_MAX 24
#define FL_CONTENT_TYPE "application/octet-stream"

static const char *format_ms(char buf[static MS_STRING_MAX], uint64_t ms) {
        snprintf(buf, MS_STRING_MAX, "%" PRIu64, ms);
        return buf;
}

/* When a device turned away here should come back. */
static uint64_t next_req_time(const Manager *m, uint64_t from_scheduler) {
        uint64_t now = now_msec_realtime();
        uint64_t t = from_scheduler ?: (m->training.seen ? m->training.current.next_req_time : 0);

        return MAX(t, now);
}

static uint32_t current_iteration(const Manager *m) {
        return m->training.seen ? m->training.current.iteration : 0;
}

int rounds_answer_text(HttpRequest *req, const char *text) {
        http_request_set_label(req, streq(text, FL_DISABLED_TEXT) ? "disabled" : "safemode");
        return http_reply(req, 200, "text/plain", text, strlen(text));
}

/* NULL when the rounds are open, else the plain-text answer. */
static const char *rounds_closed(const Manager *m) {
        const ServerLink *l = m->link;

        if (m->training.seen && m->training.current.phase == TRAINING_FINISHED)
                return FL_DISABLED_TEXT;
        if (l->view.cluster_state == CLUSTER_DISABLE_FLS)
                return FL_DISABLED_TEXT;
        /* Devices keep being served while the cluster scales, and while a dead
         * server is awaited (as the scheduler's gate says). */
        if (!l->conn || !l->registered || !m->training.known ||
            !IN_SET(l->view.cluster_state, CLUSTER_READY, CLUSTER_SCALE_OUT, CLUSTER_SCALE_IN, NODE_TIMEOUT))
                return FL_SAFEMODE_TEXT;
        /* This server's model is not the cluster's: it is taking it from a peer. */
        if (manager_model_syncing(m))
                return FL_SAFEMODE_TEXT;
        /* Telling the scheduler which updates it holds, rebuilding its sum. */
        if (update_log_replaying(m->updates))
                return FL_SAFEMODE_TEXT;
        return NULL;
}

static int reply_message(HttpRequest *req, const FlTableType *type, const void *msg) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t size;
        int r;

        r = fl_message_encode(type, msg, FL_FILE_IDENTIFIER, &buf, &size);
        if (r < 0) {
                log_warning_errno(r, "Failed to encode a %s: %m", type->name);
                return http_reply_error(req, 500, "Failed to encode the answer.");
        }
        return http_reply(req, 200, FL_CONTENT_TYPE, buf, size);
}

/* The decoder's reason, or a generic one (a decoder failing without one). */
static const char *decode_reason(const char *reason) {
        return isempty(reason) ? "The request is not a valid buffer of its table." : reason;
}

static const uint8_t *request_body(HttpRequest *req, size_t *ret_size, char reason[static FL_REASON_MAX]) {
        const uint8_t *body = http_request_body(req, ret_size);

        /* An empty body is no table; the decoder also wants a malloc()ed (aligned) buffer. */
        if (*ret_size == 0) {
                snprintf(reason, FL_REASON_MAX, "The request body is empty.");
                return NULL;
        }
        return body;
}

/* ---- startFLJob ------------------------------------------------------------ */

static int answer_fl_job(HttpRequest *req, const Manager *m, int32_t retcode, const char *reason,
                         uint32_t iteration, uint64_t next) {
        char next_s[MS_STRING_MAX], now_s[MS_STRING_MAX];
        FlResponseFLJob resp = {
                .retcode = retcode,
                .reason = reason,
                .iteration = (int32_t) iteration,
                .is_selected = false,
                .next_req_time = format_ms(next_s, next_req_time(m, next)),
                .timestamp = format_ms(now_s, now_msec_realtime()),
        };

        http_request_set_label(req, server_retcode_label(retcode));
        return reply_message(req, &fl_type_response_fl_job, &resp);
}

int rounds_start_fl_job(HttpRequest *req, void *userdata) {
        _cleanup_(fl_request_fl_job_done) FlRequestFLJob msg = {};
        _cleanup_(json_object_putp) json_object *o = NULL;
        char reason[FL_REASON_MAX] = "";
        Manager *m = userdata;
        const uint8_t *body;
        const char *closed;
        Pending *p;
        size_t size;
        int r;

        closed = rounds_closed(m);
        if (closed)
                return rounds_answer_text(req, closed);
        if (m->link->leaving)
                /* Scale-in: the devices go to the servers that stay. */
                return answer_fl_job(req, m, FL_OUT_OF_TIME, FL_LEAVING_REASON, current_iteration(m),
                                     now_msec_realtime() + 1000);
        if (!m->model.model)
                return answer_fl_job(req, m, FL_SYSTEM_ERROR, SERVER_NO_MODEL_REASON, current_iteration(m), 0);

        body = request_body(req, &size, reason);
        r = body ? fl_request_fl_job_decode(body, size, &msg, reason) : -EBADMSG;
        if (r == -ENOMEM)
                return answer_fl_job(req, m, FL_SYSTEM_ERROR, "Out of memory.", current_iteration(m), 0);
        if (r < 0)
                return answer_fl_job(req, m, FL_REQUEST_ERROR, decode_reason(reason), current_iteration(m), 0);
        if (request_freshness_check(m->config->replay_attack_time_diff, msg.timestamp, now_msec_realtime(), reason,
                                    sizeof reason) < 0)
                return answer_fl_job(req, m, FL_REQUEST_ERROR, reason, current_iteration(m), 0);

        if (!msg.fl_name || !streq(msg.fl_name, m->training.current.job.fl_name)) {
                snprintf(reason, sizeof reason, "fl_name must be '%.100s'.", m->training.current.job.fl_name);
                return answer_fl_job(req, m, FL_REQUEST_ERROR, reason, current_iteration(m), 0);
        }
        if (!fl_id_is_valid(msg.fl_id))
                return answer_fl_job(req, m, FL_REQUEST_ERROR, "fl_id must be 1 to 255 printable characters.",
                                     current_iteration(m), 0);
        if (msg.data_size < 1)
                return answer_fl_job(req, m, FL_REQUEST_ERROR, "data_size must be at least 1.",
                                     current_iteration(m), 0);

        o = json_object_new_object();
        if (!o ||
            json_object_object_add(o, "fl_id", json_object_new_string(msg.fl_id)) < 0 ||
            json_object_object_add(o, "iteration", json_object_new_int64(current_iteration(m))) < 0 ||
            json_object_object_add(o, "data_size", json_object_new_int64(msg.data_size)) < 0)
                return answer_fl_job(req, m, FL_SYSTEM_ERROR, "Out of memory.", current_iteration(m), 0);

        p = pending_new(m, PENDING_ADMIT, req);
        if (p) {
                p->iteration = current_iteration(m);
                p->fl_id = strdup(msg.fl_id);
        }
        if (!p || !p->fl_id) {
                pending_free(p);
                return answer_fl_job(req, m, FL_SYSTEM_ERROR, "Out of memory.", current_iteration(m), 0);
        }
        r = pending_submit(m, p, WIRE_ADMIT, o);
        if (r < 0) {
                log_warning_errno(r, "Failed to ask the scheduler to admit device %s: %m", msg.fl_id);
                return answer_fl_job(req, m, FL_SYSTEM_ERROR, "The server could not reach the scheduler.",
                                     current_iteration(m), 0);
        }
        return 0;
}

int rounds_answer_admit(Manager *m, Pending *p, const SchedulerReply *reply) {
        const TrainingJob *job = &m->training.current.job;
        char next_s[MS_STRING_MAX], now_s[MS_STRING_MAX];
        uint8_t metrics[] = { FL_METRICS_ACCURACY };
        /* What the servers do, in the device's generation; weights[0] is
         * fedprox_mu (0: off), the layout docs/training.md gives. */
        float weights[] = { (float) job->fedprox_mu };
        FlAggregation aggregation = {
                .type = optimizer_plan_aggregation_type(&job->optimizer, job->fedprox_mu),
                .weights = weights,
                .n_weights = ELEMENTSOF(weights),
        };
        FlFLPlan plan = {
                .fl_name = job->fl_name,
                .iterations = (int32_t) MIN(job->fl_iteration_num, (uint32_t) INT32_MAX),
                .epochs = (int32_t) MIN(job->client_epoch_num, (uint32_t) INT32_MAX),
                .mini_batch = (int32_t) MIN(job->client_batch_size, (uint32_t) INT32_MAX),
                .lr = (float) job->client_learning_rate,
                .aggregation = &aggregation,
                .metrics = metrics,
                .n_metrics = ELEMENTSOF(metrics),
        };
        FlResponseFLJob resp = {
                .retcode = (int32_t) reply->retcode,
                .reason = reply->reason,
                .iteration = (int32_t) (reply->iteration ?: p->iteration),
                .next_req_time = format_ms(next_s, next_req_time(m, reply->next_req_time)),
                .timestamp = format_ms(now_s, now_msec_realtime()),
        };

        http_request_set_label(p->http, server_retcode_label(resp.retcode));
        if (reply->retcode != FL_SUCCEED)
                return reply_message(p->http, &fl_type_response_fl_job, &resp);
        if (!m->model.model)    /* never unloaded once loaded; checked for safety */
                return answer_fl_job(p->http, m, FL_SYSTEM_ERROR, SERVER_NO_MODEL_REASON, p->iteration, 0);

        log_debug("Device %s selected in iteration %u.", p->fl_id, resp.iteration);
        resp.is_selected = true;
        resp.fl_plan_config = &plan;
        resp.feature_map = m->model.maps;
        resp.n_feature_map = m->model.model->n_tensors;
        return reply_message(p->http, &fl_type_response_fl_job, &resp);
}

/* ---- updateModel ----------------------------------------------------------- */

static int answer_update(HttpRequest *req, const Manager *m, int32_t retcode, const char *reason, uint64_t next) {
        char next_s[MS_STRING_MAX], now_s[MS_STRING_MAX];
        FlResponseUpdateModel resp = {
                .retcode = retcode,
                .reason = reason,
                .next_req_time = format_ms(next_s, next_req_time(m, next)),
                .timestamp = format_ms(now_s, now_msec_realtime()),
        };

        http_request_set_label(req, server_retcode_label(retcode));
        return reply_message(req, &fl_type_response_update_model, &resp);
}

int rounds_update_model(HttpRequest *req, void *userdata) {
        _cleanup_(pending_freep) Pending *p = NULL;
        char reason[FL_REASON_MAX] = "";
        Manager *m = userdata;
        uint32_t current = current_iteration(m);
        const uint8_t *body;
        const char *closed;
        size_t size;
        int r;

        closed = rounds_closed(m);
        if (closed)
                return rounds_answer_text(req, closed);
        if (!m->model.model || !m->aggregate)
                return answer_update(req, m, FL_SYSTEM_ERROR, SERVER_NO_MODEL_REASON, 0);

        p = pending_new(m, PENDING_UPDATE, req);
        if (p)
                p->ordered = calloc(m->aggregate->n_tensors, sizeof(float *));
        if (!p || !p->ordered)
                return answer_update(req, m, FL_SYSTEM_ERROR, "Out of memory.", 0);
        p->iteration = current;

        /* Decoded into p: the feature maps point into the body, which lives as long as the request. */
        body = request_body(req, &size, reason);
        r = body ? fl_request_update_model_decode(body, size, &p->update, reason) : -EBADMSG;
        if (r == -ENOMEM)
                return answer_update(req, m, FL_SYSTEM_ERROR, "Out of memory.", 0);
        if (r < 0)
                return answer_update(req, m, FL_REQUEST_ERROR, decode_reason(reason), 0);

        if (!p->update.fl_name || !streq(p->update.fl_name, m->training.current.job.fl_name)) {
                snprintf(reason, sizeof reason, "fl_name must be '%.100s'.", m->training.current.job.fl_name);
                return answer_update(req, m, FL_REQUEST_ERROR, reason, 0);
        }
        if (!fl_id_is_valid(p->update.fl_id))
                return answer_update(req, m, FL_REQUEST_ERROR, "fl_id must be 1 to 255 printable characters.", 0);
        if (p->update.iteration < 0 || (uint32_t) p->update.iteration != current) {
                snprintf(reason, sizeof reason, "The update is for iteration %" PRIi32 ", this is iteration %u.",
                         p->update.iteration, current);
                return answer_update(req, m, FL_OUT_OF_TIME, reason, 0);
        }
        if (m->training.current.phase != TRAINING_COLLECTING) {
                snprintf(reason, sizeof reason, "Iteration %u is %s; updateModel is closed.", current,
                         training_phase_to_string(m->training.current.phase));
                return answer_update(req, m, FL_OUT_OF_TIME, reason, 0);
        }
        r = aggregate_check(m->aggregate, p->update.feature_map, p->update.n_feature_map, p->ordered, reason);
        if (r < 0)
                return answer_update(req, m, FL_REQUEST_ERROR, reason, 0);

        p->digest = aggregate_digest(m->aggregate, p->ordered);
        r = update_log_lookup(m->updates, current, p->update.fl_id, p->digest);
        if (r > 0)
                /* Its answer was lost: the same update is in the sum already. */
                return answer_update(req, m, FL_SUCCEED, "The update was already accepted.", 0);
        if (r == -EEXIST) {
                snprintf(reason, sizeof reason, "Device %.64s already sent a different update in iteration %u.",
                         p->update.fl_id, current);
                return answer_update(req, m, FL_REPEAT_REQUEST, reason, 0);
        }
        /* Outside the replay window: a copy of an update counted already keeps its
         * SUCCEED (just above, or the scheduler's when another server holds it);
         * the scheduler refuses anything else and counts nothing. */
        if (request_freshness_check(m->config->replay_attack_time_diff, p->update.timestamp, now_msec_realtime(),
                                    reason, sizeof reason) < 0)
                p->stale = true;

        p->fl_id = strdup(p->update.fl_id);
        if (!p->fl_id)
                return answer_update(req, m, FL_SYSTEM_ERROR, "Out of memory.", 0);
        r = pending_park(m, p);
        if (r < 0) {
                log_warning_errno(r, "Failed to hold an update for the scheduler: %m");
                return answer_update(req, m, FL_SYSTEM_ERROR, "The server could not reach the scheduler.", 0);
        }
        /* Durable first (group commit), then the scheduler is asked. */
        update_log_submit(m->updates, TAKE_PTR(p));
        return 0;
}

int rounds_answer_update(Manager *m, Pending *p, const SchedulerReply *reply) {
        int32_t retcode = update_log_verdict(m->updates, p, reply);

        if (p->stale && retcode != FL_SUCCEED)
                /* Outside the replay window and not counted anywhere: nothing was. */
                return answer_update(p->http, m, FL_REQUEST_ERROR, reply->reason, reply->next_req_time);
        if (retcode == FL_SUCCEED)
                return answer_update(p->http, m, FL_SUCCEED, reply->reason[0] ? reply->reason : "Update accepted.",
                                     reply->next_req_time);
        if (reply->retcode == FL_SUCCEED)
                return answer_update(p->http, m, retcode, "The update could not be added; retry later.",
                                     reply->next_req_time);
        return answer_update(p->http, m, retcode, reply->reason, reply->next_req_time);
}

int rounds_answer_failure(Pending *p, int32_t retcode, const char *reason) {
        if (p->kind == PENDING_ADMIT)
                return answer_fl_job(p->http, p->manager, retcode, reason, p->iteration, 0);
        return answer_update(p->http, p->manager, retcode, reason, 0);
}

/* ---- getModel, pushMetrics ------------------------------------------------- */

static int answer_get_model(HttpRequest *req, const Manager *m, int32_t retcode, const char *reason,
                            uint32_t iteration, bool with_model) {
        char now_s[MS_STRING_MAX];
        FlResponseGetModel resp = {
                .retcode = retcode,
                .reason = reason,
                .iteration = (int32_t) iteration,
                .timestamp = format_ms(now_s, now_msec_realtime()),
        };

        if (with_model) {
                resp.feature_map = m->model.maps;
                resp.n_feature_map = m->model.model->n_tensors;
        }
        http_request_set_label(req, server_retcode_label(retcode));
        return reply_message(req, &fl_type_response_get_model, &resp);
}

int rounds_get_model(HttpRequest *req, void *userdata) {
        _cleanup_(fl_request_get_model_done) FlRequestGetModel msg = {};
        char reason[FL_REASON_MAX] = "";
        Manager *m = userdata;
        bool finished = m->training.seen && m->training.current.phase == TRAINING_FINISHED;
        uint32_t current = current_iteration(m);
        const uint8_t *body;
        const char *closed;
        size_t size;
        int r;

        /* After the job, the final model keeps being served, scheduler or not (once this server has it). */
        closed = !finished ? rounds_closed(m) : manager_model_syncing(m) ? FL_SAFEMODE_TEXT : NULL;
        if (closed)
                return rounds_answer_text(req, closed);
        if (!m->model.model)
                return answer_get_model(req, m, FL_SYSTEM_ERROR, SERVER_NO_MODEL_REASON, current, false);

        body = request_body(req, &size, reason);
        r = body ? fl_request_get_model_decode(body, size, &msg, reason) : -EBADMSG;
        if (r == -ENOMEM)
                return answer_get_model(req, m, FL_SYSTEM_ERROR, "Out of memory.", current, false);
        if (r < 0)
                return answer_get_model(req, m, FL_REQUEST_ERROR, decode_reason(reason), current, false);
        if (request_freshness_check(m->config->replay_attack_time_diff, msg.timestamp, now_msec_realtime(), reason,
                                    sizeof reason) < 0)
                return answer_get_model(req, m, FL_REQUEST_ERROR, reason, current, false);
        if (!isempty(msg.fl_name) && !streq(msg.fl_name, m->training.current.job.fl_name)) {
                snprintf(reason, sizeof reason, "fl_name must be '%.100s'.", m->training.current.job.fl_name);
                return answer_get_model(req, m, FL_REQUEST_ERROR, reason, current, false);
        }

        if (!finished && msg.iteration >= 0 && (uint32_t) msg.iteration == current && m->model.iteration < current) {
                snprintf(reason, sizeof reason, "The model of iteration %u is not ready yet.", current);
                return answer_get_model(req, m, FL_SUC_NOT_READY, reason, current, false);
        }
        snprintf(reason, sizeof reason, "The model of iteration %u.", m->model.iteration);
        return answer_get_model(req, m, FL_SUCCEED, reason, m->model.iteration, true);
}

static int answer_push_metrics(HttpRequest *req, int32_t retcode) {
        FlResponsePushMetrics resp = { .retcode = retcode };

        http_request_set_label(req, server_retcode_label(retcode));
        return reply_message(req, &fl_type_response_push_metrics, &resp);
}

int rounds_push_metrics(HttpRequest *req, void *userdata) {
        FlRequestPushMetrics msg = {};
        char reason[FL_REASON_MAX] = "", f_iteration[32], f_loss[48], f_accuracy[48];
        Manager *m = userdata;
        const uint8_t *body;
        const char *closed;
        size_t size;
        int r;

        closed = rounds_closed(m);
        if (closed)
                return rounds_answer_text(req, closed);

        body = request_body(req, &size, reason);
        r = body ? fl_request_push_metrics_decode(body, size, &msg, reason) : -EBADMSG;
        if (r == -ENOMEM)
                return answer_push_metrics(req, FL_SYSTEM_ERROR);
        if (r < 0)
                return answer_push_metrics(req, FL_REQUEST_ERROR);

        m->last_loss = msg.loss;
        m->last_accuracy = msg.accuracy;
        m->n_metrics++;
        server_report_push_metrics(m, msg.loss, msg.accuracy);
        snprintf(f_iteration, sizeof f_iteration, "FL_ITERATION=%u", current_iteration(m));
        snprintf(f_loss, sizeof f_loss, "FL_LOSS=%g", (double) msg.loss);
        snprintf(f_accuracy, sizeof f_accuracy, "FL_ACCURACY=%g", (double) msg.accuracy);
        log_struct(LOG_INFO, FIELDS(f_iteration, f_loss, f_accuracy),
                   "Device metrics in iteration %u: loss %g, accuracy %g.", current_iteration(m),
                   (double) msg.loss, (double) msg.accuracy);
        return answer_push_metrics(req, FL_SUCCEED);
}

/* ---- GET /model ------------------------------------------------------------ */

/* GET /model and GET /model/state from a checkpoint in the store: its model,
 * or the optimizer's state after it; verified first, as garbage is never
 * served (a peer syncing from here asks another). */
static int answer_checkpoint(HttpRequest *req, Manager *m, uint32_t iteration, bool state) {
        _cleanup_(checkpoint_done) Checkpoint c = {};
        char problem[160];
        int r;

        r = m->store ? server_store_load_checkpoint(m->store, iteration, &c) : 0;
        if (r < 0) {
                log_warning_errno(r, "Failed to read the checkpoint of iteration %u from %s: %m", iteration,
                                  m->store_path);
                return http_reply_error(req, 500, "Failed to read the checkpoint of iteration %u.", iteration);
        }
        if (r == 0)
                return http_reply_error(req, 404, "This server holds no model of iteration %u (its newest is "
                                        "iteration %u).", iteration, m->model.iteration);
        r = checkpoint_verify(&c, NULL, problem, sizeof problem);
        if (r < 0) {
                log_warning("The checkpoint of iteration %u in %s is damaged (%s); not serving it.", iteration,
                            m->store_path, r == -EUCLEAN ? problem : strerror(-r));
                return http_reply_error(req, 500, "The checkpoint of iteration %u is damaged.", iteration);
        }
        if (!state)
                return http_reply(req, 200, FL_CONTENT_TYPE, c.model, c.size);
        if (!c.state)
                return http_reply_error(req, 404, "No optimizer state is kept with the model of iteration %u.",
                                        iteration);
        return http_reply(req, 200, FL_CONTENT_TYPE, c.state, c.state_size);
}

int rounds_get_model_file(HttpRequest *req, void *userdata) {
        Manager *m = userdata;
        const char *q = http_request_query(req, "iteration");
        uint32_t iteration;

        if (!m->model.model)
                return http_reply_error(req, 404, "%s", SERVER_NO_MODEL_REASON);
        if (!q && manager_model_syncing(m))
                /* Its newest is not the cluster's: a peer syncing from it should ask another. */
                return http_reply_error(req, 503, "%s", SYNC_BUSY_REASON);
        if (!q || (safe_atou32(q, &iteration) >= 0 && iteration == m->model.iteration))
                return http_reply(req, 200, FL_CONTENT_TYPE, m->model.encoded, m->model.encoded_size);
        if (safe_atou32(q, &iteration) < 0)
                return http_reply_error(req, 400, "Invalid iteration '%s': expected a number.", q);

        return answer_checkpoint(req, m, iteration, false);
}

/* The optimizer state after the model of an iteration, for a peer that takes
 * the model over (server-sync.h): from memory when it is the served model or
 * the one before, else from its checkpoint. */
int rounds_get_state_file(HttpRequest *req, void *userdata) {
        Manager *m = userdata;
        const char *q = http_request_query(req, "iteration");
        const ServerModel *sm = NULL;
        uint32_t iteration;

        if (!m->model.model)
                return http_reply_error(req, 404, "%s", SERVER_NO_MODEL_REASON);
        if (!q && manager_model_syncing(m))
                return http_reply_error(req, 503, "%s", SYNC_BUSY_REASON);
        if (!q)
                iteration = m->model.iteration;
        else if (safe_atou32(q, &iteration) < 0)
                return http_reply_error(req, 400, "Invalid iteration '%s': expected a number.", q);

        if (iteration == m->model.iteration)
                sm = &m->model;
        else if (m->previous_model.model && iteration == m->previous_model.iteration)
                sm = &m->previous_model;
        if (sm) {
                if (!sm->state)
                        return http_reply_error(req, 404, "No optimizer state is kept with the model of iteration "
                                                "%u.", iteration);
                return http_reply(req, 200, FL_CONTENT_TYPE, sm->state_encoded, sm->state_encoded_size);
        }

        return answer_checkpoint(req, m, iteration, true);
}
