/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* MindSpore's cluster states, by their MindSpore names. */
typedef enum ClusterState {
        CLUSTER_STARTING,
        CLUSTER_READY,
        CLUSTER_EXIT,
        NODE_TIMEOUT,
        CLUSTER_SCALE_OUT,
        CLUSTER_SCALE_IN,
        CLUSTER_NEW_INSTANCE,
        CLUSTER_ENABLE_FLS,
        CLUSTER_DISABLE_FLS,
        CLUSTER_SCHEDULER_RECOVERY,
        _CLUSTER_STATE_MAX,
        _CLUSTER_STATE_INVALID = -1,
} ClusterState;

const char *cluster_state_to_string(ClusterState s);
ClusterState cluster_state_from_string(const char *s);
