/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "conn.h"
#include "server-members.h"

/* The server's TCP link to the scheduler (wire-protocol.h): registers,
 * heartbeats, follows the membership, and reconnects with back-off whenever
 * the link drops, for as long as the server runs. */

typedef struct Manager Manager;

typedef struct ServerLink {
        Manager *manager;
        Conn *conn;
        sd_event_source *reconnect_timer;
        sd_event_source *heartbeat_timer;
        sd_event_source *finish_timer;

        uint64_t backoff_usec;          /* base of the next reconnect delay */
        uint64_t heartbeat_usec;
        uint64_t idle_usec;

        bool registered;                /* on the current connection */
        bool has_rank;                  /* registered at least once */
        bool refused;
        bool finishing;
        bool leaving;                   /* named in a scale-in: WIRE_FINISH ends it */
        uint32_t rank;
        ServerMembers view;             /* _CLUSTER_STATE_INVALID until the first WIRE_MEMBERS */
} ServerLink;

#define LINK_BACKOFF_MIN_USEC (100U * USEC_PER_MSEC)
#define LINK_BACKOFF_MAX_USEC (5U * USEC_PER_SEC)
/* How long the FINISH_ACK may take to leave before the server exits anyway. */
#define LINK_FINISH_TIMEOUT_USEC (2U * USEC_PER_SEC)

int server_link_new(ServerLink **ret, Manager *m);
ServerLink *server_link_free(ServerLink *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(ServerLink *, server_link_free);
/* Connects now; failures are retried with back-off, never returned. */
void server_link_start(ServerLink *l);
/* Closes the link without a FINISH: the scheduler sees the server leave. */
void server_link_stop(ServerLink *l);
/* Drops the connection and registers again after the back-off. */
void server_link_reconnect(ServerLink *l);

/* Pure helpers, exposed for the tests. */
uint64_t server_link_backoff_next(uint64_t usec);
/* The delay actually waited: usec scaled into [75%, 125%) by random. */
uint64_t server_link_jitter(uint64_t usec, uint32_t random);
