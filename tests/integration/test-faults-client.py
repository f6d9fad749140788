#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fault injection under a real training job: fl-client trains LeNet-5 on
Fashion-MNIST with 4 devices for 3 iterations (every device in every
iteration, one device at a time, fixed seeds), first on a cluster without
faults, then once per fault on a fresh cluster:

- SIGKILL of rank 0 while the devices upload (restarted at once);
- SIGKILL of the scheduler while the devices upload (restarted at once);
- SIGKILL of a server during the all-reduce (SIGSTOPped once three of the
  four updates are in, killed once the fourth started the aggregation,
  restarted);
- SIGKILL of a server holding updates while a scale-out runs (restarted).

Each job completes, fl-client exits 0, every iteration took all four
updates, and the final model equals the fault-free one within 1e-5."""

import os
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402
from harness import wait_until  # noqa: E402

DEVICES = 4
ITERATIONS = 3
TOLERANCE = 1e-5
DATA = os.environ.get("FL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FL_CLIENT = os.path.join(harness.BUILDDIR, "fl-client")
JOB = ["--fl_iteration_num=%d" % ITERATIONS, "--start_fl_job_threshold=%d" % DEVICES,
       "--client_epoch_num=1", "--client_batch_size=32", "--client_learning_rate=0.01",
       "--start_fl_job_time_window=120000", "--update_model_time_window=120000"]


class Job:
    """A scheduler, two servers (separate processes) and fl-client running."""

    def __init__(self, t, name, model, spare_port=False):
        self.t, self.name = t, name
        self.c = harness.Cluster(t, server_num=2, node_timeout=10, name=name)
        self.c.start_scheduler(extra=JOB)
        self.servers = [self.c.start_server(extra=["--model_path=" + model]) for _ in range(2)]
        t.require(self.c.wait_ready(20), "%s: the cluster is READY" % name, self.c.state())
        self.ports = [d.port for d in self.servers]
        if spare_port:
            self.ports.append(harness.reserve_ports(1)[0])
        self.urls = ["http://127.0.0.1:%d" % p for p in self.ports]
        self.out = os.path.join(t.tmp, name + "-last.fl")
        argv = [FL_CLIENT, "train", "--servers", ",".join(self.urls), "--devices", str(DEVICES),
                "--partition", "iid", "--data", DATA, "--seed", "7", "--threads", "1", "--timeout", "90",
                "-o", self.out]
        self.log = open(os.path.join(t.tmp, name + "-fl-client.log"), "w")
        self.client = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                       stdin=subprocess.DEVNULL, env=harness._clean_env())

    def state(self):
        r = self.c.http("GET", "/state")
        return r.json if isinstance(r.json, dict) else {}

    def rank(self, i):
        for n in self.c.nodes():
            if n.get("fl_server_port") == self.ports[i]:
                return int(n.get("rank_id"))
        return None

    def wait_updates(self, iteration, updates, timeout=60):
        return wait_until(lambda: (self.state().get("iteration") == iteration and
                                   self.state().get("updates", 0) >= updates) or
                          self.state().get("iteration", 0) > iteration, timeout, 0.02)

    def restart(self, i):
        old = self.servers[i]
        d = harness.Daemon(self.t, "%s-server%d-again" % (self.name, i), old.argv, env=self.c.env()).start()
        d.port, d.ports, d.state_dir = old.port, old.ports, old.state_dir
        self.servers[i] = d
        self.t.require(d.wait_log(harness.SERVER_STARTED, 1, 20), "%s: server %d registers again" % (self.name, i),
                       d.tail())
        return d

    def finish(self):
        try:
            out, _ = self.client.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            self.client.kill()
            out, _ = self.client.communicate()
        self.log.close()
        self.t.transcript("%s: fl-client rc=%s\n%s" % (self.name, self.client.returncode, out))
        rows = []
        for line in out.splitlines():
            f = line.split()
            if len(f) == 5 and f[0].isdigit():
                rows.append((int(f[0]), int(f[1])))
        model = None
        if os.path.exists(self.out):
            with open(self.out, "rb") as f:
                model = fl_proto.Proto(self.t.tmp).parse_model(f.read())
        return self.client.returncode, rows, model


def max_diff(a, b):
    va, vb = fl_proto.model_values(a), fl_proto.model_values(b)
    if sorted(va) != sorted(vb):
        return float("inf")
    return max(abs(x - y) for n in va for x, y in zip(va[n], vb[n]))


def check_job(t, name, result, reference):
    rc, rows, model = result
    with open(os.path.join(t.tmp, name + "-fl-client.log")) as f:
        err = f.read()[-2000:]
    t.check(rc == 0, "%s: fl-client finishes the job (exit 0)" % name, err)
    t.check(rows == [(i, DEVICES) for i in range(1, ITERATIONS + 1)],
            "%s: every iteration took all %d devices' updates" % (name, DEVICES), rows)
    if reference is None:
        return model
    diff = max_diff(model, reference) if model else float("inf")
    t.check(diff <= TOLERANCE, "%s: the final model equals the fault-free one (max difference %.3g <= %g)"
            % (name, diff, TOLERANCE), diff)
    return model


def main(t):
    if not os.access(FL_CLIENT, os.X_OK):
        raise harness.Failure("%s is not built" % FL_CLIENT)
    if not os.path.exists(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")):
        raise harness.Skip("Fashion-MNIST is not in %s (apt install dataset-fashion-mnist)" % DATA)
    model = os.path.join(t.tmp, "lenet5.fl")
    subprocess.run([FL_CLIENT, "init-model", "--seed", "1", "-o", model], check=True, stdin=subprocess.DEVNULL)

    started = time.monotonic()
    reference = check_job(t, "reference", Job(t, "reference", model).finish(), None)
    t.require(reference is not None, "the fault-free job leaves a model")
    t.note("fault-free job: %.1fs" % (time.monotonic() - started))

    # -- rank 0 dies while the devices upload
    j = Job(t, "kill-rank0", model)
    t.require(j.wait_updates(2, 2), "kill-rank0: iteration 2 has updates in", j.state())
    victim = [i for i in range(2) if j.rank(i) == 0][0]
    j.servers[victim].kill9()
    j.restart(victim)
    t.check(j.rank(victim) == 0, "kill-rank0: the restarted server is rank 0 again", j.c.nodes())
    check_job(t, "kill-rank0", j.finish(), reference)

    # -- the scheduler dies while the devices upload
    j = Job(t, "kill-scheduler", model)
    t.require(j.wait_updates(2, 2), "kill-scheduler: iteration 2 has updates in", j.state())
    j.c.scheduler.kill9()
    j.c.restart_scheduler()
    check_job(t, "kill-scheduler", j.finish(), reference)

    # -- a server dies during the all-reduce. Devices upload in turn, device k
    # to server (k+1) mod 2: the fourth update goes to server 0, so server 1
    # is stopped once three are in and killed once the fourth began the
    # aggregation (the ring then waits on it).
    j = Job(t, "kill-allreduce", model)
    t.require(j.wait_updates(2, 3), "kill-allreduce: iteration 2 has three updates in", j.state())
    j.servers[1].signal_group(signal.SIGSTOP)
    t.check(wait_until(lambda: j.state().get("iteration_phase") == "AGGREGATING", 60, 0.02),
            "kill-allreduce: the fourth update starts the aggregation with server 1 stopped", j.state())
    j.servers[1].kill9()
    j.restart(1)
    check_job(t, "kill-allreduce", j.finish(), reference)
    t.check(j.c.scheduler.wait_log("aggregating again once it is back", 1, 1),
            "kill-allreduce: the scheduler asked the ring again", j.c.scheduler.tail(10))

    # -- a server holding updates dies while a scale-out runs
    j = Job(t, "kill-scaleout", model, spare_port=True)
    t.require(j.wait_updates(2, 2), "kill-scaleout: iteration 2 has updates in", j.state())
    r = j.c.http("POST", "/scaleout", {"worker_num": 0, "server_num": 1})
    t.check(r.status == 200, "kill-scaleout: POST /scaleout is accepted", r)
    t.check(j.state().get("cluster_state") == "CLUSTER_SCALE_OUT", "kill-scaleout: the cluster scales out",
            j.state())
    j.servers[1].kill9()
    third = j.c.start_server(port=j.ports[2], extra=["--model_path=" + model])
    j.restart(1)
    t.check(wait_until(lambda: j.state().get("cluster_state") == "CLUSTER_READY" and
                       j.state().get("server_num") == 3, 30), "kill-scaleout: the scale-out completes",
            (j.state(), third.tail(5)))
    check_job(t, "kill-scaleout", j.finish(), reference)


harness.run_test("faults-client", main, timeout=900)
