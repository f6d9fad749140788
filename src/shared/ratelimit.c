/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "ratelimit.h"

bool ratelimit_below(RateLimit *rl, uint64_t now_usec, uint64_t *ret_suppressed) {
        if (rl->begin_usec == 0 || now_usec < rl->begin_usec || now_usec - rl->begin_usec >= rl->interval_usec) {
                rl->begin_usec = now_usec ?: 1;
                rl->n = 0;
        }
        if (rl->n >= rl->burst) {
                rl->suppressed++;
                return false;
        }
        rl->n++;
        *ret_suppressed = rl->suppressed;
        rl->suppressed = 0;
        return true;
}
