#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""TLS off, cluster_secret_file on: every connection to the scheduler port
and to a peer port starts with the HMAC challenge (docs/security.md).

A cluster of 2 servers with the secret trains an iteration to the exact
FedAvg (its all-reduce proves the secret too). A client speaking the
challenge in Python with the secret gets past it (and is answered, here
that the cluster is full); one that replays a recorded proof into a new
connection, one with another secret, a raw client without the secret (on
the scheduler port and on a peer port) and a real fl-serverd without the
secret are refused, the scheduler and the servers logging each with its
address and reason. The cluster keeps its servers and its model."""

import hashlib
import hmac
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fl_proto  # noqa: E402
from harness import WIRE_ERROR, WIRE_REGISTER, WIRE_REGISTER_REPLY, connect, read_frame, read_until_closed, wire_frame  # noqa: E402

WIRE_SECRET_NONCE, WIRE_SECRET_PROOF = 30, 31
LABEL = b"flcluster cluster secret v1\0"
SECRET = b"a secret only this cluster's nodes know"
JOB = {"fl_name": "SecretJob", "fl_iteration_num": 3, "start_fl_job_threshold": 2,
       "start_fl_job_time_window": 60000, "update_model_time_window": 60000}
INITIAL = [("w", [1.0] * 6), ("b", [0.0] * 2)]
PEER_PORT_RE = re.compile(r"peers reach this server on (?:\S+ )?port (\d+) \(with the cluster secret\)")
REGISTER = wire_frame(WIRE_REGISTER, {"node_id": "py-1", "role": "SERVER", "address": "127.0.0.1",
                                      "fl_server_port": 1, "pid": 1, "server_num": 2})


def proof(secret, side, client_nonce, server_nonce):
    return hmac.new(secret, LABEL + side + client_nonce + server_nonce, hashlib.sha256).digest()


def challenge(port, secret, nonce=None, forged=None):
    """The connecting side of the exchange. Returns (socket, server_nonce,
    our proof, the server's proof verified?)."""
    s = connect("127.0.0.1", port)
    nonce = nonce or os.urandom(32)
    s.sendall(wire_frame(WIRE_SECRET_NONCE, nonce))
    f = read_frame(s, 10)
    if not f or f[0] != WIRE_SECRET_NONCE or len(f[1]) != 32:
        return s, None, None, False
    server_nonce = f[1]
    mine = forged or proof(secret, b"C", nonce, server_nonce)
    s.sendall(wire_frame(WIRE_SECRET_PROOF, mine))
    f = read_frame(s, 10)
    ok = bool(f) and f[0] == WIRE_SECRET_PROOF and hmac.compare_digest(f[1], proof(secret, b"S", nonce,
                                                                                   server_nonce))
    return s, server_nonce, mine, ok


def main(t):
    proto = fl_proto.Proto(t.tmp)
    secret = os.path.join(t.tmp, "secret")
    with open(secret, "wb") as f:
        f.write(SECRET + b"\n")
    os.chmod(secret, 0o600)
    config = harness.write_config(t, "secret.json", {"cluster_secret_file": secret})
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, local=True, config=config)
    c, srv = tc.c, tc.daemons[0]
    t.require(c.wait_ready(20), "2 servers with the secret form a CLUSTER_READY cluster", c.state())
    t.check("servers prove the cluster secret" in c.scheduler.log(), "the scheduler says it asks for the secret")
    t.check((c.http("GET", "/state").json or {}).get("tls") is False, "GET /state says \"tls\": false")
    peer_ports = [int(p) for p in PEER_PORT_RE.findall(srv.log())]
    t.require(len(peer_ports) == 2, "both servers take peers with the cluster secret", peer_ports)

    t.require(tc.wait_iteration(1, timeout=20), "iteration 1 is open", tc.state())
    u = tc.urls
    want = tc.run_iteration([(u[0], u[1], "dev-a", 5, 0.5), (u[1], u[0], "dev-b", 15, -1.0)], "iteration 1")
    models = tc.models()
    t.check(all(st == 200 and fl_proto.compare_models(m, want) is None for st, _, m in models),
            "the all-reduce with the secret gives every server the exact FedAvg",
            [fl_proto.compare_models(m, want) for _, _, m in models])
    before_nodes = harness.ranks_by_id(c.nodes())
    before_model = models[0][1]

    # ---- the challenge as documented: with the secret, a client gets through
    s, server_nonce, recorded, ok = challenge(c.scheduler_port, SECRET)
    t.check(ok, "with the secret, the scheduler's proof checks out (HMAC-SHA256 over both nonces)")
    s.sendall(REGISTER)
    f = read_frame(s, 10)
    s.close()
    t.check(f and f[0] == WIRE_REGISTER_REPLY and f[1].get("ok") is False and "full" in f[1].get("error", ""),
            "past the challenge the scheduler answers the registration (the cluster is full)", f)

    # ---- a recorded proof replayed into a new connection
    s, server_nonce2, _, _ = challenge(c.scheduler_port, SECRET, forged=recorded)
    closed, _, _ = read_until_closed(s, 10)
    s.close()
    t.check(closed and server_nonce2 != server_nonce, "a replayed proof is refused (the server's nonce is new)")

    # ---- another secret
    s, _, _, ok = challenge(c.scheduler_port, b"not the secret of this cluster")
    t.check(not ok, "with another secret the scheduler's proof does not check out")
    closed, _, _ = read_until_closed(s, 10)
    s.close()
    t.check(closed, "and the scheduler closes the connection")
    t.check(c.scheduler.wait_log("from 127.0.0.1: its proof of the cluster secret is wrong", 1, 10),
            "the scheduler logs the wrong proof with the address")

    # ---- no secret at all: told why, dropped, logged
    s = connect("127.0.0.1", c.scheduler_port)
    s.sendall(REGISTER)
    closed, _, data = read_until_closed(s, 10)
    s.close()
    frames = harness.parse_frames(data)
    t.check(closed and not any(ft == WIRE_REGISTER_REPLY for ft, _ in frames) and
            any(ft == WIRE_ERROR and "cluster secret" in p.get("error", "") for ft, p in frames
                if isinstance(p, dict)),
            "a REGISTER without the secret is refused with a WIRE_ERROR saying why", frames)
    t.check(c.scheduler.wait_log("Refused a connection to the scheduler port from 127.0.0.1: it sent a frame "
                                 "(type 1) without proving the cluster secret", 1, 10),
            "the scheduler logs it with the address and the reason")
    s = connect("127.0.0.1", peer_ports[0])
    s.sendall(wire_frame(32, {"iteration": 2, "position": 1, "rank": 1, "node_id": "py-1", "n_ring": 2, "n": 8}))
    closed, _, _ = read_until_closed(s, 10)
    s.close()
    t.check(closed, "a HELLO without the secret on a peer port is dropped")
    t.check(srv.wait_log("Refused a connection to the peer port from 127.0.0.1: it sent a frame (type 32) without "
                         "proving the cluster secret", 1, 10), "the server logs it")

    # ---- a real fl-serverd without the secret
    argv = [a for a in c.server_argv(harness.reserve_ports(1)[0], node_id="rogue-1",
                                     state_dir=os.path.join(t.tmp, "rogue")) if not a.startswith("--config_file_path")]
    rogue = harness.Daemon(t, "rogue-fl-serverd", argv + ["--model_path=" + tc.model_path], env=c.env()).start()
    t.check(rogue.wait_log("asks for the cluster secret, and this node has no cluster_secret_file", 1, 15),
            "an fl-serverd without the secret cannot join, and says why", rogue.tail(5))
    t.check(harness.SERVER_STARTED not in rogue.log(), "it never registers")
    rogue.stop()

    t.check(harness.ranks_by_id(c.nodes()) == before_nodes, "the cluster keeps its 2 servers and their ranks",
            c.nodes())
    t.check(all(m[1] == before_model for m in tc.models()), "and its model")


harness.run_test("cluster-secret", main, timeout=120)
