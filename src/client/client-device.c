/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "client-device.h"
#include "fl-messages.h"
#include "fl-model-io.h"
#include "lenet5.h"
#include "log.h"
#include "rng.h"
#include "util.h"

/* What we accept from a plan: the trainer's own limits, and batches no
 * larger than its workspace. */
#define PLAN_EPOCHS_MAX 1000
#define LAGGING_BACKOFF_FIRST_USEC (50 * USEC_PER_MSEC)
#define LAGGING_BACKOFF_MAX_USEC (1 * USEC_PER_SEC)

const char *reason_sanitize(const char *s, char *buf, size_t size) {
        size_t n = 0;

        if (isempty(s))
                return "(no reason given)";
        for (; s[n] && n + 1 < size; n++)
                buf[n] = isprint((unsigned char) s[n]) ? s[n] : '?';
        buf[n] = '\0';
        return buf;
}

static const char *retcode_name(int32_t c) {
        return fl_retcode_to_string(c) ?: "an unknown retcode";
}

static void timestamp_now(char buf[static 24]) {
        snprintf(buf, 24, "%" PRIu64, now_msec_realtime());
}

/* next_req_time is a decimal string of Unix ms; anything else is ignored. */
static uint64_t parse_next_req_time(const char *s) {
        uint64_t v;

        return s && safe_atou64(s, &v) >= 0 ? v : 0;
}

void model_cache_init(ModelCache *c) {
        *c = (ModelCache) {};
        pthread_mutex_init(&c->lock, NULL);
}

void model_cache_clear(ModelCache *c) {
        for (size_t i = 0; i < c->n; i++)
                model_free(c->models[i]);
        c->models = mfree(c->models);
        c->n = 0;
}

void model_cache_done(ModelCache *c) {
        model_cache_clear(c);
        pthread_mutex_destroy(&c->lock);
}

/* Names and sizes before anything is copied: a server's model is LeNet-5
 * or nothing we can train. */
static bool maps_are_lenet5(const FlFeatureMap *maps, size_t n) {
        if (n != LENET5_N_TENSORS)
                return false;
        for (size_t i = 0; i < n; i++)
                if (maps[i].n != lenet5_tensors[i].size || !streq(maps[i].name, lenet5_tensors[i].name))
                        return false;
        return true;
}

static bool maps_equal_model(const FlFeatureMap *maps, const Model *m) {
        for (size_t i = 0; i < m->n_tensors; i++)
                if (memcmp(maps[i].data, m->tensors[i].data, m->tensors[i].size * sizeof(float)) != 0)
                        return false;
        return true;
}

static int model_cache_get(ModelCache *c, const FlFeatureMap *maps, size_t n, const Model **ret) {
        _cleanup_(model_freep) Model *m = NULL;
        Model **models;
        int r = 0;

        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < c->n; i++)
                if (maps_equal_model(maps, c->models[i])) {
                        *ret = c->models[i];
                        goto out;
                }

        r = fl_model_from_feature_maps(maps, n, &m);
        if (r < 0)
                goto out;
        models = reallocarray(c->models, c->n + 1, sizeof(Model *));
        if (!models) {
                r = -ENOMEM;
                goto out;
        }
        c->models = models;
        *ret = c->models[c->n++] = TAKE_PTR(m);
out:
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* FedProx's mu, in Aggregation.weights[0] (docs/training.md); 0 when the
 * plan has no weights. */
static float plan_prox_mu(const FlFLPlan *p) {
        return p->aggregation && p->aggregation->n_weights >= 1 ? p->aggregation->weights[0] : 0.0f;
}

static int plan_from_message(const FlFLPlan *p, float momentum, TrainPlan *ret) {
        float mu = plan_prox_mu(p);

        if (p->epochs < 1 || p->epochs > PLAN_EPOCHS_MAX || p->mini_batch < 1 ||
            !isfinite(p->lr) || p->lr <= 0.0f || !isfinite(mu) || mu < 0.0f || mu > TRAIN_PROX_MU_MAX)
                return -EBADMSG;
        *ret = (TrainPlan) {
                .epochs = (unsigned) p->epochs,
                .mini_batch = (unsigned) p->mini_batch,
                .lr = p->lr,
                .momentum = momentum,
                .shuffle = p->shuffle,
                .prox_mu = mu,
        };
        return 0;
}

