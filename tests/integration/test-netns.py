#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Three hosts made of network namespaces on one bridge (root only):
the scheduler in A (10.251.N.1), two servers in B (10.251.N.2) and one in
C (10.251.N.3), on the same device port as B's first. The cluster forms
across them; each server advertises its own host's address, not
127.0.0.1, and /nodes (queried inside A, and from B with flctl --url)
shows it. Only the namespaces and the veths inside them are created, and
they are always deleted."""

import json
import os
import random
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Skip, Failure, http_in_netns  # noqa: E402

DEVICE_PORT = 6668


def ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=20)
    if check and p.returncode != 0:
        raise Failure("ip %s failed: %s" % (" ".join(args), p.stderr.strip()))
    return p


def main(t):
    if not shutil.which("ip"):
        raise Skip("iproute2 (ip) is not installed")
    tag = "fl%d-%d" % (os.getpid(), random.randrange(1000))
    ns = {h: "%s-%s" % (tag, h) for h in ("a", "b", "c")}
    subnet = random.randrange(1, 255)
    addr = {"a": "10.251.%d.1" % subnet, "b": "10.251.%d.2" % subnet, "c": "10.251.%d.3" % subnet}
    created = []

    def cleanup():
        for n in reversed(created):
            ip("netns", "del", n, check=False)
    t._cleanups.append(cleanup)

    p = ip("netns", "add", ns["a"], check=False)
    if p.returncode != 0:
        raise Skip("cannot create a network namespace here: %s" % p.stderr.strip())
    created.append(ns["a"])
    for h in ("b", "c"):
        ip("netns", "add", ns[h])
        created.append(ns[h])
    for h in ("a", "b", "c"):
        ip("-n", ns[h], "link", "set", "lo", "up")
    # Everything is created inside the namespaces; the host's own interfaces
    # and routes are never touched.
    ip("-n", ns["a"], "link", "add", "br0", "type", "bridge")
    ip("-n", ns["a"], "addr", "add", addr["a"] + "/24", "dev", "br0")
    ip("-n", ns["a"], "link", "set", "br0", "up")
    for h in ("b", "c"):
        ip("-n", ns["a"], "link", "add", "to-" + h, "type", "veth", "peer", "name", "eth0", "netns", ns[h])
        ip("-n", ns["a"], "link", "set", "to-" + h, "master", "br0")
        ip("-n", ns["a"], "link", "set", "to-" + h, "up")
        ip("-n", ns[h], "addr", "add", addr[h] + "/24", "dev", "eth0")
        ip("-n", ns[h], "link", "set", "eth0", "up")
    for h in ("b", "c"):
        p = subprocess.run(["ip", "netns", "exec", ns[h], "ping", "-c", "1", "-W", "3", addr["a"]],
                           capture_output=True, text=True, timeout=10) if shutil.which("ping") else None
        if p is not None:
            t.check(p.returncode == 0, "host %s (%s) reaches host a (%s)" % (h, addr[h], addr["a"]), p.stdout)
    t.check(True, "namespaces %s: a=%s b=%s c=%s on a bridge" % (", ".join(ns.values()), addr["a"], addr["b"],
                                                               addr["c"]))

    c = harness.Cluster(t, server_num=3, node_timeout=10, scheduler_ip=addr["a"], netns=ns["a"])
    c.scheduler_port, c.manage_port = 6667, 11202
    c.start_scheduler()
    t.check(True, "fl-schedulerd runs in %s on %s:%d, REST on :%d" % (ns["a"], addr["a"], c.scheduler_port,
                                                                      c.manage_port))
    sb = c.start_server(local_server_num=2, port=DEVICE_PORT, netns=ns["b"], name="server-b",
                        state_dir=os.path.join(t.tmp, "srv-b"))
    sc = c.start_server(local_server_num=1, port=DEVICE_PORT, netns=ns["c"], name="server-c",
                        state_dir=os.path.join(t.tmp, "srv-c"))
    t.check(True, "fl-serverd in %s (ports %d, %d) and in %s (port %d) log '%s'"
            % (ns["b"], DEVICE_PORT, DEVICE_PORT + 1, ns["c"], DEVICE_PORT, harness.SERVER_STARTED))
    t.require(c.wait_ready(20), "the cluster forms across the namespaces: CLUSTER_READY", c.state())

    r = c.http("GET", "/nodes")
    t.check(r.status == 200 and isinstance(r.json, dict) and r.json.get("code") == "0",
            "GET /nodes inside %s answers" % ns["a"], r)
    nodes = c.nodes() or []
    t.require(len(nodes) == 3, "/nodes lists 3 servers", nodes)
    t.check(sorted(n.get("rank_id") for n in nodes) == ["0", "1", "2"], "ranks are \"0\", \"1\", \"2\"", nodes)
    values = [set(harness.all_strings(n)) for n in nodes]
    t.check(sum(addr["b"] in v for v in values) == 2, "/nodes shows host b's address %s for 2 nodes" % addr["b"],
            nodes)
    t.check(sum(addr["c"] in v for v in values) == 1, "/nodes shows host c's address %s for 1 node" % addr["c"],
            nodes)
    t.check(not any("127.0.0.1" in v for v in values), "no node advertises 127.0.0.1", nodes)

    rc, out, err = c.bus.busctl("--json=short", "call", "org.flcluster.Scheduler1", "/org/flcluster/Scheduler1",
                                "org.flcluster.Scheduler1", "ListNodes")
    if rc is not None:
        try:
            entries = json.loads(out)["data"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            entries = None
        t.check(entries is not None and sorted((e[3], e[4]) for e in entries) ==
                sorted([(addr["b"], DEVICE_PORT), (addr["b"], DEVICE_PORT + 1), (addr["c"], DEVICE_PORT)]),
                "D-Bus ListNodes: (address, port) = (b, %d), (b, %d), (c, %d)" % (DEVICE_PORT, DEVICE_PORT + 1,
                                                                                DEVICE_PORT), (rc, out, err))

    for label, url, where in (("D-Bus, inside a", False, ns["a"]),
                              ("--url, inside a", True, ns["a"]),
                              ("--url, from host b", True, ns["b"])):
        rc, out, err = c.flctl("nodes", url=url, netns=where)
        t.check(rc == 0 and addr["b"] in out and addr["c"] in out,
                "flctl nodes (%s) shows the addresses of b and c" % label, (rc, out, err))

    # Each server serves devices on its advertised address, reachable from another host.
    for host, port in (("b", DEVICE_PORT), ("b", DEVICE_PORT + 1), ("c", DEVICE_PORT)):
        other = "c" if host == "b" else "b"
        r = http_in_netns(ns[other], "GET", "http://%s:%d/" % (addr[host], port))
        t.check(r.status is not None, "host %s reaches the device port %s:%d over HTTP (status %s)"
                % (other, addr[host], port, r.status), r)

    rc, out, err = c.flctl("finish", timeout=30)
    t.check(rc == 0 and out.count("SERVER") >= 3, "flctl finish across the namespaces exits 0", (rc, out, err))
    t.check(c.scheduler.wait(15) == 0 and sb.wait(15) == 0 and sc.wait(15) == 0,
            "scheduler and both fl-serverd exit 0", (c.scheduler.poll(), sb.poll(), sc.poll()))


harness.run_test("netns", main, timeout=120, need_root=True)
