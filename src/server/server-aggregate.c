/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "digest.h"
#include "server-aggregate.h"

/* Doubles hold every integer up to 2^53 exactly: the data_size total and the
 * update count travel through the all-reduce as doubles. */
#define AGGREGATE_COUNT_MAX (UINT64_C(1) << 53)

Aggregate *aggregate_free(Aggregate *a) {
        if (!a)
                return NULL;
        for (size_t i = 0; i < a->n_tensors; i++)
                free(a->names[i]);
        free(a->names);
        free(a->sizes);
        free(a->offsets);
        free(a->by_name);
        free(a->sum);
        free(a);
        return NULL;
}

/* qsort_r() keeps the names out of a global. */
static int cmp_by_name(const void *x, const void *y, void *userdata) {
        char *const *names = userdata;

        return strcmp(names[*(const size_t *) x], names[*(const size_t *) y]);
}

int aggregate_new(Aggregate **ret, const Model *shape) {
        _cleanup_(aggregate_freep) Aggregate *a = NULL;
        size_t n, total = 0;

        if (!ret || !shape || shape->n_tensors == 0)
                return -EINVAL;
        n = shape->n_tensors;

        a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->names = calloc(n, sizeof(char *));
        a->sizes = calloc(n, sizeof(size_t));
        a->offsets = calloc(n, sizeof(size_t));
        a->by_name = calloc(n, sizeof(size_t));
        if (!a->names || !a->sizes || !a->offsets || !a->by_name)
                return -ENOMEM;
        a->n_tensors = n;
        for (size_t i = 0; i < n; i++) {
                a->names[i] = strdup(shape->tensors[i].name);
                if (!a->names[i])
                        return -ENOMEM;
                a->sizes[i] = shape->tensors[i].size;
                a->offsets[i] = total;
                a->by_name[i] = i;
                if (a->sizes[i] > SIZE_MAX / sizeof(double) - total)
                        return -EOVERFLOW;
                total += a->sizes[i];
        }
        qsort_r(a->by_name, n, sizeof(size_t), cmp_by_name, a->names);
        a->total = total;
        a->sum = calloc(total, sizeof(double));
        if (!a->sum)
                return -ENOMEM;

        *ret = TAKE_PTR(a);
        return 0;
}

void aggregate_reset(Aggregate *a, uint32_t iteration) {
        memset(a->sum, 0, a->total * sizeof(double));
        a->data_size = 0;
        a->updates = 0;
        a->iteration = iteration;
}

static ssize_t find_tensor(const Aggregate *a, const char *name) {
        size_t lo = 0, hi = a->n_tensors;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(name, a->names[a->by_name[mid]]);

                if (c == 0)
                        return (ssize_t) a->by_name[mid];
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return -1;
}

/* Blocks of a fixed length: GCC's cost model at -O2 vectorizes a loop only
 * when its trip count needs no scalar epilogue, so the kernels run over
 * AGGREGATE_BLOCK floats at a time and finish the tail plainly. */
#define AGGREGATE_BLOCK 16

/* Branch-free: exponent all ones is Inf or NaN. */
static bool floats_finite(const float *p, size_t n) {
        uint32_t bad = 0;
        size_t i = 0;

        for (; i + AGGREGATE_BLOCK <= n; i += AGGREGATE_BLOCK) {
                uint32_t u[AGGREGATE_BLOCK];

                memcpy(u, p + i, sizeof u);
                for (size_t k = 0; k < AGGREGATE_BLOCK; k++)
                        bad |= (uint32_t) ((u[k] & UINT32_C(0x7f800000)) == UINT32_C(0x7f800000));
        }
        for (; i < n; i++) {
                uint32_t u;

                memcpy(&u, &p[i], sizeof u);
                bad |= (uint32_t) ((u & UINT32_C(0x7f800000)) == UINT32_C(0x7f800000));
        }
        return bad == 0;
}

/* sum += (double) p, in blocks (see AGGREGATE_BLOCK). */
static void add_floats(double *restrict s, const float *restrict p, size_t n) {
        size_t i = 0;

        for (; i + AGGREGATE_BLOCK <= n; i += AGGREGATE_BLOCK)
                for (size_t k = 0; k < AGGREGATE_BLOCK; k++)
                        s[i + k] += (double) p[i + k];
        for (; i < n; i++)
                s[i] += (double) p[i];
}

/* Names from the network are printed bounded, in the reason a device reads. */
#define NAME_SHOWN 48

int aggregate_check(const Aggregate *a, const FlFeatureMap *maps, size_t n, const float **ordered,
                    char reason[static FL_REASON_MAX]) {
        if (!a || (!maps && n > 0) || !ordered)
                return -EINVAL;

        for (size_t i = 0; i < a->n_tensors; i++)
                ordered[i] = NULL;
        if (n != a->n_tensors) {
                snprintf(reason, FL_REASON_MAX, "The update has %zu weights, the model %zu.", n, a->n_tensors);
                return -EBADMSG;
        }
        for (size_t i = 0; i < n; i++) {
                const char *name = maps[i].name ?: "";
                ssize_t t = find_tensor(a, name);

                if (t < 0) {
                        snprintf(reason, FL_REASON_MAX, "The model has no weight named '%.*s'.", NAME_SHOWN, name);
                        return -EBADMSG;
                }
                if (ordered[t]) {
                        snprintf(reason, FL_REASON_MAX, "The weight '%.*s' appears twice.", NAME_SHOWN, name);
                        return -EBADMSG;
                }
                if (maps[i].n != a->sizes[t] || !maps[i].data) {
                        snprintf(reason, FL_REASON_MAX, "The weight '%.*s' has %zu values, the model %zu.",
                                 NAME_SHOWN, name, maps[i].n, a->sizes[t]);
                        return -EBADMSG;
                }
                if (!floats_finite(maps[i].data, maps[i].n)) {
                        snprintf(reason, FL_REASON_MAX, "The weight '%.*s' holds NaN or Inf.", NAME_SHOWN, name);
                        return -EBADMSG;
                }
                ordered[t] = maps[i].data;
        }
        /* n == n_tensors and no name twice: every tensor is there. */
        return 0;
}

