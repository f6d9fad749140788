#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Raw TCP clients misbehave on scheduler_port (garbage, absurd lengths,
bad headers, stopping mid-frame, invalid JSON, incomplete REGISTER, a
flood of stalled connections): each is disconnected, and the scheduler
keeps serving its 2 real servers and REST throughout."""

import os
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (WIRE_ERROR, WIRE_HEARTBEAT, WIRE_MAGIC, WIRE_REGISTER, WIRE_REGISTER_REPLY,  # noqa: E402
                     connect, parse_frames, read_until_closed, wire_frame)

NODE_TIMEOUT = 3
SLACK = 3           # seconds beyond node_timeout for an idle close
PROMPT = 2.0        # a header the scheduler must refuse at once


def send_quietly(sock, data):
    try:
        sock.sendall(data)
        return True
    except (BrokenPipeError, ConnectionResetError):
        return False


def expect_closed(t, c, what, data, within, frames_ok=None):
    """Connects, sends data, and checks that the scheduler closes within
    `within` seconds. frames_ok(frames) judges what it sent before closing."""
    s = connect("127.0.0.1", c.scheduler_port)
    try:
        send_quietly(s, data)
        closed, elapsed, got = read_until_closed(s, within)
    finally:
        s.close()
    t.check(closed, "%s: the scheduler closes the connection within %.1fs (took %.2fs)" % (what, within, elapsed),
            "still open after %.1fs; received %r" % (elapsed, got[:200]))
    frames = parse_frames(got)
    if frames_ok is not None and got:
        t.check(frames_ok(frames), "%s: what it sent before closing is an error frame" % what, frames)
    return frames


def only_errors(frames):
    """Before a close the scheduler may explain itself: WIRE_ERROR {"error":s}
    or a REGISTER_REPLY {"ok":false,"error":s}; nothing else."""
    for ftype, payload in frames:
        if ftype == WIRE_ERROR and isinstance(payload, dict) and isinstance(payload.get("error"), str):
            continue
        if ftype == WIRE_REGISTER_REPLY and isinstance(payload, dict) and payload.get("ok") is False:
            continue
        return False
    return True


def main(t):
    c = harness.Cluster(t, server_num=2, node_timeout=NODE_TIMEOUT)
    c.start_scheduler()
    srv = c.start_server(local_server_num=2)
    t.require(c.wait_ready(15), "2 servers form a CLUSTER_READY cluster", c.state())
    before = harness.ranks_by_id(c.nodes())
    t.require(len(before) == 2, "/nodes lists the 2 servers", before)

    # ---- a peer that closes cleanly is noticed (no busy loop on the EOF)
    idle_cpu = harness.cpu_used_over(c.scheduler.pid, 2)
    t.note("fl-schedulerd uses %.2fs CPU per 2s when idle with 2 servers" % idle_cpu)
    for i in range(5):
        connect("127.0.0.1", c.scheduler_port).close()
    s = connect("127.0.0.1", c.scheduler_port)
    send_quietly(s, wire_frame(WIRE_HEARTBEAT, b"{}")[:5])
    s.shutdown(socket.SHUT_WR)
    closed, elapsed, _ = read_until_closed(s, 2)
    s.close()
    t.check(closed, "a client that sends half a header and shuts down its side is closed at once (took %.2fs)"
            % elapsed, "still open after 2s")
    time.sleep(0.3)
    used = harness.cpu_used_over(c.scheduler.pid, 2)
    t.check(used is not None and used < 0.3, "after 5 clients connect and close cleanly, fl-schedulerd stays idle "
            "(CPU %.2fs over 2s, limit 0.3s)" % (used if used is not None else -1),
            "it spins on the closed sockets: the orderly close (EOF) is not handled")

    # ---- refused at the header, at once
    expect_closed(t, c, "HTTP request instead of a frame", b"GET / HTTP/1.0\r\nHost: x\r\n\r\n", PROMPT)
    expect_closed(t, c, "64 bytes of binary garbage", bytes(range(0xC0, 0x100)), PROMPT)
    expect_closed(t, c, "header with length 0xFFFFFFF0",
                  wire_frame(WIRE_REGISTER, b"", length=0xFFFFFFF0) + b"{" * 64, PROMPT, only_errors)
    expect_closed(t, c, "header with length WIRE_CONTROL_MAX+1 (1 MiB + 1)",
                  wire_frame(WIRE_REGISTER, b"", length=1024 * 1024 + 1), PROMPT, only_errors)
    expect_closed(t, c, "header with version 2", wire_frame(WIRE_REGISTER, b"{}", version=2), PROMPT, only_errors)
    expect_closed(t, c, "header with a non-zero reserved field", wire_frame(WIRE_REGISTER, b"{}", reserved=7),
                  PROMPT, only_errors)
    expect_closed(t, c, "header with magic FLC2", wire_frame(WIRE_REGISTER, b"{}", magic=WIRE_MAGIC + 1), PROMPT,
                  only_errors)

    # ---- stops mid-frame: closed by the idle timeout, and nobody else suffers meanwhile
    stalled = []
    for data, what in ((wire_frame(WIRE_REGISTER, b"x" * 100)[:12 + 10], "valid header + 10 of 100 payload bytes"),
                       (wire_frame(WIRE_REGISTER, b"{}")[:6], "half a header"),
                       (b"\x00\xff\x13", "3 bytes of garbage (less than a header)")):
        s = connect("127.0.0.1", c.scheduler_port)
        send_quietly(s, data)
        stalled.append((s, what, time.monotonic()))
    time.sleep(1.5)
    r = c.http("GET", "/state")
    t.check(r.status == 200 and r.json.get("cluster_state") == "CLUSTER_READY",
            "while 3 connections stall mid-frame, REST answers and the cluster is READY", r)
    for s, what, t0 in stalled:
        within = NODE_TIMEOUT + SLACK - (time.monotonic() - t0)
        closed, _, got = read_until_closed(s, max(within, 0.1))
        elapsed = time.monotonic() - t0
        s.close()
        t.check(closed, "%s, then silence: closed within node_timeout+%ds (took %.2fs)" % (what, SLACK, elapsed),
                "still open after %.1fs" % elapsed)

    # ---- framed correctly, but the JSON is not a REGISTER
    for payload, what in ((b'{"node_id": "bad-json", ', "REGISTER with truncated JSON"),
                          (b"\xff\xfe\x00garbage", "REGISTER with a binary payload"),
                          (b"[1, 2, 3]", "REGISTER whose JSON is an array"),
                          (b'{"role":"SERVER"}', "REGISTER without node_id, address, ports"),
                          (b'{"node_id":7,"role":"SERVER","address":"127.0.0.1","fl_server_port":1,"pid":1,'
                           b'"server_num":2}', "REGISTER with a numeric node_id"),
                          (b'{"node_id":"bad/../id","role":"SERVER","address":"127.0.0.1","fl_server_port":1,'
                           b'"pid":1,"server_num":2}', "REGISTER with an illegal node id"),
                          (b'{"node_id":"bad-role","role":"WORKER","address":"127.0.0.1","fl_server_port":1,'
                           b'"pid":1,"server_num":2}', "REGISTER with role WORKER")):
        expect_closed(t, c, what, wire_frame(WIRE_REGISTER, payload), PROMPT, only_errors)
    nodes = c.nodes() or []
    t.check(sorted(n.get("node_id") for n in nodes) == sorted(before),
            "none of the bad REGISTERs added a node to /nodes", nodes)

    # ---- a heartbeat from a stranger who never registered: not a member
    s = connect("127.0.0.1", c.scheduler_port)
    send_quietly(s, wire_frame(WIRE_HEARTBEAT, b"{}") * 3)
    closed, elapsed, got = read_until_closed(s, NODE_TIMEOUT + SLACK)
    s.close()
    t.check(closed, "heartbeats without REGISTER: closed within node_timeout+%ds (took %.2fs)" % (SLACK, elapsed),
            parse_frames(got))

    # ---- a flood of stalled and of instantly closed connections
    flood = []
    for i in range(40):
        try:
            s = connect("127.0.0.1", c.scheduler_port)
        except OSError as e:
            t.check(False, "connection %d of the flood is accepted" % i, e)
            break
        send_quietly(s, b"FLC")
        flood.append(s)
    for i in range(100):
        try:
            connect("127.0.0.1", c.scheduler_port).close()
        except OSError:
            pass
    # An RST right after connecting, too.
    for i in range(20):
        try:
            s = connect("127.0.0.1", c.scheduler_port)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        except OSError:
            pass
    r = c.http("GET", "/nodes")
    t.check(r.status == 200 and len(r.json.get("node_ids", [])) == 2,
            "with 40 stalled connections open and 120 more come and gone, REST still answers", r)
    t0 = time.monotonic()
    still_open = 0
    for s in flood:
        closed, _, _ = read_until_closed(s, max(NODE_TIMEOUT + SLACK - (time.monotonic() - t0), 0.1))
        still_open += not closed
        s.close()
    t.check(still_open == 0, "all 40 stalled connections are closed within node_timeout+%ds" % SLACK,
            "%d still open" % still_open)

    # ---- afterwards: nothing changed for the real cluster
    used = harness.cpu_used_over(c.scheduler.pid, 2)
    t.check(used is not None and used < 0.3, "after the abuse fl-schedulerd is idle again (CPU %.2fs over 2s)"
            % (used if used is not None else -1), used)
    t.check(c.scheduler.running(), "fl-schedulerd is still running", c.scheduler.poll())
    t.check(srv.running(), "fl-serverd is still running", srv.poll())
    t.check(c.state() == "CLUSTER_READY", "/state is still CLUSTER_READY", c.state())
    nodes = c.nodes() or []
    t.check(harness.ranks_by_id(nodes) == before, "/nodes has the same node ids and ranks", nodes)
    t.check(all(n.get("alive") is True for n in nodes) and len(nodes) == 2, "both servers are alive", nodes)
    rc, out, err = c.flctl("state")
    t.check(rc == 0 and "CLUSTER_READY" in out, "flctl state (D-Bus) still answers CLUSTER_READY", (rc, out, err))
    t.check(srv.count(harness.SERVER_STARTED) == 2, "the real servers were not disturbed (no re-registration)",
            srv.count(harness.SERVER_STARTED))


harness.run_test("bad-tcp", main, timeout=120)
