/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs the token file fuzz target (fuzz/fuzz-token-file.c) without libFuzzer:
 * over seeds (valid files, and each kind of refusal) and a fixed number of
 * deterministic mutations of them (bytes flipped, inserted, deleted, lines
 * spliced), so that every suite run exercises the parser on inputs nobody
 * wrote by hand. The target aborts when one of its checks fails. A seed
 * argument repeats another sequence of mutations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HASH_A "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define HASH_B "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MUTATIONS 20000U
#define INPUT_MAX 4096U

static const char *const seeds[] = {
        "",
        "# tokens\n\noperator sha256:" HASH_A "\nreader sha256:" HASH_B "\n",
        "reader\tsha256:" HASH_B,
        "operator sha256:" HASH_A "\r\n",
        "operator sha256:" HASH_A "\nreader sha256:" HASH_A "\n",
        "admin sha256:" HASH_A "\n",
        "operator md5:" HASH_A "\n",
        "operator sha256:" HASH_A " extra\n",
        " operator sha256:" HASH_A "\n",
        "abc",
};

static uint64_t rng_state;

static uint32_t rng(void) {
        /* xorshift64*: reproducible from the seed, good enough to pick bytes. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t) ((rng_state * 2685821657736338717ULL) >> 32);
}

static size_t mutate(uint8_t *buf, size_t n) {
        static const char interesting[] = " \t\n\r#:\0xabcdef0123456789";
        unsigned steps = 1 + rng() % 4;

        for (unsigned s = 0; s < steps; s++) {
                size_t at = n > 0 ? rng() % n : 0;
                uint8_t byte = rng() % 3 == 0 ? (uint8_t) interesting[rng() % (sizeof interesting - 1)] : (uint8_t) rng();

                switch (rng() % 5) {
                case 0:         /* flip a bit */
                        if (n > 0)
                                buf[at] ^= (uint8_t) (1U << (rng() % 8));
                        break;
                case 1:         /* insert */
                        if (n < INPUT_MAX) {
                                memmove(buf + at + 1, buf + at, n - at);
                                buf[at] = byte;
                                n++;
                        }
                        break;
                case 2:         /* delete */
                        if (n > 0) {
                                memmove(buf + at, buf + at + 1, n - at - 1);
                                n--;
                        }
                        break;
                case 3:         /* overwrite */
                        if (n > 0)
                                buf[at] = byte;
                        break;
                default: {      /* append a copy of a piece of itself (duplicate lines) */
                        size_t len = n > 0 ? rng() % (n - at + 1) : 0;

                        if (n + len <= INPUT_MAX) {
                                memmove(buf + n, buf + at, len);
                                n += len;
                        }
                        break;
                }
                }
        }
        return n;
}

int main(int argc, char *argv[]) {
        static uint8_t buf[INPUT_MAX];
        unsigned long seed = argc > 1 ? strtoul(argv[1], NULL, 0) : 1;

        rng_state = 0x9e3779b97f4a7c15ULL ^ seed;
        for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
                (void) LLVMFuzzerTestOneInput((const uint8_t *) seeds[i], strlen(seeds[i]));
        /* "operator sha256:" HASH_A "\n\0" with its NUL byte. */
        (void) LLVMFuzzerTestOneInput((const uint8_t *) "operator sha256:" HASH_A "\n", 82);

        for (unsigned i = 0; i < MUTATIONS; i++) {
                const char *s = seeds[rng() % (sizeof seeds / sizeof seeds[0])];
                size_t n = strlen(s);

                memcpy(buf, s, n);
                n = mutate(buf, n);
                (void) LLVMFuzzerTestOneInput(buf, n);
        }
        printf("token file parser: %zu seeds and %u mutations checked (seed %lu)\n",
               sizeof seeds / sizeof seeds[0], MUTATIONS, seed);
        return 0;
}
