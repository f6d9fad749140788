/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "fl-messages.h"
#include "http.h"

/* Device requests waiting for the scheduler's verdict (WIRE_ADMIT,
 * WIRE_UPDATE): the HTTP request is deferred, the frame carries a "req"
 * number the reply repeats. Every one is answered exactly once: by the
 * reply, by its deadline (SystemError), or when the link drops (safemode),
 * so that no device is left hanging. At most one per open HTTP connection,
 * so their number is bounded by the HTTP server's connection limit. */

typedef struct Manager Manager;

typedef enum PendingKind {
        PENDING_ADMIT,                  /* startFLJob */
        PENDING_UPDATE,                 /* updateModel */
} PendingKind;

typedef enum ReplyState {
        REPLY_OK,
        REPLY_SAFEMODE,
        REPLY_DISABLED,
        _REPLY_STATE_MAX,
        _REPLY_STATE_INVALID = -1,
} ReplyState;

/* WIRE_ADMIT_REPLY and WIRE_UPDATE_REPLY. */
typedef struct SchedulerReply {
        uint32_t req;
        ReplyState state;
        uint32_t retcode;
        const char *reason;             /* points into the JSON object; never NULL */
        uint32_t iteration;
        uint64_t next_req_time;         /* Unix ms, 0 if not given */
        uint32_t data_size;             /* of the device; 0 if not given */
        bool keep;                      /* update: this server holds it (sum it) */
} SchedulerReply;

/* -EBADMSG when "req" or "state" is missing or mistyped, or an ok reply
 * has no retcode. */
int scheduler_reply_parse(json_object *o, SchedulerReply *ret);

typedef struct Pending Pending;
struct Pending {
        Manager *manager;
        Pending *prev, *next;
        uint32_t req;
        PendingKind kind;
        HttpRequest *http;
        sd_event_source *timer;
        uint64_t started_usec;
        uint32_t iteration;             /* the iteration the device was checked against */
        char *fl_id;                    /* for log lines */

        /* updateModel: the checked update. Points into the request body, which
         * lives until the request is answered. */
        FlRequestUpdateModel update;
        const float **ordered;          /* the update's tensors in model order */
        uint64_t digest;                /* aggregate_digest() of them */
        bool logged;                    /* waiting in the update log's next commit */
        bool stale;                     /* outside replay_attack_time_diff: only a counted copy passes */
};

typedef struct PendingTable {
        Pending *head, *tail;
        size_t n;
        uint32_t next_req;
} PendingTable;

#define PENDING_TIMEOUT_USEC (10U * USEC_PER_SEC)

Pending *pending_new(Manager *m, PendingKind kind, HttpRequest *http);
Pending *pending_free(Pending *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Pending *, pending_free);

/* Defers p's HTTP request and starts its deadline; only from inside the
 * HTTP handler. On failure the request is still the caller's to answer. */
int pending_park(Manager *m, Pending *p);
/* Sends msg (a "req" is added) about a parked p as a frame of type: from
 * here on the table owns p and answers it. Takes p also on failure (its
 * device is then answered). */
void pending_send(Manager *m, Pending *p, uint8_t type, json_object *msg);
/* Both. On failure p is freed and the request is still the caller's to
 * answer (nothing was sent). */
int pending_submit(Manager *m, Pending *p, uint8_t type, json_object *msg);

/* A WIRE_ADMIT_REPLY or WIRE_UPDATE_REPLY: answers its device. Negative
 * for a reply that cannot be read (the link is then closed). */
int pending_on_reply(Manager *m, uint8_t type, json_object *o);
/* Answers every waiting device `The cluster is in safemode.` */
void pending_fail_all(Manager *m);
/* Forgets every waiting request without answering (the HTTP server is
 * going away and drops their connections). */
void pending_clear(Manager *m);
