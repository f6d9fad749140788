#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Elastic scaling while a job trains (the seed's flow): scale-out 2 -> 4
with devices served throughout, the new servers fetching the model from
their peers and joining the ring; scale-in 4 -> 2 removing rank 0 and rank
3 while rank 0 holds an acknowledged update, which is aggregated before it
leaves; ranks made contiguous, leavers exit 0, every model exactly the
FedAvg of the acknowledged updates and byte-identical on every server.
Then a scale-out whose servers never come is rolled back, and every
refusal of management-api.md over REST and D-Bus."""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402
from fl_proto import mean, upload  # noqa: E402

NODE_TIMEOUT = 3        # the scale-out timeout is 4 x node_timeout = 12 s
JOB = {"fl_iteration_num": 20, "start_fl_job_threshold": 2, "start_fl_job_time_window": 30000,
       "update_model_time_window": 30000}
INITIAL = [("w", [0.25 * i - 1 for i in range(8)]), ("b", [0.5, -0.5, 2.0])]
NAME, PATH = "org.flcluster.Scheduler1", "/org/flcluster/Scheduler1"


def post(c, path, body):
    return c.http("POST", path, body)


def urls_by_rank(c):
    nodes = c.nodes() or []
    return {int(n["rank_id"]): "http://%s:%d" % (n["address"], n["fl_server_port"]) for n in nodes}


def ids_by_rank(c):
    return {int(n["rank_id"]): n["node_id"] for n in c.nodes() or []}


def models_identical(t, proto, c, want, label):
    raws = {}
    for rank, url in sorted(urls_by_rank(c).items()):
        st, raw, model = proto.fetch_model(url)
        raws[rank] = raw
        ok = st == 200 and not fl_proto.compare_models(model, want)
        t.check(ok, "%s: rank %d holds exactly the FedAvg of the acknowledged updates" % (label, rank),
                fl_proto.compare_models(model, want) if st == 200 else st)
    t.check(len(set(raws.values())) == 1, "%s: all %d servers hold byte-identical models" % (label, len(raws)))


def refusals(t, c):
    def refused(path, body, needle, what):
        r = post(c, path, body)
        t.check(r.status == 400 and needle in ((r.json or {}).get("error_message") or ""),
                "%s is refused (400: '%s')" % (what, needle), (r.status, r.json))
    refused("/scaleout", {"worker_num": 1, "server_num": 2}, "worker_num must be 0", "scaleout with worker_num 1")
    refused("/scaleout", {"worker_num": 0, "server_num": -1}, "positive", "scaleout of -1 servers")
    refused("/scaleout", {"worker_num": 0, "server_num": "2"}, "positive", "scaleout with a string")
    refused("/scaleout", b"{bad json", "JSON object", "scaleout with bad JSON")
    refused("/scalein", {"node_ids": []}, "should not be empty", "scalein of no node")
    refused("/scalein", {"node_ids": ["no-such-node"]}, "The node id:no-such-node is illegal.", "scalein of an unknown id")
    refused("/scalein", {"node_ids": "x"}, "array", "scalein with a string for node_ids")
    refused("/scalein", {"node_ids": list(ids_by_rank(c).values())}, "at least one must stay", "scalein of every server")
    rc, out, err = c.bus.busctl("call", NAME, PATH, NAME, "ScaleIn", "as", "1", "no-such-node")
    t.check(rc != 0 and "The node id:no-such-node is illegal." in err,
            "D-Bus ScaleIn of an unknown id is refused with the same message", (rc, out, err))
    rc, out, err = c.bus.busctl("call", NAME, PATH, NAME, "ScaleOut", "u", "0")
    t.check(rc != 0 and "positive" in err, "D-Bus ScaleOut of 0 servers is refused", (rc, out, err))


def main(t):
    proto = fl_proto.Proto(t.tmp)
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, node_timeout=NODE_TIMEOUT)
    c = tc.c
    t.require(tc.wait_iteration(1), "2 servers train: iteration 1 runs", tc.state())
    u = urls_by_rank(c)
    want = tc.run_iteration([(u[0], u[1], "d1", 30, 0.5), (u[1], u[0], "d2", 10, -1.0)], "2 servers")
    models_identical(t, proto, c, want, "iteration 1")
    refusals(t, c)

    # ---- scale-out 2 -> 4 (the seed's flow), devices served throughout
    t0 = time.monotonic()
    r = post(c, "/scaleout", {"worker_num": 0, "server_num": 2})
    t.check(r.status == 200 and r.json.get("message") == "Cluster begin to scale out.", "POST /scaleout", r.json)
    t.check(tc.state().get("cluster_state") == "CLUSTER_SCALE_OUT", "the state is CLUSTER_SCALE_OUT")
    r = post(c, "/scaleout", {"worker_num": 0, "server_num": 1})
    t.check(r.status == 400 and "running" in (r.json or {}).get("error_message", ""),
            "a second scale operation meanwhile is refused", r.json)
    r = proto.start_fl_job(u[0], "Lenet", "during-scale", 5)
    t.check(r.retcode == 200, "devices are still admitted during the scale-out", r)
    new = c.start_server(local_server_num=2, extra=["--model_path=" + tc.model_path], timeout=30,
                         name="new-servers")
    t.require(c.wait_ready(30), "the scale-out completes: CLUSTER_READY (%.1fs)" % (time.monotonic() - t0), tc.state())
    nodes = c.nodes()
    t.check(sorted(n["rank_id"] for n in nodes) == ["0", "1", "2", "3"], "4 servers, ranks '0'..'3'", nodes)
    u = urls_by_rank(c)
    for rank in (2, 3):
        st, raw, model = proto.fetch_model(u[rank])
        t.check(st == 200 and not fl_proto.compare_models(model, want),
                "new rank %d fetched the model of iteration 1 from a peer" % rank)

    # The device admitted during the scale-out finishes; a second from a new server.
    base = proto.fetch_model(u[0])[2]
    number = tc.state().get("iteration")
    up_a, up_b = upload(base, 0.25, 5), upload(base, 2.0, 15)
    t.check(proto.start_fl_job(u[2], "Lenet", "new-dev", 15).retcode == 200, "a device is admitted on new rank 2")
    t.check(proto.update_model(u[3], "Lenet", "during-scale", number, up_a).retcode == 200,
            "the device admitted during the scale-out updates on new rank 3")
    t.check(proto.update_model(u[2], "Lenet", "new-dev", number, up_b).retcode == 200, "the new device updates")
    t.require(harness.wait_until(lambda: tc.state().get("iteration") == number + 1, 20),
              "the iteration completes with the 4-server ring", tc.state())
    want = mean([up_a, up_b], 20)
    models_identical(t, proto, c, want, "after scale-out")

    # ---- scale-in 4 -> 2 removing rank 3 and rank 0, rank 0 holding an acknowledged update
    ids = ids_by_rank(c)
    base, number = want, tc.state().get("iteration")
    up_c = upload(base, -0.75, 40)
    t.check(proto.start_fl_job(u[0], "Lenet", "on-rank0", 40).retcode == 200, "a device is admitted on rank 0")
    t.check(proto.update_model(u[0], "Lenet", "on-rank0", number, up_c).retcode == 200,
            "rank 0 acknowledges its update")
    pids = {int(n["rank_id"]): n["pid"] for n in c.nodes()}
    t0 = time.monotonic()
    r = post(c, "/scalein", {"node_ids": [ids[3], ids[0]]})
    t.check(r.status == 200 and r.json.get("message") == "Cluster begin to scale in.", "POST /scalein", r.json)
    t.check(tc.state().get("cluster_state") == "CLUSTER_SCALE_IN", "the state is CLUSTER_SCALE_IN")
    r = proto.start_fl_job(u[0], "Lenet", "late", 5)
    t.check(r.retcode == 300 and not r.msg.get("is_selected") and "leaving" in (r.msg.get("reason") or ""),
            "a leaving server admits no new device (OutOfTime, 'leaving')", r)
    up_d = upload(base, 1.5, 60)
    t.check(proto.start_fl_job(u[1], "Lenet", "on-rank1", 60).retcode == 200, "a staying server admits one")
    t.check(proto.update_model(u[1], "Lenet", "on-rank1", number, up_d).retcode == 200, "and takes its update")
    t.require(c.wait_ready(20), "the scale-in completes: CLUSTER_READY (%.1fs)" % (time.monotonic() - t0), tc.state())
    nodes = c.nodes()
    t.check(sorted(n["rank_id"] for n in nodes) == ["0", "1"] and
            sorted(n["node_id"] for n in nodes) == sorted([ids[1], ids[2]]),
            "2 servers remain, ranks made contiguous '0','1'", nodes)
    t.check(tc.state().get("server_num") == 2, "server_num is 2", tc.state())
    want = mean([up_c, up_d], 100)
    models_identical(t, proto, c, want, "after scale-in (rank 0's acknowledged update included)")

    t.check(harness.wait_until(lambda: harness.pid_gone(pids[0]) and harness.pid_gone(pids[3]), 15),
            "the leavers (old ranks 0 and 3) have exited")
    for rank in (0, 3):
        direct = [d for d in tc.daemons + [new] if d.pid == pids[rank]]
        if direct:
            ok = direct[0].wait(5) == 0
        else:   # a child of the --local_server_num=2 command: its parent reports it
            ok = "(pid %d) exited with status 0" % pids[rank] in new.log()
        t.check(ok, "old rank %d exited with status 0" % rank)
    t.check(new.running(), "the command of the new servers still runs its remaining server")

    # ---- training goes on with 2 servers
    u = urls_by_rank(c)
    want = tc.run_iteration([(u[0], u[1], "e1", 7, 0.1), (u[1], u[0], "e2", 3, 0.2)], "after scaling")
    models_identical(t, proto, c, want, "training goes on")

    # ---- a scale-out whose servers never come is rolled back
    t0 = time.monotonic()
    r = post(c, "/scaleout", {"worker_num": 0, "server_num": 1})
    t.check(r.status == 200, "POST /scaleout of a server that will never come", r.json)
    t.check(harness.wait_until(lambda: tc.state().get("cluster_state") == "CLUSTER_READY", 25),
            "it is rolled back to CLUSTER_READY (%.1fs)" % (time.monotonic() - t0), tc.state())
    t.check(tc.state().get("server_num") == 2, "server_num is back to 2", tc.state())
    t.check(c.scheduler.wait_log("rolling back", 1, 5), "the log says so", c.scheduler.tail(5))


harness.run_test("scale", main, timeout=170)
