#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""flctl's verbs that change the cluster, over D-Bus and over REST (--url):
scaleout (the state goes to CLUSTER_SCALE_OUT and, with no new servers
coming, back to CLUSTER_READY after 4 x node_timeout), scalein refusals,
instance show / instance set (the pending job, a refused key), disable and
enable, with text and --json output; refusals exit 1 with exactly the
scheduler's message on stderr, usage errors exit 2 and send nothing."""

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

NODE_TIMEOUT = 3        # a scale-out nobody completes is rolled back after 12 s
UNKNOWN_ID = "0badc0de-0000-4000-8000-000000000000"
NOT_READY = "The cluster is not in CLUSTER_READY; retry when it is."


def table_rows(text):
    """KEY VALUE rows of `instance show` (header dropped), in order."""
    lines = text.splitlines()
    if not lines or lines[0].split() != ["KEY", "VALUE"]:
        return None
    return [tuple(line.split(None, 1)) if len(line.split(None, 1)) == 2 else (line.strip(), "")
            for line in lines[1:]]


def flat_keys(obj, prefix=""):
    keys = []
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            keys += flat_keys(v, prefix + k + ".")
        else:
            keys.append(prefix + k)
    return keys


def query(c):
    r = c.http("GET", "/queryInstance")
    return r.json.get("result") if isinstance(r.json, dict) else None


def rest_refusal(c, path, body):
    """The scheduler's own error_message for a request (one it refuses, so
    sending it changes nothing)."""
    r = c.http("POST", path, body)
    return r.json.get("error_message") if r.status == 400 and isinstance(r.json, dict) else None


def refused(t, c, way, args, message, what):
    rc, out, err = c.flctl(*args, url=way)
    t.check(rc == 1 and out == "" and err == message + "\n",
            "%s: %s exits 1 with the scheduler's message on stderr" % (label(way), what),
            (rc, out, err, "want: %r" % message))


def label(way):
    return "REST" if way else "D-Bus"


def check_scale_out(t, c, way):
    args = ["--json", "scaleout", "2"] if way else ["scaleout", "2"]
    rc, out, err = c.flctl(*args, url=way)
    want = '{"message":"Cluster begin to scale out."}\n' if way else "Cluster begin to scale out.\n"
    t.check(rc == 0 and out == want and err == "", "%s: %s prints the scheduler's message"
            % (label(way), " ".join(args)), (rc, out, err))
    rc, out, err = c.flctl("state", url=way)
    t.check(rc == 0 and out == "CLUSTER_SCALE_OUT\n", "%s: the state is CLUSTER_SCALE_OUT" % label(way),
            (rc, out, err))
    st = c.http("GET", "/state").json or {}
    t.check(st.get("server_num") == 4, "%s: server_num is raised to 4" % label(way), st)

    refused(t, c, way, ["scaleout", "1"], "A scale-out is running; retry when it has finished.",
            "a second scaleout")
    refused(t, c, way, ["instance", "set", "fl_iteration_num=7"], NOT_READY, "instance set while scaling")

    t.require(c.wait_ready(4 * NODE_TIMEOUT + 15),
              "%s: no servers came: the scale-out is rolled back to CLUSTER_READY" % label(way), c.state())
    st = c.http("GET", "/state").json or {}
    t.check(st.get("server_num") == 2 and len(c.nodes() or []) == 2,
            "%s: back to 2 servers" % label(way), st)


def check_scale_in(t, c, way, ids):
    refused(t, c, way, ["scalein", UNKNOWN_ID], "The node id:%s is illegal." % UNKNOWN_ID, "scalein of an unknown id")
    refused(t, c, way, ["scalein", ids[0], "not-a-node"], "The node id:not-a-node is illegal.",
            "scalein naming one unknown id among known ones")
    every = rest_refusal(c, "/scalein", {"node_ids": ids})
    t.check(bool(every), "REST itself refuses to scale in every server", every)
    refused(t, c, way, ["scalein"] + ids, every or "?", "scalein of every server")
    t.check(c.state() == "CLUSTER_READY" and len(c.nodes() or []) == 2,
            "%s: the refused scale-ins changed nothing" % label(way), c.nodes())


