/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <curl/curl.h>
#include <limits.h>
#include <string.h>
#include <sys/epoll.h>

#include "http-client.h"
#include "log.h"

#define HTTP_CLIENT_DEFAULT_TIMEOUT_USEC (60U * USEC_PER_SEC)
#define HTTP_CLIENT_CONNECT_TIMEOUT_MSEC 10000L

/* One socket curl asked us to watch: its io source, reachable from curl's
 * per-socket pointer (curl_multi_assign) and from the client's list, which
 * teardown walks. */
typedef struct Watch {
        HttpClient *client;
        struct Watch *prev, *next;
        curl_socket_t fd;
        sd_event_source *source;
} Watch;

struct HttpGet {
        HttpClient *client;
        HttpGet *prev, *next;
        CURL *easy;
        char *url;
        uint8_t *body;
        size_t size, allocated, max_size;
        bool too_big, oom;
        bool dispatching;               /* its callback is running */
        http_get_done_t done;
        void *userdata;
        char errbuf[CURL_ERROR_SIZE];
};

struct HttpClient {
        sd_event *event;
        CURLM *multi;
        sd_event_source *timer;
        HttpGet *gets;
        size_t n_gets;
        Watch *watches;
        bool dispatching;               /* a callback may be running */
        bool freed;                     /* http_client_free() was called meanwhile */
        char *ca_file, *crl_file;       /* https: what peers are checked against */
};

/* ---- sockets and the timer, as curl asks for them ------------------------- */

static Watch *watch_free(Watch *w) {
        if (!w)
                return NULL;
        if (w->prev)
                w->prev->next = w->next;
        else if (w->client->watches == w)
                w->client->watches = w->next;
        if (w->next)
                w->next->prev = w->prev;
        sd_event_source_disable_unref(w->source);
        free(w);
        return NULL;
}

static void client_dispatch(HttpClient *c);

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        HttpClient *c = userdata;
        int action = 0, running;

        if (revents & (EPOLLIN | EPOLLPRI))
                action |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                action |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                action |= CURL_CSELECT_ERR;
        /* May drop this very source (CURL_POLL_REMOVE): sd-event holds it until we return. */
        (void) curl_multi_socket_action(c->multi, fd, action, &running);
        client_dispatch(c);
        return 0;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        HttpClient *c = userp;
        Watch *w = socketp;
        uint32_t events = 0;
        int r;

        if (what == CURL_POLL_REMOVE) {
                if (w) {
                        (void) curl_multi_assign(c->multi, fd, NULL);
                        watch_free(w);
                }
                return 0;
        }
        if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
                events |= EPOLLIN;
        if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
                events |= EPOLLOUT;

        if (w) {
                r = sd_event_source_set_io_events(w->source, events);
                if (r >= 0)
                        r = sd_event_source_set_enabled(w->source, SD_EVENT_ON);
                if (r < 0)
                        return log_debug_errno(r, "Failed to change the events of an HTTP client socket: %m"), -1;
                return 0;
        }

        w = calloc(1, sizeof *w);
        if (!w)
                return -1;
        w->client = c;
        w->fd = fd;
        r = sd_event_add_io(c->event, &w->source, fd, events, on_io, c);
        if (r < 0) {
                free(w);
                return log_debug_errno(r, "Failed to watch an HTTP client socket: %m"), -1;
        }
        (void) sd_event_source_set_description(w->source, "http-client-io");
        w->next = c->watches;
        if (w->next)
                w->next->prev = w;
        c->watches = w;
        if (curl_multi_assign(c->multi, fd, w) != CURLM_OK) {
                watch_free(w);
                return -1;
        }
        return 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
        HttpClient *c = userp;
        uint64_t usec;

        if (timeout_ms < 0)
                return sd_event_source_set_enabled(c->timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        /* Never curl_multi_socket_action() from here: the timer runs it from the loop. */
        usec = (uint64_t) timeout_ms > UINT64_MAX / USEC_PER_MSEC ? UINT64_MAX : (uint64_t) timeout_ms * USEC_PER_MSEC;
        if (sd_event_source_set_time_relative(c->timer, usec) < 0 ||
            sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT) < 0)
                return -1;
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        HttpClient *c = userdata;
        int running;

        (void) curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        client_dispatch(c);
        return 0;
}

/* ---- one GET ---------------------------------------------------------------- */

