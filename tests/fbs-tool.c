/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fbs-tool: our FlatBuffers codec from the command line, for cross-checks
 * against other implementations (tests/test-fbs-python.py).
 *
 *   fbs-tool schema                          the descriptors, as JSON
 *   fbs-tool encode TABLE [--no-identifier]  JSON on stdin -> buffer on stdout
 *   fbs-tool decode TABLE                    buffer on stdin -> JSON on stdout
 *
 * JSON: one object per table, keys are the schema's field names, absent
 * fields are left out; [ubyte]/[byte] and [float] are arrays of numbers.
 * decode exits 1 with the decoder's reason on stderr for a bad buffer. */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "fl-messages.h"
#include "json-util.h"

static const char *const kind_names[] = {
        [FL_FIELD_BOOL] = "bool",
        [FL_FIELD_BYTE] = "byte",
        [FL_FIELD_INT] = "int",
        [FL_FIELD_FLOAT] = "float",
        [FL_FIELD_STRING] = "string",
        [FL_FIELD_BYTES] = "bytes",
        [FL_FIELD_FLOATS] = "floats",
        [FL_FIELD_STRINGS] = "strings",
        [FL_FIELD_TABLE] = "table",
        [FL_FIELD_TABLES] = "tables",
};

/* Everything the JSON -> struct direction allocates, released at exit. */
static void **arena;
static size_t n_arena;

static void *arena_alloc(size_t n, size_t size) {
        void **a, *p;

        p = calloc(MAX(n, (size_t) 1), size);
        a = realloc(arena, (n_arena + 1) * sizeof(void *));
        if (!p || !a) {
                fputs("Out of memory.\n", stderr);
                exit(EXIT_FAILURE);
        }
        arena = a;
        arena[n_arena++] = p;
        return p;
}

static void arena_free(void) {
        for (size_t i = 0; i < n_arena; i++)
                free(arena[i]);
        free(arena);
}

#define AT(msg, off, type) ((type *) ((uint8_t *) (msg) + (off)))

static int from_json(const FlTableType *type, json_object *o, void *msg);

