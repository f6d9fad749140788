/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "tls-test-util.h"
#include "util.h"
#include "wire-protocol.h"

/* Conn over real loopback sockets in one sd-event loop: clear TCP, TLS with
 * certificates made here, the cluster secret, and each refusal with the
 * words its journal line will carry. */

#define WAIT_USEC (20 * USEC_PER_SEC)

static char dir[256];
static TlsTestWorld w;
static TlsMaterial *good, *rogue;

typedef struct End {
        Conn *conn;
        unsigned frames;
        uint8_t last_type;
        size_t last_size;
        bool closed;
        int error;
        char failure[256];
        bool refused;
} End;

typedef struct Pair {
        sd_event *event;
        int listen_fd;
        uint16_t port;
        End server, client;
        /* How the accepting end is set up. */
        TlsMaterial *server_tls;
        const ClusterSecret *server_secret;
        uint64_t server_idle;
} Pair;

static int on_frame(Conn *c, uint8_t type, const uint8_t *payload, size_t size, void *userdata) {
        End *e = userdata;

        e->frames++;
        e->last_type = type;
        e->last_size = size;
        /* A large frame must arrive whole and intact. */
        for (size_t i = 0; i < size && size > 100; i++)
                if (payload[i] != (uint8_t) (i * 7))
                        fail_msg("byte %zu of a %zu-byte frame is wrong", i, size);
        return 0;
}

static void on_close(Conn *c, int error, void *userdata) {
        End *e = userdata;

        e->closed = true;
        e->error = error;
        e->refused = conn_refused(c);
        snprintf(e->failure, sizeof e->failure, "%s", strna(conn_failure(c)));
        e->conn = conn_free(e->conn);
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Pair *p = userdata;
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        assert_true(cfd >= 0);
        assert_null(p->server.conn);
        assert_int_equal(conn_new(&p->server.conn, p->event, cfd, 4 << 20, p->server_idle ?: WAIT_USEC, on_frame,
                                  on_close, &p->server), 0);
        if (p->server_tls)
                assert_int_equal(conn_start_tls(p->server.conn, p->server_tls, true, NULL), 0);
        if (p->server_secret)
                assert_int_equal(conn_start_secret(p->server.conn, p->server_secret, true), 0);
        return 0;
}

static void pair_listen(Pair *p) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;

        assert_int_equal(sd_event_new(&p->event), 0);
        p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(p->listen_fd >= 0);
        assert_int_equal(bind(p->listen_fd, (struct sockaddr *) &sa, sizeof sa), 0);
        assert_int_equal(listen(p->listen_fd, 8), 0);
        assert_int_equal(getsockname(p->listen_fd, (struct sockaddr *) &sa, &len), 0);
        p->port = ntohs(sa.sin_port);
        assert_true(sd_event_add_io(p->event, NULL, p->listen_fd, EPOLLIN, on_accept, p) >= 0);
}

static void pair_connect(Pair *p, TlsMaterial *tls, const char *name, const ClusterSecret *secret) {
        assert_int_equal(conn_connect(&p->client.conn, p->event, "127.0.0.1", p->port, 4 << 20, WAIT_USEC, on_frame,
                                      on_close, &p->client), 0);
        if (tls)
                assert_int_equal(conn_start_tls(p->client.conn, tls, false, name), 0);
        if (secret)
                assert_int_equal(conn_start_secret(p->client.conn, secret, false), 0);
}

/* Runs the loop until cond(p) or the deadline. */
static bool run_until(Pair *p, bool (*cond)(Pair *p)) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + WAIT_USEC;

        while (!cond(p)) {
                if (now_usec(CLOCK_MONOTONIC) > deadline)
                        return false;
                assert_true(sd_event_run(p->event, 100 * USEC_PER_MSEC) >= 0);
        }
        return true;
}

static void pair_done(Pair *p) {
        p->server.conn = conn_free(p->server.conn);
        p->client.conn = conn_free(p->client.conn);
        safe_close(p->listen_fd);
        /* Run once more so that the loop drops the freed sources. */
        (void) sd_event_run(p->event, 0);
        sd_event_unref(p->event);
}

static bool both_got_one(Pair *p) {
        return p->server.frames >= 1 && p->client.frames >= 1;
}

static bool both_closed(Pair *p) {
        return p->server.closed && p->client.closed;
}

static bool server_closed(Pair *p) {
        return p->server.closed;
}

static bool server_got_one(Pair *p) {
        return p->server.frames >= 1 || p->server.closed;
}

