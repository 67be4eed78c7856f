#!/usr/bin/python3
"""Round trips of random messages through the JSON codec (tc_json), checked
against protobuf's own json_format (python3-protobuf).

For every random message m (python objects, built field by field):
  1. JSON -> wire: MessageToDict(m) dumped (varied whitespace, ASCII or
     UTF-8, json or proto names) and given to `tc_json encode`; the bytes
     must parse back (python) to a message equal to m.
  2. wire -> JSON: m.SerializeToString() given to `tc_json decode`; the JSON
     must equal MessageToDict(m) as data, and also with --emit-defaults and
     --original-names against json_format's options.
  3. JSON -> wire -> JSON through tc_json alone equals step 2's JSON.
Bounded: --count messages per type (default 300), seeded, one tc_json process
per batch (--lines).

Usage: json_roundtrip.py --tc-json PATH [--count N] [--seed S]
"""
import argparse
import base64
import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.normpath(os.path.join(HERE, "..", "..", "protos", "transcode_json"))


def load(tmp):
    subprocess.check_call(["protoc", "-I" + PROTOS, "-I/usr/include", "--python_out=" + tmp,
                           "kitchen.proto", "presence.proto"], cwd=PROTOS)
    sys.path.insert(0, tmp)
    import kitchen_pb2
    import presence_pb2
    return kitchen_pb2, presence_pb2


