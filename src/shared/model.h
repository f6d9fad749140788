/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* A model as the device protocol sees it: an ordered list of named float
 * tensors (FeatureMap: weight_fullname + data). Shapes are not on the wire;
 * sizes are. Used by the servers (the global model, running sums), by
 * fl-client (training) and by the codec (FeatureMapList files). */

typedef struct Tensor {
        char *name;
        size_t size;            /* number of floats */
        float *data;
} Tensor;

typedef struct Model {
        Tensor *tensors;
        size_t n_tensors;
} Model;

/* A model with the given names and sizes, zero-filled. */
int model_new(Model **ret, const char *const *names, const size_t *sizes, size_t n);
/* The same names and sizes, zero-filled (e.g. a running sum). */
int model_new_like(Model **ret, const Model *shape);
int model_copy(Model **ret, const Model *m);
Model *model_free(Model *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Model *, model_free);

Tensor *model_find(const Model *m, const char *name);
size_t model_total_size(const Model *m);
/* True if both have the same tensors, names and sizes, in the same order. */
bool model_same_shape(const Model *a, const Model *b);

/* FNV-1a (64 bits) over every tensor's name, a NUL, its size (8 bytes) and
 * its floats, all little-endian, in tensor order: equal bytes give equal
 * checksums on every host. Not a cryptographic hash: it tells servers that
 * hold the same model apart from servers that do not (WIRE_AGGREGATE_DONE). */
#define MODEL_CHECKSUM_STRING_MAX 17
uint64_t model_checksum(const Model *m);
/* The checksum as 16 lowercase hex digits. */
char *model_checksum_string(const Model *m, char ret[static MODEL_CHECKSUM_STRING_MAX]);
