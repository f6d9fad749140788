/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "cluster-state.h"
#include "macro.h"

static const char *const table[_CLUSTER_STATE_MAX] = {
        [CLUSTER_STARTING] = "CLUSTER_STARTING",
        [CLUSTER_READY] = "CLUSTER_READY",
        [CLUSTER_EXIT] = "CLUSTER_EXIT",
        [NODE_TIMEOUT] = "NODE_TIMEOUT",
        [CLUSTER_SCALE_OUT] = "CLUSTER_SCALE_OUT",
        [CLUSTER_SCALE_IN] = "CLUSTER_SCALE_IN",
        [CLUSTER_NEW_INSTANCE] = "CLUSTER_NEW_INSTANCE",
        [CLUSTER_ENABLE_FLS] = "CLUSTER_ENABLE_FLS",
        [CLUSTER_DISABLE_FLS] = "CLUSTER_DISABLE_FLS",
        [CLUSTER_SCHEDULER_RECOVERY] = "CLUSTER_SCHEDULER_RECOVERY",
};

const char *cluster_state_to_string(ClusterState s) {
        if (s < 0 || s >= _CLUSTER_STATE_MAX)
                return NULL;
        return table[s];
}

ClusterState cluster_state_from_string(const char *s) {
        if (!s)
                return _CLUSTER_STATE_INVALID;
        for (int i = 0; i < _CLUSTER_STATE_MAX; i++)
                if (streq(table[i], s))
                        return (ClusterState) i;
        return _CLUSTER_STATE_INVALID;
}
