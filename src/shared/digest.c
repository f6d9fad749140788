/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "digest.h"

#define P1 UINT64_C(0x9e3779b185ebca87)
#define P2 UINT64_C(0xc2b2ae3d27d4eb4f)
#define P3 UINT64_C(0x165667b19e3779f9)

static inline uint64_t rotl64(uint64_t x, unsigned r) {
        return (x << r) | (x >> (64 - r));
}

static inline uint64_t load64(const uint8_t *p) {
        uint64_t v;

        memcpy(&v, p, sizeof v);        /* little-endian hosts only (as model_checksum()) */
        return v;
}

static inline uint64_t lane_step(uint64_t h, uint64_t w) {
        return rotl64(h + w * P2, 31) * P1;
}

void digest_init(Digest *d) {
        *d = (Digest) {
                .lane = { P1 + P2, P2, 0, -P1 },
        };
}

static void blocks(Digest *d, const uint8_t *p, size_t n_blocks) {
        uint64_t a = d->lane[0], b = d->lane[1], c = d->lane[2], e = d->lane[3];

        for (size_t i = 0; i < n_blocks; i++, p += 32) {
                a = lane_step(a, load64(p));
                b = lane_step(b, load64(p + 8));
                c = lane_step(c, load64(p + 16));
                e = lane_step(e, load64(p + 24));
        }
        d->lane[0] = a, d->lane[1] = b, d->lane[2] = c, d->lane[3] = e;
}

void digest_add(Digest *d, const void *data, size_t n) {
        const uint8_t *p = data;

        d->length += n;
        if (d->n_tail > 0) {
                size_t k = sizeof d->tail - d->n_tail;

                if (k > n)
                        k = n;
                memcpy(d->tail + d->n_tail, p, k);
                d->n_tail += k;
                p += k;
                n -= k;
                if (d->n_tail < sizeof d->tail)
                        return;
                blocks(d, d->tail, 1);
                d->n_tail = 0;
        }
        blocks(d, p, n / 32);
        p += n / 32 * 32;
        n %= 32;
        memcpy(d->tail, p, n);
        d->n_tail = n;
}

uint64_t digest_final(const Digest *d) {
        uint64_t h = rotl64(d->lane[0], 1) + rotl64(d->lane[1], 7) + rotl64(d->lane[2], 12) + rotl64(d->lane[3], 18);

        h ^= d->length * P3;
        for (size_t i = 0; i < d->n_tail; i++)
                h = rotl64(h ^ (d->tail[i] * P3), 11) * P1;
        /* Final avalanche, so that every input bit reaches every output bit. */
        h ^= h >> 33;
        h *= P2;
        h ^= h >> 29;
        h *= P3;
        h ^= h >> 32;
        return h ?: 1;
}

uint64_t digest_vectors(const void *const *vectors, const size_t *sizes, size_t n) {
        Digest d;

        digest_init(&d);
        for (size_t i = 0; i < n; i++) {
                uint64_t size = sizes[i];

                /* The lengths too: [ab][c] and [a][bc] differ. */
                digest_add(&d, &size, sizeof size);
                digest_add(&d, vectors[i], sizes[i]);
        }
        return digest_final(&d);
}

char *digest_to_string(uint64_t digest, char ret[static DIGEST_STRING_MAX]) {
        snprintf(ret, DIGEST_STRING_MAX, "%016" PRIx64, digest);
        return ret;
}

int digest_from_string(const char *s, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || strlen(s) != DIGEST_STRING_MAX - 1)
                return -EINVAL;
        for (const char *c = s; *c; c++) {
                unsigned x;

                if (*c >= '0' && *c <= '9')
                        x = (unsigned) (*c - '0');
                else if (*c >= 'a' && *c <= 'f')
                        x = (unsigned) (*c - 'a' + 10);
                else
                        return -EINVAL;
                v = v << 4 | x;
        }
        if (v == 0)
                return -EINVAL;
        *ret = v;
        return 0;
}