/* Frames both ways, one of them large (many TLS records, partial writes). */
static void exchange(Pair *p) {
        static uint8_t big[3 << 20];

        for (size_t i = 0; i < sizeof big; i++)
                big[i] = (uint8_t) (i * 7);
        /* Sent right away: held until the connection is ready. */
        assert_int_equal(conn_send(p->client.conn, WIRE_HEARTBEAT, "{}", 2), 0);
        assert_true(run_until(p, server_got_one));
        assert_int_equal(p->server.frames, 1);
        assert_int_equal(p->server.last_type, WIRE_HEARTBEAT);
        assert_true(conn_is_ready(p->server.conn));
        assert_int_equal(conn_send(p->server.conn, WIRE_MEMBERS, big, sizeof big), 0);
        assert_true(run_until(p, both_got_one));
        assert_int_equal(p->client.last_type, WIRE_MEMBERS);
        assert_int_equal(p->client.last_size, sizeof big);
        assert_false(p->server.closed || p->client.closed);
}

/* A clear client sends a valid frame: the server refuses it unread, with
 * error, and its reason has the words reason. */
static void clear_client_refused(Pair *p, int error, const char *reason) {
        pair_listen(p);
        pair_connect(p, NULL, NULL, NULL);
        assert_int_equal(conn_send(p->client.conn, WIRE_REGISTER, "{\"node_id\":\"x\"}", 15), 0);
        assert_true(run_until(p, server_closed));
        assert_int_equal(p->server.frames, 0);
        assert_int_equal(p->server.error, error);
        assert_true(p->server.refused);
        if (!strstr(p->server.failure, reason))
                fail_msg("server's reason: %s", p->server.failure);
}

static void test_clear(void **state) {
        Pair p = {};

        pair_listen(&p);
        pair_connect(&p, NULL, NULL, NULL);
        assert_int_equal(conn_send(p.client.conn, WIRE_HEARTBEAT, "{}", 2), 0);
        assert_true(run_until(&p, server_got_one));
        assert_int_equal(p.server.frames, 1);
        pair_done(&p);
}

static void test_tls(void **state) {
        Pair p = { .server_tls = good };

        pair_listen(&p);
        pair_connect(&p, good, "127.0.0.1", NULL);
        assert_int_equal(conn_send(p.client.conn, WIRE_HEARTBEAT, "{}", 2), 0);
        assert_true(run_until(&p, server_got_one));
        p.server.frames = 0;
        p.client.frames = 0;
        /* Both ways, a large frame too. */
        {
                static uint8_t big[3 << 20];

                for (size_t i = 0; i < sizeof big; i++)
                        big[i] = (uint8_t) (i * 7);
                assert_int_equal(conn_send(p.server.conn, WIRE_MEMBERS, big, sizeof big), 0);
                assert_int_equal(conn_send(p.client.conn, WIRE_MEMBERS, big, sizeof big), 0);
                assert_true(run_until(&p, both_got_one));
                assert_int_equal(p.client.last_size, sizeof big);
                assert_int_equal(p.server.last_size, sizeof big);
        }
        assert_false(p.server.closed || p.client.closed);
        assert_null(conn_failure(p.client.conn));

        /* An orderly close after the flush is an orderly close. */
        conn_close_after_flush(p.client.conn);
        assert_true(run_until(&p, both_closed));
        assert_int_equal(p.server.error, 0);
        assert_false(p.server.refused);
        pair_done(&p);
}

static void test_tls_refusals(void **state) {
        Pair p;

        /* A client of another CA (which trusts ours): the server refuses it. */
        {
                _cleanup_(tls_material_unrefp) TlsMaterial *rogue_trusting = NULL;
                SslConfig s = tls_test_ssl(NULL, &w.other_node, NULL);
                char both[512], error[512];

                tls_test_bundle(dir, "both", w.other_ca_path, w.ca_path, both);
                s.ca_cert_path = both;
                assert_int_equal(tls_material_load(&s, &rogue_trusting, error, sizeof error), 0);

                p = (Pair) { .server_tls = good };
                pair_listen(&p);
                pair_connect(&p, rogue_trusting, "127.0.0.1", NULL);
                (void) conn_send(p.client.conn, WIRE_REGISTER, "{}", 2);
                assert_true(run_until(&p, both_closed));
                assert_int_equal(p.server.frames, 0);
                assert_true(p.server.refused);
                assert_true(p.server.error < 0);
                if (!strstr(p.server.failure, "certificate"))
                        fail_msg("server's reason: %s", p.server.failure);
                assert_true(p.client.refused);
                pair_done(&p);
        }

        /* A server of another CA: the client refuses it, naming why. */
        p = (Pair) { .server_tls = rogue };
        pair_listen(&p);
        pair_connect(&p, good, "127.0.0.1", NULL);
        assert_true(run_until(&p, both_closed));
        assert_int_equal(p.client.error, -EKEYREJECTED);
        assert_true(p.client.refused);
        if (!strstr(p.client.failure, "the certificate of 127.0.0.1 is not signed by the cluster's CA"))
                fail_msg("client's reason: %s", p.client.failure);
        pair_done(&p);

        /* The right CA, but not the address dialled. */
        p = (Pair) { .server_tls = good };
        pair_listen(&p);
        pair_connect(&p, good, "10.9.9.9", NULL);
        assert_true(run_until(&p, both_closed));
        if (!strstr(p.client.failure, "does not name the address"))
                fail_msg("client's reason: %s", p.client.failure);
        pair_done(&p);

        /* A clear-text client sending a valid frame to a TLS port. */
        p = (Pair) { .server_tls = good };
        clear_client_refused(&p, -EPROTONOSUPPORT, "clear-text flcluster frame");
        pair_done(&p);

        /* A client that says nothing is dropped at the handshake bound (here the owner's shorter one). */
        p = (Pair) { .server_tls = good, .server_idle = 300 * USEC_PER_MSEC };
        pair_listen(&p);
        pair_connect(&p, NULL, NULL, NULL);
        assert_true(run_until(&p, server_closed));
        assert_int_equal(p.server.error, -ETIMEDOUT);
        if (!strstr(p.server.failure, "TLS handshake did not complete"))
                fail_msg("server's reason: %s", p.server.failure);
        pair_done(&p);
}

