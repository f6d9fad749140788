/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "conn.h"
#include "scheduler-registry.h"

typedef struct Manager Manager;

/* One TCP connection from a server. Until it registers, the only frame it
 * may send is WIRE_REGISTER; after that heartbeats and FINISH_ACK. Anything
 * else, or anything malformed, closes it: the network is not trusted. */
typedef struct Link {
        Manager *manager;
        Conn *conn;
        Node *node;             /* set once registered */
        struct Link *prev, *next;
} Link;

int link_listen(Manager *m);
Link *link_free(Link *l);
