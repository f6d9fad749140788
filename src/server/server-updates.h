/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "server-pending.h"

/* The updates this server took in the current iteration, and their log.
 *
 * An update is made durable (a row of the server database's update log,
 * one transaction and one fsync for all the updates that arrived in the
 * same turn of the event loop: group commit) before the scheduler is asked
 * to count it, and added to the running sum once the scheduler says this
 * server holds it. So an update a device was told SUCCEED for is in the log,
 * and the scheduler counts exactly the updates the servers' logs hold:
 *
 * - After every registration (a restart, or the scheduler's) the server
 *   names each logged update of the iteration to the scheduler again
 *   (WIRE_UPDATE, then WIRE_REPLAYED), and rebuilds its running sum from the
 *   log with those the scheduler says it holds. Meanwhile devices get the
 *   safemode answer.
 * - A device that sends the same update again (its answer was lost) is
 *   answered SUCCEED from the table below, or by the scheduler when it
 *   went to another server; a different one is a RepeatRequest.
 * - Rows of an iteration go once the scheduler announces another one: only
 *   then is the model it produced committed.
 *
 * With durable_updates=false nothing is written: the updates live in the
 * running sum only and die with the process (for measuring what
 * durability costs, or for a cluster that would rather lose them). */

typedef struct UpdateLog UpdateLog;
typedef struct Manager Manager;

int update_log_new(UpdateLog **ret, Manager *m, bool durable);
bool update_log_durable(const UpdateLog *u);
/* Opens the log beside the server database store_path (moving a damaged one
 * aside) and starts its writer; a no-op without durability. Logs failures. */
int update_log_open(UpdateLog *u, const char *store_path);
UpdateLog *update_log_free(UpdateLog *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(UpdateLog *, update_log_free);

/* How a device's update stands here: 0 not held (ask the scheduler), 1 held
 * (the same update: answer SUCCEED), -EEXIST a different update of that
 * fl_id is held (RepeatRequest). */
int update_log_lookup(UpdateLog *u, uint32_t iteration, const char *fl_id, uint64_t digest);

/* Takes p (checked, with its digest and a parked HTTP request): logged with
 * the next group commit, then sent to the scheduler. */
void update_log_submit(UpdateLog *u, Pending *p);
/* p goes before its commit (its device was answered): drop it from the batch. */
void update_log_forget(UpdateLog *u, Pending *p);

/* The scheduler's verdict on p. With SUCCEED and keep, p's update is added
 * to the sum unless it is in already; without keep, and for a refusal, its
 * row goes. Returns the retcode to answer the device (SystemError when the
 * sum could not take it). */
int32_t update_log_verdict(UpdateLog *u, Pending *p, const SchedulerReply *reply);

/* The scheduler announced an iteration: the table and rows of others go
 * (and of this one, when it was abandoned). */
void update_log_on_iteration(UpdateLog *u, uint32_t iteration, uint32_t abandoned);

/* The link registered (again): replay once the iteration is known. */
void update_log_link_registered(UpdateLog *u);
/* Called with every WIRE_ITERATION: starts a replay that is due. */
void update_log_maybe_replay(UpdateLog *u);
/* Whether a replay runs (devices then get the safemode answer). */
bool update_log_replaying(const UpdateLog *u);
/* A WIRE_UPDATE_REPLY: 1 when it was one for a replayed update (consumed). */
int update_log_on_reply(UpdateLog *u, const SchedulerReply *reply);
