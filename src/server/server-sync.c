/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fl-model-io.h"
#include "json-util.h"
#include "log.h"
#include "server-manager.h"
#include "server-optimizer.h"
#include "server-sync.h"
#include "wire-protocol.h"

/* ---- Pure helpers ------------------------------------------------------------ */

int sync_checksum_parse(const char *s, char ret[static MODEL_CHECKSUM_STRING_MAX]) {
        size_t n = strnlen(s, MODEL_CHECKSUM_STRING_MAX);

        if (n != 0 && n != MODEL_CHECKSUM_STRING_MAX - 1)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++) {
                if (!isxdigit((unsigned char) s[i]))
                        return -EBADMSG;
                ret[i] = (char) tolower((unsigned char) s[i]);
        }
        ret[n] = 0;
        return 0;
}

static bool state_is(const ServerModel *sm, const char *state_checksum) {
        return !state_checksum || streq(sm->state_checksum, state_checksum);
}

SyncVerdict sync_compare(const ServerModel *model, const ServerModel *previous, uint32_t current_iteration,
                         uint32_t model_iteration, const char *model_checksum, const char *state_checksum) {
        if (isempty(model_checksum))
                /* The initial model, which every server loads itself: nothing to check it against. */
                return model->model ? SYNC_IN_SYNC : SYNC_NO_MODEL;
        /* The right model with another optimizer state steps wrongly: both come from a peer. */
        if (model->model && streq(model->checksum, model_checksum) && model->iteration == model_iteration)
                return state_is(model, state_checksum) ? SYNC_IN_SYNC : SYNC_FETCH;
        /* Aggregated here, not yet committed by the scheduler: the announced model is the one before. */
        if (model->model && previous->model && model->iteration == current_iteration &&
            streq(previous->checksum, model_checksum))
                return state_is(previous, state_checksum) ? SYNC_IN_SYNC : SYNC_FETCH;
        if (model->model && streq(model->checksum, model_checksum) && state_is(model, state_checksum))
                return SYNC_RELABEL;
        return SYNC_FETCH;
}

int sync_peer_url(const char *address, uint32_t port, char ret[static SYNC_URL_MAX]) {
        return sync_peer_url_scheme(address, port, false, ret);
}

int sync_peer_url_scheme(const char *address, uint32_t port, bool https, char ret[static SYNC_URL_MAX]) {
        const char *scheme = https ? "https" : "http";
        unsigned char a[sizeof(struct in6_addr)];
        int k;

        if (!address || port == 0 || port > UINT16_MAX)
                return -EINVAL;
        if (inet_pton(AF_INET, address, a) == 1)
                k = snprintf(ret, SYNC_URL_MAX, "%s://%s:%" PRIu32 "/model", scheme, address, port);
        else if (inet_pton(AF_INET6, address, a) == 1)
                k = snprintf(ret, SYNC_URL_MAX, "%s://[%s]:%" PRIu32 "/model", scheme, address, port);
        else
                return -EINVAL;
        return k > 0 && k < SYNC_URL_MAX ? 0 : -EINVAL;
}

int sync_peer_state_url(const char *address, uint32_t port, uint32_t iteration, char ret[static SYNC_URL_MAX]) {
        char base[SYNC_URL_MAX];
        int r, k;

        r = sync_peer_url(address, port, base);
        if (r < 0)
                return r;
        k = snprintf(ret, SYNC_URL_MAX, "%s/state?iteration=%" PRIu32, base, iteration);
        return k > 0 && k < SYNC_URL_MAX ? 0 : -EINVAL;
}

static int compare_rank(const void *a, const void *b, void *userdata) {
        const ServerMembers *v = userdata;
        uint32_t x = v->members[*(const size_t *) a].rank, y = v->members[*(const size_t *) b].rank;

        return x < y ? -1 : x > y;
}

