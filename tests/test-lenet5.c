/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "fashion-mnist.h"
#include "lenet5.h"
#include "nn.h"
#include "rng.h"
#include "trainer.h"

static float *random_floats(Rng *rng, size_t n, double scale) {
        float *v = malloc(n * sizeof(float));

        assert_non_null(v);
        for (size_t i = 0; i < n; i++)
                v[i] = (float) (rng_normal(rng) * scale);
        return v;
}

static double dot(const float *a, const float *b, size_t n) {
        double s = 0.0;

        for (size_t i = 0; i < n; i++)
                s += (double) a[i] * b[i];
        return s;
}

/* |a - b| small relative to the larger of the two, or tiny outright. */
static void assert_close(double a, double b, double rel, double abs_tol, const char *what, size_t i) {
        double err = fabs(a - b), scale = MAX(fabs(a), fabs(b));

        if (err > abs_tol + rel * scale)
                fail_msg("%s[%zu]: analytic %.9g, numeric %.9g", what, i, a, b);
}

/* ---- the layers, one by one ----
 *
 * Every layer's backward is checked against central differences of
 * L = <R, layer(...)> for a random R. Convolutions and dense layers are
 * linear in each argument, so the differences are exact up to rounding, and
 * a large step keeps rounding small; pooling is piecewise linear, checked
 * on inputs whose values are spaced wider than the step. */

static void test_im2col_adjoint(void **state) {
        enum { C = 3, B = 2, H = 7, WD = 6, KK = 3, OH = H - KK + 1, OW = WD - KK + 1 };
        _cleanup_free_ float *x = NULL, *y = NULL, *col = NULL, *back = NULL;
        Rng rng;

        rng_seed(&rng, 1);
        x = random_floats(&rng, C * B * H * WD, 1.0);
        y = random_floats(&rng, C * KK * KK * B * OH * OW, 1.0);
        col = malloc(C * KK * KK * B * OH * OW * sizeof(float));
        back = malloc(C * B * H * WD * sizeof(float));
        nn_im2col(x, C, B, H, WD, KK, col);
        nn_col2im(y, C, B, H, WD, KK, back);
        /* <im2col(x), y> == <x, col2im(y)> */
        assert_close(dot(col, y, C * KK * KK * B * OH * OW), dot(x, back, C * B * H * WD), 1e-5, 1e-5, "adjoint", 0);

        /* One patch entry by hand: channel 2, tap (1,2), example 1, output (3,1). */
        assert_true(col[((2 * KK + 1) * KK + 2) * B * OH * OW + 1 * OH * OW + 3 * OW + 1] ==
                    x[(2 * B + 1) * H * WD + (3 + 1) * WD + (1 + 2)]);
}

static double conv_objective(const float *x, const float *w, const float *r, size_t c, size_t b, size_t h,
                             size_t k, size_t cout, float *col, float *out) {
        size_t oh = h - k + 1;

        nn_im2col(x, c, b, h, h, k, col);
        nn_conv_forward(w, col, cout, c * k * k, b * oh * oh, out);
        return dot(out, r, cout * b * oh * oh);
}

