"""Health of upstream instances through portico: active HTTP and gRPC health
checks take failing instances out of the rotation and bring them back after
healthy_threshold passing checks; passive outlier detection ejects
instances that fail in a row (for a time that grows with each ejection,
within max_ejection_percent); with no usable instance requests fail fast
with 503 / UNAVAILABLE "no healthy upstream", unless panic_mode sends them
to all instances anyway.

The backends are switched at run time: http_backend.py's /control
(mode=ok|fail|hang|reset|slow, health=...) and grpc_backend.py's
portico.test.Control/SetHealth.

All gateway-only (skipped with PORTICO_DIRECT=1).

Run: cd tests/integration && /usr/bin/python3 -m unittest -v test_health
"""

import collections
import contextlib
import http.client
import json
import re
import shutil
import subprocess
import time
import unittest

import grpc

import adminclient
import harness
import protoload
import test_metrics
import wire

echo_pb2 = harness.load_echo()
ECHO = echo_pb2.DESCRIPTOR.services_by_name["Echo"]
TIMEOUT = 30.0


def request(addr, path, timeout=TIMEOUT):
    host, port = harness.split_address(addr)
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def control(backend, **params):
    """Set a backend's run-time mode; returns its /control JSON."""
    query = "&".join("%s=%s" % kv for kv in params.items())
    status, _, body = request(backend.addr, "/control" + ("?" + query if query else ""))
    assert status == 200, body
    return json.loads(body)


def server_of(body):
    try:
        return json.loads(body).get("server_id")
    except ValueError:
        return None


class HealthCase(unittest.TestCase):

    def setUp(self):
        if harness.DIRECT:
            self.skipTest("gateway-only (PORTICO_DIRECT=1)")
        self._stack = contextlib.ExitStack()
        self.addCleanup(self._stack.close)

    def backends(self, names):
        return [self._stack.enter_context(harness.HttpBackend(server_id=n)) for n in names]

    def gateway(self, service, workers=2):
        cfg = {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1", "h2c"]}],
               "services": [dict(service, name="web")],
               "routes": [{"name": "web", "path_prefix": "/", "service": "web"}],
               "drain_timeout_ms": 5000}
        gw = self._stack.enter_context(harness.Portico(cfg, workers=workers))
        self.addCleanup(self.check_clean_exit, gw)
        return gw

    def check_clean_exit(self, gw):
        rc = gw.stop(timeout=60) if gw.running() else gw.proc.returncode
        self.assertEqual(rc, 0, "gateway exit status %s; stderr tail:\n%s" % (rc, gw.stderr[-4000:]))

    def spread(self, gw, n):
        """n GET /echo through the gateway: (Counter of server ids, statuses)."""
        ids = collections.Counter()
        statuses = collections.Counter()
        for _ in range(n):
            status, _, body = request(gw.addr("main"), "/echo")
            statuses[status] += 1
            if status == 200:
                ids[server_of(body)] += 1
        return ids, statuses


