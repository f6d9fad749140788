/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "fl-model-io.h"
#include "log.h"
#include "server-manager.h"
#include "server-model.h"
#include "server-optimizer.h"
#include "server-store.h"
#include "store.h"
#include "util.h"

void server_model_done(ServerModel *sm) {
        model_free(sm->model);
        free(sm->maps);
        free(sm->encoded);
        model_free(sm->state);
        free(sm->state_encoded);
        *sm = (ServerModel) {};
}

int server_model_set_state(ServerModel *sm, Model *state, uint8_t *encoded, size_t encoded_size) {
        _cleanup_(model_freep) Model *owned = state;
        _cleanup_free_ uint8_t *buf = encoded;
        size_t size = encoded_size;
        int r;

        if (owned && !buf) {
                r = fl_model_encode(owned, &buf, &size);
                if (r < 0)
                        return r;
        }
        model_free(sm->state);
        free(sm->state_encoded);
        sm->state = TAKE_PTR(owned);
        sm->state_encoded = sm->state ? TAKE_PTR(buf) : NULL;
        sm->state_encoded_size = sm->state ? size : 0;
        if (sm->state)
                model_checksum_string(sm->state, sm->state_checksum);
        else
                sm->state_checksum[0] = '\0';
        return 0;
}

/* How the state goes into the store with its checkpoint. */
static const CheckpointState *stored_state(const ServerModel *sm, CheckpointState *buf) {
        if (!sm->state)
                return NULL;
        *buf = (CheckpointState) { sm->state_encoded, sm->state_encoded_size, sm->state_checksum };
        return buf;
}

/* A checkpoint's model and state, checked, into sm. */
static int set_from_checkpoint(ServerModel *sm, Checkpoint *c, Model *model, Model *state) {
        _cleanup_(model_freep) Model *owned_model = model, *owned_state = state;
        ServerModel set = {};
        int r;

        if (owned_state && optimizer_state_check(owned_state, owned_model, NULL) < 0)
                return -EUCLEAN;
        r = server_model_set(&set, TAKE_PTR(owned_model), c->iteration, TAKE_PTR(c->model), c->size);
        if (r >= 0)
                r = server_model_set_state(&set, TAKE_PTR(owned_state), TAKE_PTR(c->state), c->state_size);
        if (r < 0) {
                server_model_done(&set);
                return r;
        }
        server_model_done(sm);
        *sm = set;
        return 0;
}

int server_model_set(ServerModel *sm, Model *model, uint32_t iteration, uint8_t *encoded, size_t encoded_size) {
        _cleanup_(model_freep) Model *owned = model;
        _cleanup_free_ uint8_t *buf = encoded;
        _cleanup_free_ FlFeatureMap *maps = NULL;
        size_t size = encoded_size;
        int r;

        if (!model)
                return -EINVAL;
        if (!buf) {
                r = fl_model_encode(model, &buf, &size);
                if (r < 0)
                        return r;
        }
        r = fl_model_to_feature_maps(model, &maps);
        if (r < 0)
                return r;

        server_model_done(sm);
        sm->model = TAKE_PTR(owned);
        sm->iteration = iteration;
        sm->maps = TAKE_PTR(maps);
        sm->encoded = TAKE_PTR(buf);
        sm->encoded_size = size;
        model_checksum_string(sm->model, sm->checksum);
        return 0;
}

/* The checkpoint before the newest, as the model to roll back to: the newest
 * may be one this server aggregated before it died and the scheduler never
 * committed (sync_compare() then knows it for the cluster's predecessor). */
static void load_previous(Manager *m) {
        _cleanup_(checkpoint_done) Checkpoint c = {};
        _cleanup_(model_freep) Model *model = NULL, *state = NULL;
        _cleanup_free_ uint32_t *iterations = NULL;
        char problem[160];
        size_t n = 0;
        int r;

        r = server_store_list_checkpoints(m->store, &iterations, &n);
        if (r < 0 || n < 2 || iterations[0] != m->model.iteration || iterations[1] >= m->model.iteration)
                return;
        r = server_store_load_checkpoint(m->store, iterations[1], &c);
        if (r <= 0 || checkpoint_verify_full(&c, &model, &state, problem, sizeof problem) < 0)
                return;
        (void) set_from_checkpoint(&m->previous_model, &c, TAKE_PTR(model), TAKE_PTR(state));
}

