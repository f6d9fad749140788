/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "scheduler-registry.h"

#define SEC USEC_PER_SEC

static Node *admit(Registry *r, const char *id, uint64_t now, int expect, bool *returning) {
        Node *n = NULL;
        bool ret = false;

        assert_int_equal(registry_admit(r, id, "127.0.0.1", 6668, 100, now, &n, &ret), expect);
        if (returning)
                *returning = ret;
        return n;
}

static void test_lowest_free_rank(void **state) {
        Registry r;
        bool returning;

        registry_init(&r, 3);
        assert_int_equal(admit(&r, "a", 0, 0, &returning)->rank, 0);
        assert_false(returning);
        assert_int_equal(admit(&r, "b", 0, 0, NULL)->rank, 1);
        assert_int_equal(registry_state(&r), CLUSTER_STARTING);
        assert_int_equal(admit(&r, "c", 0, 0, NULL)->rank, 2);
        assert_int_equal(registry_state(&r), CLUSTER_READY);

        /* Full: a fourth server is refused. */
        admit(&r, "d", 0, -EUSERS, NULL);

        /* A removed rank is the next one handed out. */
        assert_int_equal(registry_remove(&r, "b"), 0);
        assert_int_equal(admit(&r, "d", 0, 0, NULL)->rank, 1);
        registry_done(&r);
}

static void test_live_duplicate_refused_returning_keeps_rank(void **state) {
        Registry r;
        bool returning;
        Node *n;

        registry_init(&r, 2);
        admit(&r, "a", 0, 0, NULL);
        n = admit(&r, "b", 0, 0, NULL);
        assert_int_equal(n->rank, 1);

        /* Still connected: a second server with the same id is refused. */
        admit(&r, "b", 0, -EADDRINUSE, NULL);

        /* Its connection dropped (restart): it comes back with its rank. */
        n->connected = false;
        n = admit(&r, "b", 5 * SEC, 0, &returning);
        assert_true(returning);
        assert_int_equal(n->rank, 1);
        assert_int_equal(r.n_nodes, 2);
        registry_done(&r);
}

static void test_expiry_and_return(void **state) {
        Registry r;
        Node *changed[4];
        Node *a, *b;

        registry_init(&r, 2);
        a = admit(&r, "a", 0, 0, NULL);
        b = admit(&r, "b", 0, 0, NULL);
        assert_int_equal(registry_state(&r), CLUSTER_READY);

        a->last_seen_usec = 10 * SEC;
        assert_int_equal(registry_expire(&r, 2 * SEC, 3 * SEC, changed), 0);
        assert_int_equal(registry_expire(&r, 3 * SEC, 3 * SEC, changed), 1);
        assert_ptr_equal(changed[0], b);
        assert_false(b->alive);
        assert_int_equal(registry_state(&r), NODE_TIMEOUT);
        assert_int_equal(registry_alive_count(&r), 1);

        /* Dead nodes are not expired twice. */
        assert_int_equal(registry_expire(&r, 14 * SEC, 3 * SEC, changed), 1);
        assert_ptr_equal(changed[0], a);
        assert_int_equal(registry_expire(&r, 20 * SEC, 3 * SEC, changed), 0);

        b->connected = false;
        b = admit(&r, "b", 21 * SEC, 0, NULL);
        assert_int_equal(b->rank, 1);
        a->connected = false;
        admit(&r, "a", 21 * SEC, 0, NULL);
        assert_int_equal(registry_state(&r), CLUSTER_READY);
        registry_done(&r);
}

static void test_invalid_ids(void **state) {
        Registry r;

        registry_init(&r, 4);
        admit(&r, "", 0, -EINVAL, NULL);
        admit(&r, "has space", 0, -EINVAL, NULL);
        admit(&r, "semi;colon", 0, -EINVAL, NULL);
        assert_int_equal(r.n_nodes, 0);
        registry_done(&r);
}

static void test_restore_and_sorted(void **state) {
        Registry r;
        Node *const *sorted;

        registry_init(&r, 3);
        assert_int_equal(registry_restore(&r, "z", 2, "10.0.0.3", 1, 1, 0, NULL), 0);
        assert_int_equal(registry_restore(&r, "y", 0, "10.0.0.1", 1, 1, 0, NULL), 0);
        assert_int_equal(registry_restore(&r, "x", 0, "10.0.0.2", 1, 1, 0, NULL), -EEXIST);
        assert_int_equal(registry_restore(&r, "y", 1, "10.0.0.2", 1, 1, 0, NULL), -EEXIST);
        /* The free rank between them goes to a newcomer. */
        assert_int_equal(admit(&r, "new", 0, 0, NULL)->rank, 1);

        sorted = registry_sorted(&r);
        assert_string_equal(sorted[0]->node_id, "y");
        assert_string_equal(sorted[1]->node_id, "new");
        assert_string_equal(sorted[2]->node_id, "z");
        registry_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lowest_free_rank),
                cmocka_unit_test(test_live_duplicate_refused_returning_keeps_rank),
                cmocka_unit_test(test_expiry_and_return),
                cmocka_unit_test(test_invalid_ids),
                cmocka_unit_test(test_restore_and_sorted),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
