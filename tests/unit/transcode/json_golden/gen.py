#!/usr/bin/python3
"""Golden fixtures for the JSON codec (tests/unit/transcode/test_json_golden.c),
produced by protobuf's own json_format (python3-protobuf), never by our codec.

Run from anywhere:  /usr/bin/python3 tests/unit/transcode/json_golden/gen.py
It compiles tests/protos/transcode_json/*.proto with protoc --python_out into a
temporary directory and rewrites, for every case below:

  <case>.bin            SerializeToString(deterministic=True)
  <case>.json           MessageToJson (compact)
  <case>.defaults.json  ... including_default_value_fields=True   (proto3-only cases)
  <case>.names.json     ... preserving_proto_field_name=True
  in_<name>.json        a hand-written input (other accepted spellings)
  in_<name>.bin         what json_format.Parse makes of it, serialized

and MANIFEST (one "<type> <case> <flags>" line per case; flags: d = has a
defaults fixture).
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "protos", "transcode_json"))


def load_modules(tmp):
    subprocess.check_call(["protoc", "-I" + PROTOS, "-I/usr/include", "--python_out=" + tmp,
                           "kitchen.proto", "presence.proto"], cwd=PROTOS)
    sys.path.insert(0, tmp)
    import kitchen_pb2  # noqa: E402
    import presence_pb2  # noqa: E402
    return kitchen_pb2, presence_pb2


def full_kitchen(k, p):
    from google.protobuf import duration_pb2, wrappers_pb2, timestamp_pb2
    m = k.Kitchen()
    m.f_double = -1234.5e-7
    m.f_float = 0.1
    m.f_int32 = -2147483648
    m.f_int64 = -9223372036854775808
    m.f_uint32 = 4294967295
    m.f_uint64 = 18446744073709551615
    m.f_sint32 = -77
    m.f_sint64 = 9223372036854775807
    m.f_fixed32 = 4000000000
    m.f_fixed64 = 1 << 63
    m.f_sfixed32 = -5
    m.f_sfixed64 = -6
    m.f_bool = True
    m.f_string = "h\u00e9llo \"w\"\\ \n\t\u0001 \U0001f600 \u2028"
    m.f_bytes = bytes(range(256))
    m.color = k.BLUE
    m.size = k.Kitchen.LARGE
    m.nested.a = 1
    m.nested.b = "nested"
    m.nested.child.a = 2
    m.nested.kids.add(a=3)
    m.nested.kids.add()
    m.recursive.f_int32 = 9
    m.recursive.recursive.f_string = "deep"
    m.r_int32.extend([0, 1, -1, 2147483647])
    m.r_int64.extend([0, -1, 1 << 40])
    m.r_uint64.extend([0, 18446744073709551615])
    m.r_sint32.extend([-1, 1, -2147483648])
    m.r_fixed32.extend([0, 7])
    m.r_sfixed64.extend([-9223372036854775808, 5])
    m.r_double.extend([0.0, 1.5, float("inf"), float("-inf"), 1e300, 5e-324, float("nan")])
    m.r_float.extend([0.0, 3.4028234663852886e38, 1.0e-45, float("inf"), 1.1])
    m.r_bool.extend([True, False, True])
    m.r_string.extend(["", "a", "\u00fc"])
    m.r_bytes.extend([b"", b"\xff", b"ab"])
    m.r_color.extend([k.RED, k.COLOR_UNSPECIFIED, 42])
    m.r_nested.add(a=1)
    m.r_nested.add(b="x")
    m.m_string["k"] = "v"
    m.m_string[""] = "empty key"
    m.m_string["\u00e9"] = ""
    m.m_int32[-1] = 1
    m.m_int32[0] = 0
    m.m_int32[2147483647] = -9223372036854775808
    m.m_int64[-9223372036854775808].a = 1
    m.m_int64[5].CopyFrom(k.Nested())
    m.m_uint32[4294967295] = k.GREEN
    m.m_uint32[1] = 77
    m.m_uint64[18446744073709551615] = b"\x00\x01"
    m.m_sint32[-5] = 2.5
    m.m_fixed64[123] = 0.5
    m.m_sfixed32[-1] = True
    m.m_sfixed32[2] = False
    m.m_bool[True] = "yes"
    m.m_bool[False] = "no"
    m.m_value["n"].null_value = 0
    m.m_value["s"].string_value = "x"
    m.m_value["l"].list_value.values.add().number_value = 1
    m.c_nested.a = 5
    m.o_double = 0.0
    m.presence.opt_int32 = 0
    m.presence.opt_string = ""
    m.presence.opt_bool = False
    m.presence.opt_mode = p.Presence.MODE_ZERO
    m.presence.opt_double = 0.0
    m.presence.opt_bytes = b""
    m.presence.opt_uint64 = 0
    m.presence.child.opt_int32 = 1
    m.presence.r_int32.extend([1, 2])
    m.r_presence.add()
    m.r_presence.add(opt_string="s")
    m.ts.seconds = 1700000000
    m.ts.nanos = 123000000
    m.dur.seconds = -3
    m.dur.nanos = -100
    m.mask.paths.extend(["a.foo_bar", "b", "c_d.e_f_g"])
    m.st.fields["a"].number_value = 1.5
    m.st.fields["b"].struct_value.fields["c"].bool_value = True
    m.st.fields["d"].list_value.values.add().string_value = "e"
    m.st.fields["n"].null_value = 0
    m.val.list_value.values.add().number_value = -2
    m.val.list_value.values.add().struct_value.SetInParent()
    m.val.list_value.values.add().list_value.SetInParent()
    m.list.values.add().bool_value = False
    m.list.values.add().null_value = 0
    m.null_value = 0
    m.empty.SetInParent()
    m.any.Pack(k.Nested(a=7, b="in any"))
    m.w_bool.value = False
    m.w_int32.value = 0
    m.w_int64.value = -1
    m.w_uint32.value = 1
    m.w_uint64.value = 18446744073709551615
    m.w_float.value = 1.5
    m.w_double.value = float("-inf")
    m.w_string.value = ""
    m.w_bytes.value = b"\xfb\xff"
    m.r_any.add().Pack(duration_pb2.Duration(seconds=1, nanos=500000000))
    m.r_any.add().Pack(wrappers_pb2.Int64Value(value=-5))
    m.r_any.add().Pack(timestamp_pb2.Timestamp(seconds=0))
    m.r_ts.add(seconds=-62135596800)
    m.r_ts.add(seconds=253402300799, nanos=999999999)
    m.r_ts.add(seconds=-1, nanos=1000)
    m.r_value.add().number_value = 3
    m.r_value.add().null_value = 0
    m.m_dur["x"].seconds = 315576000000
    m.m_dur["y"].nanos = -999999999
    m.r_w_int32.add(value=0)
    m.r_w_int32.add(value=-3)
    m.snake_case_2_name = 1
    m._leading = 2
    m.trailing_ = 3
    m.double__under = 4
    m.custom_json = 5
    return m


def wkt_kitchen(k):
    from google.protobuf import (any_pb2, duration_pb2, empty_pb2, field_mask_pb2, struct_pb2,
                                 timestamp_pb2, wrappers_pb2)
    m = k.Kitchen()
    m.c_null = 0
    m.ts.seconds = -1
    m.ts.nanos = 999999999
    m.dur.nanos = 1
    m.mask.SetInParent()
    m.st.SetInParent()
    m.val.string_value = ""
    m.list.SetInParent()
    m.any.Pack(empty_pb2.Empty())
    for payload in [struct_pb2.Struct(), struct_pb2.Value(bool_value=True),
                    struct_pb2.ListValue(), field_mask_pb2.FieldMask(paths=["x_y"]),
                    wrappers_pb2.BytesValue(value=b"\x00"), wrappers_pb2.StringValue(),
                    any_pb2.Any(), k.Item(id="i", price_micros=-1),
                    timestamp_pb2.Timestamp(seconds=86400 * 365, nanos=10)]:
        m.r_any.add().Pack(payload)
    nested = any_pb2.Any()
    nested.Pack(duration_pb2.Duration(seconds=-1))
    m.r_any.add().Pack(nested)
    return m


def order(k):
    o = k.Order(id="o-1", blob=b"\x01\x02\x03")
    o.created.seconds = 1600000000
    o.totals["eur"] = 1999
    o.totals["usd"] = -1
    for i in range(3):
        it = o.items.add(id="item-%d" % i, name="Item \u00e9 %d" % i, price_micros=1000 * i,
                         quantity=i, weight=i * 0.25, active=bool(i % 2), color=i % 3)
        it.tags.extend(["t%d" % j for j in range(i)])
        it.attrs["k%d" % i] = "v"
        it.updated.seconds = 1600000000 + i
    return o


# Inputs in other accepted spellings: proto names, numbers as strings,
# exponents, enum numbers, URL-safe and unpadded base64, nulls, escapes,
# "@type" not first, offsets in timestamps.
INPUTS = {
    "spellings": ("pt.test.json.Kitchen", r'''{
  "f_int32": "-12", "fInt64": 1e3, "f_uint32": 4.0E1, "fUint64": "18446744073709551615",
  "fSint32": -0, "f_double": "1.5", "fFloat": "-Infinity", "f_bool": true,
  "fBytes": "-_8", "rBytes": ["AQ", "AQI=", "/+8="], "color": 2, "size": "LARGE",
  "rColor": ["RED", 1, "-3"], "f_string": "\u00e9\ud83d\ude00\/\"",
  "nested": null, "rInt32": null, "mString": {"a\u0062": "c"},
  "mBool": {"true": "t", "false": "f"}, "mInt32": {"-7": "8", "0": 1e1},
  "mSfixed32": {"1": true}, "mUint64": {"18446744073709551615": ""},
  "cString": null, "cInt": 0,
  "ts": "1972-01-01T10:00:20.021-05:30", "dur": "0.000000001s",
  "mask": "fooBar.bazQux,x", "any": {"a": 1, "@type": "type.googleapis.com/pt.test.json.Nested"},
  "val": null, "nullValue": null, "wInt32": "7", "wDouble": "NaN",
  "snake_case_2_name": 1, "Leading": 2, "trailing": 3, "doubleUnder": 4, "custom_json": 5
}'''),
    "oneof_null_and_zero": ("pt.test.json.Kitchen",
                            '{"cNull": null, "oDouble": -0.0, "presence": {"optInt32": 0, '
                            '"opt_bool": false, "optMode": "MODE_ZERO"}}'),
    "any_wkt_value": ("pt.test.json.Kitchen",
                      '{"rAny": [{"value": "1.5s", "@type": "type.googleapis.com/google.protobuf.Duration"},'
                      ' {"@type": "x/google.protobuf.Struct", "value": {"a": [1, {}]}},'
                      ' {"@type": "type.googleapis.com/google.protobuf.Empty"}, {}]}'),
    "whitespace": ("pt.test.json.Order",
                   ' \t\r\n{ "id" : "x" ,\n "items" : [ { "id" : "a" , "tags" : [ ] } , { } ] '
                   ', "totals" : { } } \n'),
}


def dump(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def main():
    from google.protobuf import json_format
    with tempfile.TemporaryDirectory() as tmp:
        k, p = load_modules(tmp)
        cases = [
            ("pt.test.json.Kitchen", "kitchen_full", full_kitchen(k, p), False),
            ("pt.test.json.Kitchen", "kitchen_wkt", wkt_kitchen(k), True),
            ("pt.test.json.Kitchen", "kitchen_empty", k.Kitchen(), True),
            ("pt.test.json.Order", "order", order(k), True),
            ("pt.test.json.Presence", "presence", full_kitchen(k, p).presence, False),
        ]
        manifest = []
        for type_name, name, msg, defaults in cases:
            with open(os.path.join(HERE, name + ".bin"), "wb") as f:
                f.write(msg.SerializeToString(deterministic=True))
            with open(os.path.join(HERE, name + ".json"), "w") as f:
                f.write(dump(json_format.MessageToDict(msg)) + "\n")
            with open(os.path.join(HERE, name + ".names.json"), "w") as f:
                f.write(dump(json_format.MessageToDict(msg, preserving_proto_field_name=True)) + "\n")
            if defaults:
                with open(os.path.join(HERE, name + ".defaults.json"), "w") as f:
                    f.write(dump(json_format.MessageToDict(
                        msg, including_default_value_fields=True)) + "\n")
            manifest.append("%s %s %s" % (type_name, name, "d" if defaults else "-"))
        for name, (type_name, text) in sorted(INPUTS.items()):
            cls = {"pt.test.json.Kitchen": k.Kitchen, "pt.test.json.Order": k.Order}[type_name]
            msg = json_format.Parse(text, cls())
            with open(os.path.join(HERE, "in_" + name + ".json"), "w") as f:
                f.write(text)
            with open(os.path.join(HERE, "in_" + name + ".bin"), "wb") as f:
                f.write(msg.SerializeToString(deterministic=True))
            manifest.append("%s in_%s i" % (type_name, name))
        with open(os.path.join(HERE, "MANIFEST"), "w") as f:
            f.write("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
