/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* HttpServer over HTTPS (http-tls.c) on 127.0.0.1:0 inside an sd-event
 * loop, with libcurl (GnuTLS) as the client from a second thread: the CA
 * makes it work, another CA and clear HTTP do not, and a new generation of
 * material (a reload) is what the next connection gets, while a connection
 * opened before keeps working. */
#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <cmocka.h>

#include "http-client.h"
#include "http.h"
#include "log.h"
#include "tls-test-util.h"
#include "tls.h"
#include "util.h"

#define TEST_TIMEOUT_USEC (20U * USEC_PER_SEC)

static char dir[256];
static TlsIssued ca, other_ca;
static char ca_path[512], other_ca_path[512];
static TlsTestNode node, node2;

typedef struct Call {
        char url[256];
        const char *cainfo;
        CURL *curl;             /* kept between calls: its connection stays alive */
        long status;
        CURLcode code;
        char body[256];
        size_t size;
        char serial[64];        /* of the server's certificate */
        int done_fd;
} Call;

static int handle_hello(HttpRequest *req, void *userdata) {
        return http_reply(req, 200, "text/plain", "hello", 5);
}

static const HttpRoute routes[] = {
        { "GET", "/", handle_hello },
};

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
        Call *c = userdata;
        size_t len = size * n, room = sizeof c->body - 1 - c->size;

        memcpy(c->body + c->size, data, MIN(len, room));
        c->size += MIN(len, room);
        c->body[c->size] = 0;
        return len;
}

static void *client_thread(void *userdata) {
        Call *c = userdata;
        struct curl_certinfo *info = NULL;
        uint64_t one = 1;

        if (!c->curl)
                c->curl = curl_easy_init();
        c->size = 0;
        c->serial[0] = 0;
        curl_easy_setopt(c->curl, CURLOPT_URL, c->url);
        curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->curl, CURLOPT_CERTINFO, 1L);
        if (c->cainfo)
                curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->cainfo);
        c->code = curl_easy_perform(c->curl);
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
        /* The serial of the leaf, as curl saw it on this connection's handshake. */
        if (curl_easy_getinfo(c->curl, CURLINFO_CERTINFO, &info) == CURLE_OK && info && info->num_of_certs > 0)
                for (struct curl_slist *s = info->certinfo[0]; s; s = s->next)
                        if (strncmp(s->data, "Serial Number:", 14) == 0)
                                snprintf(c->serial, sizeof c->serial, "%s", s->data + 14);
        if (write(c->done_fd, &one, sizeof one) != (ssize_t) sizeof one)
                abort();
        return NULL;
}

static int on_done(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        *(bool *) userdata = true;
        return 0;
}

static void call(sd_event *e, Call *c) {
        _cleanup_(sd_event_source_unrefp) sd_event_source *io = NULL;
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + TEST_TIMEOUT_USEC;
        bool done = false;
        pthread_t t;

        c->done_fd = eventfd(0, EFD_CLOEXEC);
        assert_true(c->done_fd >= 0);
        assert_int_equal(sd_event_add_io(e, &io, c->done_fd, EPOLLIN, on_done, &done), 0);
        assert_int_equal(pthread_create(&t, NULL, client_thread, c), 0);
        while (!done) {
                assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
                assert_true(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
        }
        assert_int_equal(pthread_join(t, NULL), 0);
        close(c->done_fd);
}

/* "0123ab" from curl's "01:23:ab" (or as it is). */
static void strip_colons(char *s) {
        char *w = s;

        for (char *r = s; *r; r++)
                if (*r != ':' && *r != ' ')
                        *w++ = (char) (*r >= 'A' && *r <= 'F' ? *r - 'A' + 'a' : *r);
        *w = 0;
}

static TlsMaterial *load(const TlsTestNode *n) {
        SslConfig s = tls_test_ssl(ca_path, n, NULL);
        TlsMaterial *m = NULL;
        char error[512];

        if (tls_material_load(&s, &m, error, sizeof error) < 0)
                fail_msg("%s", error);
        return m;
}

static void test_https(void **state) {
        _cleanup_(tls_material_unrefp) TlsMaterial *m1 = load(&node), *m2 = load(&node2);
        _cleanup_(http_server_freep) HttpServer *s = NULL;
        sd_event *e = NULL;
        Call kept = {}, c = {};
        uint16_t port;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_server_new_tls(&s, e, "127.0.0.1", 0, routes, ELEMENTSOF(routes), 4096, m1, NULL), 0);
        assert_true(http_server_is_tls(s));
        port = http_server_port(s);

        /* With the cluster's CA. */
        snprintf(kept.url, sizeof kept.url, "https://127.0.0.1:%u/", port);
        kept.cainfo = ca_path;
        call(e, &kept);
        assert_int_equal(kept.code, CURLE_OK);
        assert_int_equal(kept.status, 200);
        assert_string_equal(kept.body, "hello");
        strip_colons(kept.serial);
        assert_string_equal(kept.serial, tls_material_serial(m1));

        /* Another CA: the server is not trusted, nothing is asked. */
        c = kept;
        c.curl = NULL;
        c.cainfo = other_ca_path;
        call(e, &c);
        assert_true(c.code == CURLE_PEER_FAILED_VERIFICATION || c.code == CURLE_SSL_CACERT_BADFILE ||
                    c.code == CURLE_SSL_CONNECT_ERROR);
        assert_int_equal(c.status, 0);
        curl_easy_cleanup(c.curl);

        /* Clear HTTP to the HTTPS port: no HTTP answer. */
        c = (Call) {};
        snprintf(c.url, sizeof c.url, "http://127.0.0.1:%u/", port);
        call(e, &c);
        assert_true(c.code != CURLE_OK || c.status != 200);
        curl_easy_cleanup(c.curl);

        /* A reload: a new connection gets the new certificate... */
        assert_int_equal(http_server_set_tls(s, m2), 0);
        c = (Call) {};
        snprintf(c.url, sizeof c.url, "https://127.0.0.1:%u/", port);
        c.cainfo = ca_path;
        call(e, &c);
        assert_int_equal(c.code, CURLE_OK);
        strip_colons(c.serial);
        assert_string_equal(c.serial, tls_material_serial(m2));
        curl_easy_cleanup(c.curl);

        /* ...and the connection made before goes on (curl reuses it: no new handshake). */
        call(e, &kept);
        assert_int_equal(kept.code, CURLE_OK);
        assert_string_equal(kept.body, "hello");
        {
                long new_connections = -1;

                assert_int_equal(curl_easy_getinfo(kept.curl, CURLINFO_NUM_CONNECTS, &new_connections), CURLE_OK);
                assert_int_equal(new_connections, 0);
        }
        curl_easy_cleanup(kept.curl);

        /* The old generation is the server's no more: only this test holds it now. */
        s = http_server_free(s);
        (void) sd_event_run(e, 0);
        sd_event_unref(e);
}

