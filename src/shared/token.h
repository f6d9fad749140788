/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "macro.h"

/* Bearer tokens of the management API (docs/management-api.md,
 * "Authentication").
 *
 * A token is "flc_" and 64 hexadecimal digits: 256 random bits. The token
 * file (management_token_file) holds, one entry per line, a role and the
 * SHA-256 of a token, never the token itself:
 *
 *   # comment
 *   operator sha256:5e8f...(64 lowercase hex digits)
 *   reader sha256:0c1d...
 *
 * A plain SHA-256 is enough because the tokens are random and long: nobody
 * can search 2^256 inputs for one whose hash is in the file, so a salt or a
 * slow password hash would add nothing but work per request.
 *
 * The parser faces files operators edit by hand: anything but empty lines,
 * '#' comments and well-formed entries is refused with the line and the
 * reason, and so is the same hash twice. */

#define TOKEN_PREFIX "flc_"
#define TOKEN_RANDOM_BYTES 32
/* "flc_" + 64 hex digits + NUL */
#define TOKEN_STRING_MAX (sizeof(TOKEN_PREFIX) + 2 * TOKEN_RANDOM_BYTES)
#define TOKEN_HASH_SIZE 32
/* What a client may present: longer ones are refused unread. */
#define TOKEN_PRESENTED_MAX 512U
#define TOKEN_FILE_MAX ((size_t) 1024U * 1024U)
#define TOKEN_LINE_MAX 1024U
#define TOKEN_ENTRIES_MAX 10000U
/* "operator sha256:<64 hex>\n" + NUL */
#define TOKEN_ENTRY_MAX 96U

typedef enum TokenRole {
        TOKEN_ROLE_READER,
        TOKEN_ROLE_OPERATOR,
        _TOKEN_ROLE_MAX,
        _TOKEN_ROLE_INVALID = -1,
} TokenRole;

const char *token_role_to_string(TokenRole role);
TokenRole token_role_from_string(const char *s);

typedef struct TokenEntry {
        TokenRole role;
        uint8_t hash[TOKEN_HASH_SIZE];
} TokenEntry;

typedef struct TokenTable {
        TokenEntry *entries;
        size_t n;
} TokenTable;

void token_table_done(TokenTable *t);

/* Parses a token file's text (size bytes; NUL bytes in it are refused).
 * -EBADMSG with "line N: reason" in error when the text is not a valid
 * token file, -ENOMEM. */
int token_table_parse(const char *text, size_t size, TokenTable *ret, char *error, size_t error_size);
/* Reads and parses path: also refuses a file others may write (-EPERM),
 * one that is not a regular file or is too large; error says why. */
int token_table_load(const char *path, TokenTable *ret, char *error, size_t error_size);

/* The SHA-256 of a token as presented (any bytes). */
int token_hash(const char *token, size_t n, uint8_t ret[static TOKEN_HASH_SIZE]);
/* The role of the entry whose hash is the token's, or _TOKEN_ROLE_INVALID.
 * Every entry is compared, each in constant time, so the time taken says
 * nothing about how close a guess came. */
TokenRole token_table_lookup(const TokenTable *t, const char *token, size_t n);

/* A new token from the kernel's random generator. */
int token_generate(char ret[static TOKEN_STRING_MAX]);
/* The file line of a token: "ROLE sha256:HEX\n". */
int token_entry_format(TokenRole role, const char *token, char ret[static TOKEN_ENTRY_MAX]);
/* The file line of an entry. */
int token_entry_print(const TokenEntry *e, char ret[static TOKEN_ENTRY_MAX]);
