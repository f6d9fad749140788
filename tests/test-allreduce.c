/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "json-util.h"
#include "log.h"
#include "server-allreduce-proto.h"
#include "server-allreduce.h"
#include "util.h"
#include "wire.h"

/* k servers' AllReduce instances in one process and one sd-event loop, on
 * 127.0.0.1 with ephemeral ports. */

#define K_MAX 8
#define TIMEOUT_USEC (10 * USEC_PER_SEC)

typedef struct Cluster Cluster;

typedef struct Node {
        Cluster *cluster;
        AllReduce *a;
        double *vec;
        bool done;
        int error;
        uint32_t iteration;
        uint64_t done_usec;
} Node;

struct Cluster {
        sd_event *e;
        size_t k;
        size_t n;
        Node nodes[K_MAX];
        RingMember ring[K_MAX];
        unsigned n_done;
};

static uint64_t splitmix64(uint64_t x) {
        x += UINT64_C(0x9E3779B97F4A7C15);
        x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
        return x ^ (x >> 31);
}

/* Deterministic values with full 53-bit mantissas, so that the order of the
 * additions shows (the sum is not exact in any order). */
static double value(size_t node, size_t j, uint32_t seed) {
        uint64_t h = splitmix64((uint64_t) seed << 40 ^ (uint64_t) node << 32 ^ j);

        return (double) (h >> 11) * 0x1.0p-53 * 2000.0 - 1000.0;
}

static void on_done(AllReduce *a, int error, uint32_t iteration, void *userdata) {
        Node *node = userdata;

        assert_ptr_equal(a, node->a);
        assert_false(node->done);
        node->done = true;
        node->error = error;
        node->iteration = iteration;
        node->done_usec = now_usec(CLOCK_MONOTONIC);
        node->cluster->n_done++;
}

static Cluster *cluster_new(size_t k, uint64_t timeout_usec) {
        Cluster *c = calloc(1, sizeof *c);

        assert_non_null(c);
        assert_true(k <= K_MAX);
        assert_int_equal(sd_event_new(&c->e), 0);
        c->k = k;
        for (size_t i = 0; i < k; i++) {
                Node *node = &c->nodes[i];

                node->cluster = c;
                assert_int_equal(allreduce_new(&node->a, c->e, "127.0.0.1", 0, timeout_usec), 0);
                assert_true(allreduce_port(node->a) > 0);
                c->ring[i] = (RingMember) { .rank = (uint32_t) (10 * i + 1), .peer_port = allreduce_port(node->a) };
                snprintf(c->ring[i].node_id, sizeof c->ring[i].node_id, "node-%zu", i);
                strcpy(c->ring[i].address, "127.0.0.1");
        }
        return c;
}

static void cluster_free(Cluster *c) {
        for (size_t i = 0; i < c->k; i++) {
                allreduce_free(c->nodes[i].a);
                free(c->nodes[i].vec);
        }
        /* What the instances left on the loop (nothing, if they are clean). */
        while (sd_event_run(c->e, 0) > 0)
                ;
        sd_event_unref(c->e);
        free(c);
}

static void cluster_fill(Cluster *c, size_t n, uint32_t seed) {
        c->n = n;
        for (size_t i = 0; i < c->k; i++) {
                Node *node = &c->nodes[i];

                free(node->vec);
                node->vec = malloc(MAX(n, 1) * sizeof(double));
                assert_non_null(node->vec);
                for (size_t j = 0; j < n; j++)
                        node->vec[j] = value(i, j, seed);
                node->done = false;
                node->error = 1;
        }
        c->n_done = 0;
}

static void node_start(Cluster *c, size_t i, uint32_t iteration) {
        assert_int_equal(allreduce_start(c->nodes[i].a, iteration, c->ring, c->k, i, c->nodes[i].vec, c->n,
                                         on_done, &c->nodes[i]), 0);
}

static void cluster_run(Cluster *c, unsigned n_done, uint64_t max_usec) {
        uint64_t end = now_usec(CLOCK_MONOTONIC) + max_usec;

        while (c->n_done < n_done) {
                assert_true(now_usec(CLOCK_MONOTONIC) < end);
                assert_true(sd_event_run(c->e, 100 * USEC_PER_MSEC) >= 0);
        }
}

