/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "ratelimit.h"
#include "refusals.h"

typedef struct Entry {
        char host[64];
        char reason[160];
        uint64_t last_seen, logged;     /* logged: 0 never */
        unsigned suppressed;
} Entry;

struct Refusals {
        char *what;
        Entry entries[REFUSALS_TRACKED];
        RateLimit lines;                /* over all addresses */
        uint64_t total;
};

int refusals_new(Refusals **ret, const char *what) {
        Refusals *r = calloc(1, sizeof *r);

        if (!r)
                return -ENOMEM;
        r->lines = RATELIMIT_INIT(REFUSALS_INTERVAL_USEC, REFUSALS_BURST);
        r->what = strdup(what);
        if (!r->what) {
                free(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

Refusals *refusals_free(Refusals *r) {
        if (r) {
                free(r->what);
                free(r);
        }
        return NULL;
}

/* The entry of host and reason, or the slot of the one seen longest ago. */
static Entry *entry_get(Refusals *r, const char *host, const char *reason) {
        Entry *oldest = &r->entries[0];

        for (size_t i = 0; i < REFUSALS_TRACKED; i++) {
                Entry *e = &r->entries[i];

                if (e->last_seen > 0 && streq(e->host, host) && streq(e->reason, reason))
                        return e;
                if (e->last_seen < oldest->last_seen)
                        oldest = e;
        }
        *oldest = (Entry) {};
        snprintf(oldest->host, sizeof oldest->host, "%s", host);
        snprintf(oldest->reason, sizeof oldest->reason, "%s", reason);
        return oldest;
}

bool refusals_log(Refusals *r, const char *host, const char *reason, uint64_t now) {
        char field[96], more[96] = "";
        uint64_t others;
        Entry *e;

        r->total++;
        now = MAX(now, (uint64_t) 1);   /* 0 means "never" in an entry */
        e = entry_get(r, host ?: "?", reason ?: "?");
        e->last_seen = now;
        if (e->logged > 0 && now - e->logged < REFUSALS_INTERVAL_USEC) {
                e->suppressed++;
                return false;
        }

        if (!ratelimit_below(&r->lines, now, &others)) {
                e->suppressed++;
                return false;
        }
        if (others > 0)
                log_warning("%" PRIu64 " more refused connections to %s were not logged: too many in a minute.",
                            others, r->what);

        if (e->suppressed > 0)
                snprintf(more, sizeof more, " (%u more from it since the last such line)", e->suppressed);
        snprintf(field, sizeof field, "FL_REFUSED_PEER=%s", e->host);
        log_struct(LOG_WARNING, FIELDS(field), "Refused a connection to %s from %s: %s%s", r->what, e->host,
                   e->reason, more);
        e->logged = now;
        e->suppressed = 0;
        return true;
}

uint64_t refusals_count(const Refusals *r) {
        return r->total;
}
