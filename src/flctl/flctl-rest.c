/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "flctl-args.h"
#include "flctl-backend.h"
#include "json-util.h"
#include "curl-util.h"
#include "log.h"

/* The largest reply we read: /nodes of a big cluster is far smaller, and a
 * peer that sends more is not a scheduler we want to buffer for. */
#define REST_BODY_MAX (16U * 1024U * 1024U)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all);

typedef struct RestBackend {
        Backend backend;
        char *url;              /* the base URL, without a trailing slash */
        char *authorization;    /* "Authorization: Bearer TOKEN", or NULL */
        CURL *curl;             /* reused, so that later verbs keep the connection */
        char errbuf[CURL_ERROR_SIZE];   /* lives as long as the handle that writes it */
} RestBackend;

static int curl_error_to_errno(CURLcode code) {
        switch (code) {
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

/* The reply's error_message, or NULL when there is none worth printing. */
static char *reply_error_message(json_object *reply) {
        const char *message;

        if (!reply || json_get_string(reply, "error_message", &message) < 0 || isempty(message))
                return NULL;
        return message_sanitize(message);
}

static int rest_setup(RestBackend *b, const char *method, const char *url, const char *request,
                      CurlBody *body, struct curl_slist *headers) {
        long timeout_ms = (long) MAX(b->backend.timeout_usec / USEC_PER_MSEC, (uint64_t) 1);
        CURL *c = b->curl;

        curl_easy_reset(c);
        if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
            curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#else
            curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) REST_BODY_MAX) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_ERRORBUFFER, b->errbuf) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_body_write) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEDATA, body) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_USERAGENT, "flctl/" PACKAGE_VERSION) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) != CURLE_OK)
                return -EIO;
        if (b->backend.cacert && curl_use_ca(c, b->backend.cacert) < 0)
                return -EIO;

        /* The management API's POSTs without a request body send none, with
         * no form Content-Type, as `curl -X POST` or requests.post() do.
         * libcurl does not copy the body: the caller keeps it until the end. */
        if (streq(method, "POST") &&
            (curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK ||
             curl_easy_setopt(c, CURLOPT_POSTFIELDS, request ?: "") != CURLE_OK ||
             curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) (request ? strlen(request) : 0))
             != CURLE_OK))
                return -EIO;
        return 0;
}

/* One request, with request (a JSON object) as the body of a POST if it is
 * not NULL; on success the reply is a JSON object whose "code" is "0".
 * Logs every failure, with the scheduler's own words for a refusal. */