class TestActiveHttp(HealthCase):

    def test_failing_instance_taken_out_and_back(self):
        a, b, c = self.backends(["a", "b", "c"])
        gw = self.gateway({"instances": [a.instance(), b.instance(), c.instance()],
                           "health_check": {"path": "/health", "interval_ms": 100, "timeout_ms": 500,
                                            "healthy_threshold": 2, "unhealthy_threshold": 2}})
        # Instances start healthy; checks reach every instance.
        ids, st = self.spread(gw, 30)
        self.assertEqual(st, {200: 30})
        self.assertEqual(set(ids), {"a", "b", "c"})
        harness.wait_until(lambda: all(control(x)["health_requests"] >= 2 for x in (a, b, c)),
                           TIMEOUT, message="health checks on every instance")

        # b's /health fails (its traffic still works): it is taken out while
        # traffic flows; no client error at all, since b still answers.
        control(b, health="fail")
        harness.wait_until(lambda: "instance 127.0.0.1:%d is unhealthy" % b.port in gw.stderr,
                           TIMEOUT, message="b marked unhealthy")
        before = control(b)["requests"]
        ids, st = self.spread(gw, 40)
        self.assertEqual(st, {200: 40})
        self.assertEqual(ids["b"], 0, ids)
        self.assertEqual(control(b)["requests"], before)
        # The others share b's traffic (round robin over the usable ones).
        self.assertTrue(15 <= ids["a"] <= 25 and 15 <= ids["c"] <= 25, ids)

        # Back after healthy_threshold passing checks.
        control(b, health="ok")
        harness.wait_until(lambda: "instance 127.0.0.1:%d is healthy" % b.port in gw.stderr,
                           TIMEOUT, message="b healthy again")
        ids, st = self.spread(gw, 30)
        self.assertEqual(st, {200: 30})
        self.assertGreater(ids["b"], 0, ids)

    def test_reload_keeps_health_state(self):
        a, b = self.backends(["a", "b"])
        svc = {"instances": [a.instance(), b.instance()],
               "health_check": {"interval_ms": 100, "unhealthy_threshold": 1,
                                "healthy_threshold": 3}}
        gw = self.gateway(svc)
        control(b, health="fail")
        line = "instance 127.0.0.1:%d is unhealthy" % b.port
        harness.wait_until(lambda: line in gw.stderr, TIMEOUT, message="b unhealthy")
        # A reload that keeps the instance (another setting changed, and an
        # instance added): b's state and schedule stay; a new state would
        # start healthy and log the transition again.
        c, = self.backends(["c"])
        gw.reload({"listeners": [{"name": "main", "address": gw.addr("main"),
                                  "protocols": ["http1", "h2c"]}],
                   "services": [dict(svc, name="web", connect_timeout_ms=3000,
                                     instances=[a.instance(), b.instance(), c.instance()])],
                   "routes": [{"name": "web", "path_prefix": "/", "service": "web"}],
                   "drain_timeout_ms": 5000})
        checks = control(b)["health_requests"]
        harness.wait_until(lambda: control(b)["health_requests"] >= checks + 5, TIMEOUT,
                           message="b still checked after the reload")
        harness.wait_until(lambda: control(c)["health_requests"] >= 2, TIMEOUT,
                           message="the new instance checked")
        self.assertEqual(gw.stderr.count(line), 1, gw.stderr[-3000:])
        ids, st = self.spread(gw, 30)
        self.assertEqual(st, {200: 30})
        self.assertEqual(set(ids), {"a", "c"})

    def test_backend_failing_entirely_bounded_errors(self):
        a, b = self.backends(["a", "b"])
        gw = self.gateway({"instances": [a.instance(), b.instance()],
                           "health_check": {"interval_ms": 100, "timeout_ms": 300,
                                            "unhealthy_threshold": 2}})
        self.assertEqual(self.spread(gw, 10)[1], {200: 10})
        control(b, mode="fail")  # traffic and /health answer 503
        errors = 0
        deadline = time.monotonic() + TIMEOUT
        # Detection takes ~unhealthy_threshold x interval: errors are bounded.
        while "instance 127.0.0.1:%d is unhealthy" % b.port not in gw.stderr:
            self.assertLess(time.monotonic(), deadline, "b never marked unhealthy")
            status, _, _ = request(gw.addr("main"), "/echo")
            errors += status != 200
            time.sleep(0.01)
        self.assertLess(errors, 100)
        ids, st = self.spread(gw, 30)
        self.assertEqual(st, {200: 30})
        self.assertEqual(set(ids), {"a"})

    def test_hanging_health_endpoint_times_out(self):
        a, b = self.backends(["a", "b"])
        gw = self.gateway({"instances": [a.instance(), b.instance()],
                           "health_check": {"interval_ms": 100, "timeout_ms": 200,
                                            "unhealthy_threshold": 2}})
        control(b, health="hang", ms=5000)
        harness.wait_until(lambda: re.search(r"instance 127\.0\.0\.1:%d is unhealthy "
                                             r"\(active check: timeout\)" % b.port, gw.stderr),
                           TIMEOUT, message="b unhealthy by timeout")
        ids, st = self.spread(gw, 20)
        self.assertEqual(st, {200: 20})
        self.assertEqual(set(ids), {"a"})

    def test_expected_statuses(self):
        a, = self.backends(["a"])
        # /status/418 is the check: healthy only because 418 is expected.
        gw = self.gateway({"instances": [a.instance()],
                           "health_check": {"path": "/status/418", "interval_ms": 100,
                                            "expected_statuses": ["200-299", "418"],
                                            "unhealthy_threshold": 1}})
        harness.wait_until(lambda: control(a)["requests"] >= 3, TIMEOUT, message="checks")
        self.assertNotIn("is unhealthy", gw.stderr)
        self.assertEqual(request(gw.addr("main"), "/echo")[0], 200)

    def test_all_down_fails_fast_then_panic_mode(self):
        a, b = self.backends(["a", "b"])
        hc = {"interval_ms": 100, "timeout_ms": 300, "unhealthy_threshold": 1}
        gw = self.gateway({"instances": [a.instance(), b.instance()], "health_check": hc})
        for x in (a, b):
            control(x, health="fail")
        harness.wait_until(lambda: gw.stderr.count("is unhealthy") >= 2, TIMEOUT,
                           message="both unhealthy")
        before = control(a)["requests"] + control(b)["requests"]
        t0 = time.monotonic()
        status, _, body = request(gw.addr("main"), "/echo")
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(status, 503, body)
        self.assertEqual(json.loads(body)["error"], "no healthy upstream")
        self.assertEqual(control(a)["requests"] + control(b)["requests"], before)

        # panic_mode: the same state, but requests reach the instances.
        gw.reload({"listeners": [{"name": "main", "address": gw.addr("main"),
                                  "protocols": ["http1", "h2c"]}],
                   "services": [{"name": "web", "instances": [a.instance(), b.instance()],
                                 "health_check": hc, "panic_mode": True}],
                   "routes": [{"name": "web", "path_prefix": "/", "service": "web"}],
                   "drain_timeout_ms": 5000})
        # The reload kept the health state: still both down.
        ids, st = self.spread(gw, 20)
        self.assertEqual(st, {200: 20})
        self.assertEqual(set(ids), {"a", "b"})
        self.assertIn("panic mode", gw.stderr)


