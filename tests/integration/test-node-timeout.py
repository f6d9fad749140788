#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A server killed with SIGKILL makes the cluster NODE_TIMEOUT after
node_timeout, and it is shown dead; restarted with the same node id (given
by --node_id, kept in the state directory, or from $MS_NODE_ID) it gets its
rank back and the cluster is READY again. A new node id does not take the
dead node's rank."""

import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import UUID_RE, wait_until  # noqa: E402

NODE_TIMEOUT = 3
DETECT_MAX = NODE_TIMEOUT + 3       # silence starts at most one heartbeat (1s) before the kill


def files_containing(directory, needle):
    hits = []
    for root, _, files in os.walk(directory):
        for f in files:
            try:
                with open(os.path.join(root, f), "rb") as fh:
                    if needle.encode() in fh.read():
                        hits.append(os.path.relpath(os.path.join(root, f), directory))
            except OSError:
                pass
    return hits


def kill_and_expect_timeout(t, c, d, node_id, other_id, label):
    t0 = time.monotonic()
    d.kill9()
    t.check(d.poll() is not None, "%s: SIGKILL to fl-serverd (process group %d)" % (label, d.pid), d.poll())
    ok = c.wait_state("NODE_TIMEOUT", DETECT_MAX)
    elapsed = time.monotonic() - t0
    t.check(ok, "%s: /state becomes NODE_TIMEOUT within %ds of the kill (took %.1fs)" % (label, DETECT_MAX, elapsed),
            c.state())
    nodes = c.nodes() or []
    me = [n for n in nodes if n.get("node_id") == node_id]
    other = [n for n in nodes if n.get("node_id") == other_id]
    t.check(len(me) == 1 and me[0].get("alive") is False,
            "%s: /nodes still lists %s, with alive false" % (label, node_id), nodes)
    t.check(len(other) == 1 and other[0].get("alive") is True, "%s: the other server %s stays alive"
            % (label, other_id), nodes)
    rc, out, err = c.flctl("state")
    t.check(rc == 0 and "NODE_TIMEOUT" in out, "%s: flctl state says NODE_TIMEOUT" % label, (rc, out, err))
    return elapsed


def expect_back(t, c, d, node_id, rank, label):
    t.check(d.running(), "%s: the restarted fl-serverd is running and logged '%s'" % (label, harness.SERVER_STARTED),
            d.tail())
    t.check(c.wait_ready(10), "%s: the cluster is CLUSTER_READY again" % label, c.state())
    n = c.node(node_id)
    t.check(n is not None and n.get("rank_id") == rank and n.get("alive") is True,
            "%s: %s is alive with its old rank %s" % (label, node_id, rank), c.nodes())
    t.check(len(c.nodes() or []) == 2, "%s: /nodes still lists exactly 2 nodes" % label, c.nodes())


