# SPDX-License-Identifier: LGPL-2.1-or-later
"""Integration-test harness for flcluster: real daemons on loopback ports.

Every test file does

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness
    def main(t): ...
    harness.run_test("name", main, timeout=120)

and gets a Test object `t` with check()/require() (one printed line per
check), a private temporary directory, and teardown that always kills every
process it started (try/finally, atexit, SIGTERM/SIGINT and an overall
alarm), printing the tail of every daemon log when the test failed.

Only the Python standard library is used. Environment:
  FL_BUILDDIR      build directory holding fl-schedulerd, fl-serverd, flctl
  FL_DBUS_DAEMON   dbus-daemon binary (default: from $PATH)
  FL_ITEST_KEEP=1  keep the temporary directory (logs, state) afterwards
  FL_ITEST_LOG_LEVEL  --log_level passed to the daemons (default info)
"""

import atexit
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

EXIT_PASS, EXIT_FAIL, EXIT_SKIP = 0, 1, 77
SERVER_STARTED = "Server started successfully."

HERE = os.path.dirname(os.path.abspath(__file__))


def _default_builddir():
    for d in (os.path.join(HERE, "..", "..", "_build"), os.path.join(HERE, "..", "..")):
        if os.path.exists(os.path.join(d, "fl-schedulerd")):
            return os.path.abspath(d)
    return os.path.abspath(os.path.join(HERE, "..", "..", "_build"))


BUILDDIR = os.environ.get("FL_BUILDDIR") or _default_builddir()
SCHEDULERD = os.path.join(BUILDDIR, "fl-schedulerd")
SERVERD = os.path.join(BUILDDIR, "fl-serverd")
FLCTL = os.path.join(BUILDDIR, "flctl")
DBUS_DAEMON = os.environ.get("FL_DBUS_DAEMON") or shutil.which("dbus-daemon") or "/usr/bin/dbus-daemon"
LOG_LEVEL = os.environ.get("FL_ITEST_LOG_LEVEL", "")

# Frame layout of src/shared/wire.h and types of wire-protocol.h.
WIRE_MAGIC = 0x464C4331
WIRE_VERSION = 1
WIRE_HEADER = struct.Struct(">IBBHI")
WIRE_REGISTER, WIRE_REGISTER_REPLY, WIRE_HEARTBEAT, WIRE_MEMBERS = 1, 2, 3, 4
WIRE_FINISH, WIRE_FINISH_ACK, WIRE_ERROR = 5, 6, 7

# Nothing the daemons inherit should make them think they run under systemd.
_SCRUB_ENV = ("NOTIFY_SOCKET", "JOURNAL_STREAM", "STATE_DIRECTORY", "MS_NODE_ID", "LISTEN_FDS",
              "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC", "WATCHDOG_PID", "INVOCATION_ID",
              "DBUS_SYSTEM_BUS_ADDRESS", "DBUS_SESSION_BUS_ADDRESS")


class Failure(Exception):
    """A required check failed; the test stops here."""


class Skip(Exception):
    """A prerequisite that cannot exist here (exit 77)."""


# ---------------------------------------------------------------- waiting

def wait_until(fn, timeout, interval=0.1):
    """Calls fn() until it returns something truthy or timeout seconds pass.
    Returns that value, or the last (falsy) value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# ---------------------------------------------------------------- ports

_PORT_LOCKDIR = os.path.join(tempfile.gettempdir(), "flcluster-itest-ports")
_held_ports = set()


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lock_port(port):
    """Claims a port against the other tests running in parallel (make -j):
    a lock file per port holding our pid; stale locks of dead pids are taken."""
    os.makedirs(_PORT_LOCKDIR, mode=0o1777, exist_ok=True)
    path = os.path.join(_PORT_LOCKDIR, str(port))
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    pid = int(f.read().strip() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid and _pid_alive(pid):
                return False
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        _held_ports.add(port)
        return True
    return False


def _unlock_port(port):
    path = os.path.join(_PORT_LOCKDIR, str(port))
    try:
        with open(path) as f:
            if f.read().strip() == str(os.getpid()):
                os.unlink(path)
    except OSError:
        pass
    _held_ports.discard(port)


def _bindable(port):
    for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            s = socket.socket(fam, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((addr, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def _port_range():
    """Ports outside the kernel's ephemeral range, so that outgoing
    connections (servers to the scheduler) never sit on a port we hand out."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    if lo - 20000 > 2000:
        return 20000, lo - 1
    return hi + 1, 65000