static int rest_request(RestBackend *b, const char *method, const char *path, json_object *request,
                        json_object **ret) {
        _cleanup_(curl_slist_free_allp) struct curl_slist *headers = NULL;
        _cleanup_(json_object_putp) json_object *reply = NULL;
        _cleanup_free_ char *url = NULL, *message = NULL;
        _cleanup_(curl_body_done) CurlBody body = { .max = REST_BODY_MAX };
        const char *code, *request_text = NULL;
        CURLcode cc;
        long status = 0;
        int r;

        if (asprintf(&url, "%s%s", b->url, path) < 0)
                return log_oom();
        headers = curl_slist_append(NULL, "Accept: application/json");
        if (!headers)
                return log_oom();
        if (b->authorization) {
                struct curl_slist *more = curl_slist_append(headers, b->authorization);

                if (!more)
                        return log_oom();
                headers = more;
        }
        if (request) {
                request_text = json_object_to_json_string_ext(request, JSON_C_TO_STRING_PLAIN);
                if (!request_text)
                        return log_oom();
        }
        if (streq(method, "POST")) {
                /* An empty value drops curl's default form type. */
                struct curl_slist *more = curl_slist_append(headers, request ? "Content-Type: application/json"
                                                                             : "Content-Type:");
                if (!more)
                        return log_oom();
                headers = more;
        }

        b->errbuf[0] = '\0';
        /* Fails only when libcurl is out of memory or lacks an option. */
        r = rest_setup(b, method, url, request_text, &body, headers);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the request %s %s with libcurl.", method, url);

        cc = curl_easy_perform(b->curl);
        if (body.too_large || cc == CURLE_FILESIZE_EXCEEDED)
                return log_error_errno(-EFBIG, "The reply to %s %s is larger than %u MiB.",
                                       method, url, REST_BODY_MAX / 1024U / 1024U);
        if (cc == CURLE_OPERATION_TIMEDOUT)
                return log_error_errno(-ETIMEDOUT,
                                       "The scheduler at %s did not answer %s %s within %.3g s (see --timeout).",
                                       b->url, method, path,
                                       (double) b->backend.timeout_usec / (double) USEC_PER_SEC);
        if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
                return log_error_errno(-EKEYREJECTED, "The scheduler at %s shows a certificate flctl does not trust "
                                       "(%s); give the cluster's CA with --cacert.", b->url,
                                       b->errbuf[0] ? b->errbuf : curl_easy_strerror(cc));
        if (cc != CURLE_OK)
                return log_error_errno(curl_error_to_errno(cc), "Failed to connect to the scheduler at %s: %s",
                                       b->url, b->errbuf[0] ? b->errbuf : curl_easy_strerror(cc));
        (void) curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &status);

        /* Parsed before the status check: a refusal explains itself in JSON
         * too. reply stays NULL when the body is not a JSON object. */
        (void) json_parse_object((const char *) body.data, body.size, &reply);

        if (status == 401 || status == 403) {
                message = reply_error_message(reply);
                return log_error_errno(-EACCES, "The scheduler at %s refused %s %s: %s%s", b->url, method, path,
                                       message ?: (status == 401 ? "no valid token." : "not allowed."),
                                       status == 401 && !b->authorization ?
                                       " Give flctl --token-file FILE (or $" FLCTL_TOKEN_FILE_ENV ")." : "");
        }
        if (status < 200 || status > 299) {
                message = reply_error_message(reply);
                if (message)
                        return log_error_errno(-EREMOTEIO, "%s", message);
                return log_error_errno(-EPROTO, "The scheduler at %s answered %s %s with HTTP status %ld.",
                                       b->url, method, path, status);
        }
        if (!reply)
                return log_error_errno(-EBADMSG, "The reply to %s %s is not a JSON object.", method, url);
        if (json_get_string(reply, "code", &code) < 0 || !streq(code, "0")) {
                message = reply_error_message(reply);
                if (message)
                        return log_error_errno(-EREMOTEIO, "%s", message);
                return log_error_errno(-EBADMSG, "The reply to %s %s carries no success code.", method, url);
        }

        *ret = TAKE_PTR(reply);
        return 0;
}

static int rest_list_nodes(Backend *backend, NodeList *ret) {
        _cleanup_(json_object_putp) json_object *reply = NULL;
        int r;

        r = rest_request((RestBackend *) backend, "GET", "/nodes", NULL, &reply);
        if (r < 0)
                return r;
        r = nodes_from_json(reply, ret);
        if (r == -EBADMSG)
                return log_error_errno(r, "The reply to GET /nodes has a missing or malformed field.");
        if (r < 0)
                return log_oom();
        return 0;
}

static int rest_get_state(Backend *backend, char **ret) {
        _cleanup_(json_object_putp) json_object *reply = NULL;
        int r;

        r = rest_request((RestBackend *) backend, "GET", "/state", NULL, &reply);
        if (r < 0)
                return r;
        r = state_from_json(reply, ret);
        if (r == -EBADMSG)
                return log_error_errno(r, "The reply to GET /state has a missing or malformed cluster_state.");
        if (r < 0)
                return log_oom();
        return 0;
}

static int rest_finish(Backend *backend, NodeList *ret) {
        _cleanup_(json_object_putp) json_object *reply = NULL;
        int r;

        r = rest_request((RestBackend *) backend, "POST", "/finish", NULL, &reply);
        if (r < 0)
                return r;
        r = stopped_from_json(reply, ret);
        if (r == -EBADMSG)
                return log_error_errno(r, "The reply to POST /finish has a missing or malformed field.");
        if (r < 0)
                return log_oom();
        return 0;
}

