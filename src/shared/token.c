/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "token.h"
#include "util.h"

#define HASH_TAG "sha256:"

static const char *const role_names[_TOKEN_ROLE_MAX] = {
        [TOKEN_ROLE_READER] = "reader",
        [TOKEN_ROLE_OPERATOR] = "operator",
};

const char *token_role_to_string(TokenRole role) {
        return role >= 0 && role < _TOKEN_ROLE_MAX ? role_names[role] : NULL;
}

TokenRole token_role_from_string(const char *s) {
        for (int i = 0; i < _TOKEN_ROLE_MAX; i++)
                if (s && streq(role_names[i], s))
                        return (TokenRole) i;
        return _TOKEN_ROLE_INVALID;
}

void token_table_done(TokenTable *t) {
        free(t->entries);
        *t = (TokenTable) {};
}

int token_hash(const char *token, size_t n, uint8_t ret[static TOKEN_HASH_SIZE]) {
        return gnutls_hash_fast(GNUTLS_DIG_SHA256, token, n, ret) < 0 ? -EIO : 0;
}

static int refuse(char *error, size_t size, unsigned line, const char *format, ...) _printf_(4, 5);
static int refuse(char *error, size_t size, unsigned line, const char *format, ...) {
        va_list ap;
        int k = line > 0 ? snprintf(error, size, "line %u: ", line) : 0;

        if (k < 0 || (size_t) k >= size)
                k = 0;
        va_start(ap, format);
        vsnprintf(error + k, size - (size_t) k, format, ap);
        va_end(ap);
        return -EBADMSG;
}

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        return -1;
}

/* "sha256:" and 64 lowercase hex digits, exactly. */
static int parse_hash(const char *s, size_t n, uint8_t ret[static TOKEN_HASH_SIZE]) {
        if (n < strlen(HASH_TAG) || memcmp(s, HASH_TAG, strlen(HASH_TAG)) != 0)
                return -EPROTONOSUPPORT;
        s += strlen(HASH_TAG);
        n -= strlen(HASH_TAG);
        if (n != 2 * TOKEN_HASH_SIZE)
                return -EINVAL;
        for (size_t i = 0; i < TOKEN_HASH_SIZE; i++) {
                int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        return -EINVAL;
                ret[i] = (uint8_t) (hi << 4 | lo);
        }
        return 0;
}

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

/* One line without its newline; an entry is appended to t. */
static int parse_line(const char *s, size_t n, unsigned line, TokenTable *t, size_t *allocated,
                      char *error, size_t size) {
        char role_name[16];
        const char *hash;
        size_t role_len, hash_len;
        TokenRole role;
        uint8_t h[TOKEN_HASH_SIZE];
        int r;

        if (n > TOKEN_LINE_MAX)
                return refuse(error, size, line, "longer than %u bytes.", TOKEN_LINE_MAX);
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c == '\r')
                        return refuse(error, size, line, "a carriage return (a file saved with CRLF line ends?).");
                if (c == '\0')
                        return refuse(error, size, line, "a NUL byte.");
                if ((c < ' ' && c != '\t') || c >= 0x7f)
                        return refuse(error, size, line, "a byte 0x%02x that is not printable ASCII.", c);
        }
        if (n == 0 || s[0] == '#')
                return 0;
        if (is_blank(s[0]) || is_blank(s[n - 1]))
                return refuse(error, size, line, "blanks before or after the entry.");

        role_len = 0;
        while (role_len < n && !is_blank(s[role_len]))
                role_len++;
        if (role_len == n)
                return refuse(error, size, line, "expected 'ROLE sha256:HASH', found one word.");
        hash = s + role_len;
        while (hash < s + n && is_blank(*hash))
                hash++;
        hash_len = (size_t) (s + n - hash);
        for (size_t i = 0; i < hash_len; i++)
                if (is_blank(hash[i]))
                        return refuse(error, size, line, "expected 'ROLE sha256:HASH', found more than two words.");

        if (role_len >= sizeof role_name)
                role = _TOKEN_ROLE_INVALID;
        else {
                memcpy(role_name, s, role_len);
                role_name[role_len] = '\0';
                role = token_role_from_string(role_name);
        }
        if (role < 0)
                return refuse(error, size, line, "unknown role '%.*s' (the roles are operator and reader).",
                              (int) MIN(role_len, (size_t) 32), s);

        r = parse_hash(hash, hash_len, h);
        if (r == -EPROTONOSUPPORT)
                return refuse(error, size, line, "the hash must start with '" HASH_TAG "' (the only one supported).");
        if (r < 0)
                return refuse(error, size, line, "the hash must be '" HASH_TAG "' and %u lowercase hexadecimal digits.",
                              2 * TOKEN_HASH_SIZE);

        for (size_t i = 0; i < t->n; i++)
                if (memcmp(t->entries[i].hash, h, sizeof h) == 0)
                        return refuse(error, size, line, "the same token as an entry before it.");
        if (t->n >= TOKEN_ENTRIES_MAX)
                return refuse(error, size, line, "more than %u entries.", TOKEN_ENTRIES_MAX);
        if (t->n == *allocated) {
                size_t k = MAX(*allocated * 2, (size_t) 8);
                TokenEntry *e = reallocarray(t->entries, k, sizeof *e);

                if (!e)
                        return -ENOMEM;
                t->entries = e;
                *allocated = k;
        }
        t->entries[t->n].role = role;
        memcpy(t->entries[t->n].hash, h, sizeof h);
        t->n++;
        return 0;
}