/* A selected device's reply: the plan and the model it trains from. */
static int accept_selection(Device *d, DeviceContext *ctx, const FlResponseFLJob *resp, const char *url) {
        int r;

        if (!resp->fl_plan_config)
                return log_error_errno(-EBADMSG, "Device %zu: %s selected it without a plan.", d->index, url);
        r = plan_from_message(resp->fl_plan_config, ctx->momentum, &d->plan);
        if (r < 0)
                return log_error_errno(r, "Device %zu: %s sent an unusable plan (epochs %" PRIi32
                                       ", mini_batch %" PRIi32 ", lr %g, fedprox_mu %g).", d->index, url,
                                       resp->fl_plan_config->epochs, resp->fl_plan_config->mini_batch,
                                       (double) resp->fl_plan_config->lr,
                                       (double) plan_prox_mu(resp->fl_plan_config));
        if (!maps_are_lenet5(resp->feature_map, resp->n_feature_map))
                return log_error_errno(-EBADMSG, "Device %zu: the model %s sent is not LeNet-5 "
                                       "(%zu tensors; see fl-client init-model).", d->index, url,
                                       resp->n_feature_map);
        r = model_cache_get(&ctx->cache, resp->feature_map, resp->n_feature_map, &d->global);
        if (r < 0)
                return log_error_errno(r, "Device %zu: failed to keep the model %s sent: %m", d->index, url);

        d->state = DEVICE_SELECTED;
        d->iteration = resp->iteration;
        d->plan_iterations = resp->fl_plan_config->iterations;
        return 0;
}

int device_start_fl_job(Device *d, DeviceContext *ctx, ClientHttp *h) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + ctx->timeout_usec, backoff = LAGGING_BACKOFF_FIRST_USEC;
        size_t server = d->index % ctx->servers->n;
        _cleanup_free_ uint8_t *body = NULL;
        char ts[24], reason[256];
        size_t size;
        int r;

        d->state = DEVICE_IDLE;
        d->global = NULL;
        d->next_req_time = 0;

        for (;;) {
                _cleanup_(fl_response_fl_job_done) FlResponseFLJob resp = {};
                _cleanup_(http_reply_done) HttpReply reply = {};
                char why[FL_REASON_MAX];
                const char *url;

                timestamp_now(ts);
                body = mfree(body);
                r = fl_request_fl_job_encode(&(FlRequestFLJob) {
                                .fl_name = ctx->fl_name,
                                .fl_id = d->fl_id,
                                .iteration = MAX(ctx->last_iteration + 1, 0),
                                .data_size = (int32_t) d->n_examples,
                                .timestamp = ts,
                        }, &body, &size);
                if (r < 0)
                        return log_error_errno(r, "Device %zu: failed to encode startFLJob: %m", d->index);

                r = client_http_round(h, ctx->servers, server, "startFLJob", body, size, &reply);
                if (r == -ESHUTDOWN) {
                        d->state = DEVICE_FINISHED;
                        return 0;
                }
                if (r < 0)
                        return log_error_errno(r, "Device %zu: startFLJob failed: %s", d->index, client_http_error(h));
                url = ctx->servers->urls[reply.server];

                r = fl_response_fl_job_decode(reply.body, reply.size, &resp, why);
                if (r < 0)
                        return log_error_errno(r, "Device %zu: %s answered startFLJob with a buffer that is not "
                                               "a ResponseFLJob: %s", d->index, url, why);

                switch (resp.retcode) {
                case FL_SUCCEED:
                        if (!resp.is_selected)
                                break;
                        /* A server that has not yet heard that the iteration we
                         * already have the model of is over: ask again soon. */
                        if (resp.iteration > ctx->last_iteration)
                                return accept_selection(d, ctx, &resp, url);
                        goto lagging;
                case FL_OUT_OF_TIME:
                case FL_NOT_SELECTED:
                        if (resp.iteration <= ctx->last_iteration && resp.iteration >= 0)
                                goto lagging;
                        break;
                default:
                        return log_error_errno(-EREMOTEIO, "Device %zu: %s refused startFLJob with %s (%" PRIi32 "): %s",
                                               d->index, url, retcode_name(resp.retcode), resp.retcode,
                                               reason_sanitize(resp.reason, reason, sizeof reason));
                }

                log_debug("Device %zu not selected by %s in iteration %" PRIi32 ": %s", d->index, url,
                          resp.iteration, reason_sanitize(resp.reason, reason, sizeof reason));
                d->state = DEVICE_NOT_SELECTED;
                d->iteration = resp.iteration;
                d->next_req_time = parse_next_req_time(resp.next_req_time);
                return 0;

        lagging:
                if (now_usec(CLOCK_MONOTONIC) + backoff >= deadline)
                        return log_error_errno(-ETIMEDOUT, "Device %zu: %s stayed in iteration %" PRIi32
                                               ", whose model we already have.", d->index, url, resp.iteration);
                sleep_usec(backoff);
                backoff = MIN(backoff * 2, (uint64_t) LAGGING_BACKOFF_MAX_USEC);
        }
}

