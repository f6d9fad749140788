/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* The device side of the HTTP transport: one POST of a FlatBuffers body per
 * round (device-protocol.md, "Transport"), with the retries a device needs
 * to live through a cluster that forms, scales or loses a server:
 *   - a server that cannot be reached (refused, reset, timed out): the next
 *     server of the list, after a back-off;
 *   - "The cluster is in safemode.": the same server again, after a back-off;
 * both bounded by the handle's retry budget. One handle per thread: it owns
 * a CURL easy handle, which keeps its connections alive between rounds. */

#define FL_TEXT_SAFEMODE "The cluster is in safemode."
#define FL_TEXT_FINISHED "The server's training job is disabled or finished."

/* The servers of --servers: base URLs without a trailing slash. */
typedef struct ServerList {
        char **urls;
        size_t n;
} ServerList;

/* "http://a:1,http://b:2"; -EINVAL for an empty list or entry, or anything
 * but http:// and https:// URLs. */
int server_list_parse(const char *s, ServerList *ret);
void server_list_done(ServerList *l);

typedef struct ClientHttp ClientHttp;

typedef struct HttpReply {
        uint8_t *body;          /* malloc()ed, so 4-byte aligned for the codec */
        size_t size;
        size_t server;          /* the index that answered */
        bool retried;           /* the request may have reached a server before */
} HttpReply;

void http_reply_done(HttpReply *r);

/* request_timeout_usec bounds one exchange; retry_usec all the retries of one
 * call together. */
int client_http_new(ClientHttp **ret, uint64_t request_timeout_usec, uint64_t retry_usec);
ClientHttp *client_http_free(ClientHttp *h);
/* https:// servers are checked against the CA certificates in path (PEM)
 * instead of the system's; a server whose certificate does not pass is
 * an error no retry mends (-EKEYREJECTED). */
int client_http_set_cacert(ClientHttp *h, const char *path);
DEFINE_TRIVIAL_CLEANUP_FUNC(ClientHttp *, client_http_free);

/* POSTs body to URL/round of servers->urls[first], failing over as above.
 * Returns 0 with the reply body (a buffer for the codec to verify: nothing
 * about it is trusted here); -ESHUTDOWN when the server says the job is
 * disabled or finished; -ETIMEDOUT when the retry budget ran out;
 * -EKEYREJECTED when a server's certificate is not trusted; -EPROTO
 * for an HTTP status other than 200; -EFBIG for an oversized reply;
 * -ENOMEM. client_http_error() then says what happened, for the caller's
 * log line. */
int client_http_round(ClientHttp *h, const ServerList *servers, size_t first, const char *round,
                      const uint8_t *body, size_t size, HttpReply *ret);
const char *client_http_error(const ClientHttp *h);

/* Sleeps usec; interrupted sleeps go on. */
void sleep_usec(uint64_t usec);