def main(t):
    c = harness.Cluster(t, server_num=2, node_timeout=NODE_TIMEOUT)
    c.start_scheduler()
    dir_a, dir_b = os.path.join(t.tmp, "srv-a"), os.path.join(t.tmp, "srv-b")
    a = c.start_server(node_id="itest-node-a", state_dir=dir_a, name="server-a")
    b = c.start_server(state_dir=dir_b, name="server-b")
    t.require(c.wait_ready(15), "2 servers (separate processes) make the cluster READY", c.state())
    ranks = harness.ranks_by_id(c.nodes())
    t.require("itest-node-a" in ranks, "/nodes lists the node id given by --node_id", ranks)
    id_b = [i for i in ranks if i != "itest-node-a"][0] if len(ranks) == 2 else None
    t.require(id_b is not None, "/nodes lists a second node", ranks)
    t.check(UUID_RE.match(id_b), "a server without --node_id gets a generated UUID (%s)" % id_b, id_b)
    t.check(files_containing(dir_b, id_b), "the generated node id is kept in the state directory",
            os.listdir(dir_b) if os.path.isdir(dir_b) else "no state directory")
    time.sleep(NODE_TIMEOUT + 1)
    t.check(c.state() == "CLUSTER_READY", "after node_timeout+1s of heartbeats the cluster is still READY", c.state())

    # ---- 0: a server that stays connected but falls silent (SIGSTOP): only heartbeats tell
    t0 = time.monotonic()
    b.signal_group(signal.SIGSTOP)
    ok = c.wait_state("NODE_TIMEOUT", DETECT_MAX)
    t.check(ok, "SIGSTOP B (connected, silent): /state becomes NODE_TIMEOUT within %ds (took %.1fs)"
            % (DETECT_MAX, time.monotonic() - t0), c.state())
    n = c.node(id_b)
    t.check(n is not None and n.get("alive") is False, "SIGSTOP B: /nodes shows B alive false", n)
    b.signal_group(signal.SIGCONT)
    t0 = time.monotonic()
    ok = c.wait_ready(10)
    t.check(ok, "SIGCONT B: it comes back by itself and the cluster is READY within 10s (took %.1fs)"
            % (time.monotonic() - t0), c.state())
    t.check(harness.ranks_by_id(c.nodes()) == ranks and all(n.get("alive") is True for n in c.nodes() or []),
            "SIGCONT B: both nodes alive with their ranks", c.nodes())

    # ---- 1: SIGKILL, timeout, restart with the same --node_id
    kill_and_expect_timeout(t, c, a, "itest-node-a", id_b, "kill A")
    time.sleep(1)
    t.check(c.state() == "NODE_TIMEOUT", "kill A: the state stays NODE_TIMEOUT while A is away", c.state())

    intruder = c.start_server(node_id="itest-intruder", wait=False, name="server-intruder")
    rc = intruder.wait(10)
    t.check(rc not in (None, 0), "kill A: a new node id (itest-intruder) does not get the dead node's rank: "
            "its fl-serverd exits non-zero", "exit status %s; log:\n%s" % (rc, intruder.tail(10)))
    if rc is None:
        intruder.stop()
    t.check(c.node("itest-intruder") is None and c.node("itest-node-a").get("rank_id") == ranks["itest-node-a"],
            "kill A: /nodes has no itest-intruder and A keeps its rank", c.nodes())

    a2 = c.start_server(node_id="itest-node-a", state_dir=dir_a, port=a.port, name="server-a-again")
    expect_back(t, c, a2, "itest-node-a", ranks["itest-node-a"], "restart A with --node_id")

    # ---- 2: a generated id survives a restart (node-id file in the state directory)
    kill_and_expect_timeout(t, c, b, id_b, "itest-node-a", "kill B")
    b2 = c.start_server(state_dir=dir_b, port=b.port, name="server-b-again")
    expect_back(t, c, b2, id_b, ranks[id_b], "restart B without --node_id, same state_dir and port")

    # ---- 3: restarted at once, as systemd does (Restart=on-failure, RestartSec=1s),
    # with the identity from $MS_NODE_ID and a fresh state directory
    t0 = time.monotonic()
    a2.kill9()
    attempts, a3 = 0, None
    while time.monotonic() - t0 < NODE_TIMEOUT + 10:
        attempts += 1
        a3 = c.start_server(state_dir=os.path.join(t.tmp, "srv-a-fresh"), port=a.port,
                            env={"MS_NODE_ID": "itest-node-a"}, wait=False, name="server-a-msnodeid")
        if a3.wait_log(harness.SERVER_STARTED, 1, timeout=NODE_TIMEOUT + 10 - (time.monotonic() - t0)):
            break
        if a3.running():
            break
        time.sleep(1)
    started = a3 is not None and a3.count(harness.SERVER_STARTED) == 1 and a3.running()
    t.check(started, "restart A at once with MS_NODE_ID=itest-node-a, restarting it like systemd: it registers "
            "within %ds (took %.1fs, %d start(s))" % (NODE_TIMEOUT + 10, time.monotonic() - t0, attempts),
            "exit status %s; log:\n%s" % (a3.poll(), a3.tail(15)))
    if attempts > 1:
        t.note("the first restart(s) were refused: the scheduler had not yet noticed that the killed server's "
               "connection was closed")
    if started:
        expect_back(t, c, a3, "itest-node-a", ranks["itest-node-a"], "restart A with MS_NODE_ID")

    t.check(wait_until(lambda: c.state() == "CLUSTER_READY", 2) and time.sleep(NODE_TIMEOUT + 1) is None
            and c.state() == "CLUSTER_READY", "finally the cluster stays READY through node_timeout+1s", c.state())


harness.run_test("node-timeout", main, timeout=150)
