/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* fl-client plot: the table fl-client train appends to --csv, drawn as a
 * PNG with cairo: test accuracy (left axis, 0-100 %) and test loss (right
 * axis) per iteration. Several runs appended to one file (the iteration
 * number starting over) are drawn as separate lines. */

typedef struct PlotRow {
        uint32_t iteration;
        double accuracy, loss;
} PlotRow;

/* Reads the CSV: a header naming at least iteration, test_accuracy and
 * test_loss (in any order), then one row per line; a row whose accuracy and
 * loss are both empty (not evaluated, --eval-every) is left out. -EBADMSG for anything
 * else, with the line and what is wrong in error. */
int plot_read_csv(const char *path, PlotRow **ret, size_t *ret_n, char *error, size_t error_size);
/* -EINVAL without rows or with a size out of 200..8000 pixels. */
int plot_write_png(const PlotRow *rows, size_t n, const char *title, unsigned width, unsigned height,
                   const char *path);
