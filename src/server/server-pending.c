/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "server-manager.h"
#include "server-rounds.h"
#include "server-updates.h"
#include "util.h"
#include "wire-protocol.h"

static const char *const reply_state_table[_REPLY_STATE_MAX] = {
        [REPLY_OK] = "ok",
        [REPLY_SAFEMODE] = "safemode",
        [REPLY_DISABLED] = "disabled",
};

int scheduler_reply_parse(json_object *o, SchedulerReply *ret) {
        SchedulerReply r = { .reason = "", .state = _REPLY_STATE_INVALID };
        const char *state;

        if (!o || json_get_u32(o, "req", &r.req) < 0 || json_get_string(o, "state", &state) < 0)
                return -EBADMSG;
        for (int i = 0; i < _REPLY_STATE_MAX; i++)
                if (streq(state, reply_state_table[i]))
                        r.state = (ReplyState) i;
        if (r.state < 0)
                return -EBADMSG;
        if (json_get_u32(o, "retcode", &r.retcode) < 0 && r.state == REPLY_OK)
                return -EBADMSG;
        (void) json_get_string(o, "reason", &r.reason);
        (void) json_get_u32(o, "iteration", &r.iteration);
        (void) json_get_u64(o, "next_req_time", &r.next_req_time);
        (void) json_get_u32(o, "data_size", &r.data_size);
        (void) json_get_bool(o, "keep", &r.keep);

        *ret = r;
        return 0;
}

Pending *pending_new(Manager *m, PendingKind kind, HttpRequest *http) {
        Pending *p = calloc(1, sizeof *p);

        if (!p)
                return NULL;
        p->manager = m;
        p->kind = kind;
        p->http = http;
        return p;
}

static void pending_unlink(Pending *p) {
        PendingTable *t = &p->manager->pending;

        if (!p->prev && t->head != p)
                return;         /* not linked */
        if (p->prev)
                p->prev->next = p->next;
        else
                t->head = p->next;
        if (p->next)
                p->next->prev = p->prev;
        else
                t->tail = p->prev;
        p->prev = p->next = NULL;
        t->n--;
}

Pending *pending_free(Pending *p) {
        if (!p)
                return NULL;
        pending_unlink(p);
        if (p->logged)
                update_log_forget(p->manager->updates, p);
        sd_event_source_disable_unref(p->timer);
        fl_request_update_model_done(&p->update);
        free(p->ordered);
        free(p->fl_id);
        free(p);
        return NULL;
}

static const char *pending_what(const Pending *p) {
        return p->kind == PENDING_ADMIT ? "startFLJob" : "updateModel";
}

static bool pending_linked(const Pending *p) {
        return p->prev || p->manager->pending.head == p;
}

static int pending_timeout_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Pending *p = userdata;

        if (p->logged) {
                /* Its body is on its way to the disk: it is answered once it is there. */
                log_warning("The update log has not stored the update of device %s within %" PRIu64 "s; waiting.",
                            strna(p->fl_id), (uint64_t) PENDING_TIMEOUT_USEC / USEC_PER_SEC);
                (void) sd_event_source_set_time_relative(s, PENDING_TIMEOUT_USEC);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }

        if (p->kind == PENDING_UPDATE && pending_linked(p) && update_log_durable(p->manager->updates)) {
                /* Its verdict still counts: the update is in the log, which sums it
                 * if the scheduler says it is ours. The device hears now. */
                log_warning("The scheduler did not answer the updateModel of device %s within %" PRIu64 "s; "
                            "answering SystemError (the device may retry; it is counted once).", strna(p->fl_id),
                            (uint64_t) PENDING_TIMEOUT_USEC / USEC_PER_SEC);
                (void) rounds_answer_failure(p, FL_SYSTEM_ERROR, "The scheduler did not answer in time; retry later.");
                p->http = NULL;
                fl_request_update_model_done(&p->update);
                p->ordered = mfree(p->ordered);
                return 0;
        }

        log_warning("The scheduler did not answer the %s of device %s within %" PRIu64 "s; answering SystemError.",
                    pending_what(p), strna(p->fl_id), (uint64_t) PENDING_TIMEOUT_USEC / USEC_PER_SEC);
        (void) rounds_answer_failure(p, FL_SYSTEM_ERROR, "The scheduler did not answer in time; retry later.");
        pending_free(p);
        return 0;
}

int pending_park(Manager *m, Pending *p) {
        int r;

        if (!m->link->conn || !m->link->registered)
                return -ENOTCONN;
        r = sd_event_add_time_relative(m->event, &p->timer, CLOCK_MONOTONIC, PENDING_TIMEOUT_USEC, USEC_PER_MSEC,
                                       pending_timeout_handler, p);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(p->timer, "pending-deadline");
        p->started_usec = now_usec(CLOCK_MONOTONIC);
        return http_defer(p->http);
}

