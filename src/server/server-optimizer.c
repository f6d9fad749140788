/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "server-optimizer.h"
#include "util.h"

static const char *const slot_names[] = { "m", "v" };

size_t optimizer_state_slots(OptimizerKind k) {
        switch (k) {
        case OPTIMIZER_FEDAVGM:
                return 1;
        case OPTIMIZER_FEDADAM:
        case OPTIMIZER_FEDYOGI:
        case OPTIMIZER_FEDADAGRAD:
                return 2;
        default:
                return 0;
        }
}

static char *state_name(OptimizerKind k, size_t slot, const char *tensor) {
        char *s;

        if (asprintf(&s, "%s/%s/%s", optimizer_kind_to_string(k), slot_names[slot], tensor) < 0)
                return NULL;
        return s;
}

/* A zeroed state of kind k for model, v (slot 1) set to tau^2. */
static int state_new(Model **ret, OptimizerKind k, const Model *model, double tau) {
        size_t slots = optimizer_state_slots(k), n = slots * model->n_tensors;
        _cleanup_free_ char **names = NULL;
        _cleanup_free_ size_t *sizes = NULL;
        _cleanup_(model_freep) Model *s = NULL;
        int r = 0;

        names = calloc(n, sizeof(char *));
        sizes = calloc(n, sizeof(size_t));
        if (!names || !sizes)
                return -ENOMEM;
        for (size_t j = 0; j < slots; j++)
                for (size_t t = 0; t < model->n_tensors; t++) {
                        names[j * model->n_tensors + t] = state_name(k, j, model->tensors[t].name);
                        sizes[j * model->n_tensors + t] = model->tensors[t].size;
                        if (!names[j * model->n_tensors + t])
                                r = -ENOMEM;
                }
        if (r >= 0)
                r = model_new(&s, (const char *const *) names, sizes, n);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        if (r < 0)
                return r;

        if (slots == 2) {
                float v0 = (float) (tau * tau);

                for (size_t t = model->n_tensors; t < n; t++)
                        for (size_t i = 0; i < s->tensors[t].size; i++)
                                s->tensors[t].data[i] = v0;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static bool name_is(const char *name, OptimizerKind k, size_t slot, const char *tensor) {
        const char *kind = optimizer_kind_to_string(k), *slot_name = slot_names[slot];
        size_t a = strlen(kind), b = strlen(slot_name);

        /* Each comparison stops at the NUL of a shorter name. */
        return strneq(name, kind, a) && name[a] == '/' && strneq(name + a + 1, slot_name, b) &&
               name[a + 1 + b] == '/' && streq(name + a + b + 2, tensor);
}

int optimizer_state_check(const Model *state, const Model *model, OptimizerKind *ret_kind) {
        const char *slash;
        char kind_name[32];
        OptimizerKind k;
        size_t slots;

        if (!state || !model || state->n_tensors == 0)
                return -EBADMSG;
        slash = strchr(state->tensors[0].name, '/');
        if (!slash || (size_t) (slash - state->tensors[0].name) >= sizeof kind_name)
                return -EBADMSG;
        memcpy(kind_name, state->tensors[0].name, (size_t) (slash - state->tensors[0].name));
        kind_name[slash - state->tensors[0].name] = '\0';
        k = optimizer_kind_from_string(kind_name);
        slots = optimizer_state_slots(k);
        if (slots == 0 || state->n_tensors != slots * model->n_tensors)
                return -EBADMSG;

        for (size_t j = 0; j < slots; j++)
                for (size_t t = 0; t < model->n_tensors; t++) {
                        const Tensor *s = &state->tensors[j * model->n_tensors + t];

                        if (!name_is(s->name, k, j, model->tensors[t].name) || s->size != model->tensors[t].size)
                                return -EBADMSG;
                        for (size_t i = 0; i < s->size; i++)
                                if (!isfinite(s->data[i]) || (j == 1 && s->data[i] < 0))
                                        return -EBADMSG;
                }
        if (ret_kind)
                *ret_kind = k;
        return 0;
}

static bool fits_float(double x) {
        return isfinite(x) && fabs(x) <= FLT_MAX;
}

static double sign(double x) {
        return (double) (x > 0) - (double) (x < 0);
}

/* One tensor: x[i] (the old values) and its state slices m, v (NULL when
 * the kind has none) become the new values in out, m and v. */
static int step_tensor(const OptimizerParams *p, double lr, const float *x, const double *sum, double data_size,
                       size_t n, float *out, float *m, float *v) {
        const double b1 = p->beta1, b2 = p->beta2, mu = p->momentum, tau = p->tau;

        for (size_t i = 0; i < n; i++) {
                double avg = sum[i] / data_size, old = (double) x[i], delta, step, mi, vi, d2;

                if (!fits_float(avg))
                        return -EBADMSG;
                delta = avg - old;
                switch (p->kind) {
                case OPTIMIZER_FEDAVG:
                        step = lr * delta;
                        break;
                case OPTIMIZER_FEDAVGM:
                        mi = mu * (double) m[i] + delta;
                        if (!fits_float(mi))
                                return -ERANGE;
                        m[i] = (float) mi;
                        step = lr * (double) m[i];
                        break;
                default:
                        d2 = delta * delta;
                        mi = b1 * (double) m[i] + (1.0 - b1) * delta;
                        vi = (double) v[i];
                        if (p->kind == OPTIMIZER_FEDADAM)
                                vi = b2 * vi + (1.0 - b2) * d2;
                        else if (p->kind == OPTIMIZER_FEDYOGI)
                                vi = vi - (1.0 - b2) * d2 * sign(vi - d2);
                        else
                                vi = vi + d2;
                        if (!fits_float(mi) || !fits_float(vi))
                                return -ERANGE;
                        m[i] = (float) mi;
                        v[i] = (float) vi;
                        /* The rounded values: what the next step and a peer that
                         * takes the state over start from. */
                        step = lr * (double) m[i] / (sqrt((double) v[i]) + tau);
                        break;
                }
                if (!fits_float(old + step))
                        return -ERANGE;
                out[i] = (float) (old + step);
        }
        return 0;
}

int optimizer_step(const OptimizerParams *p, const Model *old, const Model *state, const double *sum,
                   double data_size, Model **ret_model, Model **ret_state) {
        _cleanup_(model_freep) Model *next = NULL, *next_state = NULL;
        size_t slots, k = 0;
        OptimizerKind kind;
        double lr;
        int r;

        if (!p || !old || !sum || !ret_model || !ret_state || !(data_size > 0) || !optimizer_kind_to_string(p->kind))
                return -EINVAL;
        slots = optimizer_state_slots(p->kind);
        lr = optimizer_learning_rate(p);

        r = model_new_like(&next, old);
        if (r < 0)
                return r;
        if (slots > 0) {
                /* The state the iteration started from, if it is of this kind. */
                if (state && optimizer_state_check(state, old, &kind) >= 0 && kind == p->kind)
                        r = model_copy(&next_state, state);
                else
                        r = state_new(&next_state, p->kind, old, p->tau);
                if (r < 0)
                        return r;
        }

        for (size_t t = 0; t < old->n_tensors; k += old->tensors[t].size, t++) {
                size_t n = old->tensors[t].size;

                if (optimizer_is_plain_fedavg(p)) {
                        /* The average itself, exactly as aggregate_finish() rounds it. */
                        for (size_t i = 0; i < n; i++) {
                                double avg = sum[k + i] / data_size;

                                if (!fits_float(avg))
                                        return -EBADMSG;
                                next->tensors[t].data[i] = (float) avg;
                        }
                        continue;
                }
                r = step_tensor(p, lr, old->tensors[t].data, sum + k, data_size, n, next->tensors[t].data,
                                slots > 0 ? next_state->tensors[t].data : NULL,
                                slots > 1 ? next_state->tensors[old->n_tensors + t].data : NULL);
                if (r < 0)
                        return r;
        }

        *ret_model = TAKE_PTR(next);
        *ret_state = TAKE_PTR(next_state);
        return 0;
}