int token_table_parse(const char *text, size_t size, TokenTable *ret, char *error, size_t error_size) {
        _cleanup_(token_table_done) TokenTable t = {};
        size_t allocated = 0, pos = 0;
        unsigned line = 0;
        int r;

        if (size > TOKEN_FILE_MAX)
                return refuse(error, error_size, 0, "larger than %zu bytes.", TOKEN_FILE_MAX);
        while (pos < size) {
                const char *nl = memchr(text + pos, '\n', size - pos);
                size_t n = nl ? (size_t) (nl - (text + pos)) : size - pos;

                line++;
                r = parse_line(text + pos, n, line, &t, &allocated, error, error_size);
                if (r < 0)
                        return r;
                pos += n + (nl ? 1 : 0);
        }
        *ret = t;
        t = (TokenTable) {};
        return 0;
}

int token_table_load(const char *path, TokenTable *ret, char *error, size_t error_size) {
        _cleanup_free_ char *text = NULL;
        struct stat st;
        size_t size;
        int r;

        r = read_full_file(path, &text, &size, TOKEN_FILE_MAX);
        if (r == -EFBIG)
                return refuse(error, error_size, 0, "larger than %zu bytes.", TOKEN_FILE_MAX), -EFBIG;
        if (r == -EBADFD)
                return refuse(error, error_size, 0, "not a regular file."), -EBADFD;
        if (r < 0) {
                snprintf(error, error_size, "%s.", strerror(-r));
                return r;
        }
        if (stat(path, &st) < 0) {
                snprintf(error, error_size, "%s.", strerror(errno));
                return -errno;
        }
        /* Whoever may write it may make themselves an operator. */
        if (st.st_mode & S_IWOTH) {
                snprintf(error, error_size, "writable by every user (mode %04o); chmod o-w it.",
                         (unsigned) (st.st_mode & 07777));
                return -EPERM;
        }
        return token_table_parse(text, size, ret, error, error_size);
}

/* 0xffffffff when the two hashes are equal, else 0, without a branch on
 * their bytes. */
static uint32_t hash_equal_mask(const uint8_t a[static TOKEN_HASH_SIZE], const uint8_t b[static TOKEN_HASH_SIZE]) {
        uint32_t d = 0;

        for (size_t i = 0; i < TOKEN_HASH_SIZE; i++)
                d |= (uint32_t) (a[i] ^ b[i]);
        /* d is 0..255: d - 1 underflows (top bit set) only for 0. */
        return (uint32_t) -(int32_t) ((d - 1) >> 31);
}

TokenRole token_table_lookup(const TokenTable *t, const char *token, size_t n) {
        uint8_t h[TOKEN_HASH_SIZE];
        uint32_t role = (uint32_t) _TOKEN_ROLE_INVALID;

        if (!t || t->n == 0 || n == 0 || n > TOKEN_PRESENTED_MAX || token_hash(token, n, h) < 0)
                return _TOKEN_ROLE_INVALID;
        for (size_t i = 0; i < t->n; i++) {
                uint32_t eq = hash_equal_mask(t->entries[i].hash, h);

                role = (role & ~eq) | ((uint32_t) t->entries[i].role & eq);
        }
        return (TokenRole) (int32_t) role;
}

/* n bytes as 2n lowercase hex digits at p; returns the end. */
static char *hex_encode(char *p, const uint8_t *bytes, size_t n) {
        static const char hex[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                *p++ = hex[bytes[i] >> 4];
                *p++ = hex[bytes[i] & 15];
        }
        return p;
}

int token_generate(char ret[static TOKEN_STRING_MAX]) {
        uint8_t random[TOKEN_RANDOM_BYTES];
        size_t got = 0;
        char *p;

        while (got < sizeof random) {
                ssize_t k = getrandom(random + got, sizeof random - got, 0);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                got += (size_t) k;
        }
        p = hex_encode(stpcpy(ret, TOKEN_PREFIX), random, sizeof random);
        *p = '\0';
        explicit_bzero(random, sizeof random);
        return 0;
}

int token_entry_print(const TokenEntry *e, char ret[static TOKEN_ENTRY_MAX]) {
        const char *name = token_role_to_string(e->role);
        char *p;

        if (!name)
                return -EINVAL;
        p = hex_encode(ret + snprintf(ret, TOKEN_ENTRY_MAX, "%s " HASH_TAG, name), e->hash, TOKEN_HASH_SIZE);
        *p++ = '\n';
        *p = '\0';
        return 0;
}

int token_entry_format(TokenRole role, const char *token, char ret[static TOKEN_ENTRY_MAX]) {
        TokenEntry e = { .role = role };
        int r;

        if (!token_role_to_string(role))
                return -EINVAL;
        r = token_hash(token, strlen(token), e.hash);
        if (r < 0)
                return r;
        return token_entry_print(&e, ret);
}
