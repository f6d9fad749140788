/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>

#include "client-central.h"
#include "fashion-mnist.h"
#include "fl-model-io.h"
#include "lenet5.h"
#include "log.h"
#include "rng.h"
#include "util.h"

static void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}

static int print_row(FILE *csv, const char *csv_path, uint64_t samples, double accuracy, double loss,
                     double seconds, bool first) {
        if (first)
                printf("%-9s  %-13s  %-9s  %s\n", "samples", "test-accuracy", "test-loss", "seconds");
        printf("%-9" PRIu64 "  %-13.4f  %-9.4f  %.1f\n", samples, accuracy, loss, seconds);
        if (fflush(stdout) != 0)
                return log_error_errno(negative_errno(), "Failed to write the table: %m");
        if (csv) {
                fprintf(csv, "%" PRIu64 ",%.6f,%.6f,%.3f\n", samples, accuracy, loss, seconds);
                if (fflush(csv) != 0 || ferror(csv))
                        return log_error_errno(negative_errno(), "Failed to write %s: %m", csv_path);
        }
        return 0;
}

int client_central(const CentralOptions *o) {
        _cleanup_(dataset_freep) Dataset *train = NULL, *test = NULL;
        _cleanup_(model_freep) Model *m = NULL;
        _cleanup_free_ uint32_t *order = NULL;
        _cleanup_(fclosep) FILE *csv = NULL;
        uint64_t start = now_usec(CLOCK_MONOTONIC), done = 0;
        TrainPlan plan = o->plan;
        int r;

        if (o->samples == 0)
                return log_error_errno(-EINVAL, "central needs a positive number of samples.");
        r = fashion_mnist_load(&train, o->data_dir, FASHION_MNIST_TRAIN);
        if (r < 0)
                return log_error_errno(r, "Failed to load the Fashion-MNIST training set from %s: %m", o->data_dir);
        r = fashion_mnist_load(&test, o->data_dir, FASHION_MNIST_TEST);
        if (r < 0)
                return log_error_errno(r, "Failed to load the Fashion-MNIST test set from %s: %m", o->data_dir);
        r = lenet5_init(&m, o->seed);
        if (r < 0)
                return log_error_errno(r, "Failed to initialize LeNet-5: %m");
        order = malloc(train->n * sizeof(uint32_t));
        if (!order)
                return log_oom();
        if (o->csv_path) {
                struct stat st;

                csv = fopen(o->csv_path, "ae");
                if (!csv)
                        return log_error_errno(negative_errno(), "Failed to open %s: %m", o->csv_path);
                if (fstat(fileno(csv), &st) < 0)
                        return log_error_errno(negative_errno(), "Failed to stat %s: %m", o->csv_path);
                if (st.st_size == 0)
                        fputs("samples,test_accuracy,test_loss,seconds\n", csv);
        }

        plan.epochs = 1;
        plan.shuffle = true;
        for (uint64_t pass = 0; done < o->samples; pass++) {
                size_t n = (size_t) MIN((uint64_t) train->n, o->samples - done);
                double accuracy, loss;
                Rng rng;

                /* A cut-short last pass takes a random part of the set. */
                for (size_t i = 0; i < train->n; i++)
                        order[i] = (uint32_t) i;
                rng_seed(&rng, rng_derive_seed(o->seed, pass));
                rng_shuffle_u32(&rng, order, train->n);
                r = device_train(m, train, order, n, &plan, rng_derive_seed(o->seed, UINT64_MAX - pass), NULL);
                if (r == -ERANGE)
                        return log_error_errno(r, "Training diverged (the loss is not finite); lower --lr.");
                if (r < 0)
                        return log_error_errno(r, "Training failed: %m");
                done += n;

                r = model_evaluate(m, test, &accuracy, &loss);
                if (r < 0)
                        return log_error_errno(r, "Failed to evaluate the model: %m");
                r = print_row(csv, o->csv_path, done, accuracy, loss,
                              (double) (now_usec(CLOCK_MONOTONIC) - start) / (double) USEC_PER_SEC, pass == 0);
                if (r < 0)
                        return r;
        }

        if (o->model_path) {
                r = fl_model_save_file(o->model_path, m);
                if (r < 0)
                        return log_error_errno(r, "Failed to write %s: %m", o->model_path);
        }
        return 0;
}
