/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ring all-reduce on loopback: time per operation and bus bandwidth,
 * set against two limits measured in the same run (a memory copy on one
 * core, and one TCP stream between two processes over loopback).
 *
 *   bench-allreduce [--processes] [--repeat N] [--tls]
 *
 * With --tls every row is measured twice in the same run, over clear TCP
 * and over TLS (mutual certificates from a CA made here with GnuTLS, the
 * default priorities), and the ratio TLS/clear of the time per operation
 * is printed: what encrypting the ring costs.
 *
 * By default the k servers are k AllReduce instances in one process and one
 * sd-event loop, so all of them share one core: the figure is the cost of
 * the protocol, not the ring's parallel speed. --processes forks one process
 * per server (on loopback, each with its own loop), as real servers run.
 *
 * Bus bandwidth is NCCL's: 2 (k-1)/k x bytes / time, what each server's
 * link carries per second; it is comparable across k. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "cluster-trust.h"
#include "log.h"
#include "server-allreduce.h"
#include "tls-issue.h"
#include "util.h"

#define K_MAX 8
#define TIMEOUT_USEC (120 * USEC_PER_SEC)

typedef struct Bench {
        sd_event *e;
        size_t k;
        AllReduce *a[K_MAX];
        RingMember ring[K_MAX];
        double *vec[K_MAX];
        unsigned n_done;
        int error;
} Bench;

static void on_done(AllReduce *a, int error, uint32_t iteration, void *userdata) {
        Bench *b = userdata;

        b->n_done++;
        if (error < 0)
                b->error = error;
}

static double seconds(uint64_t usec) {
        return (double) usec / USEC_PER_SEC;
}

static int run_loop(Bench *b, unsigned n_done) {
        while (b->n_done < n_done && b->error == 0) {
                int r = sd_event_run(b->e, UINT64_MAX);
                if (r < 0)
                        return r;
        }
        return b->error;
}

static void fill(double *v, size_t n, size_t node) {
        for (size_t j = 0; j < n; j++)
                v[j] = (double) ((j * 7 + node * 13) % 1001) * 0.001;
}

static void ring_member(RingMember *m, size_t i, uint16_t port) {
        *m = (RingMember) { .rank = (uint32_t) i, .peer_port = port };
        snprintf(m->node_id, sizeof m->node_id, "bench-%zu", i);
        strcpy(m->address, "127.0.0.1");
}

/* --tls: the configuration naming the material made in tls_prepare(). */
static FlConfig tls_config;
static char tls_dir[] = "/tmp/fl-bench-allreduce-XXXXXX";

static int write_pem(const char *name, const TlsIssued *i, bool key) {
        _cleanup_free_ char *path = NULL, *pem = NULL;
        int r;

        if (asprintf(&path, "%s/%s", tls_dir, name) < 0)
                return -ENOMEM;
        r = key ? tls_issued_key_pem(i, &pem) : tls_issued_cert_pem(i, &pem);
        if (r < 0)
                return r;
        return write_file_atomic(path, pem);
}

/* A CA and one node certificate for 127.0.0.1, as flctl tls init makes them. */
static int tls_prepare(void) {
        _cleanup_(tls_issued_done) TlsIssued ca = {}, node = {};
        char *hosts[] = { "127.0.0.1" };
        time_t now = time(NULL);
        int r;

        if (!mkdtemp(tls_dir))
                return -errno;
        r = tls_issue_ca("bench CA", now - 3600, now + 3650 * 86400, &ca);
        if (r >= 0)
                r = tls_issue_node(&ca, hosts, 1, now - 3600, now + 730 * 86400, &node);
        if (r >= 0)
                r = write_pem("ca.pem", &ca, false);
        if (r >= 0)
                r = write_pem("node.pem", &node, false);
        if (r >= 0)
                r = write_pem("node-key.pem", &node, true);
        if (r < 0)
                return r;
        r = conf_init(&tls_config);
        if (r < 0)
                return r;
        tls_config.enable_ssl = true;
        if (asprintf(&tls_config.ssl.ca_cert_path, "%s/ca.pem", tls_dir) < 0 ||
            asprintf(&tls_config.ssl.server_cert_path, "%s/node.pem", tls_dir) < 0 ||
            asprintf(&tls_config.ssl.server_key_path, "%s/node-key.pem", tls_dir) < 0)
                return -ENOMEM;
        return 0;
}