static void test_conv_gradient(void **state) {
        enum { C = 2, B = 2, H = 7, KK = 3, COUT = 3, OH = H - KK + 1 };
        const size_t nx = C * B * H * H, nw = COUT * C * KK * KK, ncol = C * KK * KK * B * OH * OH;
        _cleanup_free_ float *x = NULL, *w = NULL, *r = NULL, *col = NULL, *out = NULL, *dw = NULL,
                *dx = NULL, *dcol = NULL;
        const float eps = 0.5f;
        Rng rng;

        rng_seed(&rng, 2);
        x = random_floats(&rng, nx, 1.0);
        w = random_floats(&rng, nw, 0.5);
        r = random_floats(&rng, COUT * B * OH * OH, 1.0);
        col = malloc(ncol * sizeof(float));
        dcol = malloc(ncol * sizeof(float));
        out = malloc(COUT * B * OH * OH * sizeof(float));
        dw = malloc(nw * sizeof(float));
        dx = malloc(nx * sizeof(float));

        (void) conv_objective(x, w, r, C, B, H, KK, COUT, col, out);
        nn_conv_backward(w, col, r, COUT, C * KK * KK, B * OH * OH, dw, dcol);
        nn_col2im(dcol, C, B, H, H, KK, dx);

        for (size_t i = 0; i < nw; i++) {
                float keep = w[i];
                double plus, minus;

                w[i] = keep + eps;
                plus = conv_objective(x, w, r, C, B, H, KK, COUT, col, out);
                w[i] = keep - eps;
                minus = conv_objective(x, w, r, C, B, H, KK, COUT, col, out);
                w[i] = keep;
                assert_close(dw[i], (plus - minus) / (2 * eps), 1e-4, 1e-4, "conv dW", i);
        }
        for (size_t i = 0; i < nx; i++) {
                float keep = x[i];
                double plus, minus;

                x[i] = keep + eps;
                plus = conv_objective(x, w, r, C, B, H, KK, COUT, col, out);
                x[i] = keep - eps;
                minus = conv_objective(x, w, r, C, B, H, KK, COUT, col, out);
                x[i] = keep;
                assert_close(dx[i], (plus - minus) / (2 * eps), 1e-4, 1e-4, "conv dx", i);
        }

        /* dcol may alias col: the same dW and dcol come out. */
        {
                _cleanup_free_ float *dw2 = malloc(nw * sizeof(float));

                (void) conv_objective(x, w, r, C, B, H, KK, COUT, col, out);
                nn_conv_backward(w, col, r, COUT, C * KK * KK, B * OH * OH, dw2, col);
                assert_memory_equal(dw, dw2, nw * sizeof(float));
                assert_memory_equal(dcol, col, ncol * sizeof(float));
        }
}

static void test_maxpool_relu_gradient(void **state) {
        enum { PLANES = 5, H = 6, WD = 8, N = PLANES * H * WD, NO = PLANES * (H / 2) * (WD / 2) };
        _cleanup_free_ float *x = NULL, *r = NULL, *out = NULL, *dx = NULL;
        _cleanup_free_ uint32_t *perm = NULL;
        _cleanup_free_ uint8_t *arg = NULL;
        const float eps = 1e-3f;
        size_t positive = 0, zero_windows = 0;
        Rng rng;

        rng_seed(&rng, 3);
        /* Distinct values 0.01 apart, none zero, about half negative. */
        perm = malloc(N * sizeof(uint32_t));
        x = malloc(N * sizeof(float));
        for (size_t i = 0; i < N; i++)
                perm[i] = (uint32_t) i;
        rng_shuffle_u32(&rng, perm, N);
        for (size_t i = 0; i < N; i++)
                x[i] = ((float) perm[i] - N * 0.7f + 0.5f) * 0.01f;
        r = random_floats(&rng, NO, 1.0);
        out = malloc(NO * sizeof(float));
        arg = malloc(NO);
        dx = malloc(N * sizeof(float));

        nn_maxpool2_relu_forward(x, PLANES, H, WD, out, arg);
        for (size_t i = 0; i < NO; i++)
                zero_windows += out[i] == 0.0f;
        assert_true(zero_windows > 0 && zero_windows < NO);     /* both ReLU branches exercised */

        nn_maxpool2_relu_backward(r, out, arg, PLANES, H, WD, dx);
        for (size_t i = 0; i < N; i++) {
                float keep = x[i];
                double plus, minus;

                x[i] = keep + eps;
                nn_maxpool2_relu_forward(x, PLANES, H, WD, out, arg);
                plus = dot(out, r, NO);
                x[i] = keep - eps;
                nn_maxpool2_relu_forward(x, PLANES, H, WD, out, arg);
                minus = dot(out, r, NO);
                x[i] = keep;
                assert_close(dx[i], (plus - minus) / (2 * eps), 1e-3, 1e-4, "pool dx", i);
                positive += dx[i] != 0.0f;
        }
        /* Exactly one winner per window that passed the ReLU. */
        assert_int_equal(positive, NO - zero_windows);
}

static double dense_objective(const float *x, const float *w, const float *bias, const float *r, size_t b,
                              size_t in, size_t out, float *y) {
        nn_dense_forward(x, w, bias, b, in, out, y);
        return dot(y, r, b * out);
}

