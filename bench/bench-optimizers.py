#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Server optimizers on skewed data with partial participation (issue 16,
"Measure"; docs/training.md): LeNet-5 on Fashion-MNIST, 100 devices with
Dirichlet(0.1) shards, 10 admitted per iteration (start_fl_job_threshold),
one local epoch (batches of 32, lr 0.01, momentum 0.9), 50 iterations,
through the real cluster (a scheduler, two servers). The accuracy curve of
each server optimizer; as references measured in the same run, fl-client's
own trainer on the whole training set for the same number of samples the
federated devices trained on (`fl-client central`), and the IID split
(FedAvg, the same 10 of 100 per iteration).

    FL_BUILDDIR=_build nice bench/bench-optimizers.py [--iterations 50]
        [--devices 100] [--admitted 10] [--alpha 0.1] [--seed 1] [--every 5]
        [--optimizers fedavg,fedavgm,fedadam,fedyogi]
        [--lr fedadam=0.01,fedyogi=0.01] [--tune fedadam=0.003:0.01:0.03]
        [--set fedadam:server_tau=0.01] [--no-iid] [--no-central]

--tune runs an optimizer once per learning rate given and keeps the best;
every run is printed. --set adds a scheduler option to one optimizer's runs
(its label shows it), e.g. another server_tau or a fedprox_mu; an optimizer
may be listed twice in --optimizers as KIND/LABEL to run it with and
without (--set KIND/LABEL:key=value). Uses the integration harness (tests/integration/
harness.py) for ports, processes and the private D-Bus daemon; everything
it starts is stopped at the end."""

import argparse
import csv
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import harness  # noqa: E402

FL_CLIENT, DATA = harness.FL_CLIENT, harness.FASHION_MNIST


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--devices", type=int, default=100)
    p.add_argument("--admitted", type=int, default=10)
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--every", type=int, default=5, help="evaluate every Nth iteration")
    p.add_argument("--optimizers", default="fedavg,fedavgm,fedadam,fedyogi")
    p.add_argument("--lr", default="", help="KIND=RATE,...: server learning rates (default: the optimizer's)")
    p.add_argument("--tune", default="", help="KIND=R1:R2:...: try these rates, keep the best")
    p.add_argument("--set", action="append", default=[], help="KIND:KEY=VALUE: a scheduler option for KIND")
    p.add_argument("--no-iid", action="store_true")
    p.add_argument("--no-central", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args()


def pairs(text):
    out = {}
    for item in filter(None, text.split(",")):
        k, v = item.split("=", 1)
        out[k] = v
    return out


def server_usage(pgid):
    """CPU seconds (user + system, all threads, from /proc/PID/stat) and the
    largest VmHWM (kB) of the processes of the servers' process group."""
    cpu, hwm = 0.0, 0
    for pid in harness.group_members(pgid):
        cpu += harness.cpu_seconds(pid) or 0.0
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
        except OSError:
            pass
    return cpu, hwm


def federated(t, a, model, kind, lr, partition, tag, extra=()):
    """One job through a fresh cluster; returns {"curve": [(iteration,
    accuracy)], "final", "examples", "seconds", "participants"}."""
    job = list(extra) + ["--fl_iteration_num=%d" % a.iterations, "--start_fl_job_threshold=%d" % a.admitted,
           "--client_epoch_num=1", "--client_batch_size=32", "--client_learning_rate=0.01",
           "--start_fl_job_time_window=600000", "--update_model_time_window=600000",
           "--global_iteration_time_window=1200000", "--server_optimizer=" + kind]
    if lr is not None:
        job.append("--server_learning_rate=%g" % lr)
    c = harness.Cluster(t, server_num=2, node_timeout=30, name="sched-" + tag)
    c.start_scheduler(extra=job)
    srv = c.start_server(local_server_num=2, extra=["--model_path=" + model], timeout=60)
    t.require(c.wait_ready(60), "%s: the cluster is READY" % tag, c.state())
    # The learning rate in force (the optimizer's default when none is given).
    in_force = ((c.http("GET", "/queryInstance").json or {}).get("result") or {}).get("server_learning_rate")
    table = os.path.join(t.tmp, tag + ".csv")
    argv = [FL_CLIENT, "train", "--servers", ",".join("http://127.0.0.1:%d" % p for p in srv.ports),
            "--devices", str(a.devices), "--partition", partition, "--data", DATA, "--seed", str(a.seed),
            "--threads", str(a.threads), "--eval-every", str(a.every), "--timeout", "600", "--csv", table]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=7200,
                       env=harness._clean_env())
    seconds = time.monotonic() - t0
    cpu, hwm = server_usage(srv.pid)
    for d in [srv, c.scheduler]:
        d.stop()
    t.require(p.returncode == 0, "%s: fl-client train exits 0" % tag, p.stderr[-2000:])
    m = re.search(r"updates held (\d+) examples", p.stderr)
    with open(table) as f:
        rows = list(csv.DictReader(f))
    curve = [(int(r["iteration"]), float(r["test_accuracy"])) for r in rows if r["test_accuracy"]]
    last3 = [acc for _, acc in curve[-3:]]
    return {"curve": curve, "final": curve[-1][1], "last3": sum(last3) / len(last3), "lr_in_force": in_force,
            "server_cpu": cpu, "server_hwm_kb": hwm,
            "examples": int(m.group(1)) if m else None,
            "seconds": seconds, "participants": [r["participants"] for r in rows],
            "updates": sum(int(r["devices"]) for r in rows)}


