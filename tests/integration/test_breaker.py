"""Circuit breakers through portico: a service's breaker opens after
failure_threshold consecutive failures, rejects at once (503 and
x-portico-circuit: open, or gRPC UNAVAILABLE with the same metadata)
without reaching the backend, lets a probe through after timeout_ms and
closes on its success or reopens on its failure. Two workers share the
state (each request uses a new connection, so they land on both).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_breaker
"""

import contextlib
import http.client
import json
import re
import time
import unittest

import grpc

import harness
import protoload

echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
Req = echo_pb2.EchoRequest

TIMEOUT_MS = 2000


def http_get(addr, path):
    host, port = harness.split_address(addr)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def backend_hits(backend, path):
    return len(re.findall(r'"GET %s HTTP/1\.1" ' % re.escape(path), backend.log_text()))


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestHttpBreaker(unittest.TestCase):
    def test_open_reject_probe_close(self):
        with contextlib.ExitStack() as stack:
            be = stack.enter_context(harness.HttpBackend())
            gw = stack.enter_context(harness.Portico({
                "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
                "services": [{"name": "flaky", "instances": [be.instance()],
                              "circuit_breaker": {"failure_threshold": 3, "timeout_ms": TIMEOUT_MS,
                                                  "sliding_window_size": 100}}],
                "routes": [{"name": "status", "path_prefix": "/status", "service": "flaky"}],
            }, workers=2))
            addr = gw.addr("main")
            # Closed: successes pass, and failures below the threshold too.
            self.assertEqual(http_get(addr, "/status/200")[0], 200)
            for _ in range(3):
                status, headers, _ = http_get(addr, "/status/500")
                self.assertEqual(status, 500)
                self.assertNotIn("x-portico-circuit", headers)
            opened = time.monotonic()
            # Open: rejected by the gateway, the backend never sees them.
            ok_before = backend_hits(be, "/status/200")
            for _ in range(5):
                status, headers, body = http_get(addr, "/status/200")
                self.assertEqual(status, 503, body)
                self.assertEqual(headers.get("x-portico-circuit"), "open")
                self.assertEqual(json.loads(body)["error"], "circuit breaker open")
            self.assertLess(time.monotonic() - opened, TIMEOUT_MS / 1000.0,
                            "the checks took longer than the open period")
            time.sleep(0.2)
            self.assertEqual(backend_hits(be, "/status/200"), ok_before)
            self.assertEqual(backend_hits(be, "/status/500"), 3)
            self.assertIn("circuit flaky: closed -> open (consecutive failures)", gw.stderr)

            # After the timeout a failing probe goes through and reopens it.
            time.sleep(TIMEOUT_MS / 1000.0 + 0.2)
            self.assertEqual(http_get(addr, "/status/500")[0], 500)
            status, headers, _ = http_get(addr, "/status/200")
            self.assertEqual(status, 503)
            self.assertEqual(headers.get("x-portico-circuit"), "open")
            self.assertIn("circuit flaky: half_open -> open (a half-open probe failed)", gw.stderr)

            # After the next timeout a successful probe closes it.
            time.sleep(TIMEOUT_MS / 1000.0 + 0.2)
            self.assertEqual(http_get(addr, "/status/200")[0], 200)
            for _ in range(4):
                status, headers, _ = http_get(addr, "/status/200")
                self.assertEqual(status, 200)
                self.assertNotIn("x-portico-circuit", headers)
            self.assertIn("circuit flaky: half_open -> closed", gw.stderr)
            # Closed again with a fresh count: two failures do not open it.
            self.assertEqual(http_get(addr, "/status/502")[0], 502)
            self.assertEqual(http_get(addr, "/status/503")[0], 503)
            status, headers, _ = http_get(addr, "/status/200")
            self.assertEqual(status, 200)

    def test_failure_on_selects_what_counts(self):
        with contextlib.ExitStack() as stack:
            be = stack.enter_context(harness.HttpBackend())
            gw = stack.enter_context(harness.Portico({
                "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1"]}],
                "services": [{"name": "gw-only", "instances": [be.instance()],
                              "circuit_breaker": {"failure_threshold": 2, "timeout_ms": 60000,
                                                  "failure_on": ["gateway-error"]}}],
                "routes": [{"name": "status", "path_prefix": "/status", "service": "gw-only"}],
            }, workers=2))
            addr = gw.addr("main")
            for _ in range(4):  # 500 is not a gateway error
                self.assertEqual(http_get(addr, "/status/500")[0], 500)
            self.assertEqual(http_get(addr, "/status/502")[0], 502)
            self.assertEqual(http_get(addr, "/status/504")[0], 504)
            status, headers, _ = http_get(addr, "/status/200")
            self.assertEqual(status, 503)
            self.assertEqual(headers.get("x-portico-circuit"), "open")

    def test_invalid_config_is_rejected(self):
        code, err = harness.check_config({
            "listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1"]}],
            "services": [{"name": "s", "instances": [{"host": "127.0.0.1", "port": 9}],
                          "circuit_breaker": {"failure_rate_threshold": 101,
                                              "failure_on": ["5xx", "grpc:NOPE", "5xx"]}}],
            "routes": [{"name": "r", "path_prefix": "/", "service": "s"}],
        })
        self.assertNotEqual(code, 0)
        self.assertIn("failure_rate_threshold", err)
        self.assertIn('unknown failure kind "grpc:NOPE"', err)
        self.assertIn("5xx is listed twice", err)


