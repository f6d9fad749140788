/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <microhttpd.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* libmicrohttpd inside sd-event, as systemd-journal-remote does it: MHD in
 * epoll mode without threads, its epoll fd watched by an sd-event io source,
 * a timer re-armed from MHD_get_timeout() after each MHD_run(). One loop for
 * HTTP, D-Bus and TCP alike.
 *
 * Requests are routed by one table of (method, path, handler). An unknown
 * path answers 404, a known path with another method 405, a body over the
 * server's limit 413 - all before a handler runs. The handler sees the whole
 * body (bounded) and must answer exactly once, now or later (http_defer). */

DEFINE_TRIVIAL_CLEANUP_FUNC(struct MHD_Response *, MHD_destroy_response);

typedef struct HttpServer HttpServer;
typedef struct HttpRequest HttpRequest;
typedef struct TlsMaterial TlsMaterial;

typedef int (*http_handler_t)(HttpRequest *req, void *userdata);

typedef struct HttpRoute {
        const char *method;             /* "GET", "POST" */
        const char *path;               /* exact match, e.g. "/nodes" */
        http_handler_t handler;
        int access;                     /* what the authorize hook requires (its own values) */
} HttpRoute;

/* Called once the headers of a request for a known route are in, before
 * its body is read: true lets it go on to its handler, false means the
 * hook answered it (a refusal). */
typedef bool (*http_authorize_t)(HttpRequest *req, int access, void *userdata);

/* address may be NULL for all addresses. Routes must outlive the server.
 * Never free the server from inside one of its handlers. */
int http_server_new(HttpServer **ret, sd_event *e, const char *address, uint16_t port,
                    const HttpRoute *routes, size_t n_routes, size_t max_body, void *userdata);
/* The same over HTTPS with tls (tls.h; a reference is taken): the server's
 * certificate chain from it, cipher_list as the priorities. Clients show no
 * certificate (devices, operators with tokens). tls NULL: clear HTTP. */
int http_server_new_tls(HttpServer **ret, sd_event *e, const char *address, uint16_t port,
                        const HttpRoute *routes, size_t n_routes, size_t max_body, TlsMaterial *tls,
                        void *userdata);
/* New connections get this material from now on (a reload); those running
 * keep theirs. The priorities stay those of the start. */
int http_server_set_tls(HttpServer *s, TlsMaterial *tls);
bool http_server_is_tls(const HttpServer *s);
HttpServer *http_server_free(HttpServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpServer *, http_server_free);
/* The port actually bound (useful with port 0). */
uint16_t http_server_port(const HttpServer *s);
/* Every request passes authorize (with the server's userdata) first. */
void http_server_set_authorize(HttpServer *s, http_authorize_t authorize);

/* What became of one request, for metrics: told once per request that was
 * routed (an unknown path is not), when it is answered (the answer is then
 * queued; deferred requests are told when their answer is made). */
typedef struct HttpRequestInfo {
        const char *method;
        const char *path;               /* the route's path (never a client's string) */
        const char *label;              /* from http_request_set_label(), or NULL */
        unsigned status;                /* 0: never answered */
        uint64_t bytes_in;              /* request body, dropped bytes included */
        uint64_t bytes_out;             /* answer body (http_reply*() answers; 0 for errors) */
        uint64_t duration_usec;         /* from its headers until it was answered */
} HttpRequestInfo;
typedef void (*http_observer_t)(const HttpRequestInfo *info, void *userdata);
void http_server_set_observer(HttpServer *s, http_observer_t observer, void *userdata);

const char *http_request_method(const HttpRequest *req);
const char *http_request_path(const HttpRequest *req);
/* The Content-Type header (NULL if absent), body and its size (never NULL). */
const char *http_request_content_type(const HttpRequest *req);
const uint8_t *http_request_body(const HttpRequest *req, size_t *ret_size);
/* A request header by its case-insensitive name, or NULL. */
const char *http_request_header(const HttpRequest *req, const char *name);
/* A query parameter, e.g. "iteration" of /model?iteration=3, or NULL. */
const char *http_request_query(const HttpRequest *req, const char *key);
/* The client's address and port, "192.0.2.1:40000" or "[2001:db8::1]:40000". */
const char *http_request_peer(HttpRequest *req);
/* A word of the handler's for the observer (e.g. the retcode it answered);
 * must be a static string. */
void http_request_set_label(HttpRequest *req, const char *label);

/* Answer now. Each returns 0 or a negative errno; the request is answered
 * (or the connection dropped) either way. */
int http_reply(HttpRequest *req, unsigned status, const char *content_type, const void *body, size_t size);
int http_reply_json(HttpRequest *req, unsigned status, json_object *o);
/* With more headers: name, value, name, value, ..., NULL. */
int http_reply_with_headers(HttpRequest *req, unsigned status, const char *content_type, const void *body,
                            size_t size, const char *const *headers);
/* {"code":"1","error_message":"..."} with the given status (400, 404, ...). */
int http_reply_error(HttpRequest *req, unsigned status, const char *format, ...) _printf_(3, 4);
/* The same with one more response header (e.g. WWW-Authenticate of a 401). */
int http_reply_error_with_header(HttpRequest *req, unsigned status, const char *header, const char *value,
                                 const char *format, ...) _printf_(5, 6);

/* Answer later: suspends the connection and returns a handle that stays
 * valid until one of the http_reply*() calls is made on it (the request
 * memory is kept alive until then). If the server is freed first, the
 * deferred request is dropped: its connection is closed and the handle
 * must be forgotten. Only callable from inside the handler. */
int http_defer(HttpRequest *req);
