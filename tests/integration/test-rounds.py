#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A server's iterations from start to end (test-protocol.py checks every
round and retcode; this follows the model through the job), with the
independent device of fl_proto.py:

- a device admitted on one server updates on the other; the new model is
  exactly the data_size-weighted mean and byte-identical on both servers;
- an iteration whose window expires is abandoned: the model stays, the next
  iteration starts from it, and a getModel of the abandoned iteration gets
  the model the server holds;
- after the last iteration the rounds are disabled, getModel and GET /model
  keep serving the final model, and a restarted server restores it from its
  checkpoint (over --model_path);
- a server started without a model joins its cluster, and its rounds answer
  SystemError naming --model_path."""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402
from fl_proto import mean  # noqa: E402
from fl_proto import DISABLED_TEXT, SAFEMODE_TEXT, f32  # noqa: E402

WINDOW_MS = 6000
JOB = {
    "fl_iteration_num": 3,
    "start_fl_job_threshold": 2,
    "start_fl_job_time_window": WINDOW_MS,
    "update_model_time_window": WINDOW_MS,
}
INITIAL = [("fc1.weight", [0.5 * i - 3 for i in range(12)]),
           ("fc1.bias", [0.25, -0.125, 1.0]),
           ("fc2.weight", [float(i) / 7 for i in range(6)])]


def upload(model, shift, ds):
    """A device's upload: its weights (the model shifted) times data_size."""
    return [(n, [f32(f32(v + shift * (k + 1)) * ds) for k, v in enumerate(vals)]) for n, vals in model]



def status(url):
    r = harness.http("GET", url + "/")
    return r.json if isinstance(r.json, dict) else {}


