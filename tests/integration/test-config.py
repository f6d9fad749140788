#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Configuration of both daemons: a malformed or unknown config key, a
mistyped value, bad command lines and worker_num != 0 are refused with the
key named and a non-zero exit; --help and --version; a JSON file is
applied (a key of the other daemon is accepted) and the command line wins
over it."""

import json
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SCHEDULERD, SERVERD  # noqa: E402


def write(t, name, text):
    path = os.path.join(t.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def main(t):
    c = harness.Cluster(t, server_num=2, node_timeout=5)
    sport, mport, dport = harness.reserve_ports(1)[0], harness.reserve_ports(1)[0], harness.reserve_ports(1)[0]
    base = {
        "fl-schedulerd": [SCHEDULERD, "--scheduler_ip=127.0.0.1", "--scheduler_port=%d" % sport,
                          "--scheduler_manage_port=%d" % mport, "--server_num=2",
                          "--state_dir=" + os.path.join(t.tmp, "sched-refused")],
        "fl-serverd": [SERVERD, "--scheduler_ip=127.0.0.1", "--scheduler_port=%d" % sport,
                       "--fl_server_port=%d" % dport, "--server_num=2",
                       "--state_dir=" + os.path.join(t.tmp, "srv-refused")],
    }

    cases = []

    def refused(prog, what, args, needles):
        """Queued: all refusals run in parallel, then are judged together."""
        d = harness.Daemon(t, prog, base[prog] + args, env=c.env())
        d.quiet = True
        cases.append((d.start(), prog, what, needles))

    def judge():
        deadline = time.monotonic() + 8
        for d, prog, what, needles in cases:
            rc = d.wait(max(deadline - time.monotonic(), 0.1))
            if rc is None:
                d.stop()
            log = d.log()
            out = log.split("\n", 1)[1] if "\n" in log else ""
            t.check(rc not in (None, 0), "%s %s: exits non-zero" % (prog, what),
                    "still running after 8s" if rc is None else "exit status %s" % rc)
            for n in needles:
                t.check(n in out, "%s %s: the error names %r" % (prog, what, n), out.strip()[-600:])
        cases.clear()

    malformed = write(t, "malformed.json", '{"server_num": 2,\n "node_timeout": \n')
    array = write(t, "array.json", "[1, 2, 3]\n")
    empty = write(t, "empty.json", "")
    unknown = write(t, "unknown.json", '{"server_num": 2, "bogus_key": 1}\n')
    wrongtype = write(t, "wrongtype.json", '{"server_num": "two"}\n')
    wrongtype_str = write(t, "wrongtype-str.json", '{"scheduler_ip": 127}\n')
    negative = write(t, "negative.json", '{"node_timeout": -5}\n')
    workers_file = write(t, "workers.json", '{"worker_num": 1}\n')
    missing = os.path.join(t.tmp, "no-such-file.json")

    for prog in ("fl-schedulerd", "fl-serverd"):
        refused(prog, "with a malformed JSON file", ["--config_file_path=" + malformed], [malformed])
        refused(prog, "with a JSON array as the file", ["--config_file_path=" + array], [array])
        refused(prog, "with an empty file", ["--config_file_path=" + empty], [empty])
        refused(prog, "with a missing file", ["--config_file_path=" + missing], [missing])
        refused(prog, "with unknown key bogus_key in the file", ["--config_file_path=" + unknown],
                ["bogus_key", unknown])
        refused(prog, "with server_num a string in the file", ["--config_file_path=" + wrongtype],
                ["server_num"])
        refused(prog, "with scheduler_ip a number in the file", ["--config_file_path=" + wrongtype_str],
                ["scheduler_ip"])
        refused(prog, "with a negative node_timeout in the file", ["--config_file_path=" + negative],
                ["node_timeout"])
        refused(prog, "with worker_num 1 in the file", ["--config_file_path=" + workers_file],
                ["The worker_num must be 0"])
        refused(prog, "with --worker_num=1", ["--worker_num=1"], ["The worker_num must be 0"])
        refused(prog, "with --bogus_option=1", ["--bogus_option=1"], ["bogus_option"])
        refused(prog, "with --server_num=abc", ["--server_num=abc"], ["server_num"])
        refused(prog, "with --server_num=0", ["--server_num=0"], ["server_num"])
        refused(prog, "with --scheduler_port=70000", ["--scheduler_port=70000"], ["scheduler_port"])
        refused(prog, "with a stray argument", ["stray-argument"], ["stray-argument"])
    refused("fl-serverd", "with an illegal --node_id", ["--node_id=a/b"], ["node_id"])
    judge()

    # ---- --help and --version
    for exe, opts in ((SCHEDULERD, ["--scheduler_ip", "--scheduler_port", "--scheduler_manage_port", "--server_num",
                                    "--node_timeout", "--state_dir", "--config_file_path"]),
                      (SERVERD, ["--scheduler_ip", "--scheduler_port", "--fl_server_port", "--server_num",
                                 "--local_server_num", "--node_id", "--state_dir", "--config_file_path"])):
        name = os.path.basename(exe)
        d = harness.Daemon(t, name + "-help", [exe, "--help"], env=c.env()).start()
        rc = d.wait(5)
        out = d.log()
        t.check(rc == 0, "%s --help exits 0" % name, rc)
        missing_opts = [o for o in opts if o not in out]
        t.check(not missing_opts, "%s --help mentions %s" % (name, " ".join(opts)), "missing: %s" % missing_opts)
        d = harness.Daemon(t, name + "-version", [exe, "--version"], env=c.env()).start()
        rc = d.wait(5)
        t.check(rc == 0 and name in d.log(), "%s --version exits 0 and names itself" % name, d.log())

    # ---- the file is applied, keys of the other daemon are accepted, the command line wins
    harness.release_ports([sport, mport, dport])
    c.scheduler_port, c.manage_port = harness.reserve_ports(1)[0], harness.reserve_ports(1)[0]
    dports = harness.reserve_ports(2)
    conf = write(t, "cluster.json", json.dumps({
        "scheduler_ip": "127.0.0.1",
        "scheduler_port": c.scheduler_port,
        "scheduler_manage_port": c.manage_port,
        "fl_server_port": dports[0],
        "local_server_num": 2,
        "server_num": 3,
        "node_timeout": 5,
        "worker_num": 0,
    }, indent=2))
    t.note("config file: %s" % open(conf).read().replace("\n", " "))
    c.start_scheduler(argv=[SCHEDULERD, "--config_file_path=" + conf, "--server_num=2",
                            "--state_dir=" + c.sched_state_dir])
    t.check(True, "fl-schedulerd takes scheduler_manage_port from the file (REST answers on port %d) and accepts "
            "the servers' keys fl_server_port, local_server_num" % c.manage_port)
    d = harness.Daemon(t, "fl-serverd", [SERVERD, "--config_file_path=" + conf, "--server_num=2",
                                         "--state_dir=" + os.path.join(t.tmp, "srv")], env=c.env()).start()
    t.check(d.wait_log(harness.SERVER_STARTED, 2, timeout=20),
            "fl-serverd takes local_server_num=2 and the ports from the file: 2 servers start",
            d.tail())
    t.check(c.wait_ready(15), "with server_num 3 in the file and --server_num=2, 2 servers make the cluster READY",
            c.state())
    nodes = c.nodes() or []
    t.check(len(nodes) == 2, "/nodes lists 2 nodes", nodes)
    t.check(sorted(n.get("rank_id") for n in nodes) == ["0", "1"], "ranks are \"0\" and \"1\"", nodes)
    r = c.http("GET", "/state")
    if isinstance(r.json, dict) and "server_num" in r.json:
        t.check(r.json["server_num"] in (2, "2"), "/state server_num is 2", r.json)
    rc, out, err = c.bus.busctl("get-property", "org.flcluster.Scheduler1", "/org/flcluster/Scheduler1",
                                "org.flcluster.Scheduler1", "ServerNum")
    if rc is not None:
        t.check(rc == 0 and out.strip() == "u 2", "D-Bus ServerNum is 2 (command line over file)", (rc, out, err))
    listed = []
    rc, out, err = c.bus.busctl("--json=short", "call", "org.flcluster.Scheduler1", "/org/flcluster/Scheduler1",
                                "org.flcluster.Scheduler1", "ListNodes")
    if rc == 0:
        try:
            listed = sorted(e[4] for e in json.loads(out)["data"][0])
        except (ValueError, KeyError, IndexError, TypeError):
            listed = out
        t.check(listed == dports, "the servers serve on fl_server_port from the file: %s" % dports, listed)


harness.run_test("config", main, timeout=150)
