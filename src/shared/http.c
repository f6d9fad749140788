/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "http-internal.h"
#include "json-util.h"
#include "log.h"
#include "util.h"

#define HTTP_CONNECTION_TIMEOUT_SEC 30U
#define HTTP_CONNECTION_LIMIT 1024U
/* Per connection: the read buffer bounds the chunks the body arrives in. */
#define HTTP_CONNECTION_MEMORY_LIMIT ((size_t) 64U * 1024U)
/* A chunked body announces no length, so going over the limit is found
 * while reading it; MHD cannot answer in the middle of an upload, so the
 * rest is read and dropped (up to this much, then the connection is cut)
 * and the 413 goes out at the end. */
#define HTTP_DISCARD_MAX ((uint64_t) 16U * 1024U * 1024U)
#define HTTP_BODY_FIRST_ALLOC ((size_t) 1024U * 1024U)
/* MHD's own name for it changed across versions. */
#define HTTP_STATUS_TOO_LARGE 413U
#define HTTP_CLIENT_LOG_INTERVAL_USEC (10U * USEC_PER_SEC)
#define HTTP_CLIENT_LOG_BURST 10U

static HttpRequest *request_free(HttpRequest *req) {
        if (!req)
                return NULL;
        http_request_unlink_deferred(req);
        if (req->pending)
                MHD_destroy_response(req->pending);
        free(req->body);
        free(req);
        return NULL;
}

void http_server_kick(HttpServer *s) {
        /* A resumed connection is only served by the next MHD_run(). */
        s->kicked = true;
        (void) sd_event_source_set_time_relative(s->timer, 0);
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

static void http_server_run(HttpServer *s) {
        MHD_UNSIGNED_LONG_LONG timeout_ms;
        uint64_t usec;

        s->kicked = false;
        if (MHD_run(s->daemon) == MHD_NO)
                log_warning("libmicrohttpd failed to process its connections; retrying.");

        if (s->kicked)
                usec = 0;
        else if (MHD_get_timeout(s->daemon, &timeout_ms) == MHD_NO) {
                (void) sd_event_source_set_enabled(s->timer, SD_EVENT_OFF);
                return;
        } else
                usec = timeout_ms > UINT64_MAX / USEC_PER_MSEC ? UINT64_MAX : timeout_ms * USEC_PER_MSEC;

        (void) sd_event_source_set_time_relative(s->timer, usec);
        (void) sd_event_source_set_enabled(s->timer, SD_EVENT_ONESHOT);
}

static int http_io_handler(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        http_server_run(userdata);
        return 0;
}

static int http_timer_handler(sd_event_source *source, uint64_t usec, void *userdata) {
        http_server_run(userdata);
        return 0;
}

static enum MHD_Result reply_method_not_allowed(HttpRequest *req) {
        HttpServer *s = req->server;
        _cleanup_(MHD_destroy_responsep) struct MHD_Response *resp = NULL;
        char allow[256] = "";
        size_t n = 0;

        for (size_t i = 0; i < s->n_routes; i++)
                if (streq(s->routes[i].path, req->path) && n < sizeof allow) {
                        int k = snprintf(allow + n, sizeof allow - n, "%s%s", n > 0 ? ", " : "", s->routes[i].method);
                        n += k > 0 ? (size_t) k : 0;
                }
        resp = http_error_response_new("Method not allowed.");
        if (resp && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) == MHD_NO) {
                MHD_destroy_response(resp);
                resp = NULL;    /* http_request_answer() drops the connection */
        }
        (void) http_request_answer(req, MHD_HTTP_METHOD_NOT_ALLOWED, TAKE_PTR(resp));
        return req->drop ? MHD_NO : MHD_YES;
}

/* First call for a request: only the headers are known. Refusals that need
 * no body go out now, so that the body is never read. */
static enum MHD_Result request_begin(HttpRequest *req) {
        HttpServer *s = req->server;
        bool path_known = false;
        const char *v;
        uint64_t length;

        for (size_t i = 0; i < s->n_routes && !req->route; i++)
                if (streq(s->routes[i].path, req->path)) {
                        path_known = true;
                        if (streq(s->routes[i].method, req->method))
                                req->route = &s->routes[i];
                }
        if (!path_known)
                (void) http_reply_error(req, MHD_HTTP_NOT_FOUND, "Unknown path %s.", req->path);
        else if (!req->route)
                return reply_method_not_allowed(req);
        else if (s->authorize && !s->authorize(req, req->route->access, s->userdata)) {
                /* Refused: answered, and the body is never read. */
                if (!req->answered)
                        (void) http_reply_error(req, MHD_HTTP_FORBIDDEN, "Forbidden.");
        } else {
                v = MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (v && safe_atou64(v, &length) < 0)
                        (void) http_reply_error(req, MHD_HTTP_BAD_REQUEST, "Invalid Content-Length.");
                else if (v && length > s->max_body)
                        (void) http_reply_error(req, HTTP_STATUS_TOO_LARGE,
                                                "Request body of %s bytes is over the limit of %zu bytes.", v, s->max_body);
                else if (v && length > 0) {
                        /* Not all of it on a promise: memory follows the bytes that arrive. */
                        size_t first = (size_t) MIN(length, (uint64_t) HTTP_BODY_FIRST_ALLOC);

                        req->body = malloc(first + 1);
                        if (!req->body)
                                return MHD_NO;
                        req->body_allocated = first + 1;
                }
        }
        return req->drop ? MHD_NO : MHD_YES;
}

