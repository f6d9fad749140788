/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "lenet5.h"
#include "rng.h"
#include "trainer.h"

#define EVAL_BATCH 32u
#define TRAIN_MAX_EPOCHS 1000u

static void blas_single_thread_once(void) {
#ifdef OPENBLAS_VERSION
        /* Multithreaded sgemm may split reductions differently from run to
         * run, and devices already run in parallel. */
        openblas_set_num_threads(1);
#endif
}

void trainer_blas_single_thread(void) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        (void) pthread_once(&once, blas_single_thread_once);
}

static void gather(Lenet5Work *w, const Dataset *d, const uint32_t *idx, size_t b) {
        float *input = lenet5_work_input(w);
        uint8_t *labels = lenet5_work_labels(w);

        for (size_t i = 0; i < b; i++) {
                memcpy(input + i * LENET5_INPUT_PIXELS, dataset_image(d, idx[i]),
                       LENET5_INPUT_PIXELS * sizeof(float));
                labels[i] = d->labels[idx[i]];
        }
}

static bool plan_is_valid(const TrainPlan *p) {
        return p->epochs >= 1 && p->epochs <= TRAIN_MAX_EPOCHS &&
               p->mini_batch >= 1 &&
               isfinite(p->lr) && p->lr > 0.0f &&
               isfinite(p->momentum) && p->momentum >= 0.0f && p->momentum < 1.0f &&
               isfinite(p->prox_mu) && p->prox_mu >= 0.0f && p->prox_mu <= TRAIN_PROX_MU_MAX;
}

/* v = momentum * v + g; w -= lr * v: MindSpore's Momentum (and PyTorch's
 * SGD), without Nesterov. With momentum 0 this is plain SGD. With an
 * anchor w0 (FedProx), g is the gradient of loss + (mu / 2) |w - w0|^2. */
static void sgd_step(Model *m, Model *velocity, const Model *grad, float lr, float momentum, const Model *anchor,
                     float mu) {
        for (size_t t = 0; t < m->n_tensors; t++) {
                float *w = m->tensors[t].data, *v = velocity->tensors[t].data;
                const float *g = grad->tensors[t].data, *w0 = anchor ? anchor->tensors[t].data : NULL;
                size_t n = m->tensors[t].size;

                if (w0)
                        for (size_t i = 0; i < n; i++) {
                                v[i] = momentum * v[i] + (g[i] + mu * (w[i] - w0[i]));
                                w[i] -= lr * v[i];
                        }
                else
                        for (size_t i = 0; i < n; i++) {
                                v[i] = momentum * v[i] + g[i];
                                w[i] -= lr * v[i];
                        }
        }
}

int device_train(Model *m, const Dataset *d, const uint32_t *indices, size_t n, const TrainPlan *plan,
                 uint64_t seed, TrainStats *ret) {
        _cleanup_(lenet5_work_freep) Lenet5Work *w = NULL;
        _cleanup_(model_freep) Model *grad = NULL, *velocity = NULL, *anchor = NULL;
        _cleanup_free_ uint32_t *order = NULL;
        TrainStats stats = {};
        size_t batch;
        Rng rng;
        int r;

        if (!m || !d || !indices || n == 0 || !plan || !plan_is_valid(plan))
                return -EINVAL;
        r = lenet5_check(m);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (indices[i] >= d->n)
                        return -EINVAL;

        trainer_blas_single_thread();

        batch = MIN(MIN((size_t) plan->mini_batch, n), (size_t) LENET5_MAX_BATCH);
        r = lenet5_work_new(&w, batch, true);
        if (r < 0)
                return r;
        r = model_new_like(&grad, m);
        if (r < 0)
                return r;
        r = model_new_like(&velocity, m);
        if (r < 0)
                return r;
        if (plan->prox_mu > 0.0f) {
                r = model_copy(&anchor, m);
                if (r < 0)
                        return r;
        }
        order = malloc(n * sizeof(uint32_t));
        if (!order)
                return -ENOMEM;
        memcpy(order, indices, n * sizeof(uint32_t));

        rng_seed(&rng, seed);
        for (unsigned e = 0; e < plan->epochs; e++) {
                double loss_sum = 0.0;
                size_t correct_sum = 0;

                if (plan->shuffle)
                        rng_shuffle_u32(&rng, order, n);

                for (size_t at = 0; at < n; at += batch) {
                        size_t b = MIN(batch, n - at), correct;
                        double loss;

                        gather(w, d, order + at, b);
                        r = lenet5_forward(w, m, b, &loss, &correct);
                        if (r < 0)
                                return r;
                        if (!isfinite(loss))
                                return -ERANGE;
                        r = lenet5_backward(w, m, grad);
                        if (r < 0)
                                return r;
                        sgd_step(m, velocity, grad, plan->lr, plan->momentum, anchor, plan->prox_mu);

                        loss_sum += loss;
                        correct_sum += correct;
                        stats.steps++;
                }
                stats.loss = loss_sum / (double) n;
                stats.accuracy = (double) correct_sum / (double) n;
        }

        /* A step can still blow the weights up after the last loss we saw. */
        for (size_t t = 0; t < m->n_tensors; t++)
                for (size_t i = 0; i < m->tensors[t].size; i++)
                        if (!isfinite(m->tensors[t].data[i]))
                                return -ERANGE;

        if (ret)
                *ret = stats;
        return 0;
}

int model_evaluate(const Model *m, const Dataset *test, double *ret_accuracy, double *ret_loss) {
        _cleanup_(lenet5_work_freep) Lenet5Work *w = NULL;
        _cleanup_free_ uint32_t *idx = NULL;
        double loss_sum = 0.0;
        size_t correct_sum = 0, batch;
        int r;

        if (!m || !test || test->n == 0 || test->n > UINT32_MAX)
                return -EINVAL;
        r = lenet5_check(m);
        if (r < 0)
                return r;

        trainer_blas_single_thread();

        batch = MIN((size_t) EVAL_BATCH, test->n);
        r = lenet5_work_new(&w, batch, false);
        if (r < 0)
                return r;
        idx = malloc(batch * sizeof(uint32_t));
        if (!idx)
                return -ENOMEM;

        for (size_t at = 0; at < test->n; at += batch) {
                size_t b = MIN(batch, test->n - at), correct;
                double loss;

                for (size_t i = 0; i < b; i++)
                        idx[i] = (uint32_t) (at + i);
                gather(w, test, idx, b);
                r = lenet5_forward(w, m, b, &loss, &correct);
                if (r < 0)
                        return r;
                loss_sum += loss;
                correct_sum += correct;
        }

        if (ret_accuracy)
                *ret_accuracy = (double) correct_sum / (double) test->n;
        if (ret_loss)
                *ret_loss = loss_sum / (double) test->n;
        return 0;
}
