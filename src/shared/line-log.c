/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "line-log.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define SYNC_QUEUE_MAX 8U

struct LineLog {
        char *path;
        uint64_t max_bytes;
        unsigned keep;

        int fd;
        dev_t dev;
        ino_t ino;
        uint64_t size;
        uint64_t repaired;

        /* The syncer: fds (dups) whose data must reach the disk. */
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t wake, synced_cond;
        int queue[SYNC_QUEUE_MAX];
        ino_t queue_ino[SYNC_QUEUE_MAX];
        size_t n_queue;
        uint64_t requested, synced;     /* generations */
        int error;
        bool stop;
        MetricFamily *sync_seconds;
};

static void *syncer(void *userdata) {
        LineLog *l = userdata;

        pthread_mutex_lock(&l->lock);
        for (;;) {
                int fds[SYNC_QUEUE_MAX];
                size_t n;
                uint64_t generation;

                while (l->n_queue == 0 && !l->stop)
                        pthread_cond_wait(&l->wake, &l->lock);
                if (l->n_queue == 0)
                        break;          /* stopping, nothing left */
                n = l->n_queue;
                memcpy(fds, l->queue, n * sizeof *fds);
                l->n_queue = 0;
                generation = l->requested;
                pthread_mutex_unlock(&l->lock);

                for (size_t i = 0; i < n; i++) {
                        uint64_t t0 = now_usec(CLOCK_MONOTONIC);
                        int k = fdatasync(fds[i]) < 0 ? negative_errno() : 0;

                        metric_observe(l->sync_seconds, (double) (now_usec(CLOCK_MONOTONIC) - t0) / USEC_PER_SEC);
                        safe_close(fds[i]);
                        if (k < 0) {
                                pthread_mutex_lock(&l->lock);
                                if (l->error == 0)
                                        l->error = k;
                                pthread_mutex_unlock(&l->lock);
                        }
                }

                pthread_mutex_lock(&l->lock);
                l->synced = generation;
                pthread_cond_broadcast(&l->synced_cond);
        }
        pthread_mutex_unlock(&l->lock);
        return NULL;
}

/* Hands a dup of the current fd to the syncer, unless one of the same file
 * is still waiting (its fdatasync, not started yet, covers this line too). */
static int sync_request(LineLog *l) {
        int k = 0;

        pthread_mutex_lock(&l->lock);
        l->requested++;
        if (l->n_queue > 0 && l->queue_ino[l->n_queue - 1] == l->ino)
                goto done;
        if (l->n_queue == SYNC_QUEUE_MAX) {
                /* Rotations faster than the disk: sync this one here. */
                pthread_mutex_unlock(&l->lock);
                return fdatasync(l->fd) < 0 ? negative_errno() : 0;
        }
        l->queue[l->n_queue] = fcntl(l->fd, F_DUPFD_CLOEXEC, 3);
        if (l->queue[l->n_queue] < 0) {
                k = negative_errno();
                goto done;
        }
        l->queue_ino[l->n_queue++] = l->ino;
        pthread_cond_signal(&l->wake);
done:
        pthread_mutex_unlock(&l->lock);
        return k;
}

/* Cuts whatever follows the last newline. */
static int repair_tail(LineLog *l) {
        char buf[4096];
        uint64_t end = l->size;

        while (end > 0) {
                size_t n = (size_t) MIN(end, (uint64_t) sizeof buf);
                ssize_t k = pread(l->fd, buf, n, (off_t) (end - n));

                if (k < 0)
                        return negative_errno();
                if ((size_t) k != n)
                        return -EIO;
                for (size_t i = n; i > 0; i--)
                        if (buf[i - 1] == '\n') {
                                end = end - n + i;
                                goto found;
                        }
                end -= n;
        }
found:
        if (end == l->size)
                return 0;
        if (ftruncate(l->fd, (off_t) end) < 0 || fdatasync(l->fd) < 0)
                return negative_errno();
        l->repaired = l->size - end;
        l->size = end;
        return 0;
}