/* MindSpore's clients upload w * data_size; the servers divide the sum by
 * the total data_size (FedAvg). */
static void model_scale(Model *m, float factor) {
        for (size_t t = 0; t < m->n_tensors; t++)
                for (size_t i = 0; i < m->tensors[t].size; i++)
                        m->tensors[t].data[i] *= factor;
}

/* The server a device sends its update (and its metrics) to: another than
 * the one that admitted it, when there is one; admission is the cluster's. */
static size_t update_server(const Device *d, const DeviceContext *ctx) {
        return ctx->servers->n > 1 ? (d->index + 1) % ctx->servers->n : 0;
}

/* pushMetrics, as MindSpore's clients send it after their local evaluation:
 * here the loss and accuracy of the last local epoch. Only the operator's
 * view depends on it, so a failure is logged and training goes on. */
static void push_metrics(Device *d, DeviceContext *ctx, ClientHttp *h) {
        _cleanup_(fl_response_push_metrics_done) FlResponsePushMetrics resp = {};
        _cleanup_(http_reply_done) HttpReply reply = {};
        _cleanup_free_ uint8_t *body = NULL;
        char why[FL_REASON_MAX];
        size_t size;
        int r;

        r = fl_request_push_metrics_encode(&(FlRequestPushMetrics) {
                        .loss = (float) d->stats.loss,
                        .accuracy = (float) d->stats.accuracy,
                }, &body, &size);
        if (r < 0) {
                log_warning_errno(r, "Device %zu: failed to encode pushMetrics, not sending it: %m", d->index);
                return;
        }
        r = client_http_round(h, ctx->servers, update_server(d, ctx), "pushMetrics", body, size, &reply);
        if (r == -ESHUTDOWN)
                return;         /* the update will find out, too */
        if (r < 0) {
                log_warning("Device %zu: pushMetrics failed, going on without it: %s", d->index, client_http_error(h));
                return;
        }
        r = fl_response_push_metrics_decode(reply.body, reply.size, &resp, why);
        if (r < 0)
                log_warning("Device %zu: %s answered pushMetrics with a buffer that is not a ResponsePushMetrics: %s",
                            d->index, ctx->servers->urls[reply.server], why);
        else if (resp.retcode != FL_SUCCEED)
                log_debug("Device %zu: %s answered pushMetrics with %s.", d->index, ctx->servers->urls[reply.server],
                          retcode_name(resp.retcode));
}