class TestOutlier(HealthCase):

    def test_ejection_grows_and_returns(self):
        a, b, c = self.backends(["a", "b", "c"])
        gw = self.gateway({"instances": [a.instance(), b.instance(), c.instance()],
                           "outlier_detection": {"consecutive_failures": 3,
                                                 "base_ejection_time_ms": 3000,
                                                 "max_ejection_time_ms": 20000}}, workers=1)
        control(b, mode="fail")
        # b answers 503 until it has failed 3 times in a row: then ejected.
        errors = 0
        for _ in range(30):
            status, _, _ = request(gw.addr("main"), "/echo")
            errors += status == 503
        self.assertEqual(errors, 3)
        m = re.search(r"instance 127\.0\.0\.1:%d ejected for (\d+) ms \(outlier detection, "
                      r"ejection 1\)" % b.port, gw.stderr)
        self.assertTrue(m, gw.stderr[-2000:])
        self.assertTrue(2900 <= int(m.group(1)) <= 3000, m.group(0))
        ejected_at = time.monotonic()
        before = control(b)["requests"]
        ids, st = self.spread(gw, 20)
        self.assertEqual(st, {200: 20})
        self.assertEqual(control(b)["requests"], before)
        # Returns after the ejection time; still failing: ejected again for
        # twice as long.
        while time.monotonic() < ejected_at + 3.1:
            time.sleep(0.1)
        for _ in range(30):
            request(gw.addr("main"), "/echo")
        m = re.search(r"instance 127\.0\.0\.1:%d ejected for (\d+) ms \(outlier detection, "
                      r"ejection 2\)" % b.port, gw.stderr)
        self.assertTrue(m, gw.stderr[-2000:])
        self.assertTrue(5900 <= int(m.group(1)) <= 6000, m.group(0))
        # Healthy again: once the ejection is over, it serves.
        control(b, mode="ok")
        harness.wait_until(lambda: self.spread(gw, 6)[0]["b"] > 0, TIMEOUT, interval=0.3,
                           message="b serving again")

    def test_resets_eject(self):
        a, b = self.backends(["a", "b"])
        gw = self.gateway({"instances": [a.instance(), b.instance()],
                           "outlier_detection": {"consecutive_failures": 2,
                                                 "base_ejection_time_ms": 30000}}, workers=1)
        control(b, mode="reset")
        for _ in range(20):
            request(gw.addr("main"), "/echo")
        harness.wait_until(lambda: "instance 127.0.0.1:%d ejected" % b.port in gw.stderr, TIMEOUT,
                           message="b ejected for resets")
        ids, st = self.spread(gw, 20)
        self.assertEqual(st, {200: 20})
        self.assertEqual(set(ids), {"a"})

    def test_max_ejection_percent(self):
        bes = self.backends(["a", "b", "c", "d"])
        gw = self.gateway({"instances": [x.instance() for x in bes],
                           "outlier_detection": {"consecutive_failures": 2,
                                                 "base_ejection_time_ms": 60000,
                                                 "max_ejection_percent": 50}}, workers=1)
        for x in bes[1:]:
            control(x, mode="fail")
        for _ in range(60):
            request(gw.addr("main"), "/echo")
        # 50% of 4: at most two ejected at once, although three fail.
        self.assertEqual(gw.stderr.count("ejected for"), 2, gw.stderr[-3000:])
        ids, st = self.spread(gw, 20)
        self.assertEqual(st[200] + st[503], 20)
        self.assertGreater(st[503], 0)  # the failing instance left in still gets traffic

    def test_single_instance_never_ejected_by_default(self):
        a, = self.backends(["a"])
        gw = self.gateway({"instances": [a.instance()],
                           "outlier_detection": {"consecutive_failures": 1}}, workers=1)
        control(a, mode="fail")
        for _ in range(5):
            self.assertEqual(request(gw.addr("main"), "/echo")[0], 503)
        self.assertNotIn("ejected", gw.stderr)