def check_instance(t, c, way, iterations):
    bad = rest_refusal(c, "/newInstance", {"bogus_key": 1})
    t.check(bool(bad) and "bogus_key" in bad, "REST itself refuses bogus_key, naming it", bad)
    refused(t, c, way, ["instance", "set", "fl_iteration_num=5", "bogus_key=1"], bad or "?",
            "instance set with a bad key")
    negative = rest_refusal(c, "/newInstance", {"start_fl_job_threshold": -2})
    refused(t, c, way, ["instance", "set", "start_fl_job_threshold=-2"], negative or "?",
            "instance set with a negative threshold")
    t.check(query(c).get("fl_iteration_num") == 20 and
            query(c).get("pending", {}).get("fl_iteration_num") != iterations,
            "%s: the refused instance set changed nothing" % label(way), query(c))

    rc, out, err = c.flctl("instance", "set", "fl_iteration_num=%d" % iterations, "update_model_ratio=0.5",
                           "fl_name=Lenet", url=way)
    t.check(rc == 0 and out == "Start new instance successful.\n" and err == "",
            "%s: instance set fl_iteration_num=%d is accepted" % (label(way), iterations), (rc, out, err))
    res = query(c) or {}
    pending = res.get("pending") or {}
    t.check(res.get("new_instance_pending") is True and pending.get("fl_iteration_num") == iterations and
            pending.get("update_model_ratio") == 0.5 and isinstance(pending.get("update_model_ratio"), float),
            "%s: the scheduler got an integer and a double" % label(way), res)

    rc, out, err = c.flctl("--json", "instance", "show", url=way)
    try:
        shown = json.loads(out)
    except ValueError:
        shown = None
    t.check(rc == 0 and shown == query(c) and out.count("\n") == 1,
            "%s: instance show --json prints queryInstance's result, on one line" % label(way), (rc, out, err))

    rc, out, err = c.flctl("instance", "show", url=way)
    rows = table_rows(out) if rc == 0 else None
    t.check(rows is not None and isinstance(shown, dict) and [k for k, _ in rows] == flat_keys(shown),
            "%s: instance show is a KEY VALUE table in the scheduler's order" % label(way), (rc, out, err))
    values = dict(rows or [])
    t.check(values.get("pending.fl_iteration_num") == str(iterations) and
            values.get("new_instance_pending") == "true" and values.get("fl_iteration_num") == "20" and
            values.get("pending.update_model_ratio") == "0.5" and values.get("fl_name") == "Lenet",
            "%s: the table shows the pending fl_iteration_num=%d" % (label(way), iterations), out)


def check_enable(t, c, way):
    for verb, enabled, message in (("disable", False, "start disabling FL-Server successful."),
                                   ("enable", True, "start enabling FL-Server successful.")):
        rc, out, err = c.flctl(verb, url=way)
        t.check(rc == 0 and out == message + "\n" and err == "", "%s: %s" % (label(way), verb), (rc, out, err))
        rc, out, err = c.flctl("--json", "instance", "show", url=way)
        try:
            shown = json.loads(out)
        except ValueError:
            shown = {}
        t.check(rc == 0 and shown.get("fl_enabled") is enabled,
                "%s: then instance show says fl_enabled %s" % (label(way), str(enabled).lower()), (rc, out, err))
        rc, out, err = c.flctl(verb, "--json", url=way)
        t.check(rc == 0 and json.loads(out or "null") == {"message": message},
                "%s: %s --json (again: nothing to change, still a success)" % (label(way), verb), (rc, out, err))
    rc, out, err = c.flctl("instance", "show", url=way)
    t.check(dict(table_rows(out) or []).get("fl_enabled") == "true", "%s: the table says fl_enabled true"
            % label(way), out)


def check_usage(t, c, way):
    before = (c.state(), query(c))
    for args in (["scaleout"], ["scaleout", "0"], ["scaleout", "-1"], ["scaleout", "two"],
                 ["scaleout", "1.5"], ["scaleout", "1", "2"], ["scalein"], ["scalein", ""],
                 ["instance"], ["instance", "get"], ["instance", "show", "x"], ["instance", "set"],
                 ["instance", "set", "fl_iteration_num"], ["instance", "set", "=7"],
                 ["instance", "set", "fl_iteration_num="], ["instance", "set", "a=1", "a=2"],
                 ["instance", "set", "fl_iteration_num=99999999999999999999"],
                 ["instance", "set", "fl_name=caf\udce9"], ["scalein", "caf\udce9"],
                 ["enable", "now"], ["disable", "all"], ["scale-out", "2"], ["frobnicate"]):
        rc, out, err = c.flctl(*args, url=way)
        t.check(rc == 2 and out == "" and err.strip() != "", "%s: flctl %s is a usage error (exit 2)"
                % (label(way), " ".join(a if a.isprintable() and a.isascii() and a else ascii(a) for a in args)),
                (rc, out, err))
    t.check((c.state(), query(c)) == before, "%s: the usage errors sent nothing" % label(way))


def main(t):
    c = harness.Cluster(t, 2, node_timeout=NODE_TIMEOUT)
    c.start_scheduler()
    c.start_server()
    c.start_server()
    t.require(c.wait_ready(20), "the cluster of 2 servers is READY", c.state())
    ids = sorted(n["node_id"] for n in c.nodes())

    for way in (False, True):
        check_usage(t, c, way)
        check_scale_out(t, c, way)
        check_scale_in(t, c, way, ids)
        check_instance(t, c, way, 7 if not way else 8)
        check_enable(t, c, way)

    # Nobody to ask: exit 1, not 0 and not a usage error.
    port = harness.reserve_ports(1)[0]
    rc, out, err = c.flctl("enable", url="http://127.0.0.1:%d" % port, timeout=20)
    t.check(rc == 1 and "Failed to connect" in err, "REST: no scheduler at the URL exits 1", (rc, out, err))
    for d in c.servers:
        t.check(d.running(), "server %s is still running" % d.port, d.tail(5))


harness.run_test("flctl-manage", main, timeout=180)
