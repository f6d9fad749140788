#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The job's knobs while it runs: newInstance (refusals first, then new
hyper-parameters from the next iteration boundary, the count restarting at
1), queryInstance, disableFLS/enableFLS, over REST and D-Bus; what was set
survives a scheduler restart."""

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402

JOB = {"fl_iteration_num": 5, "start_fl_job_threshold": 1, "start_fl_job_time_window": 60000,
       "update_model_time_window": 60000}
MODEL = [("w", [1.0, 2.0, 3.0]), ("b", [0.5])]
NAME, PATH = "org.flcluster.Scheduler1", "/org/flcluster/Scheduler1"


def refused(t, c, body, needle, what):
    r = c.http("POST", "/newInstance", body)
    ok = r.status == 400 and isinstance(r.json, dict) and r.json.get("code") == "1" and \
        needle in (r.json.get("error_message") or "")
    t.check(ok, "newInstance refuses %s (400, names '%s')" % (what, needle), (r.status, r.json))


def main(t):
    proto = fl_proto.Proto(t.tmp)
    tc = fl_proto.TrainingCluster(t, proto, 1, JOB, MODEL)
    c, url = tc.c, tc.urls[0]
    t.require(tc.wait_iteration(1), "iteration 1 runs", tc.state())

    r = c.http("GET", "/queryInstance")
    res = r.json.get("result", {}) if isinstance(r.json, dict) else {}
    t.check(r.status == 200 and r.json.get("message") == "Query Instance successful." and
            res.get("fl_iteration_num") == 5 and res.get("start_fl_job_threshold") == 1 and
            res.get("fl_enabled") is True, "queryInstance shows the job in force", r.json)

    refused(t, c, b"{not json", "JSON object", "a body that is not JSON")
    refused(t, c, {"bogus_key": 1}, "bogus_key", "an unknown key")
    refused(t, c, {"server_num": 3}, "server_num", "a key that is not a hyper-parameter")
    refused(t, c, {"fl_iteration_num": "7"}, "fl_iteration_num", "a string for a number")
    refused(t, c, {"start_fl_job_threshold": -2}, "start_fl_job_threshold", "a negative number")
    refused(t, c, {"update_model_ratio": 1.5}, "update_model_ratio", "a ratio above 1")
    refused(t, c, {"client_learning_rate": 0}, "client_learning_rate", "a zero learning rate")
    rc, out, err = c.bus.busctl("call", NAME, PATH, NAME, "NewInstance", "s", '{"bogus_key": 1}')
    t.check(rc != 0 and "bogus_key" in err, "over D-Bus too, with the same message", (rc, out, err))
    res = c.http("GET", "/queryInstance").json.get("result", {})
    t.check(res.get("new_instance_pending") is False and res.get("fl_iteration_num") == 5,
            "the refusals changed nothing", res)

    r = c.http("POST", "/newInstance", {"fl_iteration_num": 7, "start_fl_job_threshold": 2,
                                        "client_epoch_num": 3})
    t.check(r.status == 200 and r.json.get("message") == "Start new instance successful." and
            r.json.get("result") is True, "newInstance is accepted", r.json)
    res = c.http("GET", "/queryInstance").json.get("result", {})
    t.check(res.get("new_instance_pending") is True and res.get("fl_iteration_num") == 5 and
            (res.get("pending") or {}).get("fl_iteration_num") == 7,
            "it waits for the iteration boundary (the old job is still in force)", res)

    # Finish iteration 1 of the old job: one device (threshold 1) updates.
    r = proto.start_fl_job(url, "Lenet", "dev-1", 10)
    t.check(r.retcode == 200 and r.msg.get("fl_plan_config", {}).get("epochs") == 25,
            "iteration 1 still hands out the old plan", r)
    up = [(n, [v * 10 for v in vals]) for n, vals in MODEL]
    t.check(proto.update_model(url, "Lenet", "dev-1", 1, up).retcode == 200, "the update ends iteration 1")
    t.check(harness.wait_until(lambda: c.http("GET", "/queryInstance").json.get("result", {})
                               .get("new_instance_pending") is False, 15),
            "at the boundary the new instance is in force")
    t.require(tc.wait_iteration(1), "the iteration count restarts at 1", tc.state())
    res = c.http("GET", "/queryInstance").json.get("result", {})
    t.check(res.get("fl_iteration_num") == 7 and res.get("start_fl_job_threshold") == 2 and
            res.get("client_epoch_num") == 3, "queryInstance shows the new hyper-parameters", res)
    r = proto.start_fl_job(url, "Lenet", "dev-2", 10)
    t.check(r.retcode == 200 and r.msg.get("fl_plan_config", {}).get("epochs") == 3 and
            r.msg.get("fl_plan_config", {}).get("iterations") == 7, "devices get the new plan", r)

    # disableFLS / enableFLS
    r = c.http("POST", "/disableFLS")
    t.check(r.status == 200 and r.json.get("message") == "start disabling FL-Server successful.",
            "disableFLS", r.json)
    r = proto.start_fl_job(url, "Lenet", "dev-3", 10)
    t.check(r.text == fl_proto.DISABLED_TEXT, "while disabled, rounds answer the disabled text", r)
    rc, out, err = c.bus.busctl("get-property", NAME, PATH, NAME, "FlEnabled")
    t.check(rc == 0 and out.strip() == "b false", "the FlEnabled property says false", (rc, out, err))

    c.scheduler.kill9()
    c.restart_scheduler()
    t.require(c.wait_ready(20), "a restarted scheduler is READY again")
    res = c.http("GET", "/queryInstance").json.get("result", {})
    t.check(res.get("fl_enabled") is False and res.get("fl_iteration_num") == 7,
            "after a restart the job is still the new one, and still disabled", res)

    rc, out, err = c.bus.busctl("call", NAME, PATH, NAME, "EnableFLS")
    t.check(rc == 0, "EnableFLS over D-Bus", (rc, out, err))
    t.check(harness.wait_until(lambda: proto.start_fl_job(url, "Lenet", "dev-4", 10).retcode == 200, 15),
            "enabled again, devices are admitted")
    rc, out, err = c.bus.busctl("call", NAME, PATH, NAME, "QueryInstance")
    try:
        q = json.loads(json.loads(out.split(" ", 1)[1]))
    except (ValueError, IndexError):
        q = {}
    t.check(rc == 0 and q.get("fl_enabled") is True and q.get("fl_iteration_num") == 7,
            "QueryInstance over D-Bus returns the job as JSON", (rc, out, err))


harness.run_test("instance", main, timeout=120)
