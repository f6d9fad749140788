#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""fl-client's partial participation and FedProx, under real training:
40 devices (Dirichlet(0.5) shards) against a job that admits 4 per
iteration, 3 iterations, on two servers, --eval-every 2, twice from the
same seed: once plain, once with fedprox_mu=0.5 in the plan.

- every iteration takes exactly 4 updates, from 4 distinct devices the CSV
  names, drawn at random (not the same 4 every time) and the same in both
  runs (chosen with the seed);
- the other devices asked too and were told the iteration is full (and
  when to come back);
- --eval-every 2 evaluates iterations 2 and 3 (the last), not 1, and
  fl-client plot draws the two evaluated rows of that CSV;
- the proximal term changes what the devices upload: the final models
  differ, the participants being the same."""

import csv
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

FL_CLIENT, DATA = harness.FL_CLIENT, harness.FASHION_MNIST
DEVICES, ADMITTED, ITERATIONS = 40, 4, 3
JOB = ["--fl_iteration_num=%d" % ITERATIONS, "--start_fl_job_threshold=%d" % ADMITTED, "--client_epoch_num=1",
       "--client_batch_size=32", "--client_learning_rate=0.01", "--start_fl_job_time_window=120000",
       "--update_model_time_window=120000"]


def run(t, model, name, extra):
    c = harness.Cluster(t, server_num=2, node_timeout=10, name=name)
    c.start_scheduler(extra=JOB + extra)
    srv = c.start_server(local_server_num=2, extra=["--model_path=" + model], timeout=30)
    t.require(c.wait_ready(20), "%s: the cluster is READY" % name, c.state())
    table, out = os.path.join(t.tmp, name + ".csv"), os.path.join(t.tmp, name + ".fl")
    argv = [FL_CLIENT, "train", "--servers", ",".join("http://127.0.0.1:%d" % p for p in srv.ports),
            "--devices", str(DEVICES), "--partition", "dirichlet:0.5", "--data", DATA, "--seed", "5",
            "--threads", "2", "--eval-every", "2", "--timeout", "90", "--csv", table, "-o", out, "-v"]
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=150, stdin=subprocess.DEVNULL,
                           env=harness._clean_env())
    except subprocess.TimeoutExpired as e:
        raise harness.Failure("%s: fl-client train timed out: %s" % (name, e.stderr))
    t.transcript("%s: fl-client rc=%s\n%s%s" % (name, p.returncode, p.stdout, p.stderr[-1500:]))
    t.require(p.returncode == 0, "%s: fl-client train exits 0" % name, p.stderr[-1500:])
    refused = p.stderr.count("threshold %d of iteration" % ADMITTED)
    srv.stop()
    c.scheduler.stop()
    with open(table) as f:
        rows = list(csv.DictReader(f))
    with open(out, "rb") as f:
        final = f.read()
    return rows, p.stdout, final, refused


def main(t):
    harness.require_fl_client()
    model = os.path.join(t.tmp, "lenet5.fl")
    subprocess.run([FL_CLIENT, "init-model", "--seed", "2", "-o", model], check=True, stdin=subprocess.DEVNULL,
                   timeout=60)

    rows, table, final, refused = run(t, model, "plain", [])
    sets = [r["participants"].split() for r in rows]
    t.require([int(r["iteration"]) for r in rows] == list(range(1, ITERATIONS + 1)),
              "plain: one CSV row per iteration", rows)
    t.check(all(int(r["devices"]) == ADMITTED for r in rows) and
            all(len(set(s)) == ADMITTED and all(0 <= int(k) < DEVICES for k in s) for s in sets),
            "plain: every iteration took %d updates, from %d distinct devices the CSV names" % (ADMITTED, ADMITTED),
            rows)
    t.check(len({tuple(s) for s in sets}) > 1 and len({k for s in sets for k in s}) > ADMITTED,
            "plain: the devices that take part change from iteration to iteration", sets)
    t.check(refused >= ITERATIONS * (DEVICES - ADMITTED) // 2,
            "plain: the other devices asked too and were told the iteration is full (%d refusals)" % refused,
            refused)
    evaluated = [bool(r["test_accuracy"]) for r in rows]
    lines = [line.split() for line in table.splitlines() if line[:1].isdigit()]
    t.check(evaluated == [False, True, True] and [f[2] for f in lines][0] == "-" and
            0.0 < float(rows[-1]["test_accuracy"]) <= 1.0,
            "plain: --eval-every 2 evaluates iterations 2 and 3 (the last), not 1", (rows, lines))

    png = os.path.join(t.tmp, "plain.png")
    p = subprocess.run([FL_CLIENT, "plot", "--csv", os.path.join(t.tmp, "plain.csv"), "-o", png],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    t.check(p.returncode == 0 and os.path.getsize(png) > 0 and "Drew 2 rows" in p.stderr,
            "plain: fl-client plot draws the evaluated rows of that CSV and leaves the other out",
            (p.returncode, p.stderr))

    rows2, _, final2, _ = run(t, model, "fedprox", ["--fedprox_mu=0.5"])
    t.check([r["participants"] for r in rows2] == [r["participants"] for r in rows],
            "fedprox: the same seed admits the same devices in every iteration",
            ([r["participants"] for r in rows2], [r["participants"] for r in rows]))
    t.check(len(final) == len(final2) and final != final2,
            "fedprox: with fedprox_mu in the plan the devices train otherwise (the final models differ)")


harness.run_test("participation", main, timeout=300)
