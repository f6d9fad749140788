#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Time windows on a live cluster (a scheduler and 2 servers, threshold 3):
a start_fl_job_time_window that expires with too few devices abandons the
iteration (the number advances, the model stays byte-identical); an
update_model_time_window that expires with too few updates likewise, and the
updates it had accepted do not leak into the next iteration; the job
finishes after fl_iteration_num iterations, abandoned ones included, and
getModel keeps serving the final model. A global_iteration_time_window that
expires while updates are still being collected abandons the iteration too."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fl_proto  # noqa: E402
from fl_proto import SUCCEED, OUT_OF_TIME, DISABLED_TEXT, retcode_name  # noqa: E402

WINDOW_MS = 3000
JOB = {
    "fl_name": "WindowJob",
    "fl_iteration_num": 4,
    "start_fl_job_threshold": 3,
    "update_model_ratio": 1.0,
    "start_fl_job_time_window": WINDOW_MS,
    "update_model_time_window": WINDOW_MS,
    "global_iteration_time_window": 60000,
}
INITIAL = [("w", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), ("b", [-0.5, 0.5])]
SLACK = 8          # seconds beyond a window before a test gives up waiting


def seen_at(tc, number, timeout):
    """Wall-clock ms at which /state first shows iteration `number` (polled
    every 20 ms), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tc.state().get("iteration", 0) >= number:
            return int(time.time() * 1000)
        time.sleep(0.02)
    return None


def check_not_early(t, seen_ms, deadline_ms, what):
    """The scheduler must not end a window before it expires, and should end
    it soon after."""
    t.check(seen_ms is not None and deadline_ms is not None and deadline_ms - 100 <= seen_ms <= deadline_ms + 3000,
            "%s ends at its deadline, not before (seen %s ms after the deadline taken from next_req_time)"
            % (what, None if seen_ms is None or deadline_ms is None else seen_ms - deadline_ms),
            (seen_ms, deadline_ms))


def expect(t, rep, retcode, what):
    return t.check(rep.status == 200 and rep.retcode == retcode, "%s -> %s" % (what, retcode_name(retcode)), rep)


def main(t):
    proto = fl_proto.Proto(t.tmp)
    name = JOB["fl_name"]
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, name="sched")
    A, B = tc.urls
    sched = tc.c.scheduler
    t.require(tc.c.wait_ready(20), "the cluster becomes READY", tc.c.state())
    t.require(tc.wait_iteration(1, timeout=20), "iteration 1 starts", (tc.state(), tc.server_states()))

    models = tc.models()
    m0 = models[0][1]
    t.require(models[0][0] == 200 and models[1][1] == m0 and fl_proto.compare_models(models[0][2], INITIAL) is None,
              "before any iteration both servers serve the initial model, byte-identical",
              [(s, len(r)) for s, r, _ in models])

    def unchanged(what):
        ms = tc.models()
        t.check(all(s == 200 and raw == m0 for s, raw, _ in ms),
                "%s: the model on both servers is byte-identical to the initial one" % what,
                [(s, len(raw), raw == m0) for s, raw, _ in ms])

    # ---- iteration 1: 2 of 3 devices, the start window expires
    rep = proto.start_fl_job(A, name, "s1", 5)
    expect(t, rep, SUCCEED, "iteration 1: startFLJob s1")
    # Before the threshold, next_req_time = the start deadline + update_model_time_window.
    nrt = rep.msg and rep.msg.get("next_req_time")
    start_deadline = int(nrt) - WINDOW_MS if nrt and nrt.isdigit() else None
    expect(t, proto.start_fl_job(B, name, "s2", 5), SUCCEED, "iteration 1: startFLJob s2 (2 of 3)")
    t0 = time.monotonic()
    check_not_early(t, seen_at(tc, 2, WINDOW_MS / 1000 + SLACK), start_deadline, "iteration 1's start window")
    ok = tc.wait_iteration(2, timeout=WINDOW_MS / 1000 + SLACK)
    t.require(ok, "iteration 1 is abandoned when start_fl_job_time_window (%d ms) expires: iteration 2 starts "
              "(waited %.1fs)" % (WINDOW_MS, time.monotonic() - t0), (tc.state(), tc.server_states()))
    t.check(harness.wait_until(lambda: "Iteration 1 abandoned" in sched.log(), 5) and
            "start_fl_job_time_window" in sched.log(),
            "the scheduler logs that iteration 1 was abandoned for its start window", sched.tail(5))
    unchanged("after the abandoned iteration 1")
    rep = proto.get_model(A, name, 1)
    t.check(rep.retcode == 200 and rep.msg.get("iteration") == 0 and
            fl_proto.compare_models(rep.msg.get("feature_map"), INITIAL) is None,
            "getModel(iteration=1) answers SUCCEED with the newest finished model, the initial one (iteration 0)",
            rep)
    st, raw, _ = proto.fetch_model(B, 1)
    t.check(st == 404 or (st == 200 and raw == m0), "GET /model?iteration=1 is no new model (404)", (st, len(raw)))
    expect(t, proto.update_model(A, name, "s1", 1, fl_proto.scale(INITIAL, 5)), OUT_OF_TIME,
           "updateModel from s1 for the abandoned iteration 1")

    # ---- iteration 2: 3 devices, 1 update of 3, the update window expires
    for i, dev in enumerate(("u1", "u2", "u3")):
        rep = proto.start_fl_job((A, B)[i % 2], name, dev, 10)
        expect(t, rep, SUCCEED, "iteration 2: startFLJob %s" % dev)
    # The threshold is reached: next_req_time = the update deadline.
    nrt = rep.msg and rep.msg.get("next_req_time")
    update_deadline = int(nrt) if nrt and nrt.isdigit() else None
    leak = fl_proto.scale([(n, [v * 1000 for v in vals]) for n, vals in INITIAL], 10)
    expect(t, proto.update_model(B, name, "u1", 2, leak), SUCCEED, "iteration 2: updateModel u1 (1 of 3)")
    sums = [s.get("updates") for s in tc.server_states()]
    t.check(sums == [0, 1], "server B's running sum holds u1's update (GET /)", sums)
    t0 = time.monotonic()
    check_not_early(t, seen_at(tc, 3, WINDOW_MS / 1000 + SLACK), update_deadline, "iteration 2's update window")
    ok = tc.wait_iteration(3, timeout=WINDOW_MS / 1000 + SLACK)
    t.require(ok, "iteration 2 is abandoned when update_model_time_window (%d ms) expires: iteration 3 starts "
              "(waited %.1fs)" % (WINDOW_MS, time.monotonic() - t0), (tc.state(), tc.server_states()))
    t.check(harness.wait_until(lambda: "Iteration 2 abandoned" in sched.log(), 5) and
            "update_model_time_window" in sched.log(),
            "the scheduler logs that iteration 2 was abandoned for its update window", sched.tail(5))
    unchanged("after the abandoned iteration 2 (with one update accepted)")
    sums = [s.get("updates") for s in tc.server_states()]
    t.check(sums == [0, 0], "both running sums are dropped (GET /)", sums)
    expect(t, proto.update_model(A, name, "u2", 2, leak), OUT_OF_TIME,
           "updateModel from u2 for the abandoned iteration 2")

    # ---- iteration 3 completes; u1's abandoned update must not be in it
    ups = []
    for i, (dev, ds) in enumerate((("v1", 2), ("v2", 3), ("v3", 5))):
        expect(t, proto.start_fl_job((B, A)[i % 2], name, dev, ds), SUCCEED, "iteration 3: startFLJob %s" % dev)
    for i, (dev, ds) in enumerate((("v1", 2), ("v2", 3), ("v3", 5))):
        u = fl_proto.scale([(n, [v + i - 1.5 for v in vals]) for n, vals in INITIAL], ds)
        ups.append((ds, u))
        expect(t, proto.update_model((A, B)[i % 2], name, dev, 3, u), SUCCEED, "iteration 3: updateModel %s" % dev)
    t.require(tc.wait_iteration(4, timeout=20), "iteration 3 finishes and iteration 4 starts",
              (tc.state(), tc.server_states()))
    want3 = fl_proto.fedavg(ups)
    ms = tc.models()
    m3 = ms[0][1]
    t.check(ms[0][0] == 200 and ms[1][1] == m3, "the model of iteration 3 is byte-identical on both servers")
    diff = fl_proto.compare_models(ms[0][2], want3)
    t.check(diff is None, "the model of iteration 3 is the mean of iteration 3's updates only (nothing of the "
            "abandoned iterations)", diff)

    # ---- iteration 4: nobody comes; the job ends after 4 iterations, 2 of them abandoned
    t0 = time.monotonic()
    ok = tc.wait_iteration(4, phase="FINISHED", timeout=WINDOW_MS / 1000 + SLACK)
    t.require(ok, "iteration 4's start window expires and the job is FINISHED after fl_iteration_num=4 "
              "iterations, the abandoned ones included (waited %.1fs)" % (time.monotonic() - t0),
              (tc.state(), tc.server_states()))
    ms = tc.models()
    t.check(all(s == 200 and raw == m3 for s, raw, _ in ms),
            "after the abandoned iteration 4 both servers keep the model of iteration 3, byte-identical")
    for u, srv in ((A, "A"), (B, "B")):
        rep = proto.start_fl_job(u, name, "late", 1)
        t.check(rep.status == 200 and rep.text == DISABLED_TEXT,
                "startFLJob on %s after the job -> %r" % (srv, DISABLED_TEXT), rep)
    time.sleep(1)
    for u, srv in ((A, "A"), (B, "B")):
        for it in (3, 4, 5):
            rep = proto.get_model(u, name, it)
            t.check(rep.retcode == SUCCEED and rep.msg.get("iteration") == 3 and
                    fl_proto.compare_models(rep.msg.get("feature_map"), want3) is None,
                    "getModel(iteration=%d) on %s after the job serves the final model (iteration 3)" % (it, srv),
                    rep)
    ms = tc.models()
    t.check(all(s == 200 and raw == m3 for s, raw, _ in ms), "GET /model still serves the final model on both")

    global_window(t, proto)


def global_window(t, proto):
    """global_iteration_time_window ends an iteration that is still collecting
    updates (its own windows are far from over); it was the last iteration,
    so the job ends with the model unchanged."""
    job = dict(JOB, fl_name="GlobalJob", fl_iteration_num=1, start_fl_job_time_window=30000,
               update_model_time_window=30000, global_iteration_time_window=3000)
    tc = fl_proto.TrainingCluster(t, proto, 2, job, INITIAL, name="sched-global")
    A, B = tc.urls
    name = job["fl_name"]
    t.require(tc.c.wait_ready(20), "[global window] the cluster becomes READY", tc.c.state())
    t.require(tc.wait_iteration(1, timeout=20), "[global window] iteration 1 starts", tc.state())
    m0 = tc.models()[0][1]
    for i, dev in enumerate(("g1", "g2", "g3")):
        expect(t, proto.start_fl_job((A, B)[i % 2], name, dev, 4), SUCCEED, "[global window] startFLJob %s" % dev)
    for dev in ("g1", "g2"):
        expect(t, proto.update_model(A, name, dev, 1, fl_proto.scale(INITIAL, 4 * 7)), SUCCEED,
               "[global window] updateModel %s (2 of 3)" % dev)
    t0 = time.monotonic()
    ok = tc.wait_iteration(1, phase="FINISHED", timeout=3 + SLACK)
    t.require(ok, "[global window] global_iteration_time_window (3000 ms) abandons iteration 1 and, as it was "
              "the last, the job is FINISHED (waited %.1fs)" % (time.monotonic() - t0),
              (tc.state(), tc.server_states()))
    t.check(harness.wait_until(lambda: "global_iteration_time_window" in tc.c.scheduler.log(), 5),
            "[global window] the scheduler logs the global window as the reason", tc.c.scheduler.tail(5))
    ms = tc.models()
    t.check(all(s == 200 and raw == m0 for s, raw, _ in ms),
            "[global window] both servers keep the initial model, byte-identical (2 accepted updates dropped)")
    rep = proto.get_model(B, name, 1)
    t.check(rep.retcode == SUCCEED and rep.msg.get("iteration") == 0 and
            fl_proto.compare_models(rep.msg.get("feature_map"), INITIAL) is None,
            "[global window] getModel serves the initial model as the final one (iteration 0)", rep)


harness.run_test("windows", main, timeout=60)