typedef struct Got {
        bool done;
        int error;
        unsigned status;
        char body[16];
} Got;

static void on_got(int error, unsigned status, const uint8_t *body, size_t size, void *userdata) {
        Got *g = userdata;

        g->done = true;
        g->error = error;
        g->status = status;
        snprintf(g->body, sizeof g->body, "%.*s", (int) MIN(size, sizeof g->body - 1), (const char *) body);
}

static void get(sd_event *e, HttpClient *c, const char *url, Got *g) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + TEST_TIMEOUT_USEC;

        *g = (Got) {};
        assert_int_equal(http_get_start(c, url, 1024, 10 * USEC_PER_SEC, on_got, g, NULL), 0);
        while (!g->done) {
                assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
                assert_true(sd_event_run(e, 100 * USEC_PER_MSEC) >= 0);
        }
}

/* The servers' own client (model sync from a peer) over HTTPS. */
static void test_http_client(void **state) {
        _cleanup_(tls_material_unrefp) TlsMaterial *m = load(&node);
        _cleanup_(http_server_freep) HttpServer *s = NULL;
        _cleanup_(http_client_freep) HttpClient *trusting = NULL, *foreign = NULL;
        char url[128];
        sd_event *e = NULL;
        Got g;

        assert_int_equal(sd_event_new(&e), 0);
        assert_int_equal(http_server_new_tls(&s, e, "127.0.0.1", 0, routes, ELEMENTSOF(routes), 4096, m, NULL), 0);
        snprintf(url, sizeof url, "https://127.0.0.1:%u/", http_server_port(s));
        assert_int_equal(http_client_new(&trusting, e), 0);
        assert_false(http_client_has_tls(trusting));
        assert_int_equal(http_client_set_tls(trusting, ca_path, NULL), 0);
        assert_true(http_client_has_tls(trusting));
        assert_int_equal(http_client_new(&foreign, e), 0);
        assert_int_equal(http_client_set_tls(foreign, other_ca_path, NULL), 0);

        get(e, trusting, url, &g);
        assert_int_equal(g.error, 0);
        assert_int_equal(g.status, 200);
        assert_string_equal(g.body, "hello");

        get(e, foreign, url, &g);
        assert_int_equal(g.error, -EKEYREJECTED);
        assert_int_equal(g.status, 0);

        trusting = http_client_free(trusting);
        foreign = http_client_free(foreign);
        s = http_server_free(s);
        (void) sd_event_run(e, 0);
        sd_event_unref(e);
}

static int setup(void **state) {
        log_set_max_level(LOG_CRIT);
        curl_global_init(CURL_GLOBAL_DEFAULT);
        tls_test_mkdir(dir);
        tls_test_ca(dir, "ca", &ca, ca_path);
        tls_test_ca(dir, "other-ca", &other_ca, other_ca_path);
        tls_test_node_now(dir, "node", &ca, "127.0.0.1", &node);
        tls_test_node_now(dir, "node2", &ca, "127.0.0.1", &node2);
        return 0;
}

static int teardown(void **state) {
        tls_issued_done(&ca);
        tls_issued_done(&other_ca);
        tls_test_rmdir(dir);
        curl_global_cleanup();
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_https),
                cmocka_unit_test(test_http_client),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
