#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every listener binds one address, never all of them unless told to.

Linux routes all of 127.0.0.0/8 to lo, so 127.0.0.2 is another address of
this host: a listener bound to 127.0.0.1 refuses connections there, one
bound to every address (0.0.0.0) accepts them.

- Defaults, scheduler_ip=127.0.0.1: the scheduler's TCP port and the
  management port bind 127.0.0.1; a server advertises 127.0.0.1 and its
  device and peer ports bind it. None answers on 127.0.0.2. GET /state
  says "auth": false, and a POST works without a token (as before tokens).
- scheduler_manage_ip=127.0.0.2: the management port answers there and not
  on 127.0.0.1; fl_server_ip=0.0.0.0 and tcp_server_ip=0.0.0.0: the device
  and peer ports answer on both.
- A bind address that is no IP address is refused by name."""

import os
import re
import socket
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OTHER = "127.0.0.2"
PEER_PORT_RE = re.compile(r"peers reach this server on (?:(\S+) )?port (\d+)")


def reachable(host, port):
    """True when a TCP connection to host:port is accepted."""
    try:
        s = socket.create_connection((host, port), timeout=5)
    except OSError:
        return False
    s.close()
    return True


def peer_port(t, d):
    t.require(d.wait_log(PEER_PORT_RE, 1, 10), "the server logs its peer address and port", d.tail())
    m = PEER_PORT_RE.findall(d.log())[-1]
    return m[0], int(m[1])


class ManageIpCluster(harness.Cluster):
    """REST on another address than scheduler_ip."""

    manage_ip = OTHER

    @property
    def base_url(self):
        return "http://%s:%d" % (self.manage_ip, self.manage_port)


def main(t):
    if not reachable_loopback_alias():
        raise harness.Skip("127.0.0.2 is not routed to this host's loopback")

    # ---- defaults
    c = harness.Cluster(t, server_num=1, node_timeout=10)
    c.start_scheduler()
    srv = c.start_server()
    t.require(c.wait_ready(20), "the cluster is READY", c.state())
    r = c.http("GET", "/state")
    t.check(isinstance(r.json, dict) and r.json.get("auth") is False,
            "GET /state says \"auth\": false without management_token_file", r)
    r = c.http("POST", "/disableFLS")
    t.check(r.status == 200, "without tokens a changing call needs none (POST /disableFLS answers 200)", r)
    r = c.http("POST", "/enableFLS")
    t.check(r.status == 200, "POST /enableFLS likewise", r)

    ip, pport = peer_port(t, srv)
    t.check(ip == "127.0.0.1", "the peer port binds the advertised address 127.0.0.1", srv.tail(5))
    for name, port in (("the scheduler's TCP port", c.scheduler_port), ("the management port", c.manage_port),
                       ("the device port", srv.port), ("the peer port", pport)):
        t.check(reachable("127.0.0.1", port), "%s %d answers on 127.0.0.1" % (name, port))
        t.check(not reachable(OTHER, port), "%s %d does not answer on %s (not bound to every address)"
                % (name, port, OTHER))

    rc, out, err = c.flctl("finish", url=True, timeout=30)
    t.check(rc == 0, "flctl finish", (rc, out, err))
    c.scheduler.wait(15)
    srv.wait(15)

    # ---- explicit addresses
    c2 = ManageIpCluster(t, server_num=1, node_timeout=10, name="sched2")
    c2.start_scheduler(extra=["--scheduler_manage_ip=" + OTHER])
    t.check(reachable(OTHER, c2.manage_port), "scheduler_manage_ip=%s: the management port answers there" % OTHER)
    t.check(not reachable("127.0.0.1", c2.manage_port), "and not on 127.0.0.1")
    t.check(harness.http("GET", "http://%s:%d/state" % (OTHER, c2.manage_port)).status == 200,
            "GET /state on %s" % OTHER)
    srv2 = c2.start_server(extra=["--fl_server_ip=0.0.0.0", "--tcp_server_ip=0.0.0.0"])
    t.require(c2.wait_ready(20), "the second cluster is READY", c2.state())
    ip, pport = peer_port(t, srv2)
    t.check(ip == "0.0.0.0", "tcp_server_ip=0.0.0.0: the peer port binds every address", srv2.tail(5))
    for name, port in (("the device port", srv2.port), ("the peer port", pport)):
        t.check(reachable("127.0.0.1", port) and reachable(OTHER, port),
                "%s %d, bound to 0.0.0.0, answers on 127.0.0.1 and %s" % (name, port, OTHER))

    # ---- bad values
    for exe, opt in ((harness.SCHEDULERD, "--scheduler_manage_ip=not-an-ip"),
                     (harness.SERVERD, "--fl_server_ip=10.0.0.999"),
                     (harness.SERVERD, "--tcp_server_ip=localhost")):
        p = subprocess.run([exe, opt, "--state_dir=" + os.path.join(t.tmp, "bad")], capture_output=True,
                           text=True, timeout=20, stdin=subprocess.DEVNULL)
        name = opt.split("=")[0][2:]
        t.check(p.returncode != 0 and name in p.stderr and "IPv4 or IPv6" in p.stderr,
                "%s %s is refused, naming %s" % (os.path.basename(exe), opt, name), (p.returncode, p.stderr))


def reachable_loopback_alias():
    """Whether this host answers on 127.0.0.2 at all (a listener of our own)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((OTHER, 0))
        s.listen(1)
        port = s.getsockname()[1]
        return reachable(OTHER, port)
    except OSError:
        return False
    finally:
        s.close()


harness.run_test("bind", main, timeout=150)
