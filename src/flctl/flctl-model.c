/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "fl-model-io.h"
#include "flctl-model.h"
#include "flctl-safetensors.h"
#include "json-util.h"
#include "curl-util.h"
#include "log.h"
#include "util.h"

void model_download_done(ModelDownload *d) {
        free(d->data);
        model_free(d->model);
        free(d->url);
        *d = (ModelDownload) {};
}

static int model_url(const NodeInfo *n, int64_t iteration, bool https, char **ret) {
        /* An IPv6 literal goes in brackets. */
        bool v6 = strchr(n->address, ':');
        const char *scheme = https ? "https" : "http";
        int k;

        if (iteration >= 0)
                k = asprintf(ret, "%s://%s%s%s:%u/model?iteration=%" PRIi64, scheme, v6 ? "[" : "", n->address,
                             v6 ? "]" : "", n->port, iteration);
        else
                k = asprintf(ret, "%s://%s%s%s:%u/model", scheme, v6 ? "[" : "", n->address, v6 ? "]" : "",
                             n->port);
        return k < 0 ? -ENOMEM : 0;
}

/* The reason of a JSON refusal ({"error_message":...} or "message"), made safe. */
static char *refusal_message(const CurlBody *b) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *m;

        if (json_parse_object((const char *) b->data, b->size, &o) < 0)
                return NULL;
        if (json_get_string(o, "error_message", &m) < 0 && json_get_string(o, "message", &m) < 0)
                return NULL;
        return message_sanitize(m);
}

static int fetch_one(CURL *c, const char *url, uint64_t timeout_usec, const char *cacert, ModelDownload *ret) {
        _cleanup_(curl_body_done) CurlBody body = { .max = FL_MODEL_FILE_MAX };
        _cleanup_free_ char *message = NULL;
        _cleanup_(model_freep) Model *m = NULL;
        char errbuf[CURL_ERROR_SIZE] = "";
        long status = 0;
        CURLcode cc;
        int r;

        curl_easy_reset(c);
        if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
            curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#else
            curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOPROXY, "*") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) MAX(timeout_usec / USEC_PER_MSEC, (uint64_t) 1)) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) FL_MODEL_FILE_MAX) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_body_write) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &body) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_USERAGENT, "flctl/" PACKAGE_VERSION) != CURLE_OK ||
            (cacert && curl_use_ca(c, cacert) < 0))
                return log_warning_errno(-EIO, "Failed to set up GET %s with libcurl.", url);

        cc = curl_easy_perform(c);
        (void) curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
        if (body.too_large || cc == CURLE_FILESIZE_EXCEEDED)
                return log_warning_errno(-EFBIG, "The model at %s is larger than %zu MiB.",
                                         url, FL_MODEL_FILE_MAX / 1024 / 1024);
        if (cc != CURLE_OK)
                return log_warning_errno(cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH,
                                         "Failed to download %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
        (void) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) {
                message = refusal_message(&body);
                return log_warning_errno(status == 404 ? -ENOENT : -EREMOTEIO, "%s answered HTTP %ld%s%s", url,
                                         status, message ? ": " : ".", message ?: "");
        }

        /* The codec verifies every offset; the buffer is malloc()ed, so aligned. */
        r = fl_model_decode(body.data, body.size, &m);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0 || m->n_tensors == 0)
                return log_warning_errno(-EBADMSG, "%s sent something that is not a model (FeatureMapList).", url);

        *ret = (ModelDownload) {
                .data = TAKE_PTR(body.data),
                .size = body.size,
                .model = TAKE_PTR(m),
        };
        ret->url = strdup(url);
        if (!ret->url) {
                model_download_done(ret);
                return log_oom();
        }
        return 0;
}

int model_download(const NodeList *nodes, int64_t iteration, uint64_t timeout_usec, const char *cacert, bool https,
                   ModelDownload *ret) {
        _cleanup_(curl_easy_cleanupp) CURL *c = NULL;
        size_t tried = 0;
        int r = -ENXIO;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return log_error_errno(-EIO, "Failed to initialize libcurl.");
        c = curl_easy_init();
        if (!c) {
                curl_global_cleanup();
                return log_oom();
        }

        for (size_t i = 0; i < nodes->n; i++) {
                const NodeInfo *n = nodes->nodes + i;
                _cleanup_free_ char *url = NULL;

                if (!streq(n->role, "SERVER") || !n->alive || isempty(n->address) || n->port == 0)
                        continue;
                r = model_url(n, iteration, https, &url);
                if (r < 0) {
                        r = log_oom();
                        break;
                }
                tried++;
                r = fetch_one(c, url, timeout_usec, cacert, ret);
                if (r >= 0 || r == -ENOMEM)
                        break;
        }

        curl_easy_cleanup(TAKE_PTR(c));
        curl_global_cleanup();
        if (tried == 0)
                return log_error_errno(-ENXIO, "The scheduler knows no alive server with an address.");
        if (r == -ENOENT && iteration >= 0)
                return log_error_errno(r, "No server has the model of iteration %" PRIi64 ".", iteration);
        if (r < 0 && r != -ENOMEM)
                return log_error_errno(r, "No server could provide the model (%zu tried).", tried);
        return r;
}

static bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), k = strlen(suffix);

        return n >= k && streq(s + n - k, suffix);
}

int model_write(const char *path, const ModelDownload *d, int64_t iteration) {
        _cleanup_free_ uint8_t *st = NULL;
        char iter[32];
        size_t size;
        int r;

        if (!endswith(path, ".safetensors")) {
                r = write_data_atomic(path, d->data, d->size);
                if (r < 0)
                        return log_error_errno(r, "Failed to write %s: %m", path);
                return 0;
        }

        snprintf(iter, sizeof iter, "%" PRIi64, iteration);
        r = safetensors_encode(d->model,
                               iteration >= 0 ? (const char *const[]) { "format", "pt", "producer", "flcluster",
                                                                        "iteration", iter, NULL }
                                              : (const char *const[]) { "format", "pt", "producer", "flcluster", NULL },
                               &st, &size);
        if (r == -EINVAL)
                return log_error_errno(r, "The model's tensor names cannot be written as safetensors.");
        if (r < 0)
                return log_oom();
        r = write_data_atomic(path, st, size);
        if (r < 0)
                return log_error_errno(r, "Failed to write %s: %m", path);
        return 0;
}
