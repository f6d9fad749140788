/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <math.h>

#include "rng.h"

static uint64_t splitmix64(uint64_t *x) {
        uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));

        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
        return (x << k) | (x >> (64 - k));
}

void rng_seed(Rng *rng, uint64_t seed) {
        uint64_t x = seed;

        /* splitmix64 never yields four zero words, the one state xoshiro
         * must not have. */
        for (size_t i = 0; i < 4; i++)
                rng->s[i] = splitmix64(&x);
}

uint64_t rng_next(Rng *rng) {
        uint64_t *s = rng->s;
        uint64_t result = rotl(s[1] * 5, 7) * 9;
        uint64_t t = s[1] << 17;

        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
}

uint64_t rng_derive_seed(uint64_t seed, uint64_t stream) {
        uint64_t x = seed ^ splitmix64(&stream);

        return splitmix64(&x);
}

double rng_uniform(Rng *rng) {
        return (double) (rng_next(rng) >> 11) * 0x1.0p-53;
}

double rng_uniform_pos(Rng *rng) {
        return (double) ((rng_next(rng) >> 11) + 1) * 0x1.0p-53;
}

uint64_t rng_bounded(Rng *rng, uint64_t bound) {
        unsigned __int128 m;
        uint64_t l;

        m = (unsigned __int128) rng_next(rng) * bound;
        l = (uint64_t) m;
        if (l < bound) {
                uint64_t threshold = -bound % bound;

                while (l < threshold) {
                        m = (unsigned __int128) rng_next(rng) * bound;
                        l = (uint64_t) m;
                }
        }
        return (uint64_t) (m >> 64);
}

double rng_normal(Rng *rng) {
        double u, v, s;

        do {
                u = 2.0 * rng_uniform(rng) - 1.0;
                v = 2.0 * rng_uniform(rng) - 1.0;
                s = u * u + v * v;
        } while (s >= 1.0 || s == 0.0);
        return u * sqrt(-2.0 * log(s) / s);
}

double rng_log_gamma_variate(Rng *rng, double shape) {
        double boost = 0.0, d, c;

        if (shape < 1.0) {
                /* Gamma(a) = Gamma(a + 1) * U^(1/a) */
                boost = log(rng_uniform_pos(rng)) / shape;
                shape += 1.0;
        }

        d = shape - 1.0 / 3.0;
        c = 1.0 / sqrt(9.0 * d);
        for (;;) {
                double x, v, u;

                do {
                        x = rng_normal(rng);
                        v = 1.0 + c * x;
                } while (v <= 0.0);
                v = v * v * v;
                u = rng_uniform_pos(rng);
                if (u < 1.0 - 0.0331 * x * x * x * x ||
                    log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
                        return log(d * v) + boost;
        }
}

void rng_shuffle_u32(Rng *rng, uint32_t *v, size_t n) {
        for (size_t i = n; i > 1; i--) {
                size_t j = (size_t) rng_bounded(rng, i);
                uint32_t t = v[i - 1];

                v[i - 1] = v[j];
                v[j] = t;
        }
}
