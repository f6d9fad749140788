/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "refusals.h"
#include "tls-test-util.h"
#include "util.h"

#define SEC USEC_PER_SEC

static void test_once_per_address_and_reason(void **state) {
        _cleanup_(refusals_freep) Refusals *r = NULL;
        uint64_t t = 1000 * SEC;

        assert_int_equal(refusals_new(&r, "the scheduler port"), 0);
        assert_true(refusals_log(r, "10.0.0.1", "its certificate has expired", t));
        /* The same again: counted, not logged, until the interval has passed. */
        for (int i = 0; i < 100; i++)
                assert_false(refusals_log(r, "10.0.0.1", "its certificate has expired", t + (uint64_t) i * SEC / 10));
        /* Another reason from the same address is news; so is another address. */
        assert_true(refusals_log(r, "10.0.0.1", "it sent a clear-text frame", t + SEC));
        assert_true(refusals_log(r, "10.0.0.2", "its certificate has expired", t + SEC));
        assert_true(refusals_log(r, "10.0.0.1", "its certificate has expired", t + REFUSALS_INTERVAL_USEC));
        assert_false(refusals_log(r, "10.0.0.1", "its certificate has expired", t + REFUSALS_INTERVAL_USEC + 1));
        assert_int_equal(refusals_count(r), 105);
}

static void test_burst_over_addresses(void **state) {
        _cleanup_(refusals_freep) Refusals *r = NULL;
        uint64_t t = 5000 * SEC;
        unsigned logged = 0;
        char host[32];

        assert_int_equal(refusals_new(&r, "the peer port"), 0);
        for (unsigned i = 0; i < 1000; i++) {
                snprintf(host, sizeof host, "10.1.%u.%u", i / 250, i % 250);
                logged += refusals_log(r, host, "no certificate", t + i * 1000);
        }
        assert_int_equal(logged, REFUSALS_BURST);
        /* A new window takes lines again. */
        assert_true(refusals_log(r, "10.9.9.9", "no certificate", t + REFUSALS_INTERVAL_USEC + SEC));
}

static void log_refusals(void *userdata) {
        _cleanup_(refusals_freep) Refusals *r = NULL;

        assert_int_equal(refusals_new(&r, "the scheduler port"), 0);
        assert_true(refusals_log(r, "127.0.0.3", "its certificate is revoked by the CRL", 10 * SEC));
        assert_false(refusals_log(r, "127.0.0.3", "its certificate is revoked by the CRL", 11 * SEC));
        assert_false(refusals_log(r, "127.0.0.3", "its certificate is revoked by the CRL", 12 * SEC));
        assert_true(refusals_log(r, "127.0.0.3", "its certificate is revoked by the CRL", 10 * SEC + REFUSALS_INTERVAL_USEC));
}

static void test_log_line(void **state) {
        _cleanup_free_ char *text = test_capture_stderr(log_refusals, NULL);

        assert_non_null(strstr(text, "Refused a connection to the scheduler port from 127.0.0.3: its certificate is "
                                     "revoked by the CRL\n"));
        assert_non_null(strstr(text, "(2 more from it since the last such line)"));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_once_per_address_and_reason),
                cmocka_unit_test(test_burst_over_addresses),
                cmocka_unit_test(test_log_line),
        };

        log_set_max_level(LOG_INFO);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
