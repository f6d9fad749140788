#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""How long disaster recovery takes: a scheduler and two servers on loopback,
an iteration open (the admission threshold out of reach, day-long windows)
with N acknowledged updates in the update log of the rank-0 server (the
victim). Every run is a fresh cluster; medians of --runs runs.

(a) server: SIGKILL of rank 0, restarted at once by this script (same argv,
    port and state directory); serving again = the first startFLJob on its
    port answered with a protocol answer (not the safemode text): it has
    registered, replayed its log to the scheduler and rebuilt its running
    sum. Measured with N = 0, 50 and 200 logged LeNet-5 updates, and 50
    updates of a --large model (1M floats; --large 0 skips it). The parts,
    as seen in the server's log: process start (exec to "Server started
    successfully.", i.e. registered) and replay (to "Replayed N logged
    updates"); the log has no timestamps, so the script notes when each
    line appears while it probes (every few ms).
(b) scheduler: SIGKILL of fl-schedulerd, restarted at once (same argv and
    state directory); serving again = GET /state says CLUSTER_READY and a
    device's startFLJob on the victim's port is SUCCEED (selected). Parts:
    REST answering again, CLUSTER_READY (the servers reconnected after their
    backoff, registered and replayed), startFLJob.

Every run checks that the recovery lost nothing: the victim replays all N
updates into its sum (its log says so), the restarted scheduler counts N,
and an update sent after the recovery is SUCCEED.

    FL_BUILDDIR=_build bench/bench-recovery.py [--runs N] [--large FLOATS]

