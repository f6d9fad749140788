/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <float.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "model.h"
#include "optimizer.h"
#include "server-aggregate.h"
#include "server-optimizer.h"

/* The step of every kind against values worked out by hand (in doubles,
 * from the formulas of docs/training.md), the state's layout and checks,
 * and the refusals. */

static const char *const names[] = { "conv.w", "fc.b" };
static const size_t sizes[] = { 3, 2 };
#define N 5

static Model *model_of(const float v[N]) {
        Model *m = NULL;

        assert_int_equal(model_new(&m, names, sizes, 2), 0);
        memcpy(m->tensors[0].data, v, 3 * sizeof(float));
        memcpy(m->tensors[1].data, v + 3, 2 * sizeof(float));
        return m;
}

/* All of m's values, tensor after tensor (a state: slot m, then slot v). */
static void flatten(const Model *m, float *out, size_t n) {
        size_t k = 0;

        for (size_t t = 0; t < m->n_tensors; t++)
                for (size_t i = 0; i < m->tensors[t].size; i++) {
                        assert_true(k < n);
                        out[k++] = m->tensors[t].data[i];
                }
        assert_int_equal(k, n);
}

static float value(const Model *m, size_t i) {
        float all[N];

        flatten(m, all, N);
        return all[i];
}

static const float x0[N] = { 1.0f, -2.0f, 0.5f, 0.0f, 4.0f };
/* The devices' average is x0 + this (the sums below are avg * data_size). */
static const double delta0[N] = { 0.25, -0.5, 0.0, 1e-3, -3.0 };
#define DATA_SIZE 8.0

static void sum_of(const float x[N], const double delta[N], double sum[N]) {
        for (size_t i = 0; i < N; i++)
                sum[i] = ((double) x[i] + delta[i]) * DATA_SIZE;
}

static OptimizerParams params(OptimizerKind k, double lr) {
        OptimizerParams p = OPTIMIZER_PARAMS_DEFAULT;

        p.kind = k;
        p.learning_rate = lr;
        return p;
}

static void test_names_and_defaults(void **unused) {
        OptimizerParams p = OPTIMIZER_PARAMS_DEFAULT;
        char error[128];

        for (int k = 0; k < _OPTIMIZER_KIND_MAX; k++)
                assert_int_equal(optimizer_kind_from_string(optimizer_kind_to_string(k)), k);
        assert_int_equal(optimizer_kind_from_string("adam"), _OPTIMIZER_KIND_INVALID);
        assert_true(optimizer_is_plain_fedavg(&p));
        p.learning_rate = 0.5;
        assert_false(optimizer_is_plain_fedavg(&p));
        p = params(OPTIMIZER_FEDADAM, 0);
        assert_true(optimizer_learning_rate(&p) == optimizer_default_learning_rate(OPTIMIZER_FEDADAM));
        assert_int_equal(optimizer_state_slots(OPTIMIZER_FEDAVG), 0);
        assert_int_equal(optimizer_state_slots(OPTIMIZER_FEDAVGM), 1);
        assert_int_equal(optimizer_state_slots(OPTIMIZER_FEDYOGI), 2);

        assert_int_equal(optimizer_params_check(&p, error, sizeof error), 0);
        p.beta2 = 1.0;
        assert_int_equal(optimizer_params_check(&p, error, sizeof error), -ERANGE);
        assert_non_null(strstr(error, "server_beta2"));
        p = params(OPTIMIZER_FEDAVGM, 0);
        p.tau = 0;
        assert_int_equal(optimizer_params_check(&p, error, sizeof error), -ERANGE);
        p.tau = NAN;
        assert_int_equal(optimizer_params_check(&p, error, sizeof error), -ERANGE);
        p = params(OPTIMIZER_FEDAVG, OPTIMIZER_LEARNING_RATE_MAX * 2);
        assert_int_equal(optimizer_params_check(&p, error, sizeof error), -ERANGE);
}

static void test_json_round_trip(void **unused) {
        OptimizerParams p = params(OPTIMIZER_FEDYOGI, 0.03), q = OPTIMIZER_PARAMS_DEFAULT;
        json_object *o = json_object_new_object(), *v;

        p.beta1 = 0.8;
        p.tau = 1e-4;
        assert_int_equal(optimizer_params_to_json(&p, o, false), 0);
        assert_int_equal(optimizer_params_from_json(o, &q), 0);
        assert_int_equal(q.kind, OPTIMIZER_FEDYOGI);
        assert_true(q.learning_rate == 0.03 && q.beta1 == 0.8 && q.tau == 1e-4 && q.beta2 == p.beta2);
        /* Out of range from the network: refused, nothing changed. */
        json_object_object_add(o, "server_momentum", json_object_new_double(1.5));
        q = OPTIMIZER_PARAMS_DEFAULT;
        assert_int_equal(optimizer_params_from_json(o, &q), -EBADMSG);
        assert_int_equal(q.kind, OPTIMIZER_FEDAVG);
        json_object_put(o);

        /* As given, a default learning rate is 0; in force, the kind's. */
        o = json_object_new_object();
        p.learning_rate = 0;
        assert_int_equal(optimizer_params_to_json(&p, o, true), 0);
        assert_true(json_object_object_get_ex(o, "server_learning_rate", &v));
        assert_true(json_object_get_double(v) == 0);
        assert_int_equal(optimizer_params_to_json(&p, o, false), 0);
        assert_true(json_object_object_get_ex(o, "server_learning_rate", &v));
        assert_true(json_object_get_double(v) == optimizer_default_learning_rate(OPTIMIZER_FEDYOGI));
        json_object_put(o);
}

