/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>

#include "test-fbs.h"

#define AT(msg, off, type) ((type *) ((uint8_t *) (msg) + (off)))
#define CAT(msg, off, type) ((const type *) ((const uint8_t *) (msg) + (off)))

void *arena_alloc(Arena *a, size_t n, size_t size) {
        void **v, *p;

        p = calloc(n > 0 ? n : 1, size);
        assert_non_null(p);
        v = realloc(a->p, (a->n + 1) * sizeof(void *));
        assert_non_null(v);
        a->p = v;
        a->p[a->n++] = p;
        return p;
}

void arena_free(Arena *a) {
        for (size_t i = 0; i < a->n; i++)
                free(a->p[i]);
        free(a->p);
        *a = (Arena) {};
}

static char *arena_printf(Arena *a, const char *format, ...) _printf_(2, 3);
static char *arena_printf(Arena *a, const char *format, ...) {
        char *s = arena_alloc(a, 64, 1);
        va_list ap;

        va_start(ap, format);
        vsnprintf(s, 64, format, ap);
        va_end(ap);
        return s;
}

void sample_fill(const FlTableType *type, void *msg, unsigned seed, Arena *a) {
        memset(msg, 0, type->size);

        for (size_t i = 0; i < type->n_fields; i++) {
                const FlField *f = &type->fields[i];
                unsigned k = seed + (unsigned) i;
                size_t n = 0;

                switch (f->kind) {
                case FL_FIELD_BOOL:
                        *AT(msg, f->offset, bool) = true;
                        break;
                case FL_FIELD_BYTE:
                        *AT(msg, f->offset, uint8_t) = (uint8_t) (1 + k % 4);
                        break;
                case FL_FIELD_INT:
                        *AT(msg, f->offset, int32_t) = (int32_t) (k * 31 + 1) * (i % 2 ? -1 : 1);
                        break;
                case FL_FIELD_FLOAT:
                        *AT(msg, f->offset, float) = ((float) k + 0.5f) * (i % 2 ? -1.0f : 1.0f);
                        break;
                case FL_FIELD_STRING: {
                        char *s = arena_printf(a, "%s.%s/%u", type->name, f->name, seed);

                        *AT(msg, f->offset, const char *) = s;
                        if (f->count_offset != FL_NO_COUNT)
                                *AT(msg, f->count_offset, size_t) = strlen(s);
                        break;
                }
                case FL_FIELD_BYTES: {
                        uint8_t *v;

                        n = 1 + k % 6;
                        v = arena_alloc(a, n, 1);
                        for (size_t j = 0; j < n; j++)
                                v[j] = (uint8_t) (k * 13 + j * 29);
                        *AT(msg, f->offset, const uint8_t *) = v;
                        break;
                }
                case FL_FIELD_FLOATS: {
                        float *v;

                        n = 1 + k % 9;
                        v = arena_alloc(a, n, sizeof(float));
                        for (size_t j = 0; j < n; j++)
                                v[j] = ((float) j - 3.0f) * 0.75f + (float) seed;
                        *AT(msg, f->offset, const float *) = v;
                        break;
                }
                case FL_FIELD_STRINGS: {
                        const char **v;

                        n = 1 + k % 3;
                        v = arena_alloc(a, n, sizeof(char *));
                        for (size_t j = 0; j < n; j++)
                                v[j] = arena_printf(a, "client-%u-%zu", seed, j);
                        *AT(msg, f->offset, const char **) = v;
                        break;
                }
                case FL_FIELD_TABLE: {
                        void *sub = arena_alloc(a, 1, f->table->size);

                        sample_fill(f->table, sub, k + 1, a);
                        *AT(msg, f->offset, void *) = sub;
                        break;
                }
                case FL_FIELD_TABLES: {
                        uint8_t *v;

                        n = 1 + k % 3;
                        v = arena_alloc(a, n, f->table->size);
                        for (size_t j = 0; j < n; j++)
                                sample_fill(f->table, v + j * f->table->size, k * 10 + (unsigned) j, a);
                        *AT(msg, f->offset, void *) = v;
                        break;
                }
                }

                if (f->kind >= FL_FIELD_BYTES && f->kind != FL_FIELD_TABLE)
                        *AT(msg, f->count_offset, size_t) = n;
        }
}

static bool str_equal(const char *x, const char *y) {
        if (!x || !y)
                return x == y;
        return streq(x, y);
}