static int send_update(Device *d, DeviceContext *ctx, ClientHttp *h, const Model *upload) {
        _cleanup_(fl_response_update_model_done) FlResponseUpdateModel resp = {};
        _cleanup_(http_reply_done) HttpReply reply = {};
        _cleanup_free_ FlFeatureMap *maps = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        size_t server, size;
        char ts[24], why[FL_REASON_MAX], reason[256];
        const char *url;
        int r;

        r = fl_model_to_feature_maps(upload, &maps);
        if (r < 0)
                return log_oom();
        timestamp_now(ts);
        r = fl_request_update_model_encode(&(FlRequestUpdateModel) {
                        .fl_name = ctx->fl_name,
                        .fl_id = d->fl_id,
                        .iteration = d->iteration,
                        .feature_map = maps,
                        .n_feature_map = upload->n_tensors,
                        .timestamp = ts,
                        .upload_loss = (float) d->stats.loss,
                }, &body, &size);
        if (r < 0)
                return log_error_errno(r, "Device %zu: failed to encode updateModel: %m", d->index);

        server = update_server(d, ctx);
        r = client_http_round(h, ctx->servers, server, "updateModel", body, size, &reply);
        if (r == -ESHUTDOWN) {
                d->state = DEVICE_FINISHED;
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Device %zu: updateModel failed: %s", d->index, client_http_error(h));
        url = ctx->servers->urls[reply.server];

        r = fl_response_update_model_decode(reply.body, reply.size, &resp, why);
        if (r < 0)
                return log_error_errno(r, "Device %zu: %s answered updateModel with a buffer that is not "
                                       "a ResponseUpdateModel: %s", d->index, url, why);

        switch (resp.retcode) {
        case FL_SUCCEED:
                d->state = DEVICE_UPDATED;
                return 0;
        case FL_REPEAT_REQUEST:
                if (reply.retried) {
                        /* Our earlier attempt got through after all. */
                        d->state = DEVICE_UPDATED;
                        return 0;
                }
                __attribute__((fallthrough));
        case FL_OUT_OF_TIME:
        case FL_NOT_SELECTED:
                log_warning("Device %zu: %s did not take its update for iteration %" PRIi32 " (%s): %s",
                            d->index, url, d->iteration, retcode_name(resp.retcode),
                            reason_sanitize(resp.reason, reason, sizeof reason));
                d->state = DEVICE_LATE;
                d->next_req_time = parse_next_req_time(resp.next_req_time);
                return 0;
        default:
                if (reply.retried && resp.retcode == FL_REQUEST_ERROR)
                        log_warning("Device %zu: updateModel was sent twice (a connection failed); "
                                    "the second was refused.", d->index);
                return log_error_errno(-EREMOTEIO, "Device %zu: %s refused updateModel with %s (%" PRIi32 "): %s",
                                       d->index, url, retcode_name(resp.retcode), resp.retcode,
                                       reason_sanitize(resp.reason, reason, sizeof reason));
        }
}

int device_train_and_update(Device *d, DeviceContext *ctx, ClientHttp *h) {
        _cleanup_(model_freep) Model *m = NULL;
        uint64_t seed;
        int r;

        if (d->state != DEVICE_SELECTED)
                return 0;

        r = model_copy(&m, d->global);
        if (r < 0)
                return log_oom();

        /* Its own stream per device and iteration: the same seed and global
         * model give the same update, whichever thread runs it. */
        seed = rng_derive_seed(rng_derive_seed(ctx->seed, (uint64_t) (uint32_t) d->iteration), d->index);
        r = device_train(m, ctx->train, d->examples, d->n_examples, &d->plan, seed, &d->stats);
        if (r == -ERANGE)
                return log_error_errno(r, "Device %zu: training diverged in iteration %" PRIi32
                                       " (the loss is not finite); lower client_learning_rate.",
                                       d->index, d->iteration);
        if (r < 0)
                return log_error_errno(r, "Device %zu: training failed: %m", d->index);

        push_metrics(d, ctx, h);
        model_scale(m, (float) d->n_examples);
        return send_update(d, ctx, h, m);
}
