/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* At most burst events per interval, for log lines a peer can cause: a
 * flood of bad requests must not fill the journal. The events let through
 * after a quiet spell learn how many were held back meanwhile. */
typedef struct RateLimit {
        uint64_t interval_usec;
        unsigned burst;
        uint64_t begin_usec;
        unsigned n;                     /* events in the current interval */
        uint64_t suppressed;            /* since the last one let through */
} RateLimit;

#define RATELIMIT_INIT(interval, burst_) ((RateLimit) { .interval_usec = (interval), .burst = (burst_) })

/* True when this event may be logged; *ret_suppressed is then the number of
 * events refused since the previous one that was (0 mostly). */
bool ratelimit_below(RateLimit *rl, uint64_t now_usec, uint64_t *ret_suppressed);
