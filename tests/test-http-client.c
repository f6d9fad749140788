/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* HttpClient against an HttpServer on 127.0.0.1:0 in the same sd-event loop:
 * one thread, both sides driven by the loop. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "http-client.h"
#include "http.h"
#include "log.h"
#include "util.h"

#define SMALL_SIZE 100U
#define BIG_SIZE ((size_t) 3 * 1024 * 1024 + 7)
#define TEST_TIMEOUT_USEC (10U * USEC_PER_SEC)

typedef struct Fixture {
        sd_event *event;
        HttpServer *server;
        HttpClient *client;
        uint8_t *big;
        HttpRequest *silent[4];
        size_t n_silent;
} Fixture;

typedef struct Result {
        Fixture *f;
        bool done;
        int error;
        unsigned status;
        uint8_t *body;
        size_t size;
        bool nul_terminated;
        uint64_t finished_usec;
        /* Things to do inside the callback. */
        bool free_client;
        HttpGet *cancel;
        struct Result *chain;
        const char *chain_path;
} Result;

static uint8_t pattern(size_t i) {
        return (uint8_t) (i * 7 + i / 251);
}

/* ---- the server ---- */

static int handle_small(HttpRequest *req, void *userdata) {
        uint8_t buf[SMALL_SIZE];

        for (size_t i = 0; i < sizeof buf; i++)
                buf[i] = pattern(i);
        return http_reply(req, 200, "application/octet-stream", buf, sizeof buf);
}

static int handle_big(HttpRequest *req, void *userdata) {
        Fixture *f = userdata;

        return http_reply(req, 200, "application/octet-stream", f->big, BIG_SIZE);
}

static int handle_empty(HttpRequest *req, void *userdata) {
        return http_reply(req, 204, "text/plain", "", 0);
}

static int handle_silent(HttpRequest *req, void *userdata) {
        Fixture *f = userdata;

        /* Never answered: the server drops it when it is freed. */
        assert_true(f->n_silent < ELEMENTSOF(f->silent));
        f->silent[f->n_silent++] = req;
        return http_defer(req);
}

static const HttpRoute routes[] = {
        { "GET", "/small", handle_small },
        { "GET", "/big", handle_big },
        { "GET", "/empty", handle_empty },
        { "GET", "/silent", handle_silent },
};

/* ---- the client ---- */

static int start(Fixture *f, const char *path, size_t max_size, uint64_t timeout_usec, Result *res, HttpGet **ret);

static void on_done(int error, unsigned status, const uint8_t *body, size_t size, void *userdata) {
        Result *res = userdata;

        assert_false(res->done);
        assert_non_null(body);
        res->done = true;
        res->error = error;
        res->status = status;
        res->size = size;
        res->nul_terminated = body[size] == 0;
        res->body = malloc(size + 1);
        assert_non_null(res->body);
        memcpy(res->body, body, size + 1);
        res->finished_usec = now_usec(CLOCK_MONOTONIC);

        if (res->cancel)
                assert_null(http_get_cancel(res->cancel));
        if (res->chain)
                assert_int_equal(start(res->f, res->chain_path, 4096, TEST_TIMEOUT_USEC, res->chain, NULL), 0);
        if (res->free_client)
                res->f->client = http_client_free(res->f->client);
}

static int start(Fixture *f, const char *path, size_t max_size, uint64_t timeout_usec, Result *res, HttpGet **ret) {
        char url[128];

        res->f = f;
        snprintf(url, sizeof url, "http://127.0.0.1:%u%s", http_server_port(f->server), path);
        return http_get_start(f->client, url, max_size, timeout_usec, on_done, res, ret);
}

static int on_test_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        bool *expired = userdata;

        *expired = true;
        return 0;
}

