# SPDX-License-Identifier: LGPL-2.1-or-later
"""An independent device client for the integration tests.

The FlatBuffers code is generated at test time by Debian's flatc from the
project's src/shared/fl_protocol.fbs and run on Debian's python3-flatbuffers,
so a codec of ours that only agrees with itself is caught. Nothing here uses
the project's C codec.

    proto = fl_proto.Proto(t.tmp)          # generates the code once per test
    body = proto.request_fl_job("Job", "dev-1", data_size=10)
    r = proto.call(url, "startFLJob", body) # Reply: status, ctype, body, msg, text
    r.msg["retcode"], r.msg["fl_plan_config"]["epochs"], ...

A model is a list of (name, [float, ...]) in order; FeatureMapList buffers
are the model file format (write_model). Responses are checked by an
independent bounds-checking verifier (verify()) driven by the .fbs before the
generated readers touch them (they check nothing).

Only the standard library, python3-flatbuffers and flatc are used; Skip
(exit 77) is raised only when flatc or the flatbuffers module is missing.
"""

import array
import http.client
import importlib
import math
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
import ssl
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("FL_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
SCHEMA = os.path.join(SRCDIR, "src", "shared", "fl_protocol.fbs")
IDENTIFIER = b"FLJ0"
NAMESPACE = "mindspore.schema"

# ResponseCode of device-protocol.md
SUCCEED, SUC_NOT_READY, REPEAT_REQUEST, SUC_NOT_MATCH = 200, 201, 202, 204
OUT_OF_TIME, NOT_SELECTED, REQUEST_ERROR, SYSTEM_ERROR = 300, 301, 400, 500
RETCODE_NAMES = {200: "SUCCEED", 201: "SucNotReady", 202: "RepeatRequest", 204: "SucNotMatch",
                 300: "OutOfTime", 301: "NotSelected", 400: "RequestError", 500: "SystemError"}

SAFEMODE_TEXT = "The cluster is in safemode."
DISABLED_TEXT = "The server's training job is disabled or finished."

ROUND_REQUEST = {"startFLJob": "RequestFLJob", "updateModel": "RequestUpdateModel",
                 "getModel": "RequestGetModel", "pushMetrics": "RequestPushMetrics"}
ROUND_RESPONSE = {"startFLJob": "ResponseFLJob", "updateModel": "ResponseUpdateModel",
                  "getModel": "ResponseGetModel", "pushMetrics": "ResponsePushMetrics"}


class ProtoError(Exception):
    """A buffer our independent reader refuses."""


def _skip(msg):
    # harness.Skip when the harness is there (exit 77 through run_test).
    try:
        import harness
        raise harness.Skip(msg)
    except ImportError:
        print("SKIP: " + msg)
        sys.exit(77)


# ---------------------------------------------------------------- floats

def f32(x):
    """x rounded to the nearest float32, as a Python float."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def ulp_distance(a, b):
    """Distance between two float32 values in units in the last place."""
    def ordered(x):
        u = f32_bits(x)
        return u if u < 0x80000000 else 0x80000000 - u
    return abs(ordered(a) - ordered(b))


def _le_floats(values):
    a = array.array("f", values)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def _floats_from_le(raw):
    a = array.array("f")
    a.frombytes(raw)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tolist()


def float_close(got, want, rel=1e-6, ulps=1):
    if got == want:
        return True
    if math.isnan(got) or math.isnan(want):
        return False
    if ulp_distance(got, want) <= ulps:
        return True
    return abs(got - want) <= rel * max(abs(want), abs(got))


def model_values(model):
    return {name: list(vals) for name, vals in model}


def compare_models(got, want, rel=1e-6, ulps=1):
    """None when got equals want (names, order-insensitive; sizes; values
    within ulps or rel), else a string saying where they first differ."""
    if got is None:
        return "no model"
    g, w = model_values(got), model_values(want)
    if sorted(g) != sorted(w):
        return "names differ: got %s, want %s" % (sorted(g), sorted(w))
    for name in w:
        if len(g[name]) != len(w[name]):
            return "%s: %d values, want %d" % (name, len(g[name]), len(w[name]))
        for i, (a, b) in enumerate(zip(g[name], w[name])):
            if not float_close(a, b, rel, ulps):
                return "%s[%d] = %r, want %r (%d ulp apart)" % (name, i, a, b, ulp_distance(a, b))
    return None


def fedavg(uploads):
    """The FedAvg of device-protocol.md, computed independently: uploads is a
    list of (data_size, model already multiplied by data_size); the result is
    sum(uploads) / sum(data_size), each value rounded once to float32."""
    total = sum(ds for ds, _ in uploads)
    names = [n for n, _ in uploads[0][1]]
    out = []
    for name in names:
        sums = None
        for _, model in uploads:
            vals = model_values(model)[name]
            sums = list(vals) if sums is None else [s + v for s, v in zip(sums, vals)]
        out.append((name, array.array("f", [s / total for s in sums]).tolist()))   # one rounding to float32
    return out


def upload(model, shift, ds):
    """A device's upload in the tests: its weights (the model shifted by
    shift) times data_size, each step rounded to float32 as a device does."""
    return [(n, [f32(f32(v + shift) * ds) for v in vals]) for n, vals in model]


def mean(uploads, total):
    """sum(uploads) / total in doubles, rounded once to float32: the model a
    server must produce from uploads that were already multiplied by their
    data sizes, total being the sum of those data sizes."""
    return [(n, [f32(sum(u[i][1][k] for u in uploads) / total) for k in range(len(vals))])
            for i, (n, vals) in enumerate(uploads[0])]


def scale(model, k):
    """model x k in float32, as a device uploads it (weights x data_size)."""
    return [(n, array.array("f", [v * k for v in vals]).tolist()) for n, vals in model]


# ---------------------------------------------------------------- independent verifier

_SCALARS = {"bool": 1, "byte": 1, "ubyte": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2,
            "uint16": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "long": 8,
            "ulong": 8, "int64": 8, "uint64": 8, "double": 8, "float64": 8}


def parse_schema(path):
    """{table: [(field, type)]} and {enum: underlying type} from the .fbs."""
    text = re.sub(r"//[^\n]*", "", open(path, encoding="utf-8").read())
    enums = {m.group(1): m.group(2) for m in re.finditer(r"enum\s+(\w+)\s*:\s*(\w+)\s*\{", text)}
    tables = {}
    for name, body in re.findall(r"table\s+(\w+)\s*\{([^}]*)\}", text):
        fields = []
        for decl in body.split(";"):
            decl = decl.strip()
            if decl:
                fname, ftype = (s.strip() for s in decl.split(":", 1))
                fields.append((fname, ftype.split("=")[0].strip()))
        tables[name] = fields
    return tables, enums


class Verifier:
    """Checks every offset, length, alignment and terminator of a buffer of a
    given root table against the buffer, as a FlatBuffers verifier does."""

    MAX_DEPTH = 64

    def __init__(self, tables, enums):
        self.tables, self.enums = tables, enums

    def verify(self, buf, table):
        buf = bytes(buf)
        n = len(buf)
        if n < 8:
            raise ProtoError("buffer of %d bytes is shorter than a root offset and a table" % n)
        root = struct.unpack_from("<I", buf, 0)[0]
        self._table(buf, root, table, 0)

    def _u32(self, buf, pos, what):
        if pos < 0 or pos + 4 > len(buf):
            raise ProtoError("%s at %d is outside the buffer (%d bytes)" % (what, pos, len(buf)))
        if pos % 4:
            raise ProtoError("%s at %d is not 4-aligned" % (what, pos))
        return struct.unpack_from("<I", buf, pos)[0]

    def _table(self, buf, tpos, table, depth):
        if depth > self.MAX_DEPTH:
            raise ProtoError("nesting deeper than %d" % self.MAX_DEPTH)
        n = len(buf)
        if tpos % 4 or tpos + 4 > n:
            raise ProtoError("table %s at %d is misaligned or outside the buffer" % (table, tpos))
        soff = struct.unpack_from("<i", buf, tpos)[0]
        vt = tpos - soff
        if vt < 0 or vt % 2 or vt + 4 > n:
            raise ProtoError("vtable of %s at %d is outside the buffer" % (table, vt))
        vsize, tsize = struct.unpack_from("<HH", buf, vt)
        if vsize < 4 or vsize % 2 or vt + vsize > n:
            raise ProtoError("vtable of %s: size %d does not fit" % (table, vsize))
        if tsize < 4 or tpos + tsize > n:
            raise ProtoError("table %s: inline size %d does not fit" % (table, tsize))
        fields = self.tables[table]
        for slot in range(min((vsize - 4) // 2, len(fields))):
            voff = struct.unpack_from("<H", buf, vt + 4 + 2 * slot)[0]
            if voff == 0:
                continue
            fname, ftype = fields[slot]
            what = "%s.%s" % (table, fname)
            fpos = tpos + voff
            base = ftype.strip("[]")
            base = self.enums.get(base, base)
            if ftype.startswith("[") or base == "string" or base in self.tables:
                if voff + 4 > tsize:
                    raise ProtoError("%s: offset field outside its table" % what)
                target = fpos + self._u32(buf, fpos, what)
                if ftype.startswith("["):
                    self._vector(buf, target, base, what, depth)
                elif base == "string":
                    self._string(buf, target, what)
                else:
                    self._table(buf, target, base, depth + 1)
            else:
                size = _SCALARS[base]
                if voff + size > tsize:
                    raise ProtoError("%s: scalar outside its table" % what)
                if fpos % size:
                    raise ProtoError("%s: scalar at %d is misaligned" % (what, fpos))

    def _string(self, buf, pos, what):
        length = self._u32(buf, pos, what + " (string length)")
        end = pos + 4 + length
        if end + 1 > len(buf):
            raise ProtoError("%s: string of %d bytes runs past the buffer" % (what, length))
        if buf[end] != 0:
            raise ProtoError("%s: string is not NUL-terminated" % what)

    def _vector(self, buf, pos, base, what, depth):
        count = self._u32(buf, pos, what + " (vector length)")
        elem = 4 if (base == "string" or base in self.tables) else _SCALARS[base]
        if pos + 4 + count * elem > len(buf):
            raise ProtoError("%s: vector of %d elements runs past the buffer" % (what, count))
        if elem == 8 and (pos + 4) % 8:
            raise ProtoError("%s: vector of 8-byte elements is misaligned" % what)
        if base == "string" or base in self.tables:
            for i in range(count):
                p = pos + 4 + 4 * i
                target = p + self._u32(buf, p, "%s[%d]" % (what, i))
                if base == "string":
                    self._string(buf, target, "%s[%d]" % (what, i))
                else:
                    self._table(buf, target, base, depth + 1)


# ---------------------------------------------------------------- HTTP

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def use_ca(cafile):
    """From now on https:// servers are checked against cafile (a TLS cluster)."""
    global _opener
    ctx = ssl.create_default_context(cafile=cafile)
    _opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ctx))


