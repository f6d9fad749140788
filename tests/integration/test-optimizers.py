#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The server optimizers, each against a reference computed here in float64
(docs/training.md's formulas): one job per optimizer (fedavg at a server
learning rate of 0.7, fedavgm, fedadam, fedyogi, fedadagrad), 5 iterations
each, one after the other on one cluster through newInstance, on a 3-tensor
model with three devices per iteration. On 1 server and on 2:

- every iteration's model (GET /model, byte-identical on every server)
  equals the reference's step from the served model within 1e-6, and the
  optimizer's state (GET /model/state) its moments within 1e-5 relative;
- a newInstance posted during an iteration changes the optimizer from the
  next iteration on (the running one still steps with the old), the new
  kind starting from fresh moments; queryInstance shows what is in force;
- the FLPlan's aggregation names the optimizer (1.3: FedAvg=0, FedAdam=1,
  FedAdagrag=2) and carries fedprox_mu as weights[0];
- the models of 1 and 2 servers agree within 1e-6.
Also: out-of-range values are refused at start and by newInstance."""

import math
import os
import random
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402

ITERATIONS = 5
JOB = {"fl_iteration_num": ITERATIONS, "start_fl_job_threshold": 3, "update_model_ratio": 1.0,
       "start_fl_job_time_window": 60000, "update_model_time_window": 60000}
INITIAL = [("conv.w", [0.5, -1.25, 2.0, 0.0, -0.75, 1.5]), ("fc.w", [1.0, -2.0, 0.25, 3.0]),
           ("fc.b", [0.1, -0.3, 0.0])]
DATA_SIZES = [3, 7, 20]
DEFAULTS = {"server_momentum": 0.9, "server_beta1": 0.9, "server_beta2": 0.99, "server_tau": 1e-3}
# One instance per optimizer; the learning rate left out for fedyogi is its default.
INSTANCES = [
    ("fedavg", {"server_learning_rate": 0.7}, 0),
    ("fedavgm", {"server_learning_rate": 1.0, "server_momentum": 0.8}, 0),
    ("fedadam", {"server_learning_rate": 0.05, "server_tau": 1e-2}, 1),
    ("fedyogi", {"fedprox_mu": 0.25}, 1),
    ("fedadagrad", {"server_learning_rate": 0.1, "server_beta1": 0.5}, 2),
]
FEDYOGI_DEFAULT_LR = 0.01


class Reference:
    """The step of docs/training.md in float64, with its own moments."""

    def __init__(self, kind, params):
        self.kind = kind
        p = dict(DEFAULTS, **params)
        self.lr = p.get("server_learning_rate", FEDYOGI_DEFAULT_LR if kind == "fedyogi" else 1.0)
        self.mu, self.b1, self.b2, self.tau = (p["server_momentum"], p["server_beta1"], p["server_beta2"],
                                               p["server_tau"])
        self.m, self.v = {}, {}

    def step(self, x, avg):
        out = []
        for name, xs in x:
            a = avg[name]
            d = [ai - xi for ai, xi in zip(a, xs)]
            m = self.m.get(name, [0.0] * len(xs))
            v = self.v.get(name, [self.tau ** 2] * len(xs))
            if self.kind == "fedavg":
                new = [xi + self.lr * di for xi, di in zip(xs, d)]
            elif self.kind == "fedavgm":
                m = [self.mu * mi + di for mi, di in zip(m, d)]
                new = [xi + self.lr * mi for xi, mi in zip(xs, m)]
            else:
                m = [self.b1 * mi + (1 - self.b1) * di for mi, di in zip(m, d)]
                if self.kind == "fedadam":
                    v = [self.b2 * vi + (1 - self.b2) * di * di for vi, di in zip(v, d)]
                elif self.kind == "fedyogi":
                    v = [vi - (1 - self.b2) * di * di * ((vi > di * di) - (vi < di * di)) for vi, di in zip(v, d)]
                else:
                    v = [vi + di * di for vi, di in zip(v, d)]
                new = [xi + self.lr * mi / (math.sqrt(vi) + self.tau) for xi, mi, vi in zip(xs, m, v)]
            self.m[name], self.v[name] = m, v
            out.append((name, new))
        return out

    def state(self):
        """The moments as the servers name them (server-optimizer.h), or None."""
        if self.kind == "fedavg":
            return None
        slots = [("m", self.m)] + ([] if self.kind == "fedavgm" else [("v", self.v)])
        return [("%s/%s/%s" % (self.kind, s, n), vals[n]) for s, vals in slots for n, _ in INITIAL]


def close(got, want, rel, floor):
    """None when every value of got is within rel x max(floor, |want|) of want."""
    if got is None:
        return "nothing"
    g, w = dict(got), dict(want)
    if [n for n, _ in got] != [n for n, _ in want]:
        return "names %s, want %s" % ([n for n, _ in got], [n for n, _ in want])
    for n in w:
        for i, (a, b) in enumerate(zip(g[n], w[n])):
            if len(g[n]) != len(w[n]) or abs(a - b) > rel * max(floor, abs(b)):
                return "%s[%d] = %r, want %r" % (n, i, a, b)
    return None


def uploads(x, it, rng):
    """The three devices' trained weights (the served model plus a random
    shift), times data_size in float32, and their float64 average."""
    ups = []
    for ds in DATA_SIZES:
        trained = [(n, [fl_proto.f32(v + rng.uniform(-0.4, 0.4)) for v in vals]) for n, vals in x]
        ups.append((ds, [(n, [fl_proto.f32(v * ds) for v in vals]) for n, vals in trained]))
    total = sum(ds for ds, _ in ups)
    avg = {n: [sum(dict(u)[n][k] for _, u in ups) / total for k in range(len(vals))] for n, vals in x}
    return ups, avg


def instance_body(index):
    """Every parameter of instance index but a learning rate it leaves to
    the optimizer (a new server_optimizer without one gets its default)."""
    kind, params, _ = INSTANCES[index]
    return dict(dict(DEFAULTS, fedprox_mu=0), server_optimizer=kind, fl_iteration_num=ITERATIONS, **params)


def run(t, proto, n_servers):
    tag = "%d server%s" % (n_servers, "s" if n_servers > 1 else "")
    job = dict(JOB, **instance_body(0))
    tc = fl_proto.TrainingCluster(t, proto, n_servers, job, INITIAL, name="opt%d" % n_servers)
    c, urls = tc.c, tc.urls
    t.require(tc.wait_iteration(1), "[%s] iteration 1 runs" % tag, tc.state())
    if n_servers == 1:
        refusals_live(t, c)
    rng = random.Random(16)
    final = None
    for index, (kind, params, agg_type) in enumerate(INSTANCES):
        ref = Reference(kind, params)
        pre = "[%s, %s]" % (tag, kind)
        q = c.http("GET", "/queryInstance").json.get("result", {})
        want_lr = params.get("server_learning_rate", FEDYOGI_DEFAULT_LR if kind == "fedyogi" else None)
        t.check(q.get("server_optimizer") == kind and q.get("server_learning_rate") == want_lr and
                q.get("fedprox_mu") == params.get("fedprox_mu", 0),
                "%s queryInstance shows the optimizer in force, with its learning rate" % pre, q)
        for it in range(1, ITERATIONS + 1):
            t.require(tc.wait_iteration(it), "%s iteration %d runs" % (pre, it), tc.state())
            x = proto.fetch_model(urls[0])[2]
            ups, avg = uploads(x, it, rng)
            for k, (ds, up) in enumerate(ups):
                fl_id = "%s-%d-%d" % (kind, it, k)
                r = proto.start_fl_job(urls[k % n_servers], "Lenet", fl_id, ds)
                t.require(r.retcode == 200, "%s iteration %d: %s is admitted" % (pre, it, fl_id), r)
                if k == 0 and it == 1:
                    agg = (r.msg.get("fl_plan_config") or {}).get("aggregation") or {}
                    t.check(agg.get("type") == agg_type and
                            agg.get("weights") == [fl_proto.f32(params.get("fedprox_mu", 0.0))],
                            "%s the plan's aggregation is type %d, weights [fedprox_mu]" % (pre, agg_type), agg)
            if it == ITERATIONS and index + 1 < len(INSTANCES):
                # The next optimizer, while this iteration runs: from the next one on.
                r = c.http("POST", "/newInstance", instance_body(index + 1))
                t.require(r.status == 200, "%s newInstance with %s during iteration %d" %
                          (pre, INSTANCES[index + 1][0], it), r)
            for k, (ds, up) in enumerate(ups):
                r = proto.update_model(urls[(k + 1) % n_servers], "Lenet", "%s-%d-%d" % (kind, it, k), it, up)
                t.require(r.retcode == 200, "%s iteration %d: update %d is acknowledged" % (pre, it, k), r)
            if it < ITERATIONS:
                ended = tc.wait_iteration(it + 1)
            elif index + 1 < len(INSTANCES):
                ended = tc.wait_iteration(1)    # the new instance counts from 1
            else:
                ended = harness.wait_until(lambda: tc.state().get("iteration_phase") == "FINISHED", 20, 0.05)
            t.require(ended, "%s iteration %d ends" % (pre, it), tc.state())

            want = ref.step(x, avg)
            models = tc.models()
            t.check(all(s == 200 for s, _, _ in models) and len({raw for _, raw, _ in models}) == 1,
                    "%s iteration %d: the model is byte-identical on every server" % (pre, it),
                    [s for s, _, _ in models])
            diff = close(models[0][2], want, 1e-6, 1.0)
            t.check(diff is None, "%s iteration %d: the model is the reference's step (1e-6)" % (pre, it), diff)
            states = [harness.http("GET", u + "/model/state") for u in urls]
            if ref.state() is None:
                t.check(all(s.status == 404 for s in states), "%s iteration %d: no state is kept" % (pre, it),
                        [s.status for s in states])
            else:
                raws = {s.raw for s in states}
                got = proto.parse_model(states[0].raw) if states[0].status == 200 else None
                diff = close(got, ref.state(), 1e-5, 0.0)
                t.check(len(raws) == 1 and all(s.status == 200 for s in states) and diff is None,
                        "%s iteration %d: the optimizer state is the same on every server and is the "
                        "reference's moments (1e-5 relative)" % (pre, it), (diff, [s.status for s in states]))
            final = models[0][2]
    for d in tc.daemons:
        d.stop()
    c.scheduler.stop()
    return final


def refusals(t):
    p = subprocess.run([harness.SCHEDULERD, "--server_beta1=1"], capture_output=True, text=True, timeout=10,
                       env=harness._clean_env(), stdin=subprocess.DEVNULL)
    t.check(p.returncode != 0 and "server_beta1" in p.stderr and "[0, 1)" in p.stderr,
            "fl-schedulerd refuses server_beta1=1 at start, naming the range", (p.returncode, p.stderr))
    p = subprocess.run([harness.SCHEDULERD, "--server_optimizer=adam"], capture_output=True, text=True,
                       timeout=10, env=harness._clean_env(), stdin=subprocess.DEVNULL)
    t.check(p.returncode != 0 and "fedadagrad" in p.stderr, "and an unknown server_optimizer, listing the known",
            (p.returncode, p.stderr))


def refusals_live(t, c):
    for body, needle in (({"server_optimizer": "sgd"}, "server_optimizer"), ({"server_tau": 0}, "server_tau"),
                         ({"server_momentum": 1.0}, "server_momentum"), ({"fedprox_mu": -1}, "fedprox_mu")):
        r = c.http("POST", "/newInstance", body)
        t.check(r.status == 400 and needle in ((r.json or {}).get("error_message") or ""),
                "newInstance refuses %s" % body, (r.status, r.json))


def main(t):
    proto = fl_proto.Proto(t.tmp)
    refusals(t)
    one = run(t, proto, 1)
    two = run(t, proto, 2)
    t.check(close(two, one, 1e-6, 1.0) is None, "the final models of 1 and 2 servers agree within 1e-6",
            close(two, one, 1e-6, 1.0))


harness.run_test("optimizers", main, timeout=240)