/* Runs the loop until *flag, or for usec when flag is NULL. */
static void run(Fixture *f, const bool *flag, uint64_t usec) {
        _cleanup_(sd_event_source_unrefp) sd_event_source *timer = NULL;
        bool expired = false;

        assert_int_equal(sd_event_add_time_relative(f->event, &timer, CLOCK_MONOTONIC, usec, 0, on_test_timeout,
                                                    &expired), 0);
        while (!expired && !(flag && *flag))
                assert_true(sd_event_run(f->event, UINT64_MAX) >= 0);
        if (flag)
                assert_true(*flag);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        f->big = malloc(BIG_SIZE);
        assert_non_null(f->big);
        for (size_t i = 0; i < BIG_SIZE; i++)
                f->big[i] = pattern(i);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(http_server_new(&f->server, f->event, "127.0.0.1", 0, routes, ELEMENTSOF(routes), 4096, f), 0);
        assert_int_equal(http_client_new(&f->client, f->event), 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        http_client_free(f->client);
        http_server_free(f->server);
        sd_event_unref(f->event);
        free(f->big);
        free(f);
        return 0;
}

static void result_done(Result *res) {
        free(res->body);
}

/* ---- a raw TCP peer: answers every connection with canned bytes, then closes ---- */

typedef struct Raw {
        int fd;
        sd_event_source *source;
        const char *response;
        size_t size;
} Raw;

static int on_raw_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Raw *raw = userdata;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

        if (c < 0)
                return 0;
        /* Small enough for the socket buffer: one blocking write does it. */
        assert_int_equal(write(c, raw->response, raw->size), (ssize_t) raw->size);
        close(c);
        return 0;
}

static void raw_start(Fixture *f, Raw *raw, const char *response, size_t size, char url[static 64]) {
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;

        raw->response = response;
        raw->size = size;
        raw->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(raw->fd >= 0);
        assert_int_equal(bind(raw->fd, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(listen(raw->fd, 8), 0);
        assert_int_equal(getsockname(raw->fd, (struct sockaddr *) &a, &len), 0);
        assert_int_equal(sd_event_add_io(f->event, &raw->source, raw->fd, EPOLLIN, on_raw_accept, raw), 0);
        snprintf(url, 64, "http://127.0.0.1:%u/model", ntohs(a.sin_port));
}

static void raw_stop(Raw *raw) {
        sd_event_source_disable_unref(raw->source);
        close(raw->fd);
}

/* What a peer answers with raw bytes, for a GET with a body limit of max_size. */
static void raw_get(Fixture *f, const char *response, size_t max_size, Result *res) {
        Raw raw = {};
        char url[64];

        raw_start(f, &raw, response, strlen(response), url);
        res->f = f;
        assert_int_equal(http_get_start(f->client, url, max_size, TEST_TIMEOUT_USEC, on_done, res, NULL), 0);
        run(f, &res->done, TEST_TIMEOUT_USEC);
        raw_stop(&raw);
}

/* ---- the tests ---- */

static void test_small(void **state) {
        _cleanup_(result_done) Result res = {};
        Fixture *f = *state;
        HttpGet *g = NULL;

        assert_int_equal(start(f, "/small", 4096, TEST_TIMEOUT_USEC, &res, &g), 0);
        assert_non_null(g);
        assert_false(res.done);         /* never from inside http_get_start() */
        assert_int_equal(http_client_running(f->client), 1);
        run(f, &res.done, TEST_TIMEOUT_USEC);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        assert_int_equal(res.size, SMALL_SIZE);
        assert_true(res.nul_terminated);
        for (size_t i = 0; i < SMALL_SIZE; i++)
                assert_int_equal(res.body[i], pattern(i));
        assert_int_equal(http_client_running(f->client), 0);
}

static void test_big_exact_limit(void **state) {
        _cleanup_(result_done) Result res = {};
        Fixture *f = *state;

        assert_int_equal(start(f, "/big", BIG_SIZE, TEST_TIMEOUT_USEC, &res, NULL), 0);
        run(f, &res.done, TEST_TIMEOUT_USEC);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 200);
        assert_int_equal(res.size, BIG_SIZE);
        assert_memory_equal(res.body, f->big, BIG_SIZE);
}

static void test_too_big(void **state) {
        _cleanup_(result_done) Result res = {}, res2 = {};
        Fixture *f = *state;

        assert_int_equal(start(f, "/big", BIG_SIZE - 1, TEST_TIMEOUT_USEC, &res, NULL), 0);
        run(f, &res.done, TEST_TIMEOUT_USEC);
        assert_int_equal(res.error, -EFBIG);
        assert_int_equal(res.status, 0);
        assert_int_equal(res.size, 0);

        /* A limit of zero takes only an empty body. */
        assert_int_equal(start(f, "/small", 0, TEST_TIMEOUT_USEC, &res2, NULL), 0);
        run(f, &res2.done, TEST_TIMEOUT_USEC);
        assert_int_equal(res2.error, -EFBIG);
}

static void test_empty(void **state) {
        _cleanup_(result_done) Result res = {};
        Fixture *f = *state;

        assert_int_equal(start(f, "/empty", 0, TEST_TIMEOUT_USEC, &res, NULL), 0);
        run(f, &res.done, TEST_TIMEOUT_USEC);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 204);
        assert_int_equal(res.size, 0);
        assert_true(res.nul_terminated);
}

