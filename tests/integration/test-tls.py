#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""TLS on every port, with the material of `flctl tls init`: fl-client
trains a short job over HTTPS against 2 servers (whose all-reduce then runs
over TLS); curl with the CA gets answers from the REST and device ports,
without it it does not, and clear HTTP gets none (the Prometheus ports
too); a raw TCP client sending a
valid frame in clear text to the scheduler port or to a peer port is dropped
with a journal line naming it; flctl works over HTTPS with --cacert and an
operator token (REST) and --cacert (model get), and not without the CA; a
POST without a token is refused 401 over HTTPS too; GET /state says "tls":
true."""

import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import WIRE_REGISTER, WIRE_REGISTER_REPLY, connect, parse_frames, read_until_closed, wire_frame  # noqa: E402

DATA = os.environ.get("FL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FL_CLIENT = os.path.join(harness.BUILDDIR, "fl-client")
DEVICES = 2
ITERATIONS = 1
JOB = ["--fl_iteration_num=%d" % ITERATIONS, "--start_fl_job_threshold=%d" % DEVICES,
       "--client_epoch_num=1", "--client_batch_size=32", "--client_learning_rate=0.01",
       "--start_fl_job_time_window=300000", "--update_model_time_window=300000"]
PEER_PORT_RE = re.compile(r"Serving devices on (?:\S+ )?port (\d+) \(HTTPS\).*peers reach this server on (?:\S+ )?port (\d+) \(TLS\)")


run = harness.run_program


def curl(t, url, cafile=None, token=None):
    argv = ["curl", "-sS", "--max-time", "10", "--noproxy", "*"]
    if cafile:
        argv += ["--cacert", cafile]
    if token:
        argv += ["-H", "Authorization: Bearer " + token]
    return run(t, argv + [url], 20)


def clear_frame_dropped(t, port, frame, what):
    s = connect("127.0.0.1", port)
    try:
        s.sendall(frame)
        closed, elapsed, got = read_until_closed(s, 10)
    finally:
        s.close()
    t.check(closed and not any(ft == WIRE_REGISTER_REPLY for ft, _ in parse_frames(got)),
            "%s: a valid frame in clear text is dropped, unanswered (%.2fs)" % (what, elapsed), got[:200])


def main(t):
    if not os.access(FL_CLIENT, os.X_OK):
        raise harness.Failure("%s is not built" % FL_CLIENT)
    if not os.path.exists(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")):
        raise harness.Skip("Fashion-MNIST is not in %s (apt install dataset-fashion-mnist)" % DATA)

    tls = harness.tls_init(t, hosts="127.0.0.1")
    tokens = os.path.join(t.tmp, "tokens")
    rc, out, err = run(t, [harness.FLCTL, "token", "create", "--role", "operator", "--into", tokens], 20)
    t.require(rc == 0 and out.strip(), "flctl token create --role operator", err)
    operator = out.strip()
    token_file = os.path.join(t.tmp, "operator.token")
    with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write(operator + "\n")
    config = harness.write_config(t, "tls.json", {"enable_ssl": True, "ssl": tls.ssl(),
                                                  "management_token_file": tokens})
    model = os.path.join(t.tmp, "lenet5.fl")
    rc, _, err = run(t, [FL_CLIENT, "init-model", "-o", model], 30)
    t.require(rc == 0, "fl-client init-model", err)

    c = harness.Cluster(t, server_num=2, node_timeout=10, config=config, cafile=tls.ca)
    c.token = operator
    c.start_scheduler(extra=JOB)
    metrics = harness.reserve_ports(2)[0]
    srv = c.start_server(local_server_num=2, extra=["--model_path=" + model, "--metrics_port=%d" % metrics],
                         timeout=30)
    t.require(c.wait_ready(20), "2 servers register over TLS: CLUSTER_READY", c.state())
    state = c.http("GET", "/state").json or {}
    t.check(state.get("tls") is True, "GET /state says \"tls\": true", state)
    t.check("TLS on every port" in c.scheduler.log(), "the scheduler's start line says TLS is on")

    # ---- HTTPS: with the CA, without it, in clear text
    rest, device = c.base_url + "/state", "https://127.0.0.1:%d/" % srv.ports[0]
    rc, out, err = curl(t, rest, tls.ca, token=operator)
    t.check(rc == 0 and '"tls":true' in out, "curl --cacert ca.pem with the token: %s answers" % rest,
            (rc, out, err))
    r = harness.http("POST", c.base_url + "/finish", timeout=10, cafile=tls.ca)
    t.check(r.status == 401 and c.state() == "CLUSTER_READY", "POST /finish over HTTPS without a token: 401, "
            "nothing happens", r)
    rc, out, err = curl(t, device, tls.ca)
    t.check(rc == 0 and '"node_id"' in out, "curl --cacert ca.pem %s answers" % device, (rc, out, err))
    for url in (rest, device):
        rc, out, err = curl(t, url)
        t.check(rc == 60 and not out, "curl without the CA refuses %s (exit 60: not trusted)" % url, (rc, err))
        clear = url.replace("https://", "http://")
        rc, out, err = curl(t, clear)
        t.check(rc != 0 and "node_id" not in out and "cluster_state" not in out,
                "clear HTTP to %s gets no HTTP answer (curl exit %s)" % (clear, rc), (rc, out, err))

    # The servers' Prometheus ports speak HTTPS too.
    for p in (metrics, metrics + 1):
        r = harness.http("GET", "https://127.0.0.1:%d/metrics" % p, timeout=10, cafile=tls.ca)
        t.check(r.status == 200 and b"# TYPE" in r.raw, "GET https://127.0.0.1:%d/metrics with the CA" % p, r)
        r = harness.http("GET", "http://127.0.0.1:%d/metrics" % p, timeout=10)
        t.check(r.status is None, "clear HTTP to the metrics port %d gets no answer" % p, r)

    # A flood of clear HTTP at a device port: libmicrohttpd's lines about it are rate-limited.
    before = srv.count("libmicrohttpd:")
    for _ in range(40):
        harness.http("GET", "http://127.0.0.1:%d/" % srv.ports[0], timeout=5)
    flood = srv.count("libmicrohttpd:") - before
    t.check(0 < flood <= 12, "40 clear requests to an HTTPS port make at most a burst of journal lines (%d)" % flood)

    # ---- nothing takes clear text on the TCP ports
    register = wire_frame(WIRE_REGISTER, {"node_id": "plain-1", "role": "SERVER", "address": "127.0.0.1",
                                          "fl_server_port": 1, "pid": 1, "server_num": 2})
    clear_frame_dropped(t, c.scheduler_port, register, "scheduler port")
    t.check(c.scheduler.wait_log("Refused a connection to the scheduler port from 127.0.0.1: it sent a clear-text "
                                 "flcluster frame; this port speaks only TLS", 1, 10),
            "the scheduler logs the refusal with the peer's address and the reason")
    peer_ports = [int(m.group(2)) for m in PEER_PORT_RE.finditer(srv.log())]
    t.require(len(peer_ports) == 2, "both servers say they take peers on a TLS port", peer_ports)
    hello = wire_frame(32, {"iteration": 1, "position": 0, "rank": 0, "node_id": "x", "n_ring": 2, "n": 10})
    clear_frame_dropped(t, peer_ports[0], hello, "peer port")
    t.check(srv.wait_log("Refused a connection to the peer port from 127.0.0.1: it sent a clear-text", 1, 10),
            "the server logs the refusal on its peer port")
    t.check(len(c.nodes() or []) == 2, "still 2 servers", c.nodes())

    # ---- flctl over HTTPS
    rc, out, err = c.flctl("--token-file", token_file, "nodes", url=True)
    t.check(rc == 0 and out.count("SERVER") == 2, "flctl --cacert --url https://... --token-file nodes",
            (rc, out, err))
    rc, out, err = run(t, [harness.FLCTL, "--url", c.base_url, "--token-file", token_file, "nodes"], 20)
    t.check(rc == 1 and "--cacert" in err, "flctl without --cacert refuses the scheduler's certificate, saying so",
            (rc, err))

    # ---- training over HTTPS (the all-reduce between the servers over TLS)
    servers = ",".join("https://127.0.0.1:%d" % p for p in srv.ports)
    rc, out, err = run(t, [FL_CLIENT, "train", "--servers", servers, "--cacert", tls.ca, "--devices", str(DEVICES),
                           "--data", DATA, "--seed", "3", "--threads", "2", "--timeout", "60"], 150)
    rows = [line.split() for line in out.splitlines() if line.split() and line.split()[0].isdigit()]
    t.check(rc == 0 and [r[0] for r in rows] == [str(i) for i in range(1, ITERATIONS + 1)],
            "fl-client --cacert trains %d iterations over HTTPS against 2 TLS servers" % ITERATIONS, (rc, out, err))
    t.check(harness.wait_until(lambda: (c.http("GET", "/state").json or {}).get("iteration_phase") == "FINISHED", 10),
            "the job is FINISHED", c.http("GET", "/state").json)

    final = os.path.join(t.tmp, "final.fl")
    rc, out, err = c.flctl("model", "get", "-o", final)
    served = harness.http("GET", "https://127.0.0.1:%d/model" % srv.ports[1], timeout=10, cafile=tls.ca)
    t.check(rc == 0 and "https://" in out and served.status == 200 and open(final, "rb").read() == served.raw,
            "flctl --cacert model get fetches the model over HTTPS", (rc, out, err))

    rc, out, err = run(t, [FL_CLIENT, "train", "--servers", servers, "--devices", "1", "--data", DATA,
                           "--timeout", "20"], 60)
    t.check(rc == 1 and "not trusted" in err, "fl-client without --cacert refuses the servers' certificate",
            (rc, err))


harness.run_test("tls", main, timeout=240)
