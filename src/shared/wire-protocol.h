/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Frame types between an fl-serverd and the fl-schedulerd (wire.h has the
 * framing). Every payload below is one JSON object; unknown keys are
 * ignored, missing or mistyped required keys close the connection.
 *
 * server -> scheduler
 *   WIRE_REGISTER      {"node_id":s, "role":"SERVER", "address":s,
 *                       "fl_server_port":u, "pid":u, "server_num":u}
 *   WIRE_HEARTBEAT     {}   every conf_heartbeat_usec(); the scheduler answers
 *                           WIRE_HEARTBEAT {} so both sides see silence.
 *   WIRE_FINISH_ACK    {"pid":u}   sent right before the server exits 0.
 *
 * scheduler -> server
 *   WIRE_REGISTER_REPLY {"ok":true, "rank":u, "node_timeout":u}
 *                    or {"ok":false, "error":s, "retry":b}  (then the scheduler
 *                       closes; with retry the server tries again with
 *                       back-off, without it the server exits FL_EXIT_REFUSED)
 *   WIRE_MEMBERS       {"cluster_state":s, "server_num":u,
 *                       "members":[{"rank":u, "node_id":s, "address":s,
 *                                   "fl_server_port":u, "alive":b}, ...]}
 *                      after every change of membership or cluster state.
 *   WIRE_FINISH        {}   stop serving, answer WIRE_FINISH_ACK, exit 0.
 *
 * either way
 *   WIRE_ERROR         {"error":s}   what was wrong before a close.
 */

/* The exit status of a server the scheduler refused for good (its node id is
 * alive elsewhere, the cluster is full): the units do not restart it. */
#define FL_EXIT_REFUSED 78

enum {
        WIRE_REGISTER = 1,
        WIRE_REGISTER_REPLY = 2,
        WIRE_HEARTBEAT = 3,
        WIRE_MEMBERS = 4,
        WIRE_FINISH = 5,
        WIRE_FINISH_ACK = 6,
        WIRE_ERROR = 7,
};
