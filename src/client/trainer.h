/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "fashion-mnist.h"
#include "macro.h"
#include "model.h"

/* What a device does with the FLPlan it was sent: local SGD on its own
 * examples, starting from the global model; and the evaluation of a model
 * on the test set. LeNet-5 only (lenet5_check()). */

typedef struct TrainPlan {
        unsigned epochs;        /* FLPlan.epochs (client_epoch_num), >= 1 */
        unsigned mini_batch;    /* FLPlan.mini_batch (client_batch_size), >= 1 */
        float lr;               /* FLPlan.lr (client_learning_rate), > 0 */
        float momentum;         /* 0 for plain SGD; MindSpore's LeNet demo uses 0.9 */
        bool shuffle;           /* FLPlan.shuffle: a new order every epoch */
        /* FedProx (Li et al. 2020): (mu / 2) |w - w0|^2 added to the loss, w0
         * the model training starts from; 0: off. The plan's
         * Aggregation.weights[0] (docs/training.md). */
        float prox_mu;
} TrainPlan;

#define TRAIN_PROX_MU_MAX 1000.0f

/* What we recommend for the plan: 1 epoch of batches of 32 at lr 0.01,
 * with momentum 0.9 on the device. Measured on 2 cores: 8 IID devices of
 * 7,500 images pass 80% test accuracy at the 3rd FedAvg iteration and reach
 * about 88% at the 10th, at about 3 s of training per iteration with two
 * devices training at a time. */
#define TRAIN_PLAN_DEFAULT                      \
        ((TrainPlan) {                          \
                .epochs = 1,                    \
                .mini_batch = 32,               \
                .lr = 0.01f,                    \
                .momentum = 0.9f,               \
                .shuffle = true,                \
        })

typedef struct TrainStats {
        double loss;            /* mean training loss over the last epoch (upload_loss) */
        double accuracy;        /* training accuracy over the last epoch */
        size_t steps;           /* SGD steps taken */
} TrainStats;

/* Trains m in place on d's examples indices[0..n): epochs x ceil(n /
 * mini_batch) steps (the last batch of an epoch may be short, so that a
 * device with fewer examples than a batch still learns; a mini_batch over
 * LENET5_MAX_BATCH is taken as LENET5_MAX_BATCH). With prox_mu, each step's
 * gradient gets mu * (w - w0), w0 being m as it was passed in. The momentum
 * starts from zero on every call, as a device starts every iteration from
 * the global model alone. Deterministic: the same model, examples, plan and
 * seed give the same bytes (OpenBLAS runs single-threaded here; devices run
 * side by side in threads). -EINVAL for a bad plan or model or an index out
 * of range, -ERANGE if the loss stops being finite (diverged; nothing worth
 * uploading). */
int device_train(Model *m, const Dataset *d, const uint32_t *indices, size_t n, const TrainPlan *plan,
                 uint64_t seed, TrainStats *ret);

/* Accuracy and mean softmax cross-entropy of m over all of test, batched. */
int model_evaluate(const Model *m, const Dataset *test, double *ret_accuracy, double *ret_loss);

/* Pins OpenBLAS to the calling thread (once per process; device_train()
 * and model_evaluate() call it themselves). */
void trainer_blas_single_thread(void);
