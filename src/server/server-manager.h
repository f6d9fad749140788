/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <sqlite3.h>
#include <systemd/sd-event.h>

#include "cluster-trust.h"
#include "conf.h"
#include "http.h"
#include "server-aggregate.h"
#include "server-allreduce.h"
#include "server-iteration.h"
#include "server-link.h"
#include "server-model.h"
#include "server-pending.h"
#include "server-report.h"
#include "server-sync.h"
#include "server-updates.h"

/* One server process: the event loop and everything that runs in it. */
struct Manager {
        sd_event *event;
        const FlConfig *config;
        uint16_t port;                  /* the device port of this server */
        unsigned index, count;          /* among the servers one command started */
        char *node_id;
        char *address;                  /* advertised to the scheduler and peers */
        char scheduler[64];             /* "ip:port", for log lines */

        HttpServer *http;
        ServerLink *link;
        /* What this server proves to the scheduler and its peers, and serves devices with. */
        ClusterTrust *trust;

        /* Training: the served model and its checkpoints, the running sum of
         * the current iteration, the iteration as the scheduler announced it,
         * the device requests waiting for the scheduler, the all-reduce. */
        sqlite3 *store;
        char *store_path;
        ServerModel model;
        /* The model before the last aggregation, until the scheduler commits
         * that iteration: an iteration abandoned after it was aggregated here
         * (another server failed) is rolled back to it. */
        ServerModel previous_model;
        Aggregate *aggregate;           /* NULL without a model */
        UpdateLog *updates;             /* the updates of the iteration, durable (server-updates.c) */
        Training training;
        PendingTable pending;
        AllReduce *allreduce;
        /* Whether the served model is the cluster's, and taking it from a peer when not. */
        ServerSync sync;

        /* pushMetrics: the last values a device reported. */
        double last_loss, last_accuracy;
        uint64_t n_metrics;

        /* What operators look at (server-metrics.c, server-report.c). */
        HttpServer *metrics_http;
        ServerReport report;

        bool announced;                 /* "Server started successfully." was logged */
        bool exiting;
        int exit_code;
};

int manager_new(Manager **ret, const FlConfig *c, unsigned index);
Manager *manager_free(Manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(Manager *, manager_free);
/* Serves HTTP, learns who it is, starts the link. Logs its own failures. */
int manager_start(Manager *m);
/* Runs until a signal, a FINISH or a fatal refusal; returns the exit status. */
int manager_run(Manager *m);

/* SIGHUP (systemctl reload): the TLS material and the cluster secret are
 * read again; new connections (devices, peers, the scheduler's) use them. */
int manager_reload(Manager *m);
/* Leaves the loop with this status (the first one asked for wins). */
void manager_exit(Manager *m, int status);
/* Called by the link after every registration and membership change. */
void manager_link_changed(Manager *m);
/* Called by the link whenever its connection goes (also at teardown). */
void manager_link_lost(Manager *m);
/* STATUS= for systemd (and the debug log). */
void manager_status(Manager *m, const char *format, ...) _printf_(2, 3);

/* server-http.c: the device port, its body limit from max_request_size_mb. */
int manager_http_start(Manager *m);