static int field_from_json(const FlField *f, json_object *v, void *msg) {
        size_t n = 0;

        if (f->kind >= FL_FIELD_BYTES && f->kind != FL_FIELD_TABLE) {
                if (!json_object_is_type(v, json_type_array))
                        return -EINVAL;
                n = json_object_array_length(v);
                *AT(msg, f->count_offset, size_t) = n;
        }

        switch (f->kind) {
        case FL_FIELD_BOOL:
                *AT(msg, f->offset, bool) = json_object_get_boolean(v);
                return 0;
        case FL_FIELD_BYTE:
                *AT(msg, f->offset, uint8_t) = (uint8_t) json_object_get_int(v);
                return 0;
        case FL_FIELD_INT:
                *AT(msg, f->offset, int32_t) = json_object_get_int(v);
                return 0;
        case FL_FIELD_FLOAT:
                *AT(msg, f->offset, float) = (float) json_object_get_double(v);
                return 0;
        case FL_FIELD_STRING:
                if (!json_object_is_type(v, json_type_string))
                        return -EINVAL;
                *AT(msg, f->offset, const char *) = json_object_get_string(v);
                if (f->count_offset != FL_NO_COUNT)
                        *AT(msg, f->count_offset, size_t) = (size_t) json_object_get_string_len(v);
                return 0;
        case FL_FIELD_BYTES: {
                uint8_t *a = arena_alloc(n, 1);

                for (size_t i = 0; i < n; i++)
                        a[i] = (uint8_t) json_object_get_int(json_object_array_get_idx(v, i));
                *AT(msg, f->offset, const uint8_t *) = a;
                return 0;
        }
        case FL_FIELD_FLOATS: {
                float *a = arena_alloc(n, sizeof(float));

                for (size_t i = 0; i < n; i++)
                        a[i] = (float) json_object_get_double(json_object_array_get_idx(v, i));
                *AT(msg, f->offset, const float *) = a;
                return 0;
        }
        case FL_FIELD_STRINGS: {
                const char **a = arena_alloc(n, sizeof(char *));

                for (size_t i = 0; i < n; i++)
                        a[i] = json_object_get_string(json_object_array_get_idx(v, i));
                *AT(msg, f->offset, const char **) = a;
                return 0;
        }
        case FL_FIELD_TABLE: {
                void *sub = arena_alloc(1, f->table->size);

                *AT(msg, f->offset, void *) = sub;
                return from_json(f->table, v, sub);
        }
        case FL_FIELD_TABLES: {
                uint8_t *a = arena_alloc(n, f->table->size);
                int r;

                *AT(msg, f->offset, void *) = a;
                for (size_t i = 0; i < n; i++) {
                        r = from_json(f->table, json_object_array_get_idx(v, i), a + i * f->table->size);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        }
        return -EINVAL;
}

static int from_json(const FlTableType *type, json_object *o, void *msg) {
        size_t known = 0;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EINVAL;
        for (size_t i = 0; i < type->n_fields; i++) {
                json_object *v;

                if (!json_object_object_get_ex(o, type->fields[i].name, &v))
                        continue;
                known++;
                r = field_from_json(&type->fields[i], v, msg);
                if (r < 0) {
                        fprintf(stderr, "%s.%s: wrong JSON type\n", type->name, type->fields[i].name);
                        return r;
                }
        }
        if (known != (size_t) json_object_object_length(o)) {
                fprintf(stderr, "%s: unknown keys in JSON\n", type->name);
                return -EINVAL;
        }
        return 0;
}

static json_object *to_json(const FlTableType *type, const void *msg);

/* NULL when the field is absent. */
static json_object *field_to_json(const FlField *f, const void *msg) {
        const uint8_t *m = msg;
        size_t n = f->count_offset != FL_NO_COUNT ? *(const size_t *) (m + f->count_offset) : 0;
        const void *p = *(const void *const *) (m + f->offset);
        json_object *a;

        switch (f->kind) {
        case FL_FIELD_BOOL:
                return json_object_new_boolean(*(const bool *) (m + f->offset));
        case FL_FIELD_BYTE:
                return json_object_new_int(*(const uint8_t *) (m + f->offset));
        case FL_FIELD_INT:
                return json_object_new_int(*(const int32_t *) (m + f->offset));
        case FL_FIELD_FLOAT:
                return json_object_new_double(*(const float *) (m + f->offset));
        case FL_FIELD_STRING:
                return p ? json_object_new_string(p) : NULL;
        case FL_FIELD_TABLE:
                return p ? to_json(f->table, p) : NULL;
        default:
                break;
        }

        if (!p)
                return NULL;
        a = json_object_new_array_ext((int) n);
        for (size_t i = 0; i < n; i++) {
                json_object *e = NULL;

                switch (f->kind) {
                case FL_FIELD_BYTES:
                        e = json_object_new_int(((const uint8_t *) p)[i]);
                        break;
                case FL_FIELD_FLOATS:
                        e = json_object_new_double(((const float *) p)[i]);
                        break;
                case FL_FIELD_STRINGS:
                        e = json_object_new_string(((const char *const *) p)[i]);
                        break;
                default:
                        e = to_json(f->table, (const uint8_t *) p + i * f->table->size);
                }
                json_object_array_add(a, e);
        }
        return a;
}

static json_object *to_json(const FlTableType *type, const void *msg) {
        json_object *o = json_object_new_object();

        for (size_t i = 0; i < type->n_fields; i++) {
                const FlField *f = &type->fields[i];
                json_object *v = field_to_json(f, msg);

                /* Scalars always appear (a default is its value); absent
                 * strings, vectors and tables do not. */
                if (v)
                        json_object_object_add(o, f->name, v);
        }
        return o;
}

static int read_stdin(uint8_t **ret, size_t *ret_size) {
        size_t size = 0, cap = 4096;
        uint8_t *buf = malloc(cap);

        if (!buf)
                return -ENOMEM;
        for (;;) {
                size_t k;

                if (size == cap) {
                        uint8_t *b = realloc(buf, cap *= 2);

                        if (!b) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = b;
                }
                k = fread(buf + size, 1, cap - size, stdin);
                size += k;
                if (k == 0)
                        break;
        }
        *ret = buf;
        *ret_size = size;
        return 0;
}

static int do_schema(void) {
        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

        for (size_t i = 0; i < fl_n_table_types; i++) {
                const FlTableType *t = fl_table_types[i];
                json_object *fields = json_object_new_array();

                for (size_t j = 0; j < t->n_fields; j++) {
                        json_object *f = json_object_new_object();

                        json_object_object_add(f, "name", json_object_new_string(t->fields[j].name));
                        json_object_object_add(f, "kind", json_object_new_string(kind_names[t->fields[j].kind]));
                        if (t->fields[j].table)
                                json_object_object_add(f, "table", json_object_new_string(t->fields[j].table->name));
                        json_object_object_add(f, "required", json_object_new_boolean(t->fields[j].required));
                        json_object_array_add(fields, f);
                }
                json_object_object_add(o, t->name, fields);
        }
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
        return EXIT_SUCCESS;
}

static int do_encode(const FlTableType *type, bool ident) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ uint8_t *in = NULL, *out = NULL;
        _cleanup_free_ void *msg = NULL;
        size_t size, out_size;
        int r;

        r = read_stdin(&in, &size);
        if (r < 0)
                return EXIT_FAILURE;
        r = json_parse_object((const char *) in, size, &o);
        if (r < 0) {
                fputs("Input is not a JSON object.\n", stderr);
                return EXIT_FAILURE;
        }
        msg = calloc(1, type->size);
        if (!msg || from_json(type, o, msg) < 0)
                return EXIT_FAILURE;

        r = fl_message_encode(type, msg, ident ? FL_FILE_IDENTIFIER : NULL, &out, &out_size);
        if (r < 0) {
                fprintf(stderr, "Encoding failed: %s\n", strerror(-r));
                return EXIT_FAILURE;
        }
        if (fwrite(out, 1, out_size, stdout) != out_size || fflush(stdout) != 0)
                return EXIT_FAILURE;
        return EXIT_SUCCESS;
}

static int do_decode(const FlTableType *type) {
        _cleanup_(json_object_putp) json_object *o = NULL;
        _cleanup_free_ uint8_t *in = NULL;
        _cleanup_free_ void *msg = NULL;
        char reason[FL_REASON_MAX];
        size_t size;
        int r;

        r = read_stdin(&in, &size);
        if (r < 0)
                return EXIT_FAILURE;
        msg = calloc(1, type->size);
        if (!msg)
                return EXIT_FAILURE;

        r = fl_message_decode(type, in, size, msg, reason);
        if (r < 0) {
                fprintf(stderr, "%s\n", r == -EBADMSG ? reason : strerror(-r));
                return EXIT_FAILURE;
        }
        o = to_json(type, msg);
        fl_message_done(type, msg);
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
        const FlTableType *type;
        int r;

        if (argc == 2 && streq(argv[1], "schema"))
                return do_schema();
        if (argc < 3 || argc > 4 || (argc == 4 && !streq(argv[3], "--no-identifier"))) {
                fputs("Usage: fbs-tool schema | encode TABLE [--no-identifier] | decode TABLE\n", stderr);
                return EXIT_FAILURE;
        }
        type = fl_table_type_by_name(argv[2]);
        if (!type) {
                fprintf(stderr, "Unknown table %s.\n", argv[2]);
                return EXIT_FAILURE;
        }

        if (streq(argv[1], "encode"))
                r = do_encode(type, argc == 3);
        else if (streq(argv[1], "decode") && argc == 3)
                r = do_decode(type);
        else {
                fprintf(stderr, "Unknown command %s.\n", argv[1]);
                r = EXIT_FAILURE;
        }
        arena_free();
        return r;
}
