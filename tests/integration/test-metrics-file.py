#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The scheduler's metrics file (metrics_file): one JSON line per iteration
with MindSpore's metrics.json fields, from devices of our own (fl_proto.py)
whose requests and pushed metrics are known, so that every count and mean
can be checked exactly: the loss and accuracy means of the pushed values
(a NaN left out), startFLJob/updateModel/getModel totals, accepted and
rejected across both servers, success and fail (an abandoned iteration).
Then SIGKILLs of the scheduler while iterations keep ending (short windows,
no devices): the file stays valid JSON lines, with each iteration exactly
once and none missing. A torn last line (left as a crash in the middle of a
write would) is cut off at the next start, and GET /iterations serves the
file's lines."""

import json
import math
import os
import random
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fl_proto  # noqa: E402
from fl_proto import SUCCEED  # noqa: E402

INITIAL = [("w", [1.0, 2.0, 3.0, 4.0]), ("b", [0.5])]
JOB = {"fl_name": "MetricsJob", "fl_iteration_num": 3, "start_fl_job_threshold": 2, "update_model_ratio": 1.0,
       "start_fl_job_time_window": 60000, "update_model_time_window": 60000}
# Iterations that end by themselves, quickly: nobody comes.
ABANDON_JOB = {"fl_name": "Empty", "fl_iteration_num": 100000, "start_fl_job_threshold": 1,
               "start_fl_job_time_window": 300, "update_model_time_window": 300}
KEYS = ["instanceName", "flName", "instanceStatus", "flIterationNum", "currentIteration", "startTime", "endTime",
        "metricsAuc", "metricsLoss", "iterationExecutionTime", "clientVisitedInfo", "iterationResult"]
VISITED = ["startFLJobTotalClientNum", "startFLJobAcceptClientNum", "startFLJobRejectClientNum",
           "updateModelTotalClientNum", "updateModelAcceptClientNum", "updateModelRejectClientNum",
           "getModelTotalClientNum", "getModelAcceptClientNum", "getModelRejectClientNum"]
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")