static void cluster_check(Cluster *c, uint32_t iteration, uint32_t seed) {
        for (size_t i = 0; i < c->k; i++) {
                assert_true(c->nodes[i].done);
                assert_int_equal(c->nodes[i].error, 0);
                assert_int_equal(c->nodes[i].iteration, iteration);
                /* Each segment is summed once, by its owner: the same bits everywhere. */
                if (c->n > 0)
                        assert_memory_equal(c->nodes[i].vec, c->nodes[0].vec, c->n * sizeof(double));
        }
        for (size_t j = 0; j < c->n; j++) {
                double sum = 0, magnitude = 0;

                for (size_t i = 0; i < c->k; i++) {
                        sum += value(i, j, seed);
                        magnitude += fabs(value(i, j, seed));
                }
                if (!(fabs(c->nodes[0].vec[j] - sum) <= 1e-12 * magnitude)) {
                        print_error("element %zu: %.17g, expected %.17g\n", j, c->nodes[0].vec[j], sum);
                        fail();
                }
        }
}

static void run_once(Cluster *c, size_t n, uint32_t iteration, uint32_t seed) {
        cluster_fill(c, n, seed);
        for (size_t i = 0; i < c->k; i++)
                node_start(c, i, iteration);
        cluster_run(c, (unsigned) c->k, 60 * USEC_PER_SEC);
        cluster_check(c, iteration, seed);
}

/* ---- the ring's arithmetic ---- */

static void test_segments(void **state) {
        for (size_t k = 1; k <= 9; k++)
                for (uint64_t n = 0; n < 40; n++) {
                        uint64_t next = 0;

                        for (size_t s = 0; s < k; s++) {
                                uint64_t len = allreduce_segment_length(n, k, s);

                                assert_int_equal(allreduce_segment_start(n, k, s), next);
                                assert_true(len == n / k || len == n / k + 1);
                                next += len;
                        }
                        assert_int_equal(next, n);
                }

        /* What a server sends in step t+1 it received in step t; after the
         * reduce-scatter it owns segment (self+1) mod k, whose final sum it
         * sends first in the all-gather. */
        for (size_t k = 2; k <= 9; k++)
                for (size_t self = 0; self < k; self++) {
                        assert_int_equal(allreduce_step_send_segment(k, self, 0), self);
                        for (size_t t = 0; t + 1 < 2 * (k - 1); t++)
                                assert_int_equal(allreduce_step_send_segment(k, self, t + 1),
                                                 allreduce_step_recv_segment(k, self, t));
                        assert_int_equal(allreduce_step_send_segment(k, self, k - 1), (self + 1) % k);
                        /* The left neighbour sends in step t what we receive in step t. */
                        for (size_t t = 0; t < 2 * (k - 1); t++)
                                assert_int_equal(allreduce_step_send_segment(k, (self + k - 1) % k, t),
                                                 allreduce_step_recv_segment(k, self, t));
                }
}

