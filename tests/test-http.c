/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* HttpServer on 127.0.0.1:0 inside an sd-event loop, driven by libcurl from
 * a second thread (the loop thread must keep running while curl waits). */
#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <cmocka.h>

#include "http.h"
#include "json-util.h"
#include "log.h"

#define MAX_BODY 4096U
#define TEST_TIMEOUT_USEC (10U * USEC_PER_SEC)

typedef struct Fixture {
        sd_event *event;
        HttpServer *server;
        HttpRequest *deferred;
        sd_event_source *defer_timer;
        bool exit_on_defer;
        bool stop;
        unsigned guarded_handled;       /* runs of the guarded route's handler */
        char peer[64];                  /* what the authorize hook saw */
        int authorize_access;
} Fixture;

typedef struct Call {
        const char *method, *path;
        const char *body;
        size_t body_size, body_sent;
        bool chunked;
        long status;
        CURLcode code;
        char response[64 * 1024];
        size_t response_size;
        char allow[128];
        char www_authenticate[128];
        int done_fd;
} Call;

/* The handlers. */

static int handle_hello(HttpRequest *req, void *userdata) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        json_object_object_add(o, "hello", json_object_new_string("world"));
        return http_reply_json(req, 200, o);
}

static int handle_echo(HttpRequest *req, void *userdata) {
        const char *type = http_request_content_type(req);
        size_t size;
        const uint8_t *body = http_request_body(req, &size);

        return http_reply(req, 200, type ?: "application/octet-stream", body, size);
}

static int handle_query(HttpRequest *req, void *userdata) {
        const char *v = http_request_query(req, "iteration");

        if (!v)
                return http_reply_error(req, 400, "Missing iteration.");
        return http_reply(req, 200, "text/plain", v, strlen(v));
}

static int defer_timer_handler(sd_event_source *s, uint64_t usec, void *userdata) {
        Fixture *f = userdata;
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        json_object_object_add(o, "deferred", json_object_new_boolean(true));
        assert_int_equal(http_reply_json(TAKE_PTR(f->deferred), 200, o), 0);
        return 0;
}

static int handle_later(HttpRequest *req, void *userdata) {
        Fixture *f = userdata;

        assert_int_equal(http_defer(req), 0);
        f->deferred = req;
        if (f->exit_on_defer) {
                f->stop = true;
                return 0;
        }
        return sd_event_add_time_relative(f->event, &f->defer_timer, CLOCK_MONOTONIC, 50 * USEC_PER_MSEC, 0,
                                          defer_timer_handler, f);
}

static int handle_defer_then_answer(HttpRequest *req, void *userdata) {
        assert_int_equal(http_defer(req), 0);
        return http_reply(req, 202, "text/plain", "now", 3);
}

static int handle_silent(HttpRequest *req, void *userdata) {
        return 0;
}

static int handle_failing(HttpRequest *req, void *userdata) {
        return -EIO;
}

#define ACCESS_GUARDED 7

static int handle_guarded(HttpRequest *req, void *userdata) {
        Fixture *f = userdata;

        f->guarded_handled++;
        return http_reply(req, 200, "text/plain", "in", 2);
}

/* Refuses the guarded route before its body is read. */
static bool authorize(HttpRequest *req, int access, void *userdata) {
        Fixture *f = userdata;

        f->authorize_access = access;
        snprintf(f->peer, sizeof f->peer, "%s", http_request_peer(req));
        if (access != ACCESS_GUARDED)
                return true;
        (void) http_reply_error_with_header(req, 401, "WWW-Authenticate", "Bearer realm=\"test\"", "No entry.");
        return false;
}

static int handle_labelled(HttpRequest *req, void *userdata) {
        http_request_set_label(req, "SUCCEED");
        return http_reply(req, 200, "text/plain", "labelled", 8);
}

static const HttpRoute routes[] = {
        { "GET", "/", handle_hello },
        { "POST", "/guarded", handle_guarded, ACCESS_GUARDED },
        { "POST", "/echo", handle_echo },
        { "PUT", "/echo", handle_echo },
        { "GET", "/query", handle_query },
        { "GET", "/later", handle_later },
        { "GET", "/defer-now", handle_defer_then_answer },
        { "GET", "/silent", handle_silent },
        { "GET", "/failing", handle_failing },
        { "GET", "/labelled", handle_labelled },
};

