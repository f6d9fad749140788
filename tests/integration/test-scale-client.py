#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Scaling under a real training job: fl-client trains LeNet-5 with 4
devices for 6 iterations while the operator scales out 2 -> 4 servers
(flctl scaleout, then the seed's fl-serverd --server_num=4) and scales in
4 -> 2 removing rank 0 and rank 3 (flctl scalein). Every iteration completes
with devices in it, fl-client exits 0, and the two remaining servers hold
byte-identical final models."""

import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DATA = os.environ.get("FL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FL_CLIENT = os.path.join(harness.BUILDDIR, "fl-client")
ITERATIONS = 6
JOB = ["--fl_iteration_num=%d" % ITERATIONS, "--start_fl_job_threshold=4", "--client_epoch_num=1",
       "--client_batch_size=32", "--client_learning_rate=0.01",
       "--start_fl_job_time_window=60000", "--update_model_time_window=60000"]


def parse_table(text):
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == 5 and f[0].isdigit():
            rows.append((int(f[0]), int(f[1]), float(f[2])))
    return rows


def iteration(c):
    r = c.http("GET", "/state")
    return (r.json or {}).get("iteration", 0) if isinstance(r.json, dict) else 0


def main(t):
    if not os.path.exists(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")):
        raise harness.Skip("dataset-fashion-mnist is not installed")
    model = os.path.join(t.tmp, "lenet5.fl")
    subprocess.run([FL_CLIENT, "init-model", "--arch", "lenet5", "--seed", "3", "-o", model], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    c = harness.Cluster(t, server_num=2, node_timeout=5)
    c.start_scheduler(extra=JOB)
    first = c.start_server(local_server_num=2, extra=["--model_path=" + model], timeout=30)
    t.require(c.wait_ready(20), "2 servers form the cluster")
    later = harness.reserve_ports(2)            # consecutive
    urls = ["http://127.0.0.1:%d" % p for p in first.ports + later]

    log = open(os.path.join(t.tmp, "fl-client.out"), "w")
    client = subprocess.Popen([FL_CLIENT, "train", "--servers", ",".join(urls), "--devices", "4",
                               "--partition", "iid", "--data", DATA, "--seed", "3", "--threads", "2",
                               "--timeout", "120"], stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, env=harness._clean_env())
    try:
        t.require(harness.wait_until(lambda: iteration(c) >= 2, 120), "training reaches iteration 2")
        rc, out, err = c.flctl("scaleout", "2")
        t.check(rc == 0, "flctl scaleout 2 (over D-Bus)", (rc, out, err))
        c.server_num = 4
        c.start_server(local_server_num=2, port=later[0], timeout=60, name="new-servers")
        t.check(c.wait_ready(60), "the scale-out completes while fl-client trains", c.state())
        t.check(sorted(n["rank_id"] for n in c.nodes()) == ["0", "1", "2", "3"], "4 servers", c.nodes())

        start = iteration(c)
        t.require(harness.wait_until(lambda: iteration(c) >= start + 1, 120), "an iteration completes on 4 servers")
        ids = {n["rank_id"]: n["node_id"] for n in c.nodes()}
        rc, out, err = c.flctl("scalein", ids["0"], ids["3"], url=True)
        t.check(rc == 0, "flctl scalein of rank 0 and rank 3 (over REST)", (rc, out, err))
        t.check(harness.wait_until(lambda: len(c.nodes() or []) == 2 and c.state() == "CLUSTER_READY", 120),
                "the scale-in completes while fl-client trains", (c.state(), c.nodes()))
        rc = client.wait(timeout=300)
    finally:
        if client.poll() is None:
            client.kill()
        log.close()
    out = open(os.path.join(t.tmp, "fl-client.out")).read()
    t.transcript(out)
    t.check(rc == 0, "fl-client finishes the job and exits 0", out[-1500:])
    rows = parse_table(out)
    t.check([r[0] for r in rows] == list(range(1, ITERATIONS + 1)) and all(r[1] > 0 for r in rows),
            "every one of the %d iterations completed with devices in it" % ITERATIONS, rows)
    t.check(rows and rows[-1][2] > 0.6, "and the model learned (final accuracy %.3f)" % (rows[-1][2] if rows else 0))
    raws = set()
    for n in c.nodes():
        r = harness.http("GET", "http://%s:%d/model" % (n["address"], n["fl_server_port"]), timeout=10)
        raws.add(r.raw if r.status == 200 else None)
    t.check(len(raws) == 1 and None not in raws, "the 2 remaining servers hold byte-identical final models")


harness.run_test("scale-client", main, timeout=400)
