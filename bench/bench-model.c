/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Writes a model of a given size as a FeatureMapList file, for benchmarks
 * that need something bigger than LeNet-5:
 *     bench-model --floats 11000000 --tensors 8 -o big.fl */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "fl-model-io.h"
#include "log.h"
#include "model.h"
#include "util.h"

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                { "floats", required_argument, NULL, 'n' },
                { "tensors", required_argument, NULL, 't' },
                { "output", required_argument, NULL, 'o' },
                {}
        };
        _cleanup_(model_freep) Model *m = NULL;
        uint64_t floats = 0, tensors = 8;
        const char *out = NULL;
        char names[64][16];
        const char *name_ptrs[64];
        size_t sizes[64];
        int c, r;

        while ((c = getopt_long(argc, argv, "n:t:o:", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        if (safe_atou64(optarg, &floats) < 0 || floats == 0)
                                return log_error("Invalid --floats."), 2;
                        break;
                case 't':
                        if (safe_atou64(optarg, &tensors) < 0 || tensors == 0 || tensors > 64)
                                return log_error("Invalid --tensors (1..64)."), 2;
                        break;
                case 'o':
                        out = optarg;
                        break;
                default:
                        return 2;
                }
        if (!out || floats < tensors)
                return log_error("Usage: bench-model --floats N [--tensors K] -o FILE"), 2;

        for (size_t i = 0; i < tensors; i++) {
                snprintf(names[i], sizeof names[i], "layer%zu.weight", i);
                name_ptrs[i] = names[i];
                sizes[i] = floats / tensors + (i < floats % tensors);
        }
        r = model_new(&m, name_ptrs, sizes, tensors);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate the model: %m"), 1;
        for (size_t i = 0; i < m->n_tensors; i++)
                for (size_t k = 0; k < m->tensors[i].size; k++)
                        m->tensors[i].data[k] = (float) ((k * 2654435761u + i) % 2001) / 1000.0f - 1.0f;
        r = fl_model_save_file(out, m);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", out), 1;
        return 0;
}