class Gen:
    def __init__(self, rnd, k, p):
        self.r = rnd
        self.k = k
        self.p = p

    def chance(self, x=0.5):
        return self.r.random() < x

    def i32(self):
        return self.r.choice([0, 1, -1, 2**31 - 1, -2**31, self.r.randint(-2**31, 2**31 - 1),
                              self.r.randint(-300, 300)])

    def u32(self):
        return self.r.choice([0, 1, 2**32 - 1, self.r.randint(0, 2**32 - 1)])

    def i64(self):
        return self.r.choice([0, -1, 2**63 - 1, -2**63, 2**53 + 1, self.r.randint(-2**63, 2**63 - 1)])

    def u64(self):
        return self.r.choice([0, 2**64 - 1, 2**53 + 1, self.r.randint(0, 2**64 - 1)])

    def dbl(self, finite=False):
        c = self.r.random()
        if c < 0.1:
            v = self.r.choice([0.0, -0.0, 0.1, 1e300, -1e-300, 5e-324, 2.2250738585072014e-308,
                               1e15, 1e16, 123456789012345678.0])
        elif c < 0.5:
            v = struct.unpack("<d", struct.pack("<Q", self.r.getrandbits(64)))[0]
        elif c < 0.6 and not finite:
            v = self.r.choice([float("inf"), float("-inf"), float("nan")])
        else:
            v = self.r.uniform(-1e6, 1e6) if self.chance() else float(self.r.randint(-1000, 1000))
        if finite and not math.isfinite(v):
            v = 1.25
        return v

    def flt(self):
        c = self.r.random()
        if c < 0.5:
            v = struct.unpack("<f", struct.pack("<I", self.r.getrandbits(32)))[0]
        elif c < 0.6:
            v = self.r.choice([float("inf"), float("-inf"), float("nan"), 3.4028234663852886e38,
                               1.401298464324817e-45, -0.0])
        else:
            v = struct.unpack("<f", struct.pack("<f", self.r.uniform(-1e4, 1e4)))[0]
        return v

    def text(self, n=12):
        alphabet = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f",
                    "\u00e9", "\u2028", "\ufeff", "\uffff", "\U0001f600", "\U0010ffff", "<", "&"]
        return "".join(self.r.choice(alphabet) for _ in range(self.r.randint(0, n)))

    def blob(self, n=16):
        return bytes(self.r.getrandbits(8) for _ in range(self.r.randint(0, n)))

    def color(self):
        return self.r.choice([0, 1, 2, -3, 7, -100])

    def nested(self, m, depth):
        if self.chance():
            m.a = self.i32()
        if self.chance():
            m.b = self.text()
        if depth > 0 and self.chance(0.3):
            self.nested(m.child, depth - 1)
        if depth > 0 and self.chance(0.3):
            for _ in range(self.r.randint(0, 2)):
                self.nested(m.kids.add(), depth - 1)

    def json_value(self, v, depth):
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
                self.json_value(v.struct_value.fields[self.text(5)], depth - 1)
        else:
            v.list_value.SetInParent()
            for _ in range(self.r.randint(0, 3)):
                self.json_value(v.list_value.values.add(), depth - 1)

    def timestamp(self, t):
        t.seconds = self.r.randint(-62135596800, 253402300799)
        t.nanos = self.r.choice([0, 0, 1000000 * self.r.randint(0, 999), 1000 * self.r.randint(0, 999999),
                                 self.r.randint(0, 999999999)])

    def duration(self, d):
        s = self.r.choice([0, self.r.randint(0, 315576000000), self.r.randint(0, 100)])
        n = self.r.choice([0, self.r.randint(0, 999999999), 1000000 * self.r.randint(0, 999)])
        sign = -1 if self.chance() else 1
        d.seconds = sign * s
        d.nanos = sign * n

    def mask_path(self):
        words = ["".join(self.r.choice("abcxyz") for _ in range(self.r.randint(1, 4)))
                 for _ in range(self.r.randint(1, 3))]
        return "_".join(words)

    def any(self, a, depth):
        from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2, wrappers_pb2, empty_pb2
        c = self.r.randint(0, 6)
        if c == 0:
            n = self.k.Nested()
            self.nested(n, depth)
            a.Pack(n)
        elif c == 1:
            d = duration_pb2.Duration()
            self.duration(d)
            a.Pack(d)
        elif c == 2:
            t = timestamp_pb2.Timestamp()
            self.timestamp(t)
            a.Pack(t)
        elif c == 3:
            a.Pack(wrappers_pb2.UInt64Value(value=self.u64()))
        elif c == 4:
            v = struct_pb2.Value()
            self.json_value(v, 2)
            a.Pack(v)
        elif c == 5:
            a.Pack(empty_pb2.Empty())
        else:
            a.Pack(self.item())

    def item(self):
        it = self.k.Item()
        if self.chance():
            it.id = self.text(8)
        if self.chance():
            it.name = self.text(20)
        if self.chance():
            it.price_micros = self.i64()
        if self.chance():
            it.quantity = self.u32()
        if self.chance():
            it.weight = self.dbl()
        it.tags.extend(self.text(6) for _ in range(self.r.randint(0, 3)))
        for _ in range(self.r.randint(0, 3)):
            it.attrs[self.text(4)] = self.text(6)
        if self.chance():
            self.timestamp(it.updated)
        if self.chance():
            it.active = self.chance()
        if self.chance():
            it.color = self.color()
        return it

    def order(self):
        o = self.k.Order()
        if self.chance():
            o.id = self.text(8)
        for _ in range(self.r.randint(0, 5)):
            o.items.add().CopyFrom(self.item())
        if self.chance():
            self.timestamp(o.created)
        for _ in range(self.r.randint(0, 3)):
            o.totals[self.text(3)] = self.i64()
        if self.chance():
            o.blob = self.blob(40)
        return o

    def presence(self, p, depth):
        for name, fn in [("opt_int32", self.i32), ("opt_string", self.text), ("opt_bool", self.chance),
                         ("opt_double", self.dbl), ("opt_bytes", self.blob), ("opt_uint64", self.u64)]:
            if self.chance(0.4):
                setattr(p, name, fn())
        if self.chance(0.4):
            p.opt_mode = self.r.choice([0, 1])
        if depth > 0 and self.chance(0.2):
            self.presence(p.child, depth - 1)
        p.r_int32.extend(self.i32() for _ in range(self.r.randint(0, 2)))

    def kitchen(self, m, depth, presence=True):
        r = self.r
        scalars = [("f_double", self.dbl), ("f_float", self.flt), ("f_int32", self.i32),
                   ("f_int64", self.i64), ("f_uint32", self.u32), ("f_uint64", self.u64),
                   ("f_sint32", self.i32), ("f_sint64", self.i64), ("f_fixed32", self.u32),
                   ("f_fixed64", self.u64), ("f_sfixed32", self.i32), ("f_sfixed64", self.i64),
                   ("f_bool", self.chance), ("f_string", self.text), ("f_bytes", self.blob),
                   ("color", self.color), ("size", lambda: r.choice([0, 1, 100, 5])),
                   ("snake_case_2_name", self.i32), ("_leading", self.i32),
                   ("trailing_", self.i32), ("double__under", self.i32), ("custom_json", self.i32)]
        for name, fn in scalars:
            if self.chance(0.4):
                setattr(m, name, fn())
        if self.chance(0.3):
            self.nested(m.nested, 2)
        if depth > 0 and self.chance(0.2):
            self.kitchen(m.recursive, depth - 1, presence)
        reps = [("r_int32", self.i32), ("r_int64", self.i64), ("r_uint64", self.u64),
                ("r_sint32", self.i32), ("r_fixed32", self.u32), ("r_sfixed64", self.i64),
                ("r_double", self.dbl), ("r_float", self.flt), ("r_bool", self.chance),
                ("r_string", self.text), ("r_bytes", self.blob), ("r_color", self.color)]
        for name, fn in reps:
            if self.chance(0.3):
                getattr(m, name).extend(fn() for _ in range(r.randint(0, 4)))
        for _ in range(r.randint(0, 2)):
            self.nested(m.r_nested.add(), 1)
        maps = [("m_string", self.text, self.text), ("m_int32", self.i32, self.i64),
                ("m_uint32", self.u32, self.color), ("m_uint64", self.u64, self.blob),
                ("m_sint32", self.i32, self.dbl), ("m_fixed64", self.u64, self.flt),
                ("m_sfixed32", self.i32, self.chance), ("m_bool", self.chance, self.text)]
        for name, kf, vf in maps:
            if self.chance(0.25):
                for _ in range(r.randint(0, 3)):
                    getattr(m, name)[kf()] = vf()
        if self.chance(0.2):
            for _ in range(r.randint(0, 2)):
                self.nested(m.m_int64[self.i64()], 1)
        if self.chance(0.2):
            for _ in range(r.randint(0, 2)):
                self.json_value(m.m_value[self.text(4)], 2)
        c = r.randint(0, 6)
        if c == 1:
            m.c_int = self.i32()
        elif c == 2:
            m.c_string = self.text()
        elif c == 3:
            self.nested(m.c_nested, 1)
        elif c == 4:
            m.c_color = self.color()
        elif c == 5:
            m.c_null = 0
        c = r.randint(0, 2)
        if c == 1:
            m.o_bytes = self.blob()
        elif c == 2:
            m.o_double = self.dbl()
        if presence and self.chance(0.3):
            self.presence(m.presence, 2)
        if presence and self.chance(0.1):
            self.presence(m.r_presence.add(), 1)
        if self.chance(0.3):
            self.timestamp(m.ts)
        if self.chance(0.3):
            self.duration(m.dur)
        if self.chance(0.3):
            m.mask.paths.extend(self.mask_path() for _ in range(r.randint(0, 3)))
            m.mask.SetInParent()
        if self.chance(0.3):
            m.st.SetInParent()
            for _ in range(r.randint(0, 3)):
                self.json_value(m.st.fields[self.text(4)], 2)
        if self.chance(0.3):
            self.json_value(m.val, 2)
        if self.chance(0.2):
            m.list.SetInParent()
            for _ in range(r.randint(0, 3)):
                self.json_value(m.list.values.add(), 1)
        if self.chance(0.2):
            m.null_value = 0
        if self.chance(0.2):
            m.empty.SetInParent()
        if self.chance(0.3):
            self.any(m.any, 1)
        for _ in range(r.randint(0, 2)):
            self.any(m.r_any.add(), 1)
        wrappers = [("w_bool", self.chance), ("w_int32", self.i32), ("w_int64", self.i64),
                    ("w_uint32", self.u32), ("w_uint64", self.u64), ("w_float", self.flt),
                    ("w_double", self.dbl), ("w_string", self.text), ("w_bytes", self.blob)]
        for name, fn in wrappers:
            if self.chance(0.2):
                getattr(m, name).value = fn()
        for _ in range(r.randint(0, 2)):
            self.timestamp(m.r_ts.add())
        for _ in range(r.randint(0, 2)):
            self.json_value(m.r_value.add(), 1)
        if self.chance(0.2):
            self.duration(m.m_dur[self.text(3)])
        for _ in range(r.randint(0, 2)):
            m.r_w_int32.add(value=self.i32())


