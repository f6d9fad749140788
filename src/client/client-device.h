/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pthread.h>
#include <stdint.h>

#include "client-http.h"
#include "fashion-mnist.h"
#include "macro.h"
#include "model.h"
#include "trainer.h"

/* One simulated device's side of an iteration (device-protocol.md):
 * startFLJob, then, if selected, local training from exactly the model the
 * server sent and updateModel with the weights multiplied by data_size, as
 * MindSpore's clients upload them. Every reply is decoded with the verifying
 * codec and checked before use. Device functions log what they decide is
 * fatal and return its negative errno; everything else (not selected, too
 * late, the job finished) is the device's state for the driver to read. */

typedef enum DeviceState {
        DEVICE_IDLE,
        DEVICE_SELECTED,        /* startFLJob admitted it: train and update */
        DEVICE_NOT_SELECTED,    /* OutOfTime / NotSelected: sits this iteration out */
        DEVICE_UPDATED,         /* updateModel accepted */
        DEVICE_LATE,            /* selected, but its update was turned away */
        DEVICE_FINISHED,        /* the job is disabled or finished */
} DeviceState;

/* The distinct models servers sent in one iteration (normally one): the
 * devices that got the same bytes share one copy. */
typedef struct ModelCache {
        pthread_mutex_t lock;
        Model **models;
        size_t n;
} ModelCache;

void model_cache_init(ModelCache *c);
void model_cache_clear(ModelCache *c);
void model_cache_done(ModelCache *c);

/* What all devices share; read-only while they run, but for the cache. */
typedef struct DeviceContext {
        const ServerList *servers;
        const char *fl_name;
        const Dataset *train;
        uint64_t seed;
        float momentum;
        uint64_t timeout_usec;          /* how long a device waits for a lagging server */
        int32_t last_iteration;         /* the newest iteration whose model we have; -1: none */
        ModelCache cache;
} DeviceContext;

typedef struct Device {
        size_t index;
        char fl_id[64];
        const uint32_t *examples;
        size_t n_examples;

        /* The current iteration. */
        DeviceState state;
        int32_t iteration;
        int32_t plan_iterations;        /* FLPlan.iterations: the job's length */
        TrainPlan plan;
        const Model *global;            /* in the context's cache */
        uint64_t next_req_time;         /* ms, from a refusal; 0: none */
        TrainStats stats;
} Device;

/* Sends startFLJob to server index % n. */
int device_start_fl_job(Device *d, DeviceContext *ctx, ClientHttp *h);
/* Trains a DEVICE_SELECTED device and sends updateModel to server
 * (index + 1) % n; a no-op for any other state. */
int device_train_and_update(Device *d, DeviceContext *ctx, ClientHttp *h);

/* A server's reason made fit for a terminal: bounded, printable. */
const char *reason_sanitize(const char *s, char *buf, size_t size);
