/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"
#include "util.h"

/* The devices of one iteration, by fl_id: an open-addressing hash table, so
 * that admission and update checks stay O(1) with millions of devices.
 *
 * The scheduler holds every admitted device: whether its update is counted,
 * which server holds it (owner, an index its Iteration interns node ids
 * to), and the digest of what was sent. A server holds one entry per update
 * it took in this iteration: digest, and updated once the update is in its
 * running sum. */

typedef struct Admission {
        char *fl_id;
        uint32_t data_size;
        bool updated;
        bool confirmed;                 /* scheduler: its owner re-announced it since registering */
        uint16_t owner;                 /* scheduler: 1 + index of the holding server, 0 = none */
        uint64_t digest;                /* aggregate_digest() of the update; 0 = none yet */
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

