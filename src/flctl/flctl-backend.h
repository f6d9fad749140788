/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "flctl-reply.h"
#include "macro.h"

/* How flctl reaches the scheduler: D-Bus on the system bus when it runs on
 * the scheduler's host, REST (--url) from anywhere else. A verb calls the
 * operation it needs through the vtable and never knows which one it got;
 * a new verb adds one entry here and one function in each backend.
 *
 * Every operation logs its own failure (a refusal's text as the scheduler
 * sent it, or why the scheduler could not be reached) and returns a
 * negative errno; callers only pass it on.
 *
 * The verbs that change the cluster hand back the scheduler's message for
 * people, as the scheduler sent it: REST's "message", or the string the
 * D-Bus method returns. */

typedef struct Backend Backend;

typedef struct BackendVTable {
        int (*list_nodes)(Backend *b, NodeList *ret);
        int (*get_state)(Backend *b, char **ret);
        int (*finish)(Backend *b, NodeList *ret);
        int (*scale_out)(Backend *b, uint32_t server_num, char **ret_message);
        int (*scale_in)(Backend *b, char *const *node_ids, size_t n, char **ret_message);
        /* params: a JSON object of hyper-parameters, sent as it is. */
        int (*new_instance)(Backend *b, json_object *params, char **ret_message);
        /* The job in force (REST's "result"), a JSON object. */
        int (*query_instance)(Backend *b, json_object **ret);
        int (*set_enabled)(Backend *b, bool enable, char **ret_message);
        void (*free)(Backend *b);
} BackendVTable;

/* The first member of each backend's own struct. */
struct Backend {
        const BackendVTable *vtable;
        uint64_t timeout_usec;  /* for each call's reply, set per verb */
        const char *cacert;     /* REST over https: the CA (--cacert), or NULL: the system's */
};

int bus_backend_new(Backend **ret);
/* token: sent as "Authorization: Bearer TOKEN" with every request, or NULL. */
int rest_backend_new(const char *url, const char *token, Backend **ret);

static inline Backend *backend_free(Backend *b) {
        if (b)
                b->vtable->free(b);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(Backend *, backend_free);
