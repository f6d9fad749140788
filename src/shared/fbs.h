/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* FlatBuffers, written from the binary format: a verifying reader and a
 * builder. Just what the device protocol needs: tables, scalars up to 4
 * bytes, strings, vectors of scalars, strings and tables. No structs, unions
 * or 8-byte scalars.
 *
 * Layout reminder (everything little-endian):
 *   buffer: u32 offset of the root table [+ 4-byte file identifier]
 *   table:  i32 soffset, vtable = table - soffset; then the inline fields
 *   vtable: u16 vtable bytes, u16 table inline bytes, u16 field offset per
 *           slot (0: absent, use the default)
 *   offset fields and vector elements of strings/tables: u32, relative to
 *           their own position, always pointing forward
 *   string: u32 length, bytes, NUL;  vector: u32 count, elements
 * Every scalar sits at a multiple of its size from the start of the buffer,
 * and vector elements at a multiple of max(element size, 4). */

#define FBS_IDENTIFIER_SIZE 4
/* FlatBuffers offsets are 32-bit and signed offsets must stay positive. */
#define FBS_MAX_SIZE ((size_t) INT32_MAX)
/* Nested tables deeper than this are refused (our schema needs 3). */
#define FBS_MAX_DEPTH 64
/* Widest table the builder makes; the widest in the protocol has 10. */
#define FBS_MAX_SLOTS 64

/* ---- Reader ------------------------------------------------------------
 *
 * Verification is lazy and total: fbs_root() checks the buffer header and the
 * root table's vtable, and every accessor checks everything it touches
 * (offset ranges, lengths, alignment, NUL terminators) against the buffer
 * before it reads. Any input, however hostile, is safe to walk; a bad field
 * makes its accessor return -EBADMSG. Nothing is copied: strings and scalar
 * vectors point into the buffer, which must outlive them.
 *
 * The buffer must start 4-byte aligned in memory (malloc() does that): float
 * vectors are handed out in place as const float *, and valid FlatBuffers
 * place them at multiples of 4 from the start.
 *
 * Accessors return 1 when the field is present, 0 when it is absent (the
 * result is then the default / NULL / empty) and -EBADMSG when malformed. */

typedef struct FbsTable {
        const uint8_t *buf;
        size_t size;
        size_t pos;             /* the table's soffset */
        size_t vtable;
        size_t vtable_size;     /* bytes, >= 4 */
        size_t inline_size;     /* bytes of the table proper, >= 4 */
        unsigned depth;         /* root = 0 */
} FbsTable;

/* A vector of offsets (of strings or tables). */
typedef struct FbsVector {
        const uint8_t *buf;
        size_t size;
        size_t pos;             /* the first element */
        size_t n;
        unsigned depth;         /* of the table holding the vector */
} FbsVector;

/* Opens the root table of buf. ident (4 characters) is informational only:
 * the device protocol accepts buffers with and without the identifier, and
 * an identifier-less buffer can hold anything at bytes 4..7. Returns 1 when
 * ident is given and present, 0 otherwise, -EBADMSG when the header or the
 * root table is malformed, -EINVAL when buf is misaligned, -E2BIG past
 * FBS_MAX_SIZE. */
int fbs_root(const void *buf, size_t size, const char *ident, FbsTable *ret);
bool fbs_has_identifier(const void *buf, size_t size, const char *ident);

int fbs_table_get_u8(const FbsTable *t, unsigned slot, uint8_t def, uint8_t *ret);
int fbs_table_get_bool(const FbsTable *t, unsigned slot, bool def, bool *ret);
int fbs_table_get_i32(const FbsTable *t, unsigned slot, int32_t def, int32_t *ret);
int fbs_table_get_u32(const FbsTable *t, unsigned slot, uint32_t def, uint32_t *ret);
int fbs_table_get_f32(const FbsTable *t, unsigned slot, float def, float *ret);

