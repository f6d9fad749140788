#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The running iteration survives a SIGKILL of the scheduler: the devices it
had admitted, the updates it had counted and its windows are committed
before they are answered (group commit), so the restarted scheduler resumes
the iteration: a device admitted before is not counted twice, the threshold
still counts the earlier devices, a counted update is a repeat, and the
iteration ends with exactly the FedAvg of every acknowledged update."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402
from fl_proto import mean, upload  # noqa: E402

JOB = {"fl_iteration_num": 3, "start_fl_job_threshold": 3, "start_fl_job_time_window": 60000,
       "update_model_time_window": 60000}
INITIAL = [("w", [0.5 * i - 1 for i in range(6)]), ("b", [1.0, -2.0])]


def main(t):
    proto = fl_proto.Proto(t.tmp)
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, node_timeout=10)
    c = tc.c
    u0, u1 = tc.urls
    t.require(tc.wait_iteration(1), "iteration 1 runs", tc.state())

    up1, up2, up3 = upload(INITIAL, 0.5, 10), upload(INITIAL, -1.0, 30), upload(INITIAL, 2.0, 60)
    t.check(proto.start_fl_job(u0, "Lenet", "d1", 10).retcode == 200, "d1 is admitted")
    t.check(proto.start_fl_job(u1, "Lenet", "d2", 30).retcode == 200, "d2 is admitted")
    t.check(proto.update_model(u1, "Lenet", "d1", 1, up1).retcode == 200, "d1's update is acknowledged")

    c.scheduler.kill9()
    c.restart_scheduler()
    t.require(c.wait_ready(30), "the restarted scheduler is READY again", tc.state())
    t.check(c.scheduler.wait_log("2 devices admitted, 1 updates counted", 1, 5),
            "it resumed iteration 1 with its devices and counts", c.scheduler.tail(8))
    t.require(harness.wait_until(lambda: proto.start_fl_job(u0, "Lenet", "d1", 10).retcode == 200, 15),
              "d1 asking again is answered SUCCEED (and not counted twice)")
    r = proto.start_fl_job(u1, "Lenet", "d3", 60)
    t.check(r.retcode == 200, "d3 is admitted as the third device", r)
    r = proto.start_fl_job(u0, "Lenet", "d4", 5)
    t.check(r.retcode == 300 and not r.msg.get("is_selected"),
            "d4 is turned away: the threshold counted the devices admitted before the kill", r)
    r = proto.update_model(u0, "Lenet", "d1", 1, upload(INITIAL, 0.7, 10))
    t.check(r.retcode == 202, "a different update of d1 is a repeat: the count survived", r)
    r = proto.update_model(u0, "Lenet", "d1", 1, up1)
    t.check(r.retcode == 200 and "already accepted" in (r.msg.get("reason") or ""),
            "d1's update sent again (its answer lost) is answered SUCCEED, not counted again", r)
    t.check(proto.update_model(u0, "Lenet", "d2", 1, up2).retcode == 200, "d2's update is acknowledged")
    t.check(proto.update_model(u1, "Lenet", "d3", 1, up3).retcode == 200, "d3's update is acknowledged")
    t.require(harness.wait_until(lambda: tc.state().get("iteration") == 2, 20), "iteration 1 completes",
              tc.state())
    want = mean([up1, up2, up3], 100)
    for url in (u0, u1):
        st, _, model = proto.fetch_model(url)
        t.check(st == 200 and not fl_proto.compare_models(model, want),
                "%s: exactly the FedAvg of the three acknowledged updates" % url,
                fl_proto.compare_models(model, want) if st == 200 else st)


harness.run_test("scheduler-durable", main, timeout=120)
