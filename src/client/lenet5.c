/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <string.h>

#include "lenet5.h"
#include "nn.h"
#include "rng.h"

const Lenet5TensorInfo lenet5_tensors[LENET5_N_TENSORS] = {
        [LENET5_CONV1_WEIGHT] = { "conv1.weight", 4, { 6, 1, 5, 5 }, 150, 25 },
        [LENET5_CONV2_WEIGHT] = { "conv2.weight", 4, { 16, 6, 5, 5 }, 2400, 150 },
        [LENET5_FC1_WEIGHT] = { "fc1.weight", 2, { 120, 400 }, 48000, 400 },
        [LENET5_FC1_BIAS] = { "fc1.bias", 1, { 120 }, 120, 400 },
        [LENET5_FC2_WEIGHT] = { "fc2.weight", 2, { 84, 120 }, 10080, 120 },
        [LENET5_FC2_BIAS] = { "fc2.bias", 1, { 84 }, 84, 120 },
        [LENET5_FC3_WEIGHT] = { "fc3.weight", 2, { 10, 84 }, 840, 84 },
        [LENET5_FC3_BIAS] = { "fc3.bias", 1, { 10 }, 10, 84 },
};

/* Geometry, spelled out once. */
#define K 5                             /* kernel side */
#define C1 6                            /* conv1 channels */
#define S1 (LENET5_INPUT_SIDE - K + 1)  /* 28 */
#define P1 (S1 / 2)                     /* 14 */
#define C2 16
#define S2 (P1 - K + 1)                 /* 10 */
#define P2 (S2 / 2)                     /* 5 */
#define FLAT (C2 * P2 * P2)             /* 400 */
#define F1 120
#define F2 84

struct Lenet5Work {
        size_t max_batch;
        bool training;
        size_t b;                       /* of the last forward pass; 0 before */

        float *input;                   /* [b][1][32][32] = [1][b][32][32] */
        uint8_t *labels;
        float *col1;                    /* [25][b*784] */
        float *z1;                      /* [6][b][28][28]; backward: its gradient */
        float *p1;                      /* [6][b][14][14] */
        uint8_t *arg1;
        float *col2;                    /* [150][b*100]; backward: its gradient */
        float *z2;                      /* [16][b][10][10]; backward: its gradient */
        float *p2;                      /* [16][b][5][5] */
        uint8_t *arg2;
        float *x3;                      /* [b][400] */
        float *h1, *h2, *logits;        /* [b][120], [b][84], [b][10] */

        /* training only */
        float *dlogits, *dh2, *dh1, *dx3, *dp2, *dp1;
};

int lenet5_check(const Model *m) {
        if (!m || m->n_tensors != LENET5_N_TENSORS)
                return -EINVAL;
        for (size_t i = 0; i < LENET5_N_TENSORS; i++)
                if (m->tensors[i].size != lenet5_tensors[i].size ||
                    !streq(m->tensors[i].name, lenet5_tensors[i].name))
                        return -EINVAL;
        return 0;
}

int lenet5_init(Model **ret, uint64_t seed) {
        _cleanup_(model_freep) Model *m = NULL;
        const char *names[LENET5_N_TENSORS];
        size_t sizes[LENET5_N_TENSORS];
        Rng rng;
        int r;

        if (!ret)
                return -EINVAL;
        for (size_t i = 0; i < LENET5_N_TENSORS; i++) {
                names[i] = lenet5_tensors[i].name;
                sizes[i] = lenet5_tensors[i].size;
        }
        r = model_new(&m, names, sizes, LENET5_N_TENSORS);
        if (r < 0)
                return r;

        rng_seed(&rng, seed);
        for (size_t i = 0; i < LENET5_N_TENSORS; i++) {
                Tensor *t = &m->tensors[i];
                double bound = 1.0 / sqrt((double) lenet5_tensors[i].fan_in);

                for (size_t j = 0; j < t->size; j++)
                        t->data[j] = (float) ((2.0 * rng_uniform(&rng) - 1.0) * bound);
        }

        *ret = TAKE_PTR(m);
        return 0;
}

