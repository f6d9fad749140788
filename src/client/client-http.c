/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "client-http.h"
#include "curl-util.h"
#include "util.h"

/* A reply larger than this is not a model we want: MindSpore's models go to
 * tens of MB. */
#define REPLY_MAX ((size_t) 512 * 1024 * 1024)
#define CONNECT_TIMEOUT_MS 5000L
#define BACKOFF_FIRST_USEC (100 * USEC_PER_MSEC)
#define BACKOFF_MAX_USEC (5 * USEC_PER_SEC)

struct ClientHttp {
        CURL *curl;
        struct curl_slist *headers;
        uint64_t request_timeout_usec, retry_usec;
        uint64_t jitter;        /* xorshift state: back-offs of many devices must not align */
        char *cacert;           /* --cacert, or NULL: the system's CAs */
        char errbuf[CURL_ERROR_SIZE];
        char error[512];
};

void sleep_usec(uint64_t usec) {
        struct timespec ts = {
                .tv_sec = (time_t) (usec / USEC_PER_SEC),
                .tv_nsec = (long) (usec % USEC_PER_SEC) * 1000L,
        };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

int server_list_parse(const char *s, ServerList *ret) {
        _cleanup_(server_list_done) ServerList l = {};
        _cleanup_free_ char *copy = NULL;
        char *state = NULL;

        if (isempty(s))
                return -EINVAL;
        copy = strdup(s);
        if (!copy)
                return -ENOMEM;
        /* strtok_r() would skip empty entries; "a,,b" is a typo worth refusing. */
        if (s[0] == ',' || s[strlen(s) - 1] == ',' || strstr(s, ",,"))
                return -EINVAL;

        for (char *u = strtok_r(copy, ",", &state); u; u = strtok_r(NULL, ",", &state)) {
                const char *host;
                size_t n = strlen(u);
                char **urls;

                if (strncasecmp(u, "http://", 7) == 0)
                        host = u + 7;
                else if (strncasecmp(u, "https://", 8) == 0)
                        host = u + 8;
                else
                        return -EINVAL;
                if (host[0] == '\0' || host[0] == '/')
                        return -EINVAL;
                for (const char *p = u; *p; p++)
                        if (!isgraph((unsigned char) *p))
                                return -EINVAL;
                while (n > 0 && u[n - 1] == '/')
                        u[--n] = '\0';

                urls = reallocarray(l.urls, l.n + 1, sizeof(char *));
                if (!urls)
                        return -ENOMEM;
                l.urls = urls;
                l.urls[l.n] = strdup(u);
                if (!l.urls[l.n])
                        return -ENOMEM;
                l.n++;
        }

        *ret = l;
        l = (ServerList) {};
        return 0;
}

void server_list_done(ServerList *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->urls[i]);
        free(l->urls);
        *l = (ServerList) {};
}

void http_reply_done(HttpReply *r) {
        free(r->body);
        *r = (HttpReply) {};
}

int client_http_new(ClientHttp **ret, uint64_t request_timeout_usec, uint64_t retry_usec) {
        _cleanup_(client_http_freep) ClientHttp *h = NULL;
        struct curl_slist *l;

        h = calloc(1, sizeof *h);
        if (!h)
                return -ENOMEM;
        h->request_timeout_usec = MAX(request_timeout_usec, USEC_PER_MSEC);
        h->retry_usec = retry_usec;
        h->jitter = now_usec(CLOCK_MONOTONIC) ^ (uint64_t) (uintptr_t) h ^ UINT64_C(0x9e3779b97f4a7c15);
        if (h->jitter == 0)
                h->jitter = 1;

        /* Refcounted by libcurl; fl-client calls it first from main() anyway,
         * before any thread exists. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                free(TAKE_PTR(h));
                return -EIO;
        }
        h->curl = curl_easy_init();
        if (!h->curl)
                return -ENOMEM;

        /* "Expect: 100-continue" would cost a round trip per upload. */
        l = curl_slist_append(NULL, "Content-Type: application/octet-stream");
        if (!l)
                return -ENOMEM;
        h->headers = l;
        l = curl_slist_append(h->headers, "Expect:");
        if (!l)
                return -ENOMEM;
        h->headers = l;

        *ret = TAKE_PTR(h);
        return 0;
}

