#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What a TLS cluster refuses, and that the refusal changes nothing.

A cluster (scheduler and 2 servers) runs with `flctl tls init`'s CA and a
CRL. Certificates made with certtool: one expired, one signed by another
CA, one revoked by the CRL, and none at all, each presented by a TLS client
to the scheduler port and to a peer port: each connection is closed without
an answer, with one journal line naming the address and the reason. A
rogue fl-serverd with a self-signed certificate (that trusts the cluster's
public CA) cannot register; fl-serverd and fl-schedulerd given an expired
or revoked certificate of their own refuse to start, saying why. Throughout,
the cluster keeps its 2 servers, its iteration and its model."""

import os
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import tls_helpers  # noqa: E402
from harness import WIRE_REGISTER, WIRE_REGISTER_REPLY, parse_frames, wire_frame  # noqa: E402

REGISTER = wire_frame(WIRE_REGISTER, {"node_id": "rogue-1", "role": "SERVER", "address": "127.0.0.1",
                                      "fl_server_port": 1, "pid": 1, "server_num": 2, "peer_port": 1})
HELLO = wire_frame(32, {"iteration": 1, "position": 1, "rank": 1, "node_id": "rogue-1", "n_ring": 2, "n": 10})
PEER_PORT_RE = re.compile(r"peers reach this server on (?:\S+ )?port (\d+) \(TLS\)")


def present(t, port, ca, cert, key, source, frame, what):
    """A TLS client with cert: the connection must end unanswered."""
    try:
        s = tls_helpers.tls_connect(port, ca, cert, key, source=source)
    except (OSError, ValueError) as e:
        t.check(True, "%s: refused during the handshake (%s)" % (what, type(e).__name__))
        return
    try:
        closed, data = tls_helpers.refused_after_tls(s, frame)
    finally:
        s.close()
    t.check(closed and not any(ft == WIRE_REGISTER_REPLY for ft, _ in parse_frames(data)),
            "%s: closed without an answer" % what, data[:200])


def main(t):
    tls = harness.tls_init(t, hosts="127.0.0.1")
    certs = tls_helpers.Certs(t)
    expired = certs.node("expired", tls.ca, tls.ca_key, activation="2020-01-01 00:00:00",
                         expiration="2020-12-31 00:00:00")
    rogue_ca = certs.ca("rogue-ca", cn="rogue CA")
    foreign = certs.node("foreign", *rogue_ca)
    revoked = certs.node("revoked", tls.ca, tls.ca_key)
    crl = certs.crl("crl", tls.ca, tls.ca_key, revoked[0])
    config = harness.write_config(t, "tls.json", {"enable_ssl": True, "ssl": tls.ssl(crl_path=crl)})

    model = os.path.join(t.tmp, "model.fl")
    p = subprocess.run([os.path.join(harness.BUILDDIR, "fl-client"), "init-model", "-o", model],
                       capture_output=True, text=True, timeout=30)
    t.require(p.returncode == 0, "fl-client init-model", p.stderr)

    c = harness.Cluster(t, server_num=2, node_timeout=10, config=config, cafile=tls.ca)
    c.start_scheduler(extra=["--start_fl_job_threshold=1000"])
    srv = c.start_server(local_server_num=2, extra=["--model_path=" + model], timeout=30)
    t.require(c.wait_ready(20), "the cluster with a CRL is CLUSTER_READY", c.state())
    before_nodes = harness.ranks_by_id(c.nodes())
    before_state = c.http("GET", "/state").json or {}
    before_model = harness.http("GET", "https://127.0.0.1:%d/model" % srv.ports[0], timeout=10, cafile=tls.ca)
    t.require(before_model.status == 200, "the servers serve their model over HTTPS", before_model)
    peer_ports = [int(p) for p in PEER_PORT_RE.findall(srv.log())]
    t.require(len(peer_ports) == 2, "both servers take peers on a TLS port", peer_ports)

    # ---- each bad certificate, on the scheduler port and on a peer port
    cases = [
        ("127.0.0.2", expired, "its certificate has expired"),
        ("127.0.0.3", foreign, "(its certificate is not signed by the cluster's CA|it presented no certificate "
                               "from the cluster's CA)"),
        ("127.0.0.4", revoked, r"its certificate is revoked by the CRL \(crl_path\)"),
        ("127.0.0.5", (None, None), r"it presented no certificate from the cluster's CA \(ca_cert_path\)"),
    ]
    for source, (cert, key), reason in cases:
        name = os.path.basename(cert) if cert else "no certificate"
        present(t, c.scheduler_port, tls.ca, cert, key, source, REGISTER, "scheduler port, %s" % name)
        present(t, peer_ports[1], tls.ca, cert, key, source, HELLO, "peer port, %s" % name)
    for source, (cert, _), reason in cases:
        name = os.path.basename(cert) if cert else "no certificate"
        line = re.compile(r"Refused a connection to the scheduler port from %s: %s" % (re.escape(source), reason))
        t.check(c.scheduler.wait_log(line, 1, 10), "the scheduler logs %s from %s with its reason" % (name, source),
                c.scheduler.tail(10))
        line = re.compile(r"Refused a connection to the peer port from %s: %s" % (re.escape(source), reason))
        t.check(srv.wait_log(line, 1, 10), "the server logs %s from %s on its peer port" % (name, source))

    # The same refusal again is counted, not logged again (once per address and reason).
    for _ in range(3):
        present(t, c.scheduler_port, tls.ca, expired[0], expired[1], "127.0.0.2", REGISTER, "scheduler port, again")
    t.check(harness.wait_until(lambda: c.scheduler.count("from 127.0.0.2: its certificate has expired") == 1, 2) and
            c.scheduler.count("from 127.0.0.2: its certificate has expired") == 1,
            "repeated refusals of one address for one reason make one line", c.scheduler.count("127.0.0.2"))

    # ---- a rogue fl-serverd: a self-signed certificate, the cluster's CA trusted
    selfsigned_key = certs.key("selfsigned")
    selfsigned = os.path.join(certs.dir, "selfsigned.pem")
    tmpl = certs._template("selfsigned", ['cn = "127.0.0.1"', 'ip_address = "127.0.0.1"', "tls_www_server",
                                          "tls_www_client", "signing_key", "expiration_days = 30"])
    certs._run("--generate-self-signed", "--load-privkey", selfsigned_key, "--template", tmpl,
               "--outfile", selfsigned)
    trust = certs.bundle("rogue-trust", tls.ca, selfsigned)
    rogue_config = harness.write_config(t, "rogue.json", {"enable_ssl": True, "ssl": {
        "server_cert_path": selfsigned, "server_key_path": selfsigned_key, "ca_cert_path": trust}})
    argv = c.server_argv(harness.reserve_ports(1)[0], node_id="rogue-1",
                         state_dir=os.path.join(t.tmp, "rogue"))
    argv = [a for a in argv if not a.startswith("--config_file_path=")] + ["--config_file_path=" + rogue_config]
    rogue = harness.Daemon(t, "rogue-fl-serverd", argv, env=c.env()).start()
    t.check(rogue.wait_log("Could not join the scheduler", 1, 15),
            "the rogue fl-serverd cannot join: its certificate is refused", rogue.tail(5))
    t.check(harness.SERVER_STARTED not in rogue.log() and rogue.running(),
            "it never registers (and keeps trying, harmlessly)", rogue.tail(5))
    # (GnuTLS offers no certificate the cluster's CA did not sign: the scheduler sees none.)
    t.check(c.scheduler.wait_log(re.compile(r"Refused a connection to the scheduler port from 127\.0\.0\.1: "
                                            r"(its certificate is not signed by the cluster's CA|it presented no "
                                            r"certificate from the cluster's CA)"), 1, 10),
            "the scheduler logs the rogue server's refusal")
    rogue.stop()

    # ---- a daemon with an expired or revoked certificate of its own does not serve it
    for name, (cert, key), cfg_more, word in (("expired", expired, {}, "has expired"),
                                               ("revoked", revoked, {"crl_path": crl}, "is revoked by the CRL")):
        what = word
        bad = harness.write_config(t, name + ".json", {"enable_ssl": True, "ssl": dict(
            {"server_cert_path": cert, "server_key_path": key, "ca_cert_path": tls.ca}, **cfg_more)})
        argv = [a for a in c.server_argv(harness.reserve_ports(1)[0], state_dir=os.path.join(t.tmp, "bad-" + name))
                if not a.startswith("--config_file_path=")] + ["--config_file_path=" + bad]
        d = harness.Daemon(t, "fl-serverd-" + name, argv, env=c.env()).start()
        rc = d.wait(15)
        t.check(rc == 1 and word in d.log() and "ssl.server_cert_path" in d.log(),
                "fl-serverd with a certificate that %s refuses to start, naming the key and the reason" % what,
                (rc, d.tail(3)))
    sched2 = harness.Cluster(t, server_num=1, bus=False, name="sched-expired")
    sched2.scheduler_port, sched2.manage_port = harness.reserve_ports(1)[0], harness.reserve_ports(1)[0]
    bad = harness.write_config(t, "sched-expired.json", {"enable_ssl": True, "ssl": {
        "server_cert_path": expired[0], "server_key_path": expired[1], "ca_cert_path": tls.ca}})
    d = harness.Daemon(t, "fl-schedulerd-expired", sched2.scheduler_argv(["--config_file_path=" + bad]),
                       env=sched2.env()).start()
    rc = d.wait(15)
    t.check(rc == 1 and "has expired" in d.log(), "fl-schedulerd with an expired certificate refuses to start",
            (rc, d.tail(3)))

    # ---- nothing of the cluster changed
    after_state = c.http("GET", "/state").json or {}
    t.check(harness.ranks_by_id(c.nodes()) == before_nodes, "the cluster still has its 2 servers, same ranks",
            c.nodes())
    t.check(after_state.get("cluster_state") == "CLUSTER_READY" and
            after_state.get("iteration") == before_state.get("iteration") and
            after_state.get("admitted") == 0, "cluster state, iteration and admissions are unchanged", after_state)
    models = [harness.http("GET", "https://127.0.0.1:%d/model" % p, timeout=10, cafile=tls.ca) for p in srv.ports]
    t.check(all(m.status == 200 and m.raw == before_model.raw for m in models),
            "both servers still serve the model they had", [m.status for m in models])


harness.run_test("tls-refusals", main, timeout=180)
