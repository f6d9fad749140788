#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Disaster recovery, the configuration file and corruption (issue 5,
deliverables 1 and 5):

- one configuration file with MindSpore's "recovery" section serves the
  scheduler and two fl-serverd on one host: each server keeps its own
  database, recovery-<port>.db beside storge_file_path, the scheduler its
  scheduler_storage_file_path (directories created); a storage_type other
  than 1 is refused with a message naming it;
- a server whose newest checkpoint's bytes no longer match their checksum
  logs the damage with its iteration, falls back to the next older
  checkpoint, then takes the cluster's model from a peer;
- a server whose database file is garbage moves it aside to
  <file>.corrupt-<time> (LOG_ERR), starts a fresh one, syncs from a peer and
  serves the cluster's model;
- a server whose update log is garbage moves it aside and starts an empty one;
- a scheduler whose database is garbage refuses to start, names the file and
  says what to do; the file is left as it was."""

import glob
import json
import os
import sqlite3
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fl_proto  # noqa: E402
import harness  # noqa: E402

JOB = {"fl_iteration_num": 20, "start_fl_job_threshold": 2, "start_fl_job_time_window": 120000,
       "update_model_time_window": 120000}
INITIAL = [("w", [0.5 * i - 1 for i in range(6)]), ("b", [1.0, -2.0])]
GARBAGE = b"this is not an SQLite database\n" * 300


def status(url):
    st, _, raw = fl_proto.get(url + "/", timeout=5)
    try:
        return json.loads(raw.decode()) if st == 200 else {}
    except ValueError:
        return {}


def devices(u0, u1, label):
    """Two devices, each admitted and updating on the same server."""
    return [(u0, u0, "%s-a" % label, 30, 0.5), (u1, u1, "%s-b" % label, 10, -1.0)]


def wait_serving(t, proto, url, good, iteration, label):
    ok = harness.wait_until(lambda: status(url).get("in_sync") is True and
                            status(url).get("model_iteration") == iteration, 30)
    t.check(ok, "%s: in sync with the cluster's model of iteration %d" % (label, iteration), status(url))
    t.check(proto.fetch_model(url)[1] == good, "%s: serves the cluster's model byte for byte" % label)


def main(t):
    proto = fl_proto.Proto(t.tmp)
    rec = os.path.join(t.tmp, "rec")
    conf = os.path.join(t.tmp, "flcluster.json")
    sched_db = os.path.join(rec, "sched", "scheduler.db")
    with open(conf, "w") as f:
        json.dump({"node_timeout": 40, "recovery": {
            "storage_type": 1, "storge_file_path": os.path.join(rec, "recovery.db"),
            "scheduler_storage_file_path": sched_db}}, f)
    conf_arg = "--config_file_path=" + conf

    tc = fl_proto.TrainingCluster(t, proto, 2, JOB, INITIAL, node_timeout=40, server_extra=[conf_arg],
                                  start=False)
    c = tc.c
    c.start_scheduler(extra=fl_proto.job_argv(JOB) + [conf_arg])
    tc.start_servers()
    t.require(tc.wait_iteration(1), "2 servers sharing one configuration file train: iteration 1 runs",
              tc.state())

    # ---- deliverable 1: where the databases are
    a, b = tc.daemons
    ua, ub = tc.urls
    for d in (a, b):
        path = os.path.join(rec, "recovery-%d.db" % d.port)
        t.check(os.path.exists(path), "the server on port %d keeps its database in %s" % (d.port, path),
                os.listdir(rec))
        t.check(not glob.glob(os.path.join(d.state_dir, "*.db")), "... and none in its state directory",
                os.listdir(d.state_dir) if os.path.isdir(d.state_dir) else None)
    t.check(os.path.exists(sched_db), "the scheduler's database is scheduler_storage_file_path", os.listdir(rec))
    t.check(not os.path.exists(os.path.join(c.sched_state_dir, "scheduler.db")),
            "... not scheduler.db in its state directory")

    bad_conf = os.path.join(t.tmp, "bad.json")
    with open(bad_conf, "w") as f:
        json.dump({"recovery": {"storage_type": 2, "storge_file_path": "/nonexistent/r.db"}}, f)
    probe = c.start_server(extra=["--config_file_path=" + bad_conf], wait=False, name="bad-config")
    probe.quiet = True
    rc = probe.wait(10)
    t.check(rc not in (None, 0) and "recovery.storage_type" in probe.log(),
            "storage_type 2 is refused with a message naming it (exit %s)" % rc, probe.tail(5))

    tc.run_iteration(devices(ua, ub, "it1"), "it1")
    tc.run_iteration(devices(ua, ub, "it2"), "it2")
    t.require(tc.wait_iteration(3), "iteration 3 runs", tc.state())
    good = proto.fetch_model(ua)[1]
    t.check(proto.fetch_model(ub)[1] == good, "both servers hold the model of iteration 2")

    # ---- a damaged newest checkpoint: fall back to the older one, then sync
    db_b = os.path.join(rec, "recovery-%d.db" % b.port)
    node_b = status(ub).get("node_id")
    b.kill9()
    con = sqlite3.connect(db_b)
    rows = con.execute("SELECT iteration FROM checkpoints ORDER BY saved DESC").fetchall()
    t.check([r[0] for r in rows][:2] == [2, 1], "the stopped server holds checkpoints 2 and 1", rows)
    blob = bytearray(con.execute("SELECT model FROM checkpoints WHERE iteration = 2").fetchone()[0])
    for i in range(len(blob) - 40, len(blob) - 8):
        blob[i] ^= 0x55
    con.execute("UPDATE checkpoints SET model = ? WHERE iteration = 2", (bytes(blob),))
    con.commit()
    con.close()

    b2 = c.start_server(port=b.port, node_id=node_b, state_dir=b.state_dir, extra=tc.server_extra,
                        name="damaged-checkpoint")
    t.check(b2.wait_log("The checkpoint of iteration 2 in %s is damaged" % db_b, 1, 10),
            "the damaged checkpoint is reported with its iteration", b2.tail(10))
    t.check(b2.wait_log("Restored the model of iteration 1", 1, 5),
            "the server falls back to the checkpoint of iteration 1", b2.tail(10))
    t.check(b2.wait_log("Took the model of iteration 2 from peer rank", 1, 30),
            "and takes the cluster's model of iteration 2 from a peer", b2.tail(10))
    wait_serving(t, proto, ub, good, 2, "after the damaged checkpoint")

    # ---- a database that is garbage: moved aside, a fresh one, sync
    # (stopped cleanly, so that no -wal holds the pages the garbage replaces:
    # SQLite would rightly rebuild the database from it)
    b2.stop()
    t.check(not os.path.exists(db_b + "-wal"), "the stopped server left no -wal")
    with open(db_b, "wb") as f:
        f.write(GARBAGE)
    b3 = c.start_server(port=b.port, node_id=node_b, state_dir=b.state_dir, extra=tc.server_extra,
                        name="garbage-database")
    t.check(b3.wait_log("is damaged or not an SQLite database: moved it to %s.corrupt-" % db_b, 1, 10),
            "the garbage database is reported and moved aside", b3.tail(10))
    aside = glob.glob(db_b + ".corrupt-*")
    aside = [p for p in aside if not p.endswith(("-wal", "-shm"))]
    t.check(len(aside) == 1 and open(aside[0], "rb").read() == GARBAGE,
            "the damaged file is kept as %s" % (aside[0] if aside else "?"), os.listdir(rec))
    t.check(b3.wait_log("Took the model of iteration 2 from peer rank", 1, 30),
            "the server with a fresh database takes the cluster's model from a peer", b3.tail(10))
    wait_serving(t, proto, ub, good, 2, "after the fresh database")
    con = sqlite3.connect(db_b)
    t.check(con.execute("PRAGMA quick_check").fetchone()[0] == "ok" and
            con.execute("SELECT iteration FROM checkpoints").fetchall() == [(2,)],
            "the fresh database holds the synced checkpoint of iteration 2")
    con.close()

    # ---- its update log is garbage: moved aside, an empty one, serving on
    b3.stop()
    log_b = db_b + "-updates"
    t.check(os.path.exists(log_b), "the server keeps its update log beside its database", os.listdir(rec))
    with open(log_b, "wb") as f:
        f.write(GARBAGE)
    b4 = c.start_server(port=b.port, node_id=node_b, state_dir=b.state_dir, extra=tc.server_extra,
                        name="garbage-update-log")
    t.check(b4.wait_log("The update log %s is damaged: moved it to %s.corrupt-" % (log_b, log_b), 1, 10),
            "the garbage update log is reported and moved aside", b4.tail(10))
    wait_serving(t, proto, ub, good, 2, "after the fresh update log")

    # The cluster trains on with the recovered server.
    tc.run_iteration(devices(ua, ub, "it3"), "it3")
    t.check(harness.wait_until(lambda: proto.fetch_model(ua)[1] == proto.fetch_model(ub)[1], 10),
            "after iteration 3 both servers hold the same model")

    # ---- the scheduler's database is garbage: refuse, say what to do, touch nothing
    c.scheduler.stop()
    for suffix in ("-wal", "-shm"):
        if os.path.exists(sched_db + suffix):
            os.unlink(sched_db + suffix)
    with open(sched_db, "wb") as f:
        f.write(GARBAGE)
    d = harness.Daemon(t, "fl-schedulerd-garbage", c.scheduler_argv(c.sched_extra), env=c.env()).start()
    rc = d.wait(15)
    t.check(rc not in (None, 0), "the scheduler with a garbage database refuses to start (exit %s)" % rc,
            d.tail(5))
    t.check("The scheduler database %s is damaged or not an SQLite database; refusing to start. Move it away"
            % sched_db in d.log(), "its message names the file and says to move it away", d.tail(5))
    t.check(open(sched_db, "rb").read() == GARBAGE, "the file is left as it was")
    os.rename(sched_db, sched_db + ".damaged")
    c.restart_scheduler()
    t.check(os.path.exists(sched_db), "once it is moved away the scheduler starts with a new registry")


harness.run_test("corruption", main, timeout=240)
