"""Descriptors from the backend itself: services with `reflection: true`
get their schema from the backend's gRPC server reflection, at start and on
the admin RefreshDescriptors call (docs/transcoding.md, "Descriptors from
reflection").

The backend (backends/reflection_backend.py) serves grpc.reflection v1 and
v1alpha written in Python from a descriptor set protoc makes of the descpool
test protos (tests/protos/transcode); it answers a symbol with its file
alone, so the gateway must ask for every import by name.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_reflection_descriptors
"""

import os
import subprocess
import time
import unittest

import grpc

import harness
from adminclient import AdminClient

PROTOS = os.path.join(harness.REPO_ROOT, "tests", "protos", "transcode")
SCRIPT = os.path.join(harness.BACKENDS_DIR, "reflection_backend.py")
CTL = os.environ.get("PORTICOCTL_BIN", os.path.join(harness.REPO_ROOT, "build", "porticoctl"))


def ctl(gw, *args):
    return subprocess.run([CTL, "--addr", gw.admin_addr, "--timeout", "20"] + list(args),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


class ReflectionBackend(harness.BackendProcess):
    script = SCRIPT
    kind = "reflection"

    def __init__(self, protos, *flags, port=0):
        extra = ["--proto-dir", PROTOS]
        for p in protos:
            extra += ["--proto", p]
        super().__init__(port=port, extra_args=extra + list(flags))


def config(services):
    return {
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
        "services": services,
        "routes": [{"name": "r%d" % i, "path_prefix": "/%s" % s["name"], "service": s["name"]}
                   for i, s in enumerate(services)],
    }


def svc(name, port, reflection=True, refresh_ms=0):
    s = {"name": name, "protocol": "grpc", "instances": [{"host": "127.0.0.1", "port": port}],
         "reflection": reflection}
    if refresh_ms:
        s["descriptor_refresh_ms"] = refresh_ms
    return s


@unittest.skipIf(harness.DIRECT, "gateway-only")
class ReflectionDescriptorsTest(unittest.TestCase):
    def status(self, client, name):
        return client.to_dict(client.call("GetDescriptorsStatus", service=name))

    def wait_generation(self, client, name, at_least, timeout=20):
        st = {}
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.status(client, name)
            if int(st.get("generation", 0)) >= at_least:
                return st
            time.sleep(0.1)
        self.fail("generation of %s stayed below %d: %s" % (name, at_least, st))

    def test_fetch_at_start_then_refresh_picks_up_a_changed_schema(self):
        backend = ReflectionBackend(["kitchen.proto"]).start()
        port = backend.port
        try:
            with harness.Portico(config([svc("kitchen", port)])) as gw, AdminClient(gw.admin_addr) as c:
                st = self.wait_generation(c, "kitchen", 1)
                self.assertEqual(st["grpc_services"], ["pt.test.kitchen.Kitchen"])
                self.assertGreater(st["message_types"], 20)
                self.assertEqual(st.get("last_error", ""), "")
                # the imports were asked for by name
                log = backend.log_text()
                self.assertIn("file_by_filename common.proto", log)
                self.assertIn("file_by_filename google/protobuf/any.proto", log)
                self.assertRegex(gw.stderr, r"reflection: service kitchen: generation 1")
                p = ctl(gw, "descriptors", "kitchen")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn("generation: 1", p.stdout)
                self.assertIn("pt.test.kitchen.Kitchen", p.stdout)

                # Same schema again: a new generation all the same.
                r = c.to_dict(c.call("RefreshDescriptors", service="kitchen"))
                self.assertEqual(int(r["generation"]), 2)

                # The backend restarts with another schema on the same port.
                backend.stop()
                backend = ReflectionBackend(["legacy.proto"], port=port).start()
                r = c.to_dict(c.call("RefreshDescriptors", service="kitchen"))
                self.assertEqual(int(r["generation"]), 3)
                self.assertEqual(r["grpc_services"], ["pt.test.legacy.Legacy"])

                # The backend goes away: a clear error, the last pool stays.
                backend.stop()
                backend = None
                err = c.error("RefreshDescriptors", service="kitchen")
                self.assertEqual(err.code(), grpc.StatusCode.FAILED_PRECONDITION, err.details())
                self.assertIn("last good descriptors stay in use", err.details())
                p = ctl(gw, "descriptors", "kitchen", "--refresh")
                self.assertEqual(p.returncode, 1, p.stdout)
                self.assertIn("error: FAILED_PRECONDITION: service \"kitchen\"", p.stderr)
                st = self.status(c, "kitchen")
                self.assertEqual(int(st["generation"]), 3)
                self.assertEqual(st["grpc_services"], ["pt.test.legacy.Legacy"])
                self.assertNotEqual(st.get("last_error", ""), "")
                self.assertGreaterEqual(int(st.get("failures", 0)), 1)
                self.assertTrue(gw.running)
        finally:
            if backend:
                backend.stop()

    def test_backend_without_reflection_is_a_clear_error(self):
        with ReflectionBackend(["kitchen.proto"], "--no-reflection") as backend, \
                harness.Portico(config([svc("plain", backend.port)])) as gw, AdminClient(gw.admin_addr) as c:
            err = c.error("RefreshDescriptors", service="plain")
            self.assertEqual(err.code(), grpc.StatusCode.FAILED_PRECONDITION, err.details())
            self.assertIn("does not serve grpc.reflection", err.details())
            st = self.status(c, "plain")
            self.assertEqual(int(st.get("generation", 0)), 0)
            self.assertIn("UNIMPLEMENTED", st["last_error"])
            harness.wait_until(lambda: "reflection: service plain:" in gw.stderr, timeout=10,
                               message="the failure logged")
            self.assertTrue(gw.running)
            # The gateway still serves its admin API and health.
            self.assertEqual(c.to_dict(c.call("GetHealth")).get("status"), "STATUS_SERVING")

    def test_v1alpha_only_backend(self):
        with ReflectionBackend(["legacy.proto"], "--v1alpha-only") as backend, \
                harness.Portico(config([svc("old", backend.port)])) as gw, AdminClient(gw.admin_addr) as c:
            st = self.wait_generation(c, "old", 1)
            self.assertEqual(st["grpc_services"], ["pt.test.legacy.Legacy"])

    def test_hanging_backend_neither_blocks_admin_nor_shutdown(self):
        with ReflectionBackend(["kitchen.proto"], "--hang") as backend, \
                ReflectionBackend(["legacy.proto"]) as good, \
                harness.Portico(config([svc("slow", backend.port), svc("fine", good.port)])) as gw:
            harness.wait_until(lambda: "reflection: hanging" in backend.log_text(), timeout=10,
                               message="the fetch in flight")
            with AdminClient(gw.admin_addr) as c:
                t0 = time.time()
                self.assertEqual(c.to_dict(c.call("GetHealth")).get("status"), "STATUS_SERVING")
                st = self.status(c, "slow")
                self.assertEqual(int(st.get("generation", 0)), 0)
                # another service's fetch does not wait behind the hanging one
                r = c.to_dict(c.call("RefreshDescriptors", service="fine"))
                self.assertGreaterEqual(int(r["generation"]), 1)
                self.assertLess(time.time() - t0, 2)
            t0 = time.time()
            gw.stop()
            # the call in flight (5 s deadline) is cancelled, not waited for
            self.assertLess(time.time() - t0, 3)
            self.assertNotIn("reflection: service slow", gw.stderr)

    def test_reload_to_another_backend_fetches_at_once(self):
        with ReflectionBackend(["kitchen.proto"]) as a, ReflectionBackend(["legacy.proto"]) as b:
            with harness.Portico(config([svc("moving", a.port)])) as gw, AdminClient(gw.admin_addr) as c:
                st = self.wait_generation(c, "moving", 1)
                self.assertEqual(st["grpc_services"], ["pt.test.kitchen.Kitchen"])
                gw.reload(config([svc("moving", b.port)]))
                st = self.wait_generation(c, "moving", 2)
                self.assertEqual(st["grpc_services"], ["pt.test.legacy.Legacy"])

    def test_timer_refresh(self):
        with ReflectionBackend(["kitchen.proto"]) as backend, \
                harness.Portico(config([svc("timed", backend.port, refresh_ms=1000)])) as gw, \
                AdminClient(gw.admin_addr) as c:
            self.wait_generation(c, "timed", 3, timeout=15)

    def test_service_without_reflection_is_not_found(self):
        with harness.Portico(config([svc("nope", harness.free_port(), reflection=False)])) as gw, \
                AdminClient(gw.admin_addr) as c:
            err = c.error("RefreshDescriptors", service="nope")
            self.assertEqual(err.code(), grpc.StatusCode.NOT_FOUND)
            self.assertIn("does not fetch descriptors by reflection", err.details())
            err = c.error("RefreshDescriptors", service="missing")
            self.assertEqual(err.code(), grpc.StatusCode.NOT_FOUND)
            err = c.error("GetDescriptorsStatus", service="")
            self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT)


if __name__ == "__main__":
    unittest.main()