static void test_not_found(void **state) {
        _cleanup_(result_done) Result res = {};
        Fixture *f = *state;

        assert_int_equal(start(f, "/nowhere", 4096, TEST_TIMEOUT_USEC, &res, NULL), 0);
        run(f, &res.done, TEST_TIMEOUT_USEC);
        assert_int_equal(res.error, 0);
        assert_int_equal(res.status, 404);
        assert_non_null(strstr((char *) res.body, "error_message"));
}

static void test_timeout(void **state) {
        _cleanup_(result_done) Result res = {};
        Fixture *f = *state;
        uint64_t begin = now_usec(CLOCK_MONOTONIC);

        assert_int_equal(start(f, "/silent", 4096, 300 * USEC_PER_MSEC, &res, NULL), 0);
        run(f, &res.done, TEST_TIMEOUT_USEC);
        assert_int_equal(res.error, -ETIMEDOUT);
        assert_int_equal(res.status, 0);
        assert_true(res.finished_usec - begin >= 250 * USEC_PER_MSEC);
        assert_true(res.finished_usec - begin < 5 * USEC_PER_SEC);
        assert_int_equal(f->n_silent, 1);
}

static void test_refused(void **state) {
        _cleanup_(result_done) Result res = {};
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof a;
        Fixture *f = *state;
        char url[64];
        int fd;

        /* A port that was just free: bound, never listened on, closed. */
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &a, &len), 0);
        close(fd);
        snprintf(url, sizeof url, "http://127.0.0.1:%u/", ntohs(a.sin_port));
        res.f = f;
        assert_int_equal(http_get_start(f->client, url, 4096, TEST_TIMEOUT_USEC, on_done, &res, NULL), 0);
        run(f, &res.done, TEST_TIMEOUT_USEC);
        assert_int_equal(res.error, -ECONNREFUSED);
}

static void test_bad_url(void **state) {
        _cleanup_(result_done) Result res = {};
        Fixture *f = *state;

        res.f = f;
        assert_int_equal(http_get_start(f->client, "file:///etc/passwd", 1 << 20, TEST_TIMEOUT_USEC, on_done, &res,
                                        NULL), 0);
        run(f, &res.done, TEST_TIMEOUT_USEC);
        assert_int_equal(res.error, -EINVAL);
        assert_int_equal(res.size, 0);
}

static void test_cancel(void **state) {
        _cleanup_(result_done) Result silent = {}, small = {}, other = {};
        Fixture *f = *state;
        HttpGet *g = NULL;

        /* Cancelled before it ran, and while it waits for an answer. */
        assert_int_equal(start(f, "/small", 4096, TEST_TIMEOUT_USEC, &other, &g), 0);
        assert_null(http_get_cancel(g));
        assert_int_equal(start(f, "/silent", 4096, TEST_TIMEOUT_USEC, &silent, &g), 0);
        run(f, NULL, 100 * USEC_PER_MSEC);
        assert_int_equal(f->n_silent, 1);
        assert_null(http_get_cancel(g));
        assert_int_equal(http_client_running(f->client), 0);

        /* The client goes on working; neither callback ever comes. */
        assert_int_equal(start(f, "/small", 4096, TEST_TIMEOUT_USEC, &small, NULL), 0);
        run(f, &small.done, TEST_TIMEOUT_USEC);
        assert_int_equal(small.status, 200);
        run(f, NULL, 100 * USEC_PER_MSEC);
        assert_false(silent.done);
        assert_false(other.done);
}

static void test_cancel_from_callback(void **state) {
        _cleanup_(result_done) Result silent = {}, small = {}, chained = {};
        Fixture *f = *state;
        HttpGet *g = NULL;

        assert_int_equal(start(f, "/silent", 4096, TEST_TIMEOUT_USEC, &silent, &g), 0);
        small.cancel = g;
        small.chain = &chained;
        small.chain_path = "/small";
        assert_int_equal(start(f, "/small", 4096, TEST_TIMEOUT_USEC, &small, NULL), 0);
        run(f, &chained.done, TEST_TIMEOUT_USEC);
        assert_true(small.done);
        assert_int_equal(chained.status, 200);
        assert_false(silent.done);
        assert_int_equal(http_client_running(f->client), 0);
}