void aggregate_add_weights(Aggregate *a, const float *const *ordered) {
        for (size_t t = 0; t < a->n_tensors; t++)
                add_floats(a->sum + a->offsets[t], ordered[t], a->sizes[t]);
}

int aggregate_count(Aggregate *a, uint32_t data_size) {
        if (!a || data_size == 0)
                return -EINVAL;
        if (a->data_size + data_size > AGGREGATE_COUNT_MAX || a->updates == UINT32_MAX)
                return -EOVERFLOW;
        a->data_size += data_size;
        a->updates++;
        return 0;
}

int aggregate_add_checked(Aggregate *a, const float *const *ordered, uint32_t data_size) {
        if (!a || !ordered || data_size == 0)
                return -EINVAL;
        if (a->data_size + data_size > AGGREGATE_COUNT_MAX || a->updates == UINT32_MAX)
                return -EOVERFLOW;

        for (size_t t = 0; t < a->n_tensors; t++)
                add_floats(a->sum + a->offsets[t], ordered[t], a->sizes[t]);
        a->data_size += data_size;
        a->updates++;
        return 0;
}

int aggregate_add(Aggregate *a, const FlFeatureMap *maps, size_t n, uint32_t data_size,
                  char reason[static FL_REASON_MAX]) {
        _cleanup_free_ const float **ordered = NULL;
        int r;

        if (!a)
                return -EINVAL;
        ordered = calloc(a->n_tensors, sizeof(float *));
        if (!ordered)
                return -ENOMEM;
        r = aggregate_check(a, maps, n, ordered, reason);
        if (r < 0)
                return r;
        return aggregate_add_checked(a, ordered, data_size);
}

int aggregate_export(const Aggregate *a, double **ret, size_t *ret_n) {
        double *v;

        if (!a || !ret || !ret_n)
                return -EINVAL;
        if (a->total > SIZE_MAX / sizeof(double) - 2)
                return -EOVERFLOW;
        v = malloc((a->total + 2) * sizeof(double));
        if (!v)
                return -ENOMEM;
        memcpy(v, a->sum, a->total * sizeof(double));
        v[a->total] = (double) a->data_size;
        v[a->total + 1] = (double) a->updates;

        *ret = v;
        *ret_n = a->total + 2;
        return 0;
}

static bool is_count(double d, double max) {
        return isfinite(d) && d >= 0 && d <= max && d == floor(d);
}

int aggregate_sum_counts(const Model *shape, const double *vec, size_t n, uint64_t *ret_data_size,
                         uint32_t *ret_updates) {
        size_t total;
        double data_size, updates;

        if (!shape || !vec)
                return -EINVAL;
        total = model_total_size(shape);
        if (n != total + 2)
                return -EBADMSG;
        data_size = vec[total];
        updates = vec[total + 1];
        if (!is_count(data_size, (double) AGGREGATE_COUNT_MAX) || !is_count(updates, (double) UINT32_MAX))
                return -EBADMSG;
        if (ret_data_size)
                *ret_data_size = (uint64_t) data_size;
        if (ret_updates)
                *ret_updates = (uint32_t) updates;
        return data_size == 0 ? -ENODATA : 0;
}

int aggregate_finish(const Model *shape, const double *vec, size_t n, Model **ret, uint64_t *ret_data_size,
                     uint32_t *ret_updates) {
        _cleanup_(model_freep) Model *m = NULL;
        size_t k = 0;
        uint64_t count;
        double data_size;
        int r;

        if (!shape || !vec || !ret)
                return -EINVAL;
        r = aggregate_sum_counts(shape, vec, n, &count, ret_updates);
        if (ret_data_size && r != -EBADMSG)
                *ret_data_size = count;
        if (r < 0)
                return r;
        data_size = (double) count;

        r = model_new_like(&m, shape);
        if (r < 0)
                return r;
        for (size_t t = 0; t < m->n_tensors; t++) {
                float *d = m->tensors[t].data;

                for (size_t i = 0; i < m->tensors[t].size; i++, k++) {
                        double v = vec[k] / data_size;

                        /* Floats from peers: a NaN, or a mean no float can hold, is no honest sum. */
                        if (!isfinite(v) || fabs(v) > FLT_MAX)
                                return -EBADMSG;
                        d[i] = (float) v;
                }
        }

        *ret = TAKE_PTR(m);
        return 0;
}

uint64_t aggregate_digest(const Aggregate *a, const float *const *ordered) {
        Digest d;

        digest_init(&d);
        for (size_t i = 0; i < a->n_tensors; i++) {
                uint64_t size = a->sizes[i];

                digest_add(&d, &size, sizeof size);
                digest_add(&d, ordered[i], a->sizes[i] * sizeof(float));
        }
        return digest_final(&d);
}