class TestVisibility(HealthCase):

    def test_admin_health_and_prometheus(self):
        a, b, c = self.backends(["a", "b", "c"])
        gw = self.gateway({"instances": [a.instance(), b.instance(), c.instance()],
                           "health_check": {"interval_ms": 100, "unhealthy_threshold": 1},
                           "outlier_detection": {"consecutive_failures": 2,
                                                 "base_ejection_time_ms": 60000},
                           "circuit_breaker": {"per_instance": True, "failure_threshold": 100}},
                          workers=1)
        control(b, health="fail")
        control(c, mode="fail", health="ok")
        harness.wait_until(lambda: "instance 127.0.0.1:%d is unhealthy" % b.port in gw.stderr,
                           TIMEOUT, message="b unhealthy")
        for _ in range(10):
            request(gw.addr("main"), "/echo")
        harness.wait_until(lambda: "instance 127.0.0.1:%d ejected" % c.port in gw.stderr,
                           TIMEOUT, message="c ejected")
        with adminclient.AdminClient(gw.admin_addr) as admin:
            h = admin.call("GetHealth")
            text = admin.call("GetMetrics").prometheus_text
        rows = {u.instance: u for u in h.upstreams if u.service == "web"}
        ka, kb, kc = ("127.0.0.1:%d" % x.port for x in (a, b, c))
        self.assertEqual(set(rows), {ka, kb, kc})
        self.assertEqual((rows[ka].state, rows[ka].last_check), ("healthy", "ok"))
        self.assertEqual((rows[kb].state, rows[kb].last_check), ("unhealthy", "failed"))
        self.assertEqual(rows[kc].state, "ejected")
        self.assertEqual((rows[kc].ejections, rows[kc].ejections_total), (1, 1))
        self.assertTrue(all(r.active_check and r.circuit == "closed" for r in rows.values()))

        s = test_metrics.parse_prometheus(text)
        val = lambda name, inst, **kw: test_metrics.sample(s, name, service="web", instance=inst, **kw)
        self.assertEqual(val("portico_upstream_healthy", ka), 1)
        self.assertEqual(val("portico_upstream_healthy", kb), 0)
        self.assertEqual(val("portico_upstream_healthy", kc), 0)
        self.assertEqual(val("portico_upstream_ejected", kc), 1)
        self.assertEqual(val("portico_upstream_ejections_total", kc), 1)
        self.assertEqual(val("portico_upstream_health_transitions_total", kb, to="unhealthy"), 1)
        self.assertGreater(val("portico_upstream_health_checks_total", ka, result="ok"), 0)
        self.assertEqual(val("portico_circuit_state", ""), 0)
        self.assertEqual(val("portico_circuit_state", kc), 0)
        self.assertEqual(val("portico_circuit_transitions_total", kc, to="open"), 0)
        promtool = shutil.which("promtool")
        if promtool:
            proc = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                                  capture_output=True, timeout=60)
            self.assertEqual(proc.returncode, 0, proc.stdout.decode() + proc.stderr.decode())


