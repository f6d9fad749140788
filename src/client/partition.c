/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>
#include <string.h>

#include "partition.h"
#include "rng.h"
#include "util.h"

#define PARTITION_MAX_CLASSES 256
#define PARTITION_MAX_DEVICES 100000

int partition_spec_parse(const char *s, PartitionSpec *ret) {
        const char *a;
        double alpha;

        if (!s || !ret)
                return -EINVAL;
        if (streq(s, "iid")) {
                *ret = (PartitionSpec) { .kind = PARTITION_IID };
                return 0;
        }
        if (!strneq(s, "dirichlet:", strlen("dirichlet:")))
                return -EINVAL;
        a = s + strlen("dirichlet:");
        if (safe_atod(a, &alpha) < 0 || !(alpha > 0.0) || !isfinite(alpha))
                return -EINVAL;
        *ret = (PartitionSpec) { .kind = PARTITION_DIRICHLET, .alpha = alpha };
        return 0;
}

Partition *partition_free(Partition *p) {
        if (!p)
                return NULL;
        free(p->offsets);
        free(p->indices);
        free(p);
        return NULL;
}

/* owner[i] is the device of example i; lays the indices out per device. */
static int partition_from_owners(Partition *p, const uint32_t *owner, size_t n) {
        _cleanup_free_ size_t *fill = NULL;

        fill = calloc(p->n_devices, sizeof(size_t));
        if (!fill)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                p->offsets[owner[i] + 1]++;
        for (size_t k = 0; k < p->n_devices; k++)
                p->offsets[k + 1] += p->offsets[k];
        /* Ascending per device, since i ascends. */
        for (size_t i = 0; i < n; i++)
                p->indices[p->offsets[owner[i]] + fill[owner[i]]++] = (uint32_t) i;
        return 0;
}

static int split_iid(Rng *rng, uint32_t *owner, size_t n, size_t k) {
        _cleanup_free_ uint32_t *perm = NULL;
        size_t base = n / k, extra = n % k, at = 0;

        perm = malloc(n * sizeof(uint32_t));
        if (!perm)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                perm[i] = (uint32_t) i;
        rng_shuffle_u32(rng, perm, n);
        for (size_t d = 0; d < k; d++) {
                size_t size = base + (d < extra);

                for (size_t j = 0; j < size; j++)
                        owner[perm[at++]] = (uint32_t) d;
        }
        return 0;
}

static int split_dirichlet(Rng *rng, double alpha, const uint8_t *labels, size_t n, size_t n_classes,
                           uint32_t *owner, size_t k) {
        _cleanup_free_ uint32_t *members = NULL;
        _cleanup_free_ double *logp = NULL;
        _cleanup_free_ size_t *count = NULL;

        members = malloc(n * sizeof(uint32_t));
        logp = malloc(k * sizeof(double));
        count = calloc(k, sizeof(size_t));
        if (!members || !logp || !count)
                return -ENOMEM;

        for (size_t c = 0; c < n_classes; c++) {
                size_t m = 0, start = 0;
                double max = -INFINITY, sum = 0.0, cum = 0.0;

                for (size_t i = 0; i < n; i++)
                        if (labels[i] == c)
                                members[m++] = (uint32_t) i;
                /* Drawn even for an empty class, so that one class's size
                 * does not shift every later class's draws. */
                for (size_t d = 0; d < k; d++) {
                        logp[d] = rng_log_gamma_variate(rng, alpha);
                        max = MAX(max, logp[d]);
                }
                for (size_t d = 0; d < k; d++)
                        sum += exp(logp[d] - max);
                rng_shuffle_u32(rng, members, m);

                for (size_t d = 0; d < k; d++) {
                        size_t end;

                        cum += exp(logp[d] - max) / sum;
                        end = d + 1 == k ? m : MIN(m, (size_t) llround(cum * (double) m));
                        end = MAX(end, start);
                        for (size_t j = start; j < end; j++)
                                owner[members[j]] = (uint32_t) d;
                        count[d] += end - start;
                        start = end;
                }
        }

        /* Every device must have something to train on: an empty one takes
         * one example (the highest index, a deterministic choice) from the
         * currently largest device. */
        for (size_t d = 0; d < k; d++) {
                size_t largest = 0;

                if (count[d] > 0)
                        continue;
                for (size_t e = 1; e < k; e++)
                        if (count[e] > count[largest])
                                largest = e;
                for (size_t i = n; i > 0; i--)
                        if (owner[i - 1] == largest) {
                                owner[i - 1] = (uint32_t) d;
                                break;
                        }
                count[largest]--;
                count[d]++;
        }
        return 0;
}

int partition_new(Partition **ret, const PartitionSpec *spec, const uint8_t *labels, size_t n,
                  size_t n_classes, size_t n_devices, uint64_t seed) {
        _cleanup_(partition_freep) Partition *p = NULL;
        _cleanup_free_ uint32_t *owner = NULL;
        Rng rng;
        int r;

        if (!ret || !spec || !labels)
                return -EINVAL;
        if (n_devices == 0 || n_devices > PARTITION_MAX_DEVICES || n < n_devices || n > UINT32_MAX)
                return -EINVAL;
        if (n_classes == 0 || n_classes > PARTITION_MAX_CLASSES)
                return -EINVAL;
        if (spec->kind == PARTITION_DIRICHLET && !(spec->alpha > 0.0 && isfinite(spec->alpha)))
                return -EINVAL;
        if (spec->kind != PARTITION_IID && spec->kind != PARTITION_DIRICHLET)
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (labels[i] >= n_classes)
                        return -EINVAL;

        p = calloc(1, sizeof(Partition));
        if (!p)
                return -ENOMEM;
        p->n_devices = n_devices;
        p->offsets = calloc(n_devices + 1, sizeof(size_t));
        p->indices = malloc(n * sizeof(uint32_t));
        owner = malloc(n * sizeof(uint32_t));
        if (!p->offsets || !p->indices || !owner)
                return -ENOMEM;

        rng_seed(&rng, seed);
        if (spec->kind == PARTITION_IID)
                r = split_iid(&rng, owner, n, n_devices);
        else
                r = split_dirichlet(&rng, spec->alpha, labels, n, n_classes, owner, n_devices);
        if (r < 0)
                return r;
        r = partition_from_owners(p, owner, n);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(p);
        return 0;
}
