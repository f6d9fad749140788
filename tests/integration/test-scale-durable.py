#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A running scale operation survives a SIGKILL of the scheduler: it is
stored before it is acknowledged, and the restarted scheduler resumes it.
A scale-out 2 -> 3 whose new server starts only after the restart
completes; one whose server never comes is rolled back at the deadline set
before the kill, not a full timeout after the restart; a scale-in asked for
during an iteration keeps its leaver leaving (the members tell it so again
when it reconnects), which leaves at the iteration's end with the ranks
made contiguous."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402
from fl_proto import mean, upload  # noqa: E402

JOB = {"fl_iteration_num": 20, "start_fl_job_threshold": 2, "start_fl_job_time_window": 60000,
       "update_model_time_window": 60000}
INITIAL = [("w", [0.25 * i - 1 for i in range(6)]), ("b", [0.5, -1.5])]


def ids_by_rank(c):
    return {int(n["rank_id"]): n["node_id"] for n in c.nodes() or []}


def urls_by_rank(c):
    return {int(n["rank_id"]): "http://%s:%d" % (n["address"], n["fl_server_port"]) for n in c.nodes() or []}


def all_connected(c, count):
    nodes = c.nodes() or []
    return len(nodes) == count and all(n.get("connected") for n in nodes)


def kill_and_restart(t, tc, label):
    c = tc.c
    c.scheduler.kill9()
    t.check(c.http("GET", "/state").status is None, "%s: the scheduler is SIGKILLed" % label)
    c.restart_scheduler()


def scale_out_completes(t, proto):
    """(a) 2 -> 3 requested, scheduler killed before the new server starts."""
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, name="out", node_timeout=5)
    c = tc.c
    t.require(tc.wait_iteration(1), "(a) 2 servers train: iteration 1 runs", tc.state())
    r = c.http("POST", "/scaleout", {"worker_num": 0, "server_num": 1})
    t.require(r.status == 200, "(a) POST /scaleout of 1 server is acknowledged", r)

    kill_and_restart(t, tc, "(a)")
    t.check(c.scheduler.wait_log("Resuming the scale-out from 2 to 3 servers", 1, 5),
            "(a) the restarted scheduler says it resumes the scale-out, with the time left", c.scheduler.tail(8))
    st = tc.state()
    t.check(st.get("cluster_state") == "CLUSTER_SCALE_OUT" and st.get("server_num") == 3,
            "(a) it is in CLUSTER_SCALE_OUT with server_num 3 again", st)

    c.start_server(extra=["--model_path=" + tc.model_path], name="new-server", timeout=30)
    t.require(c.wait_ready(30), "(a) the scale-out completes after the restart: CLUSTER_READY", tc.state())
    nodes = c.nodes()
    t.check(sorted(n["rank_id"] for n in nodes) == ["0", "1", "2"] and tc.state().get("server_num") == 3,
            "(a) 3 servers, ranks '0'..'2', server_num 3", (nodes, tc.state()))
    t.check(c.scheduler.wait_log("Scale-out to 3 servers complete", 1, 5), "(a) the log says it completed",
            c.scheduler.tail(5))
    st, _, model = proto.fetch_model(urls_by_rank(c)[2])
    t.check(st == 200 and not fl_proto.compare_models(model, INITIAL),
            "(a) the new rank 2 fetched the cluster's model from a peer")
    t.check(c.scheduler.count("rolling back") == 0, "(a) nothing was rolled back")
    for d in reversed(tc.daemons + [c.scheduler]):
        d.stop()


def scale_out_rolls_back(t, proto):
    """(b) 2 -> 3 requested, the new server never comes: roll-back at the
    deadline set before the kill (4 x node_timeout = 12 s after the request)."""
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, name="rollback", node_timeout=3)
    c = tc.c
    t.require(tc.wait_iteration(1), "(b) 2 servers train: iteration 1 runs", tc.state())
    t0 = time.monotonic()
    r = c.http("POST", "/scaleout", {"worker_num": 0, "server_num": 1})
    t.require(r.status == 200, "(b) POST /scaleout of a server that will never come", r)
    time.sleep(5)

    kill_and_restart(t, tc, "(b)")
    restarted = time.monotonic() - t0
    t.check(c.scheduler.wait_log("left before it is rolled back", 1, 5),
            "(b) the restarted scheduler resumes the scale-out with the time left", c.scheduler.tail(8))
    st = tc.state()
    t.check(st.get("cluster_state") == "CLUSTER_SCALE_OUT" and st.get("server_num") == 3,
            "(b) it is in CLUSTER_SCALE_OUT with server_num 3 again", st)
    t.require(harness.wait_until(lambda: tc.state().get("server_num") == 2, 20),
              "(b) the scale-out is rolled back: server_num 2", tc.state())
    at = time.monotonic() - t0
    t.check(11.5 <= at <= 15.0,
            "(b) at the original deadline: %.1fs after the request (restarted after %.1fs; a fresh "
            "timeout would end after %.1fs)" % (at, restarted, restarted + 12))
    t.check(c.wait_ready(15), "(b) the cluster is CLUSTER_READY with its 2 servers", tc.state())
    t.check(sorted(n["rank_id"] for n in c.nodes() or []) == ["0", "1"], "(b) ranks '0','1'", c.nodes())
    t.check(c.scheduler.wait_log("rolling back", 1, 5), "(b) the log says so", c.scheduler.tail(5))
    for d in reversed(tc.daemons + [c.scheduler]):
        d.stop()