static void test_frames(void **state) {
        uint8_t buf[ALLREDUCE_DATA_HEADER_SIZE + 3 * sizeof(double)];
        const double v[3] = { 1.5, -0.0, 1e300 };
        double w[3] = { 1, 1, 1 };
        AllReduceData d;
        AllReduceHello h = { .iteration = 7, .position = 1, .rank = 11, .n_ring = 3, .n = UINT64_C(5000000000) }, g;
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *s;
        char text[32];
        uint32_t it;
        uint64_t x;

        allreduce_data_header_encode(buf, 7, 2, UINT64_C(0x100000001));
        allreduce_values_store(buf + ALLREDUCE_DATA_HEADER_SIZE, v, 3);
        assert_int_equal(allreduce_data_parse(buf, sizeof buf, &d), 0);
        assert_int_equal(d.iteration, 7);
        assert_int_equal(d.step, 2);
        assert_int_equal(d.offset, UINT64_C(0x100000001));
        assert_int_equal(d.count, 3);
        allreduce_values_add(w, d.values, 3);
        assert_true(w[0] == 2.5 && w[1] == 1 && w[2] == 1e300);
        allreduce_values_copy(w, d.values, 3);
        assert_memory_equal(w, v, sizeof v);
        /* Little-endian on the wire, whatever the host. */
        assert_int_equal(buf[0], 7);
        assert_int_equal(buf[8], 1);
        assert_int_equal(buf[12], 1);

        assert_int_equal(allreduce_data_parse(buf, ALLREDUCE_DATA_HEADER_SIZE, &d), -EBADMSG);
        assert_int_equal(allreduce_data_parse(buf, sizeof buf - 1, &d), -EBADMSG);
        assert_int_equal(allreduce_data_parse(buf, 3, &d), -EBADMSG);

        allreduce_ack_encode(buf, 9, 12345);
        assert_int_equal(allreduce_ack_parse(buf, ALLREDUCE_ACK_SIZE, &it, &x), 0);
        assert_int_equal(it, 9);
        assert_int_equal(x, 12345);
        assert_int_equal(allreduce_ack_parse(buf, ALLREDUCE_ACK_SIZE + 1, &it, &x), -EBADMSG);
        buf[5] = 1;
        assert_int_equal(allreduce_ack_parse(buf, ALLREDUCE_ACK_SIZE, &it, &x), -EBADMSG);

        strcpy(h.node_id, "server-a");
        assert_int_equal(allreduce_hello_to_json(&h, &o), 0);
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        assert_int_equal(allreduce_hello_parse((const uint8_t *) s, strlen(s), &g), 0);
        assert_memory_equal(&g, &h, sizeof g);

        static const char *const bad[] = {
                "",
                "[]",
                "{\"iteration\":1,\"position\":0,\"rank\":0,\"node_id\":\"a\",\"n_ring\":2}",
                "{\"iteration\":1,\"position\":2,\"rank\":0,\"node_id\":\"a\",\"n_ring\":2,\"n\":1}",
                "{\"iteration\":1,\"position\":0,\"rank\":0,\"node_id\":\"a\",\"n_ring\":1,\"n\":1}",
                "{\"iteration\":1,\"position\":0,\"rank\":0,\"node_id\":\"a b\",\"n_ring\":2,\"n\":1}",
                "{\"iteration\":1,\"position\":0,\"rank\":0,\"node_id\":\"a\",\"n_ring\":2,\"n\":-1}",
                "{\"iteration\":-1,\"position\":0,\"rank\":0,\"node_id\":\"a\",\"n_ring\":2,\"n\":1}",
                "{\"iteration\":1,\"position\":0,\"rank\":0,\"node_id\":1,\"n_ring\":2,\"n\":1}",
                "{\"iteration\":1,\"position\":0,\"rank\":0,\"node_id\":\"a\",\"n_ring\":99999,\"n\":1}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(allreduce_hello_parse((const uint8_t *) bad[i], strlen(bad[i]), &g), -EBADMSG);

        s = "{\"error\":\"x\\ny\",\"errno\":110}";
        assert_int_equal(allreduce_abort_parse((const uint8_t *) s, strlen(s), text, sizeof text), -ETIMEDOUT);
        assert_string_equal(text, "x?y");
        assert_int_equal(allreduce_abort_parse((const uint8_t *) "junk", 4, text, sizeof text), -ECONNREFUSED);
        assert_string_equal(text, "?");
}

/* ---- rings of 1 to 7 servers ---- */

static void test_sums(void **state) {
        static const size_t ks[] = { 1, 2, 3, 4, 7 };
        static const size_t ns[] = { 0, 1, 3, 7, 1000, 262147 };
        uint32_t iteration = 1;

        for (size_t a = 0; a < ELEMENTSOF(ks); a++) {
                Cluster *c = cluster_new(ks[a], TIMEOUT_USEC);

                /* The same instances, one iteration after the other. */
                for (size_t b = 0; b < ELEMENTSOF(ns); b++, iteration++)
                        run_once(c, ns[b], iteration, iteration * 31 + (uint32_t) a);
                cluster_free(c);
        }
}

static void test_large(void **state) {
        static const struct {
                size_t k, n;
        } cases[] = {
                { 2, 3000000 },
                { 4, 3000001 },   /* segments of unequal length, chunks that do not divide them */
        };

        for (size_t a = 0; a < ELEMENTSOF(cases); a++) {
                Cluster *c = cluster_new(cases[a].k, 60 * USEC_PER_SEC);

                run_once(c, cases[a].n, 1, 17);
                run_once(c, cases[a].n, 2, 18);
                cluster_free(c);
        }
}

static void test_ring_of_one_is_asynchronous(void **state) {
        Cluster *c = cluster_new(1, TIMEOUT_USEC);

        cluster_fill(c, 5, 1);
        node_start(c, 0, 3);
        /* Neither done() from inside start() nor a second start. */
        assert_false(c->nodes[0].done);
        assert_int_equal(allreduce_start(c->nodes[0].a, 3, c->ring, 1, 0, c->nodes[0].vec, 5, on_done, &c->nodes[0]),
                         -EBUSY);
        cluster_run(c, 1, 5 * USEC_PER_SEC);
        cluster_check(c, 3, 1);
        cluster_free(c);
}

static void test_arguments(void **state) {
        Cluster *c = cluster_new(2, TIMEOUT_USEC);
        AllReduce *a = c->nodes[0].a;
        RingMember bad[2];
        double v = 1;

        assert_int_equal(allreduce_start(a, 1, c->ring, 0, 0, &v, 1, on_done, NULL), -EINVAL);
        assert_int_equal(allreduce_start(a, 1, c->ring, 2, 2, &v, 1, on_done, NULL), -EINVAL);
        assert_int_equal(allreduce_start(a, 1, c->ring, 2, 0, NULL, 1, on_done, NULL), -EINVAL);
        assert_int_equal(allreduce_start(a, 1, c->ring, 2, 0, &v, 1, NULL, NULL), -EINVAL);
        memcpy(bad, c->ring, sizeof bad);
        strcpy(bad[1].address, "localhost");
        assert_int_equal(allreduce_start(a, 1, bad, 2, 0, &v, 1, on_done, NULL), -EINVAL);
        memcpy(bad, c->ring, sizeof bad);
        strcpy(bad[1].node_id, "no spaces");
        assert_int_equal(allreduce_start(a, 1, bad, 2, 0, &v, 1, on_done, NULL), -EINVAL);
        memcpy(bad, c->ring, sizeof bad);
        bad[1].peer_port = 0;
        assert_int_equal(allreduce_start(a, 1, bad, 2, 0, &v, 1, on_done, NULL), -EINVAL);
        cluster_free(c);

        assert_int_equal(allreduce_new(&a, NULL, NULL, 0, TIMEOUT_USEC), -EINVAL);
}

static void test_bind_any(void **state) {
        Cluster *c = cluster_new(2, TIMEOUT_USEC);

        /* The daemon's default: any address (IPv6 and IPv4 where both exist),
         * reached here over IPv4. */
        for (size_t i = 0; i < 2; i++) {
                allreduce_free(c->nodes[i].a);
                assert_int_equal(allreduce_new(&c->nodes[i].a, c->e, NULL, 0, 0), 0);
                c->ring[i].peer_port = allreduce_port(c->nodes[i].a);
        }
        run_once(c, 1000, 1, 1);
        cluster_free(c);
}

/* ---- failures and timing ---- */

static void test_peer_never_starts(void **state) {
        Cluster *c = cluster_new(3, 1 * USEC_PER_SEC);
        uint64_t t0;

        cluster_fill(c, 100000, 5);
        t0 = now_usec(CLOCK_MONOTONIC);
        node_start(c, 0, 4);
        node_start(c, 1, 4);
        cluster_run(c, 2, 5 * USEC_PER_SEC);
        for (size_t i = 0; i < 2; i++) {
                uint64_t elapsed = c->nodes[i].done_usec - t0;

                assert_int_equal(c->nodes[i].error, -ETIMEDOUT);
                assert_int_equal(c->nodes[i].iteration, 4);
                assert_true(elapsed >= 990 * USEC_PER_MSEC);
                assert_true(elapsed < 2500 * USEC_PER_MSEC);   /* slack for valgrind */
        }
        assert_false(c->nodes[2].done);

        /* The same instances recover for the next iteration. */
        run_once(c, 100000, 5, 6);
        cluster_free(c);
}

static void test_length_mismatch(void **state) {
        Cluster *c = cluster_new(3, 5 * USEC_PER_SEC);
        uint64_t t0 = now_usec(CLOCK_MONOTONIC);

        cluster_fill(c, 1000, 1);
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(allreduce_start(c->nodes[i].a, 1, c->ring, 3, i, c->nodes[i].vec,
                                                 i == 1 ? 999 : 1000, on_done, &c->nodes[i]), 0);
        cluster_run(c, 3, 4 * USEC_PER_SEC);
        /* Refused at the HELLO, and the ring fails fast with that cause. */
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(c->nodes[i].error, -EBADMSG);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 < 2 * USEC_PER_SEC);

        run_once(c, 1000, 2, 2);
        cluster_free(c);
}

