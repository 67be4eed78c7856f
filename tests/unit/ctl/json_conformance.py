#!/usr/bin/python3
"""Conformance of `porticoctl json encode|decode` (the run-time descriptor
pool path: FileDescriptorSet -> descpool -> JSON codec with pool hooks)
against protobuf's own json_format (python3-protobuf).

The schema is the descpool test protos (tests/protos/transcode), compiled
by protoc into one descriptor set (given with --descriptor-set, or compiled
here). Python builds its message classes at run time from the SAME set
(descriptor_pool + message_factory: no generated python), then, for random
messages m of every message type declared in those files:
  1. decode: m's binary through `porticoctl json decode` must equal
     json_format.MessageToJson(m) as JSON data; also with --original-names
     and (types without explicit presence) --emit-defaults against the
     matching json_format options.
  2. encode: json_format.MessageToJson(m) through `porticoctl json encode`
     must parse (python) back to a message whose JSON equals m's (JSON data
     rather than ==, so NaN compares equal to itself).
Bounded: --count messages in all (default 400, round-robin over the types),
seeded, depth-limited generation, a timeout per process.

Usage: json_conformance.py --porticoctl PATH [--descriptor-set FILE]
                           [--count N] [--seed S]
"""
import argparse
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
PROTOS = os.path.join(ROOT, "tests", "protos", "transcode")
FILES = ["common.proto", "kitchen.proto", "legacy.proto", "optional.proto"]

from google.protobuf import descriptor as gdesc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory  # noqa: E402

FD = gdesc.FieldDescriptor


def compile_set(tmp):
    out = os.path.join(tmp, "transcode_test.desc")
    subprocess.check_call(["protoc", "-I" + PROTOS, "-I" + os.path.join(ROOT, "proto", "third_party"),
                           "-I/usr/include", "--include_imports", "--descriptor_set_out=" + out]
                          + FILES, cwd=PROTOS, timeout=60)
    return out


