#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""No device is left hanging when the scheduler does not answer: a server
asks the scheduler about every startFLJob and updateModel; a scheduler that
is stopped (SIGSTOP) gets the device a SystemError at the deadline, one that
dies (SIGKILL) while devices wait gets them `The cluster is in safemode.`
at once, and the rounds reopen when a scheduler is back."""

import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402

SAFEMODE = fl_proto.SAFEMODE_TEXT
DEADLINE_S = 10

MODEL = [("w", [1.0, 2.0, 3.0]), ("b", [0.5])]


class Call(threading.Thread):
    """One device request in the background, timed."""

    def __init__(self, proto, url, round_name, body):
        super().__init__(daemon=True)
        self.proto, self.url, self.round, self.body = proto, url, round_name, body
        self.result, self.seconds = None, None

    def run(self):
        started = time.monotonic()
        self.result = self.proto.call(self.url, self.round, self.body, timeout=DEADLINE_S + 20)
        self.seconds = time.monotonic() - started


def status(url):
    r = harness.http("GET", url + "/")
    return r.json if isinstance(r.json, dict) else {}


def main(t):
    fl = fl_proto.Proto(t.tmp)
    model_path = os.path.join(t.tmp, "model.fl")
    fl.write_model(model_path, MODEL)

    # node_timeout well above the deadline: the link must not drop by itself meanwhile.
    c = harness.Cluster(t, server_num=1, node_timeout=60)
    c.start_scheduler(extra=["--start_fl_job_threshold=5"])
    s = c.start_server(extra=["--model_path=" + model_path])
    url = "http://127.0.0.1:%d" % s.port
    t.require(c.wait_ready(20), "the cluster is READY")
    t.require(harness.wait_until(lambda: status(url).get("phase") == "COLLECTING", 10), "iteration 1 is open")

    # A stopped scheduler: the device gets SystemError at the deadline.
    c.scheduler.signal_group(signal.SIGSTOP)
    call = Call(fl, url, "startFLJob", fl.request_fl_job("Lenet", "dev-1", data_size=10))
    call.start()
    t.check(harness.wait_until(lambda: status(url).get("waiting") == 1, 5), "the request waits for the scheduler",
            status(url))
    call.join(DEADLINE_S + 15)
    r = call.result
    t.check(r is not None and r.retcode == 500 and not r.msg.get("is_selected"), "no verdict in time: SystemError",
            r)
    t.check(call.seconds is not None and DEADLINE_S - 1 <= call.seconds <= DEADLINE_S + 5,
            "answered at the deadline (%.1fs)" % (call.seconds or -1))

    # The scheduler dies while devices wait: safemode for them, at once.
    calls = [Call(fl, url, "startFLJob", fl.request_fl_job("Lenet", "dev-%d" % i, data_size=10)) for i in range(3)]
    calls.append(Call(fl, url, "updateModel", fl.request_update_model("Lenet", "dev-9", 1, MODEL)))
    for x in calls:
        x.start()
    t.check(harness.wait_until(lambda: status(url).get("waiting") == 4, 5), "four requests wait", status(url))
    c.scheduler.signal_group(signal.SIGKILL)
    for x in calls:
        x.join(10)
    t.check(all(x.result is not None and x.result.status == 200 and x.result.text == SAFEMODE for x in calls),
            "every waiting device is answered safemode", [x.result for x in calls])
    t.check(all(x.seconds is not None and x.seconds < 5 for x in calls), "without waiting for the deadline",
            [x.seconds for x in calls])
    t.check(status(url).get("waiting") == 0, "nothing waits any more", status(url))

    r = fl.start_fl_job(url, "Lenet", "dev-5", 10)
    t.check(r.status == 200 and r.text == SAFEMODE, "without a scheduler the rounds answer safemode", r)

    # A scheduler again: the rounds reopen.
    c.scheduler.wait(5)
    c.restart_scheduler()
    t.require(harness.wait_until(lambda: status(url).get("phase") == "COLLECTING" and
                                 status(url).get("cluster_state") == "CLUSTER_READY", 20),
              "the server is back in iteration 1", status(url))
    r = fl.start_fl_job(url, "Lenet", "dev-5", 10)
    t.check(r.retcode == 200 and r.msg.get("is_selected"), "devices are selected again", r)


harness.run_test("rounds-link", main, timeout=120)
