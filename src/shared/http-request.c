/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http-internal.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

/* JSON as the REST API prints it: compact, "/" left alone. */
#define HTTP_JSON_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

void http_request_unlink_deferred(HttpRequest *req) {
        HttpServer *s = req->server;

        if (req->defer_prev)
                req->defer_prev->defer_next = req->defer_next;
        else if (s->deferred == req)
                s->deferred = req->defer_next;
        if (req->defer_next)
                req->defer_next->defer_prev = req->defer_prev;
        req->defer_prev = req->defer_next = NULL;
}

int http_request_answer(HttpRequest *req, unsigned status, struct MHD_Response *response) {
        _cleanup_(MHD_destroy_responsep) struct MHD_Response *resp = response;

        if (req->answered)
                return log_error_errno(-EALREADY, "Request %s %s answered twice, ignoring the second answer.",
                                       req->method, req->path);
        req->answered = true;
        req->status = status;
        if (!resp)
                req->drop = true;
        if (req->server->observer && req->route)
                req->server->observer(&(HttpRequestInfo) {
                                .method = req->route->method,
                                .path = req->route->path,
                                .label = req->label,
                                .status = status,
                                .bytes_in = req->body_size + req->discarded,
                                .bytes_out = resp ? req->bytes_out : 0,
                                .duration_usec = now_usec(CLOCK_MONOTONIC) - req->start_usec,
                        }, req->server->observer_userdata);

        if (req->deferred) {
                req->pending = TAKE_PTR(resp);
                req->pending_status = status;
                http_request_unlink_deferred(req);
                MHD_resume_connection(req->connection);
                http_server_kick(req->server);
                return req->drop ? -ENOMEM : 0;
        }
        if (req->drop)
                return -ENOMEM;
        if (!req->in_handler) {
                req->drop = true;
                return log_error_errno(-EINVAL, "Request %s %s answered outside its handler without http_defer().",
                                       req->method, req->path);
        }
        if (MHD_queue_response(req->connection, status, resp) == MHD_NO) {
                req->drop = true;
                return -EIO;
        }
        return 0;
}

struct MHD_Response *http_response_new(const void *body, size_t size, const char *content_type) {
        _cleanup_(MHD_destroy_responsep) struct MHD_Response *resp = NULL;

        resp = MHD_create_response_from_buffer(size, (void *) body, MHD_RESPMEM_MUST_COPY);
        if (!resp)
                return NULL;
        if (content_type && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_NO)
                return NULL;
        return TAKE_PTR(resp);
}

int http_reply(HttpRequest *req, unsigned status, const char *content_type, const void *body, size_t size) {
        if (!req->answered)
                req->bytes_out = size;
        return http_request_answer(req, status, http_response_new(body, size, content_type));
}

int http_reply_with_headers(HttpRequest *req, unsigned status, const char *content_type, const void *body,
                            size_t size, const char *const *headers) {
        _cleanup_(MHD_destroy_responsep) struct MHD_Response *resp = http_response_new(body, size, content_type);

        for (size_t i = 0; resp && headers && headers[i] && headers[i + 1]; i += 2)
                if (MHD_add_response_header(resp, headers[i], headers[i + 1]) == MHD_NO)
                        resp = (MHD_destroy_response(resp), NULL);
        if (!req->answered)
                req->bytes_out = size;
        return http_request_answer(req, status, TAKE_PTR(resp));
}

int http_reply_json(HttpRequest *req, unsigned status, json_object *o) {
        size_t len;
        const char *text = json_object_to_json_string_length(o, HTTP_JSON_FLAGS, &len);

        if (!text)
                return http_request_answer(req, status, NULL);
        return http_reply(req, status, "application/json", text, len);
}

struct MHD_Response *http_error_response_new(const char *message) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();
        const char *text;
        size_t len;

        if (!o ||
            json_object_object_add(o, "code", json_object_new_string("1")) < 0 ||
            json_object_object_add(o, "error_message", json_object_new_string(message)) < 0)
                return NULL;
        text = json_object_to_json_string_length(o, HTTP_JSON_FLAGS, &len);
        return text ? http_response_new(text, len, "application/json") : NULL;
}

/* The error object, with one more header when header is not NULL. */
_printf_(5, 0)
static int reply_error_va(HttpRequest *req, unsigned status, const char *header, const char *value,
                          const char *format, va_list ap) {
        _cleanup_(MHD_destroy_responsep) struct MHD_Response *resp = NULL;
        _cleanup_free_ char *message = NULL;

        if (vasprintf(&message, format, ap) < 0)
                return http_request_answer(req, status, NULL);
        resp = http_error_response_new(message);
        if (resp && header && MHD_add_response_header(resp, header, value) == MHD_NO)
                return http_request_answer(req, status, NULL);  /* drops the connection */
        return http_request_answer(req, status, TAKE_PTR(resp));
}

int http_reply_error(HttpRequest *req, unsigned status, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = reply_error_va(req, status, NULL, NULL, format, ap);
        va_end(ap);
        return r;
}

int http_reply_error_with_header(HttpRequest *req, unsigned status, const char *header, const char *value,
                                 const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = reply_error_va(req, status, header, value, format, ap);
        va_end(ap);
        return r;
}

int http_defer(HttpRequest *req) {
        if (req->deferred)
                return 0;
        if (req->answered || !req->in_handler)
                return -EINVAL;
        MHD_suspend_connection(req->connection);
        req->deferred = true;
        req->defer_next = req->server->deferred;
        if (req->defer_next)
                req->defer_next->defer_prev = req;
        req->server->deferred = req;
        return 0;
}

const char *http_request_method(const HttpRequest *req) {
        return req->method;
}

const char *http_request_path(const HttpRequest *req) {
        return req->path;
}

const char *http_request_content_type(const HttpRequest *req) {
        return http_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
}

const uint8_t *http_request_body(const HttpRequest *req, size_t *ret_size) {
        *ret_size = req->body_size;
        return req->body ?: (const uint8_t *) "";
}

const char *http_request_header(const HttpRequest *req, const char *name) {
        return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

const char *http_request_query(const HttpRequest *req, const char *key) {
        return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_request_peer(HttpRequest *req) {
        const union MHD_ConnectionInfo *info;
        char ip[INET6_ADDRSTRLEN];

        if (req->peer[0])
                return req->peer;
        info = MHD_get_connection_info(req->connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!info || !info->client_addr)
                snprintf(req->peer, sizeof req->peer, "unknown");
        else if (info->client_addr->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) info->client_addr;

                snprintf(req->peer, sizeof req->peer, "%s:%u", inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip) ?: "?",
                         ntohs(in->sin_port));
        } else if (info->client_addr->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) info->client_addr;

                snprintf(req->peer, sizeof req->peer, "[%s]:%u",
                         inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip) ?: "?", ntohs(in6->sin6_port));
        } else
                snprintf(req->peer, sizeof req->peer, "unknown");
        return req->peer;
}

void http_request_set_label(HttpRequest *req, const char *label) {
        req->label = label;
}