static void test_plain_fedavg_is_the_average(void **unused) {
        _cleanup_(model_freep) Model *old = model_of(x0), *next = NULL, *state = NULL, *avg = NULL;
        OptimizerParams p = OPTIMIZER_PARAMS_DEFAULT;
        double vec[N + 2];

        sum_of(x0, delta0, vec);
        vec[N] = DATA_SIZE;
        vec[N + 1] = 3;
        assert_int_equal(optimizer_step(&p, old, NULL, vec, DATA_SIZE, &next, &state), 0);
        assert_null(state);
        assert_int_equal(aggregate_finish(old, vec, N + 2, &avg, NULL, NULL), 0);
        for (size_t i = 0; i < N; i++)
                assert_memory_equal(&next->tensors[i < 3 ? 0 : 1].data[i < 3 ? i : i - 3],
                                    &avg->tensors[i < 3 ? 0 : 1].data[i < 3 ? i : i - 3], sizeof(float));
}

static void test_fedavg_rate(void **unused) {
        _cleanup_(model_freep) Model *old = model_of(x0), *next = NULL, *state = NULL;
        OptimizerParams p = params(OPTIMIZER_FEDAVG, 0.5);
        double sum[N];

        sum_of(x0, delta0, sum);
        assert_int_equal(optimizer_step(&p, old, NULL, sum, DATA_SIZE, &next, &state), 0);
        assert_null(state);
        for (size_t i = 0; i < N; i++)
                assert_true(value(next, i) == (float) ((double) x0[i] + 0.5 * delta0[i]));
}

static void test_fedavgm_two_steps(void **unused) {
        _cleanup_(model_freep) Model *old = model_of(x0), *x1 = NULL, *s1 = NULL, *x2 = NULL, *s2 = NULL;
        OptimizerParams p = params(OPTIMIZER_FEDAVGM, 0.5);
        double sum[N];

        p.momentum = 0.75;
        sum_of(x0, delta0, sum);
        assert_int_equal(optimizer_step(&p, old, NULL, sum, DATA_SIZE, &x1, &s1), 0);
        assert_non_null(s1);
        assert_int_equal(s1->n_tensors, 2);
        assert_string_equal(s1->tensors[0].name, "fedavgm/m/conv.w");
        assert_string_equal(s1->tensors[1].name, "fedavgm/m/fc.b");
        /* m1 = delta, x1 = x0 + 0.5 delta */
        for (size_t i = 0; i < N; i++) {
                assert_true(value(s1, i) == (float) delta0[i]);
                assert_true(value(x1, i) == (float) ((double) x0[i] + 0.5 * (double) (float) delta0[i]));
        }

        /* Same average again: delta' = avg - x1, m2 = 0.75 m1 + delta', x2 = x1 + 0.5 m2. */
        assert_int_equal(optimizer_step(&p, x1, s1, sum, DATA_SIZE, &x2, &s2), 0);
        for (size_t i = 0; i < N; i++) {
                double d = ((double) x0[i] + delta0[i]) - (double) value(x1, i);
                float m2 = (float) (0.75 * (double) value(s1, i) + d);

                assert_true(value(s2, i) == m2);
                assert_true(value(x2, i) == (float) ((double) value(x1, i) + 0.5 * (double) m2));
        }
}

/* One adaptive step from a fresh state, by the formulas. */
static void expect_adaptive(OptimizerKind k, const Model *x1, const Model *s1, double lr) {
        const double b1 = OPTIMIZER_DEFAULT_BETA1, b2 = OPTIMIZER_DEFAULT_BETA2, tau = OPTIMIZER_DEFAULT_TAU;
        const double v0 = (double) (float) (tau * tau);
        float st[2 * N];

        flatten(s1, st, 2 * N);
        for (size_t i = 0; i < N; i++) {
                double d = delta0[i], d2 = d * d, v;
                float m = (float) ((1 - b1) * d), vf;

                if (k == OPTIMIZER_FEDADAM)
                        v = b2 * v0 + (1 - b2) * d2;
                else if (k == OPTIMIZER_FEDYOGI)
                        v = v0 - (1 - b2) * d2 * (v0 > d2 ? 1 : v0 < d2 ? -1 : 0);
                else
                        v = v0 + d2;
                vf = (float) v;
                assert_true(st[i] == m);
                assert_true(st[N + i] == vf);
                assert_true(value(x1, i) == (float) ((double) x0[i] + lr * (double) m / (sqrt((double) vf) + tau)));
        }
}