static void tls_cleanup(void) {
        const char *files[] = { "ca.pem", "node.pem", "node-key.pem" };
        char path[128];

        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                snprintf(path, sizeof path, "%s/%s", tls_dir, files[i]);
                (void) unlink(path);
        }
        (void) rmdir(tls_dir);
        conf_done(&tls_config);
}

/* All k instances in this process; returns seconds per operation. */
static int bench_one_process(size_t k, size_t n, unsigned repeat, bool tls, double *ret) {
        _cleanup_(cluster_trust_freep) ClusterTrust *trust = NULL;
        Bench b = { .k = k };
        uint64_t t0 = 0;
        int r;

        r = sd_event_new(&b.e);
        if (r < 0)
                return r;
        if (tls) {
                r = cluster_trust_new(&trust, b.e, &tls_config);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < k; i++) {
                r = allreduce_new(&b.a[i], b.e, "127.0.0.1", 0, TIMEOUT_USEC);
                if (r >= 0 && trust)
                        r = allreduce_set_trust(b.a[i], trust);
                if (r < 0)
                        return r;
                ring_member(&b.ring[i], i, allreduce_port(b.a[i]));
                b.vec[i] = malloc(n * sizeof(double));
                if (!b.vec[i])
                        return -ENOMEM;
                fill(b.vec[i], n, i);
        }

        /* One round to warm up (page faults, socket buffers), then timed ones. */
        for (unsigned it = 0; it <= repeat; it++) {
                if (it == 1)
                        t0 = now_usec(CLOCK_MONOTONIC);
                for (size_t i = 0; i < k; i++) {
                        r = allreduce_start(b.a[i], it, b.ring, k, i, b.vec[i], n, on_done, &b);
                        if (r < 0)
                                return r;
                }
                r = run_loop(&b, (unsigned) (k * (it + 1)));
                if (r < 0)
                        return r;
        }
        *ret = seconds(now_usec(CLOCK_MONOTONIC) - t0) / repeat;

        for (size_t i = 0; i < k; i++) {
                allreduce_free(b.a[i]);
                free(b.vec[i]);
        }
        sd_event_unref(b.e);
        return 0;
}

/* Ports that were free a moment ago, for children to bind again. */
static int reserve_ports(size_t k, uint16_t *ports) {
        int fds[K_MAX];

        for (size_t i = 0; i < k; i++) {
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t len = sizeof sa;

                fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fds[i] < 0 || bind(fds[i], (struct sockaddr *) &sa, sizeof sa) < 0 ||
                    getsockname(fds[i], (struct sockaddr *) &sa, &len) < 0)
                        return -errno;
                ports[i] = ntohs(sa.sin_port);
        }
        for (size_t i = 0; i < k; i++)
                close(fds[i]);
        return 0;
}

/* One process per server; returns the seconds per operation that the
 * slowest server saw. */
