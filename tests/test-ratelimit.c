/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "ratelimit.h"

static void test_burst_then_quiet(void **state) {
        RateLimit rl = RATELIMIT_INIT(10 * USEC_PER_SEC, 3);
        uint64_t t = 1000 * USEC_PER_SEC, suppressed = 99;
        unsigned let_through = 0;

        for (unsigned i = 0; i < 100; i++)
                if (ratelimit_below(&rl, t + i * USEC_PER_MSEC, &suppressed)) {
                        let_through++;
                        assert_int_equal(suppressed, 0);
                }
        assert_int_equal(let_through, 3);

        /* The next interval: the first event hears of the 97 held back. */
        assert_true(ratelimit_below(&rl, t + 10 * USEC_PER_SEC, &suppressed));
        assert_int_equal(suppressed, 97);
        assert_true(ratelimit_below(&rl, t + 10 * USEC_PER_SEC + 1, &suppressed));
        assert_int_equal(suppressed, 0);
}

static void test_clock_going_back(void **state) {
        RateLimit rl = RATELIMIT_INIT(USEC_PER_SEC, 1);
        uint64_t suppressed;

        assert_true(ratelimit_below(&rl, 5 * USEC_PER_SEC, &suppressed));
        assert_false(ratelimit_below(&rl, 5 * USEC_PER_SEC, &suppressed));
        /* A new interval rather than silence until the clock catches up. */
        assert_true(ratelimit_below(&rl, 2 * USEC_PER_SEC, &suppressed));
        assert_int_equal(suppressed, 1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_burst_then_quiet),
                cmocka_unit_test(test_clock_going_back),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
