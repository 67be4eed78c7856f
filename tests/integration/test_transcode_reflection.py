"""REST/JSON transcoding whose schema comes from the backend's own gRPC
server reflection (a service with `reflection: true` and no
descriptor_set_file; docs/transcoding.md, "Descriptors from reflection").

The backend is backends/reflection_backend.py with --serve: grpcio serving
grpc.reflection (written in Python: Debian ships no grpcio-reflection) and
every unary method of the given proto files, each answering its request
copied into its response plus `method` = the method's name. The schema is
tests/protos/reflgreet/v1/greet.proto (Greeter.Hello, GET /v1/hello/{name})
or v2 (also Greeter.Bye, POST /v1/bye, and a field `times`), so restarting
the backend with v2 on the same port changes the schema under a running
gateway.

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_transcode_reflection
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
import unittest

import grpc

import harness
from adminclient import AdminClient

PROTOS = os.path.join(harness.REPO_ROOT, "tests", "protos", "reflgreet")
SCRIPT = os.path.join(harness.BACKENDS_DIR, "reflection_backend.py")
SVC = "portico.test.reflgreet.Greeter"
HTTP_TIMEOUT = 30.0


def setUpModule():
    if harness.DIRECT:
        raise unittest.SkipTest("transcoding exists only in the gateway (PORTICO_DIRECT=1)")


class GreetBackend(harness.BackendProcess):
    script = SCRIPT
    kind = "reflection"

    def __init__(self, version, port=0):
        super().__init__(port=port, extra_args=[
            "--proto-dir", os.path.join(PROTOS, version), "--proto", "greet.proto", "--serve"])


def config(port, transcode=None, refresh_ms=0, descriptor_set=None):
    svc = {"name": "greet", "protocol": "grpc",
           "instances": [{"host": "127.0.0.1", "port": port}], "reflection": True}
    if refresh_ms:
        svc["descriptor_refresh_ms"] = refresh_ms
    if descriptor_set:
        svc["descriptor_set_file"] = descriptor_set
    return {
        "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
        "services": [svc],
        "routes": [{"name": "rest", "path_prefix": "/", "service": "greet",
                    "transcode": transcode or {}}],
    }


def request(gw, method, path, body=None):
    """(status, content-type, parsed JSON or raw text)."""
    conn = http.client.HTTPConnection("127.0.0.1", gw.port(), timeout=HTTP_TIMEOUT)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        ct = resp.getheader("content-type", "")
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = data.decode("utf-8", "replace")
        return resp.status, ct, parsed
    finally:
        conn.close()


def wait_status(gw, method, path, status, body=None, timeout=20):
    last = []

    def ok():
        last[:] = [request(gw, method, path, body)]
        return last[0][0] == status
    try:
        harness.wait_until(ok, timeout=timeout, interval=0.1,
                           message="%s %s answering %d" % (method, path, status))
    except harness.HarnessError:
        raise AssertionError("%s %s never answered %d; last: %r" % (method, path, status, last))
    return last[0]


class TranscodeReflectionTest(harness.GatewayCase):
    """Every gateway must exit 0 at the end (GatewayCase: for ASan builds,
    no error and no leak)."""

    def backend(self, version, port=0):
        return self._stack.enter_context(GreetBackend(version, port=port))

    def refresh(self, client):
        return int(client.to_dict(client.call("RefreshDescriptors", service="greet"))["generation"])

    def test_rest_call_with_schema_from_reflection_only(self):
        backend = self.backend("v1")
        gw = self.start_gateway(config(backend.port, refresh_ms=1000))
        with AdminClient(gw.admin_addr) as c:
            st, ct, body = wait_status(gw, "GET", "/v1/hello/ann", 200)
            self.assertEqual(ct, "application/json")
            self.assertEqual(body, {"name": "ann", "method": "Hello"})
            # Rules came from the annotations; a path none matches is NOT_FOUND.
            st, ct, body = request(gw, "GET", "/v1/nothing")
            self.assertEqual(st, 404)
            self.assertEqual(body["code"], 5)
            # The timer refreshes (new generations), the route keeps working.
            gen = int(c.to_dict(c.call("GetDescriptorsStatus", service="greet"))["generation"])
            harness.wait_until(
                lambda: int(c.to_dict(c.call("GetDescriptorsStatus", service="greet"))
                            ["generation"]) >= gen + 2, timeout=15, message="timer refreshes")
            self.assertEqual(request(gw, "GET", "/v1/hello/bob")[2], {"name": "bob", "method": "Hello"})
            # gRPC clients on the same route pass through untouched.
            with grpc.insecure_channel("127.0.0.1:%d" % gw.port()) as ch:
                call = ch.unary_unary("/%s/Hello" % SVC)
                reply = call(b"\x0a\x03zed", timeout=10)  # HelloRequest{name: "zed"}
            self.assertIn(b"zed", reply)
            self.assertIn(b"Hello", reply)

    def test_before_the_first_fetch_503_json_then_works(self):
        port = harness.free_port()
        gw = self.start_gateway(config(port))
        with AdminClient(gw.admin_addr) as c:
            for _ in range(3):
                st, ct, body = request(gw, "GET", "/v1/hello/ann")
                self.assertEqual(st, 503)
                self.assertEqual(ct, "application/json")
                self.assertEqual(body["code"], 14)
                self.assertIn("descriptors for service greet not fetched yet", body["message"])
            # A refresh that fails keeps answering 503 JSON; the gateway lives.
            err = c.error("RefreshDescriptors", service="greet")
            self.assertEqual(err.code(), grpc.StatusCode.FAILED_PRECONDITION)
            st, _, body = request(gw, "GET", "/v1/hello/ann")
            self.assertEqual(st, 503)
            # ... and says why the last attempt failed.
            self.assertIn("; last attempt: ", body["message"])
            with GreetBackend("v1", port=port):
                self.assertGreaterEqual(self.refresh(c), 1)
                st, ct, body = wait_status(gw, "GET", "/v1/hello/ann", 200, timeout=10)
                self.assertEqual(body, {"name": "ann", "method": "Hello"})
            # The backend went away: a failed refresh keeps the last good
            # schema; the call itself fails like any unreachable backend.
            err = c.error("RefreshDescriptors", service="greet")
            self.assertEqual(err.code(), grpc.StatusCode.FAILED_PRECONDITION)
            st, ct, body = request(gw, "GET", "/v1/hello/ann")
            self.assertEqual(st, 503)
            self.assertEqual(ct, "application/json")
            self.assertNotIn("not fetched", body["message"])
            self.assertTrue(gw.running)

    def test_changed_schema_reaches_new_method_without_reload(self):
        backend = GreetBackend("v1").start()
        port = backend.port
        try:
            gw = self.start_gateway(config(port))
            with AdminClient(gw.admin_addr) as c:
                pid = gw.pid
                wait_status(gw, "GET", "/v1/hello/ann", 200)
                st, _, body = request(gw, "POST", "/v1/bye", {"name": "x", "times": 3})
                self.assertEqual(st, 404, body)
                backend.stop()
                backend = GreetBackend("v2", port=port).start()
                self.refresh(c)
                st, _, body = wait_status(gw, "POST", "/v1/bye", 200, body={"name": "x", "times": 3},
                                          timeout=10)
                self.assertEqual(body, {"name": "x", "method": "Bye", "times": 3})
                # the new field binds from the query of the old method too
                st, _, body = request(gw, "GET", "/v1/hello/y?times=2")
                self.assertEqual((st, body), (200, {"name": "y", "method": "Hello", "times": 2}))
                self.assertEqual(gw.pid, pid)
                self.assertNotRegex(gw.stderr, r"(?i)reload")
        finally:
            backend.stop()

    def test_rule_for_a_method_the_backend_lacks_is_503_until_it_has_it(self):
        tc = {"rules": [{"method": SVC + ".Bye", "post": "/v1/farewell", "body": "*"}]}
        backend = GreetBackend("v1").start()
        port = backend.port
        try:
            gw = self.start_gateway(config(port, transcode=tc))
            with AdminClient(gw.admin_addr) as c:
                harness.wait_until(lambda: "do not fit this route" in gw.stderr, timeout=20,
                                   message="the misfit logged")
                for _ in range(3):
                    st, ct, body = request(gw, "POST", "/v1/farewell", {"name": "x"})
                    self.assertEqual(st, 503, body)
                    self.assertEqual(ct, "application/json")
                    self.assertEqual(body["code"], 14)
                    self.assertIn("do not fit this route", body["message"])
                    self.assertIn(SVC + ".Bye", body["message"])
                # logged once per generation, not per request
                self.assertEqual(len(re.findall("do not fit this route", gw.stderr)), 1)
                backend.stop()
                backend = GreetBackend("v2", port=port).start()
                self.refresh(c)
                st, _, body = wait_status(gw, "POST", "/v1/farewell", 200, body={"name": "x"},
                                          timeout=10)
                self.assertEqual(body, {"name": "x", "method": "Bye"})
                # Hello keeps its annotation
                self.assertEqual(request(gw, "GET", "/v1/hello/z")[0], 200)
        finally:
            backend.stop()

    def test_concurrent_requests_during_repeated_refreshes_stay_200(self):
        backend = self.backend("v1")
        gw = self.start_gateway(config(backend.port), workers=4)
        with AdminClient(gw.admin_addr) as c:
            wait_status(gw, "GET", "/v1/hello/ann", 200)
            stop = threading.Event()
            results = []
            lock = threading.Lock()

            def client(i):
                conn = http.client.HTTPConnection("127.0.0.1", gw.port(), timeout=HTTP_TIMEOUT)
                try:
                    for n in range(400):  # bounded; ends early when the refreshes are done
                        if stop.is_set():
                            break
                        conn.request("GET", "/v1/hello/c%d-%d" % (i, n))
                        resp = conn.getresponse()
                        data = resp.read()
                        with lock:
                            results.append((resp.status, data))
                finally:
                    conn.close()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            try:
                gens = [self.refresh(c) for _ in range(15)]
            finally:
                stop.set()
                for t in threads:
                    t.join(60)
            self.assertEqual(gens, sorted(gens))
            self.assertGreater(len(results), 50)
            bad = [r for r in results if r[0] != 200]
            self.assertEqual(bad, [])
            self.assertTrue(gw.running)

    def test_descriptor_set_file_wins_over_reflection(self):
        protoc = shutil.which("protoc")
        if not protoc:
            self.skipTest("protoc not found")
        tmp = harness.TempDir(prefix="tcrefl-")
        try:
            out = tmp.join("v1.pb")
            subprocess.run([protoc, "-I" + os.path.join(PROTOS, "v1"),
                            "-I" + os.path.join(harness.REPO_ROOT, "proto", "third_party"),
                            "-I/usr/include", "--include_imports", "--descriptor_set_out=" + out,
                            "greet.proto"], check=True, timeout=60)
            backend = self.backend("v2")
            gw = self.start_gateway(config(backend.port, descriptor_set=out))
            with AdminClient(gw.admin_addr) as c:
                self.assertEqual(request(gw, "GET", "/v1/hello/a")[0], 200)
                self.assertGreaterEqual(self.refresh(c), 1)
                # the file's schema (v1) has no Bye, whatever reflection says
                self.assertEqual(request(gw, "POST", "/v1/bye", {"name": "x"})[0], 404)
        finally:
            tmp.cleanup()

    def refused(self, cfg, message):
        gw = harness.Portico(cfg)
        with self.assertRaises(harness.StartError):
            gw.start()
        try:
            self.assertIn(message, gw.stderr)
        finally:
            gw.stop()

    def test_transcode_without_any_schema_source_is_a_config_error(self):
        cfg = config(harness.free_port())
        cfg["services"][0]["reflection"] = False
        self.refused(cfg, "needs protocol grpc and a descriptor_set_file or reflection: true")

    def test_options_that_need_no_schema_are_checked_at_load(self):
        self.refused(config(harness.free_port(), transcode={"stream_format": "xml"}),
                     '"xml": expected "ndjson", "sse" or "json_array"')


if __name__ == "__main__":
    unittest.main()
