/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "client-pool.h"
#include "util.h"

/* Worker threads must not inherit glibc's 8 MiB default for nothing, nor
 * less than LeNet-5's forward pass needs (its buffers are on the heap). */
#define WORKER_STACK_SIZE ((size_t) 1024 * 1024)

typedef struct Worker {
        Pool *pool;
        size_t index;
        pthread_t thread;
        bool started;
} Worker;

struct Pool {
        pthread_mutex_t lock;
        pthread_cond_t work, idle;
        Worker *workers;
        size_t n_workers;

        /* The current job, under lock. */
        uint64_t generation;
        pool_task_t task;
        void *userdata;
        size_t n_tasks, next, done;
        size_t failed_task;             /* SIZE_MAX: none */
        int failure;
        bool quit;
};

static void *worker_main(void *arg) {
        Worker *w = arg;
        Pool *p = w->pool;
        uint64_t seen = 0;

        pthread_mutex_lock(&p->lock);
        for (;;) {
                while (!p->quit && (p->generation == seen || p->next >= p->n_tasks))
                        pthread_cond_wait(&p->work, &p->lock);
                if (p->quit)
                        break;

                while (p->next < p->n_tasks) {
                        size_t t = p->next++;
                        int r;

                        if (p->failure < 0) {
                                /* Skipped after a failure, but counted. */
                                p->done++;
                                continue;
                        }
                        pthread_mutex_unlock(&p->lock);
                        r = p->task(p->userdata, t, w->index);
                        pthread_mutex_lock(&p->lock);
                        if (r < 0 && (p->failure >= 0 || t < p->failed_task)) {
                                p->failure = r;
                                p->failed_task = t;
                        }
                        p->done++;
                }
                seen = p->generation;
                if (p->done >= p->n_tasks)
                        pthread_cond_broadcast(&p->idle);
        }
        pthread_mutex_unlock(&p->lock);
        return NULL;
}

int pool_new(Pool **ret, size_t n_workers) {
        _cleanup_(pool_freep) Pool *p = NULL;
        pthread_attr_t attr;
        pthread_condattr_t ca;
        int r = 0;

        if (n_workers == 0)
                return -EINVAL;

        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;

        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->work, NULL);
        /* Timed waits for the ticks, on the clock that does not jump. */
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->idle, &ca);
        pthread_condattr_destroy(&ca);
        p->workers = calloc(n_workers, sizeof(Worker));
        if (!p->workers)
                return -ENOMEM;
        p->n_workers = n_workers;

        if (pthread_attr_init(&attr) != 0)
                return -ENOMEM;
        (void) pthread_attr_setstacksize(&attr, WORKER_STACK_SIZE);
        for (size_t i = 0; i < n_workers; i++) {
                Worker *w = p->workers + i;

                *w = (Worker) { .pool = p, .index = i };
                r = -pthread_create(&w->thread, &attr, worker_main, w);
                if (r < 0)
                        break;
                w->started = true;
        }
        pthread_attr_destroy(&attr);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(p);
        return 0;
}

Pool *pool_free(Pool *p) {
        if (!p)
                return NULL;

        pthread_mutex_lock(&p->lock);
        p->quit = true;
        pthread_cond_broadcast(&p->work);
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < p->n_workers; i++)
                if (p->workers[i].started)
                        (void) pthread_join(p->workers[i].thread, NULL);

        pthread_cond_destroy(&p->idle);
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->lock);
        free(p->workers);
        free(p);
        return NULL;
}

size_t pool_workers(const Pool *p) {
        return p->n_workers;
}

int pool_run(Pool *p, size_t n_tasks, pool_task_t task, void *userdata) {
        return pool_run_ticking(p, n_tasks, task, userdata, NULL, NULL, 0);
}

int pool_run_ticking(Pool *p, size_t n_tasks, pool_task_t task, void *userdata, pool_tick_t tick,
                     void *tick_userdata, uint64_t interval_usec) {
        uint64_t next_tick = 0;        /* the first tick at once */
        int r;

        if (!task || (tick && interval_usec == 0))
                return -EINVAL;
        if (n_tasks == 0)
                return 0;

        pthread_mutex_lock(&p->lock);
        p->task = task;
        p->userdata = userdata;
        p->n_tasks = n_tasks;
        p->next = p->done = 0;
        p->failure = 0;
        p->failed_task = SIZE_MAX;
        p->generation++;
        pthread_cond_broadcast(&p->work);
        while (p->done < p->n_tasks) {
                uint64_t now;
                struct timespec ts;

                if (!tick) {
                        pthread_cond_wait(&p->idle, &p->lock);
                        continue;
                }
                now = now_usec(CLOCK_MONOTONIC);
                if (now >= next_tick) {
                        size_t done = p->done;

                        pthread_mutex_unlock(&p->lock);
                        tick(tick_userdata, done, n_tasks);
                        pthread_mutex_lock(&p->lock);
                        next_tick = now + interval_usec;
                        continue;
                }
                ts = (struct timespec) { .tv_sec = (time_t) (next_tick / USEC_PER_SEC),
                                         .tv_nsec = (long) (next_tick % USEC_PER_SEC) * 1000 };
                (void) pthread_cond_timedwait(&p->idle, &p->lock, &ts);
        }
        r = p->failure;
        p->n_tasks = p->next = p->done = 0;
        pthread_mutex_unlock(&p->lock);
        return r;
}
