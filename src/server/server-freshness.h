/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* The freshness check of device requests (replay_attack_time_diff, in ms,
 * MindSpore's name; 0: off). MindSpore clients put the time they sent a
 * request in its "timestamp", decimal Unix milliseconds: with the option
 * set, a request whose timestamp is further than that from the server's
 * clock, either way, is refused with RequestError, and so is one without a
 * timestamp or with one that is not such a number - a replayed request
 * must not pass for want of one.
 *
 * Returns 0 when the request may go on (or the check is off), -ESTALE with
 * the reason for the device otherwise. */
int request_freshness_check(uint32_t window_ms, const char *timestamp, uint64_t now_ms, char *reason, size_t size);