static enum MHD_Result request_add_body(HttpRequest *req, const char *data, size_t size) {
        size_t max = req->server->max_body;

        if (!req->too_large && size > max - req->body_size) {
                req->too_large = true;
                free(req->body);
                req->body = NULL;
                req->body_size = req->body_allocated = 0;
        }
        if (req->too_large) {
                req->discarded += size;
                return req->discarded > HTTP_DISCARD_MAX ? MHD_NO : MHD_YES;
        }

        if (req->body_size + size + 1 > req->body_allocated) {
                /* Grow by doubling, never past the limit (+1 for the NUL). */
                size_t want = MAX(req->body_size + size, MIN(max, MAX(req->body_allocated * 2, (size_t) 4096)));
                uint8_t *p = realloc(req->body, want + 1);

                if (!p)
                        return MHD_NO;
                req->body = p;
                req->body_allocated = want + 1;
        }
        memcpy(req->body + req->body_size, data, size);
        req->body_size += size;
        req->body[req->body_size] = '\0';
        return MHD_YES;
}

static enum MHD_Result request_dispatch(HttpRequest *req) {
        int r;

        if (req->too_large) {
                (void) http_reply_error(req, HTTP_STATUS_TOO_LARGE,
                                        "Request body is over the limit of %zu bytes.", req->server->max_body);
                return req->drop ? MHD_NO : MHD_YES;
        }

        r = req->route->handler(req, req->server->userdata);
        if (!req->answered && !req->deferred) {
                if (r < 0)
                        log_warning_errno(r, "Handler for %s %s failed: %m", req->method, req->path);
                else
                        log_error("Handler for %s %s returned without an answer.", req->method, req->path);
                (void) http_reply_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error.");
        }
        return req->drop ? MHD_NO : MHD_YES;
}

/* Back after http_defer(): the answer was made meanwhile. */
static enum MHD_Result request_resumed(HttpRequest *req) {
        _cleanup_(MHD_destroy_responsep) struct MHD_Response *resp = TAKE_PTR(req->pending);

        if (req->drop)
                return MHD_NO;
        if (!resp)
                return MHD_YES;
        return MHD_queue_response(req->connection, req->pending_status, resp);
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *connection, const char *url,
                                      const char *method, const char *version, const char *upload_data,
                                      size_t *upload_data_size, void **req_cls) {
        HttpServer *s = cls;
        HttpRequest *req = *req_cls;
        enum MHD_Result ret;

        if (!req) {
                req = calloc(1, sizeof *req);
                if (!req)
                        return MHD_NO;
                *req = (HttpRequest) {
                        .server = s,
                        .connection = connection,
                        .method = method,
                        .path = url,
                        .start_usec = now_usec(CLOCK_MONOTONIC),
                };
                *req_cls = req;
                req->in_handler = true;
                ret = request_begin(req);
        } else if (req->deferred)
                ret = request_resumed(req);
        else if (*upload_data_size > 0) {
                size_t size = *upload_data_size;

                *upload_data_size = 0;
                ret = req->answered ? MHD_YES : request_add_body(req, upload_data, size);
        } else {
                req->in_handler = true;
                ret = req->answered ? MHD_YES : request_dispatch(req);
        }
        req->in_handler = false;
        return ret;
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                              enum MHD_RequestTerminationCode toe) {
        HttpRequest *req = *req_cls;

        if (!req)
                return;
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
                log_debug("HTTP request %s %s ended before its answer was sent (reason %d).",
                          req->method, req->path, (int) toe);
        *req_cls = NULL;
        request_free(req);
}

_printf_(2, 0)
static void mhd_logger(void *cls, const char *format, va_list ap) {
        HttpServer *s = cls;
        uint64_t suppressed = 0;
        char buf[1024];
        size_t n;

        /* Once serving, its messages are about single clients. */
        if (s->started && !ratelimit_below(&s->client_log, now_usec(CLOCK_MONOTONIC), &suppressed))
                return;
        (void) vsnprintf(buf, sizeof buf, format, ap);
        n = strlen(buf);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = '\0';
        if (suppressed > 0)
                log_notice("libmicrohttpd: %s (and %" PRIu64 " messages about clients not logged before it)",
                           buf, suppressed);
        else
                log_full(s->started ? LOG_NOTICE : LOG_WARNING, "libmicrohttpd: %s", buf);
}