static size_t on_write(char *data, size_t size, size_t n, void *userdata) {
        HttpGet *g = userdata;
        size_t len = size * n;

        if (len > g->max_size - g->size) {
                g->too_big = true;
                return 0;       /* curl stops with CURLE_WRITE_ERROR */
        }
        if (g->size + len + 1 > g->allocated) {
                curl_off_t announced = -1;
                size_t want = MAX(g->size + len + 1, MIN(g->allocated * 2, g->max_size + 1));
                uint8_t *p;

                /* The announced length, when there is a believable one, is allocated at once. */
                if (g->allocated == 0 &&
                    curl_easy_getinfo(g->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) == CURLE_OK &&
                    announced > 0 && (uint64_t) announced <= g->max_size)
                        want = MAX(want, (size_t) announced + 1);
                p = realloc(g->body, want);
                if (!p) {
                        g->oom = true;
                        return 0;
                }
                g->body = p;
                g->allocated = want;
        }
        memcpy(g->body + g->size, data, len);
        g->size += len;
        g->body[g->size] = 0;
        return len;
}

static int error_from_curl(HttpGet *g, CURLcode code) {
        long os_errno = 0;

        if (g->too_big || code == CURLE_FILESIZE_EXCEEDED)
                return -EFBIG;
        if (g->oom)
                return -ENOMEM;
        switch (code) {
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                if (curl_easy_getinfo(g->easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno > 0 &&
                    os_errno < 4096)
                        return (int) -os_errno;
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return -ECONNRESET;
        case CURLE_OUT_OF_MEMORY:
                return -ENOMEM;
        case CURLE_UNSUPPORTED_PROTOCOL: {
                char *ip = NULL;

                /* Also what curl says of an HTTP/0.9 answer (no status line): a peer was reached then. */
                if (curl_easy_getinfo(g->easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && !isempty(ip))
                        return -EPROTO;
                return -EINVAL;
        }
        case CURLE_URL_MALFORMAT:
                return -EINVAL;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
                return -EKEYREJECTED;
        default:
                return -EPROTO;
        }
}

/* Takes g out of the multi handle and the client's list. */
static void get_unlink(HttpGet *g) {
        HttpClient *c = g->client;

        if (g->easy)
                (void) curl_multi_remove_handle(c->multi, g->easy);
        if (g->prev)
                g->prev->next = g->next;
        else if (c->gets == g)
                c->gets = g->next;
        if (g->next)
                g->next->prev = g->prev;
        g->prev = g->next = NULL;
        c->n_gets--;
}

static HttpGet *get_free(HttpGet *g) {
        if (!g)
                return NULL;
        if (g->easy)
                curl_easy_cleanup(g->easy);
        free(g->url);
        free(g->body);
        free(g);
        return NULL;
}

static void get_finish(HttpGet *g, CURLcode code) {
        static const uint8_t empty[1] = { 0 };
        long status = 0;
        int error = 0;

        get_unlink(g);
        if (code == CURLE_OK) {
                if (curl_easy_getinfo(g->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
                    status < 100 || status > 999)
                        error = -EPROTO;
        } else
                error = error_from_curl(g, code);
        if (error < 0) {
                log_debug_errno(error, "GET %s failed: %s (%m)", g->url,
                                g->errbuf[0] ? g->errbuf : curl_easy_strerror(code));
                status = 0;
                g->size = 0;
        }

        g->dispatching = true;
        g->done(error, (unsigned) status, error < 0 || !g->body ? empty : g->body, g->size, g->userdata);
        get_free(g);
}

static void client_destroy(HttpClient *c);

static void client_dispatch(HttpClient *c) {
        CURLMsg *msg;
        int left;

        c->dispatching = true;
        while (!c->freed && (msg = curl_multi_info_read(c->multi, &left))) {
                HttpGet *g = NULL;

                if (msg->msg != CURLMSG_DONE)
                        continue;
                if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &g) != CURLE_OK || !g)
                        continue;
                /* The callback may cancel others: curl drops their queued messages then. */
                get_finish(g, msg->data.result);
        }
        c->dispatching = false;
        if (c->freed)
                client_destroy(c);
}

int http_get_start(HttpClient *c, const char *url, size_t max_size, uint64_t timeout_usec, http_get_done_t done,
                   void *userdata, HttpGet **ret) {
        HttpGet *g;
        CURLcode k = CURLE_OK;
        CURLMcode mk;
        long timeout_ms;

        if (!c || !url || !done)
                return -EINVAL;
        if (c->freed)
                return -ESHUTDOWN;
        timeout_usec = timeout_usec ?: HTTP_CLIENT_DEFAULT_TIMEOUT_USEC;
        timeout_ms = (long) MIN(MAX(timeout_usec / USEC_PER_MSEC, (uint64_t) 1), (uint64_t) LONG_MAX);

        g = calloc(1, sizeof *g);
        if (!g)
                return -ENOMEM;
        g->client = c;
        g->max_size = MIN(max_size, (size_t) SIZE_MAX - 1);
        g->done = done;
        g->userdata = userdata;
        g->url = strdup(url);
        g->easy = curl_easy_init();
        if (!g->url || !g->easy) {
                get_free(g);
                return -ENOMEM;
        }

#define SET(opt, value) if (k == CURLE_OK) k = curl_easy_setopt(g->easy, opt, value)
        SET(CURLOPT_URL, url);
        SET(CURLOPT_PRIVATE, g);
        SET(CURLOPT_ERRORBUFFER, g->errbuf);
        SET(CURLOPT_WRITEFUNCTION, on_write);
        SET(CURLOPT_WRITEDATA, g);
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_HTTPGET, 1L);
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_NOPROXY, "*");
        SET(CURLOPT_TIMEOUT_MS, timeout_ms);
        SET(CURLOPT_CONNECTTIMEOUT_MS, MIN(timeout_ms, HTTP_CLIENT_CONNECT_TIMEOUT_MSEC));
        if (timeout_usec > HTTP_CLIENT_STALL_SEC * USEC_PER_SEC) {
                SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
                SET(CURLOPT_LOW_SPEED_TIME, (long) HTTP_CLIENT_STALL_SEC);
        }
        if (g->max_size > 0)    /* 0 would mean no limit to curl; on_write refuses any byte then */
                SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) MIN(g->max_size, (size_t) INT64_MAX));
