/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

/* Tensor data is 64-byte aligned so that BLAS kernels and the aggregation
 * loops start on a cache line. */
#define MODEL_ALIGN 64

static int tensor_alloc(Tensor *t, const char *name, size_t size) {
        void *p;

        if (isempty(name) || size == 0)
                return -EINVAL;
        if (size > SIZE_MAX / sizeof(float))
                return -EOVERFLOW;

        t->name = strdup(name);
        if (!t->name)
                return -ENOMEM;
        if (posix_memalign(&p, MODEL_ALIGN, size * sizeof(float)) != 0)
                return -ENOMEM;
        t->data = p;
        t->size = size;
        memset(t->data, 0, size * sizeof(float));
        return 0;
}

static int cmp_name(const void *a, const void *b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Names must be unique, or model_find() would be ambiguous. Sorted, so that
 * a model read from the network with many tensors costs n log n. */
static int names_unique(const char *const *names, size_t n) {
        _cleanup_free_ const char **sorted = NULL;

        if (n < 2)
                return 0;
        sorted = malloc(n * sizeof(char *));
        if (!sorted)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (isempty(names[i]))
                        return -EINVAL;
                sorted[i] = names[i];
        }
        qsort(sorted, n, sizeof(char *), cmp_name);
        for (size_t i = 1; i < n; i++)
                if (streq(sorted[i - 1], sorted[i]))
                        return -EINVAL;
        return 0;
}

Model *model_free(Model *m) {
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_tensors; i++) {
                free(m->tensors[i].name);
                free(m->tensors[i].data);
        }
        free(m->tensors);
        free(m);
        return NULL;
}

int model_new(Model **ret, const char *const *names, const size_t *sizes, size_t n) {
        _cleanup_(model_freep) Model *m = NULL;
        int r;

        if (!ret || (n > 0 && (!names || !sizes)))
                return -EINVAL;

        r = names_unique(names, n);
        if (r < 0)
                return r;

        m = calloc(1, sizeof(Model));
        if (!m)
                return -ENOMEM;
        if (n > 0) {
                m->tensors = calloc(n, sizeof(Tensor));
                if (!m->tensors)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                /* Counted before the allocation so that model_free() releases
                 * whatever a failed tensor_alloc() left behind. */
                m->n_tensors = i + 1;
                r = tensor_alloc(&m->tensors[i], names[i], sizes[i]);
                if (r < 0)
                        return r;
        }

        *ret = TAKE_PTR(m);
        return 0;
}

int model_new_like(Model **ret, const Model *shape) {
        _cleanup_free_ const char **names = NULL;
        _cleanup_free_ size_t *sizes = NULL;

        if (!ret || !shape)
                return -EINVAL;
        if (shape->n_tensors > 0) {
                names = calloc(shape->n_tensors, sizeof(char *));
                sizes = calloc(shape->n_tensors, sizeof(size_t));
                if (!names || !sizes)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < shape->n_tensors; i++) {
                names[i] = shape->tensors[i].name;
                sizes[i] = shape->tensors[i].size;
        }
        return model_new(ret, names, sizes, shape->n_tensors);
}

int model_copy(Model **ret, const Model *m) {
        _cleanup_(model_freep) Model *c = NULL;
        int r;

        r = model_new_like(&c, m);
        if (r < 0)
                return r;
        for (size_t i = 0; i < m->n_tensors; i++)
                memcpy(c->tensors[i].data, m->tensors[i].data, m->tensors[i].size * sizeof(float));

        *ret = TAKE_PTR(c);
        return 0;
}

Tensor *model_find(const Model *m, const char *name) {
        if (!m || !name)
                return NULL;
        for (size_t i = 0; i < m->n_tensors; i++)
                if (streq(m->tensors[i].name, name))
                        return &m->tensors[i];
        return NULL;
}

size_t model_total_size(const Model *m) {
        size_t total = 0;

        if (!m)
                return 0;
        for (size_t i = 0; i < m->n_tensors; i++)
                total += m->tensors[i].size;
        return total;
}

bool model_same_shape(const Model *a, const Model *b) {
        if (!a || !b)
                return false;
        if (a->n_tensors != b->n_tensors)
                return false;
        for (size_t i = 0; i < a->n_tensors; i++)
                if (a->tensors[i].size != b->tensors[i].size ||
                    !streq(a->tensors[i].name, b->tensors[i].name))
                        return false;
        return true;
}

#define FNV1A64_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV1A64_PRIME UINT64_C(0x100000001b3)

static uint64_t fnv1a64(uint64_t h, const void *p, size_t n) {
        const uint8_t *b = p;

        for (size_t i = 0; i < n; i++) {
                h ^= b[i];
                h *= FNV1A64_PRIME;
        }
        return h;
}

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model_checksum() hashes floats in host order, which must be little-endian"
#endif

uint64_t model_checksum(const Model *m) {
        uint64_t h = FNV1A64_OFFSET;

        if (!m)
                return h;
        for (size_t i = 0; i < m->n_tensors; i++) {
                const Tensor *t = &m->tensors[i];
                uint64_t size = t->size;

                h = fnv1a64(h, t->name, strlen(t->name) + 1);
                h = fnv1a64(h, &size, sizeof size);
                h = fnv1a64(h, t->data, t->size * sizeof(float));
        }
        return h;
}

char *model_checksum_string(const Model *m, char ret[static MODEL_CHECKSUM_STRING_MAX]) {
        snprintf(ret, MODEL_CHECKSUM_STRING_MAX, "%016" PRIx64, model_checksum(m));
        return ret;
}