void pending_send(Manager *m, Pending *p, uint8_t type, json_object *msg) {
        _cleanup_(pending_freep) Pending *owned = p;
        PendingTable *t = &m->pending;
        uint32_t req;
        int r;

        if (!m->link->conn || !m->link->registered) {
                /* Lost the scheduler meanwhile: the device retries. */
                (void) rounds_answer_text(p->http, FL_SAFEMODE_TEXT);
                return;
        }
        req = t->next_req++;
        if (json_object_object_add(msg, "req", json_object_new_int64(req)) < 0) {
                (void) rounds_answer_failure(p, FL_SYSTEM_ERROR, "Out of memory.");
                return;
        }
        r = conn_send_json(m->link->conn, type, msg);
        if (r < 0) {
                log_warning_errno(r, "Failed to ask the scheduler about a %s: %m", pending_what(p));
                (void) rounds_answer_failure(p, FL_SYSTEM_ERROR, "The server could not reach the scheduler.");
                return;
        }

        p->req = req;
        p->prev = t->tail;
        if (t->tail)
                t->tail->next = p;
        else
                t->head = p;
        t->tail = p;
        t->n++;
        TAKE_PTR(owned);
}

int pending_submit(Manager *m, Pending *p, uint8_t type, json_object *msg) {
        _cleanup_(pending_freep) Pending *owned = p;
        int r;

        r = pending_park(m, p);
        if (r < 0)
                return r;
        /* Deferred now: from here on the answer goes out through the deferral. */
        pending_send(m, TAKE_PTR(owned), type, msg);
        return 0;
}

static Pending *pending_find(PendingTable *t, uint32_t req) {
        /* Replies come in request order: the match is almost always the head. */
        for (Pending *p = t->head; p; p = p->next)
                if (p->req == req)
                        return p;
        return NULL;
}

int pending_on_reply(Manager *m, uint8_t type, json_object *o) {
        PendingKind kind = type == WIRE_ADMIT_REPLY ? PENDING_ADMIT : PENDING_UPDATE;
        _cleanup_(pending_freep) Pending *p = NULL;
        SchedulerReply reply;
        int r;

        r = scheduler_reply_parse(o, &reply);
        if (r < 0)
                return log_warning_errno(r, "The scheduler %s sent a %s reply that cannot be read.", m->scheduler,
                                         kind == PENDING_ADMIT ? "startFLJob" : "updateModel");
        if (kind == PENDING_UPDATE && update_log_on_reply(m->updates, &reply) > 0)
                return 0;       /* a replayed update */

        p = pending_find(&m->pending, reply.req);
        if (!p || p->kind != kind) {
                TAKE_PTR(p);
                /* Its device got SystemError at the deadline. An update counted for
                 * this server is in its log: the next replay (at the latest) sums it. */
                if (kind == PENDING_UPDATE && reply.state == REPLY_OK && reply.retcode == FL_SUCCEED && reply.keep)
                        log_warning("The scheduler counted an update (req %u) after its deadline; it is in the "
                                    "update log but not in the running sum of iteration %u until the next "
                                    "registration replays it.", reply.req, reply.iteration);
                else
                        log_debug("Ignoring a late scheduler reply (req %u).", reply.req);
                return 0;
        }
        pending_unlink(p);

        if (!p->http) {
                /* Answered at its deadline: only the sum cares. */
                if (reply.state == REPLY_OK)
                        (void) update_log_verdict(m->updates, p, &reply);
                return 0;
        }
        if (reply.state == REPLY_SAFEMODE)
                (void) rounds_answer_text(p->http, FL_SAFEMODE_TEXT);
        else if (reply.state == REPLY_DISABLED)
                (void) rounds_answer_text(p->http, FL_DISABLED_TEXT);
        else if (kind == PENDING_ADMIT)
                (void) rounds_answer_admit(m, p, &reply);
        else
                (void) rounds_answer_update(m, p, &reply);
        return 0;
}

void pending_fail_all(Manager *m) {
        PendingTable *t = &m->pending;

        if (t->n > 0)
                log_warning("Lost the scheduler with %zu device request%s waiting; answering them safemode.",
                            t->n, t->n == 1 ? "" : "s");
        while (t->head) {
                Pending *p = t->head;

                pending_unlink(p);
                if (p->http)
                        (void) rounds_answer_text(p->http, FL_SAFEMODE_TEXT);
                pending_free(p);
        }
}

void pending_clear(Manager *m) {
        while (m->pending.head)
                pending_free(m->pending.head);
}
