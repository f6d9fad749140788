#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A short real training run: a scheduler and 2 servers (one fl-serverd
--local_server_num=2) start from `fl-client init-model`; `fl-client train`
runs 4 devices for the job's 3 iterations, each device's startFLJob and
updateModel on different servers. The test accuracy rises from the first
iteration to the last, both servers serve the same final model bytes on
GET /model, `flctl model get` writes exactly those bytes (and a valid
safetensors file), and the job, once finished, turns a new fl-client away."""

import csv
import json
import os
import struct
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

SERVERS = 2
DEVICES = 4
ITERATIONS = 3
DATA = os.environ.get("FL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FL_CLIENT = os.path.join(harness.BUILDDIR, "fl-client")
LENET5_PARAMETERS = 61684
# Every device in every iteration, one local epoch at MindSpore's LeNet
# settings; the windows are long enough for a slow, loaded machine.
JOB = ["--fl_iteration_num=%d" % ITERATIONS, "--start_fl_job_threshold=%d" % DEVICES,
       "--client_epoch_num=1", "--client_batch_size=32", "--client_learning_rate=0.01",
       "--start_fl_job_time_window=60000", "--update_model_time_window=60000"]


run = harness.run_program


def parse_table(text):
    """The rows of fl-client's table as (iteration, devices, accuracy, loss)."""
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) == 5 and f[0].isdigit():
            rows.append((int(f[0]), int(f[1]), float(f[2]), float(f[3])))
    return rows


def safetensors_header(path):
    with open(path, "rb") as f:
        data = f.read()
    n, = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8:8 + n].decode()), len(data)