#if LIBCURL_VERSION_NUM >= 0x075500
        SET(CURLOPT_PROTOCOLS_STR, "http,https");
#else
        SET(CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        if (c->ca_file) {
                SET(CURLOPT_CAINFO, c->ca_file);
                SET(CURLOPT_CAPATH, (char *) NULL);     /* the cluster's CA only */
                SET(CURLOPT_SSL_VERIFYPEER, 1L);
                SET(CURLOPT_SSL_VERIFYHOST, 2L);
        }
        if (c->crl_file)
                SET(CURLOPT_CRLFILE, c->crl_file);
#undef SET
        if (k != CURLE_OK) {
                get_free(g);
                return k == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
        }

        mk = curl_multi_add_handle(c->multi, g->easy);
        if (mk != CURLM_OK) {
                get_free(g);
                return mk == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
        }
        g->next = c->gets;
        if (g->next)
                g->next->prev = g;
        c->gets = g;
        c->n_gets++;

        if (ret)
                *ret = g;
        return 0;
}

HttpGet *http_get_cancel(HttpGet *g) {
        if (!g || g->dispatching)
                return NULL;
        get_unlink(g);
        get_free(g);
        return NULL;
}

int http_client_set_tls(HttpClient *c, const char *ca_file, const char *crl_file) {
        char *ca = NULL, *crl = NULL;

        if (!ca_file)
                return -EINVAL;
        ca = strdup(ca_file);
        if (crl_file)
                crl = strdup(crl_file);
        if (!ca || (crl_file && !crl)) {
                free(ca);
                free(crl);
                return -ENOMEM;
        }
        free(c->ca_file);
        free(c->crl_file);
        c->ca_file = ca;
        c->crl_file = crl;
        return 0;
}

bool http_client_has_tls(const HttpClient *c) {
        return c && c->ca_file;
}

size_t http_client_running(const HttpClient *c) {
        return c ? c->n_gets : 0;
}

/* ---- the client --------------------------------------------------------------- */

int http_client_new(HttpClient **ret, sd_event *e) {
        static bool curl_ready = false;
        HttpClient *c;
        int r;

        if (!curl_ready) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                        return -EIO;
                curl_ready = true;
        }

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(e);
        c->multi = curl_multi_init();
        if (!c->multi) {
                client_destroy(c);
                return -ENOMEM;
        }
        r = sd_event_add_time_relative(e, &c->timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC, on_timer, c);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        if (r < 0) {
                client_destroy(c);
                return r;
        }
        (void) sd_event_source_set_description(c->timer, "http-client-timer");

        if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
            curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
                client_destroy(c);
                return -EIO;
        }

        *ret = c;
        return 0;
}

static void client_destroy(HttpClient *c) {
        while (c->gets) {
                HttpGet *g = c->gets;

                get_unlink(g);
                get_free(g);
        }
        /* May still call on_curl_socket() to drop its sockets: everything is still here. */
        if (c->multi)
                curl_multi_cleanup(c->multi);
        while (c->watches)
                watch_free(c->watches);
        sd_event_source_disable_unref(c->timer);
        sd_event_unref(c->event);
        free(c->ca_file);
        free(c->crl_file);
        free(c);
}

HttpClient *http_client_free(HttpClient *c) {
        if (!c)
                return NULL;
        if (c->dispatching) {
                /* Inside a callback: the dispatch loop still uses c, and frees it on the way out. */
                while (c->gets) {
                        HttpGet *g = c->gets;

                        get_unlink(g);
                        get_free(g);
                }
                c->freed = true;
                return NULL;
        }
        client_destroy(c);
        return NULL;
}
