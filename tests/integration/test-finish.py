#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flctl finish in the corner cases: two operators finish at once (both are
answered with the same list), a frozen server is not reported as stopped,
and a second scheduler refuses a state directory that is in use."""

import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NODE_TIMEOUT = 3


def stopped_lines(out):
    return sorted(ln for ln in out.splitlines() if ln.startswith("Stopped "))


def concurrent_finish(t):
    c = harness.Cluster(t, server_num=2, node_timeout=NODE_TIMEOUT, name="sched-a")
    c.start_scheduler()
    servers = [c.start_server(node_id="fin-a-%d" % i) for i in range(2)]
    t.require(c.wait_ready(), "two servers form a READY cluster", c.state())

    # A second scheduler on the same state directory is refused before it touches the database.
    argv = c.scheduler_argv()
    argv = [a if not a.startswith("--scheduler_port=") else "--scheduler_port=%d" % harness.reserve_ports(1)[0]
            for a in argv]
    argv = [a if not a.startswith("--scheduler_manage_port=") else
            "--scheduler_manage_port=%d" % harness.reserve_ports(1)[0] for a in argv]
    second = harness.Daemon(t, "second-scheduler", argv, env=c.env()).start()
    rc = second.wait(10)
    t.check(rc not in (None, 0) and "state directory" in second.log(),
            "a second fl-schedulerd on the same state directory refuses to start", (rc, second.tail(5)))
    t.check(c.state() == "CLUSTER_READY", "the first scheduler is undisturbed", c.state())

    env = c.env()
    procs = [subprocess.Popen([harness.FLCTL, "--timeout=20", "finish"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
             for _ in range(2)]
    procs.append(subprocess.Popen([harness.FLCTL, "--url", c.base_url, "finish"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL))
    outs = [p.communicate(timeout=30) + (p.returncode,) for p in procs]
    for i, (out, err, rc) in enumerate(outs):
        t.check(rc == 0, "concurrent finish #%d exits 0" % (i + 1), (rc, out, err))
        t.check(len(stopped_lines(out)) == 3, "concurrent finish #%d lists 2 servers and the scheduler" % (i + 1),
                out)
    t.check(stopped_lines(outs[0][0]) == stopped_lines(outs[1][0]) == stopped_lines(outs[2][0]),
            "every concurrent finish prints the same nodes", [o[0] for o in outs])
    for s in servers:
        t.check(s.wait(10) == 0, "server %s exits 0" % s.node_id_arg, s.poll())
    t.check(c.scheduler.wait(10) == 0, "the scheduler exits 0", c.scheduler.poll())


def frozen_server(t):
    c = harness.Cluster(t, server_num=2, node_timeout=NODE_TIMEOUT, name="sched-b")
    c.start_scheduler()
    good = c.start_server(node_id="fin-good")
    hung = c.start_server(node_id="fin-hung")
    t.require(c.wait_ready(), "two servers form a READY cluster", c.state())

    hung.signal_group(signal.SIGSTOP)
    t0 = time.monotonic()
    rc, out, err = c.flctl("finish", timeout=40)
    t.check(rc == 0, "finish with a frozen server still completes (took %.1fs)" % (time.monotonic() - t0),
            (rc, out, err))
    lines = stopped_lines(out)
    t.check(any("fin-good" in ln for ln in lines), "the live server is reported stopped", out)
    t.check(not any("fin-hung" in ln for ln in lines), "the frozen server is NOT reported stopped", out)
    t.check(harness.wait_until(lambda: "fin-hung" in c.scheduler.log() and "did not" in c.scheduler.log(), 5),
            "the scheduler log says the frozen server did not stop", c.scheduler.tail(10))
    t.check(good.wait(10) == 0, "the live server exits 0", good.poll())
    t.check(hung.running(), "the frozen server is still there (it was never stopped)")
    hung.signal_group(signal.SIGCONT)
    hung.stop()


def main(t):
    concurrent_finish(t)
    frozen_server(t)


harness.run_test("finish", main, timeout=150)
