/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The baseline of the ingest benchmark: the device port's HTTP stack
 * (src/shared/http.c, MHD on sd-event, exactly as fl-serverd runs it) with
 * one route, POST /updateModel, whose handler throws the body away and
 * answers 200 with a ResponseUpdateModel saying SUCCEED, encoded once. What
 * bench-ingest measures against it is the cost of HTTP alone: reading the
 * request, buffering the body as http.c does, answering.
 *
 *   bench-http-discard [PORT]      (default 0: any free port)
 *
 * Prints "PORT=<n>" on stdout once it serves; SIGTERM or SIGINT stop it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "fl-messages.h"
#include "http.h"
#include "log.h"
#include "util.h"

/* The same limit as fl-serverd's default max_request_size_mb. */
#define DISCARD_MAX_BODY ((size_t) 64U * 1024U * 1024U)

typedef struct Discard {
        uint8_t *answer;
        size_t answer_size;
        uint64_t requests;
        uint64_t bytes;
} Discard;

static int discard_update_model(HttpRequest *req, void *userdata) {
        Discard *d = userdata;
        size_t size;

        (void) http_request_body(req, &size);
        d->requests++;
        d->bytes += size;
        return http_reply(req, 200, "application/octet-stream", d->answer, d->answer_size);
}

static const HttpRoute routes[] = {
        { "POST", "/updateModel", discard_update_model },
};

int main(int argc, char *argv[]) {
        _cleanup_(http_server_freep) HttpServer *http = NULL;
        _cleanup_free_ uint8_t *answer = NULL;
        sd_event *e = NULL;
        FlResponseUpdateModel resp = {
                .retcode = FL_SUCCEED,
                .reason = "Update accepted.",
                .next_req_time = "0",
                .timestamp = "0",
        };
        Discard d = {};
        uint16_t port = 0;
        sigset_t mask;
        int r;

        log_set_ident("bench-http-discard");
        if (argc > 2 || (argc == 2 && safe_atou16(argv[1], &port) < 0)) {
                fprintf(stderr, "usage: %s [PORT]\n", argv[0]);
                return EXIT_FAILURE;
        }

        r = fl_response_update_model_encode(&resp, &d.answer, &d.answer_size);
        if (r < 0)
                return log_error_errno(r, "Failed to encode the answer: %m"), EXIT_FAILURE;
        answer = d.answer;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(-errno, "Failed to block signals: %m"), EXIT_FAILURE;

        r = sd_event_default(&e);
        if (r < 0)
                return log_error_errno(r, "Failed to get an event loop: %m"), EXIT_FAILURE;
        /* No handler: the signal ends the loop. */
        if (sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL) < 0 ||
            sd_event_add_signal(e, NULL, SIGINT, NULL, NULL) < 0) {
                sd_event_unref(e);
                return log_error("Failed to watch SIGTERM and SIGINT."), EXIT_FAILURE;
        }

        r = http_server_new(&http, e, "127.0.0.1", port, routes, ELEMENTSOF(routes), DISCARD_MAX_BODY, &d);
        if (r < 0) {
                sd_event_unref(e);
                return log_error_errno(r, "Failed to serve on 127.0.0.1:%u: %m", port), EXIT_FAILURE;
        }
        printf("PORT=%u\n", http_server_port(http));
        fflush(stdout);

        r = sd_event_loop(e);
        http = http_server_free(http);
        sd_event_unref(e);
        log_info("Discarded %llu requests, %llu body bytes.", (unsigned long long) d.requests,
                 (unsigned long long) d.bytes);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
