/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "macro.h"

/* A fixed pool of worker threads for one "parallel for" at a time: the
 * driver hands it n tasks and waits until all are done. Tasks are taken in
 * index order; a task's result does not depend on which worker ran it, so
 * the pool's size never changes what is computed. Each worker has an index
 * (< n_workers) for its own resources (its CURL handle). */

typedef struct Pool Pool;

/* Returns 0 or a negative errno; the first failure (by task index) is what
 * pool_run() returns, and no new task starts after a failure. */
typedef int (*pool_task_t)(void *userdata, size_t task, size_t worker);

int pool_new(Pool **ret, size_t n_workers);
Pool *pool_free(Pool *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(Pool *, pool_free);

size_t pool_workers(const Pool *p);
int pool_run(Pool *p, size_t n_tasks, pool_task_t task, void *userdata);

/* tick is called on the driver's thread while the run goes on: at its start
 * and then every interval until the last task is done (for a progress line). */
typedef void (*pool_tick_t)(void *userdata, size_t done, size_t n_tasks);
int pool_run_ticking(Pool *p, size_t n_tasks, pool_task_t task, void *userdata, pool_tick_t tick,
                     void *tick_userdata, uint64_t interval_usec);
