/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>
#include <time.h>

#include "macro.h"

/* Strict number parsing: the whole string, no sign surprises, no overflow. */
int safe_atou64(const char *s, uint64_t *ret);
int safe_atou32(const char *s, uint32_t *ret);
int safe_atou16(const char *s, uint16_t *ret);
int safe_atod(const char *s, double *ret);
int parse_boolean(const char *s);

uint64_t now_usec(clockid_t clock);
uint64_t now_msec_realtime(void);

/* A random RFC 4122 version 4 UUID as 36 lowercase characters + NUL. */
#define UUID_STRING_MAX 37
int uuid_generate_string(char ret[static UUID_STRING_MAX]);
bool uuid_string_is_valid(const char *s);

/* Node ids: printable, no spaces, bounded; what MindSpore accepts and what
 * is safe to print in logs, tables and SQL. */
#define NODE_ID_MAX 128
bool node_id_is_valid(const char *s);

/* A device's fl_id: 1-255 bytes, no control characters (it is logged and
 * stored; the device protocol says nothing more). */
#define FL_ID_MAX 256
bool fl_id_is_valid(const char *fl_id);

int mkdir_p(const char *path, mode_t mode);
/* mkdir_p() of the directory a file path is in. */
int mkdir_parents(const char *path, mode_t mode);
int read_full_file(const char *path, char **ret, size_t *ret_size, size_t max_size);
/* Writes atomically: a temporary file beside it, fsync, rename. */
int write_file_atomic(const char *path, const char *contents);
int write_data_atomic(const char *path, const void *data, size_t size);

/* The first non-loopback IPv4 address of this host, for a node to advertise. */
int first_non_loopback_ipv4(char *ret, size_t size);
