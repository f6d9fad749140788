/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "admissions.h"

void admissions_init(Admissions *a) {
        *a = (Admissions) {};
}

void admissions_clear(Admissions *a) {
        for (size_t i = 0; i < a->n_slots; i++)
                free(a->slots[i].fl_id);
        free(a->slots);
        *a = (Admissions) {};
}

static uint64_t hash_string(const char *s) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);      /* FNV-1a */

        for (; *s; s++) {
                h ^= (unsigned char) *s;
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

static Admission *slot_for(Admission *slots, size_t n_slots, const char *fl_id) {
        size_t i = hash_string(fl_id) & (n_slots - 1);

        while (slots[i].fl_id && !streq(slots[i].fl_id, fl_id))
                i = (i + 1) & (n_slots - 1);
        return &slots[i];
}

Admission *admissions_find(const Admissions *a, const char *fl_id) {
        Admission *s;

        if (a->n_slots == 0)
                return NULL;
        s = slot_for(a->slots, a->n_slots, fl_id);
        return s->fl_id ? s : NULL;
}

static int admissions_grow(Admissions *a) {
        size_t n = a->n_slots ? a->n_slots * 2 : 64;
        Admission *slots;

        if (n > SIZE_MAX / sizeof *slots)
                return -ENOMEM;
        slots = calloc(n, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        for (size_t i = 0; i < a->n_slots; i++)
                if (a->slots[i].fl_id)
                        *slot_for(slots, n, a->slots[i].fl_id) = a->slots[i];
        free(a->slots);
        a->slots = slots;
        a->n_slots = n;
        return 0;
}

int admissions_add(Admissions *a, const char *fl_id, uint32_t data_size, Admission **ret) {
        Admission *s;
        int r;

        s = admissions_find(a, fl_id);
        if (s) {
                if (ret)
                        *ret = s;
                return -EEXIST;
        }
        /* Keep the load under 1/2 so probes stay short. */
        if ((a->n_entries + 1) * 2 > a->n_slots) {
                r = admissions_grow(a);
                if (r < 0)
                        return r;
        }
        s = slot_for(a->slots, a->n_slots, fl_id);
        s->fl_id = strdup(fl_id);
        if (!s->fl_id)
                return -ENOMEM;
        s->data_size = data_size;
        s->updated = s->confirmed = false;
        s->owner = 0;
        s->digest = 0;
        a->n_entries++;
        if (ret)
                *ret = s;
        return 0;
}