static void test_adaptive_first_step(void **unused) {
        for (OptimizerKind k = OPTIMIZER_FEDADAM; k <= OPTIMIZER_FEDADAGRAD; k++) {
                _cleanup_(model_freep) Model *old = model_of(x0), *x1 = NULL, *s1 = NULL;
                OptimizerParams p = params(k, 0.1);
                OptimizerKind got;
                double sum[N];

                sum_of(x0, delta0, sum);
                assert_int_equal(optimizer_step(&p, old, NULL, sum, DATA_SIZE, &x1, &s1), 0);
                assert_int_equal(s1->n_tensors, 4);
                assert_string_equal(s1->tensors[0].name, k == OPTIMIZER_FEDADAM ? "fedadam/m/conv.w" :
                                    k == OPTIMIZER_FEDYOGI ? "fedyogi/m/conv.w" : "fedadagrad/m/conv.w");
                assert_non_null(strstr(s1->tensors[1].name, "/m/fc.b"));
                assert_non_null(strstr(s1->tensors[2].name, "/v/conv.w"));
                assert_non_null(strstr(s1->tensors[3].name, "/v/fc.b"));
                assert_int_equal(optimizer_state_check(s1, old, &got), 0);
                assert_int_equal(got, k);
                expect_adaptive(k, x1, s1, 0.1);
        }
}

/* Second steps: Yogi's v shrinks where it exceeds delta^2 (Adam's only
 * decays), Adagrad's only grows; all three carry m over. */
static void test_adaptive_second_step(void **unused) {
        for (OptimizerKind k = OPTIMIZER_FEDADAM; k <= OPTIMIZER_FEDADAGRAD; k++) {
                _cleanup_(model_freep) Model *old = model_of(x0), *x1 = NULL, *s1 = NULL, *x2 = NULL, *s2 = NULL;
                OptimizerParams p = params(k, 0.1);
                const double b1 = p.beta1, b2 = p.beta2, tau = p.tau;
                double sum[N], small[N];
                float a[2 * N], b[2 * N];

                sum_of(x0, delta0, sum);
                assert_int_equal(optimizer_step(&p, old, NULL, sum, DATA_SIZE, &x1, &s1), 0);
                /* The devices now come back close to x1: a small delta. */
                for (size_t i = 0; i < N; i++)
                        small[i] = ((double) value(x1, i) + 1e-4) * DATA_SIZE;
                assert_int_equal(optimizer_step(&p, x1, s1, small, DATA_SIZE, &x2, &s2), 0);
                flatten(s1, a, 2 * N);
                flatten(s2, b, 2 * N);
                for (size_t i = 0; i < N; i++) {
                        double d = ((double) value(x1, i) + 1e-4) - (double) value(x1, i), d2 = d * d;
                        double v = a[N + i];
                        float m = (float) (b1 * (double) a[i] + (1 - b1) * d);

                        if (k == OPTIMIZER_FEDADAM)
                                v = b2 * v + (1 - b2) * d2;
                        else if (k == OPTIMIZER_FEDYOGI)
                                v = v - (1 - b2) * d2 * (v > d2 ? 1 : v < d2 ? -1 : 0);
                        else
                                v = v + d2;
                        assert_true(b[i] == m);
                        assert_true(b[N + i] == (float) v);
                        assert_true(value(x2, i) == (float) ((double) value(x1, i) +
                                                             0.1 * (double) m / (sqrt((double) (float) v) + tau)));
                        /* (before the rounding to float, which may hide a change this small) */
                        if (k == OPTIMIZER_FEDYOGI && a[N + i] > d2)
                                assert_true(v < (double) a[N + i]);
                        if (k != OPTIMIZER_FEDYOGI)
                                assert_true(v > (double) a[N + i] * (k == OPTIMIZER_FEDADAM ? b2 : 1.0));
                }
        }
}

/* A state of another kind (server_optimizer changed) is not used: the step
 * is the one from a fresh state. */