Lenet5Work *lenet5_work_free(Lenet5Work *w) {
        if (!w)
                return NULL;
        free(w->input);
        free(w->labels);
        free(w->col1);
        free(w->z1);
        free(w->p1);
        free(w->arg1);
        free(w->col2);
        free(w->z2);
        free(w->p2);
        free(w->arg2);
        free(w->x3);
        free(w->h1);
        free(w->h2);
        free(w->logits);
        free(w->dlogits);
        free(w->dh2);
        free(w->dh1);
        free(w->dx3);
        free(w->dp2);
        free(w->dp1);
        free(w);
        return NULL;
}

static bool alloc_aligned(void *ret, size_t bytes) {
        void *p;

        if (posix_memalign(&p, 64, MAX(bytes, (size_t) 64)) != 0)
                return false;
        *(void **) ret = p;
        return true;
}

int lenet5_work_new(Lenet5Work **ret, size_t max_batch, bool training) {
        _cleanup_(lenet5_work_freep) Lenet5Work *w = NULL;
        const size_t b = max_batch, f = sizeof(float);
        bool ok;

        if (!ret || max_batch == 0 || max_batch > LENET5_MAX_BATCH)
                return -EINVAL;
        w = calloc(1, sizeof(Lenet5Work));
        if (!w)
                return -ENOMEM;
        w->max_batch = max_batch;
        w->training = training;

        ok = alloc_aligned(&w->input, b * LENET5_INPUT_PIXELS * f) &&
             alloc_aligned(&w->labels, b) &&
             alloc_aligned(&w->col1, K * K * b * S1 * S1 * f) &&
             alloc_aligned(&w->z1, C1 * b * S1 * S1 * f) &&
             alloc_aligned(&w->p1, C1 * b * P1 * P1 * f) &&
             alloc_aligned(&w->arg1, C1 * b * P1 * P1) &&
             alloc_aligned(&w->col2, C1 * K * K * b * S2 * S2 * f) &&
             alloc_aligned(&w->z2, C2 * b * S2 * S2 * f) &&
             alloc_aligned(&w->p2, C2 * b * P2 * P2 * f) &&
             alloc_aligned(&w->arg2, C2 * b * P2 * P2) &&
             alloc_aligned(&w->x3, b * FLAT * f) &&
             alloc_aligned(&w->h1, b * F1 * f) &&
             alloc_aligned(&w->h2, b * F2 * f) &&
             alloc_aligned(&w->logits, b * LENET5_CLASSES * f);
        if (ok && training)
                ok = alloc_aligned(&w->dlogits, b * LENET5_CLASSES * f) &&
                     alloc_aligned(&w->dh2, b * F2 * f) &&
                     alloc_aligned(&w->dh1, b * F1 * f) &&
                     alloc_aligned(&w->dx3, b * FLAT * f) &&
                     alloc_aligned(&w->dp2, C2 * b * P2 * P2 * f) &&
                     alloc_aligned(&w->dp1, C1 * b * P1 * P1 * f);
        if (!ok)
                return -ENOMEM;
        /* Labels are read before a caller may have filled them all. */
        memset(w->labels, 0, b);

        *ret = TAKE_PTR(w);
        return 0;
}

float *lenet5_work_input(Lenet5Work *w) {
        return w->input;
}

uint8_t *lenet5_work_labels(Lenet5Work *w) {
        return w->labels;
}

const float *lenet5_work_logits(const Lenet5Work *w) {
        return w->logits;
}

#define W(m, t) ((m)->tensors[LENET5_##t].data)