static int file_open(LineLog *l) {
        struct stat st;

        l->fd = safe_close(l->fd);
        l->fd = open(l->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0640);
        if (l->fd < 0)
                return negative_errno();
        if (fstat(l->fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EISDIR;
        l->dev = st.st_dev;
        l->ino = st.st_ino;
        l->size = (uint64_t) st.st_size;
        return 0;
}

int line_log_open(LineLog **ret, const char *path, uint64_t max_bytes, unsigned keep) {
        _cleanup_(line_log_freep) LineLog *l = NULL;
        int k;

        if (isempty(path) || max_bytes < 2 * LINE_LOG_LINE_MAX || keep > 100)
                return -EINVAL;
        l = calloc(1, sizeof *l);
        if (!l)
                return -ENOMEM;
        l->fd = -EBADF;
        l->max_bytes = max_bytes;
        l->keep = keep;
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->wake, NULL);
        pthread_cond_init(&l->synced_cond, NULL);
        l->path = strdup(path);
        if (!l->path)
                return -ENOMEM;

        k = mkdir_parents(path, 0755);
        if (k < 0)
                return k;
        k = file_open(l);
        if (k < 0)
                return k;
        k = repair_tail(l);
        if (k < 0)
                return k;
        k = -pthread_create(&l->thread, NULL, syncer, l);
        if (k < 0)
                return k;
        l->thread_started = true;
        *ret = TAKE_PTR(l);
        return 0;
}

LineLog *line_log_free(LineLog *l) {
        if (!l)
                return NULL;
        if (l->thread_started) {
                pthread_mutex_lock(&l->lock);
                l->stop = true;
                pthread_cond_signal(&l->wake);
                pthread_mutex_unlock(&l->lock);
                pthread_join(l->thread, NULL);
        }
        for (size_t i = 0; i < l->n_queue; i++)
                safe_close(l->queue[i]);
        safe_close(l->fd);
        pthread_cond_destroy(&l->wake);
        pthread_cond_destroy(&l->synced_cond);
        pthread_mutex_destroy(&l->lock);
        free(l->path);
        free(l);
        return NULL;
}

static int rotated_name(const LineLog *l, unsigned i, char **ret) {
        return asprintf(ret, "%s.%u", l->path, i) < 0 ? -ENOMEM : 0;
}

static int rotate(LineLog *l) {
        int k;

        /* The old file's last lines still reach the disk, from the syncer. */
        k = sync_request(l);
        if (k < 0)
                return k;
        for (unsigned i = l->keep; i >= 1; i--) {
                _cleanup_free_ char *from = NULL, *to = NULL;

                if (rotated_name(l, i, &to) < 0)
                        return -ENOMEM;
                if (i > 1 && rotated_name(l, i - 1, &from) < 0)
                        return -ENOMEM;
                if (rename(from ?: l->path, to) < 0 && errno != ENOENT)
                        return negative_errno();
        }
        if (l->keep == 0 && unlink(l->path) < 0 && errno != ENOENT)
                return negative_errno();
        return file_open(l);
}

/* Someone moved or deleted the file: start a new one. */
static int reopen_if_moved(LineLog *l) {
        struct stat st;

        if (l->fd >= 0 && stat(l->path, &st) >= 0 && st.st_dev == l->dev && st.st_ino == l->ino)
                return 0;
        if (l->fd >= 0 && sync_request(l) < 0)
                log_debug("Could not hand the old %s to the syncer; its tail may not be on disk.", l->path);
        return file_open(l);
}

int line_log_append(LineLog *l, const char *line) {
        _cleanup_free_ char *buf = NULL;
        size_t n = strlen(line), done = 0;
        int k;

        if (n > LINE_LOG_LINE_MAX || memchr(line, '\n', n))
                return -EINVAL;
        k = reopen_if_moved(l);
        if (k < 0)
                return k;
        if (l->size > 0 && l->size + n + 1 > l->max_bytes) {
                k = rotate(l);
                if (k < 0)
                        return k;
        }

        buf = malloc(n + 1);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, line, n);
        buf[n++] = '\n';
        while (done < n) {
                ssize_t w = write(l->fd, buf + done, n - done);

                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        k = w < 0 ? negative_errno() : -EIO;
                        /* No half line behind us, if it can be helped. */
                        if (done > 0)
                                (void) ftruncate(l->fd, (off_t) l->size);
                        return k;
                }
                done += (size_t) w;
        }
        l->size += n;
        return sync_request(l);
}

int line_log_sync(LineLog *l) {
        uint64_t target;
        int k;

        pthread_mutex_lock(&l->lock);
        target = l->requested;
        while (l->synced < target)
                pthread_cond_wait(&l->synced_cond, &l->lock);
        k = l->error;
        l->error = 0;
        pthread_mutex_unlock(&l->lock);
        return k;
}

uint64_t line_log_repaired(const LineLog *l) {
        return l->repaired;
}

const char *line_log_path(const LineLog *l) {
        return l->path;
}

void line_log_set_sync_metric(LineLog *l, MetricFamily *histogram) {
        l->sync_seconds = histogram;
}

void line_log_lines_free(char **lines, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(lines[i]);
        free(lines);
}

int line_log_read_tail(const char *path, size_t n, uint64_t max_bytes, char ***ret_lines, size_t *ret_n) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        char **lines = NULL;
        size_t n_lines = 0, size, start = 0;
        uint64_t from;
        struct stat st;
        ssize_t k;

        *ret_lines = NULL;
        *ret_n = 0;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EISDIR;
        from = (uint64_t) st.st_size > max_bytes ? (uint64_t) st.st_size - max_bytes : 0;
        size = (size_t) ((uint64_t) st.st_size - from);
        if (n == 0 || size == 0)
                return 0;
        buf = malloc(size);
        if (!buf)
                return -ENOMEM;
        k = pread(fd, buf, size, (off_t) from);
        if (k < 0)
                return negative_errno();
        size = (size_t) k;
        if (from > 0) {
                /* Started inside a line: skip to the next one. */
                char *nl = memchr(buf, '\n', size);
                start = nl ? (size_t) (nl - buf) + 1 : size;
        }

        lines = calloc(n, sizeof *lines);
        if (!lines)
                return -ENOMEM;
        for (size_t i = start; i < size;) {
                char *nl = memchr(buf + i, '\n', size - i);
                char *copy;

                if (!nl)
                        break;          /* a torn tail is no line */
                copy = strndup(buf + i, (size_t) (nl - buf) - i);
                if (!copy) {
                        line_log_lines_free(lines, n_lines < n ? n_lines : n);
                        return -ENOMEM;
                }
                if (n_lines == n) {
                        free(lines[0]);
                        memmove(lines, lines + 1, (n - 1) * sizeof *lines);
                        lines[n - 1] = copy;
                } else
                        lines[n_lines++] = copy;
                i = (size_t) (nl - buf) + 1;
        }
        *ret_lines = lines;
        *ret_n = n_lines;
        return 0;
}
