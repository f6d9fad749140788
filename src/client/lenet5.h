/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"
#include "model.h"

/* MindSpore's LeNet-5 (model_zoo lenet, the federated learning demo's
 * model), on 1x32x32 inputs:
 *   conv1 5x5 valid, 1->6, no bias; ReLU; max-pool 2x2 stride 2   -> 6x14x14
 *   conv2 5x5 valid, 6->16, no bias; ReLU; max-pool 2x2 stride 2  -> 16x5x5
 *   flatten (NCHW, 400); fc1 400->120 ReLU; fc2 120->84 ReLU; fc3 84->10
 * Weights are a Model (model.h) with exactly these tensors, in this order,
 * which is what the wire and the servers carry. */

#define LENET5_INPUT_SIDE 32
#define LENET5_INPUT_PIXELS (LENET5_INPUT_SIDE * LENET5_INPUT_SIDE)
#define LENET5_CLASSES 10
#define LENET5_N_TENSORS 8
/* The largest batch a workspace may hold: the im2col matrices grow with it
 * (about 100 KiB per example). */
#define LENET5_MAX_BATCH 1024

typedef enum Lenet5Tensor {
        LENET5_CONV1_WEIGHT,    /* [6,1,5,5] */
        LENET5_CONV2_WEIGHT,    /* [16,6,5,5] */
        LENET5_FC1_WEIGHT,      /* [120,400] */
        LENET5_FC1_BIAS,        /* [120] */
        LENET5_FC2_WEIGHT,      /* [84,120] */
        LENET5_FC2_BIAS,        /* [84] */
        LENET5_FC3_WEIGHT,      /* [10,84] */
        LENET5_FC3_BIAS,        /* [10] */
} Lenet5Tensor;

typedef struct Lenet5TensorInfo {
        const char *name;
        size_t n_dims;
        size_t dims[4];
        size_t size;
        size_t fan_in;
} Lenet5TensorInfo;

extern const Lenet5TensorInfo lenet5_tensors[LENET5_N_TENSORS];

/* Initial weights from a seed, MindSpore 2.x's defaults for nn.Conv2d and
 * nn.Dense (the same as PyTorch's): weights HeUniform(negative_slope=sqrt(5)),
 * i.e. U(-1/sqrt(fan_in), +1/sqrt(fan_in)), and the dense biases from the
 * same uniform. Same seed, same bytes. */
int lenet5_init(Model **ret, uint64_t seed);
/* 0 if m has exactly LeNet-5's tensor names and sizes in order, else -EINVAL. */
int lenet5_check(const Model *m);

/* Every buffer a forward and backward pass needs for batches of up to
 * max_batch examples, allocated once. One per thread. */
typedef struct Lenet5Work Lenet5Work;

int lenet5_work_new(Lenet5Work **ret, size_t max_batch, bool training);
Lenet5Work *lenet5_work_free(Lenet5Work *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Lenet5Work *, lenet5_work_free);

/* Where the caller puts a batch: max_batch x LENET5_INPUT_PIXELS floats and
 * max_batch labels. */
float *lenet5_work_input(Lenet5Work *w);
uint8_t *lenet5_work_labels(Lenet5Work *w);
/* The last forward pass's logits, b x LENET5_CLASSES. */
const float *lenet5_work_logits(const Lenet5Work *w);

/* Forward over the first b examples of the input; ret_loss_sum gets the sum
 * of their softmax cross-entropy losses, ret_correct (optional) how many
 * were classified right. In a training workspace it also keeps what the
 * backward pass needs. */
int lenet5_forward(Lenet5Work *w, const Model *m, size_t b, double *ret_loss_sum, size_t *ret_correct);
/* The gradient of the mean loss of the last forward pass into grad (a
 * model of the same shape); training workspaces only. */
int lenet5_backward(Lenet5Work *w, const Model *m, Model *grad);
