/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* Our own PRNG, so that a --seed gives the same partition, the same initial
 * weights and the same training whatever rand() a libc has: xoshiro256**
 * (Blackman and Vigna) seeded through splitmix64. The integer paths
 * (shuffles, bounded draws) are exact everywhere; the normal and gamma
 * variates go through libm's log() and sqrt(). Not for anything secret. */

typedef struct Rng {
        uint64_t s[4];
} Rng;

void rng_seed(Rng *rng, uint64_t seed);
uint64_t rng_next(Rng *rng);

/* A seed for an independent stream: e.g. device k of iteration t is
 * rng_derive_seed(rng_derive_seed(seed, t), k). */
_const_ uint64_t rng_derive_seed(uint64_t seed, uint64_t stream);

/* Uniform in [0, 1), 53 bits. */
double rng_uniform(Rng *rng);
/* Uniform in (0, 1]: safe to take the logarithm of. */
double rng_uniform_pos(Rng *rng);
/* Uniform integer in [0, bound), unbiased (Lemire); bound > 0. */
uint64_t rng_bounded(Rng *rng, uint64_t bound);
/* Standard normal (Marsaglia's polar method; the spare is not kept, so the
 * stream does not depend on call history beyond the state). */
double rng_normal(Rng *rng);
/* log of a Gamma(shape, 1) variate, shape > 0 (Marsaglia and Tsang; for
 * shape < 1 boosted by U^(1/shape), kept in log space so that tiny shapes
 * such as a Dirichlet alpha of 0.01 do not underflow to 0). */
double rng_log_gamma_variate(Rng *rng, double shape);
/* Fisher-Yates. */
void rng_shuffle_u32(Rng *rng, uint32_t *v, size_t n);
