/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <sqlite3.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "cluster-state.h"
#include "cluster-trust.h"
#include "conf.h"
#include "http.h"
#include "ratelimit.h"
#include "refusals.h"
#include "scheduler-iteration.h"
#include "scheduler-job-params.h"
#include "scheduler-registry.h"
#include "token.h"

#include "scheduler-link.h"
#include "scheduler-metrics.h"

/* The scheduler's Manager owns the one event loop and everything on it: the
 * TCP listener and the links of the servers, the REST port, the D-Bus
 * connection, the registry and its database. */
typedef struct Ledger Ledger;

typedef struct RingEntry {
        char node_id[NODE_ID_MAX];
        uint32_t rank;
        bool done;
} RingEntry;

typedef struct Manager {
        const FlConfig *config;
        sd_event *event;
        sd_bus *bus;
        HttpServer *http;
        TokenTable tokens;              /* management_token_file (scheduler-auth.c) */
        RateLimit auth_ratelimit;       /* of the refusals' log lines */
        int listen_fd;
        sd_event_source *listen_source;
        sd_event_source *expire_timer;
        sd_event_source *exit_timer;
        sqlite3 *db;
        char *db_path;
        int lock_fd;            /* one scheduler per state directory */
        /* What servers must prove on the TCP port, what REST serves (docs/security.md). */
        ClusterTrust *trust;
        Refusals *refusals;

        Registry registry;
        ClusterState state;
        bool recovering;        /* restarted with a registry: waiting for its nodes */
        Link *links;            /* every open connection, registered or not */

        /* The training job and its current iteration (scheduler-training.c). */
        Job job;
        Job pending_job;                /* newInstance: from the next boundary on */
        bool has_pending_job;
        bool fl_disabled;               /* disableFLS */
        Iteration iteration;
        Ledger *ledger;                 /* its durable record (scheduler-ledger.c) */
        sd_event_source *iteration_timer;
        /* A running aggregation: the ring, who has answered, with what. */
        RingEntry *ring;
        size_t n_ring;
        char ring_checksum[128];
        char ring_state_checksum[128];  /* of the server optimizer's state; "" for none */
        uint32_t aggregate_attempt;     /* tells a new ring of the same iteration from the last */
        bool waiting_logged;            /* "waiting for rank R" was said for this wait */
        sd_event_source *aggregate_timer;
        sd_event_source *aggregate_retry_timer; /* a failed all-reduce is asked for again */

        /* The model the cluster last committed ("" while the initial one), and
         * the checksum of the server optimizer's state that goes with it ("":
         * none, as with FedAvg and the initial model). */
        char model_checksum[128];
        char state_checksum[128];
        uint32_t model_iteration;

        /* A running scale operation (scheduler-scale.c). */
        ClusterState scaling;           /* CLUSTER_SCALE_OUT, CLUSTER_SCALE_IN or _CLUSTER_STATE_INVALID */
        uint32_t scale_from;            /* server_num before it */
        uint64_t scale_started_usec;
        sd_event_source *scale_timer;

        /* A running "finish": the nodes told to stop, who answered, who asked. */
        bool finishing;
        sd_event_source *finish_timer;
        json_object *stopped;           /* array of {role, rank_id, node_id, pid} */
        sd_bus_message **finish_calls;
        size_t n_finish_calls;
        HttpRequest **finish_requests;
        size_t n_finish_requests;

        /* What operators look at (scheduler-metrics.h). */
        SchedulerMetrics metrics;
        History *history;
} Manager;

int manager_new(Manager **ret, const FlConfig *config);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);

int manager_start(Manager *m);
int manager_run(Manager *m);
/* SIGHUP (systemctl reload): reads the management token file, the TLS
 * material and the cluster secret again; new connections use them, the
 * running ones go on. */
int manager_reload(Manager *m);

/* Recomputes the cluster state from the registry; persists, logs, announces
 * (D-Bus property, member lists to every server) when it changes or when
 * force is set (membership changed without a state change). */
int manager_update_state(Manager *m, bool force);
int manager_save_node(Manager *m, const Node *n);
void manager_send_members(Manager *m, Link *only);

/* flctl finish: tells every connected server to stop, gathers their acks,
 * then answers and exits. */
int manager_finish_begin(Manager *m);
void manager_finish_node_stopped(Manager *m, Node *n, uint32_t pid);
/* True once a finish has been answered and the scheduler is about to exit. */
bool manager_finish_answered(const Manager *m);
/* Answers the finish once no registered server is left to wait for. */
void manager_finish_check(Manager *m);
json_object *manager_nodes_json(Manager *m);

