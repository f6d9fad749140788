#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""fl-client's progress line and plot. On a terminal (a pty) fl-client
train draws a live line per iteration - its phases, the devices done, the
seconds - redrawn in place and erased before each table row; with a pipe
for standard output it prints the table alone. fl-client plot turns the
--csv table into a PNG whose pixels hold both curves in their colours, at
the size asked for; a bad row is an error naming its line, a wrong command
line exit status 2."""

import os
import pty
import re
import select
import struct
import subprocess
import sys
import time
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ITERATIONS = 2
DEVICES = 40
DATA = os.environ.get("FL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FL_CLIENT = os.path.join(harness.BUILDDIR, "fl-client")
JOB = ["--fl_iteration_num=100", "--start_fl_job_threshold=4", "--client_epoch_num=1",
       "--client_batch_size=32", "--client_learning_rate=0.01", "--start_fl_job_time_window=60000",
       "--update_model_time_window=60000"]
ACCURACY_RGB = (46, 125, 51)            # client-plot.c's colours
LOSS_RGB = (130, 79, 222)
ROW_RE = re.compile(r"^\d+ +\d+ +[0-9.]+ +[0-9.]+ +[0-9.]+$")


def run_on_pty(argv, timeout):
    """(exit status, everything written to the terminal)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.DEVNULL,
                         env=harness._clean_env({"TERM": "xterm"}), close_fds=True)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break           # EIO: the child closed the terminal
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    try:
        rc = p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    return rc, out.decode("utf-8", "replace")


def png_pixels(path):
    """(width, height, rows of (r, g, b)) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows


def count_colour(rows, rgb, tol=12):
    return sum(1 for row in rows for px in row if all(abs(px[i] - rgb[i]) <= tol for i in range(3)))


def main(t):
    if not os.path.exists(os.path.join(DATA, "t10k-images-idx3-ubyte.gz")):
        raise harness.Skip("Fashion-MNIST is not in %s (apt install dataset-fashion-mnist)" % DATA)
    model = os.path.join(t.tmp, "lenet5.fl")
    subprocess.run([FL_CLIENT, "init-model", "--seed", "1", "-o", model], check=True, capture_output=True)
    c = harness.Cluster(t, server_num=2, node_timeout=10)
    c.start_scheduler(extra=JOB)
    srv = c.start_server(local_server_num=2, extra=["--model_path=" + model], timeout=30)
    t.require(c.wait_ready(20), "cluster becomes CLUSTER_READY", c.state())
    urls = ",".join("http://127.0.0.1:%d" % p for p in srv.ports)
    csv = os.path.join(t.tmp, "accuracy.csv")
    train = [FL_CLIENT, "train", "--servers", urls, "--devices", str(DEVICES), "--data", DATA, "--seed", "4",
             "--threads", "2", "--timeout", "60", "--iterations", str(ITERATIONS), "--csv", csv]

    # ---- on a terminal
    rc, out = run_on_pty(train, 180)
    t.require(rc == 0, "fl-client train on a terminal exits 0", out[-1500:])
    t.check("\r\x1b[K" in out, "the live line is redrawn in place (carriage return, erase line)", repr(out[:300]))
    for phase in ("asking to join", "training", "waiting for the model", "evaluating the model"):
        t.check(re.search(r"iteration \d+: %s" % phase, out) or ("next iteration: " + phase) in out,
                "the live line shows the phase '%s'" % phase, repr(out[:600]))
    t.check(re.search(r"iteration \d+: training \d+/4 devices, \d+\.\d s", out),
            "it counts the devices done of the 4 training, and the seconds", repr(out[:600]))
    screen = [seg.split("\x1b[K")[-1] for seg in out.replace("\r\n", "\n").split("\n")]
    rows = [s.strip() for s in screen if ROW_RE.match(s.strip())]
    t.check(len(rows) == ITERATIONS, "each table row starts on a cleared line (%d rows)" % ITERATIONS, screen)

    # ---- into a pipe
    p = subprocess.run(train, capture_output=True, text=True, timeout=180, env=harness._clean_env({"TERM": "xterm"}))
    t.require(p.returncode == 0, "fl-client train into a pipe exits 0", p.stderr[-1500:])
    lines = p.stdout.splitlines()
    t.check("\r" not in p.stdout and "\x1b" not in p.stdout, "into a pipe there is no live line",
            repr(p.stdout[:300]))
    t.check(len(lines) == 1 + ITERATIONS and lines[0].split()[0] == "iteration" and
            all(ROW_RE.match(x) for x in lines[1:]), "into a pipe the output is the table alone", p.stdout)

    # ---- plot
    png = os.path.join(t.tmp, "accuracy.png")
    p = subprocess.run([FL_CLIENT, "plot", "--csv", csv, "-o", png], capture_output=True, text=True, timeout=60)
    t.require(p.returncode == 0 and os.path.exists(png), "fl-client plot --csv FILE -o accuracy.png exits 0",
              p.stderr)
    width, height, pixels = png_pixels(png)
    t.check((width, height) == (800, 500), "the picture is 800x500 by default", (width, height))
    green, purple = count_colour(pixels, ACCURACY_RGB), count_colour(pixels, LOSS_RGB)
    t.check(green > 300 and purple > 300, "both curves are drawn, in their colours (%d and %d pixels)"
            % (green, purple), (green, purple))
    # The accuracy rises: its points further right sit higher (smaller y).
    pts = [(x, y) for y, row in enumerate(pixels) for x, px in enumerate(row)
           if all(abs(px[i] - ACCURACY_RGB[i]) <= 12 for i in range(3)) and 80 < x < 720 and 60 < y < 440]
    left = [y for x, y in pts if x < 300]
    right = [y for x, y in pts if x > 500]
    t.check(left and right and sum(right) / len(right) < sum(left) / len(left),
            "the accuracy curve goes up from left to right", (len(left), len(right)))

    small = os.path.join(t.tmp, "small.png")
    p = subprocess.run([FL_CLIENT, "plot", "--csv", csv, "-o", small, "--width", "400", "--height", "300",
                        "--title", "a title"], capture_output=True, text=True, timeout=60)
    t.check(p.returncode == 0 and png_pixels(small)[:2] == (400, 300), "--width and --height set the size",
            p.stderr)
    bad = os.path.join(t.tmp, "bad.csv")
    with open(bad, "w") as f:
        f.write("iteration,devices,test_accuracy,test_loss,seconds\n1,4,0.5,1.0,2.0\n2,4,lots,1.0,2.0\n")
    p = subprocess.run([FL_CLIENT, "plot", "--csv", bad, "-o", os.path.join(t.tmp, "bad.png")],
                       capture_output=True, text=True, timeout=30)
    t.check(p.returncode == 1 and "line 3" in p.stderr and not os.path.exists(os.path.join(t.tmp, "bad.png")),
            "a bad row: exit 1, the message names line 3, no picture", (p.returncode, p.stderr))
    for argv, what in (([FL_CLIENT, "plot", "--csv", csv], "plot without -o"),
                       ([FL_CLIENT, "plot", "--csv", csv, "-o", png, "--devices", "3"], "plot with a train option"),
                       ([FL_CLIENT, "train", "--servers", urls, "--devices", "2", "--width", "300"],
                        "train with a plot option")):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        t.check(p.returncode == 2, "%s: exit 2" % what, (p.returncode, p.stderr))


harness.run_test("client-ops", main, timeout=300)
