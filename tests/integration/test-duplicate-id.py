#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A second server claiming a live node id is refused with a clear log
line and exits non-zero; the first keeps its rank and stays alive. A
server beyond server_num is refused too. The same at the protocol level:
REGISTER_REPLY {"ok":false,"error":...} and a close."""

import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import WIRE_REGISTER, WIRE_REGISTER_REPLY, connect, read_frame, read_until_closed, wire_frame  # noqa: E402

NODE_TIMEOUT = 3
CLEAR = re.compile(r"refus|reject|already|duplicate|in use|alive|taken|exists|full|server_num|no free|beyond",
                   re.IGNORECASE)


def refusal_lines(d, sched_log_before, c, needle):
    """Lines naming needle in the refused server's log (minus our command-line
    echo) and in what the scheduler logged since the attempt started."""
    own = d.log().split("\n", 1)[1] if "\n" in d.log() else ""
    sched = c.scheduler.log()[len(sched_log_before):]
    return [ln.strip() for ln in (own + "\n" + sched).splitlines() if needle in ln and CLEAR.search(ln)]


def attempt(t, c, node_id, label, needles):
    before = c.scheduler.log()
    d = c.start_server(node_id=node_id, wait=False, name="server-" + label.replace(" ", "-"))
    t0 = time.monotonic()
    rc = d.wait(10)
    t.check(rc == 78, "%s: the refused fl-serverd exits 78 (FL_EXIT_REFUSED, took %.1fs)"
            % (label, time.monotonic() - t0),
            "exit status %s; log:\n%s" % (rc, d.tail(15)))
    if rc is None:
        d.stop()
    t.check(harness.SERVER_STARTED not in d.log(), "%s: it never logs '%s'" % (label, harness.SERVER_STARTED),
            d.tail(10))
    lines = []
    for n in needles:
        lines = refusal_lines(d, before, c, n)
        if lines:
            break
    t.check(lines, "%s: a log line names %s and says why" % (label, " or ".join(needles)),
            "server log:\n%s\nscheduler log since:\n%s" % (d.tail(10), c.scheduler.log()[len(before):][-1500:]))
    if lines:
        t.note("refusal: %s" % lines[0])


def raw_register(t, c, node_id, label, needles):
    s = connect("127.0.0.1", c.scheduler_port)
    try:
        s.sendall(wire_frame(WIRE_REGISTER, {"node_id": node_id, "role": "SERVER", "address": "127.0.0.1",
                                             "fl_server_port": harness.reserve_ports(1)[0], "pid": os.getpid(),
                                             "server_num": c.server_num}))
        f = read_frame(s, 5)
        closed, elapsed, rest = read_until_closed(s, 5)
    finally:
        s.close()
    ok = (f is not None and f[0] == WIRE_REGISTER_REPLY and isinstance(f[1], dict) and f[1].get("ok") is False
          and isinstance(f[1].get("error"), str))
    t.check(ok, "%s: REGISTER is answered {\"ok\":false,\"error\":...}" % label, f)
    if ok:
        t.check(any(n in f[1]["error"] for n in needles), "%s: the error names %s" % (label, " or ".join(needles)),
                f[1]["error"])
        t.check(f[1].get("retry") is False, "%s: the refusal says \"retry\":false (wire-protocol.h)" % label, f[1])
    t.check(closed, "%s: then the scheduler closes the connection" % label, "open after 5s")


def main(t):
    c = harness.Cluster(t, server_num=2, node_timeout=NODE_TIMEOUT)
    c.start_scheduler()
    a = c.start_server(node_id="dup-a", name="server-a")
    b = c.start_server(node_id="dup-b", name="server-b")
    t.require(c.wait_ready(15), "servers dup-a and dup-b make the cluster READY", c.state())
    ranks = harness.ranks_by_id(c.nodes())
    t.require(sorted(ranks) == ["dup-a", "dup-b"], "/nodes lists dup-a and dup-b", ranks)

    attempt(t, c, "dup-a", "second dup-a", ["dup-a"])
    t.check(c.state() == "CLUSTER_READY", "second dup-a: the cluster stays READY", c.state())
    t.check(harness.ranks_by_id(c.nodes()) == ranks, "second dup-a: the first dup-a keeps its rank", c.nodes())
    t.check(a.running() and b.running(), "second dup-a: the first dup-a's process is still running", a.poll())

    raw_register(t, c, "dup-b", "raw REGISTER of live dup-b", ["dup-b"])

    attempt(t, c, "dup-c", "third server with server_num=2", ["dup-c", "server_num"])
    raw_register(t, c, "dup-raw", "raw REGISTER of a third node id", ["dup-raw", "server_num"])

    time.sleep(NODE_TIMEOUT + 1)
    nodes = c.nodes() or []
    t.check(c.state() == "CLUSTER_READY", "node_timeout+1s later the cluster is still READY", c.state())
    t.check(harness.ranks_by_id(nodes) == ranks and all(n.get("alive") is True for n in nodes),
            "node_timeout+1s later /nodes is dup-a and dup-b, alive, same ranks (nobody was displaced)", nodes)
    t.check(a.count(harness.SERVER_STARTED) == 1 and b.count(harness.SERVER_STARTED) == 1 and a.running()
            and b.running(), "the original servers kept running undisturbed", (a.poll(), b.poll()))


harness.run_test("duplicate-id", main, timeout=120)