/* *ret is NUL-terminated inside the buffer; it may contain other NULs. */
int fbs_table_get_string(const FbsTable *t, unsigned slot, const char **ret, size_t *ret_len);
/* A vector of scalars of elem_size (1, 2 or 4) bytes; in place. */
int fbs_table_get_vector(const FbsTable *t, unsigned slot, size_t elem_size,
                         const void **ret, size_t *ret_n);
int fbs_table_get_bytes(const FbsTable *t, unsigned slot, const uint8_t **ret, size_t *ret_n);
int fbs_table_get_floats(const FbsTable *t, unsigned slot, const float **ret, size_t *ret_n);
int fbs_table_get_table(const FbsTable *t, unsigned slot, FbsTable *ret);
int fbs_table_get_offsets(const FbsTable *t, unsigned slot, FbsVector *ret);

/* Elements of a vector of offsets: 0 on success, -EBADMSG, -ERANGE for i >= n. */
int fbs_vector_get_table(const FbsVector *v, size_t i, FbsTable *ret);
int fbs_vector_get_string(const FbsVector *v, size_t i, const char **ret, size_t *ret_len);

/* ---- Builder -----------------------------------------------------------
 *
 * Builds back to front, like the reference implementation: children first
 * (strings, vectors, sub-tables), then the table that refers to them, the
 * root last. An FbsRef names a finished object (its distance from the end of
 * the buffer); 0 is never a valid one. Errors are sticky: after a failed
 * allocation or a misuse every call returns 0 and fbs_builder_finish()
 * reports the first error, so encoders check once, at the end.
 *
 * Scalars equal to their default are left out, as the reference builders do
 * by default; offset fields with ref 0 are left out. Vtables are not shared. */

typedef uint32_t FbsRef;

typedef struct FbsBuilder {
        uint8_t *buf;           /* data lives in buf[cap - used, cap) */
        size_t cap;
        size_t used;
        size_t max_align;
        int error;              /* first error, negative errno */

        bool in_table;
        size_t table_start;     /* used at fbs_builder_start_table() */
        unsigned n_slots;       /* highest added slot + 1 */
        uint32_t slot_ref[FBS_MAX_SLOTS];       /* where each field went, 0: absent */
} FbsBuilder;

void fbs_builder_init(FbsBuilder *b);
/* Records error (negative errno) as the builder's first error unless it has
 * one; returns the builder's error. For callers that fail on their own. */
int fbs_builder_fail(FbsBuilder *b, int error);
/* Frees the buffer; the builder can be initialised again. */
void fbs_builder_done(FbsBuilder *b);

FbsRef fbs_builder_create_string(FbsBuilder *b, const char *s, size_t len);
/* A vector of n scalars of elem_size (1, 2 or 4) bytes, little-endian host
 * order assumed (checked at build time). */
FbsRef fbs_builder_create_vector(FbsBuilder *b, const void *elems, size_t n, size_t elem_size);
/* A vector of strings or tables. */
FbsRef fbs_builder_create_offsets(FbsBuilder *b, const FbsRef *refs, size_t n);

int fbs_builder_start_table(FbsBuilder *b);
void fbs_builder_add_u8(FbsBuilder *b, unsigned slot, uint8_t v, uint8_t def);
void fbs_builder_add_bool(FbsBuilder *b, unsigned slot, bool v, bool def);
void fbs_builder_add_i32(FbsBuilder *b, unsigned slot, int32_t v, int32_t def);
void fbs_builder_add_u32(FbsBuilder *b, unsigned slot, uint32_t v, uint32_t def);
/* Compared bit for bit with def, so -0.0 and NaN payloads survive. */
void fbs_builder_add_f32(FbsBuilder *b, unsigned slot, float v, float def);
void fbs_builder_add_offset(FbsBuilder *b, unsigned slot, FbsRef ref);
FbsRef fbs_builder_end_table(FbsBuilder *b);

/* Writes the root offset and the optional 4-character identifier and hands
 * over the finished buffer (malloc()ed, to free()). The builder is reset. */
int fbs_builder_finish(FbsBuilder *b, FbsRef root, const char *ident, uint8_t **ret, size_t *ret_size);

static inline void fbs_builder_donep(FbsBuilder *b) {
        fbs_builder_done(b);
}