size_t sync_peers(const ServerMembers *v, const char *self, size_t *idx) {
        char url[SYNC_URL_MAX];
        size_t n = 0;

        for (size_t i = 0; i < v->n_members; i++) {
                const ServerMember *p = &v->members[i];

                if (p->alive && !p->leaving && !streq(p->node_id, self) &&
                    sync_peer_url(p->address, p->fl_server_port, url) >= 0)
                        idx[n++] = i;
        }
        qsort_r(idx, n, sizeof *idx, compare_rank, (void *) v);
        return n;
}

uint64_t sync_backoff_next(uint64_t usec) {
        if (usec < SYNC_BACKOFF_MIN_USEC)
                return SYNC_BACKOFF_MIN_USEC;
        return MIN(usec * 2, (uint64_t) SYNC_BACKOFF_MAX_USEC);
}

/* ---- The sync ---------------------------------------------------------------- */

static void sync_evaluate(Manager *m);

/* The announced state to compare with, or NULL. */
static const char *sync_state_target(const ServerSync *s) {
        return s->has_state ? s->state_checksum : NULL;
}

bool manager_model_in_sync(const Manager *m) {
        return m->sync.in_sync;
}

bool manager_model_syncing(const Manager *m) {
        const ServerSync *s = &m->sync;

        return s->announced && !s->in_sync &&
               sync_compare(&m->model, &m->previous_model, m->training.current.iteration, s->model_iteration,
                            s->model_checksum, sync_state_target(s)) == SYNC_FETCH;
}

static void sync_stop(ServerSync *s) {
        s->get = http_get_cancel(s->get);
        s->fetched = model_free(s->fetched);
        (void) sd_event_source_set_enabled(s->retry_timer, SD_EVENT_OFF);
}

static void sync_report(Manager *m) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        ServerSync *s = &m->sync;
        const char *checksum, *state;
        uint32_t iteration;
        int r;

        if (!s->announced || !s->in_sync || !m->link->conn || !m->link->registered || !m->model.model)
                return;

        /* The announced values, which are what the scheduler compares; while it
         * announces "" (nothing committed yet), this server's own initial model,
         * which the scheduler adopts from the first server to report it. */
        iteration = isempty(s->model_checksum) ? m->model.iteration : s->model_iteration;
        checksum = isempty(s->model_checksum) ? m->model.checksum : s->model_checksum;
        state = isempty(s->model_checksum) || !s->has_state ? m->model.state_checksum : s->state_checksum;
        if (s->reported && s->reported_iteration == iteration && streq(s->reported_checksum, checksum) &&
            streq(s->reported_state_checksum, state))
                return;

        o = json_object_new_object();
        if (!o ||
            json_object_object_add(o, "model_iteration", json_object_new_int64(iteration)) < 0 ||
            json_object_object_add(o, "model_checksum", json_object_new_string(checksum)) < 0 ||
            json_object_object_add(o, "state_checksum", json_object_new_string(state)) < 0) {
                log_oom();
                return;
        }
        r = conn_send_json(m->link->conn, WIRE_SYNCED, o);
        if (r < 0) {
                log_warning_errno(r, "Failed to tell the scheduler that this server holds the model of iteration "
                                  "%u: %m", s->model_iteration);
                return;
        }
        log_debug("Told the scheduler this server holds the model of iteration %u (%s).", iteration, checksum);
        s->reported = true;
        s->reported_iteration = iteration;
        strcpy(s->reported_checksum, checksum);
        strcpy(s->reported_state_checksum, state);
}

static void sync_set_in_sync(Manager *m) {
        ServerSync *s = &m->sync;

        if (!s->in_sync && s->logged)
                manager_status(m, "Rank %u, holding the cluster's model of iteration %u; serving devices on port %u.",
                               m->link->rank, m->model.iteration, m->port);
        s->in_sync = true;
        s->logged = false;
        s->attempt = 0;
        s->backoff_usec = 0;
        s->waiting_for_peers = false;
        sync_stop(s);
        sync_report(m);
}

static void sync_retry_later(Manager *m) {
        ServerSync *s = &m->sync;

        s->backoff_usec = sync_backoff_next(s->backoff_usec);
        (void) sd_event_source_set_time_relative(s->retry_timer, s->backoff_usec);
        (void) sd_event_source_set_enabled(s->retry_timer, SD_EVENT_ONESHOT);
}

