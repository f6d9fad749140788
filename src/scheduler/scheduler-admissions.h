/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"
#include "util.h"

/* The devices admitted in one iteration, by fl_id: an open-addressing hash
 * table, so that admission and update checks stay O(1) with millions of
 * devices. Only the scheduler holds it; servers ask. */


typedef struct Admission {
        char *fl_id;
        uint32_t data_size;
        bool updated;
} Admission;

typedef struct Admissions {
        Admission *slots;
        size_t n_slots;         /* a power of two, or 0 */
        size_t n_entries;
} Admissions;

void admissions_init(Admissions *a);
void admissions_clear(Admissions *a);

Admission *admissions_find(const Admissions *a, const char *fl_id);
/* -EEXIST if present (*ret then points to it). */
int admissions_add(Admissions *a, const char *fl_id, uint32_t data_size, Admission **ret);