def main(t):
    if not os.access(FL_CLIENT, os.X_OK):
        raise harness.Failure("%s is not built" % FL_CLIENT)
    if not os.path.exists(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")):
        raise harness.Skip("Fashion-MNIST is not in %s (apt install dataset-fashion-mnist)" % DATA)

    model = os.path.join(t.tmp, "lenet5.fl")
    rc, _, err = run(t, [FL_CLIENT, "init-model", "--arch", "lenet5", "--seed", "1", "-o", model], 30)
    t.require(rc == 0 and os.path.getsize(model) > 4 * LENET5_PARAMETERS,
              "fl-client init-model writes a LeNet-5 model file", err)

    c = harness.Cluster(t, server_num=SERVERS, node_timeout=10)
    c.start_scheduler(extra=JOB)
    srv = c.start_server(local_server_num=SERVERS, extra=["--model_path=" + model], timeout=30)
    t.require(c.wait_ready(20), "cluster becomes CLUSTER_READY", c.state())
    urls = ["http://127.0.0.1:%d" % p for p in srv.ports]

    # ---- training
    table = os.path.join(t.tmp, "accuracy.csv")
    last = os.path.join(t.tmp, "last.fl")
    started = time.monotonic()
    rc, out, err = run(t, [FL_CLIENT, "train", "--servers", ",".join(urls), "--devices", str(DEVICES),
                           "--partition", "iid", "--data", DATA, "--seed", "7", "--threads", "2",
                           "--timeout", "60", "--csv", table, "-o", last], 100)
    t.note("fl-client train took %.1fs:\n%s" % (time.monotonic() - started, out.rstrip()))
    t.require(rc == 0, "fl-client train exits 0 after the job's iterations", "rc=%s\n%s" % (rc, err))

    rows = parse_table(out)
    t.require([r[0] for r in rows] == list(range(1, ITERATIONS + 1)),
              "the table has one row per iteration, 1 to %d" % ITERATIONS, out)
    t.check(all(r[1] == DEVICES for r in rows), "every iteration took all %d devices' updates" % DEVICES, rows)
    t.check(all(0.0 <= r[2] <= 1.0 and r[3] > 0 for r in rows), "accuracies and losses are sane", rows)
    t.check(rows[-1][2] > rows[0][2], "the test accuracy rises from iteration 1 to %d (%.4f -> %.4f)"
            % (ITERATIONS, rows[0][2], rows[-1][2]), rows)
    t.check(rows[-1][3] < rows[0][3], "the test loss falls", rows)
    t.check(rows[-1][2] >= 0.70, "after %d iterations the model is well above chance (>= 0.70)" % ITERATIONS,
            rows[-1][2])

    with open(table) as f:
        csv_rows = list(csv.reader(f))
    t.check(csv_rows and csv_rows[0] == ["iteration", "devices", "test_accuracy", "test_loss", "seconds",
                                         "participants"],
            "--csv has the header row", csv_rows[:1])
    t.check([(int(r[0]), int(r[1]), round(float(r[2]), 4)) for r in csv_rows[1:]]
            == [(r[0], r[1], r[2]) for r in rows], "--csv holds the same rows as the table", csv_rows)
    t.check(all(r[5] == "0 1 2 3" for r in csv_rows[1:]), "--csv names the devices that took part: all four",
            csv_rows)

    # ---- the final model, from each server and through flctl
    finished = wait_until(lambda: (c.http("GET", "/state").json or {}).get("iteration_phase") == "FINISHED", 10)
    t.check(finished, "the scheduler reports the job FINISHED", c.http("GET", "/state").json)

    models = []
    for url in urls:
        r = harness.http("GET", url + "/model", timeout=10)
        t.check(r.status == 200 and len(r.raw) > 4 * LENET5_PARAMETERS,
                "GET %s/model serves the model" % url, r)
        models.append(r.raw)
    t.check(len(models) == SERVERS and models[0] == models[1], "both servers serve byte-identical models",
            [len(m) for m in models])

    final = os.path.join(t.tmp, "final.fl")
    rc, out, err = c.flctl("model", "get", "-o", final)
    t.check(rc == 0 and "61684 parameters" in out, "flctl model get (D-Bus) validates and writes the model",
            out + err)
    with open(final, "rb") as f:
        got = f.read()
    t.check(got == models[0], "flctl's file holds exactly the servers' bytes", len(got))
    with open(last, "rb") as f:
        t.check(f.read() == got, "fl-client evaluated that very model (its -o file is the same bytes)")

    st = os.path.join(t.tmp, "final.safetensors")
    rc, out, err = c.flctl("--json", "model", "get", "-o", st, url=True)
    t.check(rc == 0 and json.loads(out or "{}").get("parameters") == LENET5_PARAMETERS,
            "flctl --url --json model get -o FILE.safetensors", out + err)
    if rc == 0:
        n, header, size = safetensors_header(st)
        t.check((8 + n) % 8 == 0 and header.get("conv1.weight", {}).get("shape") == [6, 1, 5, 5]
                and header.get("fc1.weight", {}).get("shape") == [120, 400]
                and size == 8 + n + 4 * LENET5_PARAMETERS,
                "the safetensors file has LeNet-5's shapes and every float", header)

    rc, out, err = c.flctl("model", "get", "--iteration", str(ITERATIONS - 1), "-o",
                           os.path.join(t.tmp, "prev.fl"), url=True)
    t.check(rc == 0, "flctl model get --iteration %d: a kept checkpoint" % (ITERATIONS - 1), out + err)
    rc, out, err = c.flctl("model", "get", "--iteration", "999", "-o", os.path.join(t.tmp, "none.fl"), url=True)
    t.check(rc == 1 and "999" in err and not os.path.exists(os.path.join(t.tmp, "none.fl")),
            "flctl model get --iteration 999 fails with exit status 1 and writes nothing", (rc, err))
    rc, out, err = c.flctl("model", "get", url=True)
    t.check(rc == 2, "flctl model get without -o is a usage error (exit status 2)", (rc, err))

    # ---- a finished job takes no more devices
    rc, out, err = run(t, [FL_CLIENT, "train", "--servers", urls[1], "--devices", "2", "--data", DATA,
                           "--timeout", "20"], 60)
    t.check(rc == 1 and "finished" in err, "fl-client against the finished job exits 1 and says why",
            (rc, err))


harness.run_test("train-e2e", main, timeout=180)