/* The client side. */

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
        Call *c = userdata;
        size_t len = size * n, room = sizeof c->response - 1 - c->response_size;

        memcpy(c->response + c->response_size, data, MIN(len, room));
        c->response_size += MIN(len, room);
        c->response[c->response_size] = '\0';
        return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata) {
        Call *c = userdata;
        size_t len = size * n;

        if (len > 6 && strncasecmp(data, "Allow:", 6) == 0) {
                const char *v = data + 6;
                size_t k;

                while (*v == ' ')
                        v++;
                k = strcspn(v, "\r\n");
                snprintf(c->allow, sizeof c->allow, "%.*s", (int) k, v);
        }
        if (len > 17 && strncasecmp(data, "WWW-Authenticate:", 17) == 0) {
                const char *v = data + 17;

                while (*v == ' ')
                        v++;
                snprintf(c->www_authenticate, sizeof c->www_authenticate, "%.*s", (int) strcspn(v, "\r\n"), v);
        }
        return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *userdata) {
        Call *c = userdata;
        size_t k = MIN(size * n, MIN(c->body_size - c->body_sent, (size_t) 1000));

        memcpy(buf, c->body + c->body_sent, k);
        c->body_sent += k;
        return k;
}

static void *client_thread(void *userdata) {
        Call *c = userdata;
        struct curl_slist *headers = NULL;
        uint64_t one = 1;
        char url[256];
        CURL *curl = curl_easy_init();

        snprintf(url, sizeof url, "http://127.0.0.1:%s", c->path);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, c->method);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(curl, CURLOPT_HEADERDATA, c);
        headers = curl_slist_append(headers, "Expect:");
        if (c->body) {
                headers = curl_slist_append(headers, "Content-Type: application/x-test");
                curl_easy_setopt(curl, CURLOPT_POST, 1L);
                curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
                curl_easy_setopt(curl, CURLOPT_READDATA, c);
                if (c->chunked)
                        headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
                else
                        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) c->body_size);
        }
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);

        c->code = curl_easy_perform(curl);
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &c->status);
        curl_easy_cleanup(curl);
        curl_slist_free_all(headers);
        /* No cmocka assertions here: they longjmp, and only on the main thread. */
        if (write(c->done_fd, &one, sizeof one) != (ssize_t) sizeof one)
                abort();
        return NULL;
}

static int on_client_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Fixture *f = userdata;

        f->stop = true;
        return 0;
}

static int on_test_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        fail_msg("The request did not finish in time.");
        return 0;
}

