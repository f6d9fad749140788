/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A 64-bit digest of a device's update, to tell a retried update (the same
 * bytes again: answered, counted once) from a different one (refused). Fast
 * enough to run on every updateModel (a few GB/s: four independent
 * multiply-rotate lanes over 8-byte words); not a cryptographic hash, a
 * device gains nothing by forging a collision with its own earlier update. */

#define DIGEST_STRING_MAX 17

typedef struct Digest {
        uint64_t lane[4];
        uint64_t length;
        uint8_t tail[32];
        size_t n_tail;
} Digest;

void digest_init(Digest *d);
void digest_add(Digest *d, const void *p, size_t n);
/* Never 0, so that 0 can mean "none". */
uint64_t digest_final(const Digest *d);

/* The digest of the vectors one after another (each length in bytes). */
uint64_t digest_vectors(const void *const *vectors, const size_t *sizes, size_t n);

/* 16 lowercase hex digits, and back (-EINVAL for anything else or 0). */
char *digest_to_string(uint64_t digest, char ret[static DIGEST_STRING_MAX]);
int digest_from_string(const char *s, uint64_t *ret);