Uses the integration harness (tests/integration/harness.py, fl_proto.py)
for ports, processes, the private D-Bus daemon and the device protocol;
everything stops at the end."""

import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import fl_proto  # noqa: E402
import harness  # noqa: E402


def arg(name, default):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


RUNS = arg("--runs", 3)
LARGE = arg("--large", 1000000)
FL_NAME = "Lenet"
JOB = {"fl_name": FL_NAME, "fl_iteration_num": 10, "start_fl_job_threshold": 1000000,
       "update_model_ratio": 1.0, "start_fl_job_time_window": 86400000,
       "update_model_time_window": 86400000, "global_iteration_time_window": 172800000}
PROBE_INTERVAL = 0.002
RECOVERY_TIMEOUT = 60
ID_PLACEHOLDER = "dev-XXXXXXXX"
REPLAYED_RE = re.compile(r"Replayed (\d+) logged updates? of iteration (\d+): (\d+) held here, "
                         r"the running sum holds (\d+)")
RESUMED_RE = re.compile(r"Resuming the training job \S+ in iteration (\d+): (\d+) devices admitted, "
                        r"(\d+) updates counted")


def make_model(t, floats):
    path = os.path.join(t.tmp, "model-%s.fl" % (floats or "lenet5"))
    if floats is None:
        cmd = [os.path.join(harness.BUILDDIR, "fl-client"), "init-model", "--arch", "lenet5", "--seed", "1", "-o", path]
    else:
        cmd = [os.path.join(harness.BUILDDIR, "bench-model"), "--floats", str(floats), "-o", path]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return path


class Loaded:
    """A fresh cluster whose rank-0 server has acknowledged n updates."""

    def __init__(self, t, proto, model, label, n, run):
        self.t, self.proto = t, proto
        self.c = harness.Cluster(t, server_num=2, node_timeout=30, name="sched-%s-%d-%d" % (label, n, run))
        self.c.start_scheduler(extra=fl_proto.job_argv(JOB))
        extra = ["--model_path=" + model["path"], "--max_request_size_mb=64"]
        servers = [self.c.start_server(extra=extra, timeout=60) for _ in range(2)]
        t.require(self.c.wait_ready(60), "%s run %d: the cluster is ready" % (label, run), self.c.nodes())
        ranks = {x.get("fl_server_port"): int(x.get("rank_id")) for x in self.c.nodes()}
        self.victim = next(d for d in servers if ranks.get(d.port) == 0)
        self.url = "http://127.0.0.1:%d" % self.victim.port
        self.probes = 0

        # n devices send their update to the victim; one more is admitted and
        # sends its update after the recovery (it must be SUCCEED then).
        conn = fl_proto.KeepAlive(self.url, proto, timeout=30)
        self.iteration = None
        for i in range(n + 1):
            r = conn.call("startFLJob", proto.request_fl_job(FL_NAME, "dev-%08d" % i, data_size=1))
            if r.retcode != fl_proto.SUCCEED or not r.msg.get("is_selected"):
                t.require(False, "device %d is admitted" % i, r)
            self.iteration = r.msg["iteration"]
        body = proto.request_update_model(FL_NAME, ID_PLACEHOLDER, self.iteration, model["weights"],
                                          timestamp="0")
        self.update = lambda i: body.replace(ID_PLACEHOLDER.encode(), b"dev-%08d" % i)
        for i in range(n):
            r = conn.call("updateModel", self.update(i))
            if r.retcode != fl_proto.SUCCEED:
                t.require(False, "update %d of %d is SUCCEED" % (i, n), r)
        conn.close()
        self.n, self.late = n, n

    def probe(self, want_selected):
        """One startFLJob of a new device on the victim: the Reply."""
        self.probes += 1
        body = self.proto.request_fl_job(FL_NAME, "probe-%06d" % self.probes, data_size=1)
        r = self.proto.call(self.url, "startFLJob", body, timeout=10)
        if want_selected and r.msg is not None and not (r.retcode == fl_proto.SUCCEED and r.msg.get("is_selected")):
            r.msg = None        # an answer, not yet the one wanted
        return r

    def late_update(self, label):
        r = self.proto.call(self.url, "updateModel", self.update(self.late), timeout=30)
        self.t.check(r.retcode == fl_proto.SUCCEED, "%s: an update sent after the recovery is SUCCEED" % label, r)


def seen(log, text):
    return (text.search(log) is not None) if hasattr(text, "search") else text in log


def server_run(t, proto, model, n, run):
    label = "server %s N=%d run %d" % (model["label"], n, run)
    lc = Loaded(t, proto, model, model["key"], n, run)
    argv = lc.victim.argv
    t0 = time.monotonic()
    lc.victim.kill9()
    d = harness.Daemon(t, "fl-serverd-restarted", argv, env=lc.c.env()).start()
    t_exec = time.monotonic()
    marks = {"started": None, "replayed": None}
    served = None
    while served is None:
        now = time.monotonic()
        if now - t0 > RECOVERY_TIMEOUT or not d.running():
            t.require(False, "%s: the restarted server serves again" % label, d.tail())
        log = d.log()
        if marks["started"] is None and seen(log, harness.SERVER_STARTED):
            marks["started"] = now
        if marks["replayed"] is None and seen(log, REPLAYED_RE):
            marks["replayed"] = now
        r = lc.probe(False)
        if r.msg is not None:
            served = time.monotonic()
            break
        time.sleep(PROBE_INTERVAL)
    # Lines printed between the last look and the answer count as seen at the answer.
    log = d.log()
    for key, text in (("started", harness.SERVER_STARTED), ("replayed", REPLAYED_RE)):
        if marks[key] is None and seen(log, text):
            marks[key] = served
    total = served - t0
    m = REPLAYED_RE.search(log)
    replayed = (int(m.group(1)), int(m.group(3)), int(m.group(4))) if m else (0, 0, 0)
    t.check(r.retcode == fl_proto.SUCCEED and replayed == (n, n, n),
            "%s: serving again after %.3fs (%s), %d updates replayed, %d in the sum"
            % (label, total, fl_proto.retcode_name(r.retcode), replayed[0], replayed[2]),
            "" if m else d.tail())
    lc.late_update(label)
    start = (marks["started"] - t_exec) if marks["started"] else None
    replay = (marks["replayed"] - marks["started"]) if marks["replayed"] and marks["started"] else None
    return total, start, replay


def scheduler_run(t, proto, model, n, run):
    label = "scheduler %s N=%d run %d" % (model["label"], n, run)
    lc = Loaded(t, proto, model, "s" + model["key"], n, run)
    c = lc.c
    t0 = time.monotonic()
    c.scheduler.kill9()
    d = harness.Daemon(t, "fl-schedulerd-restarted", c.scheduler_argv(c.sched_extra), env=c.env()).start()
    c.scheduler = d
    rest = ready = served = None
    while served is None:
        now = time.monotonic()
        if now - t0 > RECOVERY_TIMEOUT or not d.running():
            t.require(False, "%s: the cluster serves again" % label, d.tail())
        if ready is None:
            r = c.http("GET", "/state", timeout=2)
            if r.status is not None and rest is None:
                rest = time.monotonic()
            if isinstance(r.json, dict) and r.json.get("cluster_state") == "CLUSTER_READY":
                ready = time.monotonic()
                continue
        else:
            r = lc.probe(True)
            if r.msg is not None:
                served = time.monotonic()
                break
        time.sleep(PROBE_INTERVAL)
    m = RESUMED_RE.search(d.log())
    counted = int(m.group(3)) if m else None
    t.check(counted == n and r.msg.get("iteration") == lc.iteration,
            "%s: serving again after %.3fs, iteration %s resumed with %s updates counted"
            % (label, served - t0, r.msg.get("iteration"), counted), "" if m else d.tail())
    lc.late_update(label)
    return served - t0, rest - t0, ready - t0


def median(xs):
    xs = sorted(xs)
    k = len(xs)
    return (xs[k // 2] + xs[(k - 1) // 2]) / 2 if k else None


def fmt(x):
    return "%.3f" % x if x is not None else "-"


def main(t):
    proto = fl_proto.Proto(t.tmp)
    models = [{"key": "lenet5", "label": "LeNet-5", "floats": None}]
    if LARGE:
        models.append({"key": "large", "label": "large", "floats": LARGE})
    for m in models:
        m["path"] = make_model(t, m["floats"])
        with open(m["path"], "rb") as f:
            m["weights"] = proto.parse_model(f.read())
        m["floats"] = sum(len(v) for _, v in m["weights"])

    plan = [("server", models[0], 0), ("server", models[0], 50), ("server", models[0], 200)]
    plan += [("server", m, 50) for m in models[1:]]
    plan += [("scheduler", models[0], 50)]
    rows = []
    for what, model, n in plan:
        fn = server_run if what == "server" else scheduler_run
        runs = [fn(t, proto, model, n, k + 1) for k in range(RUNS)]
        rows.append((what, model, n, runs))
        t.note("%s kill, %s, %d logged: %s s" % (what, model["label"], n, " ".join(fmt(r[0]) for r in runs)))

    print("\nRecovery after SIGKILL and an immediate restart (%d CPUs; %d runs each, fresh cluster each)"
          % (os.cpu_count(), RUNS))
    print("%-14s %-8s %8s %4s %9s %7s %7s   %s" % ("killed", "model", "floats", "N", "median s", "min", "max",
                                                   "parts (medians, s)"))
    for what, model, n, runs in rows:
        totals = [r[0] for r in runs]
        if what == "server":
            starts = [r[1] for r in runs if r[1] is not None]
            replays = [r[2] for r in runs if r[2] is not None]
            parts = "start->registered %s, replay %s" % (fmt(median(starts)), fmt(median(replays)) if n else "-")
        else:
            parts = "REST up %s, CLUSTER_READY %s" % (fmt(median([r[1] for r in runs])),
                                                     fmt(median([r[2] for r in runs])))
        print("%-14s %-8s %8d %4d %9s %7s %7s   %s" % ("fl-%sd" % what, model["label"], model["floats"], n,
                                                       fmt(median(totals)), fmt(min(totals)), fmt(max(totals)),
                                                       parts))
    print("server: SIGKILL -> first startFLJob with a protocol answer on the restarted server's port;"
          " parts from its log lines")
    print("scheduler: SIGKILL -> CLUSTER_READY and a startFLJob SUCCEED on the rank-0 server")


harness.run_test("bench-recovery", main, timeout=1500)