def reserve_ports(n=1):
    """n consecutive free TCP ports, locked against parallel tests until
    release_ports() or exit. (Binding port 0 would hand out ephemeral ports,
    which outgoing connections may take at any moment.)"""
    lo, hi = _port_range()
    for _ in range(1000):
        base = random.randrange(lo, hi - n)
        got = []
        for p in range(base, base + n):
            if not _lock_port(p):
                break
            got.append(p)
            if not _bindable(p):
                break
        else:
            return got
        for p in got:
            _unlock_port(p)
    raise Failure("could not find %d free consecutive ports" % n)


def release_ports(ports):
    for p in ports:
        _unlock_port(p)


def _release_all_ports():
    for p in list(_held_ports):
        _unlock_port(p)


atexit.register(_release_all_ports)


# ---------------------------------------------------------------- HTTP

class HttpResult:
    def __init__(self, status, body, content_type, raw, error=None, headers=None):
        self.status, self.json, self.content_type, self.raw, self.error = status, body, content_type, raw, error
        self.headers = headers or {}

    def __repr__(self):
        if self.status is None:
            return "<no answer: %s>" % self.error
        return "<HTTP %s %s %r>" % (self.status, self.content_type, self.raw[:400])


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _tls_opener(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))


def http(method, url, body=None, timeout=5, headers=None, cafile=None):
    """Returns an HttpResult; status None when there was no HTTP answer.
    headers: more request headers (e.g. Authorization); cafile: for
    https://, the CA the server's certificate must lead to."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=body, method=method, headers=hdrs)
    opener = _tls_opener(cafile) if cafile else _opener
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, raw, rh = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, raw, rh = e.code, e.read(), e.headers
    except (urllib.error.URLError, OSError, ValueError) as e:
        return HttpResult(None, None, None, b"", str(e))
    try:
        js = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        js = None
    return HttpResult(status, js, rh.get("Content-Type"), raw, headers=dict(rh.items()))


_NS_HTTP_SCRIPT = r"""
import json, sys, urllib.request, urllib.error
method, url, body = sys.argv[1], sys.argv[2], sys.argv[3]
body = body.encode() if body else None
req = urllib.request.Request(url, data=body, method=method,
                             headers={"Content-Type": "application/json"} if body else {})
op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with op.open(req, timeout=5) as r:
        out = {"status": r.status, "ctype": r.headers.get("Content-Type"), "raw": r.read().decode("latin-1")}
except urllib.error.HTTPError as e:
    out = {"status": e.code, "ctype": e.headers.get("Content-Type"), "raw": e.read().decode("latin-1")}
except Exception as e:
    out = {"status": None, "error": str(e)}
print(json.dumps(out))
"""


def http_in_netns(ns, method, url, body=None, timeout=10):
    """Same as http(), from inside network namespace ns."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    try:
        p = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _NS_HTTP_SCRIPT,
                            method, url, body or ""],
                           capture_output=True, text=True, timeout=timeout)
        out = json.loads(p.stdout)
    except (subprocess.TimeoutExpired, ValueError) as e:
        return HttpResult(None, None, None, b"", str(e))
    if out.get("status") is None:
        return HttpResult(None, None, None, b"", out.get("error"))
    raw = out["raw"].encode("latin-1")
    try:
        js = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        js = None
    return HttpResult(out["status"], js, out.get("ctype"), raw)


# ---------------------------------------------------------------- TCP frames

def wire_frame(ftype, payload=b"", magic=WIRE_MAGIC, version=WIRE_VERSION, reserved=0, length=None):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload).encode()
    if length is None:
        length = len(payload)
    return WIRE_HEADER.pack(magic, version, ftype, reserved, length) + payload


def connect(host, port, timeout=5):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_closed(sock, timeout):
    """Reads until the peer closes or timeout seconds pass. Returns
    (closed, elapsed_seconds, bytes_received)."""
    start = time.monotonic()
    data = b""
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            return False, time.monotonic() - start, data
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False, time.monotonic() - start, data
        except (ConnectionResetError, BrokenPipeError):
            return True, time.monotonic() - start, data
        if not chunk:
            return True, time.monotonic() - start, data
        data += chunk