@unittest.skipIf(harness.DIRECT, "gateway-only")
class TestGrpcBreaker(unittest.TestCase):
    def test_unavailable_trailers_only_while_open(self):
        with contextlib.ExitStack() as stack:
            be = stack.enter_context(harness.GrpcBackend())
            cfg = harness.grpc_gateway_config(
                [be.instance()],
                service_extra={"circuit_breaker": {"failure_threshold": 2, "timeout_ms": 60000,
                                                   "failure_on": ["grpc:UNAVAILABLE"]}})
            gw = stack.enter_context(harness.Portico(cfg, workers=2))
            backend_ch = harness.grpc_channel(be.addr)
            stack.callback(backend_ch.close)
            backend = protoload.Stub(backend_ch, ECHO)
            # A fresh channel per call spreads the calls over both workers.
            for i in range(4):
                ch = harness.grpc_channel(gw.addr("main"))
                stack.callback(ch.close)
                stub = protoload.Stub(ch, ECHO)
                # Other codes are not failures under this failure_on.
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.Echo(Req(tag="nf-%d" % i, fail_code=grpc.StatusCode.INTERNAL.value[0],
                                  fail_message="internal"), timeout=30)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.INTERNAL)
            for i in range(2):
                ch = harness.grpc_channel(gw.addr("main"))
                stack.callback(ch.close)
                stub = protoload.Stub(ch, ECHO)
                with self.assertRaises(grpc.RpcError) as cm:
                    stub.Echo(Req(tag="f-%d" % i, fail_code=grpc.StatusCode.UNAVAILABLE.value[0],
                                  fail_message="down"), timeout=30)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
                self.assertEqual(cm.exception.details(), "down")
            ch = harness.grpc_channel(gw.addr("main"))
            stack.callback(ch.close)
            stub = protoload.Stub(ch, ECHO)
            with self.assertRaises(grpc.RpcError) as cm:
                stub.Echo(Req(tag="rejected", payload=b"x"), timeout=30)
            err = cm.exception
            self.assertEqual(err.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(err.details(), "circuit breaker open")
            md = list(err.trailing_metadata() or ()) + list(err.initial_metadata() or ())
            self.assertIn(("x-portico-circuit", "open"), [(m.key, m.value) for m in md])
            stats = backend.GetStats(echo_pb2.StatsRequest(tag="rejected"), timeout=30)
            self.assertEqual(len(stats.calls), 0, "the rejected call reached the backend")
            stats = backend.GetStats(echo_pb2.StatsRequest(tag="f-1"), timeout=30)
            self.assertEqual(len(stats.calls), 1)


if __name__ == "__main__":
    unittest.main()
