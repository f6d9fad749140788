#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The server optimizer's state survives crashes and follows scale-out
(fedadam, two servers, three devices per iteration, uploads that depend
only on the served model). A fault-free job gives the reference; then the
same job with, in turn:

2. rank 0 SIGKILLed while devices upload (restarted at once): it restores
   the model and the moments from its own checkpoint, without a peer;
3. the scheduler SIGKILLed during the all-reduce (one server stopped, the
   AGGREGATE already sent), so that both servers aggregate while it is
   away and do it again when it is back;
4. the scheduler SIGKILLed while devices upload;
5. the scheduler SIGKILLed during the all-reduce, and rank 0 SIGKILLed
   once it has checkpointed that iteration's model (which the restarted
   scheduler never committed): restarted, it steps again from the model
   before, with the moments before.

The model and state of every iteration, and so the final model, equal the
fault-free job's (1e-6, 1e-5 relative for the moments). Then a scale-out
to three servers: the new server takes the model and the moments from a
peer, its state is byte-identical to the others', and the next iteration,
aggregated by all three, agrees."""

import os
import signal
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402

ITERATIONS = 6
JOB = {"fl_iteration_num": ITERATIONS, "start_fl_job_threshold": 3, "update_model_ratio": 1.0,
       "start_fl_job_time_window": 60000, "update_model_time_window": 60000,
       "server_optimizer": "fedadam", "server_learning_rate": 0.05}
INITIAL = [("a", [0.5, -1.0, 2.0, 0.25]), ("b", [1.5, -0.5, 0.0]), ("c", [3.0, -2.0])]
DEVICES = [("d0", 4), ("d1", 9), ("d2", 16)]


def shifted(model, iteration, k, ds):
    """Device k's upload: its weights (the served model shifted by a pattern
    of the iteration and device) times data_size, in float32."""
    out = []
    for t_index, (name, vals) in enumerate(model):
        out.append((name, [fl_proto.f32(fl_proto.f32(v + 0.05 * ((iteration * 7 + k * 3 + t_index + j) % 11 - 5))
                                        * ds) for j, v in enumerate(vals)]))
    return out


def close(got, want, rel, floor):
    if got is None or want is None:
        return "missing (%r, %r)" % (got is None, want is None)
    if [n for n, _ in got] != [n for n, _ in want]:
        return "names differ"
    for (n, g), (_, w) in zip(got, want):
        for i, (a, b) in enumerate(zip(g, w)):
            if abs(a - b) > rel * max(floor, abs(b)):
                return "%s[%d] = %r, want %r" % (n, i, a, b)
    return None


class Job:
    def __init__(self, t, proto, name):
        self.t, self.proto, self.name = t, proto, name
        self.tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, name=name, node_timeout=10)
        self.c = self.tc.c
        t.require(self.tc.wait_iteration(1), "%s: iteration 1 runs" % name, self.tc.state())
        self.results = {}

    def rank0(self):
        for i, d in enumerate(self.tc.daemons):
            for n in self.c.nodes() or []:
                if n.get("fl_server_port") == d.port and n.get("rank_id") == "0":
                    return i
        return None

    def restart(self, i, label):
        old = self.tc.daemons[i]
        d = harness.Daemon(self.t, label, old.argv, env=self.c.env()).start()
        d.port, d.ports, d.state_dir = old.port, old.ports, old.state_dir
        self.tc.daemons[i] = d
        self.t.require(d.wait_log(harness.SERVER_STARTED, 1, 20), "%s: %s registers again" % (self.name, label),
                       d.tail())
        return d

    def admit(self, it):
        x = self.proto.fetch_model(self.tc.urls[0])[2]
        for k, (dev, ds) in enumerate(DEVICES):
            r = self.proto.start_fl_job(self.tc.urls[k % 2], "Lenet", "%s-%d" % (dev, it), ds)
            self.t.require(r.retcode == 200, "%s: %s is admitted in iteration %d" % (self.name, dev, it), r)
        return x

    def update(self, x, it, k):
        dev, ds = DEVICES[k]
        r = self.proto.update_model(self.tc.urls[(k + 1) % 2], "Lenet", "%s-%d" % (dev, it), it,
                                    shifted(x, it, k, ds))
        self.t.require(r.retcode == 200, "%s: the update of %s in iteration %d is acknowledged" %
                       (self.name, dev, it), r)

    def ended(self, it):
        if it < ITERATIONS:
            return self.tc.wait_iteration(it + 1, timeout=40)
        return harness.wait_until(lambda: self.tc.state().get("iteration_phase") == "FINISHED", 40, 0.05)

    def record(self, it):
        models = self.tc.models()
        states = [harness.http("GET", u + "/model/state") for u in self.tc.urls]
        self.t.check(len({raw for _, raw, _ in models}) == 1 and len({s.raw for s in states}) == 1 and
                     all(s.status == 200 for s in states),
                     "%s: after iteration %d every server holds the same model and state" % (self.name, it),
                     [s.status for s in states])
        self.results[it] = (models[0][2], self.proto.parse_model(states[0].raw) if states[0].status == 200 else None)

    def iteration(self, it):
        x = self.admit(it)
        for k in range(len(DEVICES)):
            self.update(x, it, k)
        self.t.require(self.ended(it), "%s: iteration %d ends" % (self.name, it), self.tc.state())
        self.record(it)

    def stall(self, it):
        """Devices 0 and 1 update (on server 1, then 0); server 0 is stopped;
        device 2's update, on server 1, ends the iteration: the AGGREGATE is
        sent and server 1's all-reduce waits on server 0. Returns server 0."""
        x = self.admit(it)
        self.update(x, it, 0)
        self.update(x, it, 1)
        stopped = self.tc.daemons[0]
        stopped.signal_group(signal.SIGSTOP)
        self.update(x, it, 2)
        other = self.tc.daemons[1]
        self.t.require(other.wait_log("Aggregating iteration %d over a ring of 2 servers" % it, 1, 10),
                       "%s: iteration %d's all-reduce starts with server 0 stopped" % (self.name, it), other.tail(5))
        return stopped

    def stop(self):
        for d in self.tc.daemons:
            d.stop()
        self.c.scheduler.stop()