static void test_dense_gradient(void **state) {
        enum { B = 3, IN = 7, OUT = 5 };
        _cleanup_free_ float *x = NULL, *w = NULL, *bias = NULL, *r = NULL, *y = NULL, *dw = NULL,
                *db = NULL, *dx = NULL;
        struct {
                const char *name;
                float *v, *grad;
                size_t n;
        } params[3];
        const float eps = 0.5f;
        Rng rng;

        rng_seed(&rng, 4);
        x = random_floats(&rng, B * IN, 1.0);
        w = random_floats(&rng, OUT * IN, 0.5);
        bias = random_floats(&rng, OUT, 0.5);
        r = random_floats(&rng, B * OUT, 1.0);
        y = malloc(B * OUT * sizeof(float));
        dw = malloc(OUT * IN * sizeof(float));
        db = malloc(OUT * sizeof(float));
        dx = malloc(B * IN * sizeof(float));

        nn_dense_backward(x, w, r, B, IN, OUT, dw, db, dx);
        params[0].name = "dense dW", params[0].v = w, params[0].grad = dw, params[0].n = OUT * IN;
        params[1].name = "dense db", params[1].v = bias, params[1].grad = db, params[1].n = OUT;
        params[2].name = "dense dx", params[2].v = x, params[2].grad = dx, params[2].n = B * IN;
        for (size_t p = 0; p < ELEMENTSOF(params); p++)
                for (size_t i = 0; i < params[p].n; i++) {
                        float keep = params[p].v[i];
                        double plus, minus;

                        params[p].v[i] = keep + eps;
                        plus = dense_objective(x, w, bias, r, B, IN, OUT, y);
                        params[p].v[i] = keep - eps;
                        minus = dense_objective(x, w, bias, r, B, IN, OUT, y);
                        params[p].v[i] = keep;
                        assert_close(params[p].grad[i], (plus - minus) / (2 * eps), 1e-4, 1e-4,
                                     params[p].name, i);
                }
}

static void test_relu_and_flatten(void **state) {
        float y[] = { -1.0f, 0.0f, 2.0f, -0.5f };
        float dy[] = { 1.0f, 1.0f, 1.0f, 1.0f };
        float cbs[2 * 3 * 4], bcs[2 * 3 * 4], back[2 * 3 * 4];

        nn_relu_forward(y, 4);
        assert_true(y[0] == 0.0f && y[1] == 0.0f && y[2] == 2.0f && y[3] == 0.0f);
        nn_relu_backward(y, dy, 4);
        assert_true(dy[0] == 0.0f && dy[1] == 0.0f && dy[2] == 1.0f && dy[3] == 0.0f);

        /* [c=2][b=3][s=4] -> [b][c*s]: example 1's flat vector is its
         * channel 0 then its channel 1. */
        for (size_t i = 0; i < ELEMENTSOF(cbs); i++)
                cbs[i] = (float) i;
        nn_cbs_to_bcs(cbs, 2, 3, 4, bcs);
        assert_true(bcs[1 * 8 + 0] == cbs[(0 * 3 + 1) * 4 + 0]);
        assert_true(bcs[1 * 8 + 5] == cbs[(1 * 3 + 1) * 4 + 1]);
        nn_bcs_to_cbs(bcs, 2, 3, 4, back);
        assert_memory_equal(back, cbs, sizeof(cbs));
}

static void test_softmax_xent(void **state) {
        enum { B = 4, C = 10 };
        _cleanup_free_ float *z = NULL;
        float dz[B * C];
        const uint8_t labels[B] = { 3, 0, 9, 3 };
        const float eps = 1e-2f;
        size_t correct;
        double loss;
        Rng rng;

        rng_seed(&rng, 5);
        z = random_floats(&rng, B * C, 2.0);
        loss = nn_softmax_xent(z, labels, B, C, 1.0f / B, dz, &correct);
        assert_true(loss > 0.0);

        for (size_t i = 0; i < B * C; i++) {
                float keep = z[i];
                double plus, minus;

                z[i] = keep + eps;
                plus = nn_softmax_xent(z, labels, B, C, 1.0f, NULL, NULL) / B;
                z[i] = keep - eps;
                minus = nn_softmax_xent(z, labels, B, C, 1.0f, NULL, NULL) / B;
                z[i] = keep;
                assert_close(dz[i], (plus - minus) / (2 * eps), 1e-3, 1e-5, "softmax dz", i);
        }

        /* Uniform logits: log(10) each, all "correct" only for label 0 (first max). */
        memset(z, 0, B * C * sizeof(float));
        loss = nn_softmax_xent(z, labels, B, C, 1.0f, NULL, &correct);
        assert_close(loss, B * log(10.0), 1e-12, 1e-12, "uniform loss", 0);
        assert_int_equal(correct, 1);

        /* Huge logits do not overflow. */
        z[0] = 1e30f;
        loss = nn_softmax_xent(z, labels, 1, C, 1.0f, dz, NULL);
        assert_true(isfinite(loss) && loss > 1e29);
}

