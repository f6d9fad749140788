/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What http.c (the daemon and its loop) and http-request.c (answers) share. */

#include "http.h"
#include "ratelimit.h"
#include "tls.h"

struct HttpRequest {
        HttpServer *server;
        struct MHD_Connection *connection;
        const char *method;
        const char *path;
        const HttpRoute *route;
        char peer[64];          /* http_request_peer(), once asked */

        uint8_t *body;
        size_t body_size, body_allocated;
        uint64_t discarded;
        bool too_large;

        bool in_handler;        /* inside the access handler: replies are queued now */
        bool answered;
        bool deferred;          /* suspended by http_defer() */
        bool drop;              /* close the connection instead of answering */
        struct MHD_Response *pending;   /* a deferred answer, queued once resumed */
        unsigned pending_status;

        /* For the observer (HttpRequestInfo). */
        uint64_t start_usec;
        unsigned status;
        uint64_t bytes_out;
        const char *label;

        HttpRequest *defer_prev, *defer_next;
};

struct HttpServer {
        sd_event *event;
        struct MHD_Daemon *daemon;
        sd_event_source *io, *timer;
        const HttpRoute *routes;
        size_t n_routes;
        size_t max_body;
        void *userdata;
        http_authorize_t authorize;
        uint16_t port;
        bool started;
        bool kicked;
        HttpRequest *deferred;  /* suspended requests, to resume before stopping */
        http_observer_t observer;
        void *observer_userdata;

        /* libmicrohttpd's messages about single clients (a failed TLS
         * handshake, a malformed request): a flood must not fill the journal. */
        RateLimit client_log;

        /* HTTPS (http-tls.c): the material new connections get. */
        TlsMaterial *tls;
        HttpServer *tls_prev, *tls_next;
};

/* http-tls.c: for MHD_start_daemon() (MHD_OPTION_ARRAY), the TLS options of
 * a server (just the end of the array without tls); and their undoing. */
int http_tls_setup(HttpServer *s, TlsMaterial *tls, unsigned *flags, struct MHD_OptionItem opts[static 3]);
void http_tls_done(HttpServer *s);

void http_server_kick(HttpServer *s);
void http_request_unlink_deferred(HttpRequest *req);
struct MHD_Response *http_response_new(const void *body, size_t size, const char *content_type);
struct MHD_Response *http_error_response_new(const char *message);
/* Takes the response (NULL after a failed allocation: the connection is then
 * dropped). Queues it now when inside the access handler, else hands it to
 * the resumed connection. */
int http_request_answer(HttpRequest *req, unsigned status, struct MHD_Response *response);