static int load_from_store(Manager *m, bool *ret_found) {
        _cleanup_(checkpoint_done) Checkpoint c = {};
        _cleanup_(model_freep) Model *model = NULL, *state = NULL;
        int r;

        *ret_found = false;
        /* A damaged checkpoint is passed over (with a warning): an older one, else --model_path, else a peer. */
        r = server_store_load_newest_good(m->store, m->store_path, &c, &model);
        if (r < 0)
                return log_error_errno(r, "Failed to read the checkpoints from %s: %m", m->store_path);
        if (r == 0)
                return 0;

        /* Verified with its checkpoint: only decoded here. */
        r = c.state ? fl_model_decode(c.state, c.state_size, &state) : 0;
        if (r == -EBADMSG)
                r = -EUCLEAN;
        if (r >= 0)
                r = set_from_checkpoint(&m->model, &c, TAKE_PTR(model), TAKE_PTR(state));
        if (r == -EUCLEAN) {
                log_warning("The optimizer state of iteration %u in %s does not fit its model; without it, this "
                            "server takes the model and its state from a peer.", c.iteration, m->store_path);
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to set up the model of iteration %u: %m", c.iteration);
        *ret_found = true;
        load_previous(m);
        return 0;
}

/* A database that is not SQLite or fails its integrity check is moved aside and
 * replaced by a fresh one: the model then comes from --model_path or a peer. */
static int open_store(Manager *m) {
        _cleanup_free_ char *aside = NULL;
        int r;

        r = mkdir_parents(m->store_path, 0755);
        if (r < 0)
                return log_error_errno(r, "Failed to create the directory of %s: %m", m->store_path);
        r = server_store_open(&m->store, m->store_path);
        if (r != -EUCLEAN) {
                if (r < 0)
                        return log_error_errno(r, "Failed to open the server database %s: %m", m->store_path);
                return 0;
        }

        r = store_move_aside(m->store_path, &aside);
        if (r < 0)
                return log_error_errno(r, "The server database %s is damaged or not an SQLite database, and moving "
                                       "it aside failed: %m. Move it away and start fl-serverd again.",
                                       m->store_path);
        log_struct(LOG_ERR, FIELDS("FL_ROLE=SERVER"),
                   "The server database %s is damaged or not an SQLite database: moved it to %s and starting with a "
                   "fresh one (the model comes from --model_path or from a peer).", m->store_path, aside);
        r = server_store_open(&m->store, m->store_path);
        if (r < 0)
                return log_error_errno(r, "Failed to create a fresh server database %s: %m", m->store_path);
        return 0;
}

static void warn_if_bodies_too_small(Manager *m) {
        size_t limit = (size_t) m->config->max_request_size_mb * 1024U * 1024U;

        /* An update carries the whole model: it must fit in a request. */
        if (m->model.encoded_size + 4096 > limit)
                log_warning("The model is %zu bytes, too close to max_request_size_mb=%u: devices' updates will be "
                            "refused (HTTP 413). Raise max_request_size_mb.", m->model.encoded_size,
                            m->config->max_request_size_mb);
}

int manager_load_model(Manager *m) {
        const FlConfig *c = m->config;
        bool found;
        int r;

        r = conf_server_db_path(c, m->port, &m->store_path);
        if (r < 0)
                return log_oom();
        r = open_store(m);
        if (r < 0)
                return r;
        r = update_log_open(m->updates, m->store_path);
        if (r < 0)
                return r;
        r = training_load(m);
        if (r < 0)
                return r;

        r = load_from_store(m, &found);
        if (r < 0)
                return r;
        if (found) {
                log_info("Restored the model of iteration %u from %s (%zu tensors, checksum %s)%s.",
                         m->model.iteration, m->store_path, m->model.model->n_tensors, m->model.checksum,
                         c->model_path ? "; the checkpoint wins over --model_path" : "");
        } else if (c->model_path) {
                _cleanup_(model_freep) Model *model = NULL;

                r = fl_model_load_file(c->model_path, 0, &model);
                if (r < 0)
                        return log_error_errno(r, "Failed to load the model %s: %m", c->model_path);
                r = server_model_set(&m->model, TAKE_PTR(model), 0, NULL, 0);
                if (r < 0)
                        return log_error_errno(r, "Failed to set up the model %s: %m", c->model_path);
                log_info("Loaded the initial model from %s (%zu tensors, %zu values, checksum %s).", c->model_path,
                         m->model.model->n_tensors, model_total_size(m->model.model), m->model.checksum);
        } else {
                log_warning("No model: start fl-serverd with --model_path. The cluster forms; once training has "
                            "committed a model this server takes it from a peer, until then the device rounds "
                            "answer SystemError.");
                return 0;
        }

        r = aggregate_new(&m->aggregate, m->model.model);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the running sum: %m");
        warn_if_bodies_too_small(m);
        return 0;
}

int manager_commit_model(Manager *m, Model *model, Model *state, uint32_t iteration) {
        _cleanup_(model_freep) Model *owned = model, *owned_state = state;
        _cleanup_free_ uint8_t *buf = NULL;
        ServerModel next = {};
        CheckpointState stored;
        size_t size;
        int r;

        r = fl_model_encode(owned, &buf, &size);
        if (r < 0)
                return r;
        r = server_model_set(&next, TAKE_PTR(owned), iteration, TAKE_PTR(buf), size);
        if (r >= 0)
                r = server_model_set_state(&next, TAKE_PTR(owned_state), NULL, 0);
        /* Durable before it is served or announced: the state in the same transaction. */
        if (r >= 0)
                r = server_store_save_checkpoint(m->store, iteration, next.encoded, next.encoded_size, next.checksum,
                                                 stored_state(&next, &stored), m->config->checkpoint_keep);
        if (r < 0) {
                server_model_done(&next);
                return r;
        }

        ServerModel old = m->model;
        m->model = next;
        if (old.iteration == iteration && m->previous_model.model) {
                /* Aggregated again (a ring was asked for twice): what it replaces
                 * is the same uncommitted model, the one before stays. */
                server_model_done(&old);
                return 0;
        }
        server_model_done(&m->previous_model);
        m->previous_model = old;
        return 0;
}

int manager_install_model(Manager *m, Model *model, Model *state, uint32_t iteration) {
        _cleanup_(model_freep) Model *owned = model, *owned_state = state;
        _cleanup_(aggregate_freep) Aggregate *reshaped = NULL;
        _cleanup_free_ uint8_t *buf = NULL;
        ServerModel installed = {};
        CheckpointState stored;
        size_t size;
        int r;

        if (!m->aggregate || !m->model.model || !model_same_shape(m->model.model, owned)) {
                /* Before anything is written, so that a failure leaves all as it was. */
                r = aggregate_new(&reshaped, owned);
                if (r < 0)
                        return r;
                aggregate_reset(reshaped, m->training.seen ? m->training.current.iteration : 0);
        }
        r = fl_model_encode(owned, &buf, &size);
        if (r < 0)
                return r;
        r = server_model_set(&installed, TAKE_PTR(owned), iteration, TAKE_PTR(buf), size);
        if (r >= 0)
                r = server_model_set_state(&installed, TAKE_PTR(owned_state), NULL, 0);
        if (r < 0) {
                server_model_done(&installed);
                return r;
        }

        /* A newer checkpoint of this server's own is one the cluster never committed. */
        if (m->model.model && m->model.iteration > iteration)
                r = server_store_rollback(m->store, m->model.iteration, iteration, installed.encoded,
                                          installed.encoded_size, installed.checksum,
                                          stored_state(&installed, &stored), m->config->checkpoint_keep);
        else
                r = server_store_save_checkpoint(m->store, iteration, installed.encoded, installed.encoded_size,
                                                 installed.checksum, stored_state(&installed, &stored),
                                                 m->config->checkpoint_keep);
        if (r < 0) {
                server_model_done(&installed);
                return r;
        }

        server_model_done(&m->model);
        server_model_done(&m->previous_model);
        m->model = installed;
        if (reshaped) {
                if (m->aggregate && m->aggregate->updates > 0)
                        log_notice("The model changed shape: dropping the sum of iteration %u (%u updates).",
                                   m->aggregate->iteration, m->aggregate->updates);
                aggregate_free(m->aggregate);
                m->aggregate = TAKE_PTR(reshaped);
                warn_if_bodies_too_small(m);
        }
        return 0;
}

void manager_settle_model(Manager *m, uint32_t current, uint32_t abandoned) {
        ServerModel *prev = &m->previous_model;
        CheckpointState stored;
        int r;

        if (!prev->model)
                return;
        if (abandoned == 0 || abandoned != m->model.iteration) {
                /* The scheduler went on from the aggregated model: it is committed. */
                if (current != m->model.iteration)
                        server_model_done(prev);
                return;
        }

        r = server_store_rollback(m->store, m->model.iteration, prev->iteration, prev->encoded, prev->encoded_size,
                                  prev->checksum, stored_state(prev, &stored), m->config->checkpoint_keep);
        if (r < 0)
                log_warning_errno(r, "Failed to roll the store back to the model of iteration %u, serving it anyway: %m",
                                  prev->iteration);
        log_notice("Iteration %u was abandoned after it was aggregated here: back to the model of iteration %u (%s).",
                   m->model.iteration, prev->iteration, prev->checksum);
        server_model_done(&m->model);
        m->model = *prev;
        *prev = (ServerModel) {};
}
