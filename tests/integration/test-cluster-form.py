#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A scheduler and 4 servers (one fl-serverd --local_server_num=4) form a
cluster; REST, D-Bus and flctl (both transports) report it; unknown paths
and wrong methods are refused; flctl's exit statuses; `flctl finish` stops
every node in order and each exits 0."""

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SERVER_STARTED, all_strings, wait_until, pid_gone  # noqa: E402

SERVERS = 4


def check_json_response(t, r, what, status=200):
    t.check(r.status == status, "%s answers HTTP %d" % (what, status), r)
    t.check(r.content_type is not None and r.content_type.split(";")[0].strip() == "application/json",
            "%s has Content-Type application/json" % what, r.content_type)
    t.check(isinstance(r.json, dict), "%s body is a JSON object" % what, r)


def main(t):
    c = harness.Cluster(t, server_num=SERVERS, node_timeout=10)
    c.start_scheduler()

    st = c.state()
    t.check(st == "CLUSTER_STARTING", "before any server registers, /state is CLUSTER_STARTING", st)
    r = c.http("GET", "/nodes")
    t.check(isinstance(r.json, dict) and r.json.get("node_ids") == [],
            "before any server registers, /nodes lists no node", r)

    srv = c.start_server(local_server_num=SERVERS, timeout=30)
    t.check(srv.count(SERVER_STARTED) == SERVERS,
            "fl-serverd --local_server_num=%d logs '%s' %d times" % (SERVERS, SERVER_STARTED, SERVERS),
            srv.count(SERVER_STARTED))
    t.require(c.wait_ready(20), "cluster becomes CLUSTER_READY", c.state())

    # ---- GET /nodes, exactly as management-api.md
    r = c.http("GET", "/nodes")
    check_json_response(t, r, "GET /nodes")
    body = r.json or {}
    t.check(body.get("message") == "Get nodes info successful.", "/nodes message is 'Get nodes info successful.'",
            body.get("message"))
    t.check(body.get("code") == "0", "/nodes code is the string \"0\"", repr(body.get("code")))
    nodes = body.get("node_ids")
    t.require(isinstance(nodes, list) and len(nodes) == SERVERS, "/nodes lists %d nodes" % SERVERS, nodes)
    t.check(all(isinstance(n, dict) for n in nodes), "each node is a JSON object", nodes)
    nodes = [n for n in nodes if isinstance(n, dict)]
    t.check(all(n.get("role") == "SERVER" for n in nodes), "every node has role SERVER",
            [n.get("role") for n in nodes])
    t.check(all(n.get("alive") is True for n in nodes), "every node has alive true (a JSON boolean)",
            [n.get("alive") for n in nodes])
    ranks = [n.get("rank_id") for n in nodes]
    t.check(all(isinstance(x, str) for x in ranks), "rank_id is a JSON string", ranks)
    t.check(sorted(ranks, key=str) == [str(i) for i in range(SERVERS)],
            "rank_ids are \"0\"..\"%d\"" % (SERVERS - 1), ranks)
    ids = [n.get("node_id") for n in nodes]
    t.check(all(isinstance(i, str) and i for i in ids) and len(set(ids)) == SERVERS,
            "node_ids are %d distinct non-empty strings" % SERVERS, ids)
    ids = [i for i in ids if isinstance(i, str)]

    # ---- GET /state
    r = c.http("GET", "/state")
    check_json_response(t, r, "GET /state")
    body = r.json or {}
    t.check(body.get("message") == "Get cluster state successful.",
            "/state message is 'Get cluster state successful.'", body.get("message"))
    t.check(body.get("code") == "0", "/state code is the string \"0\"", repr(body.get("code")))
    t.check(body.get("cluster_state") == "CLUSTER_READY", "/state cluster_state is CLUSTER_READY", body)

    # ---- refusals of the HTTP layer
    r = c.http("GET", "/no/such/path")
    check_json_response(t, r, "GET /no/such/path", 404)
    t.check(isinstance(r.json, dict) and r.json.get("code") == "1" and isinstance(r.json.get("error_message"), str),
            "404 body is {\"code\":\"1\",\"error_message\":...}", r)
    r = c.http("POST", "/nodes", body={})
    check_json_response(t, r, "POST /nodes", 405)
    r = c.http("DELETE", "/state")
    t.check(r.status == 405, "DELETE /state answers 405", r)
    t.check(c.state() == "CLUSTER_READY", "the cluster is still READY after the refused requests", c.state())

    # ---- D-Bus directly (busctl), the API of fl-bus.h
    bus_pids = {}
    rc, out, err = c.bus.busctl("get-property", "org.flcluster.Scheduler1", "/org/flcluster/Scheduler1",
                                "org.flcluster.Scheduler1", "ClusterState")
    if rc is None:
        t.note("busctl not installed: D-Bus checked through flctl only")
    else:
        t.check(rc == 0 and out.strip() == 's "CLUSTER_READY"', "D-Bus property ClusterState is CLUSTER_READY",
                (rc, out, err))
        rc, out, err = c.bus.busctl("get-property", "org.flcluster.Scheduler1", "/org/flcluster/Scheduler1",
                                    "org.flcluster.Scheduler1", "ServerNum")
        t.check(rc == 0 and out.strip() == "u %d" % SERVERS, "D-Bus property ServerNum is %d" % SERVERS,
                (rc, out, err))
        rc, out, err = c.bus.busctl("--json=short", "call", "org.flcluster.Scheduler1", "/org/flcluster/Scheduler1",
                                    "org.flcluster.Scheduler1", "GetState")
        try:
            got = json.loads(out)
        except ValueError:
            got = None
        t.check(rc == 0 and got and got.get("data") == ["CLUSTER_READY"], "D-Bus GetState() returns CLUSTER_READY",
                (rc, out, err))
        rc, out, err = c.bus.busctl("--json=short", "call", "org.flcluster.Scheduler1", "/org/flcluster/Scheduler1",
                                    "org.flcluster.Scheduler1", "ListNodes")
        try:
            got = json.loads(out)
        except ValueError:
            got = None
        ok = (rc == 0 and got and got.get("type") == "a(sussqbu)" and len(got.get("data", [[]])[0]) == SERVERS)
        t.check(ok, "D-Bus ListNodes() returns a(sussqbu) with %d nodes" % SERVERS, (rc, out, err))
        if ok:
            entries = got["data"][0]
            t.check(sorted(e[0] for e in entries) == sorted(ids), "ListNodes has the node ids of /nodes",
                    entries)
            t.check({e[0]: str(e[1]) for e in entries} == {n["node_id"]: n["rank_id"] for n in nodes},
                    "ListNodes has the ranks of /nodes", entries)
            t.check(all(e[2] == "SERVER" and e[5] is True for e in entries),
                    "ListNodes: every node is an alive SERVER", entries)
            t.check(sorted(e[4] for e in entries) == srv.ports, "ListNodes: fl_server_ports are %s" % srv.ports,
                    entries)
            bus_pids = {e[0]: e[6] for e in entries}
            t.check(all(p > 0 and not pid_gone(p) for p in bus_pids.values()),
                    "ListNodes: pids are running processes", bus_pids)

    # ---- flctl over D-Bus (default) and over REST (--url)
    for label, url in (("D-Bus", False), ("--url", True)):
        rc, out, err = c.flctl("nodes", url=url)
        t.check(rc == 0, "flctl nodes (%s) exits 0" % label, (rc, out, err))
        t.check(all(i in out for i in ids) and "SERVER" in out,
                "flctl nodes (%s) shows every node id and role SERVER" % label, out)
        rows = {n["node_id"]: [ln for ln in out.splitlines() if n["node_id"] in ln] for n in nodes}
        t.check(all(len(rows[n["node_id"]]) == 1 and n["rank_id"] in rows[n["node_id"]][0].replace("|", " ").split()
                    for n in nodes),
                "flctl nodes (%s): one row per node, with its rank" % label, out)

        rc, out, err = c.flctl("state", url=url)
        t.check(rc == 0 and "CLUSTER_READY" in out, "flctl state (%s) exits 0 and says CLUSTER_READY" % label,
                (rc, out, err))

        rc, out, err = c.flctl("--json", "nodes", url=url)
        try:
            js = json.loads(out)
        except ValueError:
            js = None
        t.check(rc == 0 and js is not None, "flctl --json nodes (%s) exits 0 and prints JSON" % label, (rc, out, err))
        strings = set(all_strings(js))
        t.check(all(i in strings for i in ids), "flctl --json nodes (%s) lists every node id" % label, out)

        rc, out, err = c.flctl("--json", "state", url=url)
        try:
            js = json.loads(out)
        except ValueError:
            js = None
        t.check(rc == 0 and "CLUSTER_READY" in set(all_strings(js)),
                "flctl --json state (%s) exits 0 and prints JSON with CLUSTER_READY" % label, (rc, out, err))

    # ---- flctl usage errors and a scheduler that is not there
    rc, out, err = c.flctl("--help")
    t.check(rc == 0 and all(v in out + err for v in ("nodes", "state", "finish")),
            "flctl --help exits 0 and names the verbs nodes, state, finish", (rc, out, err))
    for argv in ([], ["frobnicate"], ["--no-such-option", "nodes"], ["nodes", "extra-argument"],
                 ["--url"]):
        rc, out, err = c.flctl(*argv)
        t.check(rc == 2 and err.strip(), "flctl %s is a usage error: exit 2 with a message on stderr"
                % " ".join(argv or ["(no arguments)"]), (rc, out, err))
    dead = harness.reserve_ports(1)[0]
    rc, out, err = c.flctl("state", url="http://127.0.0.1:%d" % dead)
    t.check(rc == 1 and err.strip(), "flctl --url to a port nobody listens on exits 1 with a message",
            (rc, out, err))
    rc, out, err = c.flctl("nodes", url="http://127.0.0.1:%d" % dead)
    t.check(rc == 1, "flctl nodes --url to a dead scheduler exits 1", (rc, out, err))

    # ---- flctl finish: every server, then the scheduler, exits 0
    sched_pid = c.scheduler.pid
    rc, out, err = c.flctl("finish", timeout=30)
    t.check(rc == 0, "flctl finish exits 0", (rc, out, err))
    lines = [ln for ln in out.splitlines() if ln.strip()]
    for i in ids:
        mine = [ln for ln in lines if i in ln]
        t.check(len(mine) == 1 and "SERVER" in mine[0], "flctl finish prints one SERVER line for node %s" % i, out)
        if len(mine) == 1 and i in bus_pids:
            t.check(str(bus_pids[i]) in mine[0].split(), "... and that line has the server's pid %d" % bus_pids[i],
                    mine[0])
    sched_lines = [ln for ln in lines if "SCHEDULER" in ln]
    t.check(len(sched_lines) == 1 and str(sched_pid) in sched_lines[0].split(),
            "flctl finish prints one SCHEDULER line with the scheduler's pid %d" % sched_pid, out)
    node_lines = [ln for ln in lines if "SCHEDULER" in ln or any(i in ln for i in ids)]
    t.check(len(node_lines) == SERVERS + 1 and "SCHEDULER" in node_lines[-1],
            "flctl finish lists %d stopped nodes, the scheduler last" % (SERVERS + 1), out)

    rc_sched = c.scheduler.wait(15)
    t.check(rc_sched == 0, "fl-schedulerd exits 0 after finish", rc_sched)
    rc_srv = srv.wait(15)
    t.check(rc_srv == 0, "fl-serverd (4 local servers) exits 0 after finish", rc_srv)
    if bus_pids:
        t.check(wait_until(lambda: all(pid_gone(p) for p in bus_pids.values()), 10),
                "every server process (pids from ListNodes) is gone", bus_pids)

    # ---- flctl with no scheduler on the bus, and REST on a stopped scheduler
    rc, out, err = c.flctl("state")
    t.check(rc == 1 and err.strip(), "flctl state over D-Bus with no scheduler exits 1 with a message",
            (rc, out, err))
    rc, out, err = c.flctl("nodes", url=True)
    t.check(rc == 1 and err.strip(), "flctl nodes --url to the stopped scheduler exits 1 with a message",
            (rc, out, err))
    rc, out, err = c.flctl("state", env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=%s/no-such-bus" % t.tmp})
    t.check(rc == 1 and err.strip(), "flctl state with no system bus at all exits 1 with a message", (rc, out, err))


harness.run_test("cluster-form", main, timeout=150)
