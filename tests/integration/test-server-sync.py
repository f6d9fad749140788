#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The server side of elastic scaling (wire-protocol.h, "Elastic scaling"):

- a server added by scale-out without any model of its own takes the
  cluster's model from its first peer in rank order, checkpoints it, reports
  in_sync on GET /, and trains in the next iteration;
- a server that lost its state directory rejoins with its node id and only
  the initial model: it answers devices with the safemode text (and GET
  /model with 503) while it syncs, gives up on a peer that accepts but never
  answers (a stopped rank 0), and takes the model from the next one;
- scale-in of rank 0: the leaver shows "leaving" on GET /, answers
  startFLJob OutOfTime "This server is leaving the cluster.", still takes
  part in the aggregation, logs "Scaled in: leaving the cluster." and exits
  0; the others adopt their new ranks ("Rank changed from X to Y.")."""

import json
import os
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402
from fl_proto import mean, upload  # noqa: E402

# A stopped peer is given up on after 15 s without a byte (HTTP_CLIENT_STALL_SEC):
# node_timeout must outlast that, or the scheduler would declare it dead first.
NODE_TIMEOUT = 40
JOB = {"fl_iteration_num": 20, "start_fl_job_threshold": 2, "start_fl_job_time_window": 120000,
       "update_model_time_window": 120000}
INITIAL = [("w", [0.5 * i - 1 for i in range(6)]), ("b", [1.0, -2.0])]


def nodes_by_rank(c):
    return {int(n["rank_id"]): n for n in c.nodes() or []}


def url_of(node):
    return "http://%s:%d" % (node["address"], node["fl_server_port"])


def status(url):
    st, _, raw = fl_proto.get(url + "/", timeout=5)
    try:
        return json.loads(raw.decode()) if st == 200 else {}
    except ValueError:
        return {}


def models_identical(t, proto, c, want, label):
    raws = {}
    for rank, node in sorted(nodes_by_rank(c).items()):
        st, raw, model = proto.fetch_model(url_of(node))
        raws[rank] = raw
        t.check(st == 200 and not fl_proto.compare_models(model, want),
                "%s: rank %d holds the FedAvg of the acknowledged updates" % (label, rank),
                fl_proto.compare_models(model, want) if st == 200 else st)
    t.check(len(set(raws.values())) == 1, "%s: all %d servers hold byte-identical models" % (label, len(raws)))
    return raws[0]


def main(t):
    proto = fl_proto.Proto(t.tmp)
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, node_timeout=NODE_TIMEOUT)
    c = tc.c
    t.require(tc.wait_iteration(1), "2 servers train: iteration 1 runs", tc.state())
    n = nodes_by_rank(c)
    u0, u1 = url_of(n[0]), url_of(n[1])
    for url in (u0, u1):
        st = status(url)
        t.check(st.get("in_sync") is True and st.get("leaving") is False,
                "GET / of %s: in_sync true, leaving false" % url, st)
    want = tc.run_iteration([(u0, u1, "d1", 30, 0.5), (u1, u0, "d2", 10, -1.0)], "2 servers")
    raw1 = models_identical(t, proto, c, want, "iteration 1")

    # ---- scale-out 2 -> 3 with a server that has no model of its own
    r = c.http("POST", "/scaleout", {"worker_num": 0, "server_num": 1})
    t.require(r.status == 200, "POST /scaleout of one server", r.json)
    new = c.start_server(extra=["--server_num=3"], name="new-server")
    t.require(c.wait_ready(30), "the scale-out completes", tc.state())
    t.check(new.wait_log("Took the model of iteration 1 from peer rank 0", 1, 10),
            "the new server took the model of iteration 1 from peer rank 0", new.tail(8))
    u2 = "http://127.0.0.1:%d" % new.port
    st = status(u2)
    t.check(st.get("in_sync") is True and st.get("model_iteration") == 1 and st.get("rank") == 2 and
            st.get("model_checksum") == status(u0).get("model_checksum"),
            "GET / of the new server: rank 2, in sync, the model of iteration 1 with rank 0's checksum", st)
    t.check(proto.fetch_model(u2)[1] == raw1, "it serves rank 0's model byte for byte")
    t.check(proto.fetch_model(u2, 1)[0] == 200, "and has checkpointed it as iteration 1")
    want = tc.run_iteration([(u2, u2, "n1", 20, 0.25), (u0, u2, "n2", 5, 2.0)], "3 servers")
    raw2 = models_identical(t, proto, c, want, "iteration 2 with the new server in the ring")

    # ---- the new server loses its state; rank 0 accepts connections but never answers
    node_id = status(u2).get("node_id")
    leader = [d for d in tc.daemons if d.port == n[0]["fl_server_port"]][0]
    new.kill9()
    fresh = os.path.join(t.tmp, "wiped")
    shutil.rmtree(new.state_dir, ignore_errors=True)
    leader.signal_group(signal.SIGSTOP)
    try:
        again = c.start_server(port=new.port, node_id=node_id, state_dir=fresh, name="rejoined",
                               extra=["--server_num=3", "--model_path=" + tc.model_path])
        t.check(again.wait_log("Taking the model of iteration 2", 1, 10),
                "the rejoined server, holding only the initial model, syncs", again.tail(8))
        r = proto.start_fl_job(u2, "Lenet", "too-early", 3)
        t.check(r.text == fl_proto.SAFEMODE_TEXT, "meanwhile its startFLJob answers the safemode text", r)
        t.check(status(u2).get("in_sync") is False, "GET / says in_sync false", status(u2))
        t.check(proto.fetch_model(u2)[0] == 503, "GET /model answers 503 to the peers that would sync from it")
        t.check(again.wait_log("Failed to take the model from peer rank 0", 1, 30),
                "it gives up on the silent rank 0", again.tail(8))
        t.check(again.wait_log("Took the model of iteration 2 from peer rank 1", 1, 10),
                "and takes the model from rank 1", again.tail(8))
    finally:
        leader.signal_group(signal.SIGCONT)
    st = status(u2)
    t.check(st.get("in_sync") is True and st.get("model_iteration") == 2, "GET / says in sync, iteration 2", st)
    t.check(proto.fetch_model(u2)[1] == raw2, "it serves the model of iteration 2 byte for byte")

    # ---- scale-in of rank 0, which holds an admitted device: the others move up one rank
    t.require(c.wait_ready(20), "the cluster is ready again", tc.state())
    n = nodes_by_rank(c)
    number = tc.state().get("iteration")
    t.check(proto.start_fl_job(u0, "Lenet", "early", 12).retcode == 200, "a device is admitted on rank 0")
    r = c.http("POST", "/scalein", {"node_ids": [n[0]["node_id"]]})
    t.require(r.status == 200, "POST /scalein of rank 0", r.json)
    t.check(harness.wait_until(lambda: status(u0).get("leaving") is True, 5), "GET / of rank 0 says leaving",
            status(u0))
    before = int(time.time() * 1000)
    r = proto.start_fl_job(u0, "Lenet", "late", 5)
    nrt = int((r.msg or {}).get("next_req_time") or 0)
    t.check(r.retcode == 300 and r.msg.get("is_selected") is False and
            r.msg.get("reason") == "This server is leaving the cluster." and before <= nrt <= before + 5000,
            "rank 0 answers startFLJob OutOfTime 'This server is leaving the cluster.', back in about 1 s", r)
    t.check(proto.start_fl_job(u1, "Lenet", "staying", 8).retcode == 200, "a staying server admits a device")
    up_a, up_b = upload(want, 0.75, 12), upload(want, -0.5, 8)
    r = proto.update_model(u0, "Lenet", "early", number, up_a)
    t.check(r.retcode == 200, "the leaver still takes the update of the device it admitted before", r)
    t.check(proto.update_model(u1, "Lenet", "staying", number, up_b).retcode == 200, "the staying one too")
    want = mean([up_a, up_b], 20)
    t.require(c.wait_ready(30), "the scale-in completes", tc.state())
    t.check(leader.wait(15) == 0, "the leaver exits with status 0", leader.tail(5))
    t.check("Scaled in: leaving the cluster." in leader.log(), "and says 'Scaled in: leaving the cluster.'",
            leader.tail(5))
    old1 = [d for d in tc.daemons if d.port == n[1]["fl_server_port"]][0]
    t.check(old1.wait_log("Rank changed from 1 to 0.", 1, 10), "the old rank 1 logs 'Rank changed from 1 to 0.'",
            old1.tail(5))
    t.check(again.wait_log("Rank changed from 2 to 1.", 1, 10), "the old rank 2 logs 'Rank changed from 2 to 1.'",
            again.tail(5))
    t.check(status(u1).get("rank") == 0 and status(u2).get("rank") == 1, "GET / shows the new ranks",
            (status(u1), status(u2)))
    models_identical(t, proto, c, want, "after scale-in")
    want = tc.run_iteration([(u1, u2, "f1", 4, 0.1), (u2, u1, "f2", 6, 0.2)], "after scaling")
    models_identical(t, proto, c, want, "training goes on")


harness.run_test("server-sync", main, timeout=180)