/* A POST whose reply says no more than its message. */
static int rest_post(Backend *backend, const char *path, json_object *request, char **ret_message) {
        _cleanup_(json_object_putp) json_object *reply = NULL;
        int r;

        r = rest_request((RestBackend *) backend, "POST", path, request, &reply);
        if (r < 0)
                return r;
        r = message_from_json(reply, ret_message);
        if (r == -EBADMSG)
                return log_error_errno(r, "The reply to POST %s carries no message.", path);
        if (r < 0)
                return log_oom();
        return 0;
}

static int rest_scale_out(Backend *backend, uint32_t server_num, char **ret_message) {
        _cleanup_(json_object_putp) json_object *request = json_object_new_object();

        /* MindSpore's body: workers are not ours, but scripts send the field. */
        if (!request ||
            json_object_object_add(request, "worker_num", json_object_new_int(0)) < 0 ||
            json_object_object_add(request, "server_num", json_object_new_int64(server_num)) < 0)
                return log_oom();
        return rest_post(backend, "/scaleout", request, ret_message);
}

static int rest_scale_in(Backend *backend, char *const *node_ids, size_t n, char **ret_message) {
        _cleanup_(json_object_putp) json_object *request = json_object_new_object();
        json_object *ids = json_object_new_array();

        if (!request || !ids || json_object_object_add(request, "node_ids", ids) < 0) {
                json_object_put(ids);
                return log_oom();
        }
        for (size_t i = 0; i < n; i++) {
                json_object *id = json_object_new_string(node_ids[i]);

                if (!id || json_object_array_add(ids, id) < 0) {
                        json_object_put(id);
                        return log_oom();
                }
        }
        return rest_post(backend, "/scalein", request, ret_message);
}

static int rest_new_instance(Backend *backend, json_object *params, char **ret_message) {
        return rest_post(backend, "/newInstance", params, ret_message);
}

static int rest_query_instance(Backend *backend, json_object **ret) {
        _cleanup_(json_object_putp) json_object *reply = NULL;
        int r;

        r = rest_request((RestBackend *) backend, "GET", "/queryInstance", NULL, &reply);
        if (r < 0)
                return r;
        r = instance_from_json(reply, ret);
        if (r < 0)
                return log_error_errno(r, "The reply to GET /queryInstance has a missing or malformed result.");
        return 0;
}

static int rest_set_enabled(Backend *backend, bool enable, char **ret_message) {
        return rest_post(backend, enable ? "/enableFLS" : "/disableFLS", NULL, ret_message);
}

static void rest_backend_free(Backend *backend) {
        RestBackend *b = (RestBackend *) backend;

        curl_easy_cleanup(b->curl);
        curl_global_cleanup();
        free(b->url);
        if (b->authorization) {
                explicit_bzero(b->authorization, strlen(b->authorization));
                free(b->authorization);
        }
        free(b);
}

static const BackendVTable rest_vtable = {
        .list_nodes = rest_list_nodes,
        .get_state = rest_get_state,
        .finish = rest_finish,
        .scale_out = rest_scale_out,
        .scale_in = rest_scale_in,
        .new_instance = rest_new_instance,
        .query_instance = rest_query_instance,
        .set_enabled = rest_set_enabled,
        .free = rest_backend_free,
};

int rest_backend_new(const char *url, const char *token, Backend **ret) {
        _cleanup_(curl_easy_cleanupp) CURL *curl = NULL;
        _cleanup_free_ char *base = NULL, *authorization = NULL;
        RestBackend *b;
        size_t n;

        base = strdup(url);
        if (!base)
                return log_oom();
        /* The verbs' paths start with '/'; "http://host:11202/" must not give "//nodes". */
        n = strlen(base);
        while (n > 0 && base[n - 1] == '/')
                base[--n] = '\0';

        if (token && asprintf(&authorization, "Authorization: Bearer %s", token) < 0)
                return log_oom();

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return log_error_errno(-EIO, "Failed to initialize libcurl.");
        curl = curl_easy_init();
        b = curl ? calloc(1, sizeof *b) : NULL;
        if (!b) {
                curl_global_cleanup();
                return log_oom();
        }
        b->backend.vtable = &rest_vtable;
        b->url = TAKE_PTR(base);
        b->authorization = TAKE_PTR(authorization);
        b->curl = TAKE_PTR(curl);
        *ret = &b->backend;
        return 0;
}
