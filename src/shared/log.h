/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <syslog.h>

#include "macro.h"

/* Logging to stderr with syslog priority prefixes ("<6>"), which journald
 * turns into priorities, or straight to the journal with structured fields
 * when the daemon runs under systemd (JOURNAL_STREAM matches stderr).
 * Every log_*_errno() returns the negative errno it was given, so callers
 * can "return log_error_errno(r, ...)". %m prints that errno. */

void log_set_max_level(int level);
int log_get_max_level(void);
int log_parse_level(const char *s);
void log_set_ident(const char *ident);
/* For tools that talk to people: no "<N>" prefixes even when stderr is not a
 * terminal. */
void log_set_plain(bool b);

/* Extra structured fields ("FL_ROLE=SERVER") attached to every entry this
 * process writes to the journal, e.g. the node id once it is known. */
int log_set_field(const char *name, const char *value);

int log_internal(int level, int error, const char *file, int line, const char *func,
                 const char *format, ...) _printf_(6, 7);

/* Like log_internal(), with a NULL-terminated list of "FIELD=value" strings
 * that go to the journal as structured fields (ignored on plain stderr). */
int log_struct_internal(int level, int error, const char *file, int line, const char *func,
                        const char *const *fields, const char *format, ...) _printf_(7, 8);

#define log_full_errno(level, error, ...)                                               \
        ({                                                                              \
                int _l = (level), _e = (error);                                         \
                (log_get_max_level() >= _l)                                             \
                        ? log_internal(_l, _e, __FILE__, __LINE__, __func__, __VA_ARGS__) \
                        : -abs(_e);                                                     \
        })

#define log_full(level, ...) (void) log_full_errno((level), 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...) log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...) log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...) log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...) log_full_errno(LOG_ERR, error, __VA_ARGS__)

#define log_oom() log_error_errno(-ENOMEM, "Out of memory.")

/* log_struct(LOG_INFO, FIELDS("FL_ITERATION=3", "FL_RANK=0"), "Iteration %u done.", 3) */
#define FIELDS(...) ((const char *const[]) { __VA_ARGS__, NULL })
#define log_struct(level, fields, ...) \
        (void) log_struct_internal((level), 0, __FILE__, __LINE__, __func__, (fields), __VA_ARGS__)