static void test_other_kind_starts_afresh(void **unused) {
        _cleanup_(model_freep) Model *old = model_of(x0), *x1 = NULL, *s1 = NULL, *x2 = NULL, *s2 = NULL,
                                     *fresh = NULL, *sfresh = NULL;
        OptimizerParams m = params(OPTIMIZER_FEDAVGM, 1.0), a = params(OPTIMIZER_FEDADAM, 0.1);
        double sum[N];

        sum_of(x0, delta0, sum);
        assert_int_equal(optimizer_step(&m, old, NULL, sum, DATA_SIZE, &x1, &s1), 0);
        assert_int_equal(optimizer_step(&a, old, s1, sum, DATA_SIZE, &x2, &s2), 0);
        assert_int_equal(optimizer_step(&a, old, NULL, sum, DATA_SIZE, &fresh, &sfresh), 0);
        assert_int_equal(model_checksum(x2), model_checksum(fresh));
        assert_int_equal(model_checksum(s2), model_checksum(sfresh));
}

static void test_state_check(void **unused) {
        _cleanup_(model_freep) Model *old = model_of(x0), *x1 = NULL, *s1 = NULL, *other = NULL;
        OptimizerParams p = params(OPTIMIZER_FEDADAM, 0.1);
        const char *short_names[] = { "w" };
        const size_t short_sizes[] = { 3 };
        double sum[N];
        char *name;

        sum_of(x0, delta0, sum);
        assert_int_equal(optimizer_step(&p, old, NULL, sum, DATA_SIZE, &x1, &s1), 0);
        assert_int_equal(optimizer_state_check(s1, old, NULL), 0);

        /* Another model's shape. */
        assert_int_equal(model_new(&other, short_names, short_sizes, 1), 0);
        assert_int_equal(optimizer_state_check(s1, other, NULL), -EBADMSG);
        /* A negative second moment, a NaN: never written by a step. */
        s1->tensors[2].data[1] = -1.0f;
        assert_int_equal(optimizer_state_check(s1, old, NULL), -EBADMSG);
        s1->tensors[2].data[1] = 1.0f;
        s1->tensors[0].data[0] = NAN;
        assert_int_equal(optimizer_state_check(s1, old, NULL), -EBADMSG);
        s1->tensors[0].data[0] = 0.0f;
        assert_int_equal(optimizer_state_check(s1, old, NULL), 0);
        /* A wrong name: the slot, the tensor, the kind. */
        name = s1->tensors[3].name;
        s1->tensors[3].name = (char *) "fedadam/m/fc.b";
        assert_int_equal(optimizer_state_check(s1, old, NULL), -EBADMSG);
        s1->tensors[3].name = (char *) "fedadam/v/fc.bias";
        assert_int_equal(optimizer_state_check(s1, old, NULL), -EBADMSG);
        s1->tensors[3].name = (char *) "fedyogi/v/fc.b";
        assert_int_equal(optimizer_state_check(s1, old, NULL), -EBADMSG);
        s1->tensors[3].name = (char *) "fedadam/v/fc";
        assert_int_equal(optimizer_state_check(s1, old, NULL), -EBADMSG);
        s1->tensors[3].name = name;
        assert_int_equal(optimizer_state_check(s1, old, NULL), 0);
        assert_int_equal(optimizer_state_check(old, old, NULL), -EBADMSG);
}

static void test_refusals(void **unused) {
        _cleanup_(model_freep) Model *old = model_of(x0), *x1 = NULL, *s1 = NULL;
        OptimizerParams p = params(OPTIMIZER_FEDAVG, OPTIMIZER_LEARNING_RATE_MAX);
        double sum[N];

        /* A step past what a float holds. */
        sum_of(x0, delta0, sum);
        sum[4] = 1e36 * DATA_SIZE;
        assert_int_equal(optimizer_step(&p, old, NULL, sum, DATA_SIZE, &x1, &s1), -ERANGE);
        assert_null(x1);
        /* An average no float holds, a NaN. */
        p = params(OPTIMIZER_FEDADAM, 0.1);
        sum[4] = 1e40 * DATA_SIZE;
        assert_int_equal(optimizer_step(&p, old, NULL, sum, DATA_SIZE, &x1, &s1), -EBADMSG);
        sum[4] = NAN;
        assert_int_equal(optimizer_step(&p, old, NULL, sum, DATA_SIZE, &x1, &s1), -EBADMSG);
        sum[4] = 0;
        assert_int_equal(optimizer_step(&p, old, NULL, sum, 0, &x1, &s1), -EINVAL);
        assert_null(x1);
        assert_null(s1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names_and_defaults),
                cmocka_unit_test(test_json_round_trip),
                cmocka_unit_test(test_plain_fedavg_is_the_average),
                cmocka_unit_test(test_fedavg_rate),
                cmocka_unit_test(test_fedavgm_two_steps),
                cmocka_unit_test(test_adaptive_first_step),
                cmocka_unit_test(test_adaptive_second_step),
                cmocka_unit_test(test_other_kind_starts_afresh),
                cmocka_unit_test(test_state_check),
                cmocka_unit_test(test_refusals),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
