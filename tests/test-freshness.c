/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "server-freshness.h"

#define NOW 1700000000000ULL

static void fresh(uint32_t window, const char *ts) {
        char reason[256] = "";

        assert_int_equal(request_freshness_check(window, ts, NOW, reason, sizeof reason), 0);
        assert_string_equal(reason, "");
}

static void stale(uint32_t window, const char *ts, const char *needle) {
        char reason[256] = "";

        assert_int_equal(request_freshness_check(window, ts, NOW, reason, sizeof reason), -ESTALE);
        if (!strstr(reason, needle))
                fail_msg("'%s' refused with '%s', expected it to mention '%s'", ts ?: "(null)", reason, needle);
}

static void test_off(void **state) {
        /* 0 is off: anything goes, as before the option. */
        fresh(0, NULL);
        fresh(0, "");
        fresh(0, "garbage");
        fresh(0, "1");
}

static void test_window(void **state) {
        fresh(60000, "1700000000000");
        fresh(60000, "1699999940000");          /* exactly the window behind */
        fresh(60000, "1700000060000");          /* and ahead */
        stale(60000, "1699999939999", "60001 ms behind");
        stale(60000, "1700000060001", "60001 ms ahead");
        stale(60000, "0", "behind");
        stale(60000, "18446744073709551615", "ahead");
}

static void test_malformed(void **state) {
        stale(1000, NULL, "no timestamp");
        stale(1000, "", "no timestamp");
        stale(1000, "abc", "not a number");
        stale(1000, "-1700000000000", "not a number");
        stale(1000, "+1700000000000", "not a number");
        stale(1000, " 1700000000000", "not a number");
        stale(1000, "1700000000000.5", "not a number");
        stale(1000, "1700000000000ms", "not a number");
        stale(1000, "18446744073709551616", "not a number");    /* past uint64 */
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_off),
                cmocka_unit_test(test_window),
                cmocka_unit_test(test_malformed),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
