/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The scheduler's D-Bus API, in one place for the daemon, flctl and the
 * policy file (units/org.flcluster.Scheduler1.conf).
 *
 * Object FL_BUS_PATH, interface FL_BUS_INTERFACE:
 *
 *   ListNodes() -> a(sussqbu)
 *       node_id, rank (FL_BUS_RANK_NONE when unassigned), role ("SERVER"),
 *       address, fl_server_port, alive, pid
 *   GetState() -> s                 cluster state, e.g. "CLUSTER_READY"
 *   Finish() -> a(susu)
 *       the nodes stopped, in the order they stopped: role, rank, node_id,
 *       pid; the scheduler itself last (role "SCHEDULER"). The scheduler
 *       exits once the reply is sent.
 *
 *   ScaleOut(u server_num) -> s message    add server_num servers (REST /scaleout)
 *   ScaleIn(as node_ids) -> s message      remove these servers (REST /scalein)
 *   NewInstance(s hyper_parameters_json) -> b result, s message
 *       new hyper-parameters (REST /newInstance's body) from the next
 *       iteration boundary on; the iteration count restarts at 1
 *   QueryInstance() -> s     the job in force as JSON (REST /queryInstance)
 *   EnableFLS() -> s message, DisableFLS() -> s message
 *
 * The methods that change something answer the message REST's "message"
 * carries, so that a client prints the scheduler's words, not its own.
 *
 *   property ClusterState s (emits PropertiesChanged)
 *   property FlEnabled b    (emits PropertiesChanged)
 *   property ServerNum u    (emits PropertiesChanged)
 *   property Iteration u    the current training iteration, 0 before the first
 *   signal NodeJoined(s node_id, u rank)
 *   signal NodeLeft(s node_id, u rank, s reason)
 *
 * Refusals are named errors under FL_BUS_ERROR_PREFIX whose messages are
 * the REST API's error_message texts: NotReady (retry later), Invalid (the
 * arguments), Failed (the scheduler could not do it, e.g. store it). */

#define FL_BUS_NAME "org.flcluster.Scheduler1"
#define FL_BUS_PATH "/org/flcluster/Scheduler1"
#define FL_BUS_INTERFACE "org.flcluster.Scheduler1"
#define FL_BUS_ERROR_PREFIX "org.flcluster.Error."
#define FL_BUS_ERROR_NOT_READY FL_BUS_ERROR_PREFIX "NotReady"
#define FL_BUS_ERROR_INVALID FL_BUS_ERROR_PREFIX "Invalid"
#define FL_BUS_ERROR_BUSY FL_BUS_ERROR_PREFIX "Busy"
#define FL_BUS_ERROR_FAILED FL_BUS_ERROR_PREFIX "Failed"
#define FL_BUS_RANK_NONE UINT32_MAX
