/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "client-device.h"
#include "client-http.h"
#include "util.h"

/* A scripted HTTP server on a loopback port: one connection per answer,
 * each answer "STATUS BODY", and a record of the request lines and bodies. */
typedef struct Script {
        int fd;
        uint16_t port;
        const char *const *answers;
        size_t n_answers;
        size_t served;
        char last_request_line[256];
        size_t last_body_size;
        pthread_t thread;
} Script;

static void read_request(int fd, Script *s) {
        char buf[65536];
        size_t n = 0, content_length = 0;
        char *end = NULL, *cl;

        /* Headers, then Content-Length bytes of body. */
        while (n < sizeof buf - 1) {
                ssize_t k = recv(fd, buf + n, sizeof buf - 1 - n, 0);
                if (k <= 0)
                        return;
                n += (size_t) k;
                buf[n] = '\0';
                end = strstr(buf, "\r\n\r\n");
                if (end)
                        break;
        }
        if (!end)
                return;
        snprintf(s->last_request_line, sizeof s->last_request_line, "%.*s", (int) strcspn(buf, "\r"), buf);
        cl = strcasestr(buf, "Content-Length:");
        if (cl)
                content_length = strtoul(cl + 15, NULL, 10);
        s->last_body_size = n - (size_t) (end + 4 - buf);
        while (s->last_body_size < content_length) {
                ssize_t k = recv(fd, buf, sizeof buf, 0);
                if (k <= 0)
                        return;
                s->last_body_size += (size_t) k;
        }
}

static void *serve(void *arg) {
        Script *s = arg;

        for (size_t i = 0; i < s->n_answers; i++) {
                char head[256];
                const char *answer = s->answers[i], *body = strchr(answer, ' ') + 1;
                int fd = accept(s->fd, NULL, NULL);

                if (fd < 0)
                        break;
                read_request(fd, s);
                snprintf(head, sizeof head, "HTTP/1.1 %.3s X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                         answer, strlen(body));
                (void) !write(fd, head, strlen(head));
                (void) !write(fd, body, strlen(body));
                close(fd);
                s->served++;
        }
        return NULL;
}

static void script_start(Script *s, const char *const *answers, size_t n) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;

        *s = (Script) { .answers = answers, .n_answers = n };
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->fd >= 0);
        assert_int_equal(bind(s->fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(s->fd, 16), 0);
        assert_int_equal(getsockname(s->fd, (struct sockaddr *) &sa, &len), 0);
        s->port = ntohs(sa.sin_port);
        assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void script_stop(Script *s) {
        shutdown(s->fd, SHUT_RDWR);
        pthread_join(s->thread, NULL);
        close(s->fd);
}

/* A loopback port nothing listens on: bound, never listened to. */
static int dead_port(uint16_t *ret) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        *ret = ntohs(sa.sin_port);
        return fd;
}

static void servers_of(ServerList *l, const uint16_t *ports, size_t n) {
        char buf[256] = "";

        for (size_t i = 0; i < n; i++)
                snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%shttp://127.0.0.1:%u", i ? "," : "",
                         ports[i]);
        assert_int_equal(server_list_parse(buf, l), 0);
}

static void test_server_list(void **state) {
        _cleanup_(server_list_done) ServerList l = {};

        assert_int_equal(server_list_parse("http://a:1,HTTPS://b:2/", &l), 0);
        assert_int_equal(l.n, 2);
        assert_string_equal(l.urls[0], "http://a:1");
        assert_string_equal(l.urls[1], "HTTPS://b:2");
        server_list_done(&l);

        assert_int_equal(server_list_parse("", &l), -EINVAL);
        assert_int_equal(server_list_parse("a:1", &l), -EINVAL);
        assert_int_equal(server_list_parse("http://a:1,,http://b:2", &l), -EINVAL);
        assert_int_equal(server_list_parse("http://a:1,", &l), -EINVAL);
        assert_int_equal(server_list_parse(",http://a:1", &l), -EINVAL);
        assert_int_equal(server_list_parse("http://", &l), -EINVAL);
        assert_int_equal(server_list_parse("http:///x", &l), -EINVAL);
        assert_int_equal(server_list_parse("http://a b:1", &l), -EINVAL);
        assert_int_equal(server_list_parse("ftp://a:1", &l), -EINVAL);
        assert_int_equal(l.n, 0);
}

