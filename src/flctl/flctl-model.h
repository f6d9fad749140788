/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "flctl-reply.h"
#include "model.h"

/* flctl model get: the global model straight from a server's device port
 * (GET http://ADDRESS:PORT/model[?iteration=N], FeatureMapList bytes), the
 * servers taken from the scheduler's node list. */

#define MODEL_ITERATION_LATEST (-1)

typedef struct ModelDownload {
        uint8_t *data;          /* the server's FeatureMapList bytes, verified */
        size_t size;
        Model *model;           /* the same, decoded */
        char *url;              /* where it came from */
} ModelDownload;

void model_download_done(ModelDownload *d);

/* Tries the alive servers of nodes in the list's order until one serves a
 * valid model; each failure is logged as a warning, the last one also
 * returned (-ENOENT: no server knows the iteration; -ENXIO: no alive server
 * with an address in the list). https: GET https://... checked against
 * cacert (NULL: the system's CAs). */
int model_download(const NodeList *nodes, int64_t iteration, uint64_t timeout_usec, const char *cacert, bool https,
                   ModelDownload *ret);

/* FeatureMapList bytes as downloaded, or safetensors when path ends in
 * ".safetensors"; atomically. */
int model_write(const char *path, const ModelDownload *d, int64_t iteration);
