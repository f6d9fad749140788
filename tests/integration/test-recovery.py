#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Disaster recovery, with updates whose mean is known exactly: a scheduler
and two servers, four devices per iteration, every model checked against
the FedAvg of exactly the updates that were acknowledged.

1. Rank 0 is SIGKILLed while devices upload, after acknowledging two
   updates, and restarted at once (same port and state): it is rank 0
   again, replays its update log, and the scheduler, SIGKILLed too, resumes;
   the iteration's model holds both updates.
2. A device whose server dies before the answer reaches it retries on the
   other server: SUCCEED there (taken over), and when the dead server comes
   back it drops its copy: the update counts once.
3. A server is SIGSTOPped and then SIGKILLed while the all-reduce runs; it
   comes back, and the scheduler asks the ring again: the model holds the
   updates it had acknowledged.
4. The scheduler is SIGKILLed while the all-reduce runs (one server
   stopped): restarted, it asks the ring again once both are back.
5. A server that never returns: once declared dead its acknowledged updates
   no longer count, their devices send them again to the other server, and
   the iteration completes without it.
6. The same during the all-reduce: the iteration goes back to collecting
   updates, and completes once their devices have sent them again."""

import os
import signal
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402
from fl_proto import mean, upload  # noqa: E402

NODE_TIMEOUT = 4
JOB = {"fl_iteration_num": 6, "start_fl_job_threshold": 4, "update_model_ratio": 1.0,
       "start_fl_job_time_window": 60000, "update_model_time_window": 60000}
INITIAL = [("w", [0.25 * i - 2 for i in range(12)]), ("b", [1.0, -2.0, 0.5])]


def rank_of(c, port):
    for n in c.nodes():
        if n.get("fl_server_port") == port:
            return int(n.get("rank_id"))
    return None


def restart(t, tc, i, name):
    """Starts server i again with its own command line (port, state, node id)."""
    old = tc.daemons[i]
    d = harness.Daemon(t, name, old.argv, env=tc.c.env()).start()
    d.port, d.ports, d.state_dir = old.port, old.ports, old.state_dir
    tc.daemons[i] = d
    t.require(d.wait_log(harness.SERVER_STARTED, 1, 20), "%s registers again" % name, d.tail())
    return d


def status(url):
    r = harness.http("GET", url + "/", timeout=5)
    return r.json if isinstance(r.json, dict) else {}


def admit(t, proto, tc, devices, iteration):
    for k, (dev, ds) in enumerate(devices):
        r = proto.start_fl_job(tc.urls[k % 2], "Lenet", dev, ds)
        t.require(r.retcode == 200 and r.msg.get("iteration") == iteration, "%s is admitted" % dev, r)


def send(t, proto, url, dev, iteration, up, what):
    r = proto.update_model(url, "Lenet", dev, iteration, up)
    t.require(r.retcode == 200, what, r)
    return r


def model_is(t, tc, want, what):
    models = tc.models()
    t.check(all(m[0] == 200 for m in models) and models[0][1] == models[-1][1],
            what + ": both servers serve the same bytes", [m[0] for m in models])
    diff = fl_proto.compare_models(models[0][2], want)
    t.check(diff is None, what, diff)


def stall_aggregation(t, proto, tc, urls, stopped, devs, iteration, prev, shift):
    """Four devices of the iteration: the first updates on rank 0, the next two
    on rank 1, which is then SIGSTOPped, the last on rank 0. That last one
    ends the iteration: rank 0 starts an all-reduce that waits on rank 1.
    Returns the uploads by device."""
    u0, u1 = urls
    ups = {dv: upload(prev, shift * (k + 1), ds) for k, (dv, ds) in enumerate(devs)}
    names = [dv for dv, _ in devs]
    admit(t, proto, tc, devs, iteration)
    send(t, proto, u0, names[0], iteration, ups[names[0]], "rank 0 acknowledges %s" % names[0])
    for dv in names[1:3]:
        send(t, proto, u1, dv, iteration, ups[dv], "rank 1 acknowledges %s" % dv)
    stopped.signal_group(signal.SIGSTOP)
    send(t, proto, u0, names[3], iteration, ups[names[3]], "%s, the last update, on rank 0" % names[3])
    r0 = tc.daemons[tc.urls.index(u0)]
    t.check(r0.wait_log("Aggregating iteration %d over a ring of 2 servers" % iteration, 1, 10),
            "rank 0 starts the all-reduce of iteration %d with the stopped rank 1" % iteration, r0.tail(5))
    return ups


def main(t):
    proto = fl_proto.Proto(t.tmp)
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, node_timeout=NODE_TIMEOUT)
    c = tc.c
    t.require(tc.wait_iteration(1), "iteration 1 runs", tc.state())
    ranks = [rank_of(c, d.port) for d in tc.daemons]
    t.require(sorted(ranks) == [0, 1], "the servers are ranks 0 and 1", c.nodes())
    r0 = ranks.index(0)
    r1 = 1 - r0
    u0, u1 = tc.urls[r0], tc.urls[r1]

    # ---- 1. rank 0 dies while devices upload; the scheduler dies too
    devs = [("d1", 10), ("d2", 20), ("d3", 30), ("d4", 40)]
    ups = {d: upload(INITIAL, 0.5 * (k + 1), ds) for k, (d, ds) in enumerate(devs)}
    admit(t, proto, tc, devs, 1)
    send(t, proto, u0, "d1", 1, ups["d1"], "rank 0 acknowledges d1")
    send(t, proto, u0, "d2", 1, ups["d2"], "rank 0 acknowledges d2")
    tc.daemons[r0].kill9()
    d = restart(t, tc, r0, "fl-serverd-rank0-again")
    t.check(rank_of(c, d.port) == 0, "the restarted server is rank 0 again", c.nodes())
    t.check(d.wait_log("Replayed 2 logged updates of iteration 1: 2 held here", 1, 10),
            "it replays its two logged updates and holds both", d.tail(10))
    t.check(harness.wait_until(lambda: status(u0).get("updates") == 2, 10),
            "its running sum holds them again", status(u0))

    c.scheduler.kill9()
    c.restart_scheduler()
    t.require(c.wait_ready(30), "the restarted scheduler is READY again", tc.state())
    t.check(harness.wait_until(lambda: status(u0).get("updates") == 2 and status(u0).get("phase") == "COLLECTING",
                               10), "after the scheduler's restart rank 0 still sums both", status(u0))
    send(t, proto, u1, "d3", 1, ups["d3"], "d3 updates on rank 1")
    send(t, proto, u0, "d4", 1, ups["d4"], "d4 updates on the restarted rank 0")
    t.require(tc.wait_iteration(2, timeout=20), "iteration 1 completes", (tc.state(), tc.server_states()))
    model_is(t, tc, mean([ups[d] for d, _ in devs], 100),
             "the model of iteration 1 is the mean of all four acknowledged updates")

    # ---- 2. an answer lost with its server: the device retries elsewhere
    prev = tc.models()[0][2]
    devs = [("e1", 5), ("e2", 15), ("e3", 25), ("e4", 35)]
    ups = {d: upload(prev, -0.25 * (k + 1), ds) for k, (d, ds) in enumerate(devs)}
    admit(t, proto, tc, devs, 2)
    send(t, proto, u1, "e1", 2, ups["e1"], "rank 1 acknowledges e1")
    tc.daemons[r1].kill9()
    r = send(t, proto, u0, "e1", 2, ups["e1"], "e1 sent again to rank 0 while rank 1 is down: SUCCEED")
    t.check("taken over" in (r.msg.get("reason") or ""), "rank 0 took it over", r.msg.get("reason"))
    send(t, proto, u0, "e2", 2, ups["e2"], "e2 updates on rank 0")
    d = restart(t, tc, r1, "fl-serverd-rank1-again")
    t.check(d.wait_log("Replayed 1 logged update of iteration 2: 0 held here", 1, 10),
            "rank 1 comes back and drops its copy of e1", d.tail(10))
    send(t, proto, u1, "e3", 2, ups["e3"], "e3 updates on rank 1")
    send(t, proto, u1, "e4", 2, ups["e4"], "e4 updates on rank 1")
    t.require(tc.wait_iteration(3, timeout=20), "iteration 2 completes", (tc.state(), tc.server_states()))
    model_is(t, tc, mean([ups[d] for d, _ in devs], 80),
             "the model of iteration 2 counts e1 once")

    # ---- 3. a server dies during the all-reduce
    devs = [("g1", 7), ("g2", 11), ("g3", 13), ("g4", 17)]
    victim = tc.daemons[r1]
    ups = stall_aggregation(t, proto, tc, (u0, u1), victim, devs, 3, tc.models()[0][2], 0.125)
    victim.kill9()
    d = restart(t, tc, r1, "fl-serverd-rank1-third")
    t.check(d.wait_log("Replayed 2 logged updates of iteration 3: 2 held here", 1, 10),
            "rank 1 comes back with its two updates", d.tail(10))
    t.require(tc.wait_iteration(4, timeout=30), "iteration 3 completes after the ring is asked again",
              (tc.state(), tc.server_states(), c.scheduler.tail(10)))
    t.check(c.scheduler.wait_log("aggregating again once it is back", 1, 1), "the scheduler said why it waited",
            c.scheduler.tail(10))
    model_is(t, tc, mean([ups[d] for d, _ in devs], 48),
             "the model of iteration 3 holds every acknowledged update, those of the killed server too")

    # ---- 4. the scheduler dies during the all-reduce
    devs = [("h1", 2), ("h2", 4), ("h3", 6), ("h4", 8)]
    stopped = tc.daemons[r1]
    ups = stall_aggregation(t, proto, tc, (u0, u1), stopped, devs, 4, tc.models()[0][2], -0.0625)
    c.scheduler.kill9()
    c.restart_scheduler()
    stopped.signal_group(signal.SIGCONT)
    t.require(harness.wait_until(lambda: tc.state().get("iteration") == 5, 30),
              "iteration 4 completes after the scheduler's restart", (tc.state(), c.scheduler.tail(10)))
    t.require(tc.wait_iteration(5, timeout=20), "both servers are in iteration 5", tc.server_states())
    model_is(t, tc, mean([ups[d] for d, _ in devs], 20),
             "the model of iteration 4 holds every acknowledged update")

    # ---- 5. a server that never returns
    prev = tc.models()[0][2]
    devs = [("f1", 3), ("f2", 6), ("f3", 9), ("f4", 12)]
    ups = {d: upload(prev, -0.5 * (k + 1), ds) for k, (d, ds) in enumerate(devs)}
    admit(t, proto, tc, devs, 5)
    send(t, proto, u1, "f1", 5, ups["f1"], "rank 1 acknowledges f1")
    send(t, proto, u1, "f2", 5, ups["f2"], "rank 1 acknowledges f2")
    tc.daemons[r1].kill9()
    send(t, proto, u0, "f3", 5, ups["f3"], "f3 updates on rank 0")
    send(t, proto, u0, "f4", 5, ups["f4"], "f4 updates on rank 0")
    t.check(c.scheduler.wait_log("waiting for server rank 1", 1, 5),
            "with all four counted, the scheduler waits for rank 1, which holds two", c.scheduler.tail(5))
    t.check(c.scheduler.wait_log("is dead with 2 acknowledged updates of iteration 5", 1, 3 * NODE_TIMEOUT),
            "rank 1 is declared dead and its two updates no longer count", c.scheduler.tail(5))
    t.check(tc.state().get("iteration_phase") == "COLLECTING", "iteration 5 still collects", tc.state())
    send(t, proto, u0, "f1", 5, ups["f1"], "f1 sends its update again, to rank 0")
    send(t, proto, u0, "f2", 5, ups["f2"], "f2 sends its update again, to rank 0")
    t.require(harness.wait_until(lambda: tc.state().get("iteration") == 6, 20),
              "iteration 5 completes without rank 1", (tc.state(), c.scheduler.tail(10)))
    status_code, _, got = proto.fetch_model(u0)
    diff = fl_proto.compare_models(got, mean([ups[d] for d, _ in devs], 30))
    t.check(status_code == 200 and diff is None, "the model of iteration 5 is the mean of all four updates", diff)

    # ---- 6. rank 1 comes back, then dies for good during the all-reduce
    d = restart(t, tc, r1, "fl-serverd-rank1-fourth")
    t.require(harness.wait_until(lambda: tc.state().get("alive_server_num") == 2 and
                                 all(n.get("in_sync") for n in c.nodes()), 20),
              "rank 1 is back and holds the model of iteration 5", c.nodes())
    devs = [("k1", 5), ("k2", 10), ("k3", 15), ("k4", 20)]
    ups = stall_aggregation(t, proto, tc, (u0, u1), d, devs, 6, got, 0.375)
    d.kill9()
    t.check(c.scheduler.wait_log("is dead with 2 acknowledged updates of iteration 6", 1, 3 * NODE_TIMEOUT),
            "rank 1 is declared dead during the aggregation", c.scheduler.tail(5))
    t.check(c.scheduler.wait_log("Iteration 6 collects updates again: 2 of 4 are counted", 1, 5),
            "iteration 6 goes back to collecting updates", c.scheduler.tail(5))
    send(t, proto, u0, "k2", 6, ups["k2"], "k2 sends its update again, to rank 0")
    send(t, proto, u0, "k3", 6, ups["k3"], "k3 sends its update again, to rank 0")
    t.require(harness.wait_until(lambda: tc.state().get("iteration_phase") == "FINISHED", 20),
              "iteration 6 completes without rank 1 and the job finishes", (tc.state(), c.scheduler.tail(10)))
    status_code, _, got = proto.fetch_model(u0)
    diff = fl_proto.compare_models(got, mean([ups[dv] for dv, _ in devs], 50))
    t.check(status_code == 200 and diff is None, "the final model is the mean of all four updates", diff)


harness.run_test("recovery", main, timeout=180)
