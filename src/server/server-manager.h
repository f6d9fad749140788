/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-event.h>

#include "conf.h"
#include "http.h"
#include "server-link.h"

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

/* Leaves the loop with this status (the first one asked for wins). */
void manager_exit(Manager *m, int status);
/* Called by the link after every registration and membership change. */
void manager_link_changed(Manager *m);
/* STATUS= for systemd (and the debug log). */
void manager_status(Manager *m, const char *format, ...) _printf_(2, 3);

/* server-http.c */
#define SERVER_HTTP_MAX_BODY ((size_t) 64U * 1024U * 1024U)
int manager_http_start(Manager *m);