static void test_secret(void **state) {
        ClusterSecret a = { .bytes = (uint8_t *) "cluster secret number one", .size = 25 };
        ClusterSecret b = { .bytes = (uint8_t *) "cluster secret number two", .size = 25 };
        Pair p;

        /* The same secret: frames held until the proofs are through, then flowing. */
        p = (Pair) { .server_secret = &a };
        pair_listen(&p);
        pair_connect(&p, NULL, NULL, &a);
        exchange(&p);
        pair_done(&p);

        /* With TLS under it. */
        p = (Pair) { .server_secret = &a, .server_tls = good };
        pair_listen(&p);
        pair_connect(&p, good, "127.0.0.1", &a);
        exchange(&p);
        pair_done(&p);

        /* Another secret: both ends refuse, nothing reaches either owner. */
        p = (Pair) { .server_secret = &a };
        pair_listen(&p);
        pair_connect(&p, NULL, NULL, &b);
        (void) conn_send(p.client.conn, WIRE_REGISTER, "{}", 2);
        assert_true(run_until(&p, both_closed));
        assert_int_equal(p.server.frames, 0);
        assert_int_equal(p.client.frames, 0);
        assert_true(p.server.refused && p.client.refused);
        if (!strstr(p.client.failure, "proved another cluster secret"))
                fail_msg("client's reason: %s", p.client.failure);
        pair_done(&p);

        /* A client without the secret: refused, and told why. */
        p = (Pair) { .server_secret = &a };
        clear_client_refused(&p, -EACCES, "without proving the cluster secret");
        /* The clear client got the nonce (its owner sees it refused) or the WIRE_ERROR. */
        assert_true(run_until(&p, both_closed));
        pair_done(&p);

        /* A client with a secret meets a server without: the server refuses the nonce. */
        p = (Pair) {};
        pair_listen(&p);
        pair_connect(&p, NULL, NULL, &a);
        assert_true(run_until(&p, server_closed));
        assert_int_equal(p.server.frames, 0);
        if (!strstr(p.server.failure, "has no cluster_secret_file"))
                fail_msg("server's reason: %s", p.server.failure);
        pair_done(&p);

        /* Refusals of calls that come too late. */
        p = (Pair) {};
        pair_listen(&p);
        pair_connect(&p, NULL, NULL, NULL);
        assert_int_equal(conn_send(p.client.conn, WIRE_HEARTBEAT, "{}", 2), 0);
        assert_true(run_until(&p, server_got_one));
        assert_int_equal(conn_start_secret(p.server.conn, &a, true), -EINVAL);   /* it already sent... */
        assert_int_equal(conn_start_tls(p.server.conn, good, false, NULL), -EINVAL);  /* not connecting */
        pair_done(&p);
}

static int setup(void **state) {
        char error[512];
        SslConfig s;

        signal(SIGPIPE, SIG_IGN);
        log_set_max_level(LOG_CRIT);
        tls_test_mkdir(dir);
        tls_test_world(dir, &w);
        s = tls_test_ssl(w.ca_path, &w.node, NULL);
        assert_int_equal(tls_material_load(&s, &good, error, sizeof error), 0);
        s = tls_test_ssl(w.other_ca_path, &w.other_node, NULL);
        assert_int_equal(tls_material_load(&s, &rogue, error, sizeof error), 0);
        return 0;
}

static int teardown(void **state) {
        tls_material_unref(good);
        tls_material_unref(rogue);
        tls_test_world_done(&w);
        tls_test_rmdir(dir);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_clear),
                cmocka_unit_test(test_tls),
                cmocka_unit_test(test_tls_refusals),
                cmocka_unit_test(test_secret),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