/* ---- the whole network ---- */

static void test_tensor_table(void **state) {
        _cleanup_(model_freep) Model *m = NULL, *bad = NULL;
        static const struct {
                const char *name;
                size_t size;
        } expected[] = {
                { "conv1.weight", 6 * 1 * 5 * 5 }, { "conv2.weight", 16 * 6 * 5 * 5 },
                { "fc1.weight", 120 * 400 },        { "fc1.bias", 120 },
                { "fc2.weight", 84 * 120 },         { "fc2.bias", 84 },
                { "fc3.weight", 10 * 84 },          { "fc3.bias", 10 },
        };

        assert_int_equal(lenet5_init(&m, 42), 0);
        assert_int_equal(m->n_tensors, ELEMENTSOF(expected));
        for (size_t i = 0; i < ELEMENTSOF(expected); i++) {
                size_t product = 1;
                double bound = 1.0 / sqrt((double) lenet5_tensors[i].fan_in), sum = 0.0;

                assert_string_equal(m->tensors[i].name, expected[i].name);
                assert_int_equal(m->tensors[i].size, expected[i].size);
                for (size_t d = 0; d < lenet5_tensors[i].n_dims; d++)
                        product *= lenet5_tensors[i].dims[d];
                assert_int_equal(product, expected[i].size);
                for (size_t j = 0; j < m->tensors[i].size; j++) {
                        assert_true(fabs(m->tensors[i].data[j]) <= bound);
                        sum += fabs(m->tensors[i].data[j]);
                }
                /* Uniform on (-bound, bound): mean |w| = bound / 2. */
                if (m->tensors[i].size >= 100)
                        assert_close(sum / (double) m->tensors[i].size, bound / 2, 0.15, 0, "mean |w|", i);
        }
        assert_int_equal(model_total_size(m), 61684);
        assert_int_equal(lenet5_check(m), 0);

        /* Right sizes, one wrong name; right names, one wrong size. */
        {
                const char *names[LENET5_N_TENSORS];
                size_t sizes[LENET5_N_TENSORS];

                for (size_t i = 0; i < LENET5_N_TENSORS; i++) {
                        names[i] = expected[i].name;
                        sizes[i] = expected[i].size;
                }
                names[7] = "fc3.b";
                assert_int_equal(model_new(&bad, names, sizes, LENET5_N_TENSORS), 0);
                assert_int_equal(lenet5_check(bad), -EINVAL);
                bad = model_free(bad);
                names[7] = "fc3.bias";
                sizes[3] = 121;
                assert_int_equal(model_new(&bad, names, sizes, LENET5_N_TENSORS), 0);
                assert_int_equal(lenet5_check(bad), -EINVAL);
                bad = model_free(bad);
                assert_int_equal(model_new(&bad, names, sizes, 7), 0);
                assert_int_equal(lenet5_check(bad), -EINVAL);
        }
}

static void test_init_deterministic(void **state) {
        _cleanup_(model_freep) Model *a = NULL, *b = NULL, *c = NULL;

        assert_int_equal(lenet5_init(&a, 7), 0);
        assert_int_equal(lenet5_init(&b, 7), 0);
        assert_int_equal(lenet5_init(&c, 8), 0);
        for (size_t i = 0; i < LENET5_N_TENSORS; i++) {
                assert_memory_equal(a->tensors[i].data, b->tensors[i].data, a->tensors[i].size * sizeof(float));
                assert_memory_not_equal(a->tensors[i].data, c->tensors[i].data, a->tensors[i].size * sizeof(float));
        }
}

static double network_loss(Lenet5Work *w, const Model *m, size_t b) {
        double loss;

        assert_int_equal(lenet5_forward(w, m, b, &loss, NULL), 0);
        return loss / (double) b;
}

/* End to end, per tensor: the directional derivative along a random unit
 * direction, against central differences of the mean loss. A direction
 * rather than single entries, so that one ReLU or pooling switch flipped by
 * the step is averaged out instead of failing an entry; plus single
 * entries of the small output layer, where no switch lies in between. */
