/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "scheduler-auth.h"
#include "scheduler-manager.h"

/* Who may use the REST port (docs/management-api.md, "Authentication").
 * Without management_token_file every request is served, as before; with
 * it, every request needs "Authorization: Bearer TOKEN": a reader's or an
 * operator's token for reads, an operator's for the calls that change
 * something. The check runs on the headers, before the body is read, so a
 * refused request changes nothing and costs little. D-Bus keeps its own
 * policy (units/org.flcluster.Scheduler1.conf) and needs no token. */

/* Refusals are logged, but a flood of them must not fill the journal. */
#define REFUSAL_LOG_INTERVAL_USEC (10 * USEC_PER_SEC)
#define REFUSAL_LOG_BURST 20U

#define REALM "Bearer realm=\"flcluster\""

bool auth_enabled(const Manager *m) {
        return m->config->management_token_file;
}

static void auth_log_table(const Manager *m, const char *verb) {
        size_t operators = 0;

        for (size_t i = 0; i < m->tokens.n; i++)
                if (m->tokens.entries[i].role == TOKEN_ROLE_OPERATOR)
                        operators++;
        if (m->tokens.n == 0)
                log_warning("%s %s: it holds no token, so every REST request is refused until one is added "
                            "(flctl token create) and fl-schedulerd is reloaded.", verb,
                            m->config->management_token_file);
        else
                log_notice("%s %s: %zu token%s (%zu operator, %zu reader); REST requests need one.", verb,
                           m->config->management_token_file, m->tokens.n, m->tokens.n == 1 ? "" : "s",
                           operators, m->tokens.n - operators);
}

int auth_setup(Manager *m) {
        char error[256] = "";
        int r;

        m->auth_ratelimit = RATELIMIT_INIT(REFUSAL_LOG_INTERVAL_USEC, REFUSAL_LOG_BURST);
        if (!auth_enabled(m)) {
                log_info("No management_token_file: the REST port serves every request without authentication.");
                return 0;
        }
        /* Never open for lack of a file: an operator who named one wants it. */
        r = token_table_load(m->config->management_token_file, &m->tokens, error, sizeof error);
        if (r < 0)
                return log_error_errno(r, "Failed to read the management token file %s: %s Refusing to start.",
                                       m->config->management_token_file, error);
        auth_log_table(m, "Read");
        return 0;
}

int auth_reload(Manager *m) {
        TokenTable t = {};
        char error[256] = "";
        int r;

        if (!auth_enabled(m)) {
                log_info("Reload: no management_token_file to read again.");
                return 0;
        }
        r = token_table_load(m->config->management_token_file, &t, error, sizeof error);
        if (r < 0)
                /* Neither locked out nor opened up by a typo: the old tokens stay. */
                return log_error_errno(r, "Failed to read the management token file %s again: %s "
                                       "Keeping the %zu token%s read before.",
                                       m->config->management_token_file, error, m->tokens.n,
                                       m->tokens.n == 1 ? "" : "s");
        token_table_done(&m->tokens);
        m->tokens = t;
        auth_log_table(m, "Reloaded");
        return 0;
}

void auth_done(Manager *m) {
        token_table_done(&m->tokens);
}

static void auth_log_refusal(Manager *m, HttpRequest *req, unsigned status, const char *why) {
        char call[160], peer[96], field_status[32];
        uint64_t suppressed = 0;

        if (!ratelimit_below(&m->auth_ratelimit, now_usec(CLOCK_MONOTONIC), &suppressed))
                return;
        snprintf(call, sizeof call, "FL_REST_CALL=%s %.120s", http_request_method(req), http_request_path(req));
        snprintf(peer, sizeof peer, "FL_PEER=%s", http_request_peer(req));
        snprintf(field_status, sizeof field_status, "FL_HTTP_STATUS=%u", status);
        if (suppressed > 0)
                log_struct(LOG_WARNING, FIELDS(call, peer, field_status),
                           "Refused REST call %s %.120s from %s: %s (HTTP %u); %" PRIu64 " more refusals were "
                           "not logged.", http_request_method(req), http_request_path(req),
                           http_request_peer(req), why, status, suppressed);
        else
                log_struct(LOG_WARNING, FIELDS(call, peer, field_status),
                           "Refused REST call %s %.120s from %s: %s (HTTP %u).", http_request_method(req),
                           http_request_path(req), http_request_peer(req), why, status);
}

/* The token of "Authorization: Bearer TOKEN" (RFC 6750): NULL with *ret_n 0
 * when the header is missing, NULL with *ret_n 1 when it is malformed. */
static const char *bearer_token(const char *header, size_t *ret_n) {
        static const char token68[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
        size_t n;

        *ret_n = header ? 1 : 0;
        if (!header || strncasecmp(header, "Bearer ", 7) != 0)
                return NULL;
        header += 7;
        header += strspn(header, " ");
        n = strspn(header, token68);
        n += strspn(header + n, "=");
        if (n == 0 || n > TOKEN_PRESENTED_MAX || header[n + strspn(header + n, " \t")] != '\0')
                return NULL;
        *ret_n = n;
        return header;
}

bool auth_check_rest(HttpRequest *req, int access, void *userdata) {
        Manager *m = userdata;
        const char *header, *token;
        TokenRole role;
        size_t n;

        if (!auth_enabled(m) || access == REST_ACCESS_PUBLIC)
                return true;

        header = http_request_header(req, "Authorization");
        token = bearer_token(header, &n);
        if (!header) {
                auth_log_refusal(m, req, 401, "no token");
                (void) http_reply_error_with_header(req, 401, "WWW-Authenticate", REALM,
                                                    "Authentication required: send 'Authorization: Bearer TOKEN' "
                                                    "with a token of the management token file.");
                return false;
        }
        if (!token) {
                auth_log_refusal(m, req, 401, "a malformed Authorization header");
                (void) http_reply_error_with_header(req, 401, "WWW-Authenticate", REALM ", error=\"invalid_request\"",
                                                    "The Authorization header must be 'Bearer TOKEN'.");
                return false;
        }
        role = token_table_lookup(&m->tokens, token, n);
        if (role < 0) {
                auth_log_refusal(m, req, 401, "an unknown token");
                (void) http_reply_error_with_header(req, 401, "WWW-Authenticate", REALM ", error=\"invalid_token\"",
                                                    "The token is not valid for this cluster.");
                return false;
        }
        if (access == REST_ACCESS_OPERATOR && role != TOKEN_ROLE_OPERATOR) {
                auth_log_refusal(m, req, 403, "a reader token on a call that changes the cluster");
                (void) http_reply_error_with_header(req, 403, "WWW-Authenticate",
                                                    REALM ", error=\"insufficient_scope\"",
                                                    "%s %s changes the cluster and needs an operator token; this "
                                                    "token has the role %s.", http_request_method(req),
                                                    http_request_path(req), token_role_to_string(role));
                return false;
        }
        return true;
}
