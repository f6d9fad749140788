/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "metrics.h"

/* An append-only file of text lines (the scheduler's metrics file of JSON
 * lines, docs/operations.md), kept whole across crashes and rotated by size.
 *
 * - Each line goes out in one write(2) from the caller's thread, so that a
 *   process killed right after line_log_append() returned has it in the
 *   file. fdatasync(2) follows on a thread of the log's own: the caller
 *   never waits for the disk. line_log_sync() waits for it when that matters.
 * - Opening repairs the tail: bytes after the last newline (a line torn by
 *   a crash in the middle of its write, or zeros after a power loss) are
 *   cut off, with a warning saying how many.
 * - Before a line would take the file past max_bytes, the file is renamed
 *   to PATH.1 (PATH.1 to PATH.2, ..., up to `keep` old files; the oldest is
 *   deleted) and a new PATH is started.
 * - A file moved away by someone else (logrotate without copytruncate) is
 *   noticed at the next line, which goes to a new PATH. */

typedef struct LineLog LineLog;

#define LINE_LOG_LINE_MAX ((size_t) 64 * 1024)

/* Creates the file if needed (mode 0640) and its directory. */
int line_log_open(LineLog **ret, const char *path, uint64_t max_bytes, unsigned keep);
/* Waits for the outstanding fdatasync, then frees. */
LineLog *line_log_free(LineLog *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(LineLog *, line_log_free);

/* Appends line (without its newline; it must contain none) and a newline.
 * -EINVAL for a newline inside or a line over LINE_LOG_LINE_MAX; an I/O
 * error of the write or of the rotation otherwise (the line is then not in
 * the file). */
int line_log_append(LineLog *l, const char *line);
/* Blocks until every line appended so far is on disk; returns the first
 * fdatasync error since the last call, or 0. */
int line_log_sync(LineLog *l);
/* Each fdatasync's duration goes into this histogram (seconds). */
void line_log_set_sync_metric(LineLog *l, MetricFamily *histogram);
/* How many bytes the last open cut off the file's tail. */
uint64_t line_log_repaired(const LineLog *l);
const char *line_log_path(const LineLog *l);

/* The last n lines (at most) of the file at path, oldest first, each
 * without its newline; a missing file has none. Reads at most max_bytes
 * from the end of the file. */
int line_log_read_tail(const char *path, size_t n, uint64_t max_bytes, char ***ret_lines, size_t *ret_n);
void line_log_lines_free(char **lines, size_t n);