static void test_network_gradient(void **state) {
        enum { B = 3 };
        _cleanup_(model_freep) Model *m = NULL, *grad = NULL;
        _cleanup_(lenet5_work_freep) Lenet5Work *w = NULL;
        _cleanup_free_ float *input = NULL;
        Rng rng;

        assert_int_equal(lenet5_init(&m, 11), 0);
        assert_int_equal(model_new_like(&grad, m), 0);
        assert_int_equal(lenet5_work_new(&w, B, true), 0);

        rng_seed(&rng, 12);
        input = random_floats(&rng, B * LENET5_INPUT_PIXELS, 1.0);
        memcpy(lenet5_work_input(w), input, B * LENET5_INPUT_PIXELS * sizeof(float));
        for (size_t i = 0; i < B; i++)
                lenet5_work_labels(w)[i] = (uint8_t) (3 * i + 1);

        assert_int_equal(lenet5_backward(w, m, grad), -EINVAL);         /* no forward yet */
        (void) network_loss(w, m, B);
        assert_int_equal(lenet5_backward(w, m, grad), 0);
        assert_int_equal(lenet5_backward(w, m, grad), -EINVAL);         /* spent */

        for (size_t t = 0; t < LENET5_N_TENSORS; t++) {
                Tensor *p = &m->tensors[t];
                _cleanup_free_ float *dir = random_floats(&rng, p->size, 1.0);
                _cleanup_free_ float *keep = malloc(p->size * sizeof(float));
                double norm = sqrt(dot(dir, dir, p->size)), analytic, numeric, plus, minus;
                const double eps = 1e-2;

                for (size_t i = 0; i < p->size; i++)
                        dir[i] = (float) (dir[i] / norm);
                analytic = dot(grad->tensors[t].data, dir, p->size);

                memcpy(keep, p->data, p->size * sizeof(float));
                for (size_t i = 0; i < p->size; i++)
                        p->data[i] = keep[i] + (float) (eps * dir[i]);
                plus = network_loss(w, m, B);
                for (size_t i = 0; i < p->size; i++)
                        p->data[i] = keep[i] - (float) (eps * dir[i]);
                minus = network_loss(w, m, B);
                memcpy(p->data, keep, p->size * sizeof(float));
                numeric = (plus - minus) / (2 * eps);

                print_message("%-13s |grad| %.5f  analytic %+.6f  numeric %+.6f\n", p->name,
                              sqrt(dot(grad->tensors[t].data, grad->tensors[t].data, p->size)), analytic, numeric);
                assert_true(fabs(analytic) > 1e-5);     /* the check means something */
                assert_close(analytic, numeric, 2e-2, 2e-4, p->name, t);
        }

        for (size_t t = LENET5_FC3_WEIGHT; t <= LENET5_FC3_BIAS; t++) {
                Tensor *p = &m->tensors[t];

                for (size_t i = 0; i < p->size; i += 7) {
                        float keep = p->data[i];
                        const float eps = 1e-2f;
                        double plus, minus;

                        p->data[i] = keep + eps;
                        plus = network_loss(w, m, B);
                        p->data[i] = keep - eps;
                        minus = network_loss(w, m, B);
                        p->data[i] = keep;
                        assert_close(grad->tensors[t].data[i], (plus - minus) / (2 * eps), 1e-2, 1e-4, p->name, i);
                }
        }
}

/* A learnable toy set: class c is a bright 6x6 square at a position of its
 * own, on noise. */
static Dataset *toy_dataset(size_t n, uint64_t seed) {
        Dataset *d = calloc(1, sizeof(Dataset));
        Rng rng;

        assert_non_null(d);
        rng_seed(&rng, seed);
        d->n = n;
        d->images = malloc(n * FASHION_MNIST_PIXELS * sizeof(float));
        d->labels = malloc(n);
        assert_non_null(d->images);
        assert_non_null(d->labels);
        for (size_t i = 0; i < n; i++) {
                float *img = d->images + i * FASHION_MNIST_PIXELS;
                uint8_t c = (uint8_t) (i % 10);
                size_t y0 = 3 + (c / 5) * 14, x0 = 3 + (c % 5) * 5;

                d->labels[i] = c;
                for (size_t p = 0; p < FASHION_MNIST_PIXELS; p++)
                        img[p] = (float) (rng_normal(&rng) * 0.3) - 0.8f;
                for (size_t y = y0; y < y0 + 6; y++)
                        for (size_t x = x0; x < x0 + 6; x++)
                                img[y * FASHION_MNIST_SIDE + x] += 2.5f;
        }
        return d;
}