def run_tc(tc, mode, type_name, lines, *opts):
    data = "".join(line + "\n" for line in lines).encode()
    out = subprocess.run([tc, mode, type_name, "--lines"] + list(opts), input=data,
                         stdout=subprocess.PIPE, check=True, timeout=300).stdout.decode()
    res = out.split("\n")
    assert res[-1] == "", "unterminated output"
    res = res[:-1]
    assert len(res) == len(lines), "%d answers for %d inputs" % (len(res), len(lines))
    return res


def check(cond, what, *details):
    if not cond:
        print("FAIL:", what)
        for d in details:
            print("   ", d)
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tc-json", required=True)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=20240501)
    args = ap.parse_args()
    from google.protobuf import json_format
    with tempfile.TemporaryDirectory() as tmp:
        k, p = load(tmp)
        rnd = random.Random(args.seed)
        gen = Gen(rnd, k, p)
        failures = 0
        suites = [("pt.test.json.Kitchen", k.Kitchen, lambda: gen_kitchen(gen, k, True), False),
                  ("pt.test.json.Kitchen", k.Kitchen, lambda: gen_kitchen(gen, k, False), True),
                  ("pt.test.json.Order", k.Order, gen.order, True)]
        for type_name, cls, make, defaults in suites:
            msgs = [make() for _ in range(args.count)]
            dicts = [json_format.MessageToDict(m) for m in msgs]
            # 1. JSON -> wire, from json_format's JSON in varied spellings.
            texts = []
            for m, d in zip(msgs, dicts):
                if rnd.random() < 0.3:
                    d = json_format.MessageToDict(m, preserving_proto_field_name=True)
                texts.append(json.dumps(d, ensure_ascii=rnd.random() < 0.5,
                                        separators=rnd.choice([(",", ":"), (", ", ": ")])))
            wires = run_tc(args.tc_json, "encode", type_name, texts)
            for i, (w, m) in enumerate(zip(wires, msgs)):
                if failures > 20:
                    break
                if check(not w.startswith("error:"), "encode #%d: %s" % (i, w), texts[i]):
                    failures += 1
                    continue
                back = cls()
                back.ParseFromString(base64.b64decode(w))
                failures += check(json_format.MessageToDict(back) == dicts[i],
                                  "JSON->wire #%d differs" % i, texts[i],
                                  json_format.MessageToDict(back))
            # 2. wire -> JSON, against json_format with each option.
            b64 = [base64.b64encode(m.SerializeToString()).decode() for m in msgs]
            variants = [((), {})]
            variants.append((("--original-names",), {"preserving_proto_field_name": True}))
            if defaults:
                variants.append((("--emit-defaults",), {"including_default_value_fields": True}))
            for opts, kw in variants:
                outs = run_tc(args.tc_json, "decode", type_name, b64, *opts)
                for i, (o, m) in enumerate(zip(outs, msgs)):
                    if failures > 20:
                        break
                    want = json_format.MessageToDict(m, **kw)
                    try:
                        got = json.loads(o)
                    except ValueError:
                        got = o
                    failures += check(got == want, "wire->JSON %s #%d differs" % (opts, i),
                                      "got:  %s" % o, "want: %s" % json.dumps(want))
            # 3. JSON -> wire -> JSON through the codec alone.
            again = run_tc(args.tc_json, "decode", type_name, wires)
            for i, o in enumerate(again):
                if failures > 20:
                    break
                try:
                    got = json.loads(o)
                except ValueError:
                    got = o
                failures += check(got == dicts[i], "JSON->wire->JSON #%d differs" % i,
                                  "got:  %s" % o, "want: %s" % json.dumps(dicts[i]))
            print("%s (%s): %d messages" % (type_name, "defaults too" if defaults else "plain",
                                            len(msgs)))
        if failures:
            print("%d failures" % failures)
            return 1
        print("ok")
        return 0


def gen_kitchen(gen, k, presence):
    m = k.Kitchen()
    gen.kitchen(m, 2, presence)
    return m


if __name__ == "__main__":
    sys.exit(main())