def load_pool(path):
    with open(path, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    pool = descriptor_pool.DescriptorPool()
    for fp in fds.file:  # --include_imports writes dependencies first
        pool.Add(fp)
    return pool, [fp.name for fp in fds.file]


class Gen:
    """Random messages for any descriptor, within what the JSON mapping can
    carry both ways (valid UTF-8, WKT values in range, finite Struct numbers)."""

    def __init__(self, rnd, pool, factory):
        self.r = rnd
        self.pool = pool
        self.factory = factory
        self.any_types = ["pt.test.common.Point", "pt.test.kitchen.Scalars",
                          "google.protobuf.Timestamp", "google.protobuf.Duration",
                          "google.protobuf.Int64Value", "google.protobuf.Empty",
                          "google.protobuf.Struct", "google.protobuf.Value"]

    def chance(self, x=0.5):
        return self.r.random() < x

    def int_of(self, bits, signed):
        lo, hi = (-2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
        return self.r.choice([0, 1, lo, hi, self.r.randint(lo, hi), self.r.randint(max(lo, -300), 300),
                              2 ** 53 + 1 if hi > 2 ** 53 else hi])

    def dbl(self, finite=False):
        c = self.r.random()
        if c < 0.15:
            v = self.r.choice([0.0, -0.0, 0.1, 1e300, -1e-300, 5e-324, 1e16, 123456789012345678.0])
        elif c < 0.5:
            v = struct.unpack("<d", struct.pack("<Q", self.r.getrandbits(64)))[0]
        elif c < 0.6:
            v = self.r.choice([float("inf"), float("-inf"), float("nan")])
        else:
            v = self.r.uniform(-1e6, 1e6)
        if finite and not math.isfinite(v):
            v = 2.5
        return v

    def flt(self):
        if self.chance(0.5):
            return struct.unpack("<f", struct.pack("<I", self.r.getrandbits(32)))[0]
        if self.chance(0.2):
            return self.r.choice([float("inf"), float("-inf"), float("nan"), -0.0, 3.4028234663852886e38])
        return struct.unpack("<f", struct.pack("<f", self.r.uniform(-1e4, 1e4)))[0]

    def text(self, n=10):
        alphabet = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\x00", "\x1f", "\u00e9", "\u2028",
                    "\ufeff", "\U0001f600", "<", "&"]
        return "".join(self.r.choice(alphabet) for _ in range(self.r.randint(0, n)))

    def blob(self, n=12):
        return bytes(self.r.getrandbits(8) for _ in range(self.r.randint(0, n)))

    def enum_value(self, ed, proto3):
        if ed.full_name == "google.protobuf.NullValue":
            return 0  # other numbers: a documented difference (docs/transcoding.md)
        if proto3 and self.chance(0.1):
            return self.r.choice([3, 77, -9])  # open enum: unknown numbers print as numbers
        return self.r.choice(ed.values).number

    def scalar(self, f, proto3):
        t = f.type
        if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
            return self.int_of(32, True)
        if t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
            return self.int_of(64, True)
        if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
            return self.int_of(32, False)
        if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
            return self.int_of(64, False)
        if t == FD.TYPE_DOUBLE:
            return self.dbl()
        if t == FD.TYPE_FLOAT:
            return self.flt()
        if t == FD.TYPE_BOOL:
            return self.chance()
        if t == FD.TYPE_STRING:
            return self.text()
        if t == FD.TYPE_BYTES:
            return self.blob()
        if t == FD.TYPE_ENUM:
            return self.enum_value(f.enum_type, proto3)
        raise ValueError("unexpected type %d" % t)

    # Well-known types: values json_format can print and parse back.
    def wkt(self, m, depth):
        n = m.DESCRIPTOR.full_name
        if n == "google.protobuf.Timestamp":
            m.seconds = self.r.randint(-62135596800, 253402300799)
            m.nanos = self.r.choice([0, 1000000 * self.r.randint(0, 999), self.r.randint(0, 999999999)])
        elif n == "google.protobuf.Duration":
            sign = -1 if self.chance() else 1
            m.seconds = sign * self.r.choice([0, self.r.randint(0, 315576000000), self.r.randint(1, 100)])
            m.nanos = sign * self.r.choice([0, self.r.randint(0, 999999999)])
        elif n == "google.protobuf.FieldMask":
            for _ in range(self.r.randint(0, 3)):
                m.paths.append("_".join("".join(self.r.choice("abcxyz") for _ in range(self.r.randint(1, 4)))
                                        for _ in range(self.r.randint(1, 3))))
        elif n == "google.protobuf.Struct":
            for _ in range(self.r.randint(0, 3)):
                self.value(m.fields[self.text(4)], depth - 1)
        elif n == "google.protobuf.Value":
            self.value(m, depth)
        elif n == "google.protobuf.ListValue":
            for _ in range(self.r.randint(0, 3)):
                self.value(m.values.add(), depth - 1)
        elif n == "google.protobuf.Any":
            inner = self.message(self.pool.FindMessageTypeByName(self.r.choice(self.any_types)),
                                 max(depth - 1, 0))
            m.Pack(inner)
        elif n == "google.protobuf.Empty":
            pass
        elif n.startswith("google.protobuf.") and n.endswith("Value"):  # wrappers
            f = m.DESCRIPTOR.fields_by_name["value"]
            v = self.scalar(f, True)
            m.value = v
        else:
            return False
        return True

    def value(self, v, depth):
        c = self.r.randint(0, 5 if depth > 0 else 3)
        if c == 0:
            v.null_value = 0
        elif c == 1:
            v.number_value = self.dbl(finite=True)
        elif c == 2:
            v.string_value = self.text()
        elif c == 3:
            v.bool_value = self.chance()
        elif c == 4:
            v.struct_value.SetInParent()
            for _ in range(self.r.randint(0, 3)):
                self.value(v.struct_value.fields[self.text(4)], depth - 1)
        else:
            v.list_value.SetInParent()
            for _ in range(self.r.randint(0, 3)):
                self.value(v.list_value.values.add(), depth - 1)

    def message(self, d, depth):
        m = self.factory.GetPrototype(d)()
        self.fill(m, depth)
        return m

    def fill(self, m, depth):
        d = m.DESCRIPTOR
        if self.wkt(m, depth):
            return
        proto3 = d.file.syntax == "proto3"
        oneof_pick = {}
        for o in d.oneofs:
            if o.fields and self.chance(0.6):
                oneof_pick[o.name] = self.r.choice(o.fields).name
        for f in d.fields:
            o = f.containing_oneof
            real_oneof = o is not None and not (len(o.fields) == 1 and o.name.startswith("_"))
            required = f.label == FD.LABEL_REQUIRED
            if real_oneof:
                if oneof_pick.get(o.name) != f.name:
                    continue
            elif not required and not self.chance(0.5):
                continue
            if f.message_type and f.message_type.GetOptions().map_entry:
                kf, vf = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
                target = getattr(m, f.name)
                for _ in range(self.r.randint(0, 3)):
                    k = self.scalar(kf, proto3)
                    if vf.message_type:
                        if depth <= 0:
                            continue
                        self.fill(target[k], depth - 1)
                    else:
                        target[k] = self.scalar(vf, proto3)
            elif f.label == FD.LABEL_REPEATED:
                target = getattr(m, f.name)
                for _ in range(self.r.randint(0, 3)):
                    if f.message_type:
                        if depth <= 0:
                            break
                        self.fill(target.add(), depth - 1)
                    else:
                        target.append(self.scalar(f, proto3 or f.enum_type is None))
            elif f.message_type:
                if depth <= 0 and not required:
                    continue
                sub = getattr(m, f.name)
                sub.SetInParent()
                self.fill(sub, depth - 1)
            else:
                setattr(m, f.name, self.scalar(f, proto3))


def first_diff(a, b, path="$"):
    """The JSON path of the first difference between a and b, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return "%s.%s (only in %s)" % (path, k, "got" if k in a else "want")
            d = first_diff(a[k], b[k], "%s.%s" % (path, k))
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_diff(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return None if len(a) == len(b) else "%s (lengths %d, %d)" % (path, len(a), len(b))
    return None if a == b else "%s: got %r, want %r" % (path, a, b)


def run_ctl(ctl, desc, mode, type_name, data, *opts):
    p = subprocess.run([ctl, "json", mode, "--descriptor-set", desc, "--type", type_name] + list(opts),
                       input=data, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


def has_presence_fields(d):
    return any(f.label == FD.LABEL_OPTIONAL and d.file.syntax == "proto2" for f in d.fields)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--porticoctl", required=True)
    ap.add_argument("--descriptor-set")
    ap.add_argument("--count", type=int, default=400)
    ap.add_argument("--seed", type=int, default=20261206)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        desc = args.descriptor_set or compile_set(tmp)
        pool, files = load_pool(desc)
        factory = message_factory.MessageFactory(pool)
        types = []
        for name in FILES:
            fd = pool.FindFileByName(name)

            def walk(d):
                if not d.GetOptions().map_entry:
                    types.append(d)
                    for n in d.nested_types:
                        walk(n)
            for d in fd.message_types_by_name.values():
                walk(d)
        rnd = random.Random(args.seed)
        gen = Gen(rnd, pool, factory)
        failures = 0
        checks = 0
        for i in range(args.count):
            if failures > 20:
                break
            d = types[i % len(types)]
            m = gen.message(d, 3)
            wire = m.SerializeToString()
            # 1. decode (binary -> JSON), plain and with each option.
            variants = [((), {})]
            if rnd.random() < 0.4:
                variants.append((("--original-names",), {"preserving_proto_field_name": True}))
            if d.file.syntax == "proto3" and rnd.random() < 0.4:
                variants.append((("--emit-defaults",), {"including_default_value_fields": True}))
            for opts, kw in variants:
                want = json.loads(json_format.MessageToJson(m, descriptor_pool=pool, **kw))
                rc, out, err = run_ctl(args.porticoctl, desc, "decode", d.full_name, wire, *opts)
                checks += 1
                try:
                    got = json.loads(out) if rc == 0 else None
                except ValueError:
                    got = out
                if got != want:
                    failures += 1
                    print("FAIL decode %s %s #%d (rc %d %s)\n  at:   %s\n  got:  %s\n  want: %s"
                          % (d.full_name, " ".join(opts), i, rc, err.strip(), first_diff(got, want),
                             out[:1000], json.dumps(want)[:1000]))
            # 2. encode (json_format's JSON -> binary), parsed back by python.
            text = json_format.MessageToJson(m, descriptor_pool=pool,
                                             preserving_proto_field_name=rnd.random() < 0.3,
                                             indent=rnd.choice([None, 0, 2]),
                                             ensure_ascii=rnd.random() < 0.5)
            rc, out, err = run_ctl(args.porticoctl, desc, "encode", d.full_name, text.encode())
            checks += 1
            back = None
            if rc == 0:
                back = factory.GetPrototype(d)()
                try:
                    back.ParseFromString(out)
                except Exception as e:  # a parse failure is a finding, reported below
                    err, back = "python cannot parse the output: %s" % e, None
            want = json_format.MessageToDict(m, descriptor_pool=pool)
            got = json_format.MessageToDict(back, descriptor_pool=pool) if back is not None else None
            if got != want:
                failures += 1
                print("FAIL encode %s #%d (rc %d %s)\n  at:    %s\n  input: %s\n  got:   %s"
                      % (d.full_name, i, rc, err.strip(), first_diff(got, want), text[:1000],
                         json.dumps(got)[:1000]))
        print("%d messages over %d types, %d checks, %d failures"
              % (min(args.count, i + 1), len(types), checks, failures))
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