/* Safe mode twice, then a reply: the same server, after back-offs. */
static void test_safemode_then_reply(void **state) {
        static const char *const answers[] = {
                "200 " FL_TEXT_SAFEMODE, "200 " FL_TEXT_SAFEMODE "\n", "200 reply bytes",
        };
        _cleanup_(client_http_freep) ClientHttp *h = NULL;
        _cleanup_(server_list_done) ServerList l = {};
        _cleanup_(http_reply_done) HttpReply reply = {};
        static const uint8_t body[] = "request body";
        Script s;

        script_start(&s, answers, ELEMENTSOF(answers));
        servers_of(&l, &s.port, 1);
        assert_int_equal(client_http_new(&h, 5 * USEC_PER_SEC, 10 * USEC_PER_SEC), 0);
        assert_int_equal(client_http_round(h, &l, 0, "startFLJob", body, sizeof body, &reply), 0);
        assert_int_equal(reply.size, 11);
        assert_memory_equal(reply.body, "reply bytes", 11);
        assert_int_equal(reply.server, 0);
        assert_int_equal(s.served, 3);
        assert_string_equal(s.last_request_line, "POST /startFLJob HTTP/1.1");
        assert_int_equal(s.last_body_size, sizeof body);
        script_stop(&s);
}

/* A server that is down: the next one, at once. */
static void test_failover(void **state) {
        static const char *const answers[] = { "200 ok" };
        _cleanup_(client_http_freep) ClientHttp *h = NULL;
        _cleanup_(server_list_done) ServerList l = {};
        _cleanup_(http_reply_done) HttpReply reply = {};
        _cleanup_close_ int dead = -EBADF;
        uint16_t ports[2];
        uint64_t start;
        Script s;

        script_start(&s, answers, ELEMENTSOF(answers));
        dead = dead_port(&ports[0]);
        ports[1] = s.port;
        servers_of(&l, ports, 2);
        assert_int_equal(client_http_new(&h, 5 * USEC_PER_SEC, 10 * USEC_PER_SEC), 0);
        start = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(client_http_round(h, &l, 0, "getModel", (const uint8_t *) "x", 1, &reply), 0);
        assert_true(now_usec(CLOCK_MONOTONIC) - start < 2 * USEC_PER_SEC);
        assert_int_equal(reply.server, 1);
        assert_false(reply.retried);
        script_stop(&s);
}

static void test_finished_and_errors(void **state) {
        static const char *const answers[] = {
                "200 " FL_TEXT_FINISHED, "413 too large", "404 {\"error\":\"unknown path\"}",
        };
        _cleanup_(client_http_freep) ClientHttp *h = NULL;
        _cleanup_(server_list_done) ServerList l = {};
        HttpReply reply = {};
        Script s;

        script_start(&s, answers, ELEMENTSOF(answers));
        servers_of(&l, &s.port, 1);
        assert_int_equal(client_http_new(&h, 5 * USEC_PER_SEC, 10 * USEC_PER_SEC), 0);
        assert_int_equal(client_http_round(h, &l, 0, "updateModel", (const uint8_t *) "x", 1, &reply), -ESHUTDOWN);
        assert_int_equal(client_http_round(h, &l, 0, "updateModel", (const uint8_t *) "x", 1, &reply), -EPROTO);
        assert_non_null(strstr(client_http_error(h), "HTTP 413"));
        assert_int_equal(client_http_round(h, &l, 0, "updateModel", (const uint8_t *) "x", 1, &reply), -EPROTO);
        assert_non_null(strstr(client_http_error(h), "unknown path"));
        assert_null(reply.body);
        script_stop(&s);
}

/* Nobody answers: the retry budget bounds the wait. */
static void test_budget(void **state) {
        _cleanup_(client_http_freep) ClientHttp *h = NULL;
        _cleanup_(server_list_done) ServerList l = {};
        _cleanup_close_ int dead = -EBADF;
        HttpReply reply = {};
        uint64_t start;
        uint16_t port;

        dead = dead_port(&port);
        servers_of(&l, &port, 1);
        assert_int_equal(client_http_new(&h, USEC_PER_SEC, USEC_PER_SEC), 0);
        start = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(client_http_round(h, &l, 0, "startFLJob", (const uint8_t *) "x", 1, &reply), -ETIMEDOUT);
        assert_true(now_usec(CLOCK_MONOTONIC) - start < 3 * USEC_PER_SEC);
        assert_non_null(strstr(client_http_error(h), "gave up after"));
}

static void test_reason_sanitize(void **state) {
        char buf[8];

        assert_string_equal(reason_sanitize(NULL, buf, sizeof buf), "(no reason given)");
        assert_string_equal(reason_sanitize("", buf, sizeof buf), "(no reason given)");
        assert_string_equal(reason_sanitize("a\x1b[1m\n", buf, sizeof buf), "a?[1m?");
        assert_string_equal(reason_sanitize("0123456789", buf, sizeof buf), "0123456");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_server_list),
                cmocka_unit_test(test_safemode_then_reply),
                cmocka_unit_test(test_failover),
                cmocka_unit_test(test_finished_and_errors),
                cmocka_unit_test(test_budget),
                cmocka_unit_test(test_reason_sanitize),
        };
        int r;

        assert_true(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}
