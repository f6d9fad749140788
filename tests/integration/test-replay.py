#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The replay window (replay_attack_time_diff) of device requests, with the
independent device of fl_proto.py, on two servers:

- startFLJob, getModel and updateModel whose timestamp is an hour behind or
  ahead of the server's clock, missing or not a number, are refused with
  RequestError and a reason; nothing is admitted or counted (/state and
  each server's own counts);
- an update sent fresh and counted, then sent again byte-identical once it
  is outside the window, keeps its SUCCEED, on the server holding it and on
  the other one, and is not counted again; a stale different update is
  refused;
- the iteration then ends with exactly the two fresh updates: the new model
  is their FedAvg, nothing stale is in it;
- without the option a stale timestamp is served as before."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402
from fl_proto import REQUEST_ERROR, SUCCEED, compare_models, mean, upload  # noqa: E402

WINDOW_MS = 60000
HOUR_MS = 3600 * 1000
# A request stamped this long before the window's edge is fresh if it
# arrives within that time (generous on a loaded machine) and stale after.
MARGIN_MS = 5000
JOB = {
    "fl_iteration_num": 3,
    "start_fl_job_threshold": 2,
    "start_fl_job_time_window": 300000,
    "update_model_time_window": 300000,
}
INITIAL = [("fc.weight", [0.25 * i - 1 for i in range(8)]), ("fc.bias", [0.5, -0.5])]


def now_ms():
    return int(time.time() * 1000)


def status(url):
    r = harness.http("GET", url + "/")
    return r.json if isinstance(r.json, dict) else {}


def refused(t, r, what):
    reason = (r.msg or {}).get("reason") or ""
    t.check(r.retcode == REQUEST_ERROR and reason, "%s: RequestError with a reason (%s)" % (what, reason), r)


def main(t):
    proto = fl_proto.Proto(t.tmp)
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL,
                                  server_extra=["--replay_attack_time_diff=%d" % WINDOW_MS])
    u1, u2 = tc.urls
    t.require(tc.wait_iteration(1, timeout=20), "the cluster runs iteration 1")

    # ---- startFLJob
    for label, ts in (("an hour behind", str(now_ms() - HOUR_MS)), ("an hour ahead", str(now_ms() + HOUR_MS)),
                      ("missing", ""), ("not a number", "soon"), ("negative", "-5")):
        r = proto.start_fl_job(u1, "Lenet", "dev-a", 10, timestamp=ts)
        refused(t, r, "startFLJob with a timestamp %s" % label)
    r = proto.start_fl_job(u1, "Lenet", "dev-a", 10, timestamp=str(now_ms() - HOUR_MS))
    t.check("replay_attack_time_diff" in ((r.msg or {}).get("reason") or ""),
            "the reason names replay_attack_time_diff", r)
    t.check(tc.state().get("admitted") == 0, "nothing is admitted", tc.state())

    r = proto.start_fl_job(u1, "Lenet", "dev-a", 10)
    t.check(r.retcode == SUCCEED and r.msg.get("is_selected"), "a fresh startFLJob of dev-a is selected", r)
    r = proto.start_fl_job(u2, "Lenet", "dev-b", 30)
    t.check(r.retcode == SUCCEED and r.msg.get("is_selected"), "a fresh startFLJob of dev-b is selected", r)
    t.check(tc.state().get("admitted") == 2, "two devices are admitted", tc.state())

    # ---- getModel
    refused(t, proto.get_model(u2, "Lenet", 1, timestamp=str(now_ms() - HOUR_MS)), "getModel an hour behind")
    r = proto.get_model(u2, "Lenet", 0)
    t.check(r.retcode == SUCCEED, "a fresh getModel is served", r)

    # ---- updateModel
    up_a, up_b = upload(INITIAL, 0.125, 10), upload(INITIAL, -0.25, 30)
    refused(t, proto.update_model(u1, "Lenet", "dev-a", 1, up_a, timestamp=str(now_ms() - HOUR_MS)),
            "updateModel an hour behind")
    refused(t, proto.update_model(u1, "Lenet", "dev-a", 1, up_a, timestamp=""), "updateModel without a timestamp")
    t.check(tc.state().get("updates") == 0 and status(u1).get("updates") == 0,
            "no update is counted or summed", (tc.state(), status(u1)))

    sent_ms = now_ms() - (WINDOW_MS - MARGIN_MS)
    body = proto.request_update_model("Lenet", "dev-a", 1, up_a, timestamp=str(sent_ms))
    r = proto.call(u1, "updateModel", body)
    t.require(r.retcode == SUCCEED, "dev-a's update, still inside the window, is accepted on server 1", r)
    t.check(tc.state().get("updates") == 1 and status(u1).get("updates") == 1, "and counted once",
            (tc.state(), status(u1)))

    # Wait until that very request is outside the window.
    time.sleep(max(0.0, (sent_ms + WINDOW_MS + 1000 - now_ms()) / 1000.0))
    r = proto.call(u1, "updateModel", body)
    t.check(r.retcode == SUCCEED, "the same bytes again, now outside the window, on server 1: still SUCCEED", r)
    r = proto.call(u2, "updateModel", body)
    t.check(r.retcode == SUCCEED, "and on server 2, which does not hold it: SUCCEED (the scheduler's answer)", r)
    t.check(tc.state().get("updates") == 1 and status(u1).get("updates") == 1 and status(u2).get("updates") == 0,
            "still one update counted, summed on server 1 only", (tc.state(), status(u1), status(u2)))
    refused(t, proto.update_model(u2, "Lenet", "dev-b", 1, up_b, timestamp=str(now_ms() - HOUR_MS)),
            "a stale update of dev-b (never counted) on server 2")
    refused(t, proto.update_model(u2, "Lenet", "dev-a", 1, upload(INITIAL, 0.5, 10),
                                  timestamp=str(now_ms() - HOUR_MS)),
            "a stale different update of dev-a on server 2")
    t.check(tc.state().get("updates") == 1 and status(u2).get("updates") == 0, "nothing more is counted",
            (tc.state(), status(u2)))

    r = proto.update_model(u2, "Lenet", "dev-b", 1, up_b)
    t.check(r.retcode == SUCCEED, "dev-b's fresh update is accepted on server 2", r)
    t.require(tc.wait_iteration(2, timeout=30), "iteration 1 ends with its two updates", tc.state())
    want = mean([up_a, up_b], 40)
    for url in (u1, u2):
        st, _, got = proto.fetch_model(url)
        diff = compare_models(got, want)
        t.check(diff is None, "%s holds exactly the FedAvg of the two fresh updates" % url, (st, diff))

    # ---- off by default
    plain = fl_proto.TrainingCluster(t, proto, 1, JOB, INITIAL, name="plain")
    t.require(plain.wait_iteration(1, timeout=20), "a cluster without replay_attack_time_diff runs iteration 1")
    r = proto.start_fl_job(plain.urls[0], "Lenet", "dev-old", 10, timestamp=str(now_ms() - HOUR_MS))
    t.check(r.retcode == SUCCEED, "without the option a request an hour old is served as before", r)


harness.run_test("replay", main, timeout=150)