static uint32_t *iota(size_t n) {
        uint32_t *v = malloc(n * sizeof(uint32_t));

        assert_non_null(v);
        for (size_t i = 0; i < n; i++)
                v[i] = (uint32_t) i;
        return v;
}

static void test_training_learns(void **state) {
        _cleanup_(dataset_freep) Dataset *d = toy_dataset(200, 21), *test = toy_dataset(100, 22);
        _cleanup_(model_freep) Model *m = NULL;
        _cleanup_free_ uint32_t *idx = iota(200);
        TrainPlan plan = TRAIN_PLAN_DEFAULT;
        TrainStats first, last;
        double acc0, loss0, acc, loss;

        assert_int_equal(lenet5_init(&m, 1), 0);
        assert_int_equal(model_evaluate(m, test, &acc0, &loss0), 0);
        assert_int_equal(device_train(m, d, idx, 200, &plan, 5, &first), 0);
        assert_int_equal(first.steps, 7);                       /* ceil(200 / 32) */
        plan.epochs = 10;
        assert_int_equal(device_train(m, d, idx, 200, &plan, 6, &last), 0);
        assert_int_equal(last.steps, 70);
        assert_int_equal(model_evaluate(m, test, &acc, &loss), 0);

        print_message("loss %.4f -> %.4f (train %.4f -> %.4f), accuracy %.3f -> %.3f\n",
                      loss0, loss, first.loss, last.loss, acc0, acc);
        assert_true(last.loss < first.loss * 0.5);
        assert_true(loss < 0.1);
        assert_true(acc >= 0.9);
}

static void test_training_deterministic(void **state) {
        _cleanup_(dataset_freep) Dataset *d = toy_dataset(75, 31);
        _cleanup_(model_freep) Model *a = NULL, *b = NULL, *c = NULL;
        _cleanup_free_ uint32_t *idx = iota(75);
        TrainPlan plan = TRAIN_PLAN_DEFAULT;
        TrainStats sa, sb;

        plan.epochs = 2;
        plan.mini_batch = 16;           /* 5 batches, the last one short */
        assert_int_equal(lenet5_init(&a, 3), 0);
        assert_int_equal(model_copy(&b, a), 0);
        assert_int_equal(model_copy(&c, a), 0);
        assert_int_equal(device_train(a, d, idx, 75, &plan, 99, &sa), 0);
        assert_int_equal(device_train(b, d, idx, 75, &plan, 99, &sb), 0);
        assert_int_equal(device_train(c, d, idx, 75, &plan, 100, NULL), 0);
        assert_int_equal(sa.steps, 10);
        assert_true(sa.loss == sb.loss);
        for (size_t i = 0; i < LENET5_N_TENSORS; i++) {
                assert_memory_equal(a->tensors[i].data, b->tensors[i].data, a->tensors[i].size * sizeof(float));
                /* Another seed shuffles differently. */
                assert_memory_not_equal(a->tensors[i].data, c->tensors[i].data, a->tensors[i].size * sizeof(float));
        }
}

static double distance(const Model *a, const Model *b) {
        double s = 0;

        for (size_t t = 0; t < a->n_tensors; t++)
                for (size_t i = 0; i < a->tensors[t].size; i++) {
                        double d = (double) a->tensors[t].data[i] - (double) b->tensors[t].data[i];
                        s += d * d;
                }
        return sqrt(s);
}

/* FedProx: the proximal term holds the weights near where training started;
 * the first step (w = w0) is the same with and without it. */
