/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "fbs.h"

/* Scalar vectors are copied from host memory as they are. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fbs-builder.c assumes a little-endian host"
#endif

/* Positions in the builder are distances from the end of the buffer
 * ("used" when an object was finished): they do not move when the buffer
 * grows at the front. In the finished buffer of total size T, an object at
 * distance d starts at T - d. Hence, for a u32 written at distance f that
 * refers to an object at distance d (d < f), the stored offset is f - d. And
 * since T ends up a multiple of max_align, a distance that is a multiple of
 * an alignment is also a position that is. */

static inline void store_u16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}

static inline void store_u32(uint8_t *p, uint32_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
        p[2] = (uint8_t) (v >> 16);
        p[3] = (uint8_t) (v >> 24);
}

void fbs_builder_init(FbsBuilder *b) {
        *b = (FbsBuilder) {
                .max_align = 4,
        };
}

void fbs_builder_done(FbsBuilder *b) {
        if (!b)
                return;
        free(b->buf);
        fbs_builder_init(b);
}

int fbs_builder_fail(FbsBuilder *b, int error) {
        if (b->error == 0)
                b->error = error < 0 ? error : -EINVAL;
        return b->error;
}

static int fail(FbsBuilder *b, int r) {
        return fbs_builder_fail(b, r);
}

/* Makes room for n more bytes at the front. */
static int reserve(FbsBuilder *b, size_t n) {
        size_t cap;
        uint8_t *p;

        if (b->error < 0)
                return b->error;
        if (n > FBS_MAX_SIZE - b->used)
                return fail(b, -E2BIG);
        if (n <= b->cap - b->used)
                return 0;

        cap = b->cap > 0 ? b->cap : 256;
        while (cap - b->used < n)
                cap *= 2;       /* <= 2 * FBS_MAX_SIZE: no overflow */

        p = malloc(cap);
        if (!p)
                return fail(b, -ENOMEM);
        if (b->used > 0)
                memcpy(p + cap - b->used, b->buf + b->cap - b->used, b->used);
        free(b->buf);
        b->buf = p;
        b->cap = cap;
        return 0;
}

/* Grows the data by n bytes at the front and returns them, or NULL. */
static uint8_t *push(FbsBuilder *b, size_t n) {
        if (reserve(b, n) < 0)
                return NULL;
        b->used += n;
        return b->buf + b->cap - b->used;
}

static inline uint8_t *at(FbsBuilder *b, size_t distance) {
        return b->buf + b->cap - distance;
}

/* Zero padding so that, once len more bytes are pushed, used is a multiple
 * of align (a power of two, at most 8). */
static void prealign(FbsBuilder *b, size_t len, size_t align) {
        size_t n;
        uint8_t *p;

        if (b->error < 0)
                return;
        if (align > b->max_align)
                b->max_align = align;
        n = (align - ((b->used + len) & (align - 1))) & (align - 1);
        if (n == 0)
                return;
        p = push(b, n);
        if (p)
                memset(p, 0, n);
}

static bool usable(FbsBuilder *b, bool want_table) {
        if (b->error < 0)
                return false;
        if (b->in_table != want_table) {
                fail(b, -EINVAL);
                return false;
        }
        return true;
}

/* ref must be a finished object in front of distance limit. */
static bool ref_ok(FbsBuilder *b, FbsRef ref, size_t limit) {
        if (ref == 0 || ref > limit) {
                fail(b, -EINVAL);
                return false;
        }
        return true;
}

FbsRef fbs_builder_create_string(FbsBuilder *b, const char *s, size_t len) {
        uint8_t *p;

        if (!usable(b, false))
                return 0;
        if (!s && len > 0) {
                fail(b, -EINVAL);
                return 0;
        }
        if (len >= FBS_MAX_SIZE) {
                fail(b, -E2BIG);
                return 0;
        }

        prealign(b, len + 1, 4);
        p = push(b, len + 1);
        if (!p)
                return 0;
        if (len > 0)
                memcpy(p, s, len);
        p[len] = 0;

        p = push(b, 4);
        if (!p)
                return 0;
        store_u32(p, (uint32_t) len);
        return (FbsRef) b->used;
}

FbsRef fbs_builder_create_vector(FbsBuilder *b, const void *elems, size_t n, size_t elem_size) {
        size_t bytes;
        uint8_t *p;

        if (!usable(b, false))
                return 0;
        if ((elem_size != 1 && elem_size != 2 && elem_size != 4) || (!elems && n > 0)) {
                fail(b, -EINVAL);
                return 0;
        }
        if (n > FBS_MAX_SIZE / elem_size) {
                fail(b, -E2BIG);
                return 0;
        }
        bytes = n * elem_size;

        /* The count is 4-aligned and directly in front of the elements. */
        prealign(b, bytes, 4);
        if (bytes > 0) {
                p = push(b, bytes);
                if (!p)
                        return 0;
                memcpy(p, elems, bytes);
        }

        p = push(b, 4);
        if (!p)
                return 0;
        store_u32(p, (uint32_t) n);
        return (FbsRef) b->used;
}

