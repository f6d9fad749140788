/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "fl-messages.h"

#define MEMBER(msg, field, type) ((type *) ((uint8_t *) (msg) + (field)->offset))
#define CMEMBER(msg, field, type) ((const type *) ((const uint8_t *) (msg) + (field)->offset))
#define COUNT(msg, field) ((size_t *) ((uint8_t *) (msg) + (field)->count_offset))
#define CCOUNT(msg, field) ((const size_t *) ((const uint8_t *) (msg) + (field)->count_offset))

const FlTableType *fl_table_type_by_name(const char *name) {
        if (!name)
                return NULL;
        for (size_t i = 0; i < fl_n_table_types; i++)
                if (streq(fl_table_types[i]->name, name))
                        return fl_table_types[i];
        return NULL;
}

/* ---- Release ------------------------------------------------------------- */

void fl_message_done(const FlTableType *type, void *msg) {
        if (!type || !msg)
                return;

        for (size_t i = 0; i < type->n_fields; i++) {
                const FlField *f = &type->fields[i];

                switch (f->kind) {
                case FL_FIELD_STRINGS:
                        free(*MEMBER(msg, f, void *));
                        break;
                case FL_FIELD_TABLE: {
                        void *sub = *MEMBER(msg, f, void *);

                        fl_message_done(f->table, sub);
                        free(sub);
                        break;
                }
                case FL_FIELD_TABLES: {
                        uint8_t *v = *MEMBER(msg, f, uint8_t *);

                        for (size_t j = 0; v && j < *COUNT(msg, f); j++)
                                fl_message_done(f->table, v + j * f->table->size);
                        free(v);
                        break;
                }
                default:
                        continue;       /* in place, or a scalar */
                }
                *MEMBER(msg, f, void *) = NULL;
                if (f->count_offset != FL_NO_COUNT)
                        *COUNT(msg, f) = 0;
        }
}

/* ---- Decoding ------------------------------------------------------------- */

typedef struct Decoder {
        /* Allocations left: a hostile buffer could point many vector
         * entries at one big table; this keeps the work linear in size. */
        size_t budget;
        char *reason;
        bool have_reason;
} Decoder;

_printf_(2, 3)
static int decode_fail(Decoder *d, const char *format, ...) {
        va_list ap;

        /* The innermost failure names the culprit best. */
        if (d->reason && !d->have_reason) {
                va_start(ap, format);
                (void) vsnprintf(d->reason, FL_REASON_MAX, format, ap);
                va_end(ap);
                d->have_reason = true;
        }
        return -EBADMSG;
}

static int decode_table(const FlTableType *type, const FbsTable *t, void *msg, Decoder *d);