static void test_training_proximal(void **state) {
        _cleanup_(dataset_freep) Dataset *d = toy_dataset(96, 51);
        _cleanup_(model_freep) Model *w0 = NULL, *plain = NULL, *prox = NULL, *one_a = NULL, *one_b = NULL;
        _cleanup_free_ uint32_t *idx = iota(96);
        TrainPlan plan = TRAIN_PLAN_DEFAULT;
        double dp, dx;

        plan.momentum = 0.0f;
        plan.epochs = 4;
        assert_int_equal(lenet5_init(&w0, 4), 0);
        assert_int_equal(model_copy(&plain, w0), 0);
        assert_int_equal(model_copy(&prox, w0), 0);
        assert_int_equal(device_train(plain, d, idx, 96, &plan, 7, NULL), 0);
        plan.prox_mu = 50.0f;           /* lr * mu = 0.5: a strong pull back to w0 */
        assert_int_equal(device_train(prox, d, idx, 96, &plan, 7, NULL), 0);
        dp = distance(plain, w0);
        dx = distance(prox, w0);
        print_message("|w - w0|: %.4f without the proximal term, %.4f with mu 50\n", dp, dx);
        assert_true(dp > 0 && dx < 0.5 * dp);

        /* One step from w0: the term is zero there. */
        plan.epochs = 1;
        plan.mini_batch = 96;
        assert_int_equal(model_copy(&one_a, w0), 0);
        assert_int_equal(model_copy(&one_b, w0), 0);
        plan.prox_mu = 0.0f;
        assert_int_equal(device_train(one_a, d, idx, 96, &plan, 8, NULL), 0);
        plan.prox_mu = 50.0f;
        assert_int_equal(device_train(one_b, d, idx, 96, &plan, 8, NULL), 0);
        for (size_t i = 0; i < LENET5_N_TENSORS; i++)
                assert_memory_equal(one_a->tensors[i].data, one_b->tensors[i].data,
                                    one_a->tensors[i].size * sizeof(float));
}

static void test_training_refusals(void **state) {
        _cleanup_(dataset_freep) Dataset *d = toy_dataset(10, 41);
        _cleanup_(model_freep) Model *m = NULL, *other = NULL;
        _cleanup_free_ uint32_t *idx = iota(10);
        const TrainPlan good = TRAIN_PLAN_DEFAULT;
        TrainPlan plan;
        const char *names[] = { "w" };
        const size_t sizes[] = { 3 };

        assert_int_equal(lenet5_init(&m, 1), 0);
        plan = good, plan.epochs = 0;
        assert_int_equal(device_train(m, d, idx, 10, &plan, 1, NULL), -EINVAL);
        plan = good, plan.mini_batch = 0;
        assert_int_equal(device_train(m, d, idx, 10, &plan, 1, NULL), -EINVAL);
        plan = good, plan.lr = NAN;
        assert_int_equal(device_train(m, d, idx, 10, &plan, 1, NULL), -EINVAL);
        plan = good, plan.lr = -0.1f;
        assert_int_equal(device_train(m, d, idx, 10, &plan, 1, NULL), -EINVAL);
        plan = good, plan.momentum = 1.0f;
        assert_int_equal(device_train(m, d, idx, 10, &plan, 1, NULL), -EINVAL);
        plan = good, plan.prox_mu = -1.0f;
        assert_int_equal(device_train(m, d, idx, 10, &plan, 1, NULL), -EINVAL);
        plan = good, plan.prox_mu = NAN;
        assert_int_equal(device_train(m, d, idx, 10, &plan, 1, NULL), -EINVAL);
        assert_int_equal(device_train(m, d, idx, 0, &good, 1, NULL), -EINVAL);
        idx[9] = 10;                                            /* out of range */
        assert_int_equal(device_train(m, d, idx, 10, &good, 1, NULL), -EINVAL);
        idx[9] = 9;
        assert_int_equal(model_new(&other, names, sizes, 1), 0);
        assert_int_equal(device_train(other, d, idx, 10, &good, 1, NULL), -EINVAL);
        assert_int_equal(model_evaluate(other, d, NULL, NULL), -EINVAL);

        /* A batch larger than the device's data is fine: one short batch. */
        plan = good, plan.mini_batch = 4096;
        assert_int_equal(device_train(m, d, idx, 10, &plan, 1, NULL), 0);

        /* An absurd learning rate diverges and says so. */
        plan = good, plan.lr = 1e30f, plan.epochs = 2;
        assert_int_equal(device_train(m, d, idx, 10, &plan, 1, NULL), -ERANGE);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_im2col_adjoint),
                cmocka_unit_test(test_conv_gradient),
                cmocka_unit_test(test_maxpool_relu_gradient),
                cmocka_unit_test(test_dense_gradient),
                cmocka_unit_test(test_relu_and_flatten),
                cmocka_unit_test(test_softmax_xent),
                cmocka_unit_test(test_tensor_table),
                cmocka_unit_test(test_init_deterministic),
                cmocka_unit_test(test_network_gradient),
                cmocka_unit_test(test_training_learns),
                cmocka_unit_test(test_training_deterministic),
                cmocka_unit_test(test_training_proximal),
                cmocka_unit_test(test_training_refusals),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