static size_t sync_max_size(const Manager *m) {
        /* A device's update carries the whole model, so the model fits in a request; plus room. */
        size_t limit = (size_t) m->config->max_request_size_mb * 1024U * 1024U + 1024U * 1024U;

        return MIN(limit, FL_MODEL_FILE_MAX);
}

/* Model and state (taken) from a peer, both checked: checkpointed and served. */
static int sync_install(Manager *m, Model *model, Model *state, size_t size) {
        ServerSync *s = &m->sync;
        int r;

        r = manager_install_model(m, model, state, s->model_iteration);
        if (r < 0)
                return log_error_errno(r, "Failed to checkpoint the model of iteration %u taken from peer rank %u in "
                                       "%s: %m", s->model_iteration, s->peer_rank, m->store_path);
        log_info("Took the model of iteration %u from peer rank %u (%s): %zu tensors, %zu bytes, checksum %s%s%s. "
                 "In sync; serving devices.", s->model_iteration, s->peer_rank, s->peer_node_id,
                 m->model.model->n_tensors, size, m->model.checksum, m->model.state ? ", optimizer state " : "",
                 m->model.state ? m->model.state_checksum : "");
        sync_set_in_sync(m);
        return 0;
}

/* Whether an answer of a peer can be used; logs why not. */
static bool peer_answered(const ServerSync *s, int error, unsigned status, const char *what) {
        if (error < 0) {
                log_warning_errno(error, "Failed to take the %s from peer rank %u (%s): %m", what, s->peer_rank,
                                  s->peer_node_id);
                return false;
        }
        if (status != 200) {
                log_warning("Peer rank %u (%s) answered GET of the %s with HTTP %u.", s->peer_rank,
                            s->peer_node_id, what, status);
                return false;
        }
        return true;
}

/* A FeatureMapList from a peer, checked against the announced checksum. */
static int peer_decode(const ServerSync *s, const uint8_t *body, size_t size, const char *want, const char *what,
                       Model **ret) {
        _cleanup_(model_freep) Model *model = NULL;
        char checksum[MODEL_CHECKSUM_STRING_MAX];
        int r;

        r = fl_model_decode(body, size, &model);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_warning("Peer rank %u (%s) sent %zu bytes that are not a %s.", s->peer_rank, s->peer_node_id,
                            size, what);
                return -EBADMSG;
        }
        model_checksum_string(model, checksum);
        if (!streq(checksum, want)) {
                log_warning("Peer rank %u (%s) holds %s %s, not the cluster's %s of iteration %u.", s->peer_rank,
                            s->peer_node_id, what, checksum, want, s->model_iteration);
                return -EBADMSG;
        }
        *ret = TAKE_PTR(model);
        return 0;
}

static void sync_retry_next_peer(Manager *m) {
        m->sync.fetched = model_free(m->sync.fetched);
        m->sync.attempt++;
        sync_retry_later(m);
}

static void on_state(int error, unsigned status, const uint8_t *body, size_t size, void *userdata) {
        _cleanup_(model_freep) Model *state = NULL;
        Manager *m = userdata;
        ServerSync *s = &m->sync;

        s->get = NULL;
        if (!peer_answered(s, error, status, "optimizer state") ||
            peer_decode(s, body, size, s->state_checksum, "optimizer state", &state) < 0)
                goto next;
        if (optimizer_state_check(state, s->fetched, NULL) < 0) {
                log_warning("Peer rank %u (%s) sent an optimizer state that does not fit the model.", s->peer_rank,
                            s->peer_node_id);
                goto next;
        }
        if (sync_install(m, TAKE_PTR(s->fetched), TAKE_PTR(state), s->fetched_size) >= 0)
                return;
next:
        sync_retry_next_peer(m);
}