static int start_later(sd_event_source *s, uint64_t usec, void *userdata) {
        Cluster *c = userdata;

        for (size_t i = 1; i < c->k; i += 2)
                node_start(c, i, 9);
        return 0;
}

static void test_staggered(void **state) {
        Cluster *c = cluster_new(4, TIMEOUT_USEC);
        sd_event_source *s = NULL;

        cluster_fill(c, 300000, 9);
        /* 0 and 2 first: their HELLOs wait at 1 and 3, and 1 and 3 dial
         * listeners whose operation runs already. */
        node_start(c, 0, 9);
        node_start(c, 2, 9);
        assert_int_equal(sd_event_add_time_relative(c->e, &s, CLOCK_MONOTONIC, 200 * USEC_PER_MSEC, 0,
                                                    start_later, c), 0);
        cluster_run(c, 4, 30 * USEC_PER_SEC);
        cluster_check(c, 9, 9);
        sd_event_source_unref(s);
        cluster_free(c);
}

static void test_cancel(void **state) {
        Cluster *c = cluster_new(3, TIMEOUT_USEC);
        uint64_t end;

        cluster_fill(c, 1000, 3);
        node_start(c, 0, 1);
        node_start(c, 1, 1);
        end = now_usec(CLOCK_MONOTONIC) + 100 * USEC_PER_MSEC;
        while (now_usec(CLOCK_MONOTONIC) < end)
                assert_true(sd_event_run(c->e, 10 * USEC_PER_MSEC) >= 0);
        allreduce_cancel(c->nodes[0].a);
        allreduce_cancel(c->nodes[1].a);
        /* Cancelled: done() never comes. */
        end = now_usec(CLOCK_MONOTONIC) + 100 * USEC_PER_MSEC;
        while (now_usec(CLOCK_MONOTONIC) < end)
                assert_true(sd_event_run(c->e, 10 * USEC_PER_MSEC) >= 0);
        assert_int_equal(c->n_done, 0);

        run_once(c, 1000, 2, 4);
        /* Freed while running: nothing leaks (valgrind), nothing is called. */
        cluster_fill(c, 1000, 5);
        node_start(c, 0, 3);
        node_start(c, 1, 3);
        assert_true(sd_event_run(c->e, 10 * USEC_PER_MSEC) >= 0);
        cluster_free(c);
}