class TestGrpcHealth(HealthCase):

    def grpc_gateway(self, backends, service_extra):
        cfg = harness.grpc_gateway_config([b.instance() for b in backends],
                                          service_extra=service_extra, drain_timeout_ms=5000)
        gw = self._stack.enter_context(harness.Portico(cfg, workers=2))
        self.addCleanup(self.check_clean_exit, gw)
        return gw

    def set_health(self, backend, text):
        ch = grpc.insecure_channel(backend.addr)
        try:
            fn = protoload.raw_method(ch, "/portico.test.Control/SetHealth")
            return int(fn(text.encode(), timeout=TIMEOUT))
        finally:
            ch.close()

    def echo(self, gw, n):
        ch = grpc.insecure_channel(gw.addr("main"))
        stub = protoload.Stub(ch, ECHO)
        ids = collections.Counter()
        codes = collections.Counter()
        try:
            for _ in range(n):
                try:
                    ids[stub.Echo(echo_pb2.EchoRequest(message="hi"), timeout=TIMEOUT).server_id] += 1
                    codes[grpc.StatusCode.OK] += 1
                except grpc.RpcError as exc:
                    codes[exc.code()] += 1
                    last = exc
            if codes.get(grpc.StatusCode.UNAVAILABLE):
                ids["details:" + last.details()] += 1
        finally:
            ch.close()
        return ids, codes

    def test_not_serving_taken_out_and_back(self):
        a = self._stack.enter_context(harness.GrpcBackend(server_id="ga"))
        b = self._stack.enter_context(harness.GrpcBackend(server_id="gb"))
        gw = self.grpc_gateway([a, b], {"health_check": {
            "type": "grpc", "grpc_service": "portico.test.Echo", "interval_ms": 100,
            "healthy_threshold": 2, "unhealthy_threshold": 2}})
        harness.wait_until(lambda: self.set_health(b, "portico.test.Echo=SERVING") >= 2, TIMEOUT,
                           message="gRPC health checks")
        ids, codes = self.echo(gw, 20)
        self.assertEqual(codes, {grpc.StatusCode.OK: 20})
        self.assertEqual(set(ids), {"ga", "gb"})

        self.set_health(b, "portico.test.Echo=NOT_SERVING")
        harness.wait_until(lambda: "instance 127.0.0.1:%d is unhealthy" % b.port in gw.stderr,
                           TIMEOUT, message="gb unhealthy")
        ids, codes = self.echo(gw, 20)
        self.assertEqual(codes, {grpc.StatusCode.OK: 20})
        self.assertEqual(set(ids), {"ga"})

        self.set_health(b, "portico.test.Echo=SERVING")
        harness.wait_until(lambda: "instance 127.0.0.1:%d is healthy" % b.port in gw.stderr,
                           TIMEOUT, message="gb healthy again")
        ids, _ = self.echo(gw, 20)
        self.assertGreater(ids["gb"], 0)

    def test_all_down_unavailable_then_panic(self):
        a = self._stack.enter_context(harness.GrpcBackend(server_id="ga"))
        hc = {"type": "grpc", "interval_ms": 100, "unhealthy_threshold": 1}
        self.set_health(a, "=NOT_SERVING")
        gw = self.grpc_gateway([a], {"health_check": hc})
        harness.wait_until(lambda: "is unhealthy" in gw.stderr, TIMEOUT, message="unhealthy")
        ids, codes = self.echo(gw, 3)
        self.assertEqual(codes, {grpc.StatusCode.UNAVAILABLE: 3})
        self.assertIn("details:no healthy upstream", ids)
        # A failing Check (an error status) counts as unhealthy too.
        self.set_health(a, "=FAIL")
        time.sleep(0.3)
        self.assertEqual(self.echo(gw, 1)[1], {grpc.StatusCode.UNAVAILABLE: 1})

        cfg = harness.grpc_gateway_config([a.instance()], listeners=[
            {"name": "main", "address": gw.addr("main"), "protocols": ["http1", "h2c"]}],
            service_extra={"health_check": hc, "panic_mode": True}, drain_timeout_ms=5000)
        gw.reload(cfg)
        ids, codes = self.echo(gw, 5)
        self.assertEqual(codes, {grpc.StatusCode.OK: 5})