static int bench_processes(size_t k, size_t n, unsigned repeat, bool tls, double *ret) {
        uint16_t ports[K_MAX];
        int pipes[K_MAX][2];
        pid_t pids[K_MAX];
        double worst = 0;
        int r;

        r = reserve_ports(k, ports);
        if (r < 0)
                return r;
        for (size_t i = 0; i < k; i++) {
                if (pipe(pipes[i]) < 0)
                        return -errno;
                pids[i] = fork();
                if (pids[i] < 0)
                        return -errno;
                if (pids[i] == 0) {
                        ClusterTrust *trust = NULL;
                        Bench b = { .k = k };
                        double per_op = -1;
                        uint64_t t0 = 0;

                        close(pipes[i][0]);
                        if (sd_event_new(&b.e) < 0 || (tls && cluster_trust_new(&trust, b.e, &tls_config) < 0) ||
                            allreduce_new(&b.a[0], b.e, "127.0.0.1", ports[i], TIMEOUT_USEC) < 0 ||
                            (trust && allreduce_set_trust(b.a[0], trust) < 0))
                                _exit(1);
                        for (size_t j = 0; j < k; j++)
                                ring_member(&b.ring[j], j, ports[j]);
                        b.vec[0] = malloc(n * sizeof(double));
                        if (!b.vec[0])
                                _exit(1);
                        fill(b.vec[0], n, i);
                        /* The ring itself is the barrier between rounds. */
                        for (unsigned it = 0; it <= repeat; it++) {
                                if (it == 1)
                                        t0 = now_usec(CLOCK_MONOTONIC);
                                if (allreduce_start(b.a[0], it, b.ring, k, i, b.vec[0], n, on_done, &b) < 0 ||
                                    run_loop(&b, it + 1) < 0)
                                        _exit(2);
                        }
                        per_op = seconds(now_usec(CLOCK_MONOTONIC) - t0) / repeat;
                        if (write(pipes[i][1], &per_op, sizeof per_op) != sizeof per_op)
                                _exit(3);
                        _exit(0);
                }
                close(pipes[i][1]);
        }
        for (size_t i = 0; i < k; i++) {
                double per_op;
                int status;

                if (read(pipes[i][0], &per_op, sizeof per_op) != sizeof per_op)
                        per_op = -1;
                close(pipes[i][0]);
                (void) waitpid(pids[i], &status, 0);
                if (per_op < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        return -EIO;
                worst = MAX(worst, per_op);
        }
        *ret = worst;
        return 0;
}

static double memcpy_gbps(size_t bytes) {
        char *src = malloc(bytes), *dst = malloc(bytes);
        uint64_t t0;
        unsigned rounds = 5;
        double gbps;

        if (!src || !dst)
                return 0;
        memset(src, 1, bytes);
        memset(dst, 2, bytes);
        t0 = now_usec(CLOCK_MONOTONIC);
        for (unsigned i = 0; i < rounds; i++) {
                src[i] = (char) i;
                memcpy(dst, src, bytes);
        }
        gbps = (double) bytes * rounds / seconds(now_usec(CLOCK_MONOTONIC) - t0) / 1e9;
        /* Keep the copies observable. */
        if (dst[0] == 42)
                fputc(' ', stderr);
        free(src);
        free(dst);
        return gbps;
}

/* One TCP stream over loopback between two processes, 1 MiB writes. */
static double tcp_stream_gbps(size_t bytes) {
        int sv[2] = { -1, -1 }, lfd;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;
        static char buf[1 << 20];
        size_t got = 0;
        uint64_t t0;
        pid_t pid;

        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lfd < 0 || bind(lfd, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(lfd, 1) < 0 ||
            getsockname(lfd, (struct sockaddr *) &sa, &len) < 0)
                return 0;
        pid = fork();
        if (pid < 0)
                return 0;
        if (pid == 0) {
                size_t sent = 0;

                sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (connect(sv[1], (struct sockaddr *) &sa, sizeof sa) < 0)
                        _exit(1);
                while (sent < bytes) {
                        ssize_t k = write(sv[1], buf, MIN(sizeof buf, bytes - sent));
                        if (k <= 0)
                                _exit(1);
                        sent += (size_t) k;
                }
                _exit(0);
        }
        sv[0] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        close(lfd);
        if (sv[0] < 0)
                return 0;
        t0 = now_usec(CLOCK_MONOTONIC);
        for (;;) {
                ssize_t k = read(sv[0], buf, sizeof buf);
                if (k <= 0)
                        break;
                got += (size_t) k;
        }
        t0 = now_usec(CLOCK_MONOTONIC) - t0;
        close(sv[0]);
        (void) waitpid(pid, NULL, 0);
        return (double) got / seconds(t0) / 1e9;
}

int main(int argc, char *argv[]) {
        static const size_t ks[] = { 2, 4 };
        static const size_t ns[] = { 61706, 11000000 };
        bool processes = false, tls = false;
        unsigned repeat_big = 5;
        double copy, tcp;
        int r;

        for (int i = 1; i < argc; i++) {
                if (streq(argv[i], "--processes"))
                        processes = true;
                else if (streq(argv[i], "--tls"))
                        tls = true;
                else if (streq(argv[i], "--repeat") && i + 1 < argc && safe_atou32(argv[i + 1], &repeat_big) >= 0 &&
                         repeat_big > 0)
                        i++;
                else {
                        fprintf(stderr, "Usage: %s [--processes] [--repeat N] [--tls]\n", argv[0]);
                        return 2;
                }
        }
        log_set_max_level(LOG_WARNING);
        if (tls) {
                r = tls_prepare();
                if (r < 0) {
                        fprintf(stderr, "Failed to make the TLS material: %s\n", strerror(-r));
                        return 1;
                }
        }

        copy = memcpy_gbps(11000000 * sizeof(double));
        tcp = tcp_stream_gbps((size_t) 2 << 30);
        printf("# limits on this machine: memcpy %.2f GB/s (one core), TCP loopback stream %.2f GB/s (two processes)\n",
               copy, tcp);
        printf("# mode: %s\n", processes ? "one process per server" : "all servers in one process, one loop, one core");
        printf("%-3s %-10s %-8s %12s %12s %12s %10s %10s%s\n",
               "k", "elements", "MB", "ms/op", "algbw GB/s", "busbw GB/s", "bus/tcp", "bus/copy",
               tls ? "  TLS ms/op  TLS busbw  TLS/clear" : "");

        for (size_t a = 0; a < ELEMENTSOF(ks); a++)
                for (size_t b = 0; b < ELEMENTSOF(ns); b++) {
                        size_t k = ks[a], n = ns[b];
                        unsigned repeat = n < 1000000 ? 200 : repeat_big;
                        double bytes = (double) n * sizeof(double), per_op, tls_op = 0, algbw, busbw;

                        r = processes ? bench_processes(k, n, repeat, false, &per_op)
                                      : bench_one_process(k, n, repeat, false, &per_op);
                        if (r >= 0 && tls)
                                r = processes ? bench_processes(k, n, repeat, true, &tls_op)
                                              : bench_one_process(k, n, repeat, true, &tls_op);
                        if (r < 0) {
                                fprintf(stderr, "k=%zu n=%zu failed: %s\n", k, n, strerror(-r));
                                return 1;
                        }
                        algbw = bytes / per_op / 1e9;
                        busbw = algbw * 2.0 * (double) (k - 1) / (double) k;
                        printf("%-3zu %-10zu %-8.1f %12.3f %12.3f %12.3f %10.2f %10.2f",
                               k, n, bytes / 1e6, per_op * 1e3, algbw, busbw, busbw / tcp, busbw / copy);
                        if (tls)
                                printf(" %10.3f %10.3f %10.3f", tls_op * 1e3,
                                       bytes / tls_op / 1e9 * 2.0 * (double) (k - 1) / (double) k, tls_op / per_op);
                        printf("\n");
                        if (tls)
                                printf("RESULT allreduce k=%zu n=%zu clear_ms=%.3f tls_ms=%.3f ratio=%.3f\n", k, n,
                                       per_op * 1e3, tls_op * 1e3, tls_op / per_op);
                        fflush(stdout);
                }
        if (tls)
                tls_cleanup();
        return 0;
}