ClientHttp *client_http_free(ClientHttp *h) {
        if (!h)
                return NULL;
        if (h->curl) {
                curl_easy_cleanup(h->curl);
                curl_global_cleanup();
        }
        curl_slist_free_all(h->headers);
        free(h->cacert);
        free(h);
        return NULL;
}

int client_http_set_cacert(ClientHttp *h, const char *path) {
        char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        free(h->cacert);
        h->cacert = p;
        return 0;
}

const char *client_http_error(const ClientHttp *h) {
        return h->error[0] ? h->error : "unknown error";
}

static uint64_t jittered(ClientHttp *h, uint64_t usec) {
        /* xorshift64: +-25%, so that devices that failed together do not
         * come back together. */
        h->jitter ^= h->jitter << 13;
        h->jitter ^= h->jitter >> 7;
        h->jitter ^= h->jitter << 17;
        return usec * 3 / 4 + h->jitter % (usec / 2 + 1);
}

/* The answer is one of the two plain-text sentences, maybe with a newline. */
static bool body_is_text(const CurlBody *b, const char *text) {
        size_t n = strlen(text), size = b->size;

        while (size > n && isspace(b->data[size - 1]))
                size--;
        return size == n && memcmp(b->data, text, n) == 0;
}

/* A printable excerpt of an unexpected body, for the error message. */
static void body_excerpt(const CurlBody *b, char *buf, size_t size) {
        size_t n = MIN(b->size, size - 1);

        for (size_t i = 0; i < n; i++)
                buf[i] = isprint(b->data[i]) ? (char) b->data[i] : ' ';
        buf[n] = '\0';
}

static int setup(ClientHttp *h, const char *url, const uint8_t *body, size_t size, CurlBody *reply) {
        CURL *c = h->curl;

        h->errbuf[0] = '\0';
        if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK ||
#if LIBCURL_VERSION_NUM >= 0x075500
            curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
#else
            curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS)) != CURLE_OK ||
#endif
            curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_NOPROXY, "*") != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long) (h->request_timeout_usec / USEC_PER_MSEC)) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) REPLY_MAX) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_body_write) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_WRITEDATA, reply) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_USERAGENT, "fl-client/" PACKAGE_VERSION) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_HTTPHEADER, h->headers) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_POST, 1L) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) size) != CURLE_OK)
                return -EIO;
        if (h->cacert && curl_use_ca(c, h->cacert) < 0)
                return -EIO;
        return 0;
}

typedef enum Outcome {
        OUTCOME_REPLY,          /* 200 with a body for the codec */
        OUTCOME_UNREACHABLE,    /* try the next server */
        OUTCOME_BUSY,           /* safemode or 503: this server again, later */
        OUTCOME_FINISHED,
} Outcome;

/* One exchange. Returns an Outcome, or a negative errno for what no retry
 * mends. */
