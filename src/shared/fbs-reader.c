/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "fbs.h"

/* Every position below is a size_t index into the buffer; a range
 * [pos, pos + len) is only touched after range_ok() said it is inside, and
 * the checks are written so that no sum can overflow (size <= INT32_MAX, and
 * lengths are compared against "size - pos", never added to pos first). */

static inline uint16_t load_u16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}

static inline uint32_t load_u32(const uint8_t *p) {
        return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

static inline bool range_ok(size_t size, size_t pos, size_t len) {
        return pos <= size && len <= size - pos;
}

static int table_open(const uint8_t *buf, size_t size, size_t pos, unsigned depth, FbsTable *ret) {
        size_t vtable, vtable_size, inline_size;
        int64_t vt;

        if (depth > FBS_MAX_DEPTH)
                return -EBADMSG;
        if (pos % 4 != 0 || !range_ok(size, pos, 4))
                return -EBADMSG;

        /* soffset: the vtable is at pos - soffset, on either side. */
        vt = (int64_t) pos - (int64_t) (int32_t) load_u32(buf + pos);
        if (vt < 0 || (uint64_t) vt > size)
                return -EBADMSG;
        vtable = (size_t) vt;
        if (vtable % 2 != 0 || !range_ok(size, vtable, 4))
                return -EBADMSG;

        vtable_size = load_u16(buf + vtable);
        inline_size = load_u16(buf + vtable + 2);
        if (vtable_size < 4 || vtable_size % 2 != 0 || !range_ok(size, vtable, vtable_size))
                return -EBADMSG;
        if (inline_size < 4 || !range_ok(size, pos, inline_size))
                return -EBADMSG;

        *ret = (FbsTable) {
                .buf = buf,
                .size = size,
                .pos = pos,
                .vtable = vtable,
                .vtable_size = vtable_size,
                .inline_size = inline_size,
                .depth = depth,
        };
        return 0;
}

bool fbs_has_identifier(const void *buf, size_t size, const char *ident) {
        return buf && ident && strlen(ident) == FBS_IDENTIFIER_SIZE && size >= 4 + FBS_IDENTIFIER_SIZE &&
                memcmp((const uint8_t *) buf + 4, ident, FBS_IDENTIFIER_SIZE) == 0;
}

int fbs_root(const void *buf, size_t size, const char *ident, FbsTable *ret) {
        const uint8_t *p = buf;
        int r;

        if (!ret)
                return -EINVAL;
        if (size > FBS_MAX_SIZE)
                return -E2BIG;
        /* The root offset and at least a table's soffset (an empty body too). */
        if (size < 8)
                return -EBADMSG;
        if (!buf || (uintptr_t) buf % 4 != 0)
                return -EINVAL;

        r = table_open(p, size, load_u32(p), 0, ret);
        if (r < 0)
                return r;
        return fbs_has_identifier(buf, size, ident);
}

/* Finds the inline field of slot, fsize bytes (1, 2 or 4, also its alignment).
 * Returns 1 and its position, 0 if absent, -EBADMSG if it does not fit the
 * table. Slots past the end of the vtable are absent (older writers). */
static int field_find(const FbsTable *t, unsigned slot, size_t fsize, size_t *ret) {
        size_t off, pos;

        if (!t || !t->buf)
                return -EINVAL;
        if (slot >= (t->vtable_size - 4) / 2)
                return 0;

        off = load_u16(t->buf + t->vtable + 4 + (size_t) slot * 2);
        if (off == 0)
                return 0;
        /* Not over the soffset, and within the table the vtable declares. */
        if (off < 4 || fsize > t->inline_size || off > t->inline_size - fsize)
                return -EBADMSG;
        pos = t->pos + off;
        if (pos % fsize != 0)
                return -EBADMSG;

        *ret = pos;
        return 1;
}

/* Follows the u32 offset stored at pos (in range and aligned). */
static int offset_follow(const uint8_t *buf, size_t size, size_t pos, size_t *ret) {
        uint32_t o = load_u32(buf + pos);

        if (o > size - pos)
                return -EBADMSG;
        *ret = pos + o;
        return 0;
}

static int string_at(const uint8_t *buf, size_t size, size_t pos, const char **ret, size_t *ret_len) {
        size_t len;

        if (pos % 4 != 0 || !range_ok(size, pos, 4))
                return -EBADMSG;
        len = load_u32(buf + pos);
        /* The bytes and the NUL after them. */
        if (len >= size - pos - 4)
                return -EBADMSG;
        if (buf[pos + 4 + len] != 0)
                return -EBADMSG;

        *ret = (const char *) buf + pos + 4;
        if (ret_len)
                *ret_len = len;
        return 0;
}

/* A vector at pos: the u32 count and n * elem_size bytes, elements aligned to
 * their size (the count is 4-aligned and elem_size <= 4). */
static int vector_at(const uint8_t *buf, size_t size, size_t pos, size_t elem_size, size_t *ret_n) {
        size_t n;

        if (pos % 4 != 0 || !range_ok(size, pos, 4))
                return -EBADMSG;
        n = load_u32(buf + pos);
        if (n > (size - pos - 4) / elem_size)
                return -EBADMSG;

        *ret_n = n;
        return 0;
}

static int get_scalar(const FbsTable *t, unsigned slot, size_t fsize, uint32_t *ret) {
        size_t pos;
        int r;

        r = field_find(t, slot, fsize, &pos);
        if (r <= 0)
                return r;

        switch (fsize) {
        case 1:
                *ret = t->buf[pos];
                break;
        case 2:
                *ret = load_u16(t->buf + pos);
                break;
        default:
                *ret = load_u32(t->buf + pos);
        }
        return 1;
}

int fbs_table_get_u8(const FbsTable *t, unsigned slot, uint8_t def, uint8_t *ret) {
        uint32_t v;
        int r;

        r = get_scalar(t, slot, 1, &v);
        *ret = r > 0 ? (uint8_t) v : def;
        return r;
}

int fbs_table_get_bool(const FbsTable *t, unsigned slot, bool def, bool *ret) {
        uint32_t v;
        int r;

        r = get_scalar(t, slot, 1, &v);
        *ret = r > 0 ? v != 0 : def;
        return r;
}

int fbs_table_get_u32(const FbsTable *t, unsigned slot, uint32_t def, uint32_t *ret) {
        uint32_t v;
        int r;

        r = get_scalar(t, slot, 4, &v);
        *ret = r > 0 ? v : def;
        return r;
}

int fbs_table_get_i32(const FbsTable *t, unsigned slot, int32_t def, int32_t *ret) {
        uint32_t v;
        int r;

        r = get_scalar(t, slot, 4, &v);
        *ret = r > 0 ? (int32_t) v : def;
        return r;
}

int fbs_table_get_f32(const FbsTable *t, unsigned slot, float def, float *ret) {
        uint32_t v;
        float f;
        int r;

        r = get_scalar(t, slot, 4, &v);
        if (r <= 0) {
                *ret = def;
                return r;
        }
        memcpy(&f, &v, sizeof(f));
        *ret = f;
        return 1;
}

/* The target of the offset field in slot: 1 and its position, 0 if absent. */
static int get_offset_target(const FbsTable *t, unsigned slot, size_t *ret) {
        size_t pos;
        int r;

        r = field_find(t, slot, 4, &pos);
        if (r <= 0)
                return r;
        r = offset_follow(t->buf, t->size, pos, ret);
        if (r < 0)
                return r;
        return 1;
}

int fbs_table_get_string(const FbsTable *t, unsigned slot, const char **ret, size_t *ret_len) {
        size_t pos;
        int r;

        *ret = NULL;
        if (ret_len)
                *ret_len = 0;

        r = get_offset_target(t, slot, &pos);
        if (r <= 0)
                return r;
        r = string_at(t->buf, t->size, pos, ret, ret_len);
        if (r < 0)
                return r;
        return 1;
}

int fbs_table_get_vector(const FbsTable *t, unsigned slot, size_t elem_size, const void **ret, size_t *ret_n) {
        size_t pos, n;
        int r;

        *ret = NULL;
        *ret_n = 0;
        if (elem_size != 1 && elem_size != 2 && elem_size != 4)
                return -EINVAL;

        r = get_offset_target(t, slot, &pos);
        if (r <= 0)
                return r;
        r = vector_at(t->buf, t->size, pos, elem_size, &n);
        if (r < 0)
                return r;
        /* fbs_root() made sure the buffer itself is 4-aligned in memory. */
        if ((uintptr_t) (t->buf + pos + 4) % elem_size != 0)
                return -EBADMSG;

        *ret = t->buf + pos + 4;
        *ret_n = n;
        return 1;
}

int fbs_table_get_bytes(const FbsTable *t, unsigned slot, const uint8_t **ret, size_t *ret_n) {
        const void *p;
        int r;

        r = fbs_table_get_vector(t, slot, 1, &p, ret_n);
        *ret = p;
        return r;
}

int fbs_table_get_floats(const FbsTable *t, unsigned slot, const float **ret, size_t *ret_n) {
        const void *p;
        int r;

        r = fbs_table_get_vector(t, slot, sizeof(float), &p, ret_n);
        *ret = p;
        return r;
}

int fbs_table_get_table(const FbsTable *t, unsigned slot, FbsTable *ret) {
        size_t pos;
        int r;

        r = get_offset_target(t, slot, &pos);
        if (r <= 0)
                return r;
        r = table_open(t->buf, t->size, pos, t->depth + 1, ret);
        if (r < 0)
                return r;
        return 1;
}

int fbs_table_get_offsets(const FbsTable *t, unsigned slot, FbsVector *ret) {
        size_t pos, n;
        int r;

        *ret = (FbsVector) {};

        r = get_offset_target(t, slot, &pos);
        if (r <= 0)
                return r;
        r = vector_at(t->buf, t->size, pos, 4, &n);
        if (r < 0)
                return r;

        *ret = (FbsVector) {
                .buf = t->buf,
                .size = t->size,
                .pos = pos + 4,
                .n = n,
                .depth = t->depth,
        };
        return 1;
}

static int vector_element(const FbsVector *v, size_t i, size_t *ret) {
        if (!v || !v->buf)
                return -EINVAL;
        if (i >= v->n)
                return -ERANGE;
        /* vector_at() checked that all n elements are inside and aligned. */
        return offset_follow(v->buf, v->size, v->pos + i * 4, ret);
}

int fbs_vector_get_table(const FbsVector *v, size_t i, FbsTable *ret) {
        size_t pos;
        int r;

        r = vector_element(v, i, &pos);
        if (r < 0)
                return r;
        return table_open(v->buf, v->size, pos, v->depth + 1, ret);
}

int fbs_vector_get_string(const FbsVector *v, size_t i, const char **ret, size_t *ret_len) {
        size_t pos;
        int r;

        r = vector_element(v, i, &pos);
        if (r < 0)
                return r;
        return string_at(v->buf, v->size, pos, ret, ret_len);
}