class TestTransports(HealthCase):
    """Checks over HTTP/2: HTTP on an h2c service (nginx), gRPC over TLS."""

    def test_http_check_over_h2c(self):
        ng = self._stack.enter_context(wire.NginxBackend())
        cfg = {"listeners": [{"name": "main", "address": "127.0.0.1:0", "protocols": ["http1"]}],
               "services": [
                   {"name": "good", "protocol": "h2c", "instances": [ng.instance()],
                    "health_check": {"path": "/info", "interval_ms": 100, "unhealthy_threshold": 1}},
                   {"name": "bad", "protocol": "h2c", "instances": [ng.instance()],
                    "health_check": {"path": "/missing", "interval_ms": 100,
                                     "unhealthy_threshold": 1}}],
               "routes": [{"name": "good", "path_prefix": "/info", "service": "good"},
                          {"name": "bad", "path_prefix": "/files", "service": "bad"}],
               "drain_timeout_ms": 5000}
        gw = self._stack.enter_context(harness.Portico(cfg, workers=1))
        self.addCleanup(self.check_clean_exit, gw)
        harness.wait_until(lambda: "service bad: instance %s is unhealthy (active check: failed)"
                           % ng.addr in gw.stderr, TIMEOUT, message="bad unhealthy (404)")

        def good_checks():
            with adminclient.AdminClient(gw.admin_addr) as admin:
                s = test_metrics.parse_prometheus(admin.call("GetMetrics").prometheus_text)
            return test_metrics.sample(s, "portico_upstream_health_checks_total", service="good",
                                       instance=ng.addr, result="ok") >= 3
        harness.wait_until(good_checks, TIMEOUT, message="passing h2c checks of good")
        self.assertNotIn("service good: instance %s is unhealthy" % ng.addr, gw.stderr)
        self.assertEqual(request(gw.addr("main"), "/info")[0], 200)
        status, _, body = request(gw.addr("main"), "/files/small.txt")
        self.assertEqual((status, json.loads(body)["error"]), (503, "no healthy upstream"))

    def test_grpc_check_over_tls(self):
        certs = harness.test_certs()
        be = self._stack.enter_context(harness.GrpcBackend(tls=certs, server_id="gt"))
        tls = {"enabled": True, "ca_file": certs.ca_cert, "server_name": "localhost"}
        cfg = harness.grpc_gateway_config([be.instance()], drain_timeout_ms=5000, service_extra={
            "tls": tls, "health_check": {"type": "grpc", "interval_ms": 100,
                                         "unhealthy_threshold": 1, "healthy_threshold": 1}})
        gw = self._stack.enter_context(harness.Portico(cfg, workers=1))
        self.addCleanup(self.check_clean_exit, gw)

        def set_health(text):
            ch = harness.grpc_channel(be.addr, ca_file=certs.ca_cert, server_name="localhost")
            try:
                fn = protoload.raw_method(ch, "/portico.test.Control/SetHealth")
                return int(fn(text.encode(), timeout=TIMEOUT))
            finally:
                ch.close()
        harness.wait_until(lambda: set_health("=SERVING") >= 2, TIMEOUT, message="checks over TLS")
        set_health("=NOT_SERVING")
        harness.wait_until(lambda: "is unhealthy" in gw.stderr, TIMEOUT, message="unhealthy")
        set_health("=SERVING")
        harness.wait_until(lambda: "is healthy" in gw.stderr, TIMEOUT, message="healthy again")


if __name__ == "__main__":
    unittest.main()
