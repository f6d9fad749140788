/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "fl-messages.h"
#include "model.h"

/* The global model a server serves: the newest one it holds, with what the
 * rounds need ready (feature maps pointing into it, its FeatureMapList
 * encoding for GET /model, its checksum). */

typedef struct Manager Manager;

typedef struct ServerModel {
        Model *model;                   /* NULL: no model loaded */
        uint32_t iteration;             /* the iteration that produced it; 0: the initial model */
        char checksum[MODEL_CHECKSUM_STRING_MAX];
        FlFeatureMap *maps;             /* point into model */
        uint8_t *encoded;               /* FeatureMapList bytes */
        size_t encoded_size;

        /* The server optimizer's state after this model (server-optimizer.h),
         * checkpointed and fetched with it; NULL when it keeps none. */
        Model *state;
        uint8_t *state_encoded;         /* FeatureMapList bytes */
        size_t state_encoded_size;
        char state_checksum[MODEL_CHECKSUM_STRING_MAX];     /* "" without a state */
} ServerModel;

#define SERVER_NO_MODEL_REASON "No model loaded: start fl-serverd with --model_path."

void server_model_done(ServerModel *sm);
/* Takes model (and encoded, when not NULL: its FeatureMapList bytes). On
 * failure nothing changes and model and encoded are freed. */
int server_model_set(ServerModel *sm, Model *model, uint32_t iteration, uint8_t *encoded, size_t encoded_size);
/* Takes state (NULL: none) and encoded (its bytes, or NULL to encode it);
 * on failure nothing changes and both are freed. */
int server_model_set_state(ServerModel *sm, Model *state, uint8_t *encoded, size_t encoded_size);

/* At start: the newest checkpoint of the server's store, else --model_path,
 * else none (the cluster forms, rounds answer SystemError). Opens the store.
 * Logs its failures. */
int manager_load_model(Manager *m);
/* Makes model and state (taken; state NULL: none) the model of `iteration`
 * and the optimizer's state after it: checkpointed durably first, then
 * served. Leaves the served model as it was on failure. */
int manager_commit_model(Manager *m, Model *model, Model *state, uint32_t iteration);
/* Makes model and state (taken) the model of `iteration` when they came
 * from elsewhere (a peer, model sync): checkpointed durably first
 * (replacing a newer, uncommitted checkpoint of this server), then served,
 * with no previous model to roll back to; the running sum is reshaped if
 * the model's shape changed. Leaves everything as it was on failure. */
int manager_install_model(Manager *m, Model *model, Model *state, uint32_t iteration);
/* A WIRE_ITERATION arrived: forget the previous model once the aggregated one
 * is committed, or go back to it when its iteration was abandoned. */
void manager_settle_model(Manager *m, uint32_t current, uint32_t abandoned);