/* ---- garbage on the peer port ---- */

static int raw_connect(uint16_t port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
        int fd;

        assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr), 1);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        return fd;
}

static void raw_send(int fd, uint8_t type, const void *payload, size_t size) {
        uint8_t header[WIRE_HEADER_SIZE];

        wire_header_encode(header, type, (uint32_t) size);
        assert_int_equal(send(fd, header, sizeof header, MSG_NOSIGNAL), (ssize_t) sizeof header);
        if (payload)   /* else a header alone */
                assert_int_equal(send(fd, payload, size, MSG_NOSIGNAL), (ssize_t) size);
}

static int raw_hello(uint16_t port, uint32_t iteration, uint32_t position, const char *node_id, uint32_t n_ring,
                     uint64_t n) {
        AllReduceHello h = { .iteration = iteration, .position = position, .rank = 10 * position + 1,
                             .n_ring = n_ring, .n = n };
        _cleanup_(json_object_putp) json_object *o = NULL;
        const char *s;
        int fd = raw_connect(port);

        strcpy(h.node_id, node_id);
        assert_int_equal(allreduce_hello_to_json(&h, &o), 0);
        s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        raw_send(fd, ALLREDUCE_HELLO, s, strlen(s));
        return fd;
}

/* What the server answered: ABORT's errno (negative), or 0 if it just
 * closed, or 1 if the connection is still open. */
static int raw_answer(int fd) {
        uint8_t buf[4096];
        size_t have = 0;
        char text[128];

        for (;;) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                ssize_t k;

                if (poll(&p, 1, 50) == 0)
                        return 1;
                k = recv(fd, buf + have, sizeof buf - have, 0);
                if (k <= 0)
                        break;
                have += (size_t) k;
        }
        if (have < WIRE_HEADER_SIZE)
                return 0;
        assert_int_equal(buf[5], ALLREDUCE_ABORT);
        return allreduce_abort_parse(buf + WIRE_HEADER_SIZE, have - WIRE_HEADER_SIZE, text, sizeof text);
}

