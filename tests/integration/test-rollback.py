#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A model a server aggregated but the scheduler then abandoned (another
server failed, the checksums disagreed) is rolled back: the server serves
the previous model again, drops the checkpoint, and restores the previous
model after a restart. Driven by a scripted scheduler speaking the wire
protocol, so that the abandonment comes exactly after AGGREGATE_DONE."""

import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402

REGISTER, REGISTER_REPLY, HEARTBEAT, MEMBERS = 1, 2, 3, 4
ADMIT, ADMIT_REPLY, UPDATE, UPDATE_REPLY = 8, 9, 10, 11
ITERATION, AGGREGATE, AGGREGATE_DONE = 12, 13, 14

INITIAL = [("w", [1.0, 2.0, 3.0, 4.0]), ("b", [0.5, -0.5])]
JOB = {"fl_name": "Lenet", "fl_iteration_num": 5, "start_fl_job_threshold": 1, "update_model_ratio": 1.0,
       "client_epoch_num": 1, "client_batch_size": 32, "client_learning_rate": 0.01,
       "start_fl_job_time_window": 600000, "update_model_time_window": 600000,
       "global_iteration_time_window": 600000}


class FakeScheduler(threading.Thread):
    """Accepts one server at a time and answers it like fl-schedulerd would,
    admitting and accepting everything; the test sends the rest."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(4)
        self.sock = None
        self.lock = threading.Lock()
        self.registered = threading.Event()
        self.done = []
        self.node_id = None
        self.peer_port = None
        self.data_size = {}

    def send(self, ftype, payload):
        with self.lock:
            self.sock.sendall(harness.wire_frame(ftype, payload))

    def iteration(self, number, phase="COLLECTING", abandoned=0):
        self.send(ITERATION, {"iteration": number, "phase": phase, "abandoned": abandoned,
                              "next_req_time": int(time.time() * 1000) + 1000, "job": JOB})

    def run(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.sock = conn
            self.serve(conn)

    def serve(self, conn):
        while True:
            f = harness.read_frame(conn, 3600)
            if f is None:
                self.registered.clear()
                return
            ftype, msg = f
            if ftype == REGISTER:
                self.node_id, self.peer_port = msg["node_id"], msg.get("peer_port")
                self.send(REGISTER_REPLY, {"ok": True, "rank": 0, "node_timeout": 30})
                self.send(MEMBERS, {"cluster_state": "CLUSTER_READY", "server_num": 1, "members": [
                    {"rank": 0, "node_id": self.node_id, "address": "127.0.0.1",
                     "fl_server_port": msg["fl_server_port"], "peer_port": self.peer_port, "alive": True}]})
                self.registered.set()
            elif ftype == HEARTBEAT:
                self.send(HEARTBEAT, {})
            elif ftype == ADMIT:
                self.data_size[msg["fl_id"]] = msg["data_size"]
                self.send(ADMIT_REPLY, {"req": msg["req"], "state": "ok", "retcode": 200, "reason": "",
                                        "iteration": 1, "next_req_time": 0})
            elif ftype == UPDATE:
                self.send(UPDATE_REPLY, {"req": msg["req"], "state": "ok", "retcode": 200, "reason": "",
                                         "iteration": 1, "next_req_time": 0,
                                         "data_size": self.data_size[msg["fl_id"]], "keep": True})
            elif ftype == AGGREGATE_DONE:
                self.done.append(msg)


def main(t):
    proto = fl_proto.Proto(t.tmp)
    model_path = os.path.join(t.tmp, "initial.fl")
    proto.write_model(model_path, INITIAL)
    sched_port, dev_port = harness.reserve_ports(1)[0], harness.reserve_ports(1)[0]
    fake = FakeScheduler(sched_port)
    fake.start()
    state_dir = os.path.join(t.tmp, "srv")
    argv = [harness.SERVERD, "--scheduler_ip=127.0.0.1", "--scheduler_port=%d" % sched_port,
            "--fl_server_port=%d" % dev_port, "--server_num=1", "--model_path=" + model_path,
            "--state_dir=" + state_dir, "--checkpoint_keep=1"]
    d = harness.Daemon(t, "fl-serverd", argv).start()
    url = "http://127.0.0.1:%d" % dev_port
    t.require(fake.registered.wait(15), "the server registers with the scripted scheduler", d.tail())
    fake.iteration(1)
    t.require(harness.wait_until(lambda: proto.start_fl_job(url, "Lenet", "dev", 4).retcode == 200, 10),
              "a device is admitted in iteration 1")
    upload = [(n, [fl_proto.f32(v * 4 + 1) for v in vals]) for n, vals in INITIAL]
    t.check(proto.update_model(url, "Lenet", "dev", 1, upload).retcode == 200, "its update is accepted")
    _, initial_raw, _ = proto.fetch_model(url)

    fake.send(AGGREGATE, {"iteration": 1, "ring": [{"rank": 0, "node_id": fake.node_id, "address": "127.0.0.1",
                                                    "peer_port": fake.peer_port}]})
    t.require(harness.wait_until(lambda: fake.done, 10), "the server aggregates and answers AGGREGATE_DONE")
    st, aggregated_raw, aggregated = proto.fetch_model(url)
    t.check(st == 200 and aggregated_raw != initial_raw, "it serves the aggregated model of iteration 1 meanwhile")
    t.check(proto.fetch_model(url, 1)[0] == 200, "and has checkpointed it")

    # The scheduler abandons iteration 1 after all (say, another server died in the all-reduce).
    fake.iteration(2, abandoned=1)
    t.check(harness.wait_until(lambda: proto.fetch_model(url)[1] == initial_raw, 10),
            "after the abandonment the server serves the initial model again, byte for byte")
    t.check(proto.fetch_model(url, 1)[0] == 404, "the checkpoint of the abandoned iteration is gone")
    r = proto.get_model(url, "Lenet", 1)
    t.check(r.retcode == 200 and r.msg.get("iteration") == 0, "getModel answers with the model of iteration 0", r)
    t.check(d.wait_log("back to the model of iteration 0", 1, 5), "the log says so", d.tail(5))

    # Restarted (checkpoint_keep=1 had pruned iteration 0: it was written again), it comes back with it.
    d.stop()
    d2 = harness.Daemon(t, "fl-serverd-2", argv).start()
    t.require(harness.wait_until(lambda: fake.registered.is_set(), 15), "the restarted server registers")
    fake.iteration(2)
    t.check(harness.wait_until(lambda: proto.fetch_model(url)[1] == initial_raw, 10),
            "after a restart it still serves the initial model", d2.tail(8))
    d2.stop()


harness.run_test("rollback", main, timeout=90)