int lenet5_forward(Lenet5Work *w, const Model *m, size_t b, double *ret_loss_sum, size_t *ret_correct) {
        double loss;
        int r;

        if (!w || b == 0 || b > w->max_batch)
                return -EINVAL;
        r = lenet5_check(m);
        if (r < 0)
                return r;
        for (size_t i = 0; i < b; i++)
                if (w->labels[i] >= LENET5_CLASSES)
                        return -EINVAL;

        nn_im2col(w->input, 1, b, LENET5_INPUT_SIDE, LENET5_INPUT_SIDE, K, w->col1);
        nn_conv_forward(W(m, CONV1_WEIGHT), w->col1, C1, K * K, b * S1 * S1, w->z1);
        nn_maxpool2_relu_forward(w->z1, C1 * b, S1, S1, w->p1, w->arg1);

        nn_im2col(w->p1, C1, b, P1, P1, K, w->col2);
        nn_conv_forward(W(m, CONV2_WEIGHT), w->col2, C2, C1 * K * K, b * S2 * S2, w->z2);
        nn_maxpool2_relu_forward(w->z2, C2 * b, S2, S2, w->p2, w->arg2);
        nn_cbs_to_bcs(w->p2, C2, b, P2 * P2, w->x3);

        nn_dense_forward(w->x3, W(m, FC1_WEIGHT), W(m, FC1_BIAS), b, FLAT, F1, w->h1);
        nn_relu_forward(w->h1, b * F1);
        nn_dense_forward(w->h1, W(m, FC2_WEIGHT), W(m, FC2_BIAS), b, F1, F2, w->h2);
        nn_relu_forward(w->h2, b * F2);
        nn_dense_forward(w->h2, W(m, FC3_WEIGHT), W(m, FC3_BIAS), b, F2, LENET5_CLASSES, w->logits);

        loss = nn_softmax_xent(w->logits, w->labels, b, LENET5_CLASSES, 1.0f / (float) b,
                               w->training ? w->dlogits : NULL, ret_correct);
        w->b = b;
        if (ret_loss_sum)
                *ret_loss_sum = loss;
        return 0;
}

int lenet5_backward(Lenet5Work *w, const Model *m, Model *grad) {
        size_t b;
        int r;

        if (!w || !w->training || w->b == 0)
                return -EINVAL;
        r = lenet5_check(m);
        if (r < 0)
                return r;
        r = lenet5_check(grad);
        if (r < 0)
                return r;
        b = w->b;

        nn_dense_backward(w->h2, W(m, FC3_WEIGHT), w->dlogits, b, F2, LENET5_CLASSES,
                          W(grad, FC3_WEIGHT), W(grad, FC3_BIAS), w->dh2);
        nn_relu_backward(w->h2, w->dh2, b * F2);
        nn_dense_backward(w->h1, W(m, FC2_WEIGHT), w->dh2, b, F1, F2,
                          W(grad, FC2_WEIGHT), W(grad, FC2_BIAS), w->dh1);
        nn_relu_backward(w->h1, w->dh1, b * F1);
        nn_dense_backward(w->x3, W(m, FC1_WEIGHT), w->dh1, b, FLAT, F1,
                          W(grad, FC1_WEIGHT), W(grad, FC1_BIAS), w->dx3);

        /* z2, col2 and z1 are not needed any more: their gradients take
         * their place. */
        nn_bcs_to_cbs(w->dx3, C2, b, P2 * P2, w->dp2);
        nn_maxpool2_relu_backward(w->dp2, w->p2, w->arg2, C2 * b, S2, S2, w->z2);
        nn_conv_backward(W(m, CONV2_WEIGHT), w->col2, w->z2, C2, C1 * K * K, b * S2 * S2,
                         W(grad, CONV2_WEIGHT), w->col2);
        nn_col2im(w->col2, C1, b, P1, P1, K, w->dp1);
        nn_maxpool2_relu_backward(w->dp1, w->p1, w->arg1, C1 * b, S1, S1, w->z1);
        nn_conv_backward(W(m, CONV1_WEIGHT), w->col1, w->z1, C1, K * K, b * S1 * S1,
                         W(grad, CONV1_WEIGHT), NULL);

        /* The intermediates are spent: a second backward needs a new forward. */
        w->b = 0;
        return 0;
}