static void test_garbage(void **state) {
        Cluster *c = cluster_new(3, TIMEOUT_USEC);
        uint16_t port = c->ring[0].peer_port;
        uint8_t junk[4096];
        int fd[8];

        /* An iteration first, so that iteration 0 is stale afterwards. */
        run_once(c, 1000, 1, 1);

        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (uint8_t) splitmix64(i);
        fd[0] = raw_connect(port);
        assert_int_equal(send(fd[0], junk, sizeof junk, MSG_NOSIGNAL), (ssize_t) sizeof junk);
        fd[1] = raw_hello(port, 0, 2, "node-2", 3, 300000);               /* stale iteration */
        fd[2] = raw_hello(port, 2, 1, "node-1", 3, 300000);               /* not the left neighbour */
        fd[3] = raw_hello(port, 2, 2, "node-9", 3, 300000);               /* not its node id */
        fd[4] = raw_hello(port, 5, 2, "node-2", 3, 7);                    /* a later iteration: held */
        fd[5] = raw_connect(port);
        raw_send(fd[5], ALLREDUCE_DATA, junk, 24);                        /* data before any HELLO */
        fd[6] = raw_connect(port);
        raw_send(fd[6], ALLREDUCE_HELLO, NULL, ALLREDUCE_FRAME_MAX + 1);  /* only a header, too large */
        fd[7] = raw_connect(port);                                        /* silent */

        /* The good operation runs beside all that. */
        run_once(c, 300000, 2, 2);

        assert_int_equal(raw_answer(fd[0]), 0);
        assert_int_equal(raw_answer(fd[1]), -ESTALE);
        assert_int_equal(raw_answer(fd[2]), -ECONNREFUSED);
        assert_int_equal(raw_answer(fd[3]), -ECONNREFUSED);
        assert_int_equal(raw_answer(fd[4]), 1);
        assert_int_equal(raw_answer(fd[5]), -EBADMSG);
        assert_int_equal(raw_answer(fd[6]), 0);
        assert_int_equal(raw_answer(fd[7]), 1);
        for (size_t i = 0; i < ELEMENTSOF(fd); i++)
                safe_close(fd[i]);
        cluster_free(c);
}

static void test_flood(void **state) {
        Cluster *c = cluster_new(3, TIMEOUT_USEC);
        int fd[40];

        /* More silent connections than a listener keeps: the oldest give
         * way, and the real left neighbour gets in. */
        for (size_t i = 0; i < ELEMENTSOF(fd); i++)
                fd[i] = raw_connect(c->ring[0].peer_port);
        run_once(c, 10000, 1, 1);
        for (size_t i = 0; i < ELEMENTSOF(fd); i++)
                safe_close(fd[i]);
        cluster_free(c);
}

typedef struct Intruder {
        uint16_t port;
        int fd;
} Intruder;

static int start_intruder(sd_event_source *s, uint64_t usec, void *userdata) {
        Intruder *x = userdata;
        uint8_t junk[24] = {};

        /* A data frame that claims to belong to the running operation, on
         * a connection of its own, while the real one runs. */
        allreduce_data_header_encode(junk, 1, 0, 0);
        x->fd = raw_connect(x->port);
        raw_send(x->fd, ALLREDUCE_DATA, junk, sizeof junk);
        return 0;
}

static void test_garbage_during_operation(void **state) {
        Cluster *c = cluster_new(2, TIMEOUT_USEC);
        sd_event_source *s = NULL;
        Intruder x = { .port = c->ring[1].peer_port, .fd = -EBADF };

        cluster_fill(c, 3000000, 8);
        node_start(c, 0, 1);
        node_start(c, 1, 1);
        assert_int_equal(sd_event_add_time_relative(c->e, &s, CLOCK_MONOTONIC, 1, 0, start_intruder, &x), 0);
        cluster_run(c, 2, 60 * USEC_PER_SEC);
        cluster_check(c, 1, 8);
        assert_true(x.fd >= 0);
        assert_int_equal(raw_answer(x.fd), -EBADMSG);
        safe_close(x.fd);
        sd_event_source_unref(s);
        cluster_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_segments),
                cmocka_unit_test(test_frames),
                cmocka_unit_test(test_sums),
                cmocka_unit_test(test_large),
                cmocka_unit_test(test_ring_of_one_is_asynchronous),
                cmocka_unit_test(test_arguments),
                cmocka_unit_test(test_bind_any),
                cmocka_unit_test(test_peer_never_starts),
                cmocka_unit_test(test_length_mismatch),
                cmocka_unit_test(test_staggered),
                cmocka_unit_test(test_cancel),
                cmocka_unit_test(test_garbage),
                cmocka_unit_test(test_flood),
                cmocka_unit_test(test_garbage_during_operation),
        };
        const char *level = getenv("FL_LOG_LEVEL");

        log_set_max_level(level ? log_parse_level(level) : LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
