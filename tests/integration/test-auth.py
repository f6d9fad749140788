#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Operators authenticate on the REST port (management_token_file).

A scheduler with two servers (a model on each) and a token file made by
`flctl token create`: one operator token, one reader token.

- Every changing call (POST /finish, /scaleout, /scalein, /newInstance,
  /enableFLS, /disableFLS) without a token, with a malformed header or an
  unknown token is 401 with WWW-Authenticate: Bearer; with the reader's
  token 403. Afterwards the cluster state, the nodes, the job and each
  server's model read back exactly as before, and both servers still run.
  The log names each refused call and the peer address; a flood of
  refusals adds a bounded number of lines.
- Reads need a token: 401 without, 200 with the reader's or the
  operator's; GET /state says "auth": true.
- flctl --url with --token-file, and with $FLCTL_TOKEN_FILE, scales in and
  sets an instance; without a token, or with the reader's, it exits 1 with
  a message saying why and nothing changes. flctl over D-Bus needs no token.
- SIGHUP re-reads the file: a token added works, a token removed stops
  working, and a file made invalid keeps the tokens read before.
- A token file that is missing stops the scheduler from starting."""

import os
import re
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402

JOB = {"fl_iteration_num": 5, "start_fl_job_threshold": 2, "start_fl_job_time_window": 300000,
       "update_model_time_window": 300000}
INITIAL = [("fc.weight", [0.5 * i for i in range(6)]), ("fc.bias", [1.0, -1.0])]
REFUSED_RE = re.compile(r"Refused REST call (\S+) (\S+) from 127\.0\.0\.1:\d+: ([^(]*) \(HTTP (\d+)\)")


def token_create(t, role, path):
    p = subprocess.run([harness.FLCTL, "token", "create", "--role", role, "--into", path], capture_output=True,
                       text=True, timeout=20, stdin=subprocess.DEVNULL)
    lines = p.stdout.splitlines()
    t.require(p.returncode == 0 and len(lines) == 1 and lines[0].startswith("flc_"),
              "flctl token create --role %s prints one token" % role, (p.returncode, p.stdout, p.stderr))
    return lines[0]


def write_token(t, name, token):
    path = os.path.join(t.tmp, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, (token + "\n").encode())
    os.close(fd)
    return path


def call(c, method, path, body=None, token=None, authorization=None):
    headers = {}
    if token:
        headers["Authorization"] = "Bearer " + token
    if authorization:
        headers["Authorization"] = authorization
    return harness.http(method, c.base_url + path, body, headers=headers)


def snapshot(c, tc, reader):
    """What must not change: state, nodes, job, models."""
    def get(path):
        r = call(c, "GET", path, token=reader)
        return r.json if isinstance(r.json, dict) else {"status": r.status}
    state = {k: v for k, v in get("/state").items() if k != "message"}
    nodes = sorted((n.get("node_id"), n.get("rank_id"), n.get("alive"), n.get("leaving"))
                   for n in get("/nodes").get("node_ids") or [])
    job = get("/queryInstance").get("result")
    models = [raw for _, raw, _ in tc.models()]
    return {"state": state, "nodes": nodes, "job": job, "models": models}


def main(t):
    proto = fl_proto.Proto(t.tmp)
    tokens = os.path.join(t.tmp, "tokens")
    operator = token_create(t, "operator", tokens)
    reader = token_create(t, "reader", tokens)
    with open(tokens) as f:
        text = f.read()
    t.check(operator not in text and reader not in text and text.count("sha256:") == 2,
            "the token file holds two hashes, not the tokens", text)
    op_file, rd_file = write_token(t, "operator.token", operator), write_token(t, "reader.token", reader)

    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, start=False)
    c = tc.c
    c.start_scheduler(extra=fl_proto.job_argv(JOB) + ["--management_token_file=" + tokens])
    c.token = reader
    tc.start_servers()
    t.require(c.wait_ready(20), "the cluster with tokens is READY (read with the reader's token)", c.state())
    t.require(tc.wait_iteration(1, timeout=20), "iteration 1 runs")
    r = proto.get_model(tc.urls[0], "Lenet", 0)
    t.check(r.retcode == 200, "devices need no token (getModel)", r)

    # ---- reads
    for path in ("/state", "/nodes", "/queryInstance"):
        r = call(c, "GET", path)
        t.check(r.status == 401 and r.headers.get("WWW-Authenticate", "").startswith("Bearer"),
                "GET %s without a token: 401 with WWW-Authenticate: Bearer" % path, r)
        for who, tok in (("reader", reader), ("operator", operator)):
            r = call(c, "GET", path, token=tok)
            t.check(r.status == 200 and isinstance(r.json, dict) and r.json.get("code") == "0",
                    "GET %s with the %s's token: 200" % (path, who), r)
    r = call(c, "GET", "/state", token=reader)
    t.check(isinstance(r.json, dict) and r.json.get("auth") is True, "GET /state says \"auth\": true", r)

    # ---- every changing call, refused
    before = snapshot(c, tc, reader)
    t.check(len(before["nodes"]) == 2 and len(before["models"]) == 2 and before["job"],
            "the state, nodes, job and models are read", before)
    node0 = before["nodes"][0][0]
    calls = [("/finish", None), ("/scaleout", {"worker_num": 0, "server_num": 1}),
             ("/scalein", {"node_ids": [node0]}), ("/newInstance", {"fl_iteration_num": 7}),
             ("/disableFLS", None), ("/enableFLS", None)]
    # The scheduler logs 20 refusals per 10 s: these 14 and the 4 above fit.
    n_refused = len(REFUSED_RE.findall(c.scheduler.log()))
    r = call(c, "POST", "/finish", authorization="Basic b3BlcmF0b3I6c2VjcmV0")
    t.check(r.status == 401, "POST /finish with a Basic header: 401", r)
    r = call(c, "POST", "/finish", token="flc_" + "0" * 64)
    t.check(r.status == 401 and "invalid_token" in r.headers.get("WWW-Authenticate", ""),
            "POST /finish with an unknown token: 401 (invalid_token)", r)
    for path, body in calls:
        r = call(c, "POST", path, body)
        t.check(r.status == 401 and r.headers.get("WWW-Authenticate", "").startswith("Bearer") and
                isinstance(r.json, dict) and r.json.get("code") == "1" and r.json.get("error_message"),
                "POST %s without a token: 401, WWW-Authenticate: Bearer, an error_message" % path, r)
        r = call(c, "POST", path, body, token=reader)
        t.check(r.status == 403 and isinstance(r.json, dict) and "operator" in (r.json.get("error_message") or ""),
                "POST %s with the reader's token: 403, saying an operator's is needed" % path, r)
    after = snapshot(c, tc, reader)
    for key in ("state", "nodes", "job"):
        t.check(after[key] == before[key], "the %s reads back unchanged" % key, (before[key], after[key]))
    t.check(after["models"] == before["models"], "both servers' models are byte-identical to before")
    t.check(c.scheduler.running() and all(d.running() for d in tc.daemons), "the scheduler and both servers run")

    found = REFUSED_RE.findall(c.scheduler.log())
    t.check(len(found) - n_refused == 2 + 2 * len(calls),
            "the log has one line per refused call (%d)" % (2 + 2 * len(calls)), found[n_refused:])
    t.check(("POST", "/finish", "no token", "401") in found and
            ("POST", "/scalein", "a reader token on a call that changes the cluster", "403") in found,
            "each line names the call, the peer address, why and the status", found[-8:])

    # ---- a flood is rate-limited
    start, n0 = time.monotonic(), len(REFUSED_RE.findall(c.scheduler.log()))
    statuses = [call(c, "GET", "/state").status for _ in range(200)]
    elapsed = time.monotonic() - start
    t.check(statuses == [401] * 200, "a flood of 200 requests without a token: each is a 401", set(statuses))
    time.sleep(0.5)
    added = len(REFUSED_RE.findall(c.scheduler.log())) - n0
    bound = 20 * (int(elapsed / 10) + 2)
    t.check(added <= bound, "200 refused requests in %.1fs add %d log lines (at most %d)" % (elapsed, added, bound))

    # ---- flctl
    env_none = {"FLCTL_TOKEN_FILE": ""}
    rc, out, err = c.flctl("scalein", node0, url=True, env=env_none)
    t.check(rc == 1 and "401" not in out and "--token-file" in err, "flctl scalein without a token: exit 1, "
            "the scheduler's refusal and how to give a token", (rc, out, err))
    rc, out, err = c.flctl("--token-file", rd_file, "scalein", node0, url=True, env=env_none)
    t.check(rc == 1 and "operator" in err, "flctl scalein with the reader's token: exit 1, needs an operator",
            (rc, out, err))
    rc, out, err = c.flctl("--token-file", os.path.join(t.tmp, "missing.token"), "state", url=True, env=env_none)
    t.check(rc == 1 and "missing.token" in err, "flctl with a missing token file: exit 1 naming it", (rc, out, err))
    rc, out, err = c.flctl("state", url=True, env=env_none)
    t.check(rc == 1, "flctl state without a token: exit 1", (rc, out, err))
    t.check(snapshot(c, tc, reader)["nodes"] == before["nodes"], "nothing changed")

    rc, out, err = c.flctl("--token-file", rd_file, "state", url=True, env=env_none)
    t.check(rc == 0 and out.strip() == "CLUSTER_READY", "flctl --token-file (reader) state", (rc, out, err))
    rc, out, err = c.flctl("--token-file", op_file, "scalein", node0, url=True, env=env_none)
    t.check(rc == 0 and "Cluster begin to scale in." in out, "flctl --token-file (operator) scalein", (rc, out, err))
    t.require(harness.wait_until(lambda: c.state() == "CLUSTER_READY" and len(c.nodes() or []) == 1, 30),
              "the scale-in completes: one server left", c.nodes())
    rc, out, err = c.flctl("instance", "set", "fl_iteration_num=9", url=True, env={"FLCTL_TOKEN_FILE": op_file})
    t.check(rc == 0 and "Start new instance successful." in out, "FLCTL_TOKEN_FILE=... flctl instance set",
            (rc, out, err))
    r = call(c, "GET", "/queryInstance", token=reader)
    res = (r.json or {}).get("result") or {}
    t.check(res.get("fl_iteration_num") == 9 or (res.get("pending") or {}).get("fl_iteration_num") == 9,
            "the new instance is in force or staged", res)

    # D-Bus keeps its policy (here: a private bus that lets everybody in) and needs no token.
    rc, out, err = c.flctl("disable", env=env_none)
    t.check(rc == 0 and out.strip() == "start disabling FL-Server successful.",
            "flctl over D-Bus disables without a token, printing the scheduler's message", (rc, out, err))
    rc, out, err = c.flctl("enable", env=env_none)
    t.check(rc == 0 and out.strip() == "start enabling FL-Server successful.", "and enables", (rc, out, err))

    # ---- SIGHUP
    newer = token_create(t, "reader", tokens)
    r = call(c, "GET", "/state", token=newer)
    t.check(r.status == 401, "a token added to the file is not used before a reload", r)
    reloads = c.scheduler.count("Reloaded ")
    c.scheduler.signal_group(signal.SIGHUP)
    t.require(c.scheduler.wait_log("Reloaded ", reloads + 1, 15), "SIGHUP: the scheduler reads the file again",
              c.scheduler.tail(5))
    r = call(c, "GET", "/state", token=newer)
    t.check(r.status == 200, "after SIGHUP the new token works", r)

    with open(tokens) as f:
        lines = f.read().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("operator ")]
    t.check(len(kept) == len(lines) - 1, "the operator's entry is taken out of the file", lines)
    with open(tokens, "w") as f:
        f.write("".join(kept))
    c.scheduler.signal_group(signal.SIGHUP)
    t.require(c.scheduler.wait_log("Reloaded ", reloads + 2, 15), "SIGHUP again", c.scheduler.tail(5))
    r = call(c, "POST", "/disableFLS", token=operator)
    t.check(r.status == 401, "the removed operator token stops working", r)
    r = call(c, "GET", "/state", token=reader)
    t.check(r.status == 200, "the reader token still works", r)

    with open(tokens, "a") as f:
        f.write("admin sha256:%s\n" % ("ab" * 32))
    c.scheduler.signal_group(signal.SIGHUP)
    t.check(c.scheduler.wait_log("Keeping the", 1, 15), "an invalid file is refused on SIGHUP, the old tokens kept",
            c.scheduler.tail(5))
    r = call(c, "GET", "/state", token=newer)
    t.check(r.status == 200 and c.scheduler.running(), "the tokens read before still work", r)

    # ---- a missing file: no start
    p = subprocess.run([harness.SCHEDULERD, "--scheduler_port=%d" % harness.reserve_ports(1)[0],
                        "--scheduler_manage_port=%d" % harness.reserve_ports(1)[0],
                        "--state_dir=" + os.path.join(t.tmp, "nostart"),
                        "--management_token_file=" + os.path.join(t.tmp, "no-such-tokens")],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
                       env=harness._clean_env())
    t.check(p.returncode != 0 and "no-such-tokens" in p.stderr and "Refusing to start" in p.stderr,
            "a missing management_token_file stops the scheduler from starting, naming it",
            (p.returncode, p.stderr[-400:]))

    with open(tokens, "w") as f:
        f.write("".join(kept))
    with open(tokens, "a") as f:
        f.write("operator sha256:%s\n" % __import__("hashlib").sha256(operator.encode()).hexdigest())
    c.scheduler.signal_group(signal.SIGHUP)
    t.require(c.scheduler.wait_log("Reloaded ", reloads + 3, 15), "the operator's entry is back", c.scheduler.tail(5))
    rc, out, err = c.flctl("--token-file", op_file, "finish", url=True, env=env_none, timeout=40)
    t.check(rc == 0, "flctl --token-file (operator) finish", (rc, out, err))


harness.run_test("auth", main, timeout=180)
