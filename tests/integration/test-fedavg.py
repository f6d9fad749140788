#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""FedAvg exactness. Devices with known data_size upload known weights
(already multiplied by data_size, as MindSpore clients do) through the
independent client of fl_proto.py; the model of every iteration, read with
GET /model from every server and with getModel, equals
sum(uploads) / sum(data_size) computed here (float32; 1 ulp or 1e-6
relative), is byte-identical on all servers, and is the same whether 1, 2
or 3 servers run and whichever device hit which server. Refused updates (a
NaN, a wrong size, a repeat with other values, a device not admitted, one
past the update threshold) do not count."""

import os
import random
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fl_proto  # noqa: E402
from fl_proto import SUCCEED, REPEAT_REQUEST, OUT_OF_TIME, NOT_SELECTED, REQUEST_ERROR, retcode_name  # noqa: E402

ITERATIONS = 2
THRESHOLD = 5
RATIO = 0.8                    # ceil(5 x 0.8) = 4 updates end an iteration
JOB = {
    "fl_name": "FedAvgJob",
    "fl_iteration_num": ITERATIONS + 1,    # never FINISHED here: a late update is OutOfTime, not the text
    "start_fl_job_threshold": THRESHOLD,
    "update_model_ratio": RATIO,
    "start_fl_job_time_window": 40000,
    "update_model_time_window": 40000,
    "global_iteration_time_window": 90000,
}
INITIAL = [("w", [0.0] * 6), ("b", [0.0] * 2)]
# data_size per device: small, large, and prime, so the division is not trivial.
DATA_SIZES = [60000, 1, 7, 250, 13]


def device_uploads(iteration):
    """The weights each device trained in an iteration (seeded), multiplied by
    its data_size in float32: [(fl_id, data_size, upload)]."""
    rng = random.Random(1000 + iteration)
    out = []
    for k, ds in enumerate(DATA_SIZES):
        trained = []
        for name, vals in INITIAL:
            trained.append((name, [fl_proto.f32(rng.choice((-1, 1)) * rng.uniform(1e-3, 1.0) *
                                                10 ** rng.randint(-2, 3)) for _ in vals]))
        out.append(("it%d-dev%d" % (iteration, k), ds, fl_proto.scale(trained, ds)))
    return out


def run_scenario(t, proto, n_servers, local, offset):
    """One cluster of n_servers; returns {iteration: model} as read by GET /model."""
    tag = "%d server%s" % (n_servers, "s" if n_servers > 1 else "")
    tc = fl_proto.TrainingCluster(t, proto, n_servers, JOB, INITIAL, name="sched%d" % n_servers, local=local)
    name = JOB["fl_name"]
    t.require(tc.c.wait_ready(20), "[%s] the cluster becomes READY" % tag, tc.c.state())
    urls = tc.urls
    n = len(urls)
    result = {}
    for it in range(1, ITERATIONS + 1):
        pre = "[%s, iteration %d]" % (tag, it)
        t.require(tc.wait_iteration(it, timeout=20), "%s starts on the scheduler and every server" % pre,
                  (tc.state(), tc.server_states()))
        devs = device_uploads(it)
        for k, (fl_id, ds, _) in enumerate(devs):
            rep = proto.start_fl_job(urls[(k + offset + it) % n], name, fl_id, ds)
            t.check(rep.retcode == SUCCEED and rep.msg.get("is_selected"),
                           "%s startFLJob %s (data_size %d) -> SUCCEED" % (pre, fl_id, ds), rep)
        rep = proto.start_fl_job(urls[offset % n], name, "it%d-extra" % it, 99)
        t.check(rep.retcode == OUT_OF_TIME, "%s a sixth device is turned away -> OutOfTime" % pre, rep)

        accepted = []
        # Refusals before and between the accepted updates; the server that
        # takes an update is never the one that admitted the device.
        def upd(k, model, want, what):
            fl_id = devs[k][0]
            rep = proto.update_model(urls[(k + offset + it + 1) % n], name, fl_id, it, model)
            return t.check(rep.retcode == want, "%s updateModel %s %s -> %s" % (pre, fl_id, what,
                                                                               retcode_name(want)), rep)

        w, b = (vals for _, vals in devs[0][2])
        upd(0, [("w", w), ("b", [float("nan"), b[1]])], REQUEST_ERROR, "with a NaN")
        upd(0, [("w", w[:5]), ("b", b)], REQUEST_ERROR, "with w of 5 values")
        for k in range(4):
            if upd(k, devs[k][2], SUCCEED, "(data_size %d)" % devs[k][1]):
                accepted.append((devs[k][1], devs[k][2]))
            if k == 2:
                sums = [st.get("updates") for st in tc.server_states()]
                t.check(sum(sums) == 3 and (n == 1 or sum(1 for x in sums if x) >= 2),
                        "%s 3 updates are in, spread over the servers' running sums (GET /)" % pre, sums)
            if k == 1:
                upd(1, fl_proto.scale(devs[1][2], 3.0), REPEAT_REQUEST, "again with other values")
                rep = proto.update_model(urls[it % n], name, "it%d-extra" % it, it, fl_proto.scale(devs[2][2], 5.0))
                t.check(rep.retcode == NOT_SELECTED, "%s updateModel from the turned-away device -> NotSelected"
                        % pre, rep)
        # The threshold (4 of 5) is met: the fifth admitted device is too late.
        upd(4, devs[4][2], OUT_OF_TIME, "after ceil(5 x 0.8) = 4 updates ended the iteration")
        t.require(tc.wait_iteration(it + 1, timeout=20), "%s ends and iteration %d starts" % (pre, it + 1),
                  (tc.state(), tc.server_states()))

        want = fl_proto.fedavg(accepted)
        models = tc.models(it)
        statuses = [s for s, _, _ in models]
        t.check(statuses == [200] * n, "%s GET /model?iteration=%d answers 200 on all %d servers" % (pre, it, n),
                statuses)
        t.check(len({raw for _, raw, _ in models}) == 1,
                "%s the model is byte-identical on all %d servers" % (pre, n))
        diff = fl_proto.compare_models(models[0][2], want)
        t.check(diff is None, "%s the model = sum(uploads)/sum(data_size) of the 4 accepted updates "
                "(total data_size %d), within 1 ulp" % (pre, sum(ds for ds, _ in accepted)), diff)
        for i, u in enumerate(urls):
            rep = proto.get_model(u, name, it)
            t.check(rep.retcode == SUCCEED and rep.msg.get("iteration") == it and
                    fl_proto.compare_models(rep.msg.get("feature_map"), want) is None,
                    "%s getModel on server %d returns that model" % (pre, i), rep)
        result[it] = models[0][2]
    # This cluster is done: its processes go, so the next scenario has the cores.
    for d in tc.daemons:
        d.stop()
    tc.c.scheduler.stop()
    return result


# A model large enough that the ring all-reduce sends several chunks per
# segment (ALLREDUCE_CHUNK_ELEMENTS is 128 Ki doubles), with an odd size so
# that the segments differ in length.
LARGE_SIZE = 3 * 131072 + 12345
LARGE_JOB = dict(JOB, fl_name="FedAvgLarge", fl_iteration_num=2, start_fl_job_threshold=4, update_model_ratio=1.0)
LARGE_INITIAL = [("big", [0.0] * LARGE_SIZE), ("b", [0.0, 0.0])]


def run_large(t, proto, n_servers, local, offset):
    """One iteration with a large model; returns the model."""
    import array
    tag = "large model, %d servers" % n_servers
    tc = fl_proto.TrainingCluster(t, proto, n_servers, LARGE_JOB, LARGE_INITIAL, name="large%d" % n_servers,
                                  local=local)
    name = LARGE_JOB["fl_name"]
    t.require(tc.c.wait_ready(20), "[%s] the cluster becomes READY" % tag, tc.c.state())
    t.require(tc.wait_iteration(1, timeout=20), "[%s] iteration 1 starts" % tag, tc.state())
    rng = random.Random(77)
    accepted = []
    urls, n = tc.urls, len(tc.urls)
    for k, ds in enumerate((3, 1000, 17, 5)):
        trained = [("big", array.array("f", [rng.uniform(-2.0, 2.0) for _ in range(LARGE_SIZE)]).tolist()),
                   ("b", [fl_proto.f32(rng.uniform(-1, 1)), fl_proto.f32(rng.uniform(-1, 1))])]
        up = fl_proto.scale(trained, ds)
        accepted.append((ds, up))
        rep = proto.start_fl_job(urls[(k + offset) % n], name, "big-%d" % k, ds)
        t.check(rep.retcode == SUCCEED, "[%s] startFLJob big-%d -> SUCCEED" % (tag, k), rep)
        rep = proto.update_model(urls[(k + offset + 1) % n], name, "big-%d" % k, 1, up)
        t.check(rep.retcode == SUCCEED, "[%s] updateModel big-%d (%d floats) -> SUCCEED" % (tag, k,
                                                                                         LARGE_SIZE + 2), rep)
    t.require(tc.wait_iteration(2, timeout=30), "[%s] iteration 1 ends" % tag, (tc.state(), tc.server_states()))
    models = tc.models(1)
    t.check([s for s, _, _ in models] == [200] * n and len({raw for _, raw, _ in models}) == 1,
            "[%s] the model of iteration 1 is byte-identical on all %d servers" % (tag, n),
            [(s, len(raw)) for s, raw, _ in models])
    diff = fl_proto.compare_models(models[0][2], fl_proto.fedavg(accepted))
    t.check(diff is None, "[%s] the model = sum(uploads)/sum(data_size), all %d values within 1 ulp"
            % (tag, LARGE_SIZE + 2), diff)
    for d in tc.daemons:
        d.stop()
    tc.c.scheduler.stop()
    return models[0][2]


def main(t):
    proto = fl_proto.Proto(t.tmp)
    # Whichever device hits which server: the offset moves every device to
    # another server in each scenario.
    results = {
        1: run_scenario(t, proto, 1, local=False, offset=0),
        2: run_scenario(t, proto, 2, local=False, offset=1),
        3: run_scenario(t, proto, 3, local=True, offset=2),
    }
    for it in range(1, ITERATIONS + 1):
        for n in (2, 3):
            diff = fl_proto.compare_models(results[n][it], results[1][it], rel=1e-6, ulps=0)
            t.check(diff is None, "iteration %d: the model with %d servers equals the one with 1 server "
                    "(1e-6 relative)" % (it, n), diff)
    large2 = run_large(t, proto, 2, local=True, offset=0)
    large3 = run_large(t, proto, 3, local=False, offset=1)
    t.check(fl_proto.compare_models(large3, large2, rel=1e-6, ulps=0) is None,
            "large model: 3 servers and 2 servers give the same model (1e-6 relative)",
            fl_proto.compare_models(large3, large2, rel=1e-6, ulps=0))


harness.run_test("fedavg", main, timeout=60)
