#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Cross-checks our FlatBuffers codec against an independent implementation:
Python code that Debian's flatc generates from src/shared/fl_protocol.fbs,
run on Debian's python3-flatbuffers.

1. The C descriptors (fbs-tool schema) mirror the .fbs slot by slot.
2. For every table, buffers built by the generated Python builders (with and
   without the identifier, fields added in different orders, defaults
   forced or not) are decoded by our C decoder (fbs-tool decode) to exactly
   the values that went in.
3. Buffers built by our C encoder (fbs-tool encode) are read by the
   generated Python readers field by field to exactly the values that went in.
4. Malformed buffers get our decoder's reason.

Every table is filled in every field with non-default values: floats,
negative and extreme ints, UTF-8 strings, nested tables, vectors of tables,
of strings, of bytes including 0 and 255, and empty vectors.

Needs FL_BUILDDIR (for fbs-tool) and FL_SRCDIR (for the .fbs); exits 77
only when flatc or python3-flatbuffers is missing."""

import importlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile

SKIP = 77

FL_SRCDIR = os.environ.get("FL_SRCDIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
FL_BUILDDIR = os.environ.get("FL_BUILDDIR", os.getcwd())
SCHEMA = os.path.join(FL_SRCDIR, "src", "shared", "fl_protocol.fbs")
FBS_TOOL = os.path.join(FL_BUILDDIR, "fbs-tool")

FLATC = shutil.which("flatc")
try:
    import flatbuffers
except ImportError:
    flatbuffers = None
if not FLATC or flatbuffers is None:
    print("SKIP: flatc or python3-flatbuffers is not installed")
    sys.exit(SKIP)

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print("FAIL:", what)


# ---- The schema, parsed from the .fbs -----------------------------------------

class Field:
    def __init__(self, name, fbs_type, enums, tables):
        self.name = name
        self.fbs_type = fbs_type
        self.camel = "".join(p[:1].upper() + p[1:] for p in name.split("_"))
        vec = fbs_type.startswith("[")
        base = fbs_type.strip("[]")
        self.base = base
        self.sub = base if base in tables else None
        if base in enums:
            base_kind = "byte" if enums[base] in ("byte", "ubyte") else "int"
        elif base in ("ubyte", "byte"):
            base_kind = "byte"
        else:
            base_kind = base
        if vec:
            self.kind = {"byte": "bytes", "float": "floats", "string": "strings"}.get(base_kind, "tables")
        else:
            self.kind = "table" if self.sub else base_kind


def parse_schema(path):
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"//[^\n]*", "", text)
    enums = {m.group(1): m.group(2) for m in re.finditer(r"enum\s+(\w+)\s*:\s*(\w+)\s*\{", text)}
    raw = re.findall(r"table\s+(\w+)\s*\{([^}]*)\}", text)
    names = {n for n, _ in raw}
    tables = {}
    for name, body in raw:
        fields = []
        for decl in body.split(";"):
            decl = decl.strip()
            if not decl:
                continue
            fname, ftype = (s.strip() for s in decl.split(":", 1))
            fields.append(Field(fname, ftype.split("=")[0].strip(), enums, names))
        tables[name] = fields
    return tables


TABLES = parse_schema(SCHEMA)
REQUIRED = {}    # table -> names of the fields our decoder insists on


def run_tool(*args, data=None):
    p = subprocess.run([FBS_TOOL, *args], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace").strip()


def check_descriptors():
    rc, out, err = run_tool("schema")
    check(rc == 0, "fbs-tool schema: " + err)
    ours = json.loads(out)
    for table, fields in ours.items():
        REQUIRED[table] = {f["name"] for f in fields if f["required"]}
    check(set(ours) == set(TABLES), "tables differ: %s" % sorted(set(ours) ^ set(TABLES)))
    for table, fields in TABLES.items():
        mine = ours.get(table, [])
        check(len(mine) == len(fields), "%s: %d fields in C, %d in the .fbs" % (table, len(mine), len(fields)))
        for slot, (f, m) in enumerate(zip(fields, mine)):
            check((m["name"], m["kind"], m.get("table")) == (f.name, f.kind, f.sub),
                  "%s slot %d: C has %s, .fbs has %s" % (table, slot, m, (f.name, f.kind, f.sub)))


# ---- Sample values ------------------------------------------------------------

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


INTS = [7, -123456, 2147483647, -2147483648, 1, 200, 65537]
FLOATS = [f32(x) for x in (0.5, -1.25, 3.0e-5, 1.0e30, -7.75, 0.1, 123456.789)]


def sample(table, seed, depth=0):
    value = {}
    for i, f in enumerate(TABLES[table]):
        k = seed * 7 + i
        if f.kind == "int":
            value[f.name] = INTS[k % len(INTS)]
        elif f.kind == "float":
            value[f.name] = FLOATS[k % len(FLOATS)]
        elif f.kind == "bool":
            value[f.name] = True
        elif f.kind == "byte":
            value[f.name] = 1 + k % 2
        elif f.kind == "string":
            value[f.name] = "%s.%s-\u00e9\u4e2d-%d" % (table, f.name, seed)
        elif f.kind == "bytes":
            n = 0 if seed == 2 else 1 + k % 5
            if f.base == "ubyte":
                value[f.name] = [(0, 255, 128, 1, 77)[j % 5] for j in range(n)]
            else:
                value[f.name] = [(j + k) % 6 for j in range(n)]
        elif f.kind == "floats":
            n = 0 if seed == 2 else 1 + k % 6
            value[f.name] = [FLOATS[(j + k) % len(FLOATS)] for j in range(n)]
        elif f.kind == "strings":
            value[f.name] = ["client-%d-%d" % (seed, j) for j in range(1 + k % 3)] + [""]
        elif f.kind == "table":
            value[f.name] = sample(f.sub, seed + i + 1, depth + 1)
        elif f.kind == "tables":
            value[f.name] = [sample(f.sub, seed * 10 + j, depth + 1) for j in range(1 + k % 3)]
    return value


# ---- The generated Python code --------------------------------------------------

def module(table):
    return importlib.import_module("mindspore.schema." + table)


def py_build(b, table, value, reverse=False):
    mod = module(table)
    offsets = {}
    for f in TABLES[table]:
        if f.name not in value:
            continue
        v = value[f.name]
        if f.kind == "string":
            offsets[f.name] = b.CreateString(v)
        elif f.kind == "table":
            offsets[f.name] = py_build(b, f.sub, v, reverse)
        elif f.kind in ("bytes", "floats", "strings", "tables"):
            if f.kind == "strings":
                elems = [b.CreateString(s) for s in v]
            elif f.kind == "tables":
                elems = [py_build(b, f.sub, e, reverse) for e in v]
            else:
                elems = v
            getattr(mod, "%sStart%sVector" % (table, f.camel))(b, len(v))
            prepend = {"bytes": b.PrependUint8 if f.base == "ubyte" else b.PrependInt8,
                       "floats": b.PrependFloat32}.get(f.kind, b.PrependUOffsetTRelative)
            for e in reversed(elems):
                prepend(e)
            offsets[f.name] = b.EndVector()
    getattr(mod, table + "Start")(b)
    fields = TABLES[table][::-1] if reverse else TABLES[table]
    for f in fields:
        if f.name in value:
            getattr(mod, "%sAdd%s" % (table, f.camel))(b, offsets.get(f.name, value[f.name]))
    return getattr(mod, table + "End")(b)


def py_encode(table, value, ident=True, reverse=False, force_defaults=False):
    b = flatbuffers.Builder(64)
    b.ForceDefaults(force_defaults)
    root = py_build(b, table, value, reverse)
    b.Finish(root, file_identifier=b"FLJ0" if ident else None)
    return bytes(b.Output())


def py_read(table, obj):
    out = {}
    for f in TABLES[table]:
        get = getattr(obj, f.camel)
        if f.kind in ("int", "float", "bool", "byte"):
            out[f.name] = get()
        elif f.kind == "string":
            s = get()
            if s is not None:
                out[f.name] = s.decode("utf-8")
        elif f.kind == "table":
            sub = get()
            if sub is not None:
                out[f.name] = py_read(f.sub, sub)
        else:
            if getattr(obj, f.camel + "IsNone")():
                continue
            n = getattr(obj, f.camel + "Length")()
            items = [get(j) for j in range(n)]
            if f.kind == "strings":
                items = [s.decode("utf-8") for s in items]
            elif f.kind == "tables":
                items = [py_read(f.sub, e) for e in items]
            out[f.name] = items
    return out


def py_decode(table, buf):
    cls = getattr(module(table), table)
    return py_read(table, cls.GetRootAs(buf, 0))


def normalize(table, value):
    """Absent scalars read as their default: make that explicit."""
    out = dict(value)
    for f in TABLES[table]:
        if f.kind in ("int", "float", "byte") and f.name not in out:
            out[f.name] = 0
        elif f.kind == "bool" and f.name not in out:
            out[f.name] = False
        elif f.kind == "table" and f.name in out:
            out[f.name] = normalize(f.sub, out[f.name])
        elif f.kind == "tables" and f.name in out:
            out[f.name] = [normalize(f.sub, e) for e in out[f.name]]
    return out


# ---- The checks ---------------------------------------------------------------

def check_python_to_c(table, value, label, **opts):
    buf = py_encode(table, value, **opts)
    rc, out, err = run_tool("decode", table, data=buf)
    check(rc == 0, "%s %s: our decoder refused a flatc/Python buffer: %s" % (table, label, err))
    if rc == 0:
        got = json.loads(out)
        check(got == normalize(table, value),
              "%s %s: decoded %s, built %s" % (table, label, got, normalize(table, value)))


def check_c_to_python(table, value, label, ident=True):
    args = ["encode", table] + ([] if ident else ["--no-identifier"])
    rc, buf, err = run_tool(*args, data=json.dumps(value).encode())
    check(rc == 0, "%s %s: our encoder failed: %s" % (table, label, err))
    if rc != 0:
        return
    has_ident = getattr(getattr(module(table), table), table + "BufferHasIdentifier")(buf, 0)
    check(bool(has_ident) == ident, "%s %s: identifier present=%s" % (table, label, has_ident))
    got = py_decode(table, buf)
    check(got == normalize(table, value), "%s %s: Python read %s, we wrote %s" % (table, label, got, value))


def check_refusals():
    # A RequestFLJob without its fl_id, and one cut short.
    value = {"fl_name": "lenet", "iteration": 3, "data_size": 10}
    rc, _, err = run_tool("decode", "RequestFLJob", data=py_encode("RequestFLJob", value))
    check(rc == 1 and err == "RequestFLJob.fl_id: missing", "missing fl_id: rc=%d %r" % (rc, err))

    buf = py_encode("RequestUpdateModel", sample("RequestUpdateModel", 1))
    refused = 0
    for n in range(len(buf)):
        rc, _, err = run_tool("decode", "RequestUpdateModel", data=buf[:n])
        check(rc in (0, 1), "truncated at %d: fbs-tool crashed (rc %d)" % (n, rc))
        refused += rc == 1
    check(refused > len(buf) * 9 // 10, "only %d of %d truncations refused" % (refused, len(buf)))


def main():
    tmp = tempfile.mkdtemp(prefix="test-fbs-python-")
    try:
        subprocess.run([FLATC, "--python", "-o", tmp, SCHEMA], check=True)
        sys.path.insert(0, tmp)

        check_descriptors()
        for table in sorted(TABLES):
            for seed in range(3):
                value = sample(table, seed)
                check_python_to_c(table, value, "seed %d" % seed)
                check_c_to_python(table, value, "seed %d" % seed, ident=seed != 1)
            value = sample(table, 5)
            check_python_to_c(table, value, "no identifier, reversed", ident=False, reverse=True)
            check_python_to_c(table, value, "forced defaults", force_defaults=True)
            # Only the scalars: everything else absent.
            scalars = {k: v for k, v in value.items() if not isinstance(v, (str, list, dict))}
            if not REQUIRED.get(table):
                check_python_to_c(table, scalars, "scalars only")
                check_c_to_python(table, scalars, "scalars only")
        check_refusals()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("%d checks, %d failures" % (checks, len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