def main(t):
    proto = fl_proto.Proto(t.tmp)
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL)
    u1, u2 = tc.urls
    t.require(tc.c.wait_ready(20), "the cluster is READY")
    t.require(harness.wait_until(lambda: all(status(u).get("phase") == "COLLECTING" for u in (u1, u2)), 10),
              "both servers are in iteration 1", (status(u1), status(u2)))
    t.check(status(u1).get("model_iteration") == 0, "iteration 1 starts from the initial model", status(u1))

    # ---- iteration 1: admitted on one server, updated on the other
    for url, dev, ds in ((u1, "dev-a", 30), (u2, "dev-b", 50)):
        r = proto.start_fl_job(url, "Lenet", dev, ds)
        t.check(r.retcode == 200 and r.msg.get("is_selected"), "%s is selected" % dev, r)
    up_a, up_b = upload(INITIAL, 0.01, 30), upload(INITIAL, -0.02, 50)
    r = proto.get_model(u1, "Lenet", 1)
    t.check(r.retcode == 201, "getModel of the running iteration is SucNotReady", r)
    r = proto.update_model(u2, "Lenet", "dev-a", 1, up_a)
    t.check(r.retcode == 200, "dev-a (admitted on server 1) updates on server 2", r)
    t.check(status(u2).get("updates") == 1 and status(u2).get("data_size") == 30, "server 2 summed it", status(u2))
    r = proto.update_model(u1, "Lenet", "dev-a", 1, up_a)
    t.check(r.retcode == 200, "the same update again on server 1 is SUCCEED (its answer may have been lost)", r)
    t.check(status(u1).get("updates") == 0, "and server 1 summed nothing", status(u1))
    r = proto.update_model(u1, "Lenet", "dev-a", 1, upload(INITIAL, 0.03, 30))
    t.check(r.retcode == 202, "a different update of dev-a is RepeatRequest", r)
    t.check(status(u1).get("updates") == 0 and status(u2).get("updates") == 1, "and nothing more is summed",
            (status(u1), status(u2)))
    r = proto.update_model(u1, "Lenet", "dev-b", 1, up_b)
    t.check(r.retcode == 200, "dev-b (admitted on server 2) updates on server 1", r)

    t.require(harness.wait_until(lambda: all(status(u).get("model_iteration") == 1 for u in (u1, u2)), 15),
              "both servers hold the model of iteration 1", (status(u1), status(u2)))
    model1 = mean([up_a, up_b], 80)
    r = proto.get_model(u2, "Lenet", 1)
    t.check(r.retcode == 200 and r.msg.get("iteration") == 1 and r.msg.get("feature_map") == model1,
            "getModel: exactly the data_size-weighted mean", r)
    (s1, raw1, m1), (s2, raw2, _) = proto.fetch_model(u1), proto.fetch_model(u2)
    t.check(s1 == 200 and s2 == 200 and raw1 == raw2 and m1 == model1, "GET /model: byte-identical on both servers")
    t.check(status(u1).get("model_checksum") == status(u2).get("model_checksum"), "with the same checksum")

    # ---- iteration 2: one device only, the window expires
    t.require(harness.wait_until(lambda: status(u1).get("iteration") == 2, 10), "iteration 2 starts")
    r = proto.start_fl_job(u1, "Lenet", "dev-a", 30)
    t.check(r.retcode == 200 and r.msg.get("iteration") == 2 and r.msg.get("feature_map") == model1,
            "iteration 2 hands out the model of iteration 1", r)
    t.require(harness.wait_until(lambda: status(u1).get("iteration") == 3, WINDOW_MS / 1000 + 10),
              "the expired window abandons iteration 2", status(u1))
    t.check(tc.daemons[0].wait_log("Iteration 2 was abandoned", 1, 5), "the server logs the abandonment")
    t.check(proto.fetch_model(u1)[2] == model1 and status(u1).get("model_iteration") == 1,
            "the abandoned iteration kept the model", status(u1))
    r = proto.get_model(u1, "Lenet", 2)
    t.check(r.retcode == 200 and r.msg.get("iteration") == 1 and r.msg.get("feature_map") == model1,
            "getModel of the abandoned iteration: the model of iteration 1", r)
    t.check(proto.fetch_model(u1, 2)[0] == 404, "GET /model?iteration=2: no such model (404)")

    # ---- iteration 3, the last
    for url, dev in ((u1, "dev-a"), (u2, "dev-b")):
        r = proto.start_fl_job(url, "Lenet", dev, 10)
        t.check(r.retcode == 200 and r.msg.get("iteration") == 3, "%s is selected in iteration 3" % dev, r)
    up3a, up3b = upload(model1, 0.5, 10), upload(model1, -0.25, 10)
    t.check(proto.update_model(u1, "Lenet", "dev-a", 3, up3a).retcode == 200, "dev-a's last update is accepted")
    t.check(proto.update_model(u1, "Lenet", "dev-b", 3, up3b).retcode == 200, "dev-b's last update is accepted")
    final = mean([up3a, up3b], 20)
    t.require(harness.wait_until(lambda: all(status(u).get("phase") == "FINISHED" for u in (u1, u2)), 15),
              "the job finishes after 3 iterations", (status(u1), status(u2)))
    r = proto.start_fl_job(u2, "Lenet", "late", 10)
    t.check(r.text == DISABLED_TEXT, "after the job, startFLJob is disabled", r)
    r = proto.update_model(u2, "Lenet", "dev-a", 3, up3a)
    t.check(r.text == DISABLED_TEXT, "after the job, updateModel is disabled", r)
    r = proto.get_model(u2, "Lenet", 3)
    t.check(r.retcode == 200 and r.msg.get("iteration") == 3 and r.msg.get("feature_map") == final,
            "after the job, getModel serves the final model", r)
    st, raw_final, _ = proto.fetch_model(u2, 3)
    t.check(st == 200 and proto.fetch_model(u2, 1)[1] == raw1, "GET /model keeps the checkpoints of 1 and 3")

    # ---- a restarted server restores the final model from its checkpoint
    d = tc.daemons[0]
    d.stop()
    d2 = tc.c.start_server(port=d.port, state_dir=d.state_dir, extra=tc.server_extra)
    t.check(d2.wait_log("Restored the model of iteration 3", 1, 10), "a restarted server restores iteration 3",
            d2.tail(8))
    t.check(proto.fetch_model(u1)[1] == raw_final, "and serves it byte for byte")

    # ---- a server without a model joins; its rounds say why they cannot serve
    c2 = harness.Cluster(t, server_num=1, name="sched2")
    c2.start_scheduler()
    s3 = c2.start_server()
    u3 = "http://127.0.0.1:%d" % s3.port
    t.check(s3.wait_log("No model", 1, 5), "a server without a model warns at start")
    t.require(c2.wait_ready(20), "its cluster forms")
    harness.wait_until(lambda: status(u3).get("phase") == "COLLECTING", 10)
    r = proto.start_fl_job(u3, "Lenet", "dev-x", 10)
    t.check(r.retcode == 500 and "--model_path" in (r.msg.get("reason") or ""),
            "its startFLJob answers SystemError naming --model_path", r)
    r = proto.get_model(u3, "Lenet", 1)
    t.check(r.retcode == 500, "so does getModel", r)
    t.check(proto.fetch_model(u3)[0] == 404, "it has no model to download")
    t.check(r.text != SAFEMODE_TEXT, "(and it is not in safemode)")


harness.run_test("rounds", main, timeout=180)
