/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* fl-client train's live line on a terminal: the iteration, its phase, the
 * devices done and the time since the iteration began, redrawn in place
 * ("\r" and erase-line) and erased before each table row. Quiet (every call
 * a no-op) when the output is not a terminal, so that pipes and files get
 * exactly the table. */

typedef struct Progress {
        FILE *f;                        /* NULL: quiet */
        int32_t iteration;              /* -1: not known yet */
        uint64_t start_usec;
        bool shown;
} Progress;

/* Live on f if it is a terminal (and TERM is not "dumb"). */
void progress_init(Progress *p, FILE *f);
void progress_begin(Progress *p);
void progress_set_iteration(Progress *p, int32_t iteration);
/* "iteration 3: training 5/8 devices, 2.4 s"; total 0 leaves the count out. */
void progress_show(Progress *p, const char *phase, size_t done, size_t total);
/* Erases the line, so that whatever is printed next starts clean. */
void progress_clear(Progress *p);
/* The line as progress_show() draws it, without the terminal codes. */
int progress_format(char *buf, size_t size, int32_t iteration, const char *phase, size_t done, size_t total,
                    uint64_t elapsed_usec);