/* Takes n elements from the budget and allocates them zeroed. */
static int decode_alloc(Decoder *d, const FlTableType *type, const FlField *f, size_t n, size_t size, void **ret) {
        void *p;

        if (n > d->budget)
                return decode_fail(d, "%s.%s: too many elements", type->name, f->name);
        d->budget -= n;

        p = calloc(MAX(n, (size_t) 1), size);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int decode_string(const FlTableType *type, const FlField *f, const char *s, size_t len, Decoder *d) {
        if (strlen(s) != len)
                return decode_fail(d, "%s.%s: string contains a NUL byte", type->name, f->name);
        return 0;
}

static int decode_field(const FlTableType *type, const FlField *f, unsigned slot,
                        const FbsTable *t, void *msg, Decoder *d) {
        int r;

        switch (f->kind) {
        case FL_FIELD_BOOL:
                r = fbs_table_get_bool(t, slot, false, MEMBER(msg, f, bool));
                break;
        case FL_FIELD_BYTE:
                r = fbs_table_get_u8(t, slot, 0, MEMBER(msg, f, uint8_t));
                break;
        case FL_FIELD_INT:
                r = fbs_table_get_i32(t, slot, 0, MEMBER(msg, f, int32_t));
                break;
        case FL_FIELD_FLOAT:
                r = fbs_table_get_f32(t, slot, 0.0f, MEMBER(msg, f, float));
                break;
        case FL_FIELD_STRING: {
                const char *s;
                size_t len;

                r = fbs_table_get_string(t, slot, &s, &len);
                if (r > 0 && decode_string(type, f, s, len, d) < 0)
                        return -EBADMSG;
                if (r > 0) {
                        *MEMBER(msg, f, const char *) = s;
                        if (f->count_offset != FL_NO_COUNT)
                                *COUNT(msg, f) = len;
                }
                break;
        }
        case FL_FIELD_BYTES:
                r = fbs_table_get_bytes(t, slot, MEMBER(msg, f, const uint8_t *), COUNT(msg, f));
                break;
        case FL_FIELD_FLOATS:
                r = fbs_table_get_floats(t, slot, MEMBER(msg, f, const float *), COUNT(msg, f));
                break;
        case FL_FIELD_STRINGS: {
                FbsVector v;
                const char **a = NULL;

                r = fbs_table_get_offsets(t, slot, &v);
                if (r <= 0)
                        break;
                r = decode_alloc(d, type, f, v.n, sizeof(char *), (void **) &a);
                if (r < 0)
                        return r;
                *MEMBER(msg, f, const char **) = a;
                *COUNT(msg, f) = v.n;
                for (size_t i = 0; i < v.n; i++) {
                        size_t len;

                        r = fbs_vector_get_string(&v, i, &a[i], &len);
                        if (r < 0)
                                break;
                        r = decode_string(type, f, a[i], len, d);
                        if (r < 0)
                                return r;
                }
                if (r >= 0)
                        r = 1;
                break;
        }
        case FL_FIELD_TABLE: {
                FbsTable sub;
                void *p = NULL;

                r = fbs_table_get_table(t, slot, &sub);
                if (r <= 0)
                        break;
                r = decode_alloc(d, type, f, 1, f->table->size, &p);
                if (r < 0)
                        return r;
                *MEMBER(msg, f, void *) = p;
                r = decode_table(f->table, &sub, p, d);
                if (r < 0)
                        return r;
                r = 1;
                break;
        }
        case FL_FIELD_TABLES: {
                FbsVector v;
                uint8_t *a = NULL;

                r = fbs_table_get_offsets(t, slot, &v);
                if (r <= 0)
                        break;
                r = decode_alloc(d, type, f, v.n, f->table->size, (void **) &a);
                if (r < 0)
                        return r;
                *MEMBER(msg, f, void *) = a;
                *COUNT(msg, f) = v.n;
                for (size_t i = 0; i < v.n; i++) {
                        FbsTable sub;

                        r = fbs_vector_get_table(&v, i, &sub);
                        if (r < 0)
                                break;
                        r = decode_table(f->table, &sub, a + i * f->table->size, d);
                        if (r < 0)
                                return r;
                }
                if (r >= 0)
                        r = 1;
                break;
        }
        default:
                return -EINVAL;
        }

        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return decode_fail(d, "%s.%s: malformed", type->name, f->name);
        if (r == 0 && f->required)
                return decode_fail(d, "%s.%s: missing", type->name, f->name);
        return 0;
}

static int decode_table(const FlTableType *type, const FbsTable *t, void *msg, Decoder *d) {
        int r;

        for (size_t i = 0; i < type->n_fields; i++) {
                r = decode_field(type, &type->fields[i], (unsigned) i, t, msg, d);
                if (r < 0)
                        return r;
        }
        return 0;
}

int fl_message_decode(const FlTableType *type, const void *buf, size_t size, void *ret, char *reason) {
        Decoder d = {
                .budget = size / 4 + 16,
                .reason = reason,
        };
        FbsTable root;
        int r;

        if (!type || !ret || (!buf && size > 0))
                return -EINVAL;
        memset(ret, 0, type->size);
        if (reason)
                reason[0] = 0;

        r = fbs_root(buf, size, FL_FILE_IDENTIFIER, &root);
        if (r == -EINVAL)
                return r;
        if (r == -E2BIG)
                return decode_fail(&d, "%s: buffer too large", type->name);
        if (r < 0)
                return decode_fail(&d, "%s: not a FlatBuffers buffer", type->name);

        r = decode_table(type, &root, ret, &d);
        if (r < 0) {
                fl_message_done(type, ret);
                memset(ret, 0, type->size);
                return r;
        }
        return 0;
}

/* ---- Encoding -------------------------------------------------------------- */

static FbsRef encode_table(FbsBuilder *b, const FlTableType *type, const void *msg);

static FbsRef encode_offsets(FbsBuilder *b, const FlField *f, const void *msg) {
        const void *v = *CMEMBER(msg, f, void *);
        size_t n = *CCOUNT(msg, f);
        _cleanup_free_ FbsRef *refs = NULL;

        if (!v && n > 0) {
                fbs_builder_fail(b, -EINVAL);
                return 0;
        }
        refs = calloc(MAX(n, (size_t) 1), sizeof(FbsRef));
        if (!refs) {
                fbs_builder_fail(b, -ENOMEM);
                return 0;
        }

        for (size_t i = 0; i < n; i++) {
                if (f->kind == FL_FIELD_STRINGS) {
                        const char *s = ((const char *const *) v)[i];

                        if (!s) {
                                fbs_builder_fail(b, -EINVAL);
                                return 0;
                        }
                        refs[i] = fbs_builder_create_string(b, s, strlen(s));
                } else
                        refs[i] = encode_table(b, f->table, (const uint8_t *) v + i * f->table->size);
                if (refs[i] == 0)
                        return 0;
        }
        return fbs_builder_create_offsets(b, refs, n);
}

/* The out-of-line part of a field (string, vector, table), 0 when absent. */
static FbsRef encode_child(FbsBuilder *b, const FlField *f, const void *msg) {
        switch (f->kind) {
        case FL_FIELD_STRING: {
                const char *s = *CMEMBER(msg, f, char *);
                size_t len = 0;

                if (!s)
                        return 0;
                if (f->count_offset != FL_NO_COUNT)
                        len = *CCOUNT(msg, f);
                if (len == 0)
                        len = strlen(s);
                return fbs_builder_create_string(b, s, len);
        }
        case FL_FIELD_BYTES:
        case FL_FIELD_FLOATS: {
                const void *p = *CMEMBER(msg, f, void *);
                size_t n = *CCOUNT(msg, f);

                if (!p && n == 0)
                        return 0;
                return fbs_builder_create_vector(b, p, n, f->kind == FL_FIELD_BYTES ? 1 : sizeof(float));
        }
        case FL_FIELD_STRINGS:
        case FL_FIELD_TABLES:
                if (!*CMEMBER(msg, f, void *) && *CCOUNT(msg, f) == 0)
                        return 0;
                return encode_offsets(b, f, msg);
        case FL_FIELD_TABLE: {
                const void *sub = *CMEMBER(msg, f, void *);

                return sub ? encode_table(b, f->table, sub) : 0;
        }
        default:
                return 0;
        }
}

static FbsRef encode_table(FbsBuilder *b, const FlTableType *type, const void *msg) {
        FbsRef refs[FBS_MAX_SLOTS] = {};

        if (type->n_fields > FBS_MAX_SLOTS) {
                fbs_builder_fail(b, -E2BIG);
                return 0;
        }

        /* Children first: a table refers forward to them. */
        for (size_t i = 0; i < type->n_fields; i++) {
                const FlField *f = &type->fields[i];

                refs[i] = encode_child(b, f, msg);
                if (b->error < 0)
                        return 0;
                /* Required fields are all out-of-line ones. */
                if (f->required && refs[i] == 0) {
                        fbs_builder_fail(b, -EINVAL);
                        return 0;
                }
        }

        if (fbs_builder_start_table(b) < 0)
                return 0;
        for (size_t i = 0; i < type->n_fields; i++) {
                const FlField *f = &type->fields[i];
                unsigned slot = (unsigned) i;

                switch (f->kind) {
                case FL_FIELD_BOOL:
                        fbs_builder_add_bool(b, slot, *CMEMBER(msg, f, bool), false);
                        break;
                case FL_FIELD_BYTE:
                        fbs_builder_add_u8(b, slot, *CMEMBER(msg, f, uint8_t), 0);
                        break;
                case FL_FIELD_INT:
                        fbs_builder_add_i32(b, slot, *CMEMBER(msg, f, int32_t), 0);
                        break;
                case FL_FIELD_FLOAT:
                        fbs_builder_add_f32(b, slot, *CMEMBER(msg, f, float), 0.0f);
                        break;
                default:
                        fbs_builder_add_offset(b, slot, refs[i]);
                }
        }
        return fbs_builder_end_table(b);
}

int fl_message_encode(const FlTableType *type, const void *msg, const char *ident, uint8_t **ret, size_t *ret_size) {
        _cleanup_(fbs_builder_donep) FbsBuilder b;
        FbsRef root;

        if (!type || !msg || !ret || !ret_size)
                return -EINVAL;

        fbs_builder_init(&b);
        root = encode_table(&b, type, msg);
        return fbs_builder_finish(&b, root, ident, ret, ret_size);
}

const char *fl_retcode_to_string(int32_t retcode) {
        switch (retcode) {
        case FL_SUCCEED: return "SUCCEED";
        case FL_SUC_NOT_READY: return "SucNotReady";
        case FL_REPEAT_REQUEST: return "RepeatRequest";
        case FL_SUC_NOT_MATCH: return "SucNotMatch";
        case FL_OUT_OF_TIME: return "OutOfTime";
        case FL_NOT_SELECTED: return "NotSelected";
        case FL_REQUEST_ERROR: return "RequestError";
        case FL_SYSTEM_ERROR: return "SystemError";
        default: return NULL;
        }
}
