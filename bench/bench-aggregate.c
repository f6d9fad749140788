/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The aggregation kernel against a plain memory copy, in one run.
 *
 * The kernel is what fl-serverd runs for every accepted update:
 * aggregate_add_checked() of src/server/server-aggregate.c (each float of
 * the update added into the double running sum), called directly. The
 * reference is memcpy() of the same number of bytes (the update's), on the
 * same machine, interleaved with the kernel round by round so that both see
 * the same clock, caches and neighbours.
 *
 * Two sizes: LeNet-5 (61,684 floats, 241 KiB: the update and the 482 KiB sum
 * stay in the caches) and 11M floats (44 MB update, 88 MB sum: main memory).
 *
 * Printed per size, medians over the rounds:
 *   add      GB/s of update bytes absorbed into the sum (4 bytes a float)
 *   memcpy   GB/s of bytes copied
 *   ratio    add / memcpy: the share of copy bandwidth the kernel reaches
 *   traffic  bytes the kernel moves per float (4 read + 8 read + 8 written)
 *            against memcpy's (4 + 4), as GB/s each: how close the kernel
 *            is to the memory system's limit
 * and aggregate_check() (the finiteness scan and name lookup of each update)
 * in GB/s of update bytes as well.
 *
 *   bench-aggregate [--rounds N] [--seconds S] [--large FLOATS]
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "model.h"
#include "server-aggregate.h"
#include "util.h"

#define GB 1e9

typedef struct Options {
        unsigned rounds;
        double seconds;         /* per round and measurement */
        size_t large;
} Options;

static double now_s(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

/* Keeps the compiler from dropping a copy nobody reads. */
static void clobber(void *p) {
        __asm__ volatile("" : : "r"(p) : "memory");
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return (x > y) - (x < y);
}

static double median(double *v, size_t n) {
        qsort(v, n, sizeof *v, cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double spread(const double *sorted, size_t n) {
        /* (max - min) / median, in percent: how noisy the rounds were. */
        double m = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;

        return m > 0 ? 100.0 * (sorted[n - 1] - sorted[0]) / m : 0;
}

typedef enum Kernel {
        KERNEL_ADD,
        KERNEL_COPY,
        KERNEL_CHECK,
        _KERNEL_MAX,
} Kernel;

typedef struct Bench {
        const char *label;
        Aggregate *aggregate;
        FlFeatureMap *maps;
        const float **ordered;
        float *copy_dst;
        size_t total;           /* floats */
        size_t reps;            /* per round, calibrated */
} Bench;

static int run_once(Bench *b, Kernel k) {
        char reason[FL_REASON_MAX];
        int r = 0;

        switch (k) {
        case KERNEL_ADD:
                r = aggregate_add_checked(b->aggregate, b->ordered, 1);
                break;
        case KERNEL_COPY:
                /* The update is one contiguous block: see bench_new(). */
                memcpy(b->copy_dst, b->maps[0].data, b->total * sizeof(float));
                clobber(b->copy_dst);
                break;
        case KERNEL_CHECK:
                r = aggregate_check(b->aggregate, b->maps, b->aggregate->n_tensors, b->ordered, reason);
                break;
        default:
                abort();
        }
        return r;
}

/* Seconds for reps calls. */
static double run_timed(Bench *b, Kernel k, size_t reps) {
        double t0 = now_s();

        for (size_t i = 0; i < reps; i++)
                if (run_once(b, k) < 0) {
                        log_error("The kernel failed on a valid update.");
                        exit(EXIT_FAILURE);
                }
        return now_s() - t0;
}

static void bench_free(Bench *b) {
        aggregate_free(b->aggregate);
        if (b->maps)
                free((void *) b->maps[0].data);
        free(b->maps);
        free(b->ordered);
        free(b->copy_dst);
}

/* A model of n_tensors tensors of the given sizes; the update is one
 * contiguous buffer (as a decoded FlatBuffers body nearly is), its feature
 * maps point into it in model order. */
static int bench_new(Bench *b, const char *label, const char *const *names, const size_t *sizes, size_t n) {
        _cleanup_(model_freep) Model *shape = NULL;
        float *update;
        size_t total = 0, off = 0;
        int r;

        *b = (Bench) { .label = label };
        r = model_new(&shape, names, sizes, n);
        if (r < 0)
                return r;
        r = aggregate_new(&b->aggregate, shape);
        if (r < 0)
                return r;
        aggregate_reset(b->aggregate, 1);
        total = b->aggregate->total;
        b->total = total;

        update = aligned_alloc(64, (total * sizeof(float) + 63) / 64 * 64);
        b->copy_dst = aligned_alloc(64, (total * sizeof(float) + 63) / 64 * 64);
        b->maps = calloc(n, sizeof(FlFeatureMap));
        b->ordered = calloc(n, sizeof(float *));
        if (!update || !b->copy_dst || !b->maps || !b->ordered) {
                free(update);
                return -ENOMEM;
        }
        /* Small, finite, varied values; the sum never overflows. */
        for (size_t i = 0; i < total; i++)
                update[i] = (float) ((int) (i % 2001) - 1000) * 1e-3f;
        memset(b->copy_dst, 0, total * sizeof(float));
        for (size_t t = 0; t < n; t++) {
                b->maps[t] = (FlFeatureMap) { .name = names[t], .data = update + off, .n = sizes[t] };
                off += sizes[t];
        }
        return aggregate_check(b->aggregate, b->maps, n, b->ordered, (char[FL_REASON_MAX]) {}) < 0 ? -EINVAL : 0;
}

/* Enough calls that one measurement lasts about `seconds`. */
static void calibrate(Bench *b, double seconds) {
        size_t reps = 1;
        double t;

        for (;;) {
                t = MAX(run_timed(b, KERNEL_ADD, reps), run_timed(b, KERNEL_COPY, reps));
                if (t >= seconds / 4 || reps >= (size_t) 1 << 30)
                        break;
                reps *= 2;
        }
        b->reps = MAX((size_t) 1, (size_t) ((double) reps * seconds / MAX(t, 1e-9)));
}

static void bench_report(Bench *b, const Options *o) {
        double gbs[_KERNEL_MAX][o->rounds], med[_KERNEL_MAX], noise[_KERNEL_MAX];
        double bytes = (double) b->total * sizeof(float);

        calibrate(b, o->seconds);
        for (unsigned r = 0; r < o->rounds; r++)
                for (Kernel k = 0; k < _KERNEL_MAX; k++)
                        gbs[k][r] = bytes * (double) b->reps / run_timed(b, k, b->reps) / GB;
        for (Kernel k = 0; k < _KERNEL_MAX; k++) {
                med[k] = median(gbs[k], o->rounds);
                noise[k] = spread(gbs[k], o->rounds);
        }

        printf("%s: %zu floats (%.1f MB update, %.1f MB sum), %zu calls x %u rounds\n", b->label, b->total,
               bytes / 1e6, 2 * bytes / 1e6, b->reps, o->rounds);
        printf("  add (aggregate_add_checked)   %8.2f GB/s of update  (rounds spread %.0f%%)\n",
               med[KERNEL_ADD], noise[KERNEL_ADD]);
        printf("  memcpy, same bytes            %8.2f GB/s            (rounds spread %.0f%%)\n",
               med[KERNEL_COPY], noise[KERNEL_COPY]);
        printf("  check (aggregate_check)       %8.2f GB/s of update  (rounds spread %.0f%%)\n",
               med[KERNEL_CHECK], noise[KERNEL_CHECK]);
        printf("  ratio add/memcpy              %8.2f\n", med[KERNEL_ADD] / med[KERNEL_COPY]);
        printf("  traffic add %.2f GB/s (20 B/float) vs memcpy %.2f GB/s (8 B/float): %.2f\n",
               med[KERNEL_ADD] * 5, med[KERNEL_COPY] * 2, med[KERNEL_ADD] * 5 / (med[KERNEL_COPY] * 2));
        /* One line for scripts. */
        printf("RESULT %s add_gbs=%.3f memcpy_gbs=%.3f check_gbs=%.3f ratio=%.3f traffic_ratio=%.3f\n", b->label,
               med[KERNEL_ADD], med[KERNEL_COPY], med[KERNEL_CHECK], med[KERNEL_ADD] / med[KERNEL_COPY],
               med[KERNEL_ADD] * 5 / (med[KERNEL_COPY] * 2));
        fflush(stdout);
}

static const char *const lenet_names[] = {
        "conv1.weight", "conv2.weight", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias",
};
static const size_t lenet_sizes[] = { 6 * 25, 16 * 6 * 25, 120 * 400, 120, 84 * 120, 84, 10 * 84, 10 };

int main(int argc, char *argv[]) {
        static const struct option longopts[] = {
                { "rounds", required_argument, NULL, 'r' },
                { "seconds", required_argument, NULL, 's' },
                { "large", required_argument, NULL, 'l' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        Options o = { .rounds = 7, .seconds = 0.3, .large = 11000000 };
        char large_names[11][32];
        const char *large_name_ptrs[11];
        size_t large_sizes[11];
        Bench b;
        int c, r;

        log_set_ident("bench-aggregate");
        while ((c = getopt_long(argc, argv, "h", longopts, NULL)) >= 0)
                switch (c) {
                case 'r':
                        if (safe_atou32(optarg, &(uint32_t) { 0 }) < 0 || atoi(optarg) < 1)
                                return log_error("Invalid --rounds."), EXIT_FAILURE;
                        o.rounds = (unsigned) atoi(optarg);
                        break;
                case 's':
                        if (safe_atod(optarg, &o.seconds) < 0 || !(o.seconds > 0))
                                return log_error("Invalid --seconds."), EXIT_FAILURE;
                        break;
                case 'l': {
                        uint64_t v;

                        if (safe_atou64(optarg, &v) < 0 || v < 11)
                                return log_error("Invalid --large."), EXIT_FAILURE;
                        o.large = (size_t) v;
                        break;
                }
                case 'h':
                        printf("usage: %s [--rounds N] [--seconds S] [--large FLOATS]\n", argv[0]);
                        return EXIT_SUCCESS;
                default:
                        return EXIT_FAILURE;
                }

        r = bench_new(&b, "lenet5", lenet_names, lenet_sizes, ELEMENTSOF(lenet_names));
        if (r < 0)
                return log_error_errno(r, "Failed to set up the LeNet-5 bench: %m"), EXIT_FAILURE;
        bench_report(&b, &o);
        bench_free(&b);

        /* 11 tensors, like a small CNN's layers; the first takes the remainder. */
        for (size_t t = 0; t < ELEMENTSOF(large_sizes); t++) {
                snprintf(large_names[t], sizeof large_names[t], "layer%zu.weight", t);
                large_name_ptrs[t] = large_names[t];
                large_sizes[t] = o.large / ELEMENTSOF(large_sizes);
        }
        large_sizes[0] += o.large % ELEMENTSOF(large_sizes);
        r = bench_new(&b, "large", large_name_ptrs, large_sizes, ELEMENTSOF(large_sizes));
        if (r < 0)
                return log_error_errno(r, "Failed to set up the %zu-float bench: %m", o.large), EXIT_FAILURE;
        bench_report(&b, &o);
        bench_free(&b);
        return EXIT_SUCCESS;
}
