/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "server-log-writer.h"
#include "server-metrics.h"
#include "server-store.h"
#include "store.h"
#include "util.h"

struct LogWriter {
        sd_event_source *source;        /* the eventfd, on the loop */
        int efd;
        log_writer_done_t done;
        void *userdata;

        pthread_t thread;
        bool started;
        sqlite3 *db;                    /* the thread's alone */
        sqlite3_stmt *put;

        pthread_mutex_t lock;
        pthread_cond_t cond;
        LogBatch *todo;                 /* handed to the thread */
        LogBatch *finished;             /* handed back */
        bool in_flight;
        bool quit;
};

static int write_batch(LogWriter *w, LogBatch *b) {
        int r;

        r = store_begin(w->db);
        if (r < 0)
                return r;
        if (b->prune) {
                r = server_store_keep_updates_of(w->db, b->prune_keep);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < b->n_deletes; i++) {
                r = server_store_delete_update(w->db, b->deletes[i].iteration, b->deletes[i].fl_id,
                                               b->deletes[i].digest);
                if (r < 0)
                        goto fail;
        }
        for (size_t i = 0; i < b->n_puts; i++) {
                const LogRow *row = &b->puts[i];

                r = server_store_put_update(w->db, &w->put, row->iteration, row->fl_id, row->digest, row->body,
                                            row->size);
                if (r < 0)
                        goto fail;
        }
        return store_commit(w->db);
fail:
        store_rollback(w->db);
        return r;
}

static void *writer_thread(void *userdata) {
        LogWriter *w = userdata;
        uint64_t one = 1;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                LogBatch *b;

                while (!w->todo && !w->quit)
                        pthread_cond_wait(&w->cond, &w->lock);
                if (!w->todo)
                        break;
                uint64_t t0;

                b = w->todo;
                w->todo = NULL;
                pthread_mutex_unlock(&w->lock);

                t0 = now_usec(CLOCK_MONOTONIC);
                b->result = write_batch(w, b);
                server_metrics_log_commit(b->n_puts, now_usec(CLOCK_MONOTONIC) - t0);

                pthread_mutex_lock(&w->lock);
                w->finished = b;
                if (write(w->efd, &one, sizeof one) < 0) {
                        /* An eventfd write only fails on overflow, which one wakeup per batch cannot reach. */
                }
                pthread_cond_broadcast(&w->cond);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

static int on_eventfd(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        LogWriter *w = userdata;
        LogBatch *b;
        uint64_t n;

        if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
                return log_warning_errno(-errno, "Failed to read the update log writer's eventfd: %m");

        pthread_mutex_lock(&w->lock);
        b = w->finished;
        w->finished = NULL;
        if (b)
                w->in_flight = false;
        pthread_mutex_unlock(&w->lock);

        if (b)
                w->done(w, b, w->userdata);
        return 0;
}

int log_writer_new(LogWriter **ret, sd_event *e, const char *path, log_writer_done_t done, void *userdata) {
        _cleanup_(log_writer_freep) LogWriter *w = NULL;
        int r;

        w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->efd = -EBADF;
        w->done = done;
        w->userdata = userdata;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);

        r = store_connect(&w->db, path, SERVER_STORE_UPDATES_JOURNAL);
        if (r < 0)
                return r;
        w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->efd < 0)
                return -errno;
        r = sd_event_add_io(e, &w->source, w->efd, EPOLLIN, on_eventfd, w);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(w->source, "update-log-writer");

        r = -pthread_create(&w->thread, NULL, writer_thread, w);
        if (r < 0)
                return r;
        w->started = true;
        *ret = TAKE_PTR(w);
        return 0;
}

LogWriter *log_writer_free(LogWriter *w) {
        if (!w)
                return NULL;
        if (w->started) {
                pthread_mutex_lock(&w->lock);
                w->quit = true;
                pthread_cond_broadcast(&w->cond);
                pthread_mutex_unlock(&w->lock);
                /* It finishes the batch in flight: its bodies stay valid until then. */
                (void) pthread_join(w->thread, NULL);
        }
        sd_event_source_disable_unref(w->source);
        if (w->efd >= 0)
                (void) close(w->efd);
        sqlite3_finalize(w->put);
        if (w->db)
                sqlite3_close_v2(w->db);
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        return mfree(w);
}

int log_writer_submit(LogWriter *w, LogBatch *b) {
        int r = 0;

        pthread_mutex_lock(&w->lock);
        if (w->in_flight)
                r = -EBUSY;
        else {
                w->todo = b;
                w->in_flight = true;
                pthread_cond_broadcast(&w->cond);
        }
        pthread_mutex_unlock(&w->lock);
        return r;
}

bool log_writer_busy(const LogWriter *w) {
        /* Only the loop sets and clears in_flight. */
        return w->in_flight;
}
