#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The scheduler is killed with SIGKILL and restarted on the same state
directory: the servers keep running, reconnect with back-off, and keep
their node ids and ranks (read back from the scheduler's SQLite registry,
not re-assigned in reconnection order); the cluster is READY again and
`flctl finish` still stops everyone."""

import os
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import WIRE_REGISTER, WIRE_REGISTER_REPLY, connect, read_frame, wait_until, wire_frame  # noqa: E402

NODE_TIMEOUT = 5
RECONNECT_MAX = 30      # back-off included


def sqlite_wal_files(directory):
    """SQLite databases in directory whose header says WAL (bytes 18, 19 = 2)."""
    found = []
    for f in os.listdir(directory):
        try:
            with open(os.path.join(directory, f), "rb") as fh:
                head = fh.read(100)
        except OSError:
            continue
        if head.startswith(b"SQLite format 3\x00") and head[18] == 2 and head[19] == 2:
            found.append(f)
    return found


def kill_scheduler(t, c, label):
    pid = c.scheduler.pid
    c.scheduler.kill9()
    t.check(c.scheduler.poll() is not None and c.http("GET", "/state").status is None,
            "%s: fl-schedulerd (pid %d) killed with SIGKILL, REST is gone" % (label, pid), c.scheduler.poll())


def main(t):
    c = harness.Cluster(t, server_num=3, node_timeout=NODE_TIMEOUT)
    c.start_scheduler()
    # Three processes started one after the other, so that ranks follow the
    # start order and can be told apart from a re-assignment on reconnect.
    servers = []
    for i in range(3):
        servers.append(c.start_server(node_id="restart-%d" % i, name="server-%d" % i))
        t.require(wait_until(lambda: c.node("restart-%d" % i) is not None, 10),
                  "server restart-%d registers" % i, c.nodes())
    t.require(c.wait_ready(15), "3 servers make the cluster READY", c.state())
    ranks = harness.ranks_by_id(c.nodes())
    t.check(ranks == {"restart-0": "0", "restart-1": "1", "restart-2": "2"},
            "servers started one after another get ranks 0, 1, 2", ranks)
    state_files = os.listdir(c.sched_state_dir) if os.path.isdir(c.sched_state_dir) else []
    t.check(state_files, "the scheduler keeps files in its --state_dir", c.sched_state_dir)
    t.check(sqlite_wal_files(c.sched_state_dir), "its state directory holds an SQLite database in WAL mode",
            state_files)

    # ---- 0: the scheduler freezes (SIGSTOP) for 2 x node_timeout, then thaws
    c.scheduler.signal_group(signal.SIGSTOP)
    time.sleep(2 * NODE_TIMEOUT)
    t.check(all(s.running() for s in servers), "freeze: the servers keep running while the scheduler is silent",
            [s.poll() for s in servers])
    c.scheduler.signal_group(signal.SIGCONT)
    t0 = time.monotonic()
    ok = c.wait_ready(RECONNECT_MAX)
    t.check(ok, "freeze: after SIGCONT the cluster is READY within %ds (took %.1fs)"
            % (RECONNECT_MAX, time.monotonic() - t0), c.state())
    nodes = c.nodes() or []
    t.check(harness.ranks_by_id(nodes) == ranks and all(n.get("alive") is True for n in nodes),
            "freeze: same node ids and ranks, all alive", nodes)

    # ---- 1: scheduler killed and restarted; every server survives
    kill_scheduler(t, c, "restart 1")
    time.sleep(2)
    t.check(all(s.running() for s in servers), "restart 1: the servers keep running without a scheduler",
            [s.poll() for s in servers])
    t0 = time.monotonic()
    c.restart_scheduler()
    t.note("restart 1: right after the restart /state is %s" % c.state())
    ok = c.wait_ready(RECONNECT_MAX)
    t.check(ok, "restart 1: the servers reconnect and the cluster is READY within %ds (took %.1fs)"
            % (RECONNECT_MAX, time.monotonic() - t0), c.state())
    nodes = c.nodes() or []
    t.check(harness.ranks_by_id(nodes) == ranks, "restart 1: /nodes has the same node ids with the same ranks",
            nodes)
    t.check(len(nodes) == 3 and all(n.get("alive") is True for n in nodes), "restart 1: all 3 nodes are alive",
            nodes)
    t.check(all(s.count(harness.SERVER_STARTED) == 1 and s.running() for s in servers),
            "restart 1: the servers were not restarted (same processes)", [s.poll() for s in servers])

    # ---- 2: scheduler and the rank-0 server both gone; ranks must come from the registry
    kill_scheduler(t, c, "restart 2")
    servers[0].kill9()
    t.check(servers[0].poll() is not None, "restart 2: server restart-0 (rank 0) killed as well")
    c.restart_scheduler()
    back = wait_until(lambda: all((c.node(i) or {}).get("alive") is True for i in ("restart-1", "restart-2")),
                      RECONNECT_MAX)
    t.check(back, "restart 2: restart-1 and restart-2 reconnect within %ds" % RECONNECT_MAX, c.nodes())
    nodes = c.nodes() or []
    got = harness.ranks_by_id(nodes)
    t.check(got.get("restart-1") == "1" and got.get("restart-2") == "2",
            "restart 2: restart-1 and restart-2 keep ranks 1 and 2 (not re-assigned from 0 in reconnection order)",
            nodes)
    time.sleep(NODE_TIMEOUT + 2)
    st = c.state()
    t.check(st != "CLUSTER_READY", "restart 2: with restart-0 still away after node_timeout, the cluster is not "
            "READY (%s)" % st, st)
    n0 = c.node("restart-0")
    t.check(n0 is None or n0.get("alive") is False, "restart 2: restart-0 is not shown alive", n0)
    s0 = c.start_server(node_id="restart-0", state_dir=servers[0].state_dir, port=servers[0].port,
                        name="server-0-again")
    servers[0] = s0
    t.check(c.wait_ready(15), "restart 2: restart-0 comes back and the cluster is READY", c.state())
    nodes = c.nodes() or []
    t.check(harness.ranks_by_id(nodes) == ranks and all(n.get("alive") is True for n in nodes),
            "restart 2: all node ids with their original ranks, alive", nodes)

    # ---- 3: a registration is durable before it is answered: SIGKILL right after REGISTER_REPLY
    c2 = harness.Cluster(t, server_num=3, node_timeout=NODE_TIMEOUT, name="sched-durable")
    c2.start_scheduler()
    answered = {}
    for i in range(3):
        node_id = "durable-%d" % i
        s = connect("127.0.0.1", c2.scheduler_port)
        s.sendall(wire_frame(WIRE_REGISTER, {"node_id": node_id, "role": "SERVER", "address": "127.0.0.1",
                                             "fl_server_port": 40000 + i, "pid": os.getpid(), "server_num": 3}))
        f = read_frame(s, 5)
        c2.scheduler.kill9()
        s.close()
        ok = f is not None and f[0] == WIRE_REGISTER_REPLY and isinstance(f[1], dict) and f[1].get("ok") is True
        t.check(ok, "durable: %s is answered ok (then the scheduler is killed at once)" % node_id, f)
        if ok:
            answered[node_id] = str(f[1].get("rank"))
        c2.restart_scheduler()
        got = harness.ranks_by_id(c2.nodes())
        t.check(all(got.get(k) == v for k, v in answered.items()),
                "durable: after the restart /nodes has every answered registration with its rank %s" % answered, got)

    # ---- the reconnected servers obey the restarted scheduler
    rc, out, err = c.flctl("finish", timeout=30)
    t.check(rc == 0, "flctl finish after the restarts exits 0", (rc, out, err))
    t.check(all(("restart-%d" % i) in out for i in range(3)), "flctl finish lists the 3 servers", out)
    t.check(c.scheduler.wait(15) == 0, "the restarted fl-schedulerd exits 0", c.scheduler.poll())
    for i, s in enumerate(servers):
        t.check(s.wait(15) == 0, "server restart-%d exits 0" % i, s.poll())


harness.run_test("scheduler-restart", main, timeout=180)