def http_request(method, url, body=None, timeout=10, content_type="application/octet-stream"):
    """(status, content_type, body bytes); status None and the error text as
    body when there was no HTTP answer."""
    headers = {"Content-Type": content_type} if body is not None else {}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with _opener.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
        return None, None, str(e).encode()


def post(url, body, timeout=10):
    return http_request("POST", url, body, timeout)


def get(url, timeout=10):
    return http_request("GET", url, None, timeout)


def post_raw(url, body, chunked=False, timeout=15, content_length=None):
    """POSTs body over a plain socket, tolerating a server that answers (e.g.
    413) and closes before the whole body is sent. With chunked, no
    Content-Length is sent (Transfer-Encoding: chunked); content_length
    claims another length than the body's. Returns
    (status, content_type, body); status None when nothing came back."""
    u = urllib.parse.urlsplit(url)
    head = ["POST %s HTTP/1.1" % (u.path or "/"), "Host: %s" % u.netloc,
            "Content-Type: application/octet-stream", "Connection: close"]
    head.append("Transfer-Encoding: chunked" if chunked else
                "Content-Length: %d" % (len(body) if content_length is None else content_length))
    data = ("\r\n".join(head) + "\r\n\r\n").encode()
    if chunked:
        step = 64 * 1024
        parts = [data]
        for i in range(0, len(body), step):
            piece = body[i:i + step]
            parts.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        parts.append(b"0\r\n\r\n")
        data = b"".join(parts)
    else:
        data += body
    deadline = time.monotonic() + timeout
    try:
        s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    except OSError as e:
        return None, None, str(e).encode()
    received = b""
    try:
        s.setblocking(False)
        sent = 0
        while time.monotonic() < deadline:
            want_w = [s] if sent < len(data) else []
            r, w, _ = select.select([s], want_w, [], max(0.0, deadline - time.monotonic()))
            if r:
                try:
                    chunk = s.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    chunk = b""
                if not chunk:
                    break
                received += chunk
            if w:
                try:
                    sent += s.send(data[sent:sent + 262144])
                except (BrokenPipeError, ConnectionResetError):
                    sent = len(data)     # the server stopped reading: its answer may be there
                except BlockingIOError:
                    pass
    finally:
        s.close()
    if not received.startswith(b"HTTP/"):
        return None, None, b"no HTTP answer (%d bytes received)" % len(received)
    head, _, rest = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, None, b"bad status line " + lines[0].encode()
    ctype = None
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        if k.strip().lower() == "content-type":
            ctype = v.strip()
    return status, ctype, rest


