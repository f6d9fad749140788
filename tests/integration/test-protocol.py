#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Every round and every retcode of design/device-protocol.md against a live
cluster (a scheduler and 2 servers), driven by an independent client: Python
code that Debian's flatc generates from src/shared/fl_protocol.fbs, on
Debian's python3-flatbuffers (fl_proto.py). Each malformed input is first
shown to be malformed by the test's own verifier, then shown to be refused
by the server; "changes nothing" is shown through the model the iteration
ends with: the mean of the accepted updates only."""

import os
import random
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fl_proto  # noqa: E402
from fl_proto import (SUCCEED, SUC_NOT_READY, REPEAT_REQUEST, OUT_OF_TIME, NOT_SELECTED,  # noqa: E402
                      REQUEST_ERROR, SYSTEM_ERROR, SAFEMODE_TEXT, DISABLED_TEXT, retcode_name)

JOB = {
    "fl_name": "ProtoJob",
    "fl_iteration_num": 2,
    "start_fl_job_threshold": 3,
    "update_model_ratio": 1.0,
    "start_fl_job_time_window": 40000,
    "update_model_time_window": 40000,
    "global_iteration_time_window": 90000,
    "client_epoch_num": 7,
    "client_batch_size": 16,
    "client_learning_rate": 0.125,
}
MAX_REQUEST_MB = 1
INITIAL = [("w", [0.5, -1.25, 2.0, 3.5, -4.75, 6.0]), ("b", [0.125, -0.0625])]


def now_ms():
    return int(time.time() * 1000)


def expect(t, rep, retcode, what):
    ok = rep.status == 200 and rep.msg is not None and rep.retcode == retcode
    return t.check(ok, "%s -> %s" % (what, retcode_name(retcode)), rep)


def expect_text(t, rep, text, what):
    return t.check(rep.status == 200 and rep.text == text, "%s -> HTTP 200 text %r" % (what, text), rep)


def is_ms(s):
    return isinstance(s, str) and s.isdigit() and len(s) >= 12


def upload(model, data_size, salt):
    """What a device uploads: its trained weights multiplied by data_size."""
    trained = [(n, [fl_proto.f32(v + salt * (i + 1) / 8.0) for i, v in enumerate(vals)]) for n, vals in model]
    return fl_proto.scale(trained, data_size)


def concurrently(fns):
    """Runs every fn in its own thread at once; their results in order."""
    out = [None] * len(fns)
    go = threading.Event()

    def run(i):
        go.wait(5)
        out[i] = fns[i]()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for th in threads:
        th.start()
    go.set()
    for th in threads:
        th.join(30)
    return out


def main(t):
    proto = fl_proto.Proto(t.tmp)
    name = JOB["fl_name"]
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, name="sched", start=False,
                                  server_extra=["--max_request_size_mb=%d" % MAX_REQUEST_MB])
    tc.c.start_scheduler(extra=fl_proto.job_argv(JOB))

    # ---- before the cluster is READY: safemode, on every round
    tc.start_servers(1)
    A = tc.urls[0]
    t.check(tc.c.state() != "CLUSTER_READY", "one server of two: the cluster is not READY", tc.c.state())
    expect_text(t, proto.start_fl_job(A, name, "early", 10), SAFEMODE_TEXT, "startFLJob before READY")
    expect_text(t, proto.update_model(A, name, "early", 1, INITIAL), SAFEMODE_TEXT, "updateModel before READY")
    expect_text(t, proto.get_model(A, name, 1), SAFEMODE_TEXT, "getModel before READY")
    expect_text(t, proto.push_metrics(A, 0.5, 0.5), SAFEMODE_TEXT, "pushMetrics before READY")

    # ---- transport-level refusals on the device port
    st, _, _ = fl_proto.http_request("GET", A + "/startFLJob")
    t.check(st == 405, "GET /startFLJob -> HTTP 405", st)
    st, _, _ = fl_proto.http_request("PUT", A + "/updateModel", b"x")
    t.check(st == 405, "PUT /updateModel -> HTTP 405", st)
    st, _, _ = fl_proto.post(A + "/noSuchRound", proto.request_get_model(name, 1))
    t.check(st == 404, "POST /noSuchRound -> HTTP 404", st)
    st, _, _ = fl_proto.get(A + "/startFLJob/extra")
    t.check(st == 404, "GET /startFLJob/extra -> HTTP 404", st)

    tc.start_servers(1)
    B = tc.urls[1]
    t.require(tc.c.wait_ready(20), "with both servers the cluster becomes READY", tc.c.state())
    t.require(tc.wait_iteration(1, timeout=20), "iteration 1 starts (REST /state and both servers agree)",
              (tc.state(), tc.server_states()))

    # ---- getModel before the iteration ends
    rep = proto.get_model(A, name, 1)
    expect(t, rep, SUC_NOT_READY, "getModel for the current iteration 1 on server A")
    t.check(rep.msg is not None and rep.msg.get("iteration") == 1, "SucNotReady carries iteration 1", rep)
    expect(t, proto.get_model(B, name, 1, identifier=False), SUC_NOT_READY,
           "getModel for iteration 1 on server B, buffer without file_identifier")
    rep = proto.get_model(A, name, 0)
    expect(t, rep, SUCCEED, "getModel for iteration 0 (the newest finished model is the initial one)")
    if rep.msg:
        t.check(rep.msg.get("iteration") == 0, "getModel answers iteration 0", rep.msg.get("iteration"))
        t.check(fl_proto.compare_models(rep.msg.get("feature_map"), INITIAL) is None,
                "getModel returns the initial model exactly",
                fl_proto.compare_models(rep.msg.get("feature_map"), INITIAL))
    st, raw0, model0 = proto.fetch_model(A)
    t.check(st == 200 and fl_proto.compare_models(model0, INITIAL) is None,
            "GET /model on A returns the initial model (a valid FeatureMapList)", (st, raw0[:80]))
    stb, raw0b, _ = proto.fetch_model(B)
    t.check(stb == 200 and raw0b == raw0, "GET /model: the initial model is byte-identical on A and B")

    # ---- startFLJob
    for ds in (0, -3):
        rep = proto.start_fl_job(A, name, "zero-%d" % ds, ds)
        expect(t, rep, REQUEST_ERROR, "startFLJob with data_size %d" % ds)
        t.check(rep.msg is not None and not rep.msg.get("is_selected"), "data_size %d: is_selected false" % ds, rep)

    bad_fljob = {
        "garbage": random.Random(7).randbytes(96),
        "empty body": b"",
        "3 bytes": b"\x04\x00\x00",
        "truncated RequestFLJob": proto.request_fl_job(name, "trunc", 0, 5)[:20],
        "RequestPushMetrics (float where fl_name's offset belongs)": proto.request_push_metrics(1.5, 2.5),
    }
    for what, body in bad_fljob.items():
        try:
            proto.verify(body, "RequestFLJob")
            valid = True
        except fl_proto.ProtoError:
            valid = False
        t.check(not valid, "the test's verifier refuses %s as a RequestFLJob" % what)
        expect(t, proto.call(A, "startFLJob", body), REQUEST_ERROR, "startFLJob with %s" % what)

    t0 = now_ms()
    d1 = proto.start_fl_job(A, name, "d1", 10)
    expect(t, d1, SUCCEED, "startFLJob d1 (data_size 10) on A")
    m = d1.msg or {}
    t.check(m.get("has_identifier") is True, "the answer carries file_identifier FLJ0", m.get("has_identifier"))
    t.check(m.get("is_selected") is True, "d1 is_selected true", m)
    t.check(m.get("iteration") == 1, "d1 is told iteration 1", m.get("iteration"))
    t.check(is_ms(m.get("timestamp")) and abs(int(m["timestamp"]) - t0) < 60000,
            "timestamp is a decimal Unix time in ms, now", m.get("timestamp"))
    t.check(is_ms(m.get("next_req_time")), "next_req_time is a decimal Unix time in ms", m.get("next_req_time"))
    t.check(fl_proto.compare_models(m.get("feature_map"), INITIAL) is None,
            "d1 receives the current global model exactly", fl_proto.compare_models(m.get("feature_map"), INITIAL))
    plan = m.get("fl_plan_config") or {}
    t.check(plan.get("fl_name") == JOB["fl_name"], "FLPlan.fl_name is the job's fl_name", plan.get("fl_name"))
    t.check(plan.get("iterations") == JOB["fl_iteration_num"], "FLPlan.iterations = fl_iteration_num",
            plan.get("iterations"))
    t.check(plan.get("epochs") == JOB["client_epoch_num"], "FLPlan.epochs = client_epoch_num", plan.get("epochs"))
    t.check(plan.get("mini_batch") == JOB["client_batch_size"], "FLPlan.mini_batch = client_batch_size",
            plan.get("mini_batch"))
    t.check(plan.get("lr") == fl_proto.f32(JOB["client_learning_rate"]), "FLPlan.lr = client_learning_rate",
            plan.get("lr"))
    agg = plan.get("aggregation")
    t.check(agg is None or agg.get("type") == 0, "FLPlan.aggregation is FedAvg (or absent)", agg)

    # A repeated fl_id, on either server, with or without identifier, with the later clients' fields.
    expect(t, proto.start_fl_job(B, name, "d1", 10), SUCCEED, "startFLJob d1 again, on B")
    expect(t, proto.start_fl_job(A, name, "d1", 10, identifier=False), SUCCEED,
           "startFLJob d1 again on A, buffer without file_identifier")
    expect(t, proto.start_fl_job(B, name, "d2", 30, identifier=False), SUCCEED,
           "startFLJob d2 (data_size 30) on B, without file_identifier")
    d3 = proto.start_fl_job(A, name, "d3", 60, sign_data=b"\x00\x01\xfe\xff", key_attestation="ka",
                            equip_cert="ec", equip_ca_cert="eca", root_cert="rc")
    expect(t, d3, SUCCEED, "startFLJob d3 (data_size 60) with sign_data and certificates: the third distinct "
           "device is admitted, so d1 (asked 3 times) and the refused data_size<1 devices were counted once/never")
    t_d4 = now_ms()
    d4 = proto.start_fl_job(B, name, "d4", 5)
    expect(t, d4, OUT_OF_TIME, "startFLJob d4 after the threshold of 3 is reached")
    m4 = d4.msg or {}
    t.check(m4.get("is_selected") is False, "d4 is_selected false", m4)
    limit = t_d4 + JOB["start_fl_job_time_window"] + JOB["update_model_time_window"] + 5000
    t.check(is_ms(m4.get("next_req_time")) and t_d4 < int(m4["next_req_time"]) <= limit,
            "d4's next_req_time is in the future, within the iteration's windows",
            (m4.get("next_req_time"), t_d4))
    t.check(not m4.get("feature_map"), "d4 receives no model", m4.get("feature_map") and len(m4["feature_map"]))
    expect(t, proto.start_fl_job(A, name, "d4", 5), OUT_OF_TIME, "d4 again, on A: still OutOfTime")
    expect(t, proto.start_fl_job(A, name, "d1", 10), SUCCEED,
           "d1 again after the threshold: still SUCCEED (a retry, not a new device)")

    # ---- updateModel: every refusal first, each before the device's valid update
    up = {"d1": upload(INITIAL, 10, 1.0), "d2": upload(INITIAL, 30, -2.0), "d3": upload(INITIAL, 60, 0.5)}
    poison = fl_proto.scale(INITIAL, 1e6)       # would show in the mean if any refused update were summed
    valid_d2 = proto.request_update_model(name, "d2", 1, up["d2"])

    def refuse_update(url, body, retcode, what, table_invalid=False):
        if table_invalid:
            try:
                proto.verify(body, "RequestUpdateModel")
                valid = True
            except fl_proto.ProtoError:
                valid = False
            t.check(not valid, "the test's own verifier refuses the RequestUpdateModel %s too" % what)
        return expect(t, proto.call(url, "updateModel", body), retcode, "updateModel " + what)

    rng = random.Random(12345)
    refuse_update(A, rng.randbytes(200), REQUEST_ERROR, "with 200 random bytes", True)
    refuse_update(B, b"this is not a flatbuffer, just some ASCII text\n", REQUEST_ERROR, "with ASCII text", True)
    refuse_update(A, b"\x00" * 64, REQUEST_ERROR, "with 64 zero bytes", True)
    refuse_update(A, b"\xff" * 64, REQUEST_ERROR, "with 64 0xff bytes", True)
    refuse_update(B, b"", REQUEST_ERROR, "with an empty body")
    refuse_update(A, valid_d2[:7], REQUEST_ERROR, "truncated to 7 bytes", True)
    refuse_update(A, valid_d2[:len(valid_d2) // 2], REQUEST_ERROR, "truncated to half", True)
    cut = len(valid_d2) - 1
    while cut > 0:
        try:
            proto.verify(valid_d2[:cut], "RequestUpdateModel")
            cut -= 1
        except fl_proto.ProtoError:
            break
    refuse_update(B, valid_d2[:cut], REQUEST_ERROR, "truncated by %d byte(s), the shortest cut that breaks it"
                  % (len(valid_d2) - cut), True)

    # Wrong root tables whose fields mistype as RequestUpdateModel's.
    refuse_update(A, proto.request_get_model(name, 0x7FFF0000), REQUEST_ERROR,
                  "with a RequestGetModel (its iteration int lies where fl_id's string offset belongs)", True)
    refuse_update(B, proto.request_push_metrics(1.5, 2.5), REQUEST_ERROR,
                  "with a RequestPushMetrics (a float where fl_name's string offset belongs)", True)

    # Vector lengths that point outside the buffer (hand-patched).
    pos = proto.update_data_vector_pos(valid_d2, 0)
    just_past = (len(valid_d2) - (pos + 4)) // 4 + 1
    for what, p, value in (
            ("feature_map[0].data length 0x7fffffff", pos, 0x7FFFFFFF),
            ("feature_map[0].data length %d, one float past the end" % just_past, pos, just_past),
            ("feature_map vector length 0x10000", proto.maps_vector_pos(valid_d2), 0x10000),
            ("feature_map[1].weight_fullname length 0x7ffffff0", proto.update_name_pos(valid_d2, 1), 0x7FFFFFF0),
            # Lengths whose byte size wraps in 32-bit arithmetic to what fits.
            ("feature_map[0].data length 0x40000006 (x4 wraps to 24 bytes)", pos, 0x40000006),
            ("feature_map vector length 0x40000002 (x4 wraps to 8 bytes)", proto.maps_vector_pos(valid_d2),
             0x40000002),
            ("feature_map[1].weight_fullname length 0xffffffff (+5 wraps)", proto.update_name_pos(valid_d2, 1),
             0xFFFFFFFF)):
        patched = bytearray(valid_d2)
        struct.pack_into("<I", patched, p, value)
        refuse_update(A, bytes(patched), REQUEST_ERROR, "with " + what, True)
    patched = bytearray(valid_d2)
    struct.pack_into("<I", patched, 0, len(valid_d2) + 64)
    refuse_update(B, bytes(patched), REQUEST_ERROR, "with a root offset past the end", True)

    # Well-formed buffers the model refuses.
    w, b = up["d2"][0][1], up["d2"][1][1]
    for what, model in (
            ("a wrong weight name ('c' for 'b')", [("w", w), ("c", b)]),
            ("a wrong size (w has 5 values, not 6)", [("w", w[:5]), ("b", b)]),
            ("a wrong size (b has 3 values, not 2)", [("w", w), ("b", b + [1.0])]),
            ("a missing weight (no b)", [("w", w)]),
            ("an extra weight", [("w", w), ("b", b), ("x", [1.0])]),
            ("a weight twice (w, w)", [("w", w), ("w", w)]),
            ("a NUL inside a weight name ('b\\0x')", [("w", w), ("b\0x", b)]),
            ("a weight name in other case ('W')", [("W", w), ("b", b)]),
            ("no weights at all", []),
            ("NaN in w[3]", [("w", w[:3] + [float("nan")] + w[4:]), ("b", b)]),
            ("+Inf in b[0]", [("w", w), ("b", [float("inf"), b[1]])]),
            ("-Inf in w[0]", [("w", [float("-inf")] + w[1:]), ("b", b)])):
        refuse_update(A if len(what) % 2 else B, proto.request_update_model(name, "d2", 1, model), REQUEST_ERROR,
                      "from d2 with " + what)
    refuse_update(A, proto.request_update_model(name, "d2", 1, None), REQUEST_ERROR,
                  "from d2 without the feature_map field")

    refuse_update(B, proto.request_update_model(name, "d2", 2, poison), OUT_OF_TIME,
                  "from d2 for iteration 2 (the current one is 1)")
    refuse_update(A, proto.request_update_model(name, "d2", 0, poison), OUT_OF_TIME, "from d2 for iteration 0")
    rep = proto.update_model(A, name, "d4", 1, poison)
    expect(t, rep, NOT_SELECTED, "updateModel from d4 (turned away by startFLJob)")
    t.check(rep.msg is not None and is_ms(rep.msg.get("next_req_time")), "NotSelected carries next_req_time", rep)
    expect(t, proto.update_model(B, name, "ghost", 1, poison), NOT_SELECTED,
           "updateModel from a device that never called startFLJob")

    # The size limit, at the byte: trailing bytes after a buffer are allowed,
    # so a body of exactly the limit is read (and refused for its iteration).
    limit = MAX_REQUEST_MB * 1024 * 1024
    late = proto.request_update_model(name, "d2", 5, poison)
    at_limit = late + b"\0" * (limit - len(late))
    for url, chunked in ((A, False), (B, True)):
        how = "chunked" if chunked else "Content-Length"
        st, _, body = fl_proto.post_raw(url + "/updateModel", at_limit, chunked=chunked)
        retcode = None
        if st == 200:
            try:
                retcode = proto.parse("updateModel", body)["retcode"]
            except fl_proto.ProtoError:
                pass
        t.check(st == 200 and retcode == OUT_OF_TIME, "updateModel with a body of exactly the limit (%d bytes, %s) "
                "is read: -> OutOfTime for its iteration 5" % (limit, how), (st, retcode, body[:200]))
    big = proto.request_update_model(name, "d2", 1, fl_proto.scale(INITIAL, 1.0)) + b"\0" * limit
    for url, chunked, size in ((A, False, limit + 1), (B, True, limit + 1), (A, False, len(big)),
                               (B, True, len(big))):
        how = "chunked" if chunked else "Content-Length"
        st, _, body = fl_proto.post_raw(url + "/updateModel", big[:size], chunked=chunked)
        t.check(st == 413, "updateModel with a %d-byte body (limit %d MiB, %s) -> HTTP 413"
                % (size, MAX_REQUEST_MB, how), (st, body[:200]))
    st, _, body = fl_proto.post_raw(A + "/updateModel", late, content_length=10 << 30, timeout=5)
    t.check(st == 413, "updateModel announcing Content-Length 10 GiB -> HTTP 413 before the body is read",
            (st, body[:200]))

    sums = [s.get("updates") for s in tc.server_states()]
    t.check(sums == [0, 0], "after every refusal both running sums hold 0 updates (GET / on the device ports)",
            sums)

    # ---- the accepted updates, across servers; repeats refused
    rep = proto.update_model(B, name, "d1", 1, up["d1"], signature=b"\x01\x02", upload_loss=0.25)
    expect(t, rep, SUCCEED, "updateModel d1 on B (startFLJob was on A), with signature and upload_loss")
    t.check(rep.msg is not None and is_ms(rep.msg.get("next_req_time")) and is_ms(rep.msg.get("timestamp")),
            "the SUCCEED answer carries next_req_time and timestamp", rep)
    rep = proto.update_model(A, name, "d1", 1, poison)
    expect(t, rep, REPEAT_REQUEST, "updateModel d1 again (other values) on A")
    expect(t, proto.update_model(B, name, "d1", 1, poison), REPEAT_REQUEST, "updateModel d1 again on B")
    expect(t, proto.call(A, "updateModel", proto.request_update_model(name, "d2", 1, up["d2"], identifier=False)),
           SUCCEED, "updateModel d2 on A (after all its refusals), without file_identifier")
    expect(t, proto.update_model(B, name, "d2", 1, poison), REPEAT_REQUEST, "updateModel d2 again, on B")

    expect(t, proto.get_model(A, name, 1), SUC_NOT_READY, "getModel for iteration 1 with 2 of 3 updates in")
    rep = proto.push_metrics(A, 0.75, 0.5)
    expect(t, rep, SUCCEED, "pushMetrics (loss 0.75, accuracy 0.5)")
    st = tc.server_states()[0]
    t.check(st.get("metrics_count") == 1 and st.get("last_loss") == 0.75 and st.get("last_accuracy") == 0.5,
            "server A recorded the metrics (GET /)", st)
    expect(t, proto.push_metrics(B, 0.5, 0.875, identifier=False), SUCCEED, "pushMetrics without file_identifier")
    body = proto.request_push_metrics(0.5, 0.5)[:6]
    expect(t, proto.call(A, "pushMetrics", body), REQUEST_ERROR, "pushMetrics with a truncated buffer")
    expect(t, proto.call(B, "getModel", rng.randbytes(50)), REQUEST_ERROR, "getModel with random bytes")

    # Rounds one after another on one persistent connection, the deferred
    # answers (the scheduler is asked) included.
    ka = fl_proto.KeepAlive(A, proto)
    for rnd, body, want in (("getModel", proto.request_get_model(name, 1), SUC_NOT_READY),
                            ("updateModel", b"garbage", REQUEST_ERROR),
                            ("startFLJob", proto.request_fl_job(name, "d3", 0, 60), SUCCEED),
                            ("updateModel", proto.request_update_model(name, "d4", 1, poison), NOT_SELECTED),
                            ("updateModel", proto.request_update_model(name, "d1", 1, poison), REPEAT_REQUEST),
                            ("pushMetrics", proto.request_push_metrics(0.25, 0.25), SUCCEED)):
        expect(t, ka.call(rnd, body), want, "keep-alive connection: %s" % rnd)
    t.check(len(ka.sockets) == 1, "all 6 rounds went over one connection", len(ka.sockets))
    ka.close()

    expect(t, proto.update_model(B, name, "d3", 1, up["d3"], unknown_ints={9: 7, 11: 12345}), SUCCEED,
           "updateModel d3 on B with two fields past the schema (as a newer client appends): the third update")
    t.require(tc.wait_iteration(2, timeout=20), "iteration 1 ends and iteration 2 starts", (tc.state(),
                                                                                          tc.server_states()))

    # ---- the model of iteration 1 is the mean of the accepted updates only
    want1 = fl_proto.fedavg([(10, up["d1"]), (30, up["d2"]), (60, up["d3"])])
    models = tc.models()
    t.check(all(s == 200 for s, _, _ in models), "GET /model answers 200 on both servers", [s for s, _, _ in models])
    t.check(models[0][1] == models[1][1], "the model of iteration 1 is byte-identical on both servers")
    diff = fl_proto.compare_models(models[0][2], want1)
    t.check(diff is None, "the model of iteration 1 = (u1+u2+u3)/(10+30+60): the refused updates changed nothing",
            diff)
    for i, u in enumerate(tc.urls):
        st, raw, _ = proto.fetch_model(u, 1)
        t.check(st == 200 and raw == models[i][1], "GET /model?iteration=1 on server %s is that model" % "AB"[i],
                st)
        rep = proto.get_model(u, name, 1)
        expect(t, rep, SUCCEED, "getModel for iteration 1 on server %s after it finished" % "AB"[i])
        t.check(rep.msg is not None and rep.msg.get("iteration") == 1 and
                fl_proto.compare_models(rep.msg.get("feature_map"), want1) is None,
                "getModel on %s returns iteration 1 and its model" % "AB"[i], rep)
        expect(t, proto.get_model(u, name, 2), SUC_NOT_READY, "getModel for iteration 2 on %s" % "AB"[i])
    expect(t, proto.update_model(A, name, "d3", 1, up["d3"]), OUT_OF_TIME,
           "updateModel d3 for iteration 1 once iteration 2 runs")
    expect(t, proto.update_model(B, name, "d1", 2, up["d1"]), NOT_SELECTED,
           "updateModel d1 in iteration 2 without a new startFLJob (admissions are per iteration)")

    # ---- iteration 2, the last one: 8 devices race for 3 places on both servers at once
    cands = [("e%d" % i, 4 * (i + 1)) for i in range(8)]
    replies = concurrently([(lambda i=i, d=d, ds=ds: proto.start_fl_job((A, B)[i % 2], name, d, ds))
                            for i, (d, ds) in enumerate(cands)])
    admitted = [(d, ds) for (d, ds), r in zip(cands, replies) if r.retcode == SUCCEED]
    others = [r.retcode for r in replies if r.retcode != SUCCEED]
    t.require(len(admitted) == 3 and others == [OUT_OF_TIME] * 5,
              "8 concurrent startFLJob on A and B with threshold 3: exactly 3 SUCCEED, 5 OutOfTime",
              [(d, r) for (d, _), r in zip(cands, replies)])
    adm = [r for r in replies if r.retcode == SUCCEED]
    t.check(all(r.msg.get("iteration") == 2 and r.msg.get("is_selected") and
                fl_proto.compare_models(r.msg.get("feature_map"), want1) is None for r in adm),
            "iteration 2's selected devices receive iteration 2 and the model of iteration 1", adm)
    up2 = {d: (ds, upload(want1, ds, 0.25 * (i + 1))) for i, (d, ds) in enumerate(admitted)}
    late = next(d for d, _ in cands if d not in up2)
    expect(t, proto.update_model(A, name, late, 2, poison), NOT_SELECTED,
           "iteration 2: updateModel from %s, who lost the race" % late)
    first = admitted[0][0]
    replies = concurrently([(lambda u=u: proto.update_model(u, name, first, 2, up2[first][1])) for u in (A, B, A, B)])
    codes = sorted(r.retcode for r in replies)
    # A device retrying an answer it never got sends the same bytes again: each
    # copy is answered SUCCEED, and the update is counted once (checked below).
    t.check(codes == [SUCCEED] * 4,
            "iteration 2: the same update of %s sent 4 times at once to A and B: SUCCEED each time" % first,
            replies)
    other = upload(want1, up2[first][0], 0.9)
    expect(t, proto.update_model(B, name, first, 2, other), REPEAT_REQUEST,
           "iteration 2: a different update of %s after it" % first)
    for i, (dev, _) in enumerate(admitted[1:]):
        expect(t, proto.update_model((B, A)[i % 2], name, dev, 2, up2[dev][1]), SUCCEED,
               "iteration 2: updateModel %s" % dev)
    t.require(tc.wait_iteration(2, phase="FINISHED", timeout=20),
              "after fl_iteration_num=2 iterations the job is FINISHED", (tc.state(), tc.server_states()))
    want2 = fl_proto.fedavg(list(up2.values()))
    models = tc.models()
    t.check(models[0][1] == models[1][1] and models[0][0] == 200, "the final model is byte-identical on both servers")
    t.check(fl_proto.compare_models(models[0][2], want2) is None,
            "the final model is the mean of iteration 2's 3 updates, the raced one counted once",
            fl_proto.compare_models(models[0][2], want2))

    for u, srv in ((A, "A"), (B, "B")):
        expect_text(t, proto.start_fl_job(u, name, "late", 3), DISABLED_TEXT, "startFLJob on %s after the job" % srv)
        expect_text(t, proto.update_model(u, name, "e1", 2, up2[first][1]), DISABLED_TEXT,
                    "updateModel on %s after the job" % srv)
        expect_text(t, proto.push_metrics(u, 0.1, 0.9), DISABLED_TEXT, "pushMetrics on %s after the job" % srv)
        for it in (2, 3):
            rep = proto.get_model(u, name, it)
            expect(t, rep, SUCCEED, "getModel(iteration=%d) on %s after the job" % (it, srv))
            t.check(rep.msg is not None and rep.msg.get("iteration") == 2 and
                    fl_proto.compare_models(rep.msg.get("feature_map"), want2) is None,
                    "getModel on %s keeps serving the final model of iteration 2" % srv, rep)

    # ---- SystemError: a server without a model
    nomodel = harness.Cluster(t, server_num=1, name="sched-nomodel")
    nomodel.start_scheduler(extra=fl_proto.job_argv(JOB))
    d = nomodel.start_server()
    t.require(nomodel.wait_ready(20), "a second cluster whose server has no model becomes READY", nomodel.state())
    u = "http://127.0.0.1:%d" % d.port
    harness.wait_until(lambda: proto.start_fl_job(u, name, "x", 1).text is None, 10)
    expect(t, proto.start_fl_job(u, name, "x", 1), SYSTEM_ERROR, "startFLJob on a server without a model")


harness.run_test("protocol", main, timeout=60)