/* scheduler-training.c */
int training_setup(Manager *m);
void training_done(Manager *m);
/* The cluster state changed: start the first iteration once READY. */
void training_on_state(Manager *m);
void training_send_iteration(Manager *m, Link *only);
int training_handle_admit(Manager *m, Link *l, json_object *msg);
int training_handle_update(Manager *m, Link *l, json_object *msg);
int training_handle_aggregate_done(Manager *m, Link *l, json_object *msg);
/* A server's connection went away (maybe during aggregation). */
void training_on_node_lost(Manager *m, Node *n);
/* A server registered: it names its updates again before it aggregates. */
void training_on_node_registered(Manager *m, Node *n);
int training_handle_replayed(Manager *m, Link *l, json_object *msg);
/* A server was declared dead: the updates it holds are lost with it. */
void training_on_node_dead(Manager *m, Node *n);

void training_on_enabled(Manager *m);
/* Starts a staged new instance now if the job is between iterations. */
void training_apply_pending(Manager *m);

/* Called after each group commit: starts an aggregation the last commit
 * made due. */
void training_after_commit(Manager *m);

/* scheduler-ledger.c */
int ledger_setup(Manager *m);
void ledger_done(Manager *m);
void ledger_iteration_began(Manager *m);
void ledger_windows_changed(Manager *m);
/* Queues reply (a reference is taken) to l's server until the admission of
 * fl_id (NULL: nothing changed) is committed. */
int ledger_record(Manager *m, const char *fl_id, Link *l, uint8_t type, json_object *reply);
/* The admission of fl_id changed without a reply: in the next commit. */
int ledger_mark(Manager *m, const char *fl_id);
/* A commit (maybe empty) this turn, and training_after_commit() after it. */
void ledger_flush_soon(Manager *m);
/* Fills it (number already set) from the database; *ret_found false when
 * nothing of that iteration is stored. */
int ledger_load(Manager *m, Iteration *it, bool *ret_found);

/* The management API's typed calls (REST and D-Bus are thin adapters over
 * them): each returns 0, or a negative errno with the refusal's message in
 * error: -EBUSY (not READY, another operation runs), -EINVAL (bad
 * arguments), anything else (the scheduler failed, e.g. to store it). On
 * success both adapters answer the message below. */
#define SCALE_OUT_MESSAGE "Cluster begin to scale out."
#define SCALE_IN_MESSAGE "Cluster begin to scale in."
#define NEW_INSTANCE_MESSAGE "Start new instance successful."
#define ENABLE_MESSAGE "start enabling FL-Server successful."
#define DISABLE_MESSAGE "start disabling FL-Server successful."

/* scheduler-instance.c */
int instance_setup(Manager *m);
int instance_reset(Manager *m);
/* Moves a staged new instance into force; true if there was one. */
bool instance_take_pending(Manager *m);
int instance_new(Manager *m, const JobParams *params, char *error, size_t size);
json_object *instance_query(Manager *m);
int instance_set_enabled(Manager *m, bool enable, char *error, size_t size);

/* scheduler-scale.c */
int scale_setup(Manager *m);
void scale_done(Manager *m);
/* Adds server_num servers. */
int scale_out(Manager *m, uint32_t server_num, char *error, size_t size);
/* Removes the named servers (a name given twice leaves once). */
int scale_in(Manager *m, char *const *node_ids, size_t n, char *error, size_t size);
/* A server registered or got in sync: maybe the scale-out is complete. */
void scale_check(Manager *m);
/* The iteration ended (or none runs): the leavers of a scale-in go now. */
void scale_on_boundary(Manager *m);
int training_handle_synced(Manager *m, Link *l, json_object *msg);
/* Whether a node may take part in the aggregation: it holds the model. */
bool node_in_sync(const Manager *m, const Node *n);

/* scheduler-bus.c */
int manager_bus_setup(Manager *m);
void manager_bus_emit_state(Manager *m);
void manager_bus_emit_node(Manager *m, const Node *n, bool joined, const char *reason);
int manager_bus_finish_reply(Manager *m, sd_bus_message *call);

/* scheduler-rest.c */
int manager_rest_setup(Manager *m);
int manager_rest_finish_reply(Manager *m, HttpRequest *req);