def central(t, a, samples):
    table = os.path.join(t.tmp, "central.csv")
    t0 = time.monotonic()
    p = subprocess.run([FL_CLIENT, "central", "--samples", str(samples), "--data", DATA, "--seed", str(a.seed),
                        "--csv", table], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=7200,
                       env=harness._clean_env())
    t.require(p.returncode == 0, "fl-client central exits 0", p.stderr[-2000:])
    with open(table) as f:
        rows = list(csv.DictReader(f))
    return {"curve": [(int(r["samples"]), float(r["test_accuracy"])) for r in rows],
            "final": float(rows[-1]["test_accuracy"]), "seconds": time.monotonic() - t0}


def main(t):
    a = ARGS
    harness.require_fl_client()
    model = os.path.join(t.tmp, "lenet5.fl")
    subprocess.run([FL_CLIENT, "init-model", "--seed", str(a.seed), "-o", model], check=True,
                   stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    rates = {k: float(v) for k, v in pairs(a.lr).items()}
    tune = {k: [float(x) for x in v.split(":")] for k, v in pairs(a.tune).items()}
    skewed = "dirichlet:%g" % a.alpha
    sets = {}
    for item in a.set:
        k, kv = item.split(":", 1)
        sets.setdefault(k, []).append("--" + kv)
    results, tried = {}, []
    for name in a.optimizers.split(","):
        kind = name.split("/")[0]
        best = None
        for lr in tune.get(name, [rates.get(name)]):
            tag = "%s-%s" % (name.replace("/", "-"), "default" if lr is None else "%g" % lr)
            r = federated(t, a, model, kind, lr, skewed, tag, sets.get(name, []))
            r["lr"] = lr
            tried.append((name, lr, r["final"], r["seconds"]))
            print("# %-10s lr %-8s %s final %.4f, last 3 evaluations %.4f  (%d updates, %s examples, %.0fs)" %
                  (name, "default" if lr is None else "%g" % lr, " ".join(sets.get(name, [])), r["final"],
                   r["last3"], r["updates"], r["examples"], r["seconds"]), flush=True)
            if best is None or r["final"] > best["final"]:
                best = r
        best["set"] = " ".join(x.lstrip("-") for x in sets.get(name, []))
        results[name] = best
    if not a.no_iid:
        results["iid"] = federated(t, a, model, "fedavg", None, "iid", "fedavg-iid")
        results["iid"]["lr"] = None
    ref_samples = next((r["examples"] for r in results.values() if r.get("examples")), None)
    if not a.no_central and ref_samples:
        results["central"] = central(t, a, ref_samples)

    same = len({tuple(r["participants"]) for k, r in results.items() if k not in ("central", "iid")}) == 1
    print()
    print("LeNet-5, Fashion-MNIST, %d devices, %s shards (IID row: iid), %d admitted per iteration, "
          "1 local epoch, %d iterations, 2 servers; seed %d (weights, split, participants, training)" %
          (a.devices, skewed, a.admitted, a.iterations, a.seed))
    print("the same devices took part in every skewed run: %s" % ("yes" if same else "no"))
    evals = [it for it, _ in next(iter(results.values()))["curve"]] if results else []
    header = "%-16s %-9s" % ("run", "server lr") + "".join(" it%-5d" % it for it in evals) + \
        "  final  last3  vs central"
    print(header)
    cen = results.get("central", {}).get("final")
    for name, r in results.items():
        if name == "central":
            continue
        label = name if name != "iid" else "fedavg (iid)"
        lr = "%g" % r["lr"] if r.get("lr") is not None else \
            "%g" % r["lr_in_force"] if r.get("lr_in_force") is not None else "default"
        accs = dict(r["curve"])
        print("%-16s %-9s" % (label, lr) + "".join(" %.4f" % accs[it] if it in accs else "       "
                                                   for it in evals) +
              "  %.4f %.4f %s%s" % (r["final"], r["last3"], "%+.4f" % (r["final"] - cen) if cen else "",
                                    "  (%s)" % r["set"] if r.get("set") else ""))
    base = results.get("fedavg")
    if base and base.get("server_hwm_kb"):
        print("servers (one fl-serverd, 2 servers), against the fedavg run: " + ", ".join(
            "%s CPU %.1fs (%.2fx), VmHWM %d kB (%.2fx)" % (k, r["server_cpu"], r["server_cpu"] / base["server_cpu"],
                                                          r["server_hwm_kb"], r["server_hwm_kb"] / base["server_hwm_kb"])
            for k, r in results.items() if r.get("server_hwm_kb")))
    if cen is not None:
        c = results["central"]
        print("%-16s %-9s %s  %.4f (%d samples = %.2f passes, %.0fs)" %
              ("central", "-", " ".join("%d:%.4f" % (s, acc) for s, acc in c["curve"]), cen, ref_samples,
               ref_samples / 60000.0, c["seconds"]))
        skew = [k for k in results if k not in ("central", "iid")]
        if skew:
            best = max(skew, key=lambda k: results[k]["final"])
            print("best server optimizer: %s, %.4f, %.2f points %s the centralized run (target: within 2)" %
                  (best, results[best]["final"], abs(results[best]["final"] - cen) * 100,
                   "below" if results[best]["final"] < cen else "above"))
    if len(tried) > len(results):
        print("learning rates tried: " + ", ".join("%s %s -> %.4f" % (k, "default" if lr is None else "%g" % lr, f)
                                                   for k, lr, f, _ in tried))


ARGS = parse_args()
harness.run_test("bench-optimizers", main, timeout=6 * 3600)
