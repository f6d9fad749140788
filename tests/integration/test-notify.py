#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""sd_notify as systemd sees it (NOTIFY_SOCKET of our own): each daemon
sends READY=1 only once it really serves (the scheduler's REST answers; the
server has registered and logged 'Server started successfully.') and
STATUS= lines; $STATE_DIRECTORY is the state directory when --state_dir is
not given (the first of a colon-separated list, as systemd sets it)."""

import os
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SCHEDULERD, SERVERD  # noqa: E402


class NotifySocket:
    def __init__(self, t, name):
        self.path = os.path.join(t.tmp, name + ".notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []      # (monotonic time, {key: value})

    def drain(self, timeout):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return
            fields = dict(ln.split("=", 1) for ln in data.decode("utf-8", "replace").split("\n") if "=" in ln)
            self.messages.append((time.monotonic(), fields))

    def wait_for(self, key, value=None, timeout=15):
        end = time.monotonic() + timeout
        while True:
            for when, f in self.messages:
                if key in f and (value is None or f[key] == value):
                    return when, f
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.drain(min(left, 0.2))

    def values(self, key):
        return [f[key] for _, f in self.messages if key in f]


def main(t):
    c = harness.Cluster(t, server_num=1, node_timeout=5)
    c.scheduler_port, c.manage_port = harness.reserve_ports(1)[0], harness.reserve_ports(1)[0]
    sched_dir = os.path.join(t.tmp, "sched-statedir")
    srv_dir = os.path.join(t.tmp, "srv-statedir")
    port = harness.reserve_ports(1)[0]

    # ---- scheduler: READY=1 once REST serves; $STATE_DIRECTORY without --state_dir
    ns = NotifySocket(t, "sched")
    sched = harness.Daemon(t, "fl-schedulerd", [
        SCHEDULERD, "--scheduler_ip=127.0.0.1", "--scheduler_port=%d" % c.scheduler_port,
        "--scheduler_manage_port=%d" % c.manage_port, "--server_num=1", "--node_timeout=5"],
        env=c.env({"NOTIFY_SOCKET": ns.path, "STATE_DIRECTORY": sched_dir + ":" + os.path.join(t.tmp, "second")}))
    sched.start()
    c.scheduler = sched
    got = ns.wait_for("READY", "1", timeout=15)
    t.require(got is not None, "fl-schedulerd sends READY=1", "messages: %s\nlog:\n%s" % (ns.messages, sched.tail()))
    r = c.http("GET", "/state")
    t.check(r.status == 200, "when READY=1 arrives, REST already answers", r)
    t.check(ns.values("STATUS"), "fl-schedulerd sends STATUS= lines (%s)" % " | ".join(ns.values("STATUS")[:3]),
            ns.messages)
    t.check(os.path.isdir(sched_dir) and os.listdir(sched_dir),
            "without --state_dir, fl-schedulerd keeps its state in the first $STATE_DIRECTORY entry",
            os.listdir(t.tmp))
    t.check(not os.path.exists(os.path.join(t.tmp, "second")) or not os.listdir(os.path.join(t.tmp, "second")),
            "... and nothing in the second entry")

    # ---- server: READY=1 only after registering
    nsrv = NotifySocket(t, "srv")
    srv = harness.Daemon(t, "fl-serverd", [
        SERVERD, "--scheduler_ip=127.0.0.1", "--scheduler_port=%d" % c.scheduler_port,
        "--fl_server_port=%d" % port, "--server_num=1"],
        env=c.env({"NOTIFY_SOCKET": nsrv.path, "STATE_DIRECTORY": srv_dir}))
    srv.start()
    got = nsrv.wait_for("READY", "1", timeout=15)
    t.require(got is not None, "fl-serverd sends READY=1", "messages: %s\nlog:\n%s" % (nsrv.messages, srv.tail()))
    t.check(harness.SERVER_STARTED in srv.log(), "when the server's READY=1 arrives it has logged '%s'"
            % harness.SERVER_STARTED, srv.tail())
    t.check(nsrv.values("STATUS"), "fl-serverd sends STATUS= lines (%s)" % " | ".join(nsrv.values("STATUS")[:3]),
            nsrv.messages)
    t.check(os.path.isdir(srv_dir) and any(str(port) in f for f in os.listdir(srv_dir)),
            "without --state_dir, fl-serverd keeps its node id (per port) in $STATE_DIRECTORY",
            os.listdir(srv_dir) if os.path.isdir(srv_dir) else "no %s" % srv_dir)
    t.check(c.wait_ready(10), "the cluster is READY", c.state())
    ns.drain(0.5)
    statuses = ns.values("STATUS")
    t.check(len(set(statuses)) > 1, "the scheduler's STATUS= changes once the server joined (now: %s)"
            % statuses[-1:], statuses)

    # ---- the server is not ready while the scheduler is away
    nsrv2 = NotifySocket(t, "srv2")
    lonely = harness.Daemon(t, "fl-serverd-lonely", [
        SERVERD, "--scheduler_ip=127.0.0.1", "--scheduler_port=%d" % harness.reserve_ports(1)[0],
        "--fl_server_port=%d" % harness.reserve_ports(1)[0], "--server_num=1",
        "--state_dir=" + os.path.join(t.tmp, "lonely")], env=c.env({"NOTIFY_SOCKET": nsrv2.path}))
    lonely.start()
    nsrv2.drain(2)
    t.check(lonely.running() and "1" not in nsrv2.values("READY"),
            "a server that cannot reach its scheduler keeps trying and does not send READY=1",
            (lonely.poll(), nsrv2.messages))

    rc, out, err = c.flctl("finish")
    t.check(rc == 0 and sched.wait(15) == 0 and srv.wait(15) == 0, "flctl finish: both exit 0",
            (rc, out, err, sched.poll(), srv.poll()))
    nsrv.drain(0.2)
    ns.drain(0.2)
    t.note("STOPPING=1 from scheduler: %s, from server: %s" % ("1" in ns.values("STOPPING"),
                                                              "1" in nsrv.values("STOPPING")))


harness.run_test("notify", main, timeout=90)