def read_lines(path):
    """(parsed lines, raw lines that are not JSON objects, whether the file ends in a newline)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], [], True
    good, bad = [], []
    for raw in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
        try:
            o = json.loads(raw.decode("utf-8"))
            (good if isinstance(o, dict) else bad).append(o if isinstance(o, dict) else raw)
        except (ValueError, UnicodeDecodeError):
            bad.append(raw)
    return good, bad, data.endswith(b"\n") or not data


def exact_counts(t, proto):
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, local=True, name="exact")
    c, (u0, u1) = tc.c, tc.urls
    path = os.path.join(c.sched_state_dir, "metrics.json")
    t.require(c.wait_ready(20) and tc.wait_iteration(1), "a cluster of 2 servers is in iteration 1", tc.state())

    # Iteration 1: two devices admitted (one through each server), a third
    # turned away; four pushMetrics, one of them NaN; both updates.
    base = proto.fetch_model(u0)[2]
    t.check(proto.start_fl_job(u0, "MetricsJob", "dev-a", 10).retcode == SUCCEED, "dev-a is admitted via server 0")
    t.check(proto.start_fl_job(u1, "MetricsJob", "dev-b", 30).retcode == SUCCEED, "dev-b is admitted via server 1")
    t.check(proto.start_fl_job(u0, "MetricsJob", "dev-c", 5).retcode != SUCCEED, "dev-c is turned away (full)")
    for url, loss, acc in ((u1, 1.0, 0.25), (u0, 3.0, 0.75), (u0, 2.0, 0.5), (u1, float("nan"), 0.5)):
        r = proto.push_metrics(url, loss, acc)
        t.check(r.retcode == SUCCEED, "pushMetrics loss %s accuracy %s is taken" % (loss, acc), r)
    t.check(proto.get_model(u1, "MetricsJob", 1).retcode != SUCCEED, "getModel before the model is ready: refused")
    for url, dev, ds in ((u1, "dev-a", 10), (u0, "dev-b", 30)):
        r = proto.update_model(url, "MetricsJob", dev, 1, fl_proto.upload(base, 0.5, ds))
        t.check(r.retcode == SUCCEED, "%s's update is acknowledged" % dev, r)
    t.require(tc.wait_iteration(2), "iteration 1 completes", tc.state())
    t.check(proto.get_model(u0, "MetricsJob", 1).retcode == SUCCEED, "getModel of iteration 1's model")
    # Iteration 2: one device, no metrics; then it is given up on by nobody: 3 iterations.
    base = proto.fetch_model(u0)[2]
    for url, dev in ((u0, "dev-d"), (u1, "dev-e")):
        t.check(proto.start_fl_job(url, "MetricsJob", dev, 7).retcode == SUCCEED, "%s is admitted" % dev)
        t.check(proto.update_model(url, "MetricsJob", dev, 2, fl_proto.upload(base, 1.0, 7)).retcode == SUCCEED,
                "%s's update is acknowledged" % dev)
    t.require(tc.wait_iteration(3), "iteration 2 completes", tc.state())

    lines, bad, whole = read_lines(path)
    t.require(len(lines) == 2 and not bad and whole, "the metrics file has one valid line per ended iteration (2)",
              (lines, bad))
    first, second = lines
    t.check(list(first.keys()) == KEYS, "a line has MindSpore's fields, in its order", list(first.keys()))
    t.check(first["flName"] == "MetricsJob" and first["flIterationNum"] == 3 and first["currentIteration"] == 1
            and first["iterationResult"] == "success" and first["instanceStatus"] == "running",
            "line 1: the job, iteration 1, success, running", first)
    t.check(first["metricsLoss"] == 2.0 and first["metricsAuc"] == 0.5 and isinstance(first["metricsLoss"], float),
            "line 1: the means of the pushed loss (1, 3, 2) and accuracy (.25, .75, .5), the NaN left out", first)
    v = first["clientVisitedInfo"]
    t.check(list(v.keys()) == VISITED, "clientVisitedInfo has MindSpore's nine counts", v)
    t.check((v["startFLJobTotalClientNum"], v["startFLJobAcceptClientNum"], v["startFLJobRejectClientNum"])
            == (3, 2, 1), "line 1: startFLJob 3 requests over both servers, 2 accepted, 1 rejected", v)
    t.check((v["updateModelTotalClientNum"], v["updateModelAcceptClientNum"], v["updateModelRejectClientNum"])
            == (2, 2, 0), "line 1: updateModel 2 requests, both accepted", v)
    t.check((v["getModelTotalClientNum"], v["getModelRejectClientNum"]) == (1, 1),
            "line 1: the early getModel counted as a rejected request", v)
    t.check(TIME_RE.match(first["startTime"]) and TIME_RE.match(first["endTime"]) and
            first["startTime"] <= first["endTime"] <= second["startTime"],
            "startTime and endTime in MindSpore's format, in order", (first, second))
    t.check(isinstance(first["iterationExecutionTime"], int) and first["iterationExecutionTime"] >= 0,
            "iterationExecutionTime in ms", first["iterationExecutionTime"])
    t.check(second["metricsAuc"] is None and second["metricsLoss"] is None,
            "line 2: no pushMetrics, so null (not 0, not NaN)", second)
    t.check(second["clientVisitedInfo"]["getModelAcceptClientNum"] >= 1 and
            second["clientVisitedInfo"]["updateModelAcceptClientNum"] == 2,
            "line 2: its own counts (the getModel of iteration 1's model counts in iteration 2)", second)
    t.check(first["instanceName"] == second["instanceName"] and first["instanceName"].startswith("MetricsJob-"),
            "one instance name, after the job", (first["instanceName"], second["instanceName"]))

    r = c.http("GET", "/iterations")
    t.check(r.status == 200 and r.json.get("iterations") == lines and r.json.get("instance_name") ==
            first["instanceName"], "GET /iterations serves the file's lines", r)
    r = c.http("GET", "/iteration")
    t.check(r.status == 200 and r.json.get("iteration") == 3 and r.json.get("start_fl_job_threshold") == 2 and
            r.json.get("admitted") == 0 and r.json.get("phase") == "COLLECTING",
            "GET /iteration: the current iteration against its threshold", r)


def sigkill_loop(t, proto):
    tc = fl_proto.TrainingCluster(t, proto, 1, ABANDON_JOB, INITIAL, name="kill", node_timeout=10)
    c = tc.c
    path = os.path.join(c.sched_state_dir, "metrics.json")
    t.require(c.wait_ready(20), "a cluster whose iterations are abandoned every 300 ms is ready", c.state())
    t.require(harness.wait_until(lambda: len(read_lines(path)[0]) >= 2, 20), "abandoned iterations are written")
    rng = random.Random(5)
    for i in range(6):
        time.sleep(rng.uniform(0.2, 1.2))
        c.scheduler.kill9()
        c.restart_scheduler()
    before = len(read_lines(path)[0])
    t.check(harness.wait_until(lambda: len(read_lines(path)[0]) >= before + 3, 30),
            "iterations go on being written after 6 SIGKILLs", before)
    c.scheduler.stop()

    lines, bad, whole = read_lines(path)
    numbers = [e.get("currentIteration") for e in lines]
    t.check(not bad and whole, "after 6 SIGKILLs every line of the file is a whole JSON object", bad[:3])
    t.check(numbers == list(range(1, len(numbers) + 1)),
            "each iteration has exactly one line, none missing (1..%d)" % len(numbers), numbers)
    t.check(all(e["iterationResult"] == "fail" and e["metricsAuc"] is None for e in lines),
            "every one of them abandoned (fail), without metrics", lines[:2])
    t.check(len({e["instanceName"] for e in lines}) == 1, "one instance name across the restarts",
            {e["instanceName"] for e in lines})

    # A line torn by a crash: cut off at the next start.
    with open(path, "ab") as f:
        f.write(b'{"instanceName":"torn","currentIter')
    c.restart_scheduler()
    t.check(c.scheduler.wait_log("torn line", timeout=10), "the scheduler says it cut a torn line off",
            c.scheduler.tail())
    n = len(lines)
    t.check(harness.wait_until(lambda: len(read_lines(path)[0]) >= n + 2, 30), "new lines follow the cut")
    c.scheduler.stop()
    lines, bad, whole = read_lines(path)
    numbers = [e.get("currentIteration") for e in lines]
    t.check(not bad and whole and numbers == list(range(1, len(numbers) + 1)),
            "the torn bytes are gone and the iterations still run 1..%d" % len(numbers), (bad, numbers))


def main(t):
    proto = fl_proto.Proto(t.tmp)
    exact_counts(t, proto)
    sigkill_loop(t, proto)


harness.run_test("metrics-file", main, timeout=180)