static void on_model(int error, unsigned status, const uint8_t *body, size_t size, void *userdata) {
        _cleanup_(model_freep) Model *model = NULL;
        Manager *m = userdata;
        ServerSync *s = &m->sync;
        char url[SYNC_URL_MAX];
        int r;

        s->get = NULL;
        if (!peer_answered(s, error, status, "model"))
                goto next;
        if (sync_compare(&m->model, &m->previous_model, m->training.current.iteration, s->model_iteration,
                         s->model_checksum, sync_state_target(s)) != SYNC_FETCH) {
                /* An aggregation here brought this server in line meanwhile. */
                sync_evaluate(m);
                return;
        }
        if (peer_decode(s, body, size, s->model_checksum, "model", &model) < 0)
                goto next;

        if (!s->has_state || isempty(s->state_checksum)) {
                /* The cluster keeps no optimizer state with this model. */
                if (sync_install(m, TAKE_PTR(model), NULL, size) >= 0)
                        return;
                goto next;
        }

        /* Its state, from the same peer, by iteration: the peer may have moved on. */
        r = sync_peer_state_url(s->peer_address, s->peer_port, s->model_iteration, url);
        if (r >= 0)
                r = http_get_start(s->http, url, sync_max_size(m), SYNC_GET_TIMEOUT_USEC, on_state, m, &s->get);
        if (r < 0) {
                log_warning_errno(r, "Failed to ask peer rank %u for the optimizer state: %m", s->peer_rank);
                goto next;
        }
        s->fetched = TAKE_PTR(model);
        s->fetched_size = size;
        return;

next:
        sync_retry_next_peer(m);
}

static void sync_fetch(Manager *m) {
        ServerSync *s = &m->sync;
        const ServerMembers *v = &m->link->view;
        _cleanup_free_ size_t *idx = NULL;
        const ServerMember *peer;
        char url[SYNC_URL_MAX];
        size_t n;
        int r;

        idx = calloc(MAX(v->n_members, (size_t) 1), sizeof *idx);
        if (!idx) {
                log_oom();
                sync_retry_later(m);
                return;
        }
        n = sync_peers(v, m->node_id, idx);
        if (n == 0) {
                if (!s->waiting_for_peers)
                        log_warning("No peer to take the model of iteration %u from: no other server is alive and "
                                    "staying. Waiting for one; devices get the safemode answer meanwhile.",
                                    s->model_iteration);
                s->waiting_for_peers = true;
                return;
        }
        s->waiting_for_peers = false;

        peer = &v->members[idx[s->attempt % n]];
        /* With TLS on, the peer's device port speaks HTTPS (checked against the cluster's CA). */
        if (sync_peer_url_scheme(peer->address, peer->fl_server_port, http_client_has_tls(s->http), url) < 0)
                return;         /* sync_peers() checked it */
        s->peer_rank = peer->rank;
        snprintf(s->peer_node_id, sizeof s->peer_node_id, "%s", peer->node_id);
        snprintf(s->peer_address, sizeof s->peer_address, "%s", peer->address);
        s->peer_port = peer->fl_server_port;

        r = http_get_start(s->http, url, sync_max_size(m), SYNC_GET_TIMEOUT_USEC, on_model, m, &s->get);
        if (r < 0) {
                log_warning_errno(r, "Failed to ask peer rank %u (%s) for the model: %m", peer->rank, url);
                s->attempt++;
                sync_retry_later(m);
                return;
        }
        log_info("Taking the model of iteration %u (checksum %s) from peer rank %u (%s).", s->model_iteration,
                 s->model_checksum, peer->rank, url);
        manager_status(m, "Rank %u, taking the model of iteration %u from peer rank %u; devices get the safemode "
                       "answer meanwhile.", m->link->rank, s->model_iteration, peer->rank);
}