def scale_in_survives(t, proto):
    """(c) rank 0 of 3 scaled in while devices are in the iteration; the
    scheduler is killed before the iteration's end."""
    tc = fl_proto.TrainingCluster(t, proto, 3, JOB, INITIAL, name="in", node_timeout=10)
    c = tc.c
    t.require(tc.wait_iteration(1), "(c) 3 servers train: iteration 1 runs", tc.state())
    ids, u = ids_by_rank(c), urls_by_rank(c)
    pids = {int(n["rank_id"]): n["pid"] for n in c.nodes()}
    leaver = ids[0]
    t.check(proto.start_fl_job(u[1], "Lenet", "d1", 10).retcode == 200, "(c) d1 is admitted on rank 1")
    t.check(proto.start_fl_job(u[2], "Lenet", "d2", 30).retcode == 200, "(c) d2 is admitted on rank 2")
    r = c.http("POST", "/scalein", {"node_ids": [leaver]})
    t.require(r.status == 200, "(c) POST /scalein of rank 0 is acknowledged", r)
    t.check(tc.state().get("cluster_state") == "CLUSTER_SCALE_IN", "(c) the state is CLUSTER_SCALE_IN")

    kill_and_restart(t, tc, "(c)")
    t.check(c.scheduler.wait_log("Resuming the scale-in of 1 of 3 servers", 1, 5),
            "(c) the restarted scheduler says it resumes the scale-in", c.scheduler.tail(8))
    t.check(tc.state().get("cluster_state") == "CLUSTER_SCALE_IN", "(c) it is in CLUSTER_SCALE_IN again",
            tc.state())
    t.require(harness.wait_until(lambda: all_connected(c, 3), 20), "(c) the 3 servers reconnect", c.nodes())
    t.check(c.node(leaver).get("leaving") is True and
            not any(n.get("leaving") for n in c.nodes() if n["node_id"] != leaver),
            "(c) the scheduler still knows rank 0 is the leaver", c.nodes())
    time.sleep(1)   # the member list follows the registration
    r = proto.start_fl_job(u[0], "Lenet", "late", 5)
    t.check(r.retcode == 300 and "leaving" in (r.msg.get("reason") or ""),
            "(c) the reconnected leaver still admits no new device ('leaving')", r)
    leaver_daemon = [d for d in tc.daemons if d.pid == pids[0]][0]
    t.check("no longer leaving" not in leaver_daemon.log(), "(c) the leaver was never told it stays")

    up1, up2 = upload(INITIAL, 0.5, 10), upload(INITIAL, -1.0, 30)
    t.check(proto.update_model(u[1], "Lenet", "d1", 1, up1).retcode == 200, "(c) d1's update is acknowledged")
    t.check(proto.update_model(u[2], "Lenet", "d2", 1, up2).retcode == 200, "(c) d2's update is acknowledged")
    t.require(harness.wait_until(lambda: tc.state().get("iteration") == 2, 20), "(c) iteration 1 completes",
              tc.state())
    t.require(c.wait_ready(20), "(c) the scale-in completes at the iteration's end: CLUSTER_READY", tc.state())
    nodes = c.nodes()
    t.check({n["node_id"]: n["rank_id"] for n in nodes} == {ids[1]: "0", ids[2]: "1"},
            "(c) the leaver is gone and the ranks are compacted (old 1 -> 0, old 2 -> 1)", nodes)
    t.check(tc.state().get("server_num") == 2, "(c) server_num is 2", tc.state())
    t.check(leaver_daemon.wait(15) == 0, "(c) the leaver exited with status 0", leaver_daemon.tail(5))
    want = mean([up1, up2], 40)
    for rank, url in sorted(urls_by_rank(c).items()):
        st, _, model = proto.fetch_model(url)
        t.check(st == 200 and not fl_proto.compare_models(model, want),
                "(c) rank %d holds exactly the FedAvg of the two updates" % rank,
                fl_proto.compare_models(model, want) if st == 200 else st)


def main(t):
    proto = fl_proto.Proto(t.tmp)
    scale_out_completes(t, proto)
    scale_out_rolls_back(t, proto)
    scale_in_survives(t, proto)


harness.run_test("scale-durable", main, timeout=200)