static void test_free_from_callback(void **state) {
        _cleanup_(result_done) Result silent = {}, small = {}, silent2 = {};
        Fixture *f = *state;

        assert_int_equal(start(f, "/silent", 4096, TEST_TIMEOUT_USEC, &silent, NULL), 0);
        assert_int_equal(start(f, "/silent", 4096, TEST_TIMEOUT_USEC, &silent2, NULL), 0);
        small.free_client = true;
        assert_int_equal(start(f, "/small", 4096, TEST_TIMEOUT_USEC, &small, NULL), 0);
        run(f, &small.done, TEST_TIMEOUT_USEC);
        assert_null(f->client);
        run(f, NULL, 200 * USEC_PER_MSEC);
        assert_false(silent.done);
        assert_false(silent2.done);
}

static void test_many(void **state) {
        Result res[16] = {};
        Fixture *f = *state;
        bool all = false;

        for (size_t i = 0; i < ELEMENTSOF(res); i++)
                assert_int_equal(start(f, i % 2 ? "/big" : "/small", BIG_SIZE, TEST_TIMEOUT_USEC, &res[i], NULL), 0);
        for (uint64_t deadline = now_usec(CLOCK_MONOTONIC) + TEST_TIMEOUT_USEC; !all;) {
                assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
                assert_true(sd_event_run(f->event, 100 * USEC_PER_MSEC) >= 0);
                all = true;
                for (size_t i = 0; i < ELEMENTSOF(res); i++)
                        all = all && res[i].done;
        }
        for (size_t i = 0; i < ELEMENTSOF(res); i++) {
                assert_int_equal(res[i].error, 0);
                assert_int_equal(res[i].size, i % 2 ? BIG_SIZE : SMALL_SIZE);
                result_done(&res[i]);
        }
}

static void test_hostile_peers(void **state) {
        char chunked[4096];
        Fixture *f = *state;
        size_t n;

        {
                _cleanup_(result_done) Result res = {};

                raw_get(f, "garbage\r\n\r\nmore garbage", 1000, &res);
                assert_int_equal(res.error, -EPROTO);
        }
        {
                /* A length over the limit is refused before any byte of the body. */
                _cleanup_(result_done) Result res = {};

                raw_get(f, "HTTP/1.1 200 OK\r\nContent-Length: 100000000000\r\n\r\nabc", 1000, &res);
                assert_int_equal(res.error, -EFBIG);
        }
        {
                /* Fewer bytes than announced, then a close. */
                _cleanup_(result_done) Result res = {};

                raw_get(f, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1000, &res);
                assert_int_equal(res.error, -ECONNRESET);
                assert_int_equal(res.size, 0);
        }
        {
                /* No length at all: the limit is found while reading. */
                _cleanup_(result_done) Result res = {};

                n = (size_t) snprintf(chunked, sizeof chunked, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                for (int i = 0; i < 3; i++) {
                        n += (size_t) snprintf(chunked + n, sizeof chunked - n, "258\r\n");
                        memset(chunked + n, 'x', 600);
                        n += 600;
                        n += (size_t) snprintf(chunked + n, sizeof chunked - n, "\r\n");
                }
                snprintf(chunked + n, sizeof chunked - n, "0\r\n\r\n");
                raw_get(f, chunked, 1000, &res);
                assert_int_equal(res.error, -EFBIG);
        }
        {
                /* Redirects are answers, not followed. */
                _cleanup_(result_done) Result res = {};

                raw_get(f, "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n", 1000,
                        &res);
                assert_int_equal(res.error, 0);
                assert_int_equal(res.status, 302);
                assert_int_equal(res.size, 0);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_small, setup, teardown),
                cmocka_unit_test_setup_teardown(test_big_exact_limit, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
                cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
                cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
                cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_url, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_from_callback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_from_callback, setup, teardown),
                cmocka_unit_test_setup_teardown(test_many, setup, teardown),
                cmocka_unit_test_setup_teardown(test_hostile_peers, setup, teardown),
        };

        log_set_max_level(getenv("TEST_DEBUG") ? LOG_DEBUG : LOG_WARNING);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