static int exchange(ClientHttp *h, const char *url, const uint8_t *body, size_t size, CurlBody *reply,
                    bool *maybe_sent) {
        char excerpt[128];
        long status = 0;
        CURLcode cc;
        int r;

        r = setup(h, url, body, size, reply);
        if (r < 0) {
                snprintf(h->error, sizeof h->error, "libcurl refused an option for %s", url);
                return r;
        }

        cc = curl_easy_perform(h->curl);
        if (reply->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
                snprintf(h->error, sizeof h->error, "the reply of %s is larger than %zu MiB",
                         url, REPLY_MAX / 1024 / 1024);
                return -EFBIG;
        }
        if (cc == CURLE_OUT_OF_MEMORY) {
                snprintf(h->error, sizeof h->error, "out of memory");
                return -ENOMEM;
        }
        if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE) {
                snprintf(h->error, sizeof h->error, "%s: the server's certificate is not trusted (%s); is --cacert "
                         "the cluster's CA?", url, h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
                return -EKEYREJECTED;
        }
        if (cc != CURLE_OK) {
                snprintf(h->error, sizeof h->error, "%s: %s", url, h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
                /* Only a connection that never opened surely did not deliver it. */
                if (cc != CURLE_COULDNT_CONNECT && cc != CURLE_COULDNT_RESOLVE_HOST)
                        *maybe_sent = true;
                return OUTCOME_UNREACHABLE;
        }
        (void) curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
        *maybe_sent = true;

        if (status == 502 || status == 503 || status == 504) {
                snprintf(h->error, sizeof h->error, "%s answered HTTP %ld", url, status);
                return OUTCOME_BUSY;
        }
        if (status != 200) {
                body_excerpt(reply, excerpt, sizeof excerpt);
                snprintf(h->error, sizeof h->error, "%s answered HTTP %ld%s%s", url, status,
                         excerpt[0] ? ": " : "", excerpt);
                return -EPROTO;
        }
        if (body_is_text(reply, FL_TEXT_SAFEMODE)) {
                snprintf(h->error, sizeof h->error, "%s: %s", url, FL_TEXT_SAFEMODE);
                return OUTCOME_BUSY;
        }
        if (body_is_text(reply, FL_TEXT_FINISHED)) {
                snprintf(h->error, sizeof h->error, "%s: %s", url, FL_TEXT_FINISHED);
                return OUTCOME_FINISHED;
        }
        return OUTCOME_REPLY;
}

int client_http_round(ClientHttp *h, const ServerList *servers, size_t first, const char *round,
                      const uint8_t *body, size_t size, HttpReply *ret) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + h->retry_usec, backoff = BACKOFF_FIRST_USEC;
        size_t server = first % servers->n, unreachable_in_a_row = 0;
        bool maybe_sent = false;
        unsigned attempts = 0;

        h->error[0] = '\0';
        for (;;) {
                _cleanup_(curl_body_done) CurlBody reply = { .max = REPLY_MAX };
                _cleanup_free_ char *url = NULL;
                uint64_t now, wait;
                bool sent = false;
                int r;

                if (asprintf(&url, "%s/%s", servers->urls[server], round) < 0)
                        return -ENOMEM;
                attempts++;
                r = exchange(h, url, body, size, &reply, &sent);
                if (r < 0)
                        return r;
                if (r == OUTCOME_FINISHED)
                        return -ESHUTDOWN;
                if (r == OUTCOME_REPLY) {
                        *ret = (HttpReply) {
                                .body = TAKE_PTR(reply.data),
                                .size = reply.size,
                                .server = server,
                                .retried = maybe_sent,
                        };
                        return 0;
                }
                maybe_sent = maybe_sent || sent;

                /* A server that is down: the next one at once, and a pause only
                 * once every server has failed in a row. */
                wait = backoff;
                if (r == OUTCOME_UNREACHABLE) {
                        server = (server + 1) % servers->n;
                        if (++unreachable_in_a_row % servers->n != 0)
                                wait = 0;
                } else
                        unreachable_in_a_row = 0;

                now = now_usec(CLOCK_MONOTONIC);
                if (now + wait >= deadline) {
                        size_t n = strlen(h->error);

                        snprintf(h->error + n, sizeof h->error - n, " (gave up after %u attempts)", attempts);
                        return -ETIMEDOUT;
                }
                if (wait > 0) {
                        sleep_usec(jittered(h, wait));
                        backoff = MIN(backoff * 2, (uint64_t) BACKOFF_MAX_USEC);
                }
        }
}
