/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client-progress.h"
#include "util.h"

#define ERASE_LINE "\r\033[K"

void progress_init(Progress *p, FILE *f) {
        const char *term = getenv("TERM");
        bool live = f && isatty(fileno(f)) && !(term && streq(term, "dumb"));

        *p = (Progress) { .f = live ? f : NULL, .iteration = -1 };
}

void progress_begin(Progress *p) {
        p->start_usec = now_usec(CLOCK_MONOTONIC);
        p->iteration = -1;
}

void progress_set_iteration(Progress *p, int32_t iteration) {
        p->iteration = iteration;
}

int progress_format(char *buf, size_t size, int32_t iteration, const char *phase, size_t done, size_t total,
                    uint64_t elapsed_usec) {
        char it[32], count[64] = "";

        if (iteration >= 0)
                snprintf(it, sizeof it, "iteration %" PRIi32, iteration);
        else
                snprintf(it, sizeof it, "next iteration");
        if (total > 0)
                snprintf(count, sizeof count, " %zu/%zu devices", done, total);
        return snprintf(buf, size, "%s: %s%s, %.1f s", it, phase, count, (double) elapsed_usec / USEC_PER_SEC);
}

void progress_show(Progress *p, const char *phase, size_t done, size_t total) {
        char line[160];

        if (!p->f)
                return;
        (void) progress_format(line, sizeof line, p->iteration, phase, done, total,
                               now_usec(CLOCK_MONOTONIC) - p->start_usec);
        fputs(ERASE_LINE, p->f);
        fputs(line, p->f);
        fflush(p->f);
        p->shown = true;
}

void progress_clear(Progress *p) {
        if (!p->f || !p->shown)
                return;
        fputs(ERASE_LINE, p->f);
        fflush(p->f);
        p->shown = false;
}
