/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "server-freshness.h"
#include "util.h"

int request_freshness_check(uint32_t window_ms, const char *timestamp, uint64_t now_ms, char *reason, size_t size) {
        uint64_t ts, diff;

        if (window_ms == 0)
                return 0;
        if (isempty(timestamp)) {
                snprintf(reason, size, "The request has no timestamp; this server needs one within "
                         "replay_attack_time_diff (%" PRIu32 " ms) of its clock.", window_ms);
                return -ESTALE;
        }
        /* Digits only: no sign, no blanks, no fraction, nothing after. */
        if (strspn(timestamp, "0123456789") != strlen(timestamp) || safe_atou64(timestamp, &ts) < 0) {
                snprintf(reason, size, "The request's timestamp '%.24s' is not a number of milliseconds.", timestamp);
                return -ESTALE;
        }
        diff = ts > now_ms ? ts - now_ms : now_ms - ts;
        if (diff > window_ms) {
                snprintf(reason, size, "The request's timestamp is %" PRIu64 " ms %s the server's clock, more than "
                         "replay_attack_time_diff (%" PRIu32 " ms) allows.", diff,
                         ts > now_ms ? "ahead of" : "behind", window_ms);
                return -ESTALE;
        }
        return 0;
}