def compare(t, job, reference, it):
    model, state = job.results.get(it, (None, None))
    rmodel, rstate = reference.results[it]
    t.check(close(model, rmodel, 1e-6, 1.0) is None and close(state, rstate, 1e-5, 0.0) is None,
            "%s: the model and the moments of iteration %d are the fault-free job's" % (job.name, it),
            (close(model, rmodel, 1e-6, 1.0), close(state, rstate, 1e-5, 0.0)))


def main(t):
    proto = fl_proto.Proto(t.tmp)
    reference = Job(t, proto, "fault-free")
    for it in range(1, ITERATIONS):
        reference.iteration(it)
    reference.stop()

    j = Job(t, proto, "faults")
    c = j.c
    j.iteration(1)

    # 2. rank 0 dies while devices upload
    r0 = j.rank0()
    t.require(r0 is not None, "faults: rank 0 is known", c.nodes())
    x = j.admit(2)
    k0 = [k for k in range(3) if (k + 1) % 2 == r0][0]
    j.update(x, 2, k0)
    j.tc.daemons[r0].kill9()
    d = j.restart(r0, "rank0-again")
    t.check(harness.wait_until(lambda: len({st.get("state_checksum") for st in j.tc.server_states()}) == 1 and
                               j.tc.server_states()[r0].get("in_sync"), 10),
            "faults: its optimizer state is the other server's (GET /)", j.tc.server_states())
    t.check(d.wait_log("Restored the model of iteration 1", 1, 5) and "from peer" not in d.log(),
            "faults: the restarted rank 0 restored model and state from its own checkpoint, not from a peer",
            d.tail(10))
    for k in range(3):
        if k != k0:
            j.update(x, 2, k)
    t.require(j.ended(2), "faults: iteration 2 ends", j.tc.state())
    j.record(2)

    # 3. the scheduler dies during the all-reduce: both servers aggregate while it is away
    stopped = j.stall(3)
    c.scheduler.kill9()
    stopped.signal_group(signal.SIGCONT)
    for dm in j.tc.daemons:
        t.check(dm.wait_log("Iteration 3 aggregated", 1, 15), "faults: %s aggregates iteration 3 while the "
                "scheduler is down" % os.path.basename(dm.log_path), dm.tail(5))
    c.restart_scheduler()
    t.require(j.ended(3), "faults: the restarted scheduler has iteration 3 aggregated again and committed",
              (j.tc.state(), c.scheduler.tail(10)))
    j.record(3)

    # 4. the scheduler dies while devices upload
    x = j.admit(4)
    j.update(x, 4, 0)
    c.scheduler.kill9()
    c.restart_scheduler()
    t.require(c.wait_ready(20), "faults: the restarted scheduler is READY", j.tc.state())
    j.update(x, 4, 1)
    j.update(x, 4, 2)
    t.require(j.ended(4), "faults: iteration 4 ends", j.tc.state())
    j.record(4)

    # 5. rank 0 dies with a checkpoint of iteration 5 the scheduler never committed
    stopped = j.stall(5)
    c.scheduler.kill9()
    stopped.signal_group(signal.SIGCONT)
    victim = j.rank0()
    if victim is None:
        victim = 0
    t.check(j.tc.daemons[victim].wait_log("Iteration 5 aggregated", 1, 15),
            "faults: rank 0 checkpoints iteration 5 while the scheduler is down", j.tc.daemons[victim].tail(5))
    j.tc.daemons[victim].kill9()
    c.restart_scheduler()
    d = j.restart(victim, "rank0-third")
    t.check(d.wait_log("Restored the model of iteration 5", 1, 5),
            "faults: it restores its uncommitted model of iteration 5 (and the one before)", d.tail(10))
    t.require(j.ended(5), "faults: iteration 5 is aggregated again and committed", (j.tc.state(), c.scheduler.tail(10)))
    j.record(5)
    for it in range(1, ITERATIONS):
        compare(t, j, reference, it)

    # Scale-out: the new server takes the model and the moments from a peer.
    r = c.http("POST", "/scaleout", {"worker_num": 0, "server_num": 1})
    t.require(r.status == 200, "scale-out to 3 servers is accepted", r)
    c.server_num = 3
    third = c.start_server(extra=j.tc.server_extra, name="third")
    j.tc.daemons.append(third)
    j.tc.urls.append("http://127.0.0.1:%d" % third.port)
    t.require(harness.wait_until(lambda: j.tc.state().get("cluster_state") == "CLUSTER_READY" and
                                 j.tc.state().get("server_num") == 3, 30), "the scale-out completes",
              (j.tc.state(), third.tail(5)))
    t.check(third.wait_log("optimizer state", 1, 5), "the new server took the optimizer state from a peer",
            third.tail(5))
    states = [harness.http("GET", u + "/model/state") for u in j.tc.urls]
    t.check(all(s.status == 200 for s in states) and len({s.raw for s in states}) == 1,
            "the new server's optimizer state is byte-identical to the others'", [s.status for s in states])
    x = proto.fetch_model(j.tc.urls[0])[2]
    for k, (dev, ds) in enumerate(DEVICES):
        r = proto.start_fl_job(j.tc.urls[k], "Lenet", "%s-%d" % (dev, 6), ds)
        t.require(r.retcode == 200, "%s is admitted in iteration 6" % dev, r)
        r = proto.update_model(j.tc.urls[(k + 1) % 3], "Lenet", "%s-%d" % (dev, 6), 6, shifted(x, 6, k, ds))
        t.require(r.retcode == 200, "%s's update is acknowledged by server %d" % (dev, (k + 1) % 3), r)
    t.require(j.ended(6), "iteration 6, aggregated by all three servers, ends", (j.tc.state(), c.scheduler.tail(5)))
    models = j.tc.models()
    t.check(len({raw for _, raw, _ in models}) == 1 and all(s == 200 for s, _, _ in models),
            "all three servers hold the same model of iteration 6", [s for s, _, _ in models])
    j.stop()


harness.run_test("optimizer-state", main, timeout=240)
