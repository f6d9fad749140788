/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "model.h"

/* A model in the safetensors format (github.com/huggingface/safetensors),
 * for numpy and PyTorch users: an 8-byte little-endian header length, a
 * JSON header {"NAME":{"dtype":"F32","shape":[...],"data_offsets":[a,b]},
 * ...,"__metadata__":{...}} padded with spaces to a multiple of 8 bytes,
 * then every tensor's little-endian floats, in model order, back to back.
 *
 * Shapes are not on the device protocol's wire: a model whose names and
 * sizes are exactly MindSpore's LeNet-5 gets LeNet-5's shapes
 * (conv1.weight [6,1,5,5], ...), any other model 1-D shapes. */

/* metadata: "key", "value" pairs, NULL-terminated (NULL for none). Tensor
 * names must be printable ASCII and distinct: -EINVAL otherwise. */
int safetensors_encode(const Model *m, const char *const *metadata, uint8_t **ret, size_t *ret_size);
