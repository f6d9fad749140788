/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* Splitting a training set among K simulated devices.
 *   iid            shuffled, then cut into K parts whose sizes differ by at
 *                  most one;
 *   dirichlet:A    for every class, proportions p ~ Dirichlet(A, ..., A)
 *                  over the K devices, and the class's (shuffled) examples
 *                  cut by the cumulative proportions (Hsu et al. 2019). A
 *                  small A (0.1) gives each device few classes; a large one
 *                  (100) is close to iid.
 * Deterministic from the seed. Every device gets at least one example: an
 * empty device takes one from the largest (needs N >= K). */

typedef enum PartitionKind {
        PARTITION_IID,
        PARTITION_DIRICHLET,
} PartitionKind;

typedef struct PartitionSpec {
        PartitionKind kind;
        double alpha;           /* dirichlet only, finite and > 0 */
} PartitionSpec;

typedef struct Partition {
        size_t n_devices;
        size_t *offsets;        /* n_devices + 1; device k owns indices[offsets[k] .. offsets[k+1]) */
        uint32_t *indices;      /* offsets[n_devices] example indices, ascending per device */
} Partition;

/* "iid" or "dirichlet:ALPHA"; -EINVAL otherwise. */
int partition_spec_parse(const char *s, PartitionSpec *ret);

/* labels[n] are the classes (< n_classes) of the n examples. */
int partition_new(Partition **ret, const PartitionSpec *spec, const uint8_t *labels, size_t n,
                  size_t n_classes, size_t n_devices, uint64_t seed);
Partition *partition_free(Partition *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Partition *, partition_free);

static inline const uint32_t *partition_device(const Partition *p, size_t k, size_t *ret_n) {
        *ret_n = p->offsets[k + 1] - p->offsets[k];
        return p->indices + p->offsets[k];
}
