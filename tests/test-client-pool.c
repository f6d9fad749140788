/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <string.h>

#include "client-pool.h"

#define N_TASKS 1000

typedef struct Counts {
        atomic_uint ran[N_TASKS];
        atomic_uint max_worker;
        size_t fail_from;               /* tasks >= this fail; SIZE_MAX: none */
} Counts;

static int count_task(void *userdata, size_t task, size_t worker) {
        Counts *c = userdata;
        unsigned w = (unsigned) worker, seen = atomic_load(&c->max_worker);

        while (w > seen && !atomic_compare_exchange_weak(&c->max_worker, &seen, w))
                ;
        atomic_fetch_add(&c->ran[task], 1);
        return task >= c->fail_from ? -(int) (100 + task % 7) : 0;
}

static void test_every_task_once(void **state) {
        _cleanup_(pool_freep) Pool *p = NULL;
        static Counts c;

        assert_int_equal(pool_new(&p, 4), 0);
        assert_int_equal(pool_workers(p), 4);
        /* Several jobs in a row on the same workers. */
        for (int round = 0; round < 5; round++) {
                memset(&c, 0, sizeof c);
                c.fail_from = SIZE_MAX;
                assert_int_equal(pool_run(p, N_TASKS, count_task, &c), 0);
                for (size_t i = 0; i < N_TASKS; i++)
                        assert_int_equal(atomic_load(&c.ran[i]), 1);
                assert_true(atomic_load(&c.max_worker) < 4);
        }
        assert_int_equal(pool_run(p, 0, count_task, &c), 0);
        assert_int_equal(pool_run(p, 1, NULL, &c), -EINVAL);
}

static void test_failure(void **state) {
        _cleanup_(pool_freep) Pool *p = NULL;
        static Counts c;
        size_t ran = 0;

        assert_int_equal(pool_new(&p, 3), 0);
        memset(&c, 0, sizeof c);
        c.fail_from = 10;
        /* The failure of the lowest task index that ran and failed. */
        assert_int_equal(pool_run(p, N_TASKS, count_task, &c), -(100 + 10 % 7));
        for (size_t i = 0; i < N_TASKS; i++) {
                assert_true(atomic_load(&c.ran[i]) <= 1);
                ran += atomic_load(&c.ran[i]);
        }
        for (size_t i = 0; i <= 10; i++)
                assert_int_equal(atomic_load(&c.ran[i]), 1);
        /* No new task starts after a failure: only those already running. */
        assert_true(ran <= 10 + 1 + 3);

        /* The pool is usable again afterwards. */
        memset(&c, 0, sizeof c);
        c.fail_from = SIZE_MAX;
        assert_int_equal(pool_run(p, 50, count_task, &c), 0);
}

static void test_one_worker(void **state) {
        _cleanup_(pool_freep) Pool *p = NULL;
        static Counts c;

        assert_int_equal(pool_new(&p, 0), -EINVAL);
        assert_int_equal(pool_new(&p, 1), 0);
        memset(&c, 0, sizeof c);
        c.fail_from = SIZE_MAX;
        assert_int_equal(pool_run(p, 100, count_task, &c), 0);
        assert_int_equal(atomic_load(&c.max_worker), 0);
}

typedef struct Ticks {
        size_t n, first, last;
        bool decreasing, over;
} Ticks;

static int slow_task(void *userdata, size_t task, size_t worker) {
        usleep(30 * 1000);
        return 0;
}

static void on_tick(void *userdata, size_t done, size_t n_tasks) {
        Ticks *t = userdata;

        if (t->n == 0)
                t->first = done;
        else if (done < t->last)
                t->decreasing = true;
        if (done >= n_tasks)
                t->over = true;         /* ticks are for runs still going */
        t->last = done;
        t->n++;
}

static void test_ticks(void **state) {
        _cleanup_(pool_freep) Pool *p = NULL;
        Ticks t = {};

        assert_int_equal(pool_new(&p, 1), 0);
        assert_int_equal(pool_run_ticking(p, 10, slow_task, NULL, on_tick, &t, 20 * 1000), 0);
        assert_true(t.n >= 1);
        assert_int_equal(t.first, 0);  /* the line shows at once */
        assert_false(t.decreasing);
        assert_false(t.over);
        assert_int_equal(pool_run_ticking(p, 1, slow_task, NULL, on_tick, &t, 0), -EINVAL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_every_task_once),
                cmocka_unit_test(test_failure),
                cmocka_unit_test(test_one_worker),
                cmocka_unit_test(test_ticks),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
