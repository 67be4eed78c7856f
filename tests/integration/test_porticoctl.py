"""porticoctl against the real gateway's admin service (portico.admin.v1.Admin).

Needs the Admin handlers in portico; the admin address is set in the config
written here (admin: {address: 127.0.0.1:<free port>}).
PORTICOCTL_BIN overrides <repo>/build/porticoctl.
"""

import os
import pty
import select
import subprocess
import tempfile
import time
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
CTL = os.environ.get("PORTICOCTL_BIN", os.path.join(HERE, "..", "..", "build", "porticoctl"))


def base_config(admin_port):
    return {
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
        "services": [{"name": "demo", "protocol": "http1",
                      "instances": [{"host": "127.0.0.1", "port": harness.free_port()}]}],
        "routes": [{"name": "api", "path_prefix": "/api", "service": "demo"}],
        "admin": {"address": "127.0.0.1:%d" % admin_port},
    }


class PorticoctlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin_port = harness.free_port()
        cls.gw = harness.Portico(base_config(cls.admin_port))
        cls.gw.start()
        cls.addr = getattr(cls.gw, "admin_addr", None) or "127.0.0.1:%d" % cls.admin_port
        cls.tmp = tempfile.TemporaryDirectory(prefix="porticoctl-")
        # The admin service may come up a moment after the listeners.
        deadline = time.time() + 10
        while time.time() < deadline:
            if cls.run_ctl("health").returncode != 3:
                break
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.tmp.cleanup()

    @classmethod
    def run_ctl(cls, *args, addr=None, stdin=subprocess.DEVNULL):
        return subprocess.run([CTL, "--addr", addr or cls.addr, "--timeout", "5"] + list(args),
                              stdin=stdin, capture_output=True, text=True, timeout=30)

    def write(self, name, text):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def ok(self, *args):
        p = self.run_ctl(*args)
        self.assertEqual(p.returncode, 0, "porticoctl %s: %s%s" % (args, p.stdout, p.stderr))
        return p.stdout

    # -- reads --------------------------------------------------------------

    def test_health(self):
        out = self.ok("health")
        self.assertIn("status: serving", out)
        self.assertIn("grpc_health: SERVING", out)

    def test_list_and_get(self):
        out = self.ok("list", "routes")
        self.assertIn("routes:", out)
        self.assertIn("name: api", out)
        out = self.ok("get", "route", "api")
        self.assertIn("path_prefix: /api", out)
        self.assertIn("service: demo", out)
        self.assertIn("name: demo", self.ok("list", "services"))

    def test_export(self):
        out = self.ok("export")
        self.assertIn("name: api", out)
        path = os.path.join(self.tmp.name, "exported.yaml")
        self.ok("export", "-f", path)
        with open(path) as f:
            self.assertIn("name: api", f.read())

    # -- errors -------------------------------------------------------------

    def test_unknown_route_is_not_found(self):
        p = self.run_ctl("get", "route", "no-such-route")
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith("error: NOT_FOUND: "), p.stderr)

    def test_invalid_route_lists_violations(self):
        path = self.write("bad-route.yaml", "name: bad\npath: no-slash\nservice: no-such-service\n")
        p = self.run_ctl("create", "route", "-f", path)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertTrue(p.stderr.startswith("error: INVALID_ARGUMENT: "), p.stderr)
        violations = [l for l in p.stderr.splitlines()[1:] if l.startswith("  ")]
        self.assertTrue(violations, p.stderr)
        self.assertTrue(any("service" in l for l in violations), p.stderr)

    def test_server_down_exits_3(self):
        p = self.run_ctl("health", addr="127.0.0.1:%d" % harness.free_port())
        self.assertEqual(p.returncode, 3)
        self.assertIn("error: UNAVAILABLE", p.stderr)

    def test_usage_error_exits_2(self):
        p = self.run_ctl("get", "widget", "x")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown kind", p.stderr)

    # -- writes -------------------------------------------------------------

    def test_create_get_delete(self):
        path = self.write("r.yaml", "name: ctl-made\npath_prefix: /ctl\nservice: demo\n")
        self.assertIn("name: ctl-made", self.ok("create", "route", "-f", path))
        self.assertIn("path_prefix: /ctl", self.ok("get", "route", "ctl-made"))
        self.assertIn("deleted route ctl-made", self.ok("delete", "route", "ctl-made"))
        self.assertEqual(self.run_ctl("get", "route", "ctl-made").returncode, 1)

    def test_create_api_key_prints_key_once(self):
        path = self.write("k.yaml", "name: ctl-key\nclient_id: c1\n"
                                    "expires_at: 2099-01-01T00:00:00Z\n")
        p = self.run_ctl("create", "api-key", "-f", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^key: \S+")
        self.assertIn("expires_at: 2099-01-01T00:00:00Z", p.stdout)
        got = self.ok("get", "api-key", "ctl-key")
        self.assertNotRegex(got, r"(?m)^key: ")
        self.ok("delete", "api-key", "ctl-key")

    def apply_file(self, extra_route):
        cfg = ("services:\n  - name: demo\n    protocol: http1\n"
               "    instances: [{host: 127.0.0.1, port: 9}]\n"
               "routes:\n  - {name: api, path_prefix: /api, service: demo}\n"
               "  - {name: %s, path_prefix: /%s, service: demo}\n" % (extra_route, extra_route))
        return self.write("apply-%s.yaml" % extra_route, cfg)

    def test_apply_dry_run_then_real(self):
        path = self.apply_file("applied")
        out = self.ok("apply", "-f", path, "--dry-run")
        self.assertIn("+ route applied", out)
        self.assertEqual(self.run_ctl("get", "route", "applied").returncode, 1)
        out = self.ok("apply", "-f", path, "-y")
        self.assertIn("+ route applied", out)
        self.assertIn("applied", out.splitlines()[-1])
        self.ok("get", "route", "applied")
        self.assertIn("no changes", self.ok("apply", "-f", path, "-y"))

    def test_apply_without_tty_needs_yes(self):
        p = self.run_ctl("apply", "-f", self.apply_file("notty"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("-y", p.stderr)

    def test_apply_concurrent_change_aborts(self):
        path = self.apply_file("raced")
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen([CTL, "--addr", self.addr, "--timeout", "5", "apply", "-f",
                                     path], stdin=slave, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            # Wait for the confirmation prompt (after the dry run).
            buf, deadline = "", time.time() + 15
            while "[y/N]" not in buf and time.time() < deadline:
                r, _, _ = select.select([proc.stderr], [], [], 0.5)
                if r:
                    chunk = os.read(proc.stderr.fileno(), 4096).decode()
                    if not chunk:
                        break
                    buf += chunk
            self.assertIn("[y/N]", buf)
            # A concurrent change between the dry run and the real apply.
            other = self.write("race.yaml", "name: racer\npath_prefix: /racer\nservice: demo\n")
            self.ok("create", "route", "-f", other)
            os.write(master, b"y\n")
            out, err = proc.communicate(timeout=20)
            self.assertEqual(proc.returncode, 1, out + err)
            self.assertIn("error: ABORTED", err)
            self.assertEqual(self.run_ctl("get", "route", "raced").returncode, 1)
        finally:
            os.close(master)
            os.close(slave)
            self.run_ctl("delete", "route", "racer")

    def test_validate(self):
        good = self.write("good.yaml", "services: [{name: s, instances: [{host: 127.0.0.1, port: 1}]}]\n"
                                       "routes: [{name: r, path_prefix: /, service: s}]\n")
        self.assertIn("valid", self.ok("validate", "-f", good))
        bad = self.write("bad.yaml", "routes: [{name: r, path_prefix: /, service: nowhere}]\n")
        p = self.run_ctl("validate", "-f", bad)
        self.assertEqual(p.returncode, 1)
        self.assertIn("invalid", p.stdout)
        self.assertRegex(p.stdout, r"(?m)^  \S+: ")


class PorticoctlJsonTest(unittest.TestCase):
    """`porticoctl json encode|decode`: local, no gateway. The schema is the
    descpool test protos compiled by protoc here; python3-protobuf builds the
    same types at run time to check the bytes."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="porticoctl-json-")
        protos = os.path.join(HERE, "..", "protos", "transcode")
        cls.desc = os.path.join(cls.tmp.name, "t.desc")
        subprocess.check_call(["protoc", "-I" + protos,
                               "-I" + os.path.join(HERE, "..", "..", "proto", "third_party"),
                               "-I/usr/include", "--include_imports", "--descriptor_set_out=" + cls.desc,
                               "kitchen.proto", "legacy.proto"], cwd=protos, timeout=60)
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
        with open(cls.desc, "rb") as f:
            fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
        pool = descriptor_pool.DescriptorPool()
        for fp in fds.file:
            pool.Add(fp)
        factory = message_factory.MessageFactory(pool)
        cls.cls = staticmethod(lambda name: factory.GetPrototype(pool.FindMessageTypeByName(name)))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def json(self, mode, type_name, data, *opts, desc=None):
        return subprocess.run([CTL, "json", mode, "--descriptor-set", desc or self.desc, "--type", type_name]
                              + list(opts), input=data, capture_output=True, timeout=30)

    def test_encode_then_decode(self):
        p = self.json("encode", "pt.test.kitchen.KitchenSink",
                      b'{"scalars": {"fInt64": "-5", "fString": "h\u00e9", "fMood": "MOOD_SAD"},'
                      b' "outer": {"customJson": "x"}, "maps": {"intEnum": {"3": "MOOD_HAPPY"}}}')
        self.assertEqual(p.returncode, 0, p.stderr)
        m = self.cls("pt.test.kitchen.KitchenSink")()
        m.ParseFromString(p.stdout)
        self.assertEqual(m.scalars.f_int64, -5)
        self.assertEqual(m.scalars.f_string, "h\u00e9")
        self.assertEqual(m.outer.json_named, "x")
        self.assertEqual(dict(m.maps.int_enum), {3: 1})
        d = self.json("decode", "pt.test.kitchen.KitchenSink", p.stdout)
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertEqual(d.stdout.decode(),
                         '{"scalars":{"fInt64":"-5","fString":"h\u00e9","fMood":"MOOD_SAD"},'
                         '"maps":{"intEnum":{"3":"MOOD_HAPPY"}},"outer":{"customJson":"x"}}\n')
        d = self.json("decode", "pt.test.kitchen.KitchenSink", p.stdout, "--original-names")
        self.assertIn(b'"json_named":"x"', d.stdout)

    def test_decode_emit_defaults_and_proto2(self):
        d = self.json("decode", "pt.test.kitchen.Scalars", b"", "--emit-defaults")
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertIn(b'"fInt64":"0"', d.stdout)
        m = self.cls("pt.test.legacy.Defaults")(id=1, name="n", blob=b"\x00", level=10)
        m.req_sub.SetInParent()
        d = self.json("decode", "pt.test.legacy.Defaults", m.SerializeToString())
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertEqual(d.stdout, b'{"id":1,"name":"n","blob":"AA==","level":"HIGH","reqSub":{}}\n')

    def test_bad_json_names_the_path(self):
        p = self.json("encode", "pt.test.kitchen.KitchenSink", b'{"repeated": {"rMsg": [{}, {"fInt32": "x"}]}}')
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, b"")
        self.assertIn("repeated.rMsg[1].fInt32", p.stderr.decode())
        self.assertEqual(self.json("encode", "pt.test.kitchen.Scalars", b'{"nope": 1}').returncode, 1)
        p = self.json("encode", "pt.test.kitchen.Scalars", b'{"nope": 1}', "--ignore-unknown")
        self.assertEqual((p.returncode, p.stdout), (0, b""))

    def test_bad_wire_bytes(self):
        p = self.json("decode", "pt.test.kitchen.Scalars", b"\x72\x09ab")
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith(b"error: "), p.stderr)

    def test_unknown_type(self):
        p = self.json("decode", "pt.test.kitchen.Nope", b"")
        self.assertEqual(p.returncode, 1)
        self.assertIn('type "pt.test.kitchen.Nope" not found', p.stderr.decode())

    def test_unreadable_and_invalid_descriptor_sets(self):
        p = self.json("decode", "a.B", b"", desc=os.path.join(self.tmp.name, "missing.desc"))
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot open", p.stderr.decode())
        bad = os.path.join(self.tmp.name, "bad.desc")
        with open(bad, "wb") as f:
            f.write(b"\x0a\x05not a file descriptor")
        p = self.json("decode", "a.B", b"", desc=bad)
        self.assertEqual(p.returncode, 1)
        self.assertIn("descriptor set", p.stderr.decode())
        # A set missing an import: kitchen.proto without its dependencies.
        protos = os.path.join(HERE, "..", "protos", "transcode")
        partial = os.path.join(self.tmp.name, "partial.desc")
        subprocess.check_call(["protoc", "-I" + protos,
                               "-I" + os.path.join(HERE, "..", "..", "proto", "third_party"),
                               "-I/usr/include", "--descriptor_set_out=" + partial, "kitchen.proto"],
                              cwd=protos, timeout=60)
        p = self.json("decode", "pt.test.kitchen.Scalars", b"", desc=partial)
        self.assertEqual(p.returncode, 1)
        self.assertIn("import", p.stderr.decode())

    def test_input_size_is_bounded(self):
        p = self.json("encode", "pt.test.kitchen.Scalars", b'{"fString": "' + b"a" * 5000 + b'"}',
                      "--max-input", "1000")
        self.assertEqual(p.returncode, 1)
        self.assertIn("too large", p.stderr.decode())
        p = self.json("encode", "pt.test.kitchen.Scalars", b'{"fString": "' + b"a" * 5000 + b'"}')
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_usage_errors_exit_2(self):
        for args in (["json"], ["json", "encode", "--type", "a.B"], ["json", "decode", "--descriptor-set", "x"],
                     ["json", "decode", "--descriptor-set", "x", "--type", "a.B", "--ignore-unknown"]):
            p = subprocess.run([CTL] + args, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
            self.assertEqual(p.returncode, 2, args)


if __name__ == "__main__":
    unittest.main()
