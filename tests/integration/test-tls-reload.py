#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""SIGHUP with new certificates, as `systemctl reload` sends it.

A TLS cluster (the scheduler and one fl-serverd running 2 servers) trains an
iteration with devices of fl_proto.py over HTTPS (the all-reduce over TLS).
Then `flctl tls init --keep-ca --force` replaces the node certificate and
the scheduler and the server launcher get SIGHUP. Every port (REST, both
device ports, the scheduler port, both peer ports) shows the new
certificate to a new connection; the servers' links to the scheduler stay
up (nobody registers again); the next iteration trains, its peer
connections on the new certificates, with the exact FedAvg. A reload with a
key that does not belong is refused and the certificate in force stays; a
certificate that expires within cert_expire_warning_time_in_day makes a
journal warning when it is loaded. A server that lost its database then
takes the model from its peer's device port over HTTPS."""

import glob
import os
import re
import signal
import ssl
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import fl_proto  # noqa: E402
import tls_helpers  # noqa: E402

JOB = {"fl_name": "ReloadJob", "fl_iteration_num": 5, "start_fl_job_threshold": 2,
       "start_fl_job_time_window": 60000, "update_model_time_window": 60000}
INITIAL = [("w", [0.5] * 8), ("b", [0.0] * 2)]
PEER_PORT_RE = re.compile(r"peers reach this server on (?:\S+ )?port (\d+) \(TLS\)")


def file_serial(path):
    return ssl._ssl._test_decode_cert(path)["serialNumber"]


def serials(tc, srv, peer_ports, tls):
    """What a new connection to each port is shown."""
    out = {"REST": tls_helpers.peer_serial(tc.c.manage_port, tls.ca),
           "scheduler port": tls_helpers.peer_serial(tc.c.scheduler_port, tls.ca, tls.node, tls.node_key)}
    for p in srv.ports:
        out["device port %d" % p] = tls_helpers.peer_serial(p, tls.ca)
    for p in peer_ports:
        out["peer port %d" % p] = tls_helpers.peer_serial(p, tls.ca, tls.node, tls.node_key)
    return out


def iteration(t, tc, number, label):
    u = tc.urls
    devices = [(u[0], u[1], "%s-a" % label, 10, 1.0), (u[1], u[0], "%s-b" % label, 30, -0.25)]
    t.require(tc.wait_iteration(number, timeout=20), "%s: iteration %d is open" % (label, number), tc.state())
    want = tc.run_iteration(devices, label)
    for status, raw, model in tc.models():
        diff = fl_proto.compare_models(model, want)
        t.check(status == 200 and diff is None, "%s: a server serves the exact FedAvg over HTTPS" % label, diff)
    return want


def main(t):
    proto = fl_proto.Proto(t.tmp)
    tls = harness.tls_init(t, hosts="127.0.0.1")
    config = harness.write_config(t, "tls.json", {"enable_ssl": True,
                                                  "ssl": tls.ssl(cert_expire_warning_time_in_day=30)})
    fl_proto.use_ca(tls.ca)
    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, local=True, config=config, cafile=tls.ca)
    c = tc.c
    srv = tc.daemons[0]
    t.require(c.wait_ready(20), "the TLS cluster is CLUSTER_READY", c.state())
    peer_ports = [int(p) for p in PEER_PORT_RE.findall(srv.log())]
    t.require(len(peer_ports) == 2, "both servers take peers on a TLS port", peer_ports)
    t.check("expires in" not in c.scheduler.log(), "a certificate of two years makes no expiry warning")

    iteration(t, tc, 1, "before the reload")
    first = file_serial(tls.node)
    seen = serials(tc, srv, peer_ports, tls)
    t.check(set(seen.values()) == {first}, "every port shows the first certificate", seen)

    # ---- new certificates, SIGHUP
    p = subprocess.run([harness.FLCTL, "tls", "init", "--dir", tls.dir, "--hosts", "127.0.0.1", "--keep-ca",
                        "--force"], capture_output=True, text=True, timeout=30)
    t.require(p.returncode == 0, "flctl tls init --keep-ca --force issues a new node certificate", p.stderr)
    second = file_serial(tls.node)
    t.require(second != first, "it is another certificate", (first, second))
    os.kill(c.scheduler.pid, signal.SIGHUP)
    os.kill(srv.pid, signal.SIGHUP)
    t.check(c.scheduler.wait_log("Reloaded the TLS material", 1, 15), "the scheduler reloads on SIGHUP")
    t.check(srv.wait_log("Reloaded the TLS material", 2, 15), "the launcher passes SIGHUP on: both servers reload")
    seen = serials(tc, srv, peer_ports, tls)
    t.check(set(seen.values()) == {second}, "every port shows the new certificate to a new connection", seen)
    t.check(srv.count("Registered with the scheduler") == 2 and "disconnected" not in c.scheduler.log() and
            "Lost server" not in c.scheduler.log(), "the servers' links to the scheduler were not dropped",
            srv.count("Registered with the scheduler"))
    t.check(c.state() == "CLUSTER_READY", "the cluster stays READY", c.state())

    want = iteration(t, tc, 2, "after the reload")

    # ---- a broken reload keeps what is in force
    with open(tls.ca_key) as f, open(tls.node_key, "w") as g:
        g.write(f.read())
    os.kill(c.scheduler.pid, signal.SIGHUP)
    t.check(c.scheduler.wait_log("Reload failed", 1, 15) and
            "does not belong to the certificate" in c.scheduler.log(),
            "a reload with a key of another certificate is refused, saying why")
    t.check(tls_helpers.peer_serial(c.manage_port, tls.ca) == second, "the certificate in force stays")

    # ---- a certificate close to its end warns
    certs = tls_helpers.Certs(t)
    cert, key = certs.node("soon", tls.ca, tls.ca_key, days=20)
    for src, dst in ((cert, tls.node), (key, tls.node_key)):
        with open(src) as f, open(dst, "w") as g:
            g.write(f.read())
    os.kill(c.scheduler.pid, signal.SIGHUP)
    t.check(c.scheduler.wait_log(re.compile(r"The server certificate \(ssl\.server_cert_path, [^)]*\) expires in "
                                            r"(19|20) days, on .* \(warning from 30 days on\)"), 1, 15),
            "a certificate that ends in 20 days warns (cert_expire_warning_time_in_day=30)", c.scheduler.tail(5))
    t.check(tls_helpers.peer_serial(c.manage_port, tls.ca) == file_serial(cert), "and is served")

    # ---- a server that lost its database takes the model from its peer, over HTTPS
    ports, state_dir = srv.ports, srv.state_dir
    srv.stop()
    lost = glob.glob(os.path.join(state_dir, "server-%d.db*" % ports[1]))
    t.require(lost, "the second server's database is there to lose", os.listdir(state_dir))
    for f in lost:
        os.unlink(f)
    srv = c.start_server(local_server_num=2, port=ports[0], state_dir=state_dir, extra=tc.server_extra, timeout=30)
    t.check(srv.wait_log("Took the model of iteration 2 from peer rank", 1, 30) and
            "(https://127.0.0.1:%d/model)" % ports[0] in srv.log(),
            "the server without a database takes the model of iteration 2 from its peer over HTTPS", srv.tail(8))
    models = tc.models()
    t.check(all(st == 200 and fl_proto.compare_models(m, want) is None for st, _, m in models),
            "and serves it", [fl_proto.compare_models(m, want) for _, _, m in models])


harness.run_test("tls-reload", main, timeout=150)