void sample_assert_equal(const FlTableType *type, const void *x, const void *y) {
        for (size_t i = 0; i < type->n_fields; i++) {
                const FlField *f = &type->fields[i];
                size_t n = 0;

                if (f->count_offset != FL_NO_COUNT) {
                        n = *CAT(x, f->count_offset, size_t);
                        assert_int_equal(n, *CAT(y, f->count_offset, size_t));
                }

                switch (f->kind) {
                case FL_FIELD_BOOL:
                        assert_int_equal(*CAT(x, f->offset, bool), *CAT(y, f->offset, bool));
                        break;
                case FL_FIELD_BYTE:
                        assert_int_equal(*CAT(x, f->offset, uint8_t), *CAT(y, f->offset, uint8_t));
                        break;
                case FL_FIELD_INT:
                        assert_int_equal(*CAT(x, f->offset, int32_t), *CAT(y, f->offset, int32_t));
                        break;
                case FL_FIELD_FLOAT:
                        assert_memory_equal(CAT(x, f->offset, float), CAT(y, f->offset, float), sizeof(float));
                        break;
                case FL_FIELD_STRING:
                        assert_true(str_equal(*CAT(x, f->offset, char *), *CAT(y, f->offset, char *)));
                        break;
                case FL_FIELD_BYTES:
                case FL_FIELD_FLOATS: {
                        const void *p = *CAT(x, f->offset, void *), *q = *CAT(y, f->offset, void *);

                        assert_int_equal(!p, !q);
                        if (n > 0)
                                assert_memory_equal(p, q, n * (f->kind == FL_FIELD_BYTES ? 1 : sizeof(float)));
                        break;
                }
                case FL_FIELD_STRINGS: {
                        const char *const *p = *CAT(x, f->offset, char **), *const *q = *CAT(y, f->offset, char **);

                        for (size_t j = 0; j < n; j++)
                                assert_true(str_equal(p[j], q[j]));
                        break;
                }
                case FL_FIELD_TABLE: {
                        const void *p = *CAT(x, f->offset, void *), *q = *CAT(y, f->offset, void *);

                        assert_int_equal(!p, !q);
                        if (p)
                                sample_assert_equal(f->table, p, q);
                        break;
                }
                case FL_FIELD_TABLES: {
                        const uint8_t *p = *CAT(x, f->offset, uint8_t *), *q = *CAT(y, f->offset, uint8_t *);

                        for (size_t j = 0; j < n; j++)
                                sample_assert_equal(f->table, p + j * f->table->size, q + j * f->table->size);
                        break;
                }
                }
        }
}

uint64_t message_walk(const FlTableType *type, const void *msg) {
        uint64_t sum = 0;

        for (size_t i = 0; i < type->n_fields; i++) {
                const FlField *f = &type->fields[i];
                const void *p = f->kind >= FL_FIELD_STRING ? *CAT(msg, f->offset, void *) : NULL;
                size_t n = f->count_offset != FL_NO_COUNT ? *CAT(msg, f->count_offset, size_t) : 0;

                switch (f->kind) {
                case FL_FIELD_STRING:
                        if (p)
                                sum += strlen(p);
                        break;
                case FL_FIELD_BYTES:
                        for (size_t j = 0; j < n; j++)
                                sum += ((const uint8_t *) p)[j];
                        break;
                case FL_FIELD_FLOATS:
                        for (size_t j = 0; j < n; j++) {
                                uint32_t bits;

                                memcpy(&bits, (const float *) p + j, 4);
                                sum += bits;
                        }
                        break;
                case FL_FIELD_STRINGS:
                        for (size_t j = 0; j < n; j++)
                                sum += strlen(((const char *const *) p)[j]);
                        break;
                case FL_FIELD_TABLE:
                        if (p)
                                sum += message_walk(f->table, p);
                        break;
                case FL_FIELD_TABLES:
                        for (size_t j = 0; j < n; j++)
                                sum += message_walk(f->table, (const uint8_t *) p + j * f->table->size);
                        break;
                default:
                        sum += *CAT(msg, f->offset, uint8_t);
                }
        }
        return sum;
}

uint8_t *exact_copy(const void *p, size_t size) {
        uint8_t *c = malloc(size > 0 ? size : 1);

        assert_non_null(c);
        if (size > 0)
                memcpy(c, p, size);
        return c;
}

void sample_encode(const FlTableType *type, unsigned seed, const char *ident, uint8_t **ret, size_t *ret_size) {
        Arena a = {};
        void *msg = arena_alloc(&a, 1, type->size);
        uint8_t *buf;
        size_t size;

        sample_fill(type, msg, seed, &a);
        assert_int_equal(fl_message_encode(type, msg, ident, &buf, &size), 0);
        *ret = exact_copy(buf, size);
        *ret_size = size;
        free(buf);
        arena_free(&a);
}
