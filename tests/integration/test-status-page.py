#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The status page in a real browser: headless Chromium (Debian's, driven
over the DevTools protocol, cdp.py) loads GET / of a scheduler whose two
servers fl-client trains through, and the test reads the page's DOM while
the job runs: a row per server in the node table, the iteration number
rising, the cluster state; once the job is over, one point per iteration in
the accuracy, loss and duration charts, with the values of GET /iterations
(the devices' pushMetrics). A screenshot is kept in the build directory
(test-artifacts/status-page.png).

Then with tokens (management_token_file): the page's own files are served
without one, the JSON endpoints and /metrics are not (401); the page says
it wants a token, and once a reader token is typed into its field it shows
the cluster, and still does after a reload (the token is in the tab's
sessionStorage); a wrong token is turned away (401) on the page too."""

import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import cdp  # noqa: E402

SERVERS = 2
ITERATIONS = 6
DEVICES = 20                    # 3000 images each; 4 of them train per iteration
DATA = os.environ.get("FL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FL_CLIENT = os.path.join(harness.BUILDDIR, "fl-client")
SRCDIR = os.environ.get("FL_SRCDIR", os.path.join(harness.HERE, "..", ".."))
STATUS_DIR = os.path.join(SRCDIR, "data", "status")
ARTIFACTS = os.path.join(harness.BUILDDIR, "test-artifacts")
JOB = ["--fl_iteration_num=%d" % ITERATIONS, "--start_fl_job_threshold=4", "--client_epoch_num=1",
       "--client_batch_size=32", "--client_learning_rate=0.01", "--start_fl_job_time_window=60000",
       "--update_model_time_window=60000", "--status_page_dir=" + STATUS_DIR]

# What the test reads from the page, in one evaluation.
PROBE = """(() => {
  const q = (s) => Array.from(document.querySelectorAll(s));
  const pts = (id) => q('#' + id + ' circle.point').map((c) => ({
      iteration: Number(c.getAttribute('data-iteration')), value: Number(c.getAttribute('data-value')),
      fail: c.classList.contains('fail') }));
  // Before the page (not about:blank any more) is parsed, nothing is there yet.
  const text = (id) => { const e = document.getElementById(id); return e ? e.textContent : ''; };
  const err = document.getElementById('error');
  return JSON.stringify({
    state: text('cluster-state'),
    iteration: text('iteration-number'),
    total: text('iteration-total'),
    rows: q('#nodes tbody tr').map((tr) => Array.from(tr.cells).map((td) => td.textContent)),
    accuracy: pts('chart-accuracy'), loss: pts('chart-loss'), duration: pts('chart-duration'),
    history: q('#history tbody tr').length,
    error: !err || err.hidden ? '' : err.textContent,
    updated: text('last-update'),
  });
})()"""


def probe(browser):
    return json.loads(browser.evaluate(PROBE))


def token_create(t, role, path):
    p = subprocess.run([harness.FLCTL, "token", "create", "--role", role, "--into", path], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    t.require(p.returncode == 0 and p.stdout.strip(), "flctl token create --role %s" % role, p.stderr)
    return p.stdout.strip()


def use_token(browser, token):
    browser.evaluate("document.getElementById('token').value = %s; "
                     "document.getElementById('token-form').requestSubmit(); true" % json.dumps(token))


def with_tokens(t, browser):
    tokens = os.path.join(t.tmp, "tokens")
    reader = token_create(t, "reader", tokens)
    c = harness.Cluster(t, server_num=1, node_timeout=10, name="sched-tokens")
    c.token = reader
    c.start_scheduler(extra=["--status_page_dir=" + STATUS_DIR, "--management_token_file=" + tokens])
    c.start_server(timeout=30)
    t.require(c.wait_ready(20), "a cluster with tokens becomes CLUSTER_READY", c.state())
    for path in ("/", "/status.js", "/status.css"):
        r = harness.http("GET", c.base_url + path)
        t.check(r.status == 200, "with tokens, GET %s needs none (the page must load to ask)" % path, r)
    for path in ("/metrics", "/iterations", "/iteration", "/state"):
        r = harness.http("GET", c.base_url + path)
        t.check(r.status == 401, "with tokens, GET %s without one: 401" % path, r)
        r = harness.http("GET", c.base_url + path, headers={"Authorization": "Bearer " + reader})
        t.check(r.status == 200, "with tokens, GET %s with a reader token: 200" % path, r)

    browser.navigate(c.base_url + "/?interval=300")
    t.check(harness.wait_until(lambda: "token" in probe(browser)["error"], 30, 0.2),
            "without a token the page says it wants one", probe(browser))
    use_token(browser, reader)
    t.check(harness.wait_until(lambda: probe(browser)["state"] == "CLUSTER_READY" and not probe(browser)["error"]
                               and len(probe(browser)["rows"]) == 1, 30, 0.2),
            "with the reader token typed in, the page shows the cluster and its server", probe(browser))
    t.check(browser.evaluate("sessionStorage.getItem('flcluster-token')") == reader,
            "the token is kept in the tab's sessionStorage")
    browser.navigate(c.base_url + "/?interval=300")
    t.check(harness.wait_until(lambda: probe(browser)["state"] == "CLUSTER_READY" and not probe(browser)["error"],
                               30, 0.2), "after a reload the page still has the token", probe(browser))
    use_token(browser, "flc_" + "0" * 43)
    t.check(harness.wait_until(lambda: "401" in probe(browser)["error"], 30, 0.2),
            "a wrong token: the page shows the 401", probe(browser))


def main(t):
    chromium = cdp.find_chromium()
    if not chromium:
        raise harness.Skip("chromium is not installed (apt install chromium)")
    if not os.path.exists(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")):
        raise harness.Skip("Fashion-MNIST is not in %s (apt install dataset-fashion-mnist)" % DATA)
    t.require(os.path.exists(os.path.join(STATUS_DIR, "index.html")), "the status page's files are in the tree",
              STATUS_DIR)

    model = os.path.join(t.tmp, "lenet5.fl")
    subprocess.run([FL_CLIENT, "init-model", "--seed", "1", "-o", model], check=True, capture_output=True)
    c = harness.Cluster(t, server_num=SERVERS, node_timeout=10)
    c.start_scheduler(extra=JOB)
    srv = c.start_server(local_server_num=SERVERS, extra=["--model_path=" + model], timeout=30)
    t.require(c.wait_ready(20), "cluster becomes CLUSTER_READY", c.state())
    node_ids = sorted(n["node_id"] for n in c.nodes())

    # The page as it is served: three files, no reference to anything elsewhere.
    page = c.http("GET", "/")
    t.check(page.status == 200 and "text/html" in (page.content_type or ""), "GET / serves the page as HTML",
            (page.status, page.content_type))
    html = page.raw.decode("utf-8", "replace")
    t.check("status.js" in html and "status.css" in html and "http://" not in html.replace("http://www.w3.org", "")
            and "https://" not in html, "the page loads only its own script and style", html[:300])
    for path, ctype in (("/status.js", "javascript"), ("/status.css", "text/css")):
        r = c.http("GET", path)
        t.check(r.status == 200 and ctype in (r.content_type or ""), "GET %s is served (%s)" % (path, ctype),
                (r.status, r.content_type))

    browser = cdp.Browser(t, chromium)
    browser.navigate(c.base_url + "/?interval=300")
    t.require(harness.wait_until(lambda: probe(browser)["state"] == "CLUSTER_READY", 30, 0.2),
              "the page shows the cluster state CLUSTER_READY", probe(browser))
    seen = probe(browser)
    t.check(len(seen["rows"]) == SERVERS, "the node table has a row per server (%d)" % SERVERS, seen["rows"])
    t.check(sorted(r[1] for r in seen["rows"]) == node_ids and sorted(r[0] for r in seen["rows"]) == ["0", "1"],
            "the rows show the servers' node ids and ranks", seen["rows"])
    t.check(all(r[3] == "yes" for r in seen["rows"]), "both servers are shown alive", seen["rows"])
    t.check(seen["total"] == str(ITERATIONS), "the page shows the job's %d iterations" % ITERATIONS, seen)

    # Training in the background; the page is read while it runs.
    urls = ",".join("http://127.0.0.1:%d" % p for p in srv.ports)
    client = harness.Daemon(t, "fl-client", [FL_CLIENT, "train", "--servers", urls, "--devices", str(DEVICES),
                                             "--data", DATA, "--seed", "3", "--threads", "2", "--timeout", "60"],
                            env=harness._clean_env()).start()
    iterations = []
    deadline = time.monotonic() + 150
    while client.running() and time.monotonic() < deadline:
        p = probe(browser)
        if p["iteration"].isdigit() and (not iterations or int(p["iteration"]) != iterations[-1]):
            iterations.append(int(p["iteration"]))
        time.sleep(0.1)
    t.require(client.wait(5) == 0, "fl-client trains the job's %d iterations" % ITERATIONS, client.tail())
    t.note("iteration numbers the page showed while training: %s" % iterations)
    t.check(len(iterations) >= 2 and iterations == sorted(iterations) and iterations[-1] > iterations[0],
            "the iteration number on the page rises while the job trains", iterations)

    # Once the job is over: a point per iteration, the values of /iterations.
    history = c.http("GET", "/iterations").json["iterations"]
    t.require(len(history) == ITERATIONS, "GET /iterations has a line per iteration", history)
    want_acc = [(e["currentIteration"], e["metricsAuc"]) for e in history]
    want_loss = [(e["currentIteration"], e["metricsLoss"]) for e in history]

    def charts_complete():
        p = probe(browser)
        return len(p["accuracy"]) == ITERATIONS and len(p["duration"]) == ITERATIONS and p["history"] > 0
    t.check(harness.wait_until(charts_complete, 30, 0.2), "the charts reach a point per iteration",
            probe(browser))
    p = probe(browser)
    got_acc = [(x["iteration"], x["value"]) for x in p["accuracy"]]
    got_loss = [(x["iteration"], x["value"]) for x in p["loss"]]
    t.check([i for i, _ in got_acc] == list(range(1, ITERATIONS + 1)), "accuracy points for iterations 1..%d"
            % ITERATIONS, got_acc)
    t.check(all(abs(g[1] - w[1]) < 1e-9 for g, w in zip(got_acc, want_acc)) and len(got_acc) == len(want_acc),
            "the accuracy points are the devices' mean pushMetrics accuracy per iteration", (got_acc, want_acc))
    t.check(all(abs(g[1] - w[1]) < 1e-9 for g, w in zip(got_loss, want_loss)) and len(got_loss) == len(want_loss),
            "the loss points are the devices' mean pushMetrics loss per iteration", (got_loss, want_loss))
    t.check(all(0 < v < 1 for _, v in got_acc) and got_acc[-1][1] > got_acc[0][1],
            "the accuracy curve is sane and rises", got_acc)
    t.check(all(x["value"] > 0 and not x["fail"] for x in p["duration"]),
            "every round has a duration, none abandoned", p["duration"])
    t.check(p["error"] == "", "the page shows no error", p["error"])

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "status-page.png")
    data = browser.screenshot(shot, 1280, 1000)
    t.check(data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000, "a screenshot of the page is kept in %s" % shot,
            len(data))

    with_tokens(t, browser)


harness.run_test("status-page", main, timeout=240)
