#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real Prometheus (Debian's) scrapes a training cluster every second: the
scheduler's GET /metrics on the management port and each server's on its
metrics_port. fl-client trains a short job meanwhile; the test then asks
Prometheus's HTTP API and finds the completed-iterations counter rising to
the job's length, the node count right (two serving servers, both targets
up) and the servers' accepted updateModel requests summing to what was
trained. promtool check metrics finds nothing to complain about on any
endpoint, and the device port itself serves no /metrics."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SERVERS = 2
ITERATIONS = 5
DEVICES = 40                    # 1500 images each; 4 of them train per iteration
PER_ITERATION = 4
DATA = os.environ.get("FL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FL_CLIENT = os.path.join(harness.BUILDDIR, "fl-client")
JOB = ["--fl_iteration_num=%d" % ITERATIONS, "--start_fl_job_threshold=%d" % PER_ITERATION,
       "--client_epoch_num=1", "--client_batch_size=32", "--client_learning_rate=0.01",
       "--start_fl_job_time_window=60000", "--update_model_time_window=60000"]


def query(base, expr):
    """The instant vector of expr as [(labels, value)], or None."""
    r = harness.http("GET", base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if r.status != 200 or not isinstance(r.json, dict) or r.json.get("status") != "success":
        return None
    return [(s["metric"], float(s["value"][1])) for s in r.json["data"]["result"]]


def scalar(base, expr):
    v = query(base, expr)
    return v[0][1] if v and len(v) == 1 else None


def promtool_check(t, text, what):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, timeout=30)
    t.check(p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
            "promtool check metrics is clean on %s" % what,
            (p.returncode, p.stdout.decode()[:800], p.stderr.decode()[:800]))


def main(t):
    for tool in ("prometheus", "promtool"):
        if not shutil.which(tool):
            raise harness.Skip("%s is not installed (apt install prometheus)" % tool)
    if not os.path.exists(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")):
        raise harness.Skip("Fashion-MNIST is not in %s (apt install dataset-fashion-mnist)" % DATA)

    model = os.path.join(t.tmp, "lenet5.fl")
    subprocess.run([FL_CLIENT, "init-model", "--seed", "1", "-o", model], check=True, capture_output=True)
    metrics_ports = harness.reserve_ports(SERVERS)
    prom_port = harness.reserve_ports(1)[0]
    c = harness.Cluster(t, server_num=SERVERS, node_timeout=10)
    c.start_scheduler(extra=JOB)
    srv = c.start_server(local_server_num=SERVERS, timeout=30,
                         extra=["--model_path=" + model, "--metrics_port=%d" % metrics_ports[0]])
    t.require(c.wait_ready(20), "cluster becomes CLUSTER_READY", c.state())
    server_metrics = ["http://127.0.0.1:%d/metrics" % p for p in metrics_ports]
    for url in server_metrics:
        r = harness.http("GET", url)
        t.require(r.status == 200 and "version=0.0.4" in (r.content_type or ""),
                  "%s answers in the text format 0.0.4" % url, r)
    r = harness.http("GET", "http://127.0.0.1:%d/metrics" % srv.ports[0])
    t.check(r.status == 404, "the device port serves no /metrics (it stays the protocol's)", r)

    config = os.path.join(t.tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n"
                "  - job_name: fl-schedulerd\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                "  - job_name: fl-serverd\n    static_configs:\n      - targets: [%s]\n"
                % (c.manage_port, ", ".join("'127.0.0.1:%d'" % p for p in metrics_ports)))
    prom = harness.Daemon(t, "prometheus", ["prometheus", "--config.file=" + config,
                                            "--storage.tsdb.path=" + os.path.join(t.tmp, "prometheus-data"),
                                            "--web.listen-address=127.0.0.1:%d" % prom_port,
                                            "--log.level=warn"], env=harness._clean_env()).start()
    base = "http://127.0.0.1:%d" % prom_port
    t.require(harness.wait_until(lambda: harness.http("GET", base + "/-/ready").status == 200 or not prom.running(),
                                 60) and prom.running(), "Prometheus is ready", prom.tail())

    def targets_up():
        r = harness.http("GET", base + "/api/v1/targets")
        active = (r.json or {}).get("data", {}).get("activeTargets", []) if r.status == 200 else []
        return len(active) == 1 + SERVERS and all(x.get("health") == "up" for x in active)
    t.require(harness.wait_until(targets_up, 60, 0.5), "Prometheus scrapes the scheduler and both servers",
              harness.http("GET", base + "/api/v1/targets"))

    start = time.time()
    urls = ",".join("http://127.0.0.1:%d" % p for p in srv.ports)
    p = subprocess.run([FL_CLIENT, "train", "--servers", urls, "--devices", str(DEVICES), "--data", DATA,
                        "--seed", "2", "--threads", "2", "--timeout", "60"], capture_output=True, text=True,
                       timeout=240, env=harness._clean_env())
    t.require(p.returncode == 0, "fl-client trains the job's %d iterations" % ITERATIONS, p.stderr[-2000:])
    completed = 'flcluster_iterations_total{result="completed"}'
    t.require(harness.wait_until(lambda: scalar(base, completed) == ITERATIONS, 30, 0.5),
              "Prometheus has seen all %d iterations completed" % ITERATIONS, query(base, completed))
    time.sleep(2.5)     # that sample is then inside the last step of the range queries below

    r = harness.http("GET", base + "/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": 'max(flcluster_iteration{job="fl-schedulerd"})', "start": "%.3f" % (start - 1),
         "end": "%.3f" % time.time(), "step": "1"}))
    series = r.json["data"]["result"] if r.status == 200 and r.json.get("status") == "success" else []
    values = [float(v) for _, v in series[0]["values"]] if series else []
    t.note("the iteration as Prometheus saw it, each second: %s" % values)
    t.check(len(values) >= 3 and values == sorted(values) and values[-1] > values[0] and len(set(values)) >= 3,
            "the iteration rises in Prometheus's samples while the job trains", values)

    r = harness.http("GET", base + "/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": completed, "start": "%.3f" % (start - 1), "end": "%.3f" % time.time(), "step": "1"}))
    series = r.json["data"]["result"] if r.status == 200 and r.json.get("status") == "success" else []
    counts = [float(v) for _, v in series[0]["values"]] if series else []
    t.check(counts and counts == sorted(counts) and counts[-1] == ITERATIONS and len(set(counts)) >= 2,
            "the completed-iterations counter rises to %d" % ITERATIONS, counts)

    t.check(scalar(base, 'sum(flcluster_nodes{state="serving"})') == SERVERS and
            scalar(base, 'sum(flcluster_nodes{state="dead"})') == 0,
            "the node count is right: %d serving, none dead" % SERVERS, query(base, "flcluster_nodes"))
    t.check(scalar(base, "flcluster_server_num") == SERVERS, "server_num is %d" % SERVERS)
    t.check(scalar(base, 'count(up{job="fl-serverd"} == 1)') == SERVERS, "both server targets are up")
    want = ITERATIONS * PER_ITERATION
    accepted = 'sum(flcluster_device_requests_total{round="updateModel",retcode="SUCCEED"})'
    t.check(harness.wait_until(lambda: scalar(base, accepted) == want, 15, 0.5),
            "the servers' accepted updateModel requests sum to %d" % want, query(base, accepted))
    t.check((scalar(base, 'sum(flcluster_allreduces_total{result="completed"})') or 0) >= ITERATIONS * SERVERS,
            "every server took part in every all-reduce", query(base, "flcluster_allreduces_total"))
    loss = scalar(base, "flcluster_device_loss")
    t.check(loss is not None and loss > 0, "the devices' pushed loss reaches the scheduler's metrics", loss)

    promtool_check(t, harness.http("GET", c.base_url + "/metrics").raw, "the scheduler's /metrics")
    for url in server_metrics:
        promtool_check(t, harness.http("GET", url).raw, url)


harness.run_test("prometheus", main, timeout=300)
