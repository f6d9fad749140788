/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the management token file parser (src/shared/token.c):
 * every input is parsed as a token file. What is accepted must be safe to
 * use, must print back (entry by entry, as flctl token create writes them)
 * into a file that parses to the same table, and lookups must find exactly
 * its entries; what is refused must say why.
 *
 * With clang, from the source tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=gnu11 \
 *       -include _build/config.h -Isrc/shared fuzz/fuzz-token-file.c \
 *       src/shared/token.c src/shared/util.c -lgnutls -lsystemd -o fuzz-token-file
 *   mkdir -p corpus && ./fuzz-token-file -max_len=4096 -max_total_time=300 corpus
 *
 * The test suite runs the same function over seeds and their mutations
 * (tests/test-fuzz-token-file.c), with gcc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                                        \
        do {                                                                            \
                if (!(x)) {                                                             \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x); \
                        abort();                                                        \
                }                                                                       \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(token_table_done) TokenTable t = {}, again = {};
        _cleanup_free_ char *text = NULL;
        char error[256] = "";
        int r;

        r = token_table_parse((const char *) data, size, &t, error, sizeof error);
        if (r < 0) {
                CHECK(r == -EBADMSG || r == -ENOMEM);
                CHECK(r == -ENOMEM || strlen(error) > 0);
                CHECK(!t.entries && t.n == 0);
                return 0;
        }
        CHECK(t.n <= TOKEN_ENTRIES_MAX);

        text = malloc(t.n * TOKEN_ENTRY_MAX + 1);
        CHECK(text);
        text[0] = '\0';
        for (size_t i = 0, n = 0; i < t.n; i++) {
                CHECK(token_entry_print(&t.entries[i], text + n) == 0);
                n += strlen(text + n);
        }
        r = token_table_parse(text, strlen(text), &again, error, sizeof error);
        CHECK(r == 0);
        CHECK(again.n == t.n);
        for (size_t i = 0; i < t.n; i++) {
                CHECK(again.entries[i].role == t.entries[i].role);
                CHECK(memcmp(again.entries[i].hash, t.entries[i].hash, TOKEN_HASH_SIZE) == 0);
        }
        /* The input itself as a presented token: whatever it is, no crash, and
         * a match only if its hash is one of the entries. */
        if (size > 0) {
                TokenRole role = token_table_lookup(&t, (const char *) data, size);
                uint8_t h[TOKEN_HASH_SIZE];
                bool found = false;

                CHECK(role == _TOKEN_ROLE_INVALID || (role >= 0 && role < _TOKEN_ROLE_MAX));
                if (size <= TOKEN_PRESENTED_MAX && token_hash((const char *) data, size, h) == 0)
                        for (size_t i = 0; i < t.n; i++)
                                if (memcmp(t.entries[i].hash, h, sizeof h) == 0) {
                                        CHECK(role == t.entries[i].role);
                                        found = true;
                                }
                CHECK(found == (role != _TOKEN_ROLE_INVALID));
        }
        return 0;
}