FbsRef fbs_builder_create_offsets(FbsBuilder *b, const FbsRef *refs, size_t n) {
        uint8_t *p;

        if (!usable(b, false))
                return 0;
        if (!refs && n > 0) {
                fail(b, -EINVAL);
                return 0;
        }
        if (n > FBS_MAX_SIZE / 4) {
                fail(b, -E2BIG);
                return 0;
        }

        prealign(b, n * 4, 4);
        for (size_t i = n; i > 0; i--) {
                if (!ref_ok(b, refs[i - 1], b->used))
                        return 0;
                p = push(b, 4);
                if (!p)
                        return 0;
                store_u32(p, (uint32_t) (b->used - refs[i - 1]));
        }

        p = push(b, 4);
        if (!p)
                return 0;
        store_u32(p, (uint32_t) n);
        return (FbsRef) b->used;
}

int fbs_builder_start_table(FbsBuilder *b) {
        if (!usable(b, false))
                return b->error;

        b->in_table = true;
        b->table_start = b->used;
        b->n_slots = 0;
        memset(b->slot_ref, 0, sizeof(b->slot_ref));
        return 0;
}

/* value: size bytes, little-endian. The same slot added twice: the last wins. */
static void add_field(FbsBuilder *b, unsigned slot, const uint8_t *value, size_t size) {
        uint8_t *p;

        if (!usable(b, true))
                return;
        if (slot >= FBS_MAX_SLOTS) {
                fail(b, -E2BIG);
                return;
        }

        prealign(b, size, size);
        p = push(b, size);
        if (!p)
                return;
        memcpy(p, value, size);

        b->slot_ref[slot] = (uint32_t) b->used;
        if (slot >= b->n_slots)
                b->n_slots = slot + 1;
}

void fbs_builder_add_u8(FbsBuilder *b, unsigned slot, uint8_t v, uint8_t def) {
        if (v != def)
                add_field(b, slot, &v, 1);
}

void fbs_builder_add_bool(FbsBuilder *b, unsigned slot, bool v, bool def) {
        fbs_builder_add_u8(b, slot, v ? 1 : 0, def ? 1 : 0);
}

void fbs_builder_add_u32(FbsBuilder *b, unsigned slot, uint32_t v, uint32_t def) {
        uint8_t le[4];

        if (v == def)
                return;
        store_u32(le, v);
        add_field(b, slot, le, 4);
}

void fbs_builder_add_i32(FbsBuilder *b, unsigned slot, int32_t v, int32_t def) {
        fbs_builder_add_u32(b, slot, (uint32_t) v, (uint32_t) def);
}

void fbs_builder_add_f32(FbsBuilder *b, unsigned slot, float v, float def) {
        uint32_t bits, def_bits;

        memcpy(&bits, &v, 4);
        memcpy(&def_bits, &def, 4);
        fbs_builder_add_u32(b, slot, bits, def_bits);
}

void fbs_builder_add_offset(FbsBuilder *b, unsigned slot, FbsRef ref) {
        uint8_t le[4];

        if (ref == 0 || !usable(b, true))
                return;
        /* Children are finished before their table is started. */
        if (!ref_ok(b, ref, b->table_start))
                return;

        /* The offset is relative to where it lands: align first, so that
         * its distance is known before it is written. */
        prealign(b, 4, 4);
        store_u32(le, (uint32_t) (b->used + 4 - ref));
        add_field(b, slot, le, 4);
}

FbsRef fbs_builder_end_table(FbsBuilder *b) {
        size_t table, inline_size, vtable_size;
        uint8_t *p;

        if (!usable(b, true))
                return 0;

        /* The soffset, filled in once the vtable's distance is known. */
        prealign(b, 4, 4);
        if (!push(b, 4))
                return 0;
        table = b->used;
        inline_size = table - b->table_start;
        vtable_size = 4 + 2 * (size_t) b->n_slots;
        if (inline_size > UINT16_MAX) {
                fail(b, -E2BIG);
                return 0;
        }

        /* The vtable goes right in front of its table; even-sized, so the
         * table stays 4-aligned. */
        p = push(b, vtable_size);
        if (!p)
                return 0;
        store_u16(p, (uint16_t) vtable_size);
        store_u16(p + 2, (uint16_t) inline_size);
        for (unsigned i = 0; i < b->n_slots; i++)
                store_u16(p + 4 + 2 * i, b->slot_ref[i] ? (uint16_t) (table - b->slot_ref[i]) : 0);

        /* table position - vtable position */
        store_u32(at(b, table), (uint32_t) (b->used - table));

        b->in_table = false;
        return (FbsRef) table;
}

int fbs_builder_finish(FbsBuilder *b, FbsRef root, const char *ident, uint8_t **ret, size_t *ret_size) {
        size_t head = 4;
        uint8_t *p;

        if (ident && strlen(ident) != FBS_IDENTIFIER_SIZE)
                fail(b, -EINVAL);
        if (usable(b, false) && ref_ok(b, root, b->used)) {
                if (ident)
                        head += FBS_IDENTIFIER_SIZE;
                prealign(b, head, b->max_align);

                if (ident) {
                        p = push(b, FBS_IDENTIFIER_SIZE);
                        if (p)
                                memcpy(p, ident, FBS_IDENTIFIER_SIZE);
                }
                p = push(b, 4);
                if (p)
                        store_u32(p, (uint32_t) (b->used - root));
        }

        if (b->error < 0) {
                int r = b->error;

                fbs_builder_done(b);
                return r;
        }

        /* Hand over the allocation itself, data moved to its start. */
        memmove(b->buf, at(b, b->used), b->used);
        *ret = b->buf;
        *ret_size = b->used;
        b->buf = NULL;
        fbs_builder_done(b);
        return 0;
}
