/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "digest.h"
#include "macro.h"

/* The update log's disk work on a thread of its own: SQLite copying a whole
 * model into pages, WAL frames and checksums costs several times what the
 * event loop spends on an update, and done here it overlaps with the loop
 * taking in the next ones. The loop hands over one batch at a time (a group
 * commit: one transaction, one fsync) and hears back on an eventfd; it
 * never waits for the disk. The thread has its own connection to the
 * update log's database and touches nothing else: a batch names rows and bodies
 * that the loop keeps alive, and does not change, until it is done. */

typedef struct LogRow {
        uint32_t iteration;
        const char *fl_id;
        char digest[DIGEST_STRING_MAX];
        const uint8_t *body;            /* NULL for a row to delete */
        size_t size;
} LogRow;

typedef struct LogBatch {
        bool prune;                     /* delete the rows of every iteration but prune_keep */
        uint32_t prune_keep;
        LogRow *deletes;
        size_t n_deletes;
        LogRow *puts;
        size_t n_puts;
        int result;                     /* set by the thread: 0 or a negative errno */
} LogBatch;

typedef struct LogWriter LogWriter;
typedef void (*log_writer_done_t)(LogWriter *w, LogBatch *b, void *userdata);

/* Opens its connection to path (set up already) and starts the thread. */
int log_writer_new(LogWriter **ret, sd_event *e, const char *path, log_writer_done_t done, void *userdata);
/* Waits for a batch in flight (its done is not called), stops the thread. */
LogWriter *log_writer_free(LogWriter *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(LogWriter *, log_writer_free);

/* Hands b over (-EBUSY while another is in flight): done(b) runs on the
 * loop once it is committed or failed. */
int log_writer_submit(LogWriter *w, LogBatch *b);
bool log_writer_busy(const LogWriter *w);