def parse_frames(data):
    """Splits received bytes into [(type, payload-json-or-bytes)], ignoring a
    trailing partial frame."""
    frames = []
    while len(data) >= WIRE_HEADER.size:
        magic, version, ftype, _, length = WIRE_HEADER.unpack_from(data)
        if magic != WIRE_MAGIC or len(data) < WIRE_HEADER.size + length:
            break
        payload = data[WIRE_HEADER.size:WIRE_HEADER.size + length]
        try:
            payload = json.loads(payload.decode())
        except (ValueError, UnicodeDecodeError):
            pass
        frames.append((ftype, payload))
        data = data[WIRE_HEADER.size + length:]
    return frames


def read_frame(sock, timeout):
    """One frame, or None on close/timeout."""
    deadline = time.monotonic() + timeout
    buf = b""

    def need(n):
        nonlocal buf
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            sock.settimeout(left)
            try:
                chunk = sock.recv(n - len(buf))
            except (socket.timeout, ConnectionResetError):
                return False
            if not chunk:
                return False
            buf += chunk
        return True

    if not need(WIRE_HEADER.size):
        return None
    magic, version, ftype, _, length = WIRE_HEADER.unpack_from(buf)
    if magic != WIRE_MAGIC or length > 16 * 1024 * 1024:
        return None
    if not need(WIRE_HEADER.size + length):
        return None
    return parse_frames(buf)[0]


# ---------------------------------------------------------------- processes

def _clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_ENV and not k.lower().endswith("_proxy")}
    if extra:
        env.update(extra)
    return env


class Daemon:
    """One process in its own process group, stdout+stderr to a log file."""

    def __init__(self, t, name, argv, env=None, netns=None):
        self.t, self.name, self.argv, self.netns = t, name, list(argv), netns
        self.env = env
        self.quiet = False      # a short-lived probe: its output is in the check's detail already
        t._seq += 1
        self.log_path = os.path.join(t.tmp, "%02d-%s.log" % (t._seq, name))
        self.proc = None
        self.returncode = None

    def start(self):
        cmd = self.argv
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        with open(self.log_path, "ab") as log:
            log.write(("# %s\n" % " ".join(cmd)).encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=self.env, start_new_session=True)
        self.t._daemons.append(self)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def poll(self):
        if self.proc is None:
            return None
        if self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    def running(self):
        return self.proc is not None and self.poll() is None

    def wait(self, timeout):
        """Exit status, or None if still running after timeout seconds."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def signal_group(self, sig):
        """Signals the whole process group: fl-serverd may fork one process
        per server, and all of them must get it."""
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill9(self):
        """SIGKILL to the whole group; returns once every member is gone."""
        self.signal_group(signal.SIGKILL)
        self.wait(10)
        wait_until(lambda: not group_members(self.proc.pid), 5, 0.02)

    def stop(self, grace=3):
        if self.proc is None:
            return
        if self.poll() is None:
            self.signal_group(signal.SIGTERM)
            if self.wait(grace) is None:
                self.signal_group(signal.SIGKILL)
                self.wait(5)
        else:
            # The leader is gone; forked children may linger in the group.
            self.signal_group(signal.SIGKILL)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def count(self, text):
        return self.log().count(text)

    def wait_log(self, text, count=1, timeout=15, fail_on_exit=True):
        """Waits for count occurrences of text (a str, or a compiled regex).
        Returns True, or False on timeout or (fail_on_exit) early exit."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()
            n = len(text.findall(log)) if hasattr(text, "findall") else log.count(text)
            if n >= count:
                return True
            if fail_on_exit and self.poll() is not None:
                # One last read: the line may have been written right before exit.
                log = self.log()
                n = len(text.findall(log)) if hasattr(text, "findall") else log.count(text)
                return n >= count
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def tail(self, n=40):
        lines = self.log().splitlines()
        return "\n".join(lines[-n:])


