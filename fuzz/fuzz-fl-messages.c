/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the device protocol decoders: every input is decoded
 * as every table of fl_protocol.fbs (requests for the server, responses for
 * fl-client) and as a model file. A decoded message must be safe to walk, and
 * must re-encode into a buffer that decodes to the same message.
 *
 * Not part of the autotools build (it needs clang). From the source tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=gnu11 \
 *       -Isrc/shared fuzz/fuzz-fl-messages.c \
 *       src/shared/fbs-reader.c src/shared/fbs-builder.c src/shared/fl-messages.c \
 *       src/shared/fl-messages-schema.c src/shared/fl-model-io.c src/shared/model.c \
 *       src/shared/util.c -lsystemd -o fuzz-fl-messages
 *   mkdir -p corpus && ./fuzz-fl-messages -max_len=4096 -max_total_time=300 corpus
 *
 * Seeds: any buffer fbs-tool encodes (tests/test-fbs-python.py builds
 * samples of every table), e.g.
 *   echo '{"fl_id":"a","iteration":1}' | ./fbs-tool encode RequestFLJob > corpus/seed1 */
#include <stdio.h>
#include <string.h>

#include "fl-messages.h"
#include "fl-model-io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t walk(const FlTableType *type, const void *msg) {
        const uint8_t *m = msg;
        uint64_t sum = 0;

        for (size_t i = 0; i < type->n_fields; i++) {
                const FlField *f = &type->fields[i];
                const void *p = f->kind >= FL_FIELD_STRING ? *(const void *const *) (m + f->offset) : NULL;
                size_t n = f->count_offset != FL_NO_COUNT ? *(const size_t *) (m + f->count_offset) : 0;

                switch (f->kind) {
                case FL_FIELD_STRING:
                        if (p)
                                sum += strlen(p);
                        break;
                case FL_FIELD_BYTES:
                case FL_FIELD_FLOATS:
                        for (size_t j = 0; j < n * (f->kind == FL_FIELD_BYTES ? 1 : 4); j++)
                                sum += ((const uint8_t *) p)[j];
                        break;
                case FL_FIELD_STRINGS:
                        for (size_t j = 0; j < n; j++)
                                sum += strlen(((const char *const *) p)[j]);
                        break;
                case FL_FIELD_TABLE:
                        if (p)
                                sum += walk(f->table, p);
                        break;
                case FL_FIELD_TABLES:
                        for (size_t j = 0; j < n; j++)
                                sum += walk(f->table, (const uint8_t *) p + j * f->table->size);
                        break;
                default:
                        sum += m[f->offset];
                }
        }
        return sum;
}

static void check_table(const FlTableType *type, const uint8_t *buf, size_t size) {
        _cleanup_free_ uint8_t *out = NULL, *again = NULL;
        void *msg = calloc(1, type->size), *msg2 = calloc(1, type->size);
        char reason[FL_REASON_MAX];
        size_t out_size, again_size;
        int r;

        if (!msg || !msg2)
                abort();

        r = fl_message_decode(type, buf, size, msg, reason);
        if (r < 0) {
                if (r != -EBADMSG || reason[0] == 0)
                        abort();
                goto finish;
        }
        (void) walk(type, msg);

        /* What we accepted we can write, and it reads back the same. */
        if (fl_message_encode(type, msg, FL_FILE_IDENTIFIER, &out, &out_size) < 0)
                abort();
        if (fl_message_decode(type, out, out_size, msg2, NULL) < 0)
                abort();
        if (fl_message_encode(type, msg2, FL_FILE_IDENTIFIER, &again, &again_size) < 0)
                abort();
        if (again_size != out_size || memcmp(out, again, out_size) != 0)
                abort();

finish:
        fl_message_done(type, msg);
        fl_message_done(type, msg2);
        free(msg);
        free(msg2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        /* A buffer of exactly the input's size, 4-byte aligned as the HTTP
         * layer's malloc()ed bodies are. */
        _cleanup_free_ uint8_t *buf = malloc(size > 0 ? size : 1);
        Model *m = NULL;

        if (!buf)
                return 0;
        if (size > 0)
                memcpy(buf, data, size);

        for (size_t i = 0; i < fl_n_table_types; i++)
                check_table(fl_table_types[i], buf, size);

        if (fl_model_decode(buf, size, &m) == 0) {
                if (model_total_size(m) > size / sizeof(float))
                        abort();
                model_free(m);
        }
        return 0;
}