class KeepAlive:
    """One persistent HTTP/1.1 connection (as MindSpore's OkHttp clients
    keep): rounds posted one after another on it."""

    def __init__(self, base_url, proto, timeout=10):
        u = urllib.parse.urlsplit(base_url)
        self.proto = proto
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        self.sockets = set()

    def call(self, round_name, body):
        try:
            self.conn.request("POST", "/" + round_name, body, {"Content-Type": "application/octet-stream"})
            if self.conn.sock is not None:
                self.sockets.add(self.conn.sock)
            r = self.conn.getresponse()
            raw = r.read()
        except (OSError, http.client.HTTPException) as e:
            rep = Reply(None, None, str(e).encode())
            rep.error = str(e)
            return rep
        rep = Reply(r.status, r.getheader("Content-Type"), raw)
        try:
            rep.msg = self.proto.parse(round_name, raw)
        except ProtoError as e:
            rep.error = str(e)
        return rep

    def close(self):
        self.conn.close()


class Reply:
    """One answer to a round: HTTP status, Content-Type, raw body, and either
    msg (the parsed response table, a dict) or text (a plain-text answer), or
    error (why neither)."""

    def __init__(self, status, ctype, body):
        self.status, self.ctype, self.body = status, ctype, body
        self.msg = self.text = self.error = None

    @property
    def retcode(self):
        return self.msg.get("retcode") if self.msg else None

    def __repr__(self):
        if self.msg is not None:
            m = dict(self.msg)
            if m.get("feature_map"):
                m["feature_map"] = "<%d maps>" % len(m["feature_map"])
            return "<HTTP %s %s %r>" % (self.status, self.ctype, m)
        return "<HTTP %s %s %r%s>" % (self.status, self.ctype, self.body[:300],
                                      " error: %s" % self.error if self.error else "")