static void sync_evaluate(Manager *m) {
        ServerSync *s = &m->sync;
        _cleanup_(model_freep) Model *copy = NULL, *copy_state = NULL;
        SyncVerdict v;
        int r;

        if (!s->announced)
                return;
        v = sync_compare(&m->model, &m->previous_model, m->training.current.iteration, s->model_iteration,
                         s->model_checksum, sync_state_target(s));
        switch (v) {
        case SYNC_IN_SYNC:
                sync_set_in_sync(m);
                return;

        case SYNC_RELABEL:
                /* The same bytes (an iteration without updates carried the model over): no download. */
                r = model_copy(&copy, m->model.model);
                if (r >= 0 && m->model.state)
                        r = model_copy(&copy_state, m->model.state);
                if (r >= 0)
                        r = manager_install_model(m, TAKE_PTR(copy), TAKE_PTR(copy_state), s->model_iteration);
                if (r < 0) {
                        log_error_errno(r, "Failed to record this server's model as that of iteration %u in %s: %m",
                                        s->model_iteration, m->store_path);
                        s->in_sync = false;
                        sync_retry_later(m);
                        return;
                }
                log_info("This server's model is the cluster's model of iteration %u (checksum %s); recorded it "
                         "as such.", s->model_iteration, m->model.checksum);
                sync_set_in_sync(m);
                return;

        case SYNC_NO_MODEL:
                s->in_sync = false;
                sync_stop(s);
                if (!s->logged)
                        log_warning("This server has no model, and the cluster still trains its initial model, "
                                    "which a peer's copy cannot be checked against: start fl-serverd with "
                                    "--model_path.");
                s->logged = true;
                return;

        case SYNC_FETCH:
                s->in_sync = false;
                if (!s->logged) {
                        if (m->model.model)
                                log_notice("This server holds model %s of iteration %u, the cluster's is %s of "
                                           "iteration %u: taking it from a peer; devices get the safemode answer "
                                           "meanwhile.", m->model.checksum, m->model.iteration, s->model_checksum,
                                           s->model_iteration);
                        else
                                log_notice("This server has no model, the cluster's is %s of iteration %u: taking "
                                           "it from a peer.", s->model_checksum, s->model_iteration);
                }
                s->logged = true;
                if (s->get || sd_event_source_get_enabled(s->retry_timer, NULL) > 0)
                        return;         /* running, or waiting out the back-off */
                sync_fetch(m);
                return;
        }
}

void manager_sync_on_iteration(Manager *m) {
        const IterationMsg *msg = &m->training.current;
        ServerSync *s = &m->sync;

        if (!msg->has_model) {
                /* A scheduler without elastic scaling: every server serves its own model. */
                sync_stop(s);
                s->announced = false;
                s->in_sync = true;
                return;
        }
        if (!s->announced || s->model_iteration != msg->model_iteration ||
            !streq(s->model_checksum, msg->model_checksum) || s->has_state != msg->has_state ||
            !streq(s->state_checksum, msg->state_checksum)) {
                /* A new target: a download of the old one is moot. */
                sync_stop(s);
                s->announced = true;
                s->model_iteration = msg->model_iteration;
                strcpy(s->model_checksum, msg->model_checksum);
                s->has_state = msg->has_state;
                strcpy(s->state_checksum, msg->state_checksum);
                s->logged = s->waiting_for_peers = false;
                s->attempt = 0;
                s->backoff_usec = 0;
        }
        sync_evaluate(m);
}

void manager_sync_members_changed(Manager *m) {
        ServerSync *s = &m->sync;

        if (s->announced && !s->in_sync && s->waiting_for_peers && !s->get)
                sync_evaluate(m);
}

void manager_sync_link_lost(Manager *m) {
        m->sync.reported = false;
}

static int sync_retry_handler(sd_event_source *source, uint64_t usec, void *userdata) {
        sync_evaluate(userdata);
        return 0;
}

int server_sync_init(ServerSync *s, Manager *m) {
        int r;

        *s = (ServerSync) { .manager = m };
        r = http_client_new(&s->http, m->event);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(m->event, &s->retry_timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC,
                                       sync_retry_handler, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->retry_timer, "model-sync-retry");
        return sd_event_source_set_enabled(s->retry_timer, SD_EVENT_OFF);
}

void server_sync_done(ServerSync *s) {
        s->get = NULL;          /* freed with the client, without a callback */
        s->fetched = model_free(s->fetched);
        s->http = http_client_free(s->http);
        s->retry_timer = sd_event_source_disable_unref(s->retry_timer);
}
