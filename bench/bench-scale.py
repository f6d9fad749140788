#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""How long elastic scaling takes (issue: elastic scaling, benchmark):
from POST /scaleout to CLUSTER_READY with the new servers holding the model
and serving, and from POST /scalein to the leavers' exit, with a LeNet-size
and an 11M-parameter model. The new servers start without --model_path, so
the time includes fetching the model from a peer; as a reference measured
in the same run, the script downloads the model once itself (GET /model)
and prints each scale-out as a multiple of that download.

    FL_BUILDDIR=_build bench/bench-scale.py [--runs N]

Uses the integration harness (tests/integration/harness.py) for ports,
processes and the private D-Bus daemon; everything stops at the end."""

import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 3
MODELS = [("LeNet-5 (61,684 floats)", None), ("11M floats", 11000000)]


def make_model(t, floats):
    path = os.path.join(t.tmp, "model-%s.fl" % (floats or "lenet5"))
    if floats is None:
        cmd = [os.path.join(harness.BUILDDIR, "fl-client"), "init-model", "--arch", "lenet5", "--seed", "1", "-o", path]
    else:
        cmd = [os.path.join(harness.BUILDDIR, "bench-model"), "--floats", str(floats), "-o", path]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return path


def wait(pred, timeout, what):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.005)
    raise harness.Failure("%s: not within %ds" % (what, timeout))


def one_run(t, model_path, label, n):
    c = harness.Cluster(t, server_num=2, node_timeout=30, name="sched-%s-%d" % (label[:5], n))
    # No iteration ends during the run: the model is the initial one throughout.
    c.start_scheduler(extra=["--start_fl_job_threshold=1000000", "--fl_iteration_num=100"])
    extra = ["--model_path=" + model_path, "--max_request_size_mb=512"]
    first = c.start_server(local_server_num=2, extra=extra, timeout=60)
    wait(lambda: c.state() == "CLUSTER_READY", 60, "the first two servers")
    ports = first.ports
    # The reference: one download of the model by a plain client.
    t0 = time.monotonic()
    with urllib.request.urlopen("http://127.0.0.1:%d/model" % ports[0], timeout=60) as r:
        size = len(r.read())
    download = time.monotonic() - t0

    t0 = time.monotonic()
    r = c.http("POST", "/scaleout", {"worker_num": 0, "server_num": 2})
    t.require(r.status == 200, "%s run %d: POST /scaleout is accepted" % (label, n), r.json)
    c.server_num = 4
    new = c.start_server(local_server_num=2, extra=["--max_request_size_mb=512"], wait=False, name="new")
    wait(lambda: c.state() == "CLUSTER_READY", 120, "scale-out")
    scale_out = time.monotonic() - t0
    nodes = c.nodes()
    leavers = [x for x in nodes if x["fl_server_port"] in new.ports]
    t.require(len(nodes) == 4 and len(leavers) == 2 and all(x.get("in_sync") for x in nodes),
              "%s run %d: after the scale-out 4 servers hold the model" % (label, n), nodes)

    t0 = time.monotonic()
    r = c.http("POST", "/scalein", {"node_ids": [x["node_id"] for x in leavers]})
    t.require(r.status == 200, "%s run %d: POST /scalein is accepted" % (label, n), r.json)
    wait(lambda: all(harness.pid_gone(x["pid"]) for x in leavers), 60, "the leavers' exit")
    scale_in = time.monotonic() - t0
    c.flctl("finish", url=True, timeout=60)
    return size, download, scale_out, scale_in


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def main(t):
    rows = []
    for label, floats in MODELS:
        path = make_model(t, floats)
        runs = [one_run(t, path, label, i) for i in range(RUNS)]
        size = runs[0][0]
        dl, so, si = (median([r[k] for r in runs]) for k in (1, 2, 3))
        rows.append((label, size, dl, so, si, [r[2] for r in runs], [r[3] for r in runs]))
        t.note("%s: measured %d runs" % (label, RUNS))
    print("\nScaling 2 -> 4 -> 2 servers (%d CPUs; medians of %d runs)" % (os.cpu_count(), RUNS))
    print("%-26s %10s %12s %14s %10s %12s" % ("model", "bytes", "download s", "scale-out s", "x download", "scale-in s"))
    for label, size, dl, so, si, sos, sis in rows:
        print("%-26s %10d %12.3f %14.3f %10.1f %12.3f" % (label, size, dl, so, so / dl if dl else 0, si))
        print("%-26s runs: scale-out %s, scale-in %s" % ("", " ".join("%.3f" % x for x in sos),
                                                         " ".join("%.3f" % x for x in sis)))


harness.run_test("bench-scale", main, timeout=900)