# ---------------------------------------------------------------- the generated code

class Proto:
    """Code generated by flatc from the project's .fbs, builders for every
    request table and parsers for every response table."""

    def __init__(self, tmpdir, schema=SCHEMA):
        flatc = shutil.which("flatc")
        if not flatc:
            _skip("flatc is not installed (Debian: flatbuffers-compiler)")
        try:
            import flatbuffers
        except ImportError:
            _skip("the flatbuffers Python module is not installed (Debian: python3-flatbuffers)")
        self.flatbuffers = flatbuffers
        if not os.path.exists(schema):
            raise RuntimeError("schema %s not found (set FL_SRCDIR)" % schema)
        out = os.path.join(tmpdir, "fbgen")
        os.makedirs(out, exist_ok=True)
        p = subprocess.run([flatc, "--python", "-o", out, schema], capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("flatc --python failed: %s%s" % (p.stdout, p.stderr))
        # A fresh package per generation: another test's copy never shadows it.
        if out not in sys.path:
            sys.path.insert(0, out)
        for name in list(sys.modules):
            if name == "mindspore" or name.startswith("mindspore."):
                del sys.modules[name]
        importlib.invalidate_caches()
        self.tables, self.enums = parse_schema(schema)
        self.mod = {}
        for table in self.tables:
            self.mod[table] = importlib.import_module("%s.%s" % (NAMESPACE, table))
        self.verifier = Verifier(self.tables, self.enums)
        self.schema = schema
        self.gen_dir = out

    # -- the generated module functions (flatc prefixes them with the table
    #    name; newer versions also emit unprefixed ones)
    def _fn(self, table, name):
        m = self.mod[table]
        f = getattr(m, table + name, None) or getattr(m, name, None)
        if f is None:
            raise AttributeError("generated %s has no %s" % (table, name))
        return f

    def _cls(self, table):
        return getattr(self.mod[table], table)

    @staticmethod
    def _end_vector(b, n):
        try:
            return b.EndVector()
        except TypeError:       # flatbuffers < 2: EndVector(numElems)
            return b.EndVector(n)

    def _builder(self):
        return self.flatbuffers.Builder(1024)

    def _finish(self, b, root, identifier):
        if identifier:
            b.Finish(root, file_identifier=identifier if isinstance(identifier, bytes) else IDENTIFIER)
        else:
            b.Finish(root)
        return bytes(b.Output())

    def _string(self, b, s):
        return None if s is None else b.CreateString(s)

    def _feature_maps(self, b, model):
        """Builds [FeatureMap] of model; returns the vector's offset."""
        offsets = []
        for name, values in model:
            n = self._string(b, name)
            self._fn("FeatureMap", "StartDataVector")(b, len(values))
            if len(values) <= 256:
                for v in reversed(values):
                    b.PrependFloat32(v)
            else:
                # Large vectors as the library's own CreateByteVector places
                # bytes (PrependFloat32 one by one is too slow in Python).
                raw = _le_floats(values)
                b.head = b.Head() - len(raw)
                b.Bytes[b.Head():b.Head() + len(raw)] = raw
            d = self._end_vector(b, len(values))
            self._fn("FeatureMap", "Start")(b)
            if n is not None:
                self._fn("FeatureMap", "AddWeightFullname")(b, n)
            self._fn("FeatureMap", "AddData")(b, d)
            offsets.append(self._fn("FeatureMap", "End")(b))
        b.StartVector(4, len(offsets), 4)
        for o in reversed(offsets):
            b.PrependUOffsetTRelative(o)
        return self._end_vector(b, len(offsets))

    @staticmethod
    def now_ms():
        return str(int(time.time() * 1000))

    # -- builders of every request table
    def request_fl_job(self, fl_name, fl_id, iteration=0, data_size=1, timestamp=None, identifier=True,
                       sign_data=None, key_attestation=None, equip_cert=None, equip_ca_cert=None, root_cert=None):
        b = self._builder()
        name, fid = self._string(b, fl_name), self._string(b, fl_id)
        ts = self._string(b, timestamp if timestamp is not None else self.now_ms())
        sig = b.CreateByteVector(bytes(sign_data)) if sign_data is not None else None
        ka, ec, eca, rc = (self._string(b, s) for s in (key_attestation, equip_cert, equip_ca_cert, root_cert))
        T = "RequestFLJob"
        self._fn(T, "Start")(b)
        if name is not None:
            self._fn(T, "AddFlName")(b, name)
        if fid is not None:
            self._fn(T, "AddFlId")(b, fid)
        self._fn(T, "AddIteration")(b, iteration)
        self._fn(T, "AddDataSize")(b, data_size)
        self._fn(T, "AddTimestamp")(b, ts)
        if sig is not None:
            self._fn(T, "AddSignData")(b, sig)
        for fn, off in (("AddKeyAttestation", ka), ("AddEquipCert", ec), ("AddEquipCaCert", eca),
                        ("AddRootCert", rc)):
            if off is not None:
                self._fn(T, fn)(b, off)
        return self._finish(b, self._fn(T, "End")(b), identifier)

    def request_update_model(self, fl_name, fl_id, iteration, model, timestamp=None, identifier=True,
                             signature=None, upload_loss=None, unknown_ints=None):
        """unknown_ints {slot: int} adds fields past the schema's, as a
        newer client's appended fields would be."""
        b = self._builder()
        name, fid = self._string(b, fl_name), self._string(b, fl_id)
        maps = self._feature_maps(b, model) if model is not None else None
        ts = self._string(b, timestamp if timestamp is not None else self.now_ms())
        sig = b.CreateByteVector(bytes(signature)) if signature is not None else None
        T = "RequestUpdateModel"
        if unknown_ints:
            b.StartObject(max(len(self.tables[T]), max(unknown_ints) + 1))
            for slot, value in unknown_ints.items():
                b.PrependInt32Slot(slot, value, 0)
        else:
            self._fn(T, "Start")(b)
        if name is not None:
            self._fn(T, "AddFlName")(b, name)
        if fid is not None:
            self._fn(T, "AddFlId")(b, fid)
        self._fn(T, "AddIteration")(b, iteration)
        if maps is not None:
            self._fn(T, "AddFeatureMap")(b, maps)
        self._fn(T, "AddTimestamp")(b, ts)
        if sig is not None:
            self._fn(T, "AddSignature")(b, sig)
        if upload_loss is not None:
            self._fn(T, "AddUploadLoss")(b, upload_loss)
        return self._finish(b, self._fn(T, "End")(b), identifier)

    def request_get_model(self, fl_name, iteration, timestamp=None, identifier=True):
        b = self._builder()
        name = self._string(b, fl_name)
        ts = self._string(b, timestamp if timestamp is not None else self.now_ms())
        T = "RequestGetModel"
        self._fn(T, "Start")(b)
        if name is not None:
            self._fn(T, "AddFlName")(b, name)
        self._fn(T, "AddIteration")(b, iteration)
        self._fn(T, "AddTimestamp")(b, ts)
        return self._finish(b, self._fn(T, "End")(b), identifier)

    def request_push_metrics(self, loss, accuracy, identifier=True):
        b = self._builder()
        T = "RequestPushMetrics"
        self._fn(T, "Start")(b)
        self._fn(T, "AddLoss")(b, loss)
        self._fn(T, "AddAccuracy")(b, accuracy)
        return self._finish(b, self._fn(T, "End")(b), identifier)

    def feature_map_list(self, model, identifier=True):
        b = self._builder()
        maps = self._feature_maps(b, model)
        T = "FeatureMapList"
        self._fn(T, "Start")(b)
        self._fn(T, "AddFeatureMap")(b, maps)
        return self._finish(b, self._fn(T, "End")(b), identifier)

    def write_model(self, path, model):
        data = self.feature_map_list(model)
        with open(path, "wb") as f:
            f.write(data)
        return data

    # -- readers
    def verify(self, buf, table):
        """Raises ProtoError when buf is no valid buffer of table."""
        self.verifier.verify(buf, table)

    def _root(self, buf, table):
        self.verify(buf, table)
        cls = self._cls(table)
        get_root = getattr(cls, "GetRootAs", None) or getattr(cls, "GetRootAs" + table)
        return get_root(bytearray(buf), 0)

    @staticmethod
    def _s(v):
        return v.decode("utf-8") if isinstance(v, (bytes, bytearray)) else v

    def _read_maps(self, obj):
        if obj.FeatureMapIsNone():
            return None
        out = []
        for i in range(obj.FeatureMapLength()):
            fm = obj.FeatureMap(i)
            n = fm.DataLength()
            if n <= 256:
                vals = [fm.Data(j) for j in range(n)]
            else:
                # The generated reader locates the vector; its floats are read in one go.
                pos = fm._tab.Vector(fm._tab.Offset(6))
                vals = _floats_from_le(bytes(fm._tab.Bytes[pos:pos + 4 * n]))
            out.append((self._s(fm.WeightFullname()), vals))
        return out

    def _plan(self, p):
        if p is None:
            return None
        agg = p.Aggregation()
        es = p.EarlyStop()
        cipher = p.Cipher()
        return {
            "fl_name": self._s(p.FlName()), "iterations": p.Iterations(), "epochs": p.Epochs(),
            "mini_batch": p.MiniBatch(), "shuffle": p.Shuffle(), "lr": p.Lr(),
            "early_stop": None if es is None else {"type": es.EarlyStopType(), "weight": es.Weight(),
                                                   "rounds": es.Rounds()},
            "aggregation": None if agg is None else {"type": agg.Type(),
                                                     "weights": [agg.Weights(i) for i in range(agg.WeightsLength())]},
            "metrics": [p.Metrics(i) for i in range(p.MetricsLength())],
            "cipher": None if cipher is None else {"encrypt_type": cipher.EncryptType(), "t": cipher.T()},
        }

    def parse(self, round_name, buf):
        """The response table of round_name, as a dict; ProtoError when the
        buffer is not one."""
        table = ROUND_RESPONSE[round_name]
        try:
            r = self._root(buf, table)
            d = {"retcode": r.Retcode(), "has_identifier": bytes(buf[4:8]) == IDENTIFIER}
            if table == "ResponsePushMetrics":
                return d
            d["reason"] = self._s(r.Reason())
            if table != "ResponseUpdateModel":
                d["iteration"] = r.Iteration()
            if table == "ResponseFLJob":
                d["is_selected"] = r.IsSelected()
                d["fl_plan_config"] = self._plan(r.FlPlanConfig())
            if table in ("ResponseFLJob", "ResponseUpdateModel"):
                d["next_req_time"] = self._s(r.NextReqTime())
            d["feature_map"] = self._read_maps(r)
            d["timestamp"] = self._s(r.Timestamp())
            return d
        except ProtoError:
            raise
        except Exception as e:      # the generated readers check nothing; the verifier should have
            raise ProtoError("%s: %s: %s" % (table, type(e).__name__, e))

    def parse_model(self, buf):
        """A FeatureMapList buffer as a model [(name, [floats])]."""
        try:
            r = self._root(buf, "FeatureMapList")
            return self._read_maps(r) or []
        except ProtoError:
            raise
        except Exception as e:
            raise ProtoError("FeatureMapList: %s: %s" % (type(e).__name__, e))

    # -- byte patching for malformed inputs
    def update_data_vector_pos(self, buf, index=0):
        """Byte offset of the length word of feature_map[index].data in a
        RequestUpdateModel buffer (found with the generated reader)."""
        r = self._root(buf, "RequestUpdateModel")
        fm = r.FeatureMap(index)
        o = fm._tab.Offset(6)            # slot 1: data
        return fm._tab.Vector(o) - 4

    def update_name_pos(self, buf, index=0):
        """Byte offset of the length word of feature_map[index].weight_fullname."""
        r = self._root(buf, "RequestUpdateModel")
        fm = r.FeatureMap(index)
        o = fm._tab.Offset(4)            # slot 0: weight_fullname
        return fm._tab.Indirect(fm._tab.Pos + o)

    def maps_vector_pos(self, buf):
        """Byte offset of the length word of the feature_map vector of a
        RequestUpdateModel buffer."""
        r = self._root(buf, "RequestUpdateModel")
        o = r._tab.Offset(10)            # slot 3: feature_map
        return r._tab.Vector(o) - 4

    # -- rounds over HTTP
    def call(self, base_url, round_name, body, timeout=10):
        """POSTs body to base_url/round_name. Reply.msg is the parsed response
        when the answer is a FlatBuffers body, Reply.text a plain-text one."""
        status, ctype, raw = post(base_url.rstrip("/") + "/" + round_name, body, timeout)
        rep = Reply(status, ctype, raw)
        if status is None:
            rep.error = raw.decode(errors="replace")
            return rep
        mime = (ctype or "").split(";")[0].strip().lower()
        if mime.startswith("text/"):
            rep.text = raw.decode("utf-8", "replace")
            return rep
        try:
            rep.msg = self.parse(round_name, raw)
        except ProtoError as e:
            rep.error = str(e)
        return rep

    def start_fl_job(self, base_url, fl_name, fl_id, data_size, iteration=0, **kw):
        return self.call(base_url, "startFLJob", self.request_fl_job(fl_name, fl_id, iteration, data_size, **kw))

    def update_model(self, base_url, fl_name, fl_id, iteration, model, **kw):
        return self.call(base_url, "updateModel", self.request_update_model(fl_name, fl_id, iteration, model, **kw))

    def get_model(self, base_url, fl_name, iteration, **kw):
        return self.call(base_url, "getModel", self.request_get_model(fl_name, iteration, **kw))

    def push_metrics(self, base_url, loss, accuracy, **kw):
        return self.call(base_url, "pushMetrics", self.request_push_metrics(loss, accuracy, **kw))

    def fetch_model(self, base_url, iteration=None, timeout=10):
        """GET /model[?iteration=N]: (status, raw bytes, model or None)."""
        url = base_url.rstrip("/") + "/model" + ("" if iteration is None else "?iteration=%d" % iteration)
        status, ctype, raw = get(url, timeout)
        model = None
        if status == 200:
            try:
                model = self.parse_model(raw)
            except ProtoError:
                model = None
        return status, raw, model


def describe(rep):
    """A short description of a Reply for check details."""
    return repr(rep)


def retcode_name(code):
    return "%s (%s)" % (code, RETCODE_NAMES.get(code, "?"))


# ---------------------------------------------------------------- a training cluster

def job_argv(job):
    """Scheduler options for a dict of job parameters (MindSpore's names)."""
    return ["--%s=%s" % (k, v) for k, v in job.items()]


class TrainingCluster:
    """A scheduler with the job's options and n servers that load model.

    local=True starts one fl-serverd --local_server_num=n, else n processes."""

    def __init__(self, t, proto, n_servers, job, model, name="sched", local=False, server_extra=(),
                 node_timeout=10, start=True, config=None, cafile=None):
        import harness
        self.t, self.proto, self.job = t, proto, dict(job)
        self.fl_name = self.job.get("fl_name", "Lenet")
        # config: a configuration file for every daemon; cafile: the cluster speaks HTTPS (use_ca()).
        self.c = harness.Cluster(t, server_num=n_servers, node_timeout=node_timeout, name=name, config=config,
                                 cafile=cafile)
        self.scheme = "https" if cafile else "http"
        self.n_servers, self.local = n_servers, local
        self.model_path = os.path.join(t.tmp, name + "-initial.fl")
        proto.write_model(self.model_path, model)
        self.server_extra = ["--model_path=" + self.model_path] + list(server_extra)
        self.daemons, self.urls = [], []
        if start:
            self.c.start_scheduler(extra=job_argv(self.job))
            self.start_servers()

    def start_servers(self, count=None):
        count = self.n_servers if count is None else count
        if self.local:
            d = self.c.start_server(local_server_num=count, extra=self.server_extra, timeout=30)
            self.daemons.append(d)
            self.urls += ["%s://127.0.0.1:%d" % (self.scheme, p) for p in d.ports]
        else:
            for _ in range(count):
                d = self.c.start_server(extra=self.server_extra)
                self.daemons.append(d)
                self.urls.append("%s://127.0.0.1:%d" % (self.scheme, d.port))

    def state(self):
        r = self.c.http("GET", "/state")
        return r.json if isinstance(r.json, dict) else {}

    def wait_iteration(self, number, phase="COLLECTING", timeout=20):
        """True once /state shows iteration `number` in `phase` and every
        server (GET / on its device port) says the same."""
        import harness

        def done():
            s = self.state()
            if s.get("iteration") != number or (phase and s.get("iteration_phase") != phase):
                return False
            for st in self.server_states():
                if st.get("iteration") != number or (phase and st.get("phase") != phase):
                    return False
            return True
        return bool(harness.wait_until(done, timeout, 0.05))

    def server_states(self):
        out = []
        for u in self.urls:
            status, _, raw = get(u + "/", timeout=5)
            try:
                import json
                out.append(json.loads(raw.decode()) if status == 200 else {})
            except ValueError:
                out.append({})
        return out

    def run_iteration(self, devices, label, timeout=30):
        """One iteration of devices [(start_url, update_url, fl_id, data_size,
        shift)]: each is admitted, then uploads the served model shifted by
        shift; waits for the next iteration and returns the FedAvg of the
        acknowledged updates (the model every server must now hold)."""
        import harness
        t, proto = self.t, self.proto
        base = proto.fetch_model(devices[0][0])[2]
        number = self.state().get("iteration")
        ups, total = [], 0
        for start, _, dev, ds, _ in devices:
            r = proto.start_fl_job(start, self.fl_name, dev, ds)
            t.check(r.retcode == 200, "%s: %s is selected" % (label, dev), r)
        for _, upd, dev, ds, shift in devices:
            u = upload(base, shift, ds)
            r = proto.update_model(upd, self.fl_name, dev, number, u)
            t.check(r.retcode == 200, "%s: %s's update is acknowledged" % (label, dev), r)
            ups.append(u)
            total += ds
        t.require(harness.wait_until(lambda: self.state().get("iteration") == number + 1, timeout),
                  "%s: iteration %d completes" % (label, number), self.state())
        return mean(ups, total)

    def models(self, iteration=None):
        """[(status, raw, model)] of GET /model from every server."""
        return [self.proto.fetch_model(u, iteration) for u in self.urls]
