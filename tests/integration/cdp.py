# SPDX-License-Identifier: LGPL-2.1-or-later
"""Headless Chromium driven over the DevTools protocol, standard library
only: a small WebSocket client (RFC 6455, client side) and the few CDP
methods the status-page test uses. No browser is downloaded: Debian's
chromium is started with a fresh profile and no network of its own beyond
the pages it is sent to.

    b = cdp.Browser(t, "/usr/bin/chromium")     # harness Test for cleanup
    b.navigate("http://127.0.0.1:11202/")
    b.evaluate("document.title")
    b.screenshot("/tmp/page.png", 1280, 900)
"""

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--no-default-browser-check",
         "--password-store=basic", "--use-mock-keychain"]


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(Exception):
    pass


class WebSocket:
    """A client WebSocket over a plain TCP socket (ws:// on loopback)."""

    def __init__(self, url, timeout=30):
        assert url.startswith("ws://")
        rest = url[len("ws://"):]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.partition(":")
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise CdpError("the DevTools socket closed during the handshake")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise CdpError("WebSocket handshake refused: %r" % status)

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise CdpError("the DevTools socket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self.send_frame(0x1, text.encode())

    def recv_message(self):
        """The next whole text message (fragments joined, pings answered)."""
        parts = []
        while True:
            b0, b1 = self._recv_exact(2)
            fin, opcode, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            mask = self._recv_exact(4) if b1 & 0x80 else None
            payload = self._recv_exact(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                raise CdpError("the browser closed the DevTools connection")
            if opcode in (0x1, 0x2, 0x0):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode("utf-8", "replace")

    def close(self):
        try:
            self.send_frame(0x8, b"")
        except OSError:
            pass
        self.sock.close()


class Browser:
    """One headless Chromium with one page, killed at the test's teardown."""

    def __init__(self, t, binary, timeout=60):
        import harness
        self.t = t
        self.profile = os.path.join(t.tmp, "chromium-profile")
        os.makedirs(self.profile, exist_ok=True)
        argv = [binary] + FLAGS + ["--user-data-dir=" + self.profile, "--remote-debugging-port=0",
                                   "--remote-debugging-address=127.0.0.1", "about:blank"]
        env = harness._clean_env({"HOME": self.profile})
        self.daemon = harness.Daemon(t, "chromium", argv, env=env).start()
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        if not harness.wait_until(lambda: os.path.exists(port_file) or not self.daemon.running(), timeout):
            raise harness.Failure("chromium wrote no DevToolsActivePort within %ds:\n%s"
                                  % (timeout, self.daemon.tail()))
        if not self.daemon.running():
            raise harness.Failure("chromium exited (status %s):\n%s" % (self.daemon.poll(), self.daemon.tail()))
        port = None
        for _ in range(50):
            try:
                with open(port_file) as f:
                    port = int(f.readline())
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        if port is None:
            raise harness.Failure("chromium's DevToolsActivePort cannot be read")
        self.base = "http://127.0.0.1:%d" % port
        page = None
        deadline = time.monotonic() + timeout
        while page is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/json/list", timeout=5) as r:
                    targets = json.loads(r.read().decode())
                page = next((x for x in targets if x.get("type") == "page"), None)
            except (OSError, ValueError):
                pass
            if page is None:
                time.sleep(0.2)
        if page is None:
            raise harness.Failure("chromium has no page target")
        self.ws = WebSocket(page["webSocketDebuggerUrl"], timeout=timeout)
        self.next_id = 0
        t._cleanups.append(self.close)

    def call(self, method, params=None):
        self.next_id += 1
        my = self.next_id
        self.ws.send_text(json.dumps({"id": my, "method": method, "params": params or {}}))
        while True:
            msg = json.loads(self.ws.recv_message())
            if msg.get("id") != my:
                continue        # an event, or an answer to another call
            if "error" in msg:
                raise CdpError("%s: %s" % (method, msg["error"]))
            return msg.get("result", {})

    def navigate(self, url):
        self.call("Page.enable")
        return self.call("Page.navigate", {"url": url})

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise CdpError("%s: %s" % (expression, r["exceptionDetails"].get("text")))
        return r.get("result", {}).get("value")

    def screenshot(self, path, width, height):
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        data = base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        self.daemon.stop()
