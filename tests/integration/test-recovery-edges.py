#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The corners of the update log:

1. A scheduler that answers an update only after the server's deadline
   (SIGSTOPped for longer than it): the device hears SystemError, but the
   update the scheduler then counts is summed from the log, and the
   device's retry is answered SUCCEED without counting it twice.
2. durable_updates=false: a killed server comes back without the updates
   it acknowledged; the scheduler stops counting them (and says so), and
   their devices can send them again.
3. The --local_server_num launcher starts a SIGKILLed server again at once;
   it rejoins with its rank and its logged update, and SIGTERM still stops
   them all with exit status 0."""

import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402
from fl_proto import mean, upload  # noqa: E402

JOB = {"fl_iteration_num": 1, "start_fl_job_threshold": 2, "update_model_ratio": 1.0,
       "start_fl_job_time_window": 60000, "update_model_time_window": 60000}
INITIAL = [("w", [0.5 * i - 3 for i in range(10)]), ("b", [2.0, -1.0])]
SYSTEM_ERROR = 500


def status(url):
    r = harness.http("GET", url + "/", timeout=5)
    return r.json if isinstance(r.json, dict) else {}


def late_verdict(t, proto):
    tc = fl_proto.TrainingCluster(t, proto, 1, JOB, INITIAL, name="late", node_timeout=60)
    u = tc.urls[0]
    t.require(tc.wait_iteration(1), "late: iteration 1 runs", tc.state())
    ups = {"d1": upload(INITIAL, 1.0, 10), "d2": upload(INITIAL, -0.5, 30)}
    for dev in ups:
        t.require(proto.start_fl_job(u, "Lenet", dev, 10 if dev == "d1" else 30).retcode == 200,
                  "late: %s is admitted" % dev)

    tc.c.scheduler.signal_group(signal.SIGSTOP)
    answer = {}
    body = proto.request_update_model("Lenet", "d1", 1, ups["d1"])
    th = threading.Thread(target=lambda: answer.update(r=proto.call(u, "updateModel", body, timeout=30)))
    started = time.monotonic()
    th.start()
    th.join(25)
    waited = time.monotonic() - started
    r = answer.get("r")
    t.check(r is not None and r.retcode == SYSTEM_ERROR,
            "late: with the scheduler stopped, d1 hears SystemError at the server's deadline (%.1fs)" % waited, r)
    tc.c.scheduler.signal_group(signal.SIGCONT)
    t.check(harness.wait_until(lambda: status(u).get("updates") == 1, 10),
            "late: once the scheduler answers, the logged update is in the running sum", status(u))
    t.check(tc.daemons[0].wait_log("did not answer the updateModel of device d1", 1, 1),
            "late: the server logged the late answer", tc.daemons[0].tail(5))
    r = proto.update_model(u, "Lenet", "d1", 1, ups["d1"])
    t.check(r.retcode == 200 and "already accepted" in (r.msg.get("reason") or ""),
            "late: d1's retry is answered SUCCEED", r)
    t.check(status(u).get("updates") == 1, "late: and summed once", status(u))
    t.check(proto.update_model(u, "Lenet", "d2", 1, ups["d2"]).retcode == 200, "late: d2 updates")
    t.require(harness.wait_until(lambda: tc.state().get("iteration_phase") == "FINISHED", 15),
              "late: the iteration completes", tc.state())
    final = mean([ups["d1"], ups["d2"]], 40)
    diff = fl_proto.compare_models(tc.models()[0][2], final)
    t.check(diff is None, "late: the model is the mean of both updates, d1 once", diff)

    # The job is over and the scheduler gone: a server restarted now still
    # knows the job finished, and keeps serving its final model.
    t.require(harness.wait_until(lambda: status(u).get("phase") == "FINISHED", 10),
              "late: the server knows the job finished", status(u))
    tc.c.scheduler.kill9()
    old = tc.daemons[0]
    old.kill9()
    d = harness.Daemon(t, "late-server-after-the-job", old.argv, env=tc.c.env()).start()
    t.check(d.wait_log("was last in iteration 1 (FINISHED)", 1, 10),
            "late: restarted without a scheduler, it knows where the job was", d.tail(5))
    r = None
    if harness.wait_until(lambda: harness.http("GET", u + "/", timeout=2).status == 200, 10):
        r = proto.get_model(u, "Lenet", 1)
    t.check(r is not None and r.retcode == 200 and r.msg.get("iteration") == 1 and
            fl_proto.compare_models(r.msg.get("feature_map"), final) is None,
            "late: and getModel serves the final model", r)


def not_durable(t, proto):
    job = dict(JOB, start_fl_job_threshold=3)
    tc = fl_proto.TrainingCluster(t, proto, 2, job, INITIAL, name="volatile",
                                  server_extra=["--durable_updates=false"])
    t.require(tc.wait_iteration(1), "volatile: iteration 1 runs", tc.state())
    u0, u1 = tc.urls
    ups = {"v1": upload(INITIAL, 0.25, 4), "v2": upload(INITIAL, 0.75, 8), "v3": upload(INITIAL, -1.5, 12)}
    for k, dev in enumerate(ups):
        t.require(proto.start_fl_job(tc.urls[k % 2], "Lenet", dev, 4 * (k + 1)).retcode == 200,
                  "volatile: %s is admitted" % dev)
    t.check(proto.update_model(u0, "Lenet", "v1", 1, ups["v1"]).retcode == 200, "volatile: v1 updates on server 0")
    t.check(harness.wait_until(lambda: tc.state().get("updates") == 1, 5), "volatile: it is counted", tc.state())

    old = tc.daemons[0]
    old.kill9()
    d = harness.Daemon(t, "volatile-server0-again", old.argv, env=tc.c.env()).start()
    t.require(d.wait_log(harness.SERVER_STARTED, 1, 20), "volatile: server 0 comes back", d.tail())
    t.check(tc.c.scheduler.wait_log("came back without 1 update it had acknowledged", 1, 10),
            "volatile: without the log its update is gone, and the scheduler says so", tc.c.scheduler.tail(5))
    t.check(harness.wait_until(lambda: tc.state().get("updates") == 0, 5), "volatile: it no longer counts",
            tc.state())
    t.check(proto.update_model(u0, "Lenet", "v1", 1, ups["v1"]).retcode == 200, "volatile: v1 sends it again")
    t.check(proto.update_model(u1, "Lenet", "v2", 1, ups["v2"]).retcode == 200, "volatile: v2 updates")
    t.check(proto.update_model(u1, "Lenet", "v3", 1, ups["v3"]).retcode == 200, "volatile: v3 updates")
    t.require(harness.wait_until(lambda: tc.state().get("iteration_phase") == "FINISHED", 15),
              "volatile: the iteration completes", tc.state())
    diff = fl_proto.compare_models(tc.models()[1][2], mean(list(ups.values()), 24))
    t.check(diff is None, "volatile: the model is the mean of the three updates", diff)


def launcher(t, proto):
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, name="launcher", local=True)
    t.require(tc.wait_iteration(1), "launcher: iteration 1 runs", tc.state())
    d = tc.daemons[0]
    u1 = tc.urls[1]
    up = upload(INITIAL, 0.5, 6)
    t.check(proto.start_fl_job(u1, "Lenet", "l1", 6).retcode == 200, "launcher: l1 is admitted")
    t.check(proto.update_model(u1, "Lenet", "l1", 1, up).retcode == 200, "launcher: server 1 acknowledges l1")
    ranks = {n["fl_server_port"]: n["rank_id"] for n in tc.c.nodes()}
    children = [p for p in harness.group_members(d.pid) if p != d.pid]
    t.require(len(children) == 2, "launcher: one process per server", children)
    port1 = d.ports[1]
    victim = next(n["pid"] for n in tc.c.nodes() if n["fl_server_port"] == port1)
    t.require(victim in children, "launcher: the scheduler knows the pid of the server on port %d" % port1,
              (victim, children))
    os.kill(victim, signal.SIGKILL)
    t.check(d.wait_log("Started server 1 on port %d again" % port1, 1, 10),
            "launcher: the launcher starts the killed server again", d.tail(8))
    t.check(harness.wait_until(lambda: len([p for p in harness.group_members(d.pid) if p != d.pid]) == 2 and
                               tc.state().get("alive_server_num") == 2, 15),
            "launcher: both servers run and are alive again", tc.state())
    t.check({n["fl_server_port"]: n["rank_id"] for n in tc.c.nodes()} == ranks,
            "launcher: with the same ranks", tc.c.nodes())
    t.check(harness.wait_until(lambda: tc.state().get("updates") == 1, 10),
            "launcher: its acknowledged update still counts", tc.state())
    d.signal_group(signal.SIGTERM)
    t.check(d.wait(15) == 0, "launcher: SIGTERM stops every server, exit status 0", d.tail(5))


def main(t):
    proto = fl_proto.Proto(t.tmp)
    late_verdict(t, proto)
    not_durable(t, proto)
    launcher(t, proto)


harness.run_test("recovery-edges", main, timeout=120)