static int sockaddr_parse(const char *address, uint16_t port, struct sockaddr_storage *ret, bool *ret_ipv6) {
        struct sockaddr_in *in = (struct sockaddr_in *) ret;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ret;

        *ret = (struct sockaddr_storage) {};
        *ret_ipv6 = false;
        if (!address || inet_pton(AF_INET, address, &in->sin_addr) == 1) {
                in->sin_family = AF_INET;
                in->sin_port = htons(port);
                if (!address)
                        in->sin_addr.s_addr = htonl(INADDR_ANY);
                return 0;
        }
        if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons(port);
                *ret_ipv6 = true;
                return 0;
        }
        return -EINVAL;
}

int http_server_new(HttpServer **ret, sd_event *e, const char *address, uint16_t port,
                    const HttpRoute *routes, size_t n_routes, size_t max_body, void *userdata) {
        return http_server_new_tls(ret, e, address, port, routes, n_routes, max_body, NULL, userdata);
}

int http_server_new_tls(HttpServer **ret, sd_event *e, const char *address, uint16_t port,
                        const HttpRoute *routes, size_t n_routes, size_t max_body, TlsMaterial *tls,
                        void *userdata) {
        _cleanup_(http_server_freep) HttpServer *s = NULL;
        struct MHD_OptionItem tls_options[3];
        const union MHD_DaemonInfo *info;
        struct sockaddr_storage sa;
        unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        bool ipv6;
        int r;

        r = sockaddr_parse(address, port, &sa, &ipv6);
        if (r < 0)
                return r;
        if (ipv6)
                flags |= MHD_USE_IPv6;

        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        s->routes = routes;
        s->n_routes = n_routes;
        s->max_body = max_body;
        s->userdata = userdata;
        s->client_log = RATELIMIT_INIT(HTTP_CLIENT_LOG_INTERVAL_USEC, HTTP_CLIENT_LOG_BURST);
        r = http_tls_setup(s, tls, &flags, tls_options);
        if (r < 0)
                return r;

        errno = 0;
        s->daemon = MHD_start_daemon(flags, port, NULL, NULL, access_handler, s,
                                     MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, s,
                                     MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sa,
                                     MHD_OPTION_CONNECTION_TIMEOUT, HTTP_CONNECTION_TIMEOUT_SEC,
                                     MHD_OPTION_CONNECTION_LIMIT, HTTP_CONNECTION_LIMIT,
                                     MHD_OPTION_CONNECTION_MEMORY_LIMIT, HTTP_CONNECTION_MEMORY_LIMIT,
                                     MHD_OPTION_NOTIFY_COMPLETED, request_completed, s,
                                     MHD_OPTION_ARRAY, tls_options,
                                     MHD_OPTION_END);
        if (!s->daemon)
                return errno > 0 ? -errno : -EIO;   /* MHD logged why through mhd_logger */

        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        if (!info)
                return -EIO;
        r = sd_event_add_io(e, &s->io, info->epoll_fd, EPOLLIN, http_io_handler, s);
        if (r < 0)
                return r;
        /* Accuracy 1us, not sd-event's default 250ms: a resumed request must not wait. */
        r = sd_event_add_time_relative(e, &s->timer, CLOCK_MONOTONIC, 0, 1, http_timer_handler, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->io, "http-io");
        (void) sd_event_source_set_description(s->timer, "http-timer");

        info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
        s->port = info ? info->port : port;
        s->started = true;

        *ret = TAKE_PTR(s);
        return 0;
}

HttpServer *http_server_free(HttpServer *s) {
        if (!s)
                return NULL;
        s->observer = NULL;     /* what ends now ends with the daemon, not with its clients */
        s->io = sd_event_source_disable_unref(s->io);
        s->timer = sd_event_source_disable_unref(s->timer);
        if (s->daemon) {
                /* MHD refuses to stop with suspended connections: resume them, to be closed. */
                while (s->deferred) {
                        HttpRequest *req = s->deferred;

                        http_request_unlink_deferred(req);
                        req->drop = true;
                        MHD_resume_connection(req->connection);
                }
                MHD_stop_daemon(s->daemon);
        }
        http_tls_done(s);
        sd_event_unref(s->event);
        free(s);
        return NULL;
}

uint16_t http_server_port(const HttpServer *s) {
        return s->port;
}

void http_server_set_authorize(HttpServer *s, http_authorize_t authorize) {
        s->authorize = authorize;
}

void http_server_set_observer(HttpServer *s, http_observer_t observer, void *userdata) {
        s->observer = observer;
        s->observer_userdata = userdata;
}

