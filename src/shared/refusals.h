/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* The journal lines for refused connections (a peer without the cluster's
 * certificate or secret, a clear-text client on a TLS port): one warning per
 * peer address and reason, then at most one per REFUSALS_INTERVAL_USEC for
 * it, saying how many were not logged meanwhile; and over all addresses at
 * most REFUSALS_BURST lines per interval, so that a flood from many
 * addresses cannot fill the journal either. */

#define REFUSALS_INTERVAL_USEC (60U * USEC_PER_SEC)
#define REFUSALS_BURST 10U
#define REFUSALS_TRACKED 64U

typedef struct Refusals Refusals;

/* what: the port, as log lines name it ("the scheduler port"). */
int refusals_new(Refusals **ret, const char *what);
Refusals *refusals_free(Refusals *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(Refusals *, refusals_free);

/* Records a refusal; returns true when it was logged. now: CLOCK_MONOTONIC. */
bool refusals_log(Refusals *r, const char *host, const char *reason, uint64_t now);
/* Refusals seen in total (for tests and status lines). */
uint64_t refusals_count(const Refusals *r);
