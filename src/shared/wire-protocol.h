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
 *
 * ---- Training (one iteration: architecture.md, "One iteration") ----
 *
 * The scheduler is the one place that counts: it admits fl_ids, counts
 * updates, runs the time windows and decides when an iteration ends. Every
 * request a server makes carries a "req" number of its choosing that the
 * reply repeats; replies on one link come in request order. "state" in a
 * reply is "ok", or "safemode" (the cluster is not ready: answer devices
 * `The cluster is in safemode.`), or "disabled" (finished or disabled:
 * `The server's training job is disabled or finished.`). Times are Unix
 * milliseconds. WIRE_REGISTER also carries "peer_port":u, the TCP port the
 * server takes all-reduce connections from its peers on, and WIRE_MEMBERS
 * repeats it per member.
 *
 * server -> scheduler
 *   WIRE_ADMIT         {"req":u, "fl_id":s, "iteration":u, "data_size":u}
 *                      a device's startFLJob (already validated by the server).
 *   WIRE_UPDATE        {"req":u, "fl_id":s, "iteration":u, "digest":s}
 *                      a device's updateModel, validated against the model
 *                      and already durable in the server's update log;
 *                      digest is aggregate_digest() of its tensors (16 hex
 *                      digits). The server adds it to its running sum only
 *                      once the scheduler says to keep it.
 *   WIRE_REPLAYED      {"iteration":u}
 *                      sent once after each registration, after a
 *                      WIRE_UPDATE for every update of "iteration" in the
 *                      server's log: it holds those and no others. Until it
 *                      has said so it is in no aggregation ring.
 *   WIRE_AGGREGATE_DONE {"iteration":u, "checksum":s, "data_size":u64,
 *                        "updates":u, "state_checksum":s}
 *                      the server holds (and has checkpointed) the new model
 *                      of "iteration"; checksum is fl_model_checksum() in hex,
 *                      state_checksum that of the server optimizer's state
 *                      after it ("" when it keeps none; absent means "").
 *
 * scheduler -> server
 *   WIRE_ADMIT_REPLY   {"req":u, "state":s, "retcode":u, "reason":s,
 *                       "iteration":u, "next_req_time":u64}
 *                      retcode is the device protocol's: SUCCEED (admitted,
 *                      also for a repeated startFLJob of an admitted fl_id,
 *                      which is not counted twice), OutOfTime (threshold
 *                      reached, window closed, wrong iteration).
 *   WIRE_UPDATE_REPLY  {"req":u, "state":s, "retcode":u, "reason":s,
 *                       "iteration":u, "next_req_time":u64, "data_size":u,
 *                       "keep":b}
 *                      SUCCEED with keep (counted for this server: sum it,
 *                      once; data_size is the device's from its startFLJob),
 *                      SUCCEED without keep (the same update is counted for
 *                      another server: answer the device, drop it here),
 *                      NotSelected (not admitted in this iteration),
 *                      RepeatRequest (a different update of the device is
 *                      counted), OutOfTime (wrong iteration, window closed).
 *                      A WIRE_UPDATE of an update already counted (same
 *                      fl_id and digest) is answered SUCCEED again and not
 *                      counted twice; asked by another server while the
 *                      holder is disconnected and updates are collected,
 *                      it moves to the asking server (scheduler-iteration.h).
 *   WIRE_ITERATION     {"iteration":u, "phase":s, "abandoned":u,
 *                       "next_req_time":u64, "job":{fl_name, fl_iteration_num,
 *                       start_fl_job_threshold, update_model_ratio,
 *                       client_epoch_num, client_batch_size,
 *                       client_learning_rate, ...}}
 *                      the current iteration and what devices may do in it:
 *                      phase "COLLECTING" (startFLJob and updateModel open),
 *                      "AGGREGATING" (closed: the all-reduce runs),
 *                      "FINISHED" (the job is over; getModel still serves).
 *                      Sent after registration and on every change.
 *                      "abandoned" is non-zero when the iteration of that
 *                      number ended without a new model: servers drop their
 *                      running sums of it.
 *   WIRE_AGGREGATE     {"iteration":u, "attempt":u, "ring":[{"rank":u,
 *                       "node_id":s, "address":s, "peer_port":u}, ...],
 *                       "optimizer":{"server_optimizer":s,
 *                       "server_learning_rate":x, "server_momentum":x,
 *                       "server_beta1":x, "server_beta2":x, "server_tau":x}}
 *                      end the iteration: all-reduce the running sums and the
 *                      data_size total over the ring (in this order), apply
 *                      the optimizer's step (docs/training.md; without
 *                      "optimizer", the job's) to the average, checkpoint the
 *                      new model with the optimizer's state, answer
 *                      AGGREGATE_DONE.
 *                      When every server has answered with the same checksums,
 *                      and updates and data_size are what it counted, the
 *                      scheduler commits iteration+1 (WIRE_ITERATION). A
 *                      ring that loses a member is asked for again, with a
 *                      new attempt number, once the member is back (or
 *                      without it once it is declared dead); a server
 *                      stops an all-reduce of an older attempt.
 *
 * ---- Elastic scaling (management-api.md: scaleout, scalein) ----
 *
 * WIRE_ITERATION also carries "model_iteration":u and "model_checksum":s,
 * the model the cluster last committed ("" while it is the initial model,
 * which every server loads from --model_path), and "state_checksum":s, the
 * server optimizer's state committed with it ("" for none). A server whose
 * own model or state differs (it joined by scale-out, or was down while an
 * iteration committed) answers devices with the safemode text, downloads
 * the model from a peer (GET /model on its device port, the peers are in
 * WIRE_MEMBERS) and the state (GET /model/state?iteration=N), checks the
 * checksums, checkpoints them, and reports:
 *
 * server -> scheduler
 *   WIRE_SYNCED        {"model_iteration":u, "model_checksum":s,
 *                       "state_checksum":s}
 *                      this server now holds the cluster's model (and its
 *                      state). Also sent right after registering when it
 *                      already does (WIRE_REGISTER carries "model_checksum":s
 *                      too). While the cluster names no model yet, the
 *                      first server to report gives the initial model and
 *                      state.
 *
 * The scheduler puts only servers in sync into an aggregation ring; a
 * scale-out is complete when every new server is registered and in sync.
 *
 * ---- What operators look at (docs/operations.md) ----
 *
 * server -> scheduler
 *   WIRE_REPORT        {"iteration":u, "rounds":{"startFLJob":{"total":u,
 *                       "accepted":u}, "updateModel":{...}, "getModel":{...},
 *                       "pushMetrics":{...}}, "metrics":{"count":u,
 *                       "loss_sum":d, "accuracy_sum":d}}
 *                      what the server's devices did in "iteration" so far:
 *                      requests answered and those answered SUCCEED per
 *                      round, and the sums of the finite losses and
 *                      accuracies pushed. It replaces the server's earlier
 *                      report of that iteration. Sent at most once a second
 *                      while it changes, after each registration, and right
 *                      before AGGREGATE_DONE. The scheduler sums them into
 *                      its metrics file and status page; it answers nothing.
 *
 * WIRE_MEMBERS gives each member "leaving":b. A server told it is leaving
 * (scale-in) stops admitting devices (startFLJob: OutOfTime, "This server
 * is leaving the cluster."), still takes the updates of devices admitted
 * before, takes part in the aggregation that ends the iteration, and is
 * then sent WIRE_FINISH (it exits 0). Ranks are then made contiguous
 * again: a server finds its (possibly new) rank in WIRE_MEMBERS by its
 * node_id and uses it from then on.
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
        WIRE_ADMIT = 8,
        WIRE_ADMIT_REPLY = 9,
        WIRE_UPDATE = 10,
        WIRE_UPDATE_REPLY = 11,
        WIRE_ITERATION = 12,
        WIRE_AGGREGATE = 13,
        WIRE_AGGREGATE_DONE = 14,
        WIRE_SYNCED = 15,
        WIRE_REPLAYED = 16,
        WIRE_REPORT = 20,

        /* 30 and 31: conn.c's own, before any of the above (cluster-secret.h):
         * 32 bytes of nonce, then a 32-byte HMAC proof, each way. */
        WIRE_SECRET_NONCE = 30,
        WIRE_SECRET_PROOF = 31,

        /* 32 and above: between servers (server-allreduce.c). */
        _WIRE_PEER_FIRST = 32,
};