def group_members(pgid):
    """Pids of the live (non-zombie) processes in process group pgid."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def bind_failed(log):
    l = log.lower()
    return "address already in use" in l or "eaddrinuse" in l


# ---------------------------------------------------------------- D-Bus

class Bus:
    """A private dbus-daemon with a permissive system-bus configuration."""

    def __init__(self, t):
        self.t = t
        self.dir = tempfile.mkdtemp(prefix="bus-", dir=t.tmp)
        self.socket = os.path.join(self.dir, "bus")
        conf = os.path.join(self.dir, "system.conf")
        with open(conf, "w") as f:
            f.write("""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
""" % self.socket)
        if not os.access(DBUS_DAEMON, os.X_OK):
            raise Failure("dbus-daemon not found (FL_DBUS_DAEMON=%r)" % DBUS_DAEMON)
        self.proc = subprocess.Popen([DBUS_DAEMON, "--config-file=" + conf, "--nofork", "--print-address=1"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     env=_clean_env())
        t._cleanups.append(self.stop)
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline().decode().strip() if r else ""
        if not line.startswith("unix:"):
            raise Failure("private dbus-daemon did not print its address (got %r)" % line)
        self.address = line
        if not wait_until(lambda: os.path.exists(self.socket), 5):
            raise Failure("private dbus-daemon socket %s did not appear" % self.socket)

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)

    def busctl(self, *args, timeout=10):
        """Runs busctl on this bus: (rc, stdout, stderr); rc None if busctl is missing."""
        exe = shutil.which("busctl")
        if not exe:
            return None, "", "busctl not installed"
        try:
            p = subprocess.run([exe, "--address=" + self.address] + list(args), capture_output=True,
                               text=True, timeout=timeout, env=_clean_env())
        except subprocess.TimeoutExpired:
            return -1, "", "busctl timed out"
        return p.returncode, p.stdout, p.stderr


# ---------------------------------------------------------------- cluster

class Cluster:
    """A scheduler and its servers on loopback (or in network namespaces)."""

    def __init__(self, t, server_num, node_timeout=10, bus=True, scheduler_ip="127.0.0.1", netns=None,
                 name="sched", config=None, cafile=None):
        self.t = t
        # A configuration file for every daemon (e.g. the ssl section), and
        # the CA REST and flctl check an HTTPS scheduler against.
        self.config = config
        self.cafile = cafile
        self.server_num = server_num
        self.node_timeout = node_timeout
        self.scheduler_ip = scheduler_ip
        self.netns = netns              # namespace of the scheduler (and of REST queries)
        self.bus = Bus(t) if bus else None
        self.scheduler = None
        self.scheduler_port = None
        self.manage_port = None
        self.sched_state_dir = os.path.join(t.tmp, name)
        self.sched_extra = []
        self.servers = []
        self.token = None               # sent as a Bearer token by http() when set

    # -- environment and plumbing
    def env(self, extra=None):
        e = {"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address} if self.bus else {}
        if extra:
            e.update(extra)
        return _clean_env(e)

    @property
    def base_url(self):
        return "%s://%s:%d" % ("https" if self.cafile else "http", self.scheduler_ip, self.manage_port)

    def _config_args(self):
        return ["--config_file_path=" + self.config] if self.config else []

    def _log_level(self):
        return ["--log_level=" + LOG_LEVEL] if LOG_LEVEL else []

    # -- scheduler
    def scheduler_argv(self, extra=()):
        return [SCHEDULERD, "--scheduler_ip=" + self.scheduler_ip,
                "--scheduler_port=%d" % self.scheduler_port,
                "--scheduler_manage_port=%d" % self.manage_port,
                "--server_num=%d" % self.server_num,
                "--node_timeout=%d" % self.node_timeout,
                "--state_dir=" + self.sched_state_dir] + self._config_args() + self._log_level() + list(extra)

    def start_scheduler(self, extra=(), argv=None, retries=5, timeout=15):
        """Starts fl-schedulerd and waits until REST answers. New ports are
        picked (and the start retried) if a port turns out to be taken."""
        self.sched_extra = list(extra)
        for attempt in range(retries):
            if self.scheduler_port is None or attempt > 0:
                if self.scheduler_port is not None:
                    release_ports([self.scheduler_port, self.manage_port])
                self.scheduler_port, self.manage_port = reserve_ports(1)[0], reserve_ports(1)[0]
            d = Daemon(self.t, "fl-schedulerd", argv or self.scheduler_argv(extra), env=self.env(),
                       netns=self.netns).start()
            self.scheduler = d
            ok = wait_until(lambda: (not d.running()) or self.http("GET", "/state").status is not None,
                            timeout)
            if d.running() and ok:
                return d
            if not d.running() and bind_failed(d.log()) and argv is None:
                self.t.note("scheduler could not bind its ports; retrying with others")
                continue
            raise Failure("fl-schedulerd did not come up (exit status %s); log:\n%s" % (d.poll(), d.tail()))
        raise Failure("fl-schedulerd could not bind after %d attempts" % retries)

    def restart_scheduler(self, timeout=15):
        """Starts the scheduler again on the same ports and state directory."""
        d = Daemon(self.t, "fl-schedulerd", self.scheduler_argv(self.sched_extra), env=self.env(),
                   netns=self.netns).start()
        self.scheduler = d
        wait_until(lambda: (not d.running()) or self.http("GET", "/state").status is not None, timeout)
        if not d.running() or self.http("GET", "/state").status is None:
            raise Failure("restarted fl-schedulerd did not come up (exit status %s); log:\n%s"
                          % (d.poll(), d.tail()))
        return d

    # -- servers
    def server_argv(self, port, local_server_num=1, node_id=None, state_dir=None, extra=(),
                    scheduler_ip=None):
        argv = [SERVERD, "--scheduler_ip=" + (scheduler_ip or self.scheduler_ip),
                "--scheduler_port=%d" % self.scheduler_port,
                "--fl_server_port=%d" % port,
                "--server_num=%d" % self.server_num,
                "--local_server_num=%d" % local_server_num,
                "--state_dir=" + state_dir] + self._config_args() + self._log_level()
        if node_id is not None:
            argv.append("--node_id=" + node_id)
        return argv + list(extra)

    def start_server(self, local_server_num=1, node_id=None, port=None, state_dir=None, extra=(),
                     env=None, wait=True, netns=None, scheduler_ip=None, name="fl-serverd",
                     timeout=20, retries=5):
        """Starts one fl-serverd (serving local_server_num servers). With wait,
        waits for one 'Server started successfully.' per server. A port of
        the caller's choosing is never changed; otherwise new ports are picked
        when the first ones turn out to be taken."""
        if state_dir is None:
            self.t._seq += 1
            state_dir = os.path.join(self.t.tmp, "srv%02d" % self.t._seq)
        fixed_port = port is not None
        for attempt in range(retries):
            if not fixed_port:
                ports = reserve_ports(local_server_num)
                port = ports[0]
            argv = self.server_argv(port, local_server_num, node_id, state_dir, extra, scheduler_ip)
            d = Daemon(self.t, name, argv, env=self.env(env), netns=netns).start()
            d.port, d.ports, d.state_dir, d.node_id_arg = port, list(range(port, port + local_server_num)), state_dir, node_id
            d.local_server_num = local_server_num
            self.servers.append(d)
            if not wait:
                return d
            if d.wait_log(SERVER_STARTED, local_server_num, timeout):
                return d
            if not d.running() and bind_failed(d.log()) and not fixed_port and attempt + 1 < retries:
                self.t.note("server could not bind port %d; retrying with others" % port)
                d.stop()
                continue
            raise Failure("%s on port %d: %d of %d '%s' lines within %ds (exit status %s); log:\n%s"
                          % (name, port, d.count(SERVER_STARTED), local_server_num, SERVER_STARTED,
                             timeout, d.poll(), d.tail()))
        raise Failure("fl-serverd could not bind after %d attempts" % retries)

    # -- REST
    def http(self, method, path, body=None, timeout=5):
        url = self.base_url + path
        if self.netns:
            return http_in_netns(self.netns, method, url, body, timeout=timeout + 5)
        headers = {"Authorization": "Bearer " + self.token} if self.token else None
        return http(method, url, body, timeout, headers=headers, cafile=self.cafile)

    def state(self):
        r = self.http("GET", "/state")
        return r.json.get("cluster_state") if isinstance(r.json, dict) else None

    def nodes(self):
        r = self.http("GET", "/nodes")
        if isinstance(r.json, dict) and isinstance(r.json.get("node_ids"), list):
            return r.json["node_ids"]
        return None

    def node(self, node_id):
        for n in self.nodes() or []:
            if n.get("node_id") == node_id:
                return n
        return None

    def wait_state(self, state, timeout):
        """True once /state says state within timeout."""
        return bool(wait_until(lambda: self.state() == state, timeout, 0.1))

    def wait_ready(self, timeout=20):
        return self.wait_state("CLUSTER_READY", timeout)

    # -- flctl
    def flctl(self, *args, url=False, timeout=20, netns=None, env=None):
        """Runs flctl: over the private D-Bus, or with url=True over REST
        (--url of this scheduler), or with url="http://..." over that URL.
        Returns (rc, stdout, stderr); rc None on timeout."""
        argv = [FLCTL]
        if self.cafile:
            argv += ["--cacert", self.cafile]
        if url is True:
            argv += ["--url", self.base_url]
        elif url:
            argv += ["--url", url]
        argv += list(args)
        netns = netns if netns is not None else self.netns
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env(env),
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            return None, e.stdout or "", (e.stderr or "") + "\n(flctl timed out after %ds)" % timeout
        self.t.transcript("$ %s\n[rc=%s]\n%s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
        return p.returncode, p.stdout, p.stderr


# ---------------------------------------------------------------- other programs

def run_program(t, argv, timeout, env=None):
    """Runs a program to its end: (rc, stdout, stderr), rc None on timeout.
    The run goes into the transcript that a failed test prints."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env=_clean_env(env))
    except subprocess.TimeoutExpired as e:
        return None, e.stdout or "", (e.stderr or "") + "\n(timed out after %ds)" % timeout
    t.transcript("$ %s\n[rc=%s]\n%s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p.returncode, p.stdout, p.stderr


# ---------------------------------------------------------------- TLS and configuration

class TlsFiles:
    """What `flctl tls init` writes into a directory."""

    def __init__(self, d):
        self.dir = d
        self.ca, self.ca_key = os.path.join(d, "ca.pem"), os.path.join(d, "ca-key.pem")
        self.node, self.node_key = os.path.join(d, "node.pem"), os.path.join(d, "node-key.pem")

    def ssl(self, **more):
        """The ssl section naming them."""
        section = {"server_cert_path": self.node, "server_key_path": self.node_key, "ca_cert_path": self.ca}
        section.update(more)
        return section


def tls_init(t, name="tls", hosts="127.0.0.1", extra=()):
    """Runs `flctl tls init --dir t.tmp/NAME --hosts HOSTS`; a TlsFiles."""
    d = os.path.join(t.tmp, name)
    p = subprocess.run([FLCTL, "tls", "init", "--dir", d, "--hosts", hosts] + list(extra), capture_output=True,
                       text=True, timeout=30, env=_clean_env(), stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise Failure("flctl tls init failed (rc=%s): %s" % (p.returncode, p.stderr))
    return TlsFiles(d)


def write_config(t, name, obj):
    """A JSON configuration file in the scratch directory; its path."""
    path = os.path.join(t.tmp, name)
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


# ---------------------------------------------------------------- the test

class Test:
    def __init__(self, name, timeout):
        self.name = name
        self.timeout = timeout
        self.tmp = tempfile.mkdtemp(prefix="fl-itest-%s-" % name)
        self.failed = 0
        self.passed = 0
        self._seq = 0
        self._daemons = []
        self._cleanups = []
        self._transcript = []
        self._torn_down = False

    def note(self, msg):
        print("# " + msg, flush=True)

    def transcript(self, text):
        self._transcript.append(text)

    def check(self, cond, what, detail=None):
        """One check, one line. Returns cond so callers can branch on it."""
        if cond:
            self.passed += 1
            print("ok   - %s" % what, flush=True)
        else:
            self.failed += 1
            msg = "FAIL - %s" % what
            if detail is not None:
                msg += "\n       " + str(detail).replace("\n", "\n       ")
            print(msg, flush=True)
        return bool(cond)

    def require(self, cond, what, detail=None):
        """A check the rest of the test cannot do without."""
        if not self.check(cond, what, detail):
            raise Failure("stopping: a required check failed")
        return cond

    def teardown(self):
        if self._torn_down:
            return
        self._torn_down = True
        # Servers first, then the scheduler: fewer reconnect attempts in logs.
        for d in reversed(self._daemons):
            try:
                d.stop()
            except Exception:
                pass
        for fn in reversed(self._cleanups):
            try:
                fn()
            except Exception as e:
                print("# cleanup error: %s" % e)

    def dump_logs(self):
        for d in self._daemons:
            if d.quiet:
                continue
            print("----- tail of %s (%s, pid %s, exit status %s) -----"
                  % (os.path.basename(d.log_path), " ".join(d.argv[:1] + d.argv[1:]),
                     d.proc.pid if d.proc else "-", d.poll()))
            print(d.tail(40))
        if self._transcript:
            print("----- last flctl runs -----")
            print("\n".join(self._transcript[-6:]))

    def remove_tmp(self):
        if os.environ.get("FL_ITEST_KEEP"):
            print("# kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _raise_timeout(signum, frame):
    raise Failure("the test ran out of time (alarm)")


def _raise_exit(signum, frame):
    raise SystemExit(EXIT_FAIL)


def run_test(name, main, timeout=120, need_root=False):
    """Runs main(t) and exits with 0 (all checks passed), 1 or 77."""
    if need_root and os.geteuid() != 0:
        print("SKIP: %s needs root" % name)
        sys.exit(EXIT_SKIP)
    for exe in (SCHEDULERD, SERVERD, FLCTL):
        if not os.access(exe, os.X_OK):
            print("FAIL - %s is not built (FL_BUILDDIR=%s)" % (exe, BUILDDIR))
            sys.exit(EXIT_FAIL)
    t = Test(name, timeout)
    atexit.register(t.teardown)
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGINT, _raise_exit)
    signal.signal(signal.SIGALRM, _raise_timeout)
    signal.alarm(timeout)
    print("# %s: build dir %s, scratch %s" % (name, BUILDDIR, t.tmp), flush=True)
    status = EXIT_FAIL
    started = time.monotonic()
    try:
        main(t)
        status = EXIT_PASS if t.failed == 0 and t.passed > 0 else EXIT_FAIL
    except Skip as e:
        print("SKIP: %s" % e)
        status = EXIT_SKIP
    except Failure as e:
        print("FAIL - %s" % e)
        t.failed += 1
    except SystemExit:
        print("FAIL - interrupted")
        t.failed += 1
    except Exception:
        print("FAIL - the test itself raised:")
        traceback.print_exc(file=sys.stdout)
        t.failed += 1
    finally:
        signal.alarm(0)
        try:
            t.teardown()
        except BaseException:
            pass
        try:
            if status == EXIT_FAIL:
                t.dump_logs()
        finally:
            t.remove_tmp()
    print("# %s: %d passed, %d failed, %.1fs" % (name, t.passed, t.failed, time.monotonic() - started))
    sys.stdout.flush()
    sys.exit(status)


# ---------------------------------------------------------------- helpers for checks

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def all_strings(obj):
    """Every string (and number, as a string) anywhere inside a JSON value."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from all_strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from all_strings(v)
    elif isinstance(obj, bool) or obj is None:
        return
    else:
        yield str(obj)


def ranks_by_id(nodes):
    return {n.get("node_id"): n.get("rank_id") for n in nodes or []}


def cpu_seconds(pid):
    """User+system CPU time pid has used so far (seconds), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_used_over(pid, seconds):
    """CPU seconds pid burns during the next `seconds` of wall time."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    after = cpu_seconds(pid)
    return None if before is None or after is None else after - before


FASHION_MNIST = os.environ.get("FL_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FL_CLIENT = os.path.join(BUILDDIR, "fl-client")


def require_fl_client():
    """For the tests that train for real: fl-client must be built (Failure),
    and Fashion-MNIST installed (Skip). Returns (FL_CLIENT, FASHION_MNIST)."""
    if not os.access(FL_CLIENT, os.X_OK):
        raise Failure("%s is not built" % FL_CLIENT)
    if not os.path.exists(os.path.join(FASHION_MNIST, "t10k-images-idx3-ubyte.gz")):
        raise Skip("Fashion-MNIST is not in %s (apt install dataset-fashion-mnist)" % FASHION_MNIST)
    return FL_CLIENT, FASHION_MNIST


def pid_gone(pid):
    """True when pid no longer exists (or is a zombie nobody reaped yet)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
