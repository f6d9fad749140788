/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fl-messages.h"

/* Helpers shared by the test-fbs sources: messages of any table filled from
 * the descriptors with non-default values in every field, compared deeply,
 * and walked (every byte a decoded message points at is read, so that
 * valgrind and ASan see any pointer that escaped the buffer). */

typedef struct Arena {
        void **p;
        size_t n;
} Arena;

void *arena_alloc(Arena *a, size_t n, size_t size);
void arena_free(Arena *a);

void sample_fill(const FlTableType *type, void *msg, unsigned seed, Arena *a);
void sample_assert_equal(const FlTableType *type, const void *x, const void *y);
uint64_t message_walk(const FlTableType *type, const void *msg);

/* A sample of type encoded into a malloc()ed buffer of exactly its size. */
void sample_encode(const FlTableType *type, unsigned seed, const char *ident, uint8_t **ret, size_t *ret_size);
/* A copy in a fresh allocation of exactly size bytes (so that reading past
 * it is caught by the memory checkers). */
uint8_t *exact_copy(const void *p, size_t size);

extern const struct CMUnitTest corrupt_tests[];
extern const size_t n_corrupt_tests;
