/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "fl-messages.h"
#include "model.h"

/* Models as FeatureMapList buffers, the model file format of flcluster and
 * the feature_map vectors of the device protocol. */

/* Model files larger than this are refused unless the caller says otherwise
 * (LeNet-5 is 250 KB; MindSpore's models go to tens of MB). */
#define FL_MODEL_FILE_MAX ((size_t) 1024 * 1024 * 1024)

/* Feature maps that point into m (no copy), e.g. for a response's
 * feature_map: the array is malloc()ed, m must outlive it. */
int fl_model_to_feature_maps(const Model *m, FlFeatureMap **ret);
/* Copies decoded feature maps into a new Model. Refuses (-EBADMSG) empty or
 * duplicate names and empty tensors. */
int fl_model_from_feature_maps(const FlFeatureMap *maps, size_t n, Model **ret);

/* A FeatureMapList buffer with the "FLJ0" identifier, malloc()ed. */
int fl_model_encode(const Model *m, uint8_t **ret, size_t *ret_size);
/* buf must be 4-byte aligned in memory. -EBADMSG when it is not a valid
 * FeatureMapList, or holds more floats than its size can (shared vectors). */
int fl_model_decode(const void *buf, size_t size, Model **ret);

/* max_size 0 means FL_MODEL_FILE_MAX; -EFBIG above it. */
int fl_model_load_file(const char *path, size_t max_size, Model **ret);
/* Atomically: a temporary file beside path, fsync, rename. */
int fl_model_save_file(const char *path, const Model *m);