/* Runs the loop until the request is done; the path goes after "port". */
static void call(Fixture *f, Call *c, const char *method, const char *path) {
        _cleanup_(sd_event_source_unrefp) sd_event_source *io = NULL, *timeout = NULL;
        char where[200];
        pthread_t t;

        snprintf(where, sizeof where, "%u%s", http_server_port(f->server), path);
        c->method = method;
        c->path = where;
        c->done_fd = eventfd(0, EFD_CLOEXEC);
        assert_true(c->done_fd >= 0);
        assert_int_equal(sd_event_add_io(f->event, &io, c->done_fd, EPOLLIN, on_client_done, f), 0);
        assert_int_equal(sd_event_add_time_relative(f->event, &timeout, CLOCK_MONOTONIC, TEST_TIMEOUT_USEC, 0,
                                                    on_test_timeout, NULL), 0);
        assert_int_equal(pthread_create(&t, NULL, client_thread, c), 0);
        f->stop = false;
        while (!f->stop)
                assert_true(sd_event_run(f->event, UINT64_MAX) >= 0);
        if (f->exit_on_defer) {
                /* The server goes away while the request waits: its connection is closed. */
                f->server = http_server_free(f->server);
                f->deferred = NULL;
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        close(c->done_fd);
}

static int setup(void **state) {
        Fixture *f = calloc(1, sizeof *f);

        assert_non_null(f);
        assert_int_equal(sd_event_new(&f->event), 0);
        assert_int_equal(http_server_new(&f->server, f->event, "127.0.0.1", 0, routes, ELEMENTSOF(routes),
                                         MAX_BODY, f), 0);
        assert_true(http_server_port(f->server) > 0);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        Fixture *f = *state;

        http_server_free(f->server);
        sd_event_source_disable_unref(f->defer_timer);
        sd_event_unref(f->event);
        free(f);
        return 0;
}

/* The tests. */

static void test_json(void **state) {
        Call c = {};

        call(*state, &c, "GET", "/");
        assert_int_equal(c.code, CURLE_OK);
        assert_int_equal(c.status, 200);
        assert_string_equal(c.response, "{\"hello\":\"world\"}");
}

static void test_not_found(void **state) {
        Call c = {};

        call(*state, &c, "GET", "/nowhere");
        assert_int_equal(c.status, 404);
        assert_non_null(strstr(c.response, "\"code\":\"1\""));
        assert_non_null(strstr(c.response, "\"error_message\":\"Unknown path /nowhere.\""));
}

static void test_method_not_allowed(void **state) {
        Call c = {};

        call(*state, &c, "DELETE", "/echo");
        assert_int_equal(c.status, 405);
        assert_string_equal(c.allow, "POST, PUT");
        assert_non_null(strstr(c.response, "\"error_message\""));
}

static void test_echo(void **state) {
        static char body[MAX_BODY];
        Call c = { .body = body, .body_size = sizeof body };

        for (size_t i = 0; i < sizeof body; i++)
                body[i] = (char) ('a' + i % 26);
        call(*state, &c, "POST", "/echo");
        assert_int_equal(c.status, 200);
        assert_int_equal(c.response_size, sizeof body);
        assert_memory_equal(c.response, body, sizeof body);
}

static void test_echo_chunked(void **state) {
        const char body[] = "{\"chunked\":true}";
        Call c = { .body = body, .body_size = strlen(body), .chunked = true };

        call(*state, &c, "PUT", "/echo");
        assert_int_equal(c.status, 200);
        assert_string_equal(c.response, body);
}

static void test_too_large(void **state) {
        static char body[MAX_BODY + 1];
        Call c = { .body = body, .body_size = sizeof body };

        call(*state, &c, "POST", "/echo");
        assert_int_equal(c.status, 413);
        assert_non_null(strstr(c.response, "\"code\":\"1\""));
}

static void test_too_large_chunked(void **state) {
        static char body[3 * MAX_BODY];
        Call c = { .body = body, .body_size = sizeof body, .chunked = true };

        call(*state, &c, "POST", "/echo");
        assert_int_equal(c.status, 413);
}

static void test_query(void **state) {
        Call c = {}, d = {};

        call(*state, &c, "GET", "/query?iteration=3&x=y");
        assert_int_equal(c.status, 200);
        assert_string_equal(c.response, "3");
        call(*state, &d, "GET", "/query");
        assert_int_equal(d.status, 400);
}

static void test_deferred(void **state) {
        Fixture *f = *state;
        Call c = {};

        call(f, &c, "GET", "/later");
        assert_int_equal(c.status, 200);
        assert_string_equal(c.response, "{\"deferred\":true}");
        assert_null(f->deferred);
}

static void test_defer_then_answer(void **state) {
        Call c = {};

        call(*state, &c, "GET", "/defer-now");
        assert_int_equal(c.status, 202);
        assert_string_equal(c.response, "now");
}

static void test_handler_without_answer(void **state) {
        Call c = {}, d = {};

        call(*state, &c, "GET", "/silent");
        assert_int_equal(c.status, 500);
        call(*state, &d, "GET", "/failing");
        assert_int_equal(d.status, 500);
}

static void test_authorize(void **state) {
        static char body[2 * MAX_BODY];  /* over the limit too: refused before that is looked at */
        Fixture *f = *state;
        Call c = { .body = body, .body_size = sizeof body }, d = {};

        http_server_set_authorize(f->server, authorize);
        call(f, &c, "POST", "/guarded");
        assert_int_equal(c.status, 401);
        assert_string_equal(c.www_authenticate, "Bearer realm=\"test\"");
        assert_non_null(strstr(c.response, "\"error_message\":\"No entry.\""));
        assert_int_equal(f->guarded_handled, 0);
        assert_int_equal(f->authorize_access, ACCESS_GUARDED);
        assert_true(strneq(f->peer, "127.0.0.1:", 10));

        /* Routes the hook lets through are served; its access is the route's (0 by default). */
        call(f, &d, "GET", "/");
        assert_int_equal(d.status, 200);
        assert_int_equal(f->authorize_access, 0);
}

static void test_free_with_deferred(void **state) {
        Fixture *f = *state;
        Call c = {};

        f->exit_on_defer = true;
        call(f, &c, "GET", "/later");
        assert_int_not_equal(c.code, CURLE_OK);
}

typedef struct Observed {
        HttpRequestInfo info[4];
        char paths[4][32];
        size_t n;
} Observed;

static void observe(const HttpRequestInfo *info, void *userdata) {
        Observed *o = userdata;

        assert_true(o->n < ELEMENTSOF(o->info));
        o->info[o->n] = *info;
        snprintf(o->paths[o->n], sizeof o->paths[o->n], "%s", info->path);
        o->n++;
}

/* Told at the answer, before the client has it: at most a loop turn. */
static void wait_observed(Fixture *f, Observed *o, size_t n) {
        for (unsigned i = 0; i < 200 && o->n < n; i++)
                assert_true(sd_event_run(f->event, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(o->n, n);
}

static void test_observer(void **state) {
        static char body[100];
        Fixture *f = *state;
        Observed o = {};
        Call c = { .body = body, .body_size = sizeof body }, d = {}, e = {}, g = {}, h = {};

        http_server_set_observer(f->server, observe, &o);
        call(f, &c, "POST", "/echo");
        assert_int_equal(c.status, 200);
        wait_observed(f, &o, 1);
        assert_string_equal(o.info[0].method, "POST");
        assert_string_equal(o.paths[0], "/echo");
        assert_null(o.info[0].label);
        assert_int_equal(o.info[0].status, 200);
        assert_int_equal(o.info[0].bytes_in, sizeof body);
        assert_int_equal(o.info[0].bytes_out, sizeof body);
        assert_true(o.info[0].duration_usec > 0 && o.info[0].duration_usec < TEST_TIMEOUT_USEC);

        call(f, &d, "GET", "/labelled?x=1");
        wait_observed(f, &o, 2);
        assert_string_equal(o.paths[1], "/labelled");
        assert_string_equal(o.info[1].label, "SUCCEED");
        assert_int_equal(o.info[1].bytes_out, 8);

        /* Not routed: not observed (its path is the client's). A refusal is. */
        call(f, &e, "GET", "/nowhere");
        assert_int_equal(e.status, 404);
        call(f, &g, "DELETE", "/labelled");
        assert_int_equal(g.status, 405);
        call(f, &h, "GET", "/query");
        wait_observed(f, &o, 3);
        assert_string_equal(o.paths[2], "/query");
        assert_int_equal(o.info[2].status, 400);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_json, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_found, setup, teardown),
                cmocka_unit_test_setup_teardown(test_method_not_allowed, setup, teardown),
                cmocka_unit_test_setup_teardown(test_echo, setup, teardown),
                cmocka_unit_test_setup_teardown(test_echo_chunked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_large_chunked, setup, teardown),
                cmocka_unit_test_setup_teardown(test_query, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deferred, setup, teardown),
                cmocka_unit_test_setup_teardown(test_defer_then_answer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_handler_without_answer, setup, teardown),
                cmocka_unit_test_setup_teardown(test_free_with_deferred, setup, teardown),
                cmocka_unit_test_setup_teardown(test_authorize, setup, teardown),
                cmocka_unit_test_setup_teardown(test_observer, setup, teardown),
        };
        int r;

        log_set_max_level(LOG_WARNING);
        curl_global_init(CURL_GLOBAL_ALL);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}
