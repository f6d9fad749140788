/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "http-client.h"
#include "model.h"
#include "server-members.h"
#include "server-model.h"

/* Model sync (wire-protocol.h, "Elastic scaling"): every WIRE_ITERATION names
 * the model the cluster last committed, and the server optimizer's state
 * that goes with it. A server whose own model or state differs (it joined
 * by scale-out, was down while an iteration committed, lost its state
 * directory) answers devices with the safemode text, takes the model from
 * a peer (GET /model on the peer's device port, peers tried in rank order,
 * with back-off) and its state (GET /model/state?iteration=N from the same
 * peer), checks both checksums against the announced ones, checkpoints and
 * serves them, and tells the scheduler WIRE_SYNCED. A server in sync says
 * WIRE_SYNCED too, once per announced model and connection. */

typedef struct Manager Manager;

typedef enum SyncVerdict {
        SYNC_IN_SYNC,           /* this server holds the cluster's model */
        SYNC_RELABEL,           /* the same bytes, recorded under another iteration */
        SYNC_FETCH,             /* another model: take it from a peer */
        SYNC_NO_MODEL,          /* no model here, and the cluster's initial one cannot be checked */
} SyncVerdict;

typedef struct ServerSync {
        Manager *manager;
        HttpClient *http;
        HttpGet *get;                   /* the download running, if any */
        sd_event_source *retry_timer;

        /* The cluster's model, as the scheduler last announced it; announced
         * is false until then, and with a scheduler that does not name it.
         * With it the checksum of the optimizer state that goes with it
         * (has_state false: not announced, not compared). */
        bool announced;
        uint32_t model_iteration;
        char model_checksum[MODEL_CHECKSUM_STRING_MAX];     /* "": the initial model */
        bool has_state;
        char state_checksum[MODEL_CHECKSUM_STRING_MAX];     /* "": none */
        /* A model taken from a peer, checked, while its state is fetched. */
        Model *fetched;
        size_t fetched_size;

        bool in_sync;                   /* the rounds may serve devices */
        bool logged;                    /* the state of this target was logged */
        bool waiting_for_peers;         /* no peer to ask: retried on the next member list */
        unsigned attempt;               /* downloads tried for this target */
        uint64_t backoff_usec;
        uint32_t peer_rank;             /* the peer asked last, for log lines */
        char peer_node_id[NODE_ID_MAX];
        char peer_address[64];          /* and where its state is asked for */
        uint32_t peer_port;

        bool reported;                  /* WIRE_SYNCED sent for this target on this connection */
        uint32_t reported_iteration;
        char reported_checksum[MODEL_CHECKSUM_STRING_MAX];
        char reported_state_checksum[MODEL_CHECKSUM_STRING_MAX];
} ServerSync;

#define SYNC_GET_TIMEOUT_USEC (120U * USEC_PER_SEC)
#define SYNC_BACKOFF_MIN_USEC (250U * USEC_PER_MSEC)
#define SYNC_BACKOFF_MAX_USEC (30U * USEC_PER_SEC)
#define SYNC_URL_MAX 128
#define SYNC_BUSY_REASON "This server is taking the cluster's model from a peer; ask another server."

int server_sync_init(ServerSync *s, Manager *m);
void server_sync_done(ServerSync *s);

/* After every WIRE_ITERATION (the model it names is in m->training.current). */
void manager_sync_on_iteration(Manager *m);
/* After every member list: a server waiting for a peer tries again. */
void manager_sync_members_changed(Manager *m);
/* The link is gone: the next connection is told WIRE_SYNCED again. */
void manager_sync_link_lost(Manager *m);
/* True when this server holds the cluster's model (WIRE_SYNCED said so). */
bool manager_model_in_sync(const Manager *m);
/* True while it has to take the model from a peer: the rounds answer
 * safemode, and GET /model 503 (a server without any model and a cluster
 * still on its initial one is neither: its rounds say it has no model). */
bool manager_model_syncing(const Manager *m);

/* Pure helpers, exposed for the tests. */
/* "" or 16 hex digits (stored lowercase in ret); -EBADMSG otherwise. */
int sync_checksum_parse(const char *s, char ret[static MODEL_CHECKSUM_STRING_MAX]);
/* state_checksum NULL: the state is not compared. */
SyncVerdict sync_compare(const ServerModel *model, const ServerModel *previous, uint32_t current_iteration,
                         uint32_t model_iteration, const char *model_checksum, const char *state_checksum);
/* http://ADDRESS:PORT/model/state?iteration=N for the same addresses. */
int sync_peer_state_url(const char *address, uint32_t port, uint32_t iteration, char ret[static SYNC_URL_MAX]);
/* http://ADDRESS:PORT/model for a numeric IPv4 or IPv6 address; -EINVAL for
 * anything else. */
int sync_peer_url(const char *address, uint32_t port, char ret[static SYNC_URL_MAX]);
/* The same, https:// when the cluster speaks TLS. */
int sync_peer_url_scheme(const char *address, uint32_t port, bool https, char ret[static SYNC_URL_MAX]);
/* The members a server may take the model from, in rank order: alive, not
 * leaving, not self, with a usable address. Indices into v->members go to
 * idx (room for v->n_members); returns their number. */
size_t sync_peers(const ServerMembers *v, const char *self, size_t *idx);
uint64_t sync_backoff_next(uint64_t usec);
