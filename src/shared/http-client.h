/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

/* Asynchronous HTTP GETs inside sd-event, on libcurl's multi interface:
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION, one
 * sd-event io source each) and when to wake it (CURLMOPT_TIMERFUNCTION,
 * one sd-event timer), and we hand every event back with
 * curl_multi_socket_action(). One loop, no threads.
 *
 * Meant for cluster-internal fetches (a server taking the model from a
 * peer): proxies from the environment are ignored, redirects are not
 * followed, only http and https are spoken. Nothing in the answer is
 * trusted: the body is bounded, every transfer has a deadline, and a peer
 * that stalls (no byte for HTTP_CLIENT_STALL_SEC) is given up on early. */

typedef struct HttpClient HttpClient;
typedef struct HttpGet HttpGet;

#define HTTP_CLIENT_STALL_SEC 15U

/* The outcome of one GET, called exactly once per started GET unless it is
 * cancelled or its client freed first; always from the event loop, never
 * from inside http_get_start().
 *
 * error is 0 when an HTTP answer came, whatever its status (200, 404, ...):
 * body (malloc()ed, so aligned for any type; NUL-terminated one byte past
 * size; never NULL) and size are the whole body, valid until the callback
 * returns. Otherwise status is 0, the body empty, and error one of
 *   -ETIMEDOUT     the deadline passed, or the peer stalled
 *   -EFBIG         the body is larger than max_size
 *   -ECONNREFUSED  nobody listens there
 *   -EHOSTUNREACH  the host cannot be resolved or reached
 *   -ECONNRESET    the connection broke, or closed without an answer
 *   -EPROTO        the answer is not HTTP
 *   -EKEYREJECTED  https: the peer's certificate is not trusted (or the
 *                  peer does not speak TLS)
 *   -EINVAL        the URL is not an http(s) URL
 *   -ENOMEM
 * The callback may cancel other GETs, start new ones, and free the client. */
typedef void (*http_get_done_t)(int error, unsigned status, const uint8_t *body, size_t size, void *userdata);

int http_client_new(HttpClient **ret, sd_event *e);
/* Cancels every GET still running (their callbacks are not called). Safe
 * from inside a callback: the memory goes once the callback returns. */
HttpClient *http_client_free(HttpClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(HttpClient *, http_client_free);

/* From now on https:// GETs trust only the CA certificates in ca_file
 * (PEM) and check the peer's against crl_file (PEM, may be NULL); the files
 * are read by each new connection. */
int http_client_set_tls(HttpClient *c, const char *ca_file, const char *crl_file);
bool http_client_has_tls(const HttpClient *c);

/* Starts GET url. max_size bounds the body (0: refused unless empty);
 * timeout_usec the whole exchange (0: one minute). ret (may be NULL)
 * receives a handle for http_get_cancel(), valid until done is called. */
int http_get_start(HttpClient *c, const char *url, size_t max_size, uint64_t timeout_usec, http_get_done_t done,
                   void *userdata, HttpGet **ret);
/* Stops a GET; its callback is not called. Returns NULL, for
 * `g = http_get_cancel(g);`. A no-op on a GET whose callback is running. */
HttpGet *http_get_cancel(HttpGet *g);
/* The number of GETs running. */
size_t http_client_running(const HttpClient *c);
